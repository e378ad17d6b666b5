"""Job `score`: the top-K recommendations per user from `models:/<name>@champion`, written to
gold.recommendations in one atomic overwrite, stamped with the model version and the
silver.ratings version scored.

Every user in silver.ratings gets K rows, none of them a movie the user already rated. Users the
model cannot serve — new since it was trained, or with fewer than ml.min_user_ratings ratings —
and any list short of K get the fallback: the serving view's top movies by Bayesian average
(source = 'fallback_top_movies'), never a silent gap.
"""
from __future__ import annotations

from datetime import datetime, timezone

import mlflow
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from common import tables, tracking
from common.config import Config
from common.errors import SourceError
from common.ledger import RunResult
from jobs import serving
from jobs.recommender import als_candidates, als_of, eligible_items, top_k_unseen

SILVER = "silver.ratings"
TARGET = "gold.recommendations"


def run(spark: SparkSession, cfg: Config) -> RunResult:
    client = tracking.connect(cfg)
    name, k = cfg["ml.model_name"], cfg["ml.top_k"]
    champion = tracking.champion(client, name)
    if champion is None:
        raise SourceError(f"no '{tracking.CHAMPION}' version of model {name} in {mlflow.get_tracking_uri()}: "
                          "run the train job first")
    for needed in (SILVER, serving.BATCH, serving.REALTIME):
        if not tables.exists(spark, cfg, needed):
            raise SourceError(f"{needed} does not exist yet: run the batch layer (up to gold) first")
    # The version the alias names now, loaded by number: the rows are stamped with the model they came from
    # even if a training run moves the alias meanwhile.
    model = mlflow.spark.load_model(f"models:/{name}/{champion.version}")
    read = tables.current_version(spark, cfg, SILVER)
    ratings = tables.read(spark, cfg, SILVER, read.version).select("userId", "movieId").cache()
    activity = ratings.groupBy("userId").agg(F.count("*").alias("n"))
    known = als_of(model).userFactors.select(F.col("id").alias("userId"))
    served = activity.where(F.col("n") >= cfg["ml.min_user_ratings"]).join(known, "userId", "left_semi").select("userId")

    items = eligible_items(ratings, cfg["ml.min_item_ratings"])
    ranked = top_k_unseen(als_candidates(model, served, items), ratings, k) \
        .withColumn("source", F.lit("als")).cache()
    recommendations = _fill_with_fallback(spark, cfg, ranked, activity, ratings, k).withColumns({
        "model_name": F.lit(name), "model_version": F.lit(int(champion.version)),
        "silver_version": F.lit(read.version).cast("long"), "scored_at": F.lit(datetime.now(timezone.utc))})
    written = tables.overwrite(recommendations.select(
        "userId", "rank", "movieId", "score", "source", "model_name", "model_version", "silver_version", "scored_at"),
        cfg, TARGET)
    by_source = {r.source: r["count"] for r in tables.read(spark, cfg, TARGET, written.version)
                 .groupBy("source").count().collect()}
    ratings.unpersist()
    ranked.unpersist()
    return RunResult(reads=[read], writes=[written], counts={f"rows.{s}": n for s, n in sorted(by_source.items())},
                     notes=[f"top {k} per user from {name} v{champion.version} (champion) over {SILVER} "
                            f"v{read.version}: " + ", ".join(f"{n} rows from {s}" for s, n in sorted(by_source.items()))])


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
