"""The served recommendations: score keeps K + a buffer of candidates per user, the view
gold.recommendations serves the first K the user has not rated — ratings the stream merged after
scoring included — and with no champion score serves the popularity list. Oracles in plain Python."""
from __future__ import annotations

import json
import os
import re
from collections import Counter
from datetime import datetime

import pytest
from chispa import assert_df_equality

from common import tables
from common.catalogue import SILVER_RATINGS
from common.config import load_config
from common.errors import ConfigError
from jobs.serving import serving
from jobs.runners.runner import run_job
from jobs.speed.simulate import events_dir

COLUMNS = ["userId", "rank", "movieId", "score", "source", "model_name", "model_version", "silver_version",
           "scored_at"]


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    """A batch layer over generated ratings (the test overlay's sizes), shared by this module."""
    cfg = load_config("test", [f"lake.root={tmp_path_factory.mktemp('recs') / 'lake'}"])
    for job in ("extract", "full_load", "silver", "gold"):
        run_job(spark, cfg, job)
    return cfg


def rated_pairs(spark, cfg) -> set[tuple[int, int]]:
    rows = tables.read(spark, cfg, SILVER_RATINGS.name).select("userId", "movieId").collect()
    return {(r.userId, r.movieId) for r in rows}


def served_by_oracle(candidates: list, rated: set[tuple[int, int]], k: int) -> list[tuple]:
    """Per user, the candidates in rank order minus what the user has rated, the first k, ranked 1..k."""
    by_user: dict[int, list] = {}
    for c in sorted(candidates, key=lambda c: (c.userId, c["rank"])):
        by_user.setdefault(c.userId, []).append(c)
    served = []
    for user, rows in by_user.items():
        kept = [c for c in rows if (user, c.movieId) not in rated][:k]
        served += [(user, i + 1, c.movieId, c.score, c.source) for i, c in enumerate(kept)]
    return served


def as_tuples(rows) -> list[tuple]:
    return sorted((r.userId, r["rank"], r.movieId, r.score, r.source) for r in rows)


def test_the_served_list_drops_movies_rated_after_scoring_and_refills_from_the_candidates(spark, lake):
    run_job(spark, lake, "score")  # the view is the same whatever ranked the candidates: no training here
    k, buffer = lake["ml.top_k"], lake["ml.candidate_buffer"]
    candidates = tables.read(spark, lake, serving.CANDIDATES).collect()
    per_user = Counter(c.userId for c in candidates)
    rated = rated_pairs(spark, lake)
    assert set(per_user) == {u for u, _ in rated} and set(per_user.values()) == {k + buffer}
    assert not {(c.userId, c.movieId) for c in candidates} & rated
    # Before any new rating the served list is the candidates' first k.
    assert as_tuples(serving.recommendations(spark, lake).collect()) == as_tuples(c for c in candidates if c["rank"] <= k)

    # Three users rate recommended movies through the speed layer: a its first, b three of its ten,
    # c more than the buffer holds (its list comes out one short: the documented limit until the next score).
    a, b, c = sorted(per_user)[:3]
    ranked = {u: [x.movieId for x in sorted((x for x in candidates if x.userId == u), key=lambda x: x["rank"])]
              for u in (a, b, c)}
    new = [(a, ranked[a][0])] + [(b, ranked[b][i]) for i in (1, 4, 9)] + [(c, m) for m in ranked[c][:buffer + 1]]
    os.makedirs(events_dir(lake), exist_ok=True)
    with open(os.path.join(events_dir(lake), "events-rated-after-scoring.json"), "w") as f:
        f.writelines(json.dumps({"userId": u, "movieId": m, "rating": 4.5, "timestamp": 1700000000}) + "\n"
                     for u, m in new)
    run_job(spark, lake, "speed")

    rated_now = rated_pairs(spark, lake)
    assert set(new) <= rated_now - rated  # the stream merged them after the scored version
    served = serving.recommendations(spark, lake)
    assert served.columns == COLUMNS
    rows = served.collect()
    assert as_tuples(rows) == sorted(served_by_oracle(candidates, rated_now, k))
    assert not {(r.userId, r.movieId) for r in rows} & set(new)
    lengths = Counter(r.userId for r in rows)
    assert lengths[c] == k - 1 and all(n == k for u, n in lengths.items() if u != c)
    assert set(lengths) == set(per_user)
    assert [r.movieId for r in sorted((r for r in rows if r.userId == a), key=lambda r: r["rank"])] == ranked[a][1:k + 1]

    # The same view by its name in Spark SQL, as `lakejobs query` registers it.
    assert serving.RECOMMENDATIONS in serving.register(spark, lake)
    assert_df_equality(spark.sql(f"SELECT * FROM {serving.RECOMMENDATIONS}"), served,
                       ignore_row_order=True, ignore_nullable=True)


def test_a_lake_scored_before_the_view_existed_still_serves_the_view(spark, tmp_path):
    """Such a lake holds a table at gold/recommendations; the name is the view's, the old table is not registered."""
    cfg = load_config("test", [f"lake.root={tmp_path / 'lake'}"])
    candidates = [(1, 1, 10, 3.0, "als", "m", 1, 0, datetime(2026, 1, 1)),
                  (1, 2, 20, 2.0, "als", "m", 1, 0, datetime(2026, 1, 1))]
    spark.createDataFrame(candidates, "userId int, rank int, movieId int, score double, source string, model_name string, "
                          "model_version int, silver_version long, scored_at timestamp") \
        .write.format("delta").save(tables.location(cfg, serving.CANDIDATES))
    spark.createDataFrame([(1, 10)], "userId int, movieId int").write.format("delta") \
        .save(tables.location(cfg, serving.RATINGS))
    spark.createDataFrame([(1, 1, 99)], "userId int, rank int, movieId int").write.format("delta") \
        .save(tables.location(cfg, serving.RECOMMENDATIONS))
    assert serving.RECOMMENDATIONS in serving.register(spark, cfg)
    served = spark.sql(f"SELECT userId, rank, movieId FROM {serving.RECOMMENDATIONS}").collect()
    assert [tuple(r) for r in served] == [(1, 1, 20)]  # movie 10 rated, 20 moves up


def test_with_no_champion_score_serves_the_popularity_list_and_says_so(spark, lake):
    cfg = lake.with_overrides({"ml.model_name": "never_trained"})
    result = run_job(spark, cfg, "score")
    k, depth = cfg["ml.top_k"], cfg["ml.top_k"] + cfg["ml.candidate_buffer"]

    # Oracle: the movies with at least ml.min_item_ratings ratings, most rated first (ties by movieId),
    # per user the first ones they have not rated.
    ratings = tables.read(spark, cfg, SILVER_RATINGS.name).select("userId", "movieId").collect()
    rated = {(r.userId, r.movieId) for r in ratings}
    counts = Counter(r.movieId for r in ratings)
    chart = sorted((m for m, n in counts.items() if n >= cfg["ml.min_item_ratings"]), key=lambda m: (-counts[m], m))
    expected = sorted((u, i + 1, m, float(counts[m]), "popularity")
                      for u in {u for u, _ in rated}
                      for i, m in enumerate([m for m in chart if (u, m) not in rated][:depth]))
    candidates = tables.read(spark, cfg, serving.CANDIDATES).collect()
    assert as_tuples(candidates) == expected
    served = serving.recommendations(spark, cfg).collect()
    assert as_tuples(served) == [e for e in expected if e[1] <= k]
    assert {(r.model_name, r.model_version) for r in served} == {(None, None)}
    assert result.counts["rows.popularity"] == len(served)
    assert "no 'champion' version of model never_trained" in result.notes[0] and "popularity" in result.notes[0]


def test_a_negative_candidate_buffer_is_refused_at_start():
    with pytest.raises(ConfigError, match=re.escape("'ml.candidate_buffer' must be a whole number >= 0, got -1")):
        load_config("test", ["ml.candidate_buffer=-1"])
