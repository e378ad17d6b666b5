"""Job `gold`: batch views over all of silver, each stamped with the cutoff event time it covers.

movie_stats_batch (count, mean, Bayesian average), genre_stats (by genre and rating year),
user_activity. The cutoff is the latest event time in the silver.ratings version read.
"""
from __future__ import annotations

from datetime import datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from common import catalogue, tables
from common.config import Config
from common.ledger import RunResult


def movie_stats(ratings: DataFrame, movies: DataFrame, min_votes: int, cutoff: datetime) -> DataFrame:
    """Per movie: rating count, sum, mean and the Bayesian average (C·m + Σr) / (m + n), C the global mean.

    The sum is kept so that later increments (the speed layer) can be added without a recompute.
    """
    global_mean = ratings.agg(F.avg("rating")).first()[0]
    per_movie = ratings.groupBy("movieId").agg(F.count("*").alias("rating_count"), F.sum("rating").alias("rating_sum"))
    return (per_movie.join(movies.select("movieId", "title", "year"), on="movieId", how="left")
            .select("movieId", "title", "year", "rating_count", "rating_sum",
                    (F.col("rating_sum") / F.col("rating_count")).alias("rating_mean"),
                    ((F.lit(global_mean) * min_votes + F.col("rating_sum")) / (F.col("rating_count") + min_votes))
                    .alias("bayes_avg"),
                    F.lit(cutoff).alias("cutoff_event_time")))


def genre_stats(ratings: DataFrame, movies: DataFrame, cutoff: datetime) -> DataFrame:
    """Per genre and year of rating: ratings, mean rating, distinct movies rated."""
    by_genre = movies.select("movieId", F.explode("genres").alias("genre"))
    return (ratings.join(by_genre, on="movieId", how="inner")
            .groupBy("genre", F.year("event_time").alias("rating_year"))
            .agg(F.count("*").alias("rating_count"), F.avg("rating").alias("rating_mean"),
                 F.countDistinct("movieId").alias("movies_rated"))
            .withColumn("cutoff_event_time", F.lit(cutoff)))


def user_activity(ratings: DataFrame, tags: DataFrame, cutoff: datetime) -> DataFrame:
    """Per user: ratings, mean rating, first and last rating time, tags written."""
    tag_counts = tags.groupBy("userId").agg(F.count("*").alias("tag_count"))
    return (ratings.groupBy("userId")
            .agg(F.count("*").alias("rating_count"), F.avg("rating").alias("rating_mean"),
                 F.min("event_time").alias("first_rated_at"), F.max("event_time").alias("last_rated_at"))
            .join(tag_counts, on="userId", how="left")
            .withColumn("tag_count", F.coalesce("tag_count", F.lit(0)).cast("long"))
            .withColumn("cutoff_event_time", F.lit(cutoff)))


REALTIME = catalogue.GOLD_MOVIE_STATS_REALTIME.name
REALTIME_SCHEMA = T.StructType([
    T.StructField("movieId", T.IntegerType()), T.StructField("silver_version", T.LongType()),
    T.StructField("count_delta", T.LongType()), T.StructField("sum_delta", T.DoubleType()),
])


def run(spark: SparkSession, cfg: Config) -> RunResult:
    reads = {n: tables.current_version(spark, cfg, catalogue.of_source("silver", n).name)
             for n in ("ratings", "movies", "tags")}
    silver = {n: tables.read(spark, cfg, v.name, v.version) for n, v in reads.items()}
    cutoff = silver["ratings"].agg(F.max("event_time")).first()[0]
    previous = _covered_version(spark, cfg)
    stats = movie_stats(silver["ratings"], silver["movies"], cfg["gold.bayes_min_votes"], cutoff) \
        .withColumn("silver_version", F.lit(reads["ratings"].version).cast("long"))
    views = {
        catalogue.GOLD_MOVIE_STATS_BATCH.name: stats,
        catalogue.GOLD_GENRE_STATS.name: genre_stats(silver["ratings"], silver["movies"], cutoff),
        catalogue.GOLD_USER_ACTIVITY.name: user_activity(silver["ratings"], silver["tags"], cutoff),
    }
    result = RunResult(reads=list(reads.values()), notes=[f"batch views cover events up to {cutoff}"])
    for name, view in views.items():
        written = tables.overwrite(view, cfg, name)
        result.writes.append(written)
        result.counts[f"{name.split('.')[1]}.rows"] = written.rows
    _retire_realtime(spark, cfg, previous)
    return result


def _covered_version(spark: SparkSession, cfg: Config) -> int | None:
    """The silver.ratings version the current batch view was computed from."""
    if not tables.exists(spark, cfg, catalogue.GOLD_MOVIE_STATS_BATCH.name):
        return None
    batch = tables.read(spark, cfg, catalogue.GOLD_MOVIE_STATS_BATCH.name)
    return batch.agg(F.max("silver_version")).first()[0] if "silver_version" in batch.columns else None


def _retire_realtime(spark: SparkSession, cfg: Config, previous: int | None) -> None:
    """The new batch view covers every delta up to its silver version, so the serving view stops
    adding them the moment it is committed. Deltas the previous batch view covered are deleted
    here; the newer ones stay, for any reader still holding the previous batch view."""
    if not tables.exists(spark, cfg, REALTIME):
        tables.overwrite(spark.createDataFrame([], REALTIME_SCHEMA), cfg, REALTIME)
    elif previous is not None:
        tables.with_retry(lambda: tables.delta_table(spark, cfg, REALTIME).delete(F.col("silver_version") <= previous))
