"""The serving layer: views that are right at every moment, the batch result corrected by what
the speed layer merged since.

gold.movie_stats = the batch view ⊕ the real-time deltas it does not cover. The batch view records
the silver.ratings version it was computed from; the view adds every real-time delta of a later
version. When the batch layer recomputes, its new batch view covers those deltas and they drop out
of the sum in the same commit — the retirement is atomic.

gold.recommendations = per user, the first ml.top_k of score's candidates (top_k + ml.candidate_buffer,
none rated at the scored version) that the user has not rated in silver.ratings now.
"""
from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from common import catalogue, tables
from common.config import Config

SERVING = catalogue.GOLD_MOVIE_STATS.name
BATCH = catalogue.GOLD_MOVIE_STATS_BATCH.name
REALTIME = catalogue.GOLD_MOVIE_STATS_REALTIME.name
MOVIES = catalogue.SILVER_MOVIES.name
RECOMMENDATIONS = catalogue.GOLD_RECOMMENDATIONS.name  # the view: what each user is served now
CANDIDATES = catalogue.GOLD_RECOMMENDATION_CANDIDATES.name  # score's table: top_k + ml.candidate_buffer per user
RATINGS = catalogue.SILVER_RATINGS.name
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

# Anti-joined with all of silver.ratings rather than the ratings merged since the scored version:
# the candidates hold no movie rated then, so both remove the same rows, and this one stays right
# across a batch recompute of silver. A filter on userId reaches silver too (the join key), so
# serving one user reads that user's ratings only. More than the buffer rated since scoring leaves
# that list short (k + buffer - rated rows) until the next score: never a movie already rated.
_RECOMMENDATIONS_SQL = """
SELECT userId, rank, movieId, score, source, model_name, model_version, silver_version, scored_at FROM (
  SELECT c.userId, CAST(ROW_NUMBER() OVER (PARTITION BY c.userId ORDER BY c.rank) AS INT) AS rank,
         c.movieId, c.score, c.source, c.model_name, c.model_version, c.silver_version, c.scored_at
  FROM {candidates} c LEFT ANTI JOIN {ratings} r ON c.userId = r.userId AND c.movieId = r.movieId)
WHERE rank <= {k}
"""


def _ref(cfg: Config, name: str) -> str:
    loc = tables.location(cfg, name)
    return loc if cfg["lake.catalog"] else f"delta.`{loc}`"


def serving_sql(cfg: Config) -> str:
    return _SQL.format(batch=_ref(cfg, BATCH), realtime=_ref(cfg, REALTIME), movies=_ref(cfg, MOVIES),
                       min_votes=int(cfg["gold.bayes_min_votes"]))


def movie_stats(spark: SparkSession, cfg: Config) -> DataFrame:
    """The serving view as a DataFrame (what `SELECT * FROM gold.movie_stats` returns)."""
    return spark.sql(serving_sql(cfg))


def recommendations_sql(cfg: Config) -> str:
    return _RECOMMENDATIONS_SQL.format(candidates=_ref(cfg, CANDIDATES), ratings=_ref(cfg, RATINGS),
                                       k=int(cfg["ml.top_k"]))


def recommendations(spark: SparkSession, cfg: Config) -> DataFrame:
    """What each user is served now, as a DataFrame (what `SELECT * FROM gold.recommendations` returns)."""
    return spark.sql(recommendations_sql(cfg))


def _views(cfg: Config) -> dict[str, tuple[tuple[str, ...], str]]:
    """Each view of the catalogue: the tables it reads, and its SQL."""
    return {SERVING: ((BATCH, REALTIME, MOVIES), serving_sql(cfg)),
            RECOMMENDATIONS: ((CANDIDATES, RATINGS), recommendations_sql(cfg))}


def register(spark: SparkSession, cfg: Config) -> list[str]:
    """Make every table readable by its logical name in Spark SQL, and create the serving views.

    With a lake folder the tables go into the session's catalog as external tables; with a
    catalog (Databricks) they are there already and only the view is (re)created.
    """
    registered = []
    views = _views(cfg)
    for layer in catalogue.LAYERS:
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {layer}")
    if not cfg["lake.catalog"]:
        for name in tables.known_tables(cfg):  # declared tables only: never a stale one under a view's name
            if tables.exists(spark, cfg, name):
                spark.sql(f"DROP TABLE IF EXISTS {name}")  # an external table: the data stays
                spark.sql(f"CREATE TABLE {name} USING delta LOCATION '{tables.location(cfg, name)}'")
                registered.append(name)
    for view, (reads, sql) in views.items():
        if all(tables.exists(spark, cfg, name) for name in reads):  # else the layers it combines are not there yet
            spark.sql(f"CREATE OR REPLACE VIEW {view} AS {sql}")
            registered.append(view)
    return registered


def top_movies(spark: SparkSession, cfg: Config, n: int = 10) -> list[str]:
    """The serving view's best movies by Bayesian average, as lines for people."""
    if not tables.exists(spark, cfg, BATCH) or not tables.exists(spark, cfg, REALTIME):
        return []
    rows = movie_stats(spark, cfg).orderBy(F.desc("bayes_avg"), "movieId").limit(n).collect()
    lines = [f"\nTop {n} movies in the serving view {SERVING} (batch view + real-time deltas):",
             f"  {'bayes_avg':>9} {'ratings':>7}  title"]
    lines += [f"  {r.bayes_avg:9.3f} {r.rating_count:7d}  {r.title} ({r.year})" for r in rows]
    return lines
