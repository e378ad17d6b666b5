"""Checks on a lake that several test files share: the serving view against a full recompute,
and silver.ratings against the plain-Python oracle."""
from __future__ import annotations

import pandas as pd
from chispa import assert_approx_df_equality
from pyspark.sql import functions as F

from common import raw_zone, tables
from common.catalogue import SILVER_MOVIES, SILVER_RATINGS
from jobs.batch import gold
from jobs.serving import serving
from jobs.speed.simulate import events_dir
from tests import oracle

STATS = ("movieId", "rating_count", "rating_sum", "rating_mean", "bayes_avg")


def recompute(spark, cfg):
    """gold's movie stats recomputed from all of silver as it is now."""
    ratings = tables.read(spark, cfg, SILVER_RATINGS.name)
    stats = gold.movie_stats(ratings, tables.read(spark, cfg, SILVER_MOVIES.name), cfg["gold.bayes_min_votes"], None)
    return stats.select(*STATS)


def assert_serving_equals_recompute(spark, cfg) -> None:
    served = serving.movie_stats(spark, cfg).select(*STATS)
    assert_approx_df_equality(served, recompute(spark, cfg), precision=1e-9, ignore_row_order=True,
                              ignore_nullable=True)


def silver_ratings(spark, cfg):
    return tables.read(spark, cfg, SILVER_RATINGS.name).select(
        "userId", "movieId", "rating", F.unix_timestamp("event_time").alias("ts"))


def assert_silver_equals_oracle(spark, cfg, lines: list[str] | None = None) -> None:
    """silver.ratings = latest rating per key over the raw batch ratings and every valid event line
    (by default, the lines in the stream landing zone)."""
    raw = pd.read_csv(raw_zone.find(cfg).file("ratings.csv"))
    expected = oracle.latest_ratings(raw, oracle.event_lines(events_dir(cfg)) if lines is None else lines)
    actual = silver_ratings(spark, cfg).toPandas().rename(columns={"ts": "timestamp"}) \
        .sort_values(["userId", "movieId"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(actual, expected, check_dtype=False)
