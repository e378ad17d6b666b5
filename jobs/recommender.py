"""The recommender's pure parts: the held-out split, the ALS pipeline and its search, the bias
baseline, and the metrics both are judged by. No MLflow and no tables here."""
from __future__ import annotations

from dataclasses import dataclass

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.evaluation import RankingEvaluator, RegressionEvaluator
from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.ml.tuning import ParamGridBuilder, TrainValidationSplit, TrainValidationSplitModel
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
    """ALS on explicit ratings; users or movies unseen in training get no prediction (dropped).
    blocks: partitions of the user and of the item factors (Spark's default 10; fewer is faster
    on small data, where every block is a task per iteration)."""
    return ALS(userCol="userId", itemCol="movieId", ratingCol="rating", coldStartStrategy="drop",
               nonnegative=True, seed=seed, numUserBlocks=blocks, numItemBlocks=blocks, **params)


def als_search(ranks: list[int], reg_params: list[float], max_iters: list[int], seed: int,
               blocks: int = 10) -> TrainValidationSplit:
    """A Pipeline around ALS, searched over the grid by RMSE on a seeded validation split."""
    estimator = als(seed, blocks)
    grid = (ParamGridBuilder().addGrid(estimator.rank, ranks).addGrid(estimator.regParam, reg_params)
            .addGrid(estimator.maxIter, max_iters).build())
    return TrainValidationSplit(estimator=Pipeline(stages=[estimator]), estimatorParamMaps=grid,
                                evaluator=RegressionEvaluator(labelCol="rating", metricName="rmse"),
                                trainRatio=0.8, seed=seed, parallelism=1)


def grid_results(search: TrainValidationSplitModel) -> list[dict]:
    """Each searched setting with its validation RMSE."""
    rows = []
    for params, rmse in zip(search.getEstimatorParamMaps(), search.validationMetrics):
        rows.append({p.name: v for p, v in params.items()} | {"validation_rmse": rmse})
    return rows


def als_of(model: PipelineModel) -> ALSModel:
    return model.stages[-1]


@dataclass
class Bias:
    """Baseline: global mean + regularised item bias + regularised user bias."""

    mean: float
    items: DataFrame   # movieId, b_i
    users: DataFrame   # userId, b_u

    def predict(self, pairs: DataFrame) -> DataFrame:
        raw = F.lit(self.mean) + F.coalesce("b_u", F.lit(0.0)) + F.coalesce("b_i", F.lit(0.0))
        return (pairs.join(self.items, "movieId", "left").join(self.users, "userId", "left")
                .withColumn("prediction", F.least(F.lit(5.0), F.greatest(F.lit(0.5), raw))).drop("b_u", "b_i"))


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


def evaluate(predictions: DataFrame, recommended: DataFrame, test: DataFrame, relevant: float, k: int) -> dict:
    """RMSE and MAE of predictions (rating, prediction) on test; precision@k and NDCG@k of the
    recommended lists (userId, movieId, rank) against each test user's relevant movies."""
    scored = predictions.where(F.col("prediction").isNotNull() & ~F.isnan("prediction")).cache()
    metrics = {m: RegressionEvaluator(labelCol="rating", metricName=m).evaluate(scored) for m in ("rmse", "mae")}
    truth = test.where(F.col("rating") >= relevant).groupBy("userId") \
        .agg(F.collect_list(F.col("movieId").cast("double")).alias("label"))
    lists = recommended.groupBy("userId").agg(
        F.transform(F.array_sort(F.collect_list(F.struct("rank", "movieId"))), lambda r: r["movieId"].cast("double"))
        .alias("prediction"))
    joined = truth.join(lists, "userId", "left") \
        .withColumn("prediction", F.coalesce("prediction", F.array().cast("array<double>"))).cache()
    for name, metric in (("precision_at_k", "precisionAtK"), ("ndcg_at_k", "ndcgAtK")):
        metrics[name] = RankingEvaluator(predictionCol="prediction", labelCol="label", metricName=metric,
                                         k=k).evaluate(joined)
    metrics["coverage"] = scored.count() / max(1, test.count())  # share of test ratings the model could score
    scored.unpersist()
    joined.unpersist()
    return metrics
