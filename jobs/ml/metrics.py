"""How a recommender is judged on held-out ratings: RMSE and MAE of predicted ratings, precision@k
and NDCG@k of top-k lists (per user, so two models can be compared user by user), and the paired
bootstrap the gate decides with. tests/ml/test_ml.py checks each against a plain-Python oracle."""
from __future__ import annotations

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

KEYS = ["userId", "movieId"]


def rating_errors(predictions: DataFrame) -> dict:
    """RMSE, MAE and row count of (rating, prediction), over the rows with a prediction."""
    scored = predictions.where(F.col("prediction").isNotNull() & ~F.isnan("prediction"))
    error = F.col("prediction") - F.col("rating")
    row = scored.agg(F.sqrt(F.avg(error * error)).alias("rmse"), F.avg(F.abs(error)).alias("mae"),
                     F.count("*").alias("rows")).first()
    return {"rmse": row.rmse, "mae": row.mae, "rows": row.rows}


def per_user_ranking(recommended: DataFrame, test: DataFrame, relevant: float, k: int) -> DataFrame:
    """(userId, precision, ndcg) for every test user with at least one relevant held-out rating
    (rating >= relevant); recommended: (userId, movieId, rank). Binary relevance; NDCG's ideal is
    min(relevant, k) hits at the top; a user with no list scores 0."""
    truth = test.where(F.col("rating") >= relevant).select(*KEYS)
    wanted = truth.groupBy("userId").agg(F.count("*").alias("n_relevant"))
    hits = (recommended.where(F.col("rank") <= k).join(truth, KEYS, "left_semi").groupBy("userId")
            .agg(F.count("*").alias("hits"), F.sum(1.0 / F.log2(F.col("rank") + 1.0)).alias("dcg")))
    ideal = F.aggregate(F.sequence(F.lit(1), F.least(F.col("n_relevant"), F.lit(k))), F.lit(0.0),
                        lambda acc, i: acc + 1.0 / F.log2(i + 1.0))
    return (wanted.join(hits, "userId", "left").select(
        "userId", (F.coalesce("hits", F.lit(0)) / float(k)).alias("precision"),
        (F.coalesce("dcg", F.lit(0.0)) / ideal).alias("ndcg")))


def ranking_means(per_user: DataFrame) -> dict:
    row = per_user.agg(F.avg("precision").alias("p"), F.avg("ndcg").alias("n"), F.count("*").alias("users")).first()
    return {"precision_at_k": row.p or 0.0, "ndcg_at_k": row.n or 0.0, "users": row.users}


def paired_bootstrap(diffs: np.ndarray, samples: int, seed: int) -> dict:
    """Mean of the per-user differences and its 95% percentile interval over `samples` resamples
    of the users with replacement (seeded: the same inputs give the same bounds)."""
    diffs = np.asarray(diffs, dtype=float)
    if diffs.size == 0:
        return {"mean": 0.0, "lower": 0.0, "upper": 0.0, "users": 0}
    rng = np.random.default_rng(seed)
    means = np.empty(samples)
    for start in range(0, samples, 100):  # 100 resamples at a time: bounded memory for many users
        n = min(100, samples - start)
        means[start:start + n] = diffs[rng.integers(0, diffs.size, size=(n, diffs.size))].mean(axis=1)
    lower, upper = np.percentile(means, [2.5, 97.5])
    return {"mean": float(diffs.mean()), "lower": float(lower), "upper": float(upper), "users": int(diffs.size)}

