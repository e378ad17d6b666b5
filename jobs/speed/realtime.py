"""The real-time view: per-movie deltas of rating count and sum, from silver.ratings' change feed.

A re-rating changes a sum, not a count: its pre-image is subtracted and its post-image added.
Each row carries the silver version it came from, so the serving view can take exactly the
deltas the batch view does not cover yet.
"""
from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

ADDS = ("insert", "update_postimage")
REMOVES = ("delete", "update_preimage")


def realtime_deltas(changes: DataFrame, silver_version: int) -> DataFrame:
    """Change-feed rows (`_change_type`, movieId, rating) → (movieId, silver_version, count_delta, sum_delta)."""
    kind = F.col("_change_type")
    count = F.when(kind == "insert", 1).when(kind == "delete", -1).otherwise(0)
    total = F.when(kind.isin(*ADDS), F.col("rating")).when(kind.isin(*REMOVES), -F.col("rating")).otherwise(0.0)
    return (changes.groupBy("movieId")
            .agg(F.sum(count).cast("long").alias("count_delta"), F.sum(total).alias("sum_delta"))
            .where((F.col("count_delta") != 0) | (F.col("sum_delta") != 0))
            .select("movieId", F.lit(silver_version).cast("long").alias("silver_version"), "count_delta", "sum_delta"))
