"""Job `score`: per user, the top ml.top_k + ml.candidate_buffer movies from
`models:/<name>@champion`, written to gold.recommendation_candidates in one atomic overwrite,
stamped with the model version and the silver.ratings version scored. Users are served the view
gold.recommendations (jobs/serving/serving.py): the first top_k candidates they have not rated since.

Every user in silver.ratings gets top_k + buffer rows, none of them a movie the user already rated.
When no model has ever passed the gate, every user gets the popularity list (source = 'popularity',
no model version) and the run says so. Users the model cannot serve — new since it was trained,
or with fewer than ml.min_user_ratings ratings — and any list short of its length get the fallback:
the serving view's top movies by Bayesian average (source = 'fallback_top_movies'), never a silent gap.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone

import mlflow
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from common import tables, tracking
from common.config import Config
from common.errors import SourceError
from common.ledger import RunResult
from jobs.serving import serving
from jobs.ml.recommender import als_candidates, als_of, eligible_items, popularity_candidates, top_k_unseen

SILVER = serving.RATINGS
TARGET = serving.CANDIDATES
log = logging.getLogger("lakejobs")


def run(spark: SparkSession, cfg: Config) -> RunResult:
    client = tracking.connect(cfg)
    name, k = cfg["ml.model_name"], cfg["ml.top_k"]
    depth = k + cfg["ml.candidate_buffer"]  # the spare ones refill a list when its user rates a movie on it
    for needed in (SILVER, serving.BATCH, serving.REALTIME):
        if not tables.exists(spark, cfg, needed):
            raise SourceError(f"{needed} does not exist yet: run the batch layer (up to gold) first")
    champion = tracking.champion(client, name)
    read = tables.current_version(spark, cfg, SILVER)
    ratings = tables.read(spark, cfg, SILVER, read.version).select("userId", "movieId").cache()
    activity = ratings.groupBy("userId").agg(F.count("*").alias("n"))
    items = eligible_items(ratings, cfg["ml.min_item_ratings"])
    if champion is None:
        why = f"no '{tracking.CHAMPION}' version of model {name} in {mlflow.get_tracking_uri()}: none has passed the gate yet"
        # INFO, not WARNING: a lake no model has passed yet is a normal state (a new lake, generated data
        # with no per-user taste), and the source column says it; WARN lines are for what needs a person.
        log.info("score: %s; serving the popularity list", why)
        origin = f"the popularity list (the most-rated movies a user has not rated; {why})"
        ranked = top_k_unseen(popularity_candidates(ratings, activity, items), ratings, depth) \
            .withColumn("source", F.lit("popularity")).cache()
        model_name, model_version = F.lit(None).cast("string"), F.lit(None).cast("int")
    else:
        origin = f"{name} v{champion.version} (champion)"
        # The version the alias names now, loaded by number: the rows are stamped with the model they came
        # from even if a training run moves the alias meanwhile.
        model = mlflow.spark.load_model(f"models:/{name}/{champion.version}")
        known = als_of(model).userFactors.select(F.col("id").alias("userId"))
        served = activity.where(F.col("n") >= cfg["ml.min_user_ratings"]).join(known, "userId", "left_semi") \
            .select("userId")
        ranked = top_k_unseen(als_candidates(model, served, items), ratings, depth) \
            .withColumn("source", F.lit("als")).cache()
        model_name, model_version = F.lit(name), F.lit(int(champion.version))
    candidates = _fill_with_fallback(spark, cfg, ranked, activity, ratings, depth).withColumns({
        "model_name": model_name, "model_version": model_version,
        "silver_version": F.lit(read.version).cast("long"), "scored_at": F.lit(datetime.now(timezone.utc))})
    written = tables.overwrite(candidates.select(
        "userId", "rank", "movieId", "score", "source", "model_name", "model_version", "silver_version", "scored_at"),
        cfg, TARGET)
    # What the served view holds right after this commit: each user's first k candidates.
    by_source = {r.source: r["count"] for r in tables.read(spark, cfg, TARGET, written.version)
                 .where(F.col("rank") <= k).groupBy("source").count().collect()}
    ratings.unpersist()
    ranked.unpersist()
    return RunResult(reads=[read], writes=[written], counts={f"rows.{s}": n for s, n in sorted(by_source.items())},
                     notes=[f"top {k} (+{depth - k} spare) per user from {origin} over {SILVER} v{read.version}, "
                            f"served by the view {serving.RECOMMENDATIONS}: "
                            + ", ".join(f"{n} rows from {s}" for s, n in sorted(by_source.items()))])


def _fill_with_fallback(spark: SparkSession, cfg: Config, ranked: DataFrame, activity: DataFrame,
                        ratings: DataFrame, k: int) -> DataFrame:
    """Complete every user's list (activity: userId, n ratings) to k with the serving view's top
    movies they have not rated."""
    have = ranked.groupBy("userId").agg(F.count("*").alias("have"))
    short = (activity.join(have, "userId", "left").withColumn("have", F.coalesce("have", F.lit(0)))
             .where(F.col("have") < k))
    # A user who rated n movies still has k unrated ones among the top k + n (if the catalogue has them).
    most_rated = short.agg(F.max("n")).first()[0] or 0
    top = (serving.movie_stats(spark, cfg).orderBy(F.col("bayes_avg").desc(), "movieId").limit(k + most_rated)
           .select("movieId", F.col("bayes_avg").alias("score")))
    filler = top_k_unseen(short.select("userId").crossJoin(top).join(ratings, ["userId", "movieId"], "left_anti")
                          .join(ranked.select("userId", "movieId"), ["userId", "movieId"], "left_anti"), ratings, k) \
        .join(short, "userId").where(F.col("rank") <= k - F.col("have")) \
        .select("userId", "movieId", "score", (F.col("rank") + F.col("have")).alias("rank"),
                F.lit("fallback_top_movies").alias("source"))
    return ranked.select("userId", "movieId", "score", "rank", "source").unionByName(filler)
