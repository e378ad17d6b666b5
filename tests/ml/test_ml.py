"""The recommender: the two models and the gate that can refuse them, the metrics against
plain-Python oracles, a model that loads by alias in a fresh process, scoring with its fallback,
and the same registry flow against a real MLflow server."""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from common import tables, tracking
from common.catalogue import SILVER_MOVIES, SILVER_RATINGS
from common.local import mlflow_server, servers
from common.config import load_config
from common.errors import ConfigError, SourceError, TrackingError
from jobs.ml import score
from jobs.serving import serving
from jobs.batch.generator import GeneratorSpec, generate
from jobs.ml.metrics import paired_bootstrap, per_user_ranking, ranking_means, rating_errors
from jobs.ml.recommender import split
from jobs.runners.runner import run_job
from jobs.speed.simulate import events_dir
from tests.conftest import REPO

# One setting per grid (no search): each model's fit is the whole cost. The rating and ranking
# settings are given apart, so a test cripples one model and keeps the other sound.
RATING = {"ml.ranks": [4], "ml.reg_params": [0.1], "ml.max_iters": [8]}
RANKING = {"ml.preferences": ["binary"], "ml.ranking_reg_params": [0.1], "ml.ranking_alphas": [5.0],
           "ml.ranking_max_iters": [8]}
# One factor learns popularity only (measured: its NDCG@10 equals the popularity baseline's); two tell
# some of the four tastes apart, eight all of them.
MODERATE = RATING | RANKING | {"ml.ranking_ranks": [2]}
BETTER = RATING | RANKING | {"ml.ranking_ranks": [8]}
# Crippled: a regParam so large that the movies' factors underflow to 0 (every movie scores the same).
CRIPPLED_RANKING = BETTER | {"ml.ranking_reg_params": [1e30], "ml.ranking_max_iters": [1]}
# The better ranking model with a rating model of one factor: better than the bias model, worse than rank 4.
BETTER_RANKING_WORSE_RATING = BETTER | {"ml.ranks": [1]}
GROUPS = 4


def planted_taste(folder: str, users: int = 160, movies: int = 240, seed: int = 7) -> str:
    """MovieLens files whose ratings have a taste to find: user u and movie m belong to one of
    GROUPS groups (u % GROUPS, m % GROUPS); users mostly watch and like their group's movies and
    dislike the others. The generator's own ratings are independent of the user (nothing to learn
    beyond popularity), so its ratings.csv is replaced."""
    generate(GeneratorSpec(seed=1, ratings=users, users=users, movies=movies, tags=10,
                           start="2015-01-01", end="2016-01-01"), folder)
    movie_ids = pd.read_csv(os.path.join(folder, "movies.csv")).movieId.to_numpy()
    rng = np.random.default_rng(seed)
    group = np.arange(movies) % GROUPS
    popularity = rng.permutation(1.0 / (1.0 + np.arange(movies)) ** 0.7)
    quality = rng.normal(0.0, 0.3, movies)
    frames = []
    for u in range(users):
        same_group = group == u % GROUPS
        weights = popularity * np.where(same_group, 6.0, 1.0)
        chosen = rng.choice(movies, size=int(rng.integers(25, 60)), replace=False, p=weights / weights.sum())
        raw = (3.4 + quality[chosen] + rng.normal(0.0, 0.3) + np.where(same_group[chosen], 0.9, -1.0)
               + rng.normal(0.0, 0.5, len(chosen)))
        frames.append(pd.DataFrame({"userId": u + 1, "movieId": movie_ids[chosen],
                                    "rating": np.clip(np.round(raw * 2) / 2, 0.5, 5.0),
                                    "timestamp": 1_500_000_000 + rng.integers(0, 10**7, len(chosen))}))
    pd.concat(frames).to_csv(os.path.join(folder, "ratings.csv"), index=False, float_format="%.1f")
    return folder


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    """A batch layer over ratings with a planted taste, shared by the tests of this module."""
    folder = planted_taste(str(tmp_path_factory.mktemp("taste")))
    cfg = load_config("test", [f"lake.root={tmp_path_factory.mktemp('ml') / 'lake'}"]).with_overrides(
        {"source.kind": "folder", "source.folder": folder})
    for job in ("extract", "full_load", "silver", "gold"):
        run_job(spark, cfg, job)
    return cfg


def champion_version(cfg) -> int | None:
    current = tracking.champion(tracking.connect(cfg), cfg["ml.model_name"])
    return None if current is None else int(current.version)


def gate_tags(cfg, version: int) -> dict:
    mv = tracking.connect(cfg).get_model_version(cfg["ml.model_name"], str(version))
    return {k.removeprefix("gate."): v for k, v in mv.tags.items() if k.startswith("gate.")}


def held_out(spark, cfg) -> tuple[pd.DataFrame, pd.DataFrame]:
    train, test = split(tables.read(spark, cfg, SILVER_RATINGS.name), cfg["ml.test_fraction"], cfg["ml.seed"])
    return train.toPandas(), test.toPandas()


def rmse_by_numpy(spark, cfg, version: int) -> float:
    """Oracle: the RMSE of the version's rating model (logged in its run) on the held-out ratings,
    computed in numpy over the rows it predicts."""
    import mlflow

    client = tracking.connect(cfg)
    model = mlflow.spark.load_model(client.get_model_version(cfg["ml.model_name"], str(version)).tags["rating_model"])
    _, test = split(tables.read(spark, cfg, SILVER_RATINGS.name), cfg["ml.test_fraction"], cfg["ml.seed"])
    scored = model.transform(test).toPandas().dropna()
    return float(np.sqrt(np.mean((scored.prediction - scored.rating) ** 2)))


def ndcg_by_numpy(spark, cfg, version: int) -> float:
    """Oracle: NDCG@k of the version's ranking model from its factors in numpy, for every held-out
    user with a relevant rating, over the eligible movies they did not rate in training."""
    import mlflow

    tracking.connect(cfg)
    als = mlflow.spark.load_model(f"models:/{cfg['ml.model_name']}/{version}").stages[-1]
    users = {r.id: np.array(r.features, dtype=np.float32) for r in als.userFactors.collect()}
    items = {r.id: np.array(r.features, dtype=np.float32) for r in als.itemFactors.collect()}
    train, test = held_out(spark, cfg)
    counts = train.movieId.value_counts()
    eligible = [m for m in counts.index if counts[m] >= cfg["ml.min_item_ratings"] and m in items]
    k, scores = cfg["ml.top_k"], []
    for user, rows in test[test.rating >= cfg["ml.relevant_rating"]].groupby("userId"):
        relevant, seen = set(rows.movieId), set(train[train.userId == user].movieId)
        ranked = [] if user not in users else sorted(
            (m for m in eligible if m not in seen),
            key=lambda m: (-float(np.sum((users[user] * items[m]).astype(np.float64))), m))[:k]
        scores.append(ndcg(ranked, relevant, k))
    return float(np.mean(scores))


def ndcg(ranked: list, relevant: set, k: int) -> float:
    dcg = sum(1 / math.log2(i + 2) for i, m in enumerate(ranked[:k]) if m in relevant)
    return dcg / sum(1 / math.log2(i + 2) for i in range(min(len(relevant), k)))


@pytest.mark.slow
def test_the_gate_refuses_crippled_models_and_promotes_only_a_significant_gain(spark, lake):
    # A crippled ranking model, the first ever: registered, refused, and no champion at all.
    first = run_job(spark, lake.with_overrides(CRIPPLED_RANKING), "train")
    assert (first.counts["model.version"], first.counts["promoted"]) == (1, 0)
    assert champion_version(lake) is None
    tags = gate_tags(lake, 1)
    assert float(tags["ndcg"]) < float(tags["popularity_ndcg"])  # the data says it is worse
    assert "does not beat the popularity baseline" in tags["reason"] and tags["reason"].endswith("no champion yet")

    # A sound model beats both baselines: the first champion. Its tagged figures equal the oracles'.
    moderate = run_job(spark, lake.with_overrides(MODERATE), "train")
    assert (moderate.counts["model.version"], moderate.counts["promoted"]) == (2, 1)
    assert champion_version(lake) == 2
    tags = gate_tags(lake, 2)
    assert tags["reason"].startswith("first model to beat both baselines")
    assert float(tags["rmse"]) == pytest.approx(rmse_by_numpy(spark, lake, 2), abs=1e-6)
    assert float(tags["ndcg"]) == pytest.approx(ndcg_by_numpy(spark, lake, 2), abs=1e-6)

    # The same model again: no gain, so the bootstrap's lower bound is not above 0 and nothing moves.
    again = run_job(spark, lake.with_overrides(MODERATE), "train")
    assert (again.counts["model.version"], again.counts["promoted"]) == (3, 0)
    tags = gate_tags(lake, 3)
    assert float(tags["ndcg_gain"]) == 0 and float(tags["ndcg_gain_lower95"]) == 0
    assert "not above 0" in tags["reason"] and tags["reason"].endswith("champion stays v2")

    # A clearly better ranking, but its rating model is worse than the champion's by more than the tolerance.
    worse_rmse = run_job(spark, lake.with_overrides(BETTER_RANKING_WORSE_RATING), "train")
    assert (worse_rmse.counts["model.version"], worse_rmse.counts["promoted"]) == (4, 0)
    tags = gate_tags(lake, 4)
    assert float(tags["ndcg_gain_lower95"]) > 0 and float(tags["rmse"]) < float(tags["bias_rmse"])
    assert float(tags["paired_rmse_challenger"]) > float(tags["paired_rmse_champion"]) + lake["ml.rmse_tolerance"]
    assert "beyond +0.002" in tags["reason"] and tags["reason"].endswith("champion stays v2")
    assert champion_version(lake) == 2

    # Both better: promoted on a significant NDCG gain with an RMSE within the tolerance.
    better = run_job(spark, lake.with_overrides(BETTER), "train")
    assert (better.counts["model.version"], better.counts["promoted"]) == (5, 1)
    assert champion_version(lake) == 5
    tags = gate_tags(lake, 5)
    assert float(tags["ndcg_gain_lower95"]) > 0 and tags["champion_version"] == "2"
    assert float(tags["ndcg"]) - float(tags["champion_ndcg"]) == pytest.approx(float(tags["ndcg_gain"]), abs=1e-9)
    assert float(tags["champion_ndcg"]) == pytest.approx(ndcg_by_numpy(spark, lake, 2), abs=1e-6)
    assert float(tags["paired_rmse_challenger"]) <= float(tags["paired_rmse_champion"]) + lake["ml.rmse_tolerance"]
    assert tags["reason"].endswith("champion now")


def test_metrics_on_a_hand_made_split_equal_a_plain_python_oracle(spark):
    test = [(1, 10, 5.0), (1, 11, 4.0), (1, 12, 2.0), (2, 20, 4.5), (2, 21, 1.0), (3, 30, 3.0), (4, 40, 4.0)]
    predicted = [(1, 10, 5.0, 4.2), (1, 11, 4.0, 3.1), (1, 12, 2.0, 2.9), (2, 20, 4.5, 4.4), (2, 21, 1.0, float("nan")),
                 (3, 30, 3.0, None)]
    lists = {1: [12, 10, 99, 11], 2: [77, 78, 20], 3: [30]}  # user 4 has a relevant rating and no list
    k, relevant = 3, 4.0
    errors = rating_errors(spark.createDataFrame(predicted, "userId int, movieId int, rating double, prediction double"))
    scored = [(r, p) for _, _, r, p in predicted if p is not None and not math.isnan(p)]
    assert errors["rows"] == len(scored) == 4
    assert errors["rmse"] == pytest.approx(math.sqrt(sum((p - r) ** 2 for r, p in scored) / len(scored)), abs=1e-12)
    assert errors["mae"] == pytest.approx(sum(abs(p - r) for r, p in scored) / len(scored), abs=1e-12)

    recommended = spark.createDataFrame([(u, m, i + 1) for u, ms in lists.items() for i, m in enumerate(ms)],
                                        "userId int, movieId int, rank int")
    per_user = per_user_ranking(recommended, spark.createDataFrame(test, "userId int, movieId int, rating double"),
                                relevant, k).toPandas().set_index("userId")
    truth = {u: {m for v, m, r in test if v == u and r >= relevant} for u, _, _ in test}
    truth = {u: ms for u, ms in truth.items() if ms}  # user 3 has nothing relevant: not judged
    assert sorted(per_user.index) == sorted(truth) == [1, 2, 4]
    for user, wanted in truth.items():
        ranked = lists.get(user, [])
        assert per_user.precision[user] == pytest.approx(len(set(ranked[:k]) & wanted) / k, abs=1e-12)
        assert per_user.ndcg[user] == pytest.approx(ndcg(ranked, wanted, k), abs=1e-12)
    means = ranking_means(spark.createDataFrame(per_user.reset_index()))
    assert means["ndcg_at_k"] == pytest.approx(np.mean([ndcg(lists.get(u, []), w, k) for u, w in truth.items()]))
    by_hand = ((1 / math.log2(3)) / (1 + 1 / math.log2(3)) + 1 / math.log2(4) + 0.0) / 3  # hits at 2 of {1,2}; at 3; none
    assert means["ndcg_at_k"] == pytest.approx(by_hand, abs=1e-12)


def test_the_paired_bootstrap_is_deterministic_given_its_seed():
    diffs = np.random.default_rng(0).normal(0.02, 0.1, 400)
    first, again, other = (paired_bootstrap(diffs, 2000, seed) for seed in (42, 42, 43))
    assert first == again and first["lower"] != other["lower"]
    # Oracle: the normal approximation of the mean's 95% interval.
    half = 1.96 * diffs.std(ddof=1) / math.sqrt(len(diffs))
    assert first["mean"] == pytest.approx(diffs.mean(), abs=1e-12)
    assert first["lower"] == pytest.approx(diffs.mean() - half, abs=0.002)
    assert first["upper"] == pytest.approx(diffs.mean() + half, abs=0.002)
    assert first["lower"] > 0  # a clear gain passes ...
    noise = paired_bootstrap(diffs - diffs.mean(), 2000, 42)
    assert noise["lower"] < 0 < noise["upper"]  # ... no gain does not


def test_the_champion_loads_in_a_fresh_process_and_scores(spark, lake):
    if tracking.champion(tracking.connect(lake), lake["ml.model_name"]) is None:
        run_job(spark, lake.with_overrides(BETTER), "train")
    uri, _ = tracking.embedded_store(lake)
    script = (
        "import json, sys, mlflow, mlflow.spark\n"
        "from common.config import load_config\nfrom common.session import get_session\n"
        "spark = get_session(load_config('test'))\n"
        f"mlflow.set_tracking_uri({uri!r}); mlflow.set_registry_uri({uri!r})\n"
        f"model = mlflow.spark.load_model('models:/{lake['ml.model_name']}@champion')\n"
        "pairs = spark.createDataFrame([(1, m) for m in range(1, 200)], 'userId int, movieId int')\n"
        "out = model.transform(pairs).dropna()\n"
        "print(json.dumps({'rows': out.count(), 'finite': out.where('isnan(prediction)').count() == 0}))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["finite"] and result["rows"] > 0


def test_scoring_gives_every_user_k_unrated_movies_and_cold_users_the_fallback(spark, lake):
    if tracking.champion(tracking.connect(lake), lake["ml.model_name"]) is None:
        run_job(spark, lake.with_overrides(BETTER), "train")
    # A user the model has never seen arrives through the speed layer after training.
    # It rates a movie of the catalogue (a rating of an unknown movie is quarantined, conf/schemas.yaml).
    movie = tables.read(spark, lake, SILVER_MOVIES.name).agg({"movieId": "min"}).first()[0]
    os.makedirs(events_dir(lake), exist_ok=True)
    with open(os.path.join(events_dir(lake), "events-new-user.json"), "w") as f:
        f.write(json.dumps({"userId": 990001, "movieId": movie, "rating": 4.0, "timestamp": 1700000000}) + "\n")
    run_job(spark, lake, "speed")
    result = run_job(spark, lake, "score")

    k = lake["ml.top_k"]
    recs = serving.recommendations(spark, lake).toPandas()  # the served view, right after scoring
    assert list(recs.columns) == ["userId", "rank", "movieId", "score", "source", "model_name", "model_version",
                                  "silver_version", "scored_at"]
    rated = tables.read(spark, lake, SILVER_RATINGS.name).select("userId", "movieId").toPandas()
    assert set(recs.userId) == set(rated.userId)
    per_user = recs.groupby("userId").agg(n=("rank", "size"), ranks=("rank", lambda r: sorted(r)))
    assert (per_user.n == k).all() and all(r == list(range(1, k + 1)) for r in per_user.ranks)
    assert recs.merge(rated, on=["userId", "movieId"]).empty  # nothing already rated
    assert set(recs.model_version) == {champion_version(lake)}
    assert set(recs.silver_version) == {tables.current_version(spark, lake, SILVER_RATINGS.name).version}

    # Oracle for the cold user: the serving view's top movies by Bayesian average, minus what they rated.
    stats = serving.movie_stats(spark, lake).toPandas().sort_values(["bayes_avg", "movieId"], ascending=[False, True])
    expected = [m for m in stats.movieId if m != movie][:k]
    cold = recs[recs.userId == 990001].sort_values("rank")
    assert list(cold.movieId) == expected and set(cold.source) == {"fallback_top_movies"}
    assert result.counts["rows.als"] > 0


@pytest.mark.slow
def test_the_registry_flow_against_a_real_mlflow_server(spark, lake, tmp_path):
    port = servers.free_port()
    uri = mlflow_server.up(str(tmp_path / "mlflow-server"), port)
    try:
        cfg = lake.with_overrides({"ml.tracking_uri": uri, "ml.model_name": "movielens_als_on_server"})
        assert run_job(spark, cfg.with_overrides(BETTER), "train").counts["promoted"] == 1
        assert run_job(spark, cfg.with_overrides(CRIPPLED_RANKING), "train").counts["promoted"] == 0
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        assert client.get_model_version_by_alias("movielens_als_on_server", "champion").version == "1"
        versions = client.search_model_versions("name='movielens_als_on_server'")
        assert sorted(int(v.version) for v in versions) == [1, 2]
        run = client.get_run(versions[0].run_id)
        assert run.data.tags["data.version"] == str(tables.current_version(spark, cfg, SILVER_RATINGS.name).version)
        assert {"rating_rmse", "bias_rmse", "ranking_ndcg_at_k", "popularity_ndcg_at_k", "bias_precision_at_k"} \
            <= set(run.data.metrics)
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
        assert artifacts == {"plots/rating_distribution.png", "plots/predicted_vs_actual.png"}  # grids of one: no search
        assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"model", "rating_model"}
    finally:
        mlflow_server.down(str(tmp_path / "mlflow-server"))
    assert not servers.listening(port)


@pytest.mark.parametrize("override, message", [
    ("ml.ranks=[]", "'ml.ranks' must be a non-empty list of positive integers"),
    ("ml.reg_params=[-0.1]", "'ml.reg_params' must be a non-empty list of numbers > 0"),
    ("ml.ranking_reg_params=[0]", "'ml.ranking_reg_params' must be a non-empty list of numbers > 0"),
    ("ml.test_fraction=0", "'ml.test_fraction' must be a number in (0, 1)"),
    ("ml.top_k=0", "'ml.top_k' must be a positive number"),
    ("ml.preferences=[likes]", "'ml.preferences' must be a non-empty list of preference encodings"),
    ("ml.rmse_tolerance=-0.1", "'ml.rmse_tolerance' must be a number >= 0"),
])
def test_a_bad_ml_setting_is_refused_at_start(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config("test", [override])


def test_no_server_at_the_tracking_uri_fails_in_seconds_not_minutes(tmp_path):
    uri = f"http://127.0.0.1:{servers.free_port()}"
    cfg = load_config("test", [f"lake.root={tmp_path / 'lake'}", f"ml.tracking_uri={uri}"])
    began = time.monotonic()
    with pytest.raises(TrackingError, match=f"no MLflow server answers at {re.escape(uri)}"):
        tracking.connect(cfg)
    assert time.monotonic() - began < 10  # MLflow's own client would retry for minutes


def test_scoring_before_the_batch_layer_says_so(spark, tmp_path):
    cfg = load_config("test", [f"lake.root={tmp_path / 'lake'}"])  # with no champion score serves popularity,
    with pytest.raises(SourceError, match="silver.ratings does not exist yet: run the batch layer"):  # not without data
        score.run(spark, cfg)


def test_popularity_ranks_each_users_unseen_movies_by_rating_count(spark):
    """Oracle: count the ratings of each movie in plain Python, drop what the user rated, sort."""
    from jobs.ml.recommender import popularity_candidates, top_k_unseen

    train_rows = [(1, 10, 4.0), (2, 10, 3.0), (3, 10, 5.0), (1, 20, 2.0), (2, 20, 4.0), (3, 30, 1.0),
                  (4, 40, 5.0), (2, 40, 4.0), (4, 50, 3.0)]
    train = spark.createDataFrame(train_rows, "userId int, movieId int, rating double")
    users = spark.createDataFrame([(1,), (3,), (5,)], "userId int")
    items = spark.createDataFrame([(10,), (20,), (30,), (40,)], "movieId int")   # 50 is not eligible
    k = 2
    got = top_k_unseen(popularity_candidates(train, users, items), train, k).toPandas()
    counts = {}
    for _, movie, _ in train_rows:
        counts[movie] = counts.get(movie, 0) + 1
    for user in (1, 3, 5):
        seen = {m for u, m, _ in train_rows if u == user}
        expected = sorted((m for m in (10, 20, 30, 40) if m not in seen), key=lambda m: (-counts[m], m))[:k]
        mine = got[got.userId == user].sort_values("rank")
        assert list(mine.movieId) == expected, user
        assert list(mine.score) == [float(counts[m]) for m in expected]
