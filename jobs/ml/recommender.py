"""The recommender's pure parts: the held-out split, the two models (a rating model for RMSE, a
ranking model for the top-k), the two baselines (bias, popularity) and the candidates each ranks.
No MLflow and no tables here; the metrics are in jobs/ml/metrics.py, the search in jobs/ml/tuning.py."""
from __future__ import annotations

from dataclasses import dataclass

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import SQLTransformer
from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

KEYS = ["userId", "movieId"]


def split(ratings: DataFrame, test_fraction: float, seed: int) -> tuple[DataFrame, DataFrame]:
    """(train, test) by a seeded hash of the key: the same rating lands on the same side whatever
    the partitioning or row order, so the split is reproducible from (data version, seed)."""
    bucket = F.abs(F.xxhash64(*KEYS, F.lit(seed))) % 10_000
    marked = ratings.select(*KEYS, "rating").withColumn("_test", bucket < int(test_fraction * 10_000))
    return marked.where(~F.col("_test")).drop("_test"), marked.where("_test").drop("_test")


def als(seed: int, blocks: int = 10, **params) -> ALS:
    """ALS on explicit ratings (here: the bias model's residuals, which are signed, hence
    nonnegative=False); users or movies unseen in training get no prediction (dropped).
    blocks: partitions of the user and of the item factors (Spark's default 10; fewer is faster
    on small data, where every block is a task per iteration)."""
    return ALS(userCol="userId", itemCol="movieId", ratingCol="rating", coldStartStrategy="drop",
               nonnegative=False, seed=seed, numUserBlocks=blocks, numItemBlocks=blocks, **params)


def implicit_als(seed: int, blocks: int = 10, **params) -> ALS:
    """ALS on implicit feedback (Hu, Koren, Volinsky 2008): a rating r says 'prefers' when r > 0,
    with confidence 1 + alpha·|r|; r < 0 is a confident 'does not prefer', r = 0 no information."""
    return ALS(userCol="userId", itemCol="movieId", ratingCol="preference", implicitPrefs=True,
               coldStartStrategy="drop", seed=seed, numUserBlocks=blocks, numItemBlocks=blocks, **params)


# How a rating becomes the implicit signal r above (ml.preferences; bench/RESULTS.md measures them).
PREFERENCES = {
    "binary": "1.0",              # every rating is an equal 'watched it'
    "rating": "rating",           # watched it, more confidently the more it was liked
    "centered": "rating - 3.0",   # liked (> 3) or confidently disliked (< 3); a 3 says nothing
}


def fit_ranking(train: DataFrame, seed: int, blocks: int, preference: str, **params) -> PipelineModel:
    """The ranking model: a PipelineModel whose only stage is implicit ALS, fitted on the ratings
    turned into preferences. Its factors' dot product ranks movies; it predicts no rating."""
    prefs = train.select(*KEYS, F.expr(PREFERENCES[preference]).cast("float").alias("preference"))
    return Pipeline(stages=[implicit_als(seed, blocks, **params)]).fit(prefs)


def fit_rating(train: DataFrame, bias: "Bias", seed: int, blocks: int, **params) -> PipelineModel:
    """The rating model: the bias model plus ALS fitted on its residuals, clipped to [0.5, 5].

    The biases are folded into the factors (user: [p_u, mean + b_u, 1], movie: [q_i, 1, b_i]), so
    the model is one plain ALSModel whose dot product is mean + b_u + b_i + p_u·q_i, followed by
    the clip: it saves, loads and scores like any Spark model."""
    residuals = bias.raw(train).select(*KEYS, (F.col("rating") - F.col("raw")).alias("rating"))
    fitted = als(seed, blocks, **params).fit(residuals)
    users = fitted.userFactors.join(bias.users, F.col("id") == F.col("userId"), "left").select(
        "id", F.concat("features", F.array((F.lit(bias.mean) + F.coalesce("b_u", F.lit(0.0))).cast("float"),
                                           F.lit(1.0).cast("float"))).alias("features"))
    items = fitted.itemFactors.join(bias.items, F.col("id") == F.col("movieId"), "left").select(
        "id", F.concat("features", F.array(F.lit(1.0).cast("float"),
                                           F.coalesce("b_i", F.lit(0.0)).cast("float"))).alias("features"))
    combined = _als_model(fitted, users, items, fitted.rank + 2).setPredictionCol("raw_prediction")
    clip = SQLTransformer(statement="SELECT *, CAST(least(5.0, greatest(0.5, raw_prediction)) AS FLOAT) "
                                    "AS prediction FROM __THIS__")
    return PipelineModel(stages=[combined, clip])


def _als_model(template: ALSModel, users: DataFrame, items: DataFrame, rank: int) -> ALSModel:
    """An ALSModel with the template's settings and the given factors (Spark has no public
    constructor for it; the JVM class's is callable)."""
    jvm = users.sparkSession._jvm
    java = jvm.org.apache.spark.ml.recommendation.ALSModel(template.uid, rank, users._jdf, items._jdf)
    java = template._java_obj.copyValues(java, jvm.org.apache.spark.ml.param.ParamMap())
    model = ALSModel(java)
    model._transfer_params_from_java()
    return model


def als_of(model: PipelineModel) -> ALSModel:
    return model.stages[-1]


@dataclass
class Bias:
    """Baseline: global mean + regularised item bias + regularised user bias."""

    mean: float
    items: DataFrame   # movieId, b_i
    users: DataFrame   # userId, b_u

    def raw(self, pairs: DataFrame) -> DataFrame:
        """pairs with `raw`, mean + b_u + b_i unclipped (an unseen user or movie: bias 0)."""
        raw = F.lit(self.mean) + F.coalesce("b_u", F.lit(0.0)) + F.coalesce("b_i", F.lit(0.0))
        return (pairs.join(self.items, "movieId", "left").join(self.users, "userId", "left")
                .withColumn("raw", raw).drop("b_u", "b_i"))

    def predict(self, pairs: DataFrame) -> DataFrame:
        return self.raw(pairs).withColumn("prediction", F.least(F.lit(5.0), F.greatest(F.lit(0.5), "raw"))) \
            .drop("raw")


def fit_bias(train: DataFrame, reg: float) -> Bias:
    mean = train.agg(F.avg("rating")).first()[0]
    items = train.groupBy("movieId").agg((F.sum(F.col("rating") - mean) / (F.count("*") + reg)).alias("b_i"))
    users = (train.join(items, "movieId").groupBy("userId")
             .agg((F.sum(F.col("rating") - mean - F.col("b_i")) / (F.count("*") + reg)).alias("b_u")))
    return Bias(mean, items.cache(), users.cache())


def top_k_unseen(candidates: DataFrame, seen: DataFrame, k: int, score: str = "score") -> DataFrame:
    """Per user, the k best candidates (userId, movieId, score) not in seen (userId, movieId), ranked 1..k."""
    order = Window.partitionBy("userId").orderBy(F.col(score).desc(), F.col("movieId"))
    return (candidates.join(seen.select(*KEYS), KEYS, "left_anti")
            .withColumn("rank", F.row_number().over(order)).where(F.col("rank") <= k))


def eligible_items(ratings: DataFrame, min_ratings: int) -> DataFrame:
    """Movies with at least min_ratings ratings: the only ones recommended. ALS ranks rarely rated
    movies far too high (their factors rest on a handful of ratings); the floor is what makes its
    top-k useful (on ml-latest-small precision@10 goes from 0.001 with no floor to 0.08 at 20)."""
    return ratings.groupBy("movieId").agg(F.count("*").alias("n")).where(F.col("n") >= min_ratings).select("movieId")


def als_candidates(model: PipelineModel, users: DataFrame, items: DataFrame) -> DataFrame:
    """(userId, movieId, score): every given user against every given movie the model has factors
    for, scored by the factors' dot product (the predicted rating). Users × movies rows: the item
    side is broadcast, as ALS's own recommendForUserSubset scores every pair too."""
    m = als_of(model)
    u = m.userFactors.join(users.select(F.col("userId").alias("id")), "id", "left_semi") \
        .select(F.col("id").alias("userId"), F.col("features").alias("u"))
    i = m.itemFactors.join(items.select(F.col("movieId").alias("id")), "id", "left_semi") \
        .select(F.col("id").alias("movieId"), F.col("features").alias("i"))
    dot = F.aggregate(F.zip_with("u", "i", lambda a, b: a * b), F.lit(0.0), lambda acc, x: acc + x)
    return u.crossJoin(F.broadcast(i)).select("userId", "movieId", dot.alias("score"))


def bias_candidates(bias: Bias, users: DataFrame, items: DataFrame) -> DataFrame:
    """The same movies for everyone, by mean + item bias (a user's bias does not change the order)."""
    best = bias.items.join(items, "movieId", "left_semi") \
        .select("movieId", (F.lit(bias.mean) + F.col("b_i")).alias("score"))
    return users.select("userId").crossJoin(F.broadcast(best))


def popularity_candidates(train: DataFrame, users: DataFrame, items: DataFrame) -> DataFrame:
    """(userId, movieId, score): each given user against each given movie, scored by the movie's
    number of ratings in train (the most-popular baseline; top_k_unseen removes what a user rated)."""
    counts = train.join(items.select("movieId"), "movieId", "left_semi").groupBy("movieId") \
        .agg(F.count("*").cast("double").alias("score"))
    return users.select("userId").distinct().crossJoin(F.broadcast(counts))
