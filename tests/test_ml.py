"""The recommender: the champion gate, a model that loads by alias in a fresh process, scoring
with its fallback, and the same registry flow against a real MLflow server."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from common import local_mlflow, local_server, tables, tracking
from common.config import load_config
from common.errors import ConfigError, SourceError, TrackingError
from jobs import score, serving
from jobs.recommender import split
from jobs.runner import run_job
from jobs.simulate import events_dir
from tests.conftest import REPO

WORSE = {"ml.ranks": [1], "ml.max_iters": [1]}      # one iteration of rank 1: reliably worse
BETTER = {"ml.ranks": [6], "ml.max_iters": [8]}
DATA = {"generator.ratings": 20000, "generator.users": 300, "generator.movies": 600}


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    """A batch layer over generated ratings, shared by the tests of this module."""
    cfg = load_config("test", [f"lake.root={tmp_path_factory.mktemp('ml') / 'lake'}"]).with_overrides(DATA)
    for job in ("extract", "full_load", "silver", "gold"):
        run_job(spark, cfg, job)
    return cfg


def champion_version(cfg) -> int:
    return int(tracking.champion(tracking.connect(cfg), cfg["ml.model_name"]).version)


def gate_tags(cfg, version: int) -> dict:
    mv = tracking.connect(cfg).get_model_version(cfg["ml.model_name"], str(version))
    return {k.removeprefix("gate."): v for k, v in mv.tags.items() if k.startswith("gate.")}


def rmse_by_numpy(spark, cfg, version: int) -> float:
    """An oracle for the gate: the version's RMSE on the held-out ratings, computed in numpy over
    the rows both compared models can score (here: rows with a prediction)."""
    import mlflow

    tracking.connect(cfg)
    model = mlflow.spark.load_model(f"models:/{cfg['ml.model_name']}/{version}")
    _, test = split(tables.read(spark, cfg, "silver.ratings"), cfg["ml.test_fraction"], cfg["ml.seed"])
    scored = model.transform(test).toPandas().dropna()
    return float(np.sqrt(np.mean((scored.prediction - scored.rating) ** 2)))


def test_the_gate_promotes_only_a_better_model(spark, lake):
    first = run_job(spark, lake.with_overrides(WORSE), "train")
    assert (first.counts["model.version"], first.counts["promoted"]) == (1, 1)
    assert champion_version(lake) == 1 and gate_tags(lake, 1)["reason"] == "first model: champion"

    better = run_job(spark, lake.with_overrides(BETTER), "train")
    assert (better.counts["model.version"], better.counts["promoted"]) == (2, 1)
    assert champion_version(lake) == 2
    tags = gate_tags(lake, 2)
    assert float(tags["challenger_rmse"]) < float(tags["champion_rmse"])
    assert float(gate_tags(lake, 1)["challenger_rmse"]) == pytest.approx(float(tags["champion_rmse"]), abs=1e-9)
    assert float(tags["challenger_rmse"]) == pytest.approx(rmse_by_numpy(spark, lake, 2), abs=1e-6)
    assert float(tags["champion_rmse"]) == pytest.approx(rmse_by_numpy(spark, lake, 1), abs=1e-6)

    worse = run_job(spark, lake.with_overrides(WORSE), "train")
    assert (worse.counts["model.version"], worse.counts["promoted"]) == (3, 0)
    assert champion_version(lake) == 2  # the alias did not move
    tags = gate_tags(lake, 3)
    assert tags["promoted"] == "False" and float(tags["challenger_rmse"]) > float(tags["champion_rmse"])
    assert tags["champion_version"] == "2"


def test_the_champion_loads_in_a_fresh_process_and_scores(spark, lake):
    if tracking.champion(tracking.connect(lake), lake["ml.model_name"]) is None:
        run_job(spark, lake, "train")
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
        run_job(spark, lake, "train")
    # A user the model has never seen arrives through the speed layer after training.
    os.makedirs(events_dir(lake), exist_ok=True)
    with open(os.path.join(events_dir(lake), "events-new-user.json"), "w") as f:
        f.write(json.dumps({"userId": 990001, "movieId": 1, "rating": 4.0, "timestamp": 1700000000}) + "\n")
    run_job(spark, lake, "speed")
    result = run_job(spark, lake, "score")

    k = lake["ml.top_k"]
    recs = serving.recommendations(spark, lake).toPandas()  # the served view, right after scoring
    assert list(recs.columns) == ["userId", "rank", "movieId", "score", "source", "model_name", "model_version",
                                  "silver_version", "scored_at"]
    rated = tables.read(spark, lake, "silver.ratings").select("userId", "movieId").toPandas()
    assert set(recs.userId) == set(rated.userId)
    per_user = recs.groupby("userId").agg(n=("rank", "size"), ranks=("rank", lambda r: sorted(r)))
    assert (per_user.n == k).all() and all(r == list(range(1, k + 1)) for r in per_user.ranks)
    assert recs.merge(rated, on=["userId", "movieId"]).empty  # nothing already rated
    assert set(recs.model_version) == {champion_version(lake)}
    assert set(recs.silver_version) == {tables.current_version(spark, lake, "silver.ratings").version}

    # Oracle for the cold user: the serving view's top movies by Bayesian average, minus what they rated.
    stats = serving.movie_stats(spark, lake).toPandas().sort_values(["bayes_avg", "movieId"], ascending=[False, True])
    expected = [m for m in stats.movieId if m != 1][:k]
    cold = recs[recs.userId == 990001].sort_values("rank")
    assert list(cold.movieId) == expected and set(cold.source) == {"fallback_top_movies"}
    assert result.counts["rows.als"] > 0


def test_the_registry_flow_against_a_real_mlflow_server(spark, lake, tmp_path):
    port = local_server.free_port()
    uri = local_mlflow.up(str(tmp_path / "mlflow-server"), port)
    try:
        cfg = lake.with_overrides({"ml.tracking_uri": uri, "ml.model_name": "movielens_als_on_server"})
        assert run_job(spark, cfg.with_overrides(BETTER), "train").counts["promoted"] == 1
        assert run_job(spark, cfg.with_overrides(WORSE), "train").counts["promoted"] == 0
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        assert client.get_model_version_by_alias("movielens_als_on_server", "champion").version == "1"
        versions = client.search_model_versions("name='movielens_als_on_server'")
        assert sorted(int(v.version) for v in versions) == [1, 2]
        run = client.get_run(versions[0].run_id)
        assert run.data.tags["data.version"] == str(tables.current_version(spark, cfg, "silver.ratings").version)
        assert {"als_rmse", "baseline_rmse", "als_ndcg_at_k", "baseline_precision_at_k"} <= set(run.data.metrics)
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
        assert artifacts == {"plots/rating_distribution.png", "plots/predicted_vs_actual.png", "plots/search_rmse.png"}
    finally:
        local_mlflow.down(str(tmp_path / "mlflow-server"))
    assert not local_server.listening(port)


@pytest.mark.parametrize("override, message", [
    ("ml.ranks=[]", "'ml.ranks' must be a non-empty list of positive integers"),
    ("ml.reg_params=[-0.1]", "'ml.reg_params' must be a non-empty list of numbers >= 0"),
    ("ml.test_fraction=0", "'ml.test_fraction' must be a number in (0, 1)"),
    ("ml.top_k=0", "'ml.top_k' must be a positive number"),
])
def test_a_bad_ml_setting_is_refused_at_start(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config("test", [override])


def test_no_server_at_the_tracking_uri_fails_in_seconds_not_minutes(tmp_path):
    uri = f"http://127.0.0.1:{local_server.free_port()}"
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
    from jobs.recommender import popularity_candidates, top_k_unseen

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
