"""The serving layer: gold.movie_stats = the batch view ⊕ the real-time deltas it does not cover.

The batch view records the silver.ratings version it was computed from; the view adds every
real-time delta of a later version. When the batch layer recomputes, its new batch view covers
those deltas and they drop out of the sum in the same commit — the retirement is atomic.
"""
from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from common import tables
from common.config import Config

SERVING = "gold.movie_stats"
BATCH = "gold.movie_stats_batch"
REALTIME = "gold.movie_stats_realtime"
_SQL = """
WITH batch AS (SELECT * FROM {batch}),
     covered AS (SELECT COALESCE(MAX(silver_version), -1) AS v FROM batch),
     recent AS (SELECT movieId, SUM(count_delta) AS dc, SUM(sum_delta) AS ds FROM {realtime}
                WHERE silver_version > (SELECT v FROM covered) GROUP BY movieId),
     combined AS (SELECT COALESCE(b.movieId, r.movieId) AS movieId,
                         COALESCE(b.rating_count, 0) + COALESCE(r.dc, 0) AS rating_count,
                         COALESCE(b.rating_sum, 0.0) + COALESCE(r.ds, 0.0) AS rating_sum
                  FROM batch b FULL OUTER JOIN recent r ON b.movieId = r.movieId),
     overall AS (SELECT SUM(rating_sum) / SUM(rating_count) AS mean FROM combined)
SELECT c.movieId, m.title, m.year, c.rating_count, c.rating_sum,
       c.rating_sum / c.rating_count AS rating_mean,
       (o.mean * {min_votes} + c.rating_sum) / (c.rating_count + {min_votes}) AS bayes_avg
FROM combined c CROSS JOIN overall o LEFT JOIN {movies} m ON c.movieId = m.movieId
WHERE c.rating_count > 0
"""


def _ref(cfg: Config, name: str) -> str:
    loc = tables.location(cfg, name)
    return loc if cfg["lake.catalog"] else f"delta.`{loc}`"


def serving_sql(cfg: Config) -> str:
    return _SQL.format(batch=_ref(cfg, BATCH), realtime=_ref(cfg, REALTIME), movies=_ref(cfg, "silver.movies"),
                       min_votes=int(cfg["gold.bayes_min_votes"]))


def movie_stats(spark: SparkSession, cfg: Config) -> DataFrame:
    """The serving view as a DataFrame (what `SELECT * FROM gold.movie_stats` returns)."""
    return spark.sql(serving_sql(cfg))


def register(spark: SparkSession, cfg: Config) -> list[str]:
    """Make every table readable by its logical name in Spark SQL, and create the serving view.

    With a lake folder the tables go into the session's catalog as external tables; with a
    catalog (Databricks) they are there already and only the view is (re)created.
    """
    registered = []
    for layer in tables.LAYERS:
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {layer}")
    if not cfg["lake.catalog"]:
        for name in tables.known_tables(cfg):
            if tables.exists(spark, cfg, name):
                spark.sql(f"DROP TABLE IF EXISTS {name}")  # an external table: the data stays
                spark.sql(f"CREATE TABLE {name} USING delta LOCATION '{tables.location(cfg, name)}'")
                registered.append(name)
    if not all(tables.exists(spark, cfg, name) for name in (BATCH, REALTIME, "silver.movies")):
        return registered  # the layers it combines are not there yet: no view to make
    spark.sql(f"CREATE OR REPLACE VIEW {SERVING} AS {serving_sql(cfg)}")
    return registered + [SERVING]


def top_movies(spark: SparkSession, cfg: Config, n: int = 10) -> list[str]:
    """The serving view's best movies by Bayesian average, as lines for people."""
    if not tables.exists(spark, cfg, BATCH) or not tables.exists(spark, cfg, REALTIME):
        return []
    rows = movie_stats(spark, cfg).orderBy(F.desc("bayes_avg"), "movieId").limit(n).collect()
    lines = [f"\nTop {n} movies in the serving view {SERVING} (batch view + real-time deltas):",
             f"  {'bayes_avg':>9} {'ratings':>7}  title"]
    lines += [f"  {r.bayes_avg:9.3f} {r.rating_count:7d}  {r.title} ({r.year})" for r in rows]
    return lines
