"""The training run's plots, logged as MLflow artifacts: the rating distribution, the rating
model's predicted against actual on held-out ratings, and each search's validation score per
setting (RMSE for the rating model, NDCG@k for the ranking model)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only: no display on a cluster or in CI

import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
from pyspark.sql import DataFrame  # noqa: E402

SAMPLE = 5000


def log_all(train: DataFrame, predictions: DataFrame, rating_grid: list[dict], ranking_grid: list[dict]) -> None:
    counts = train.groupBy("rating").count().orderBy("rating").toPandas()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar(counts["rating"].astype(str), counts["count"])
    ax.set(title="Ratings in the training split", xlabel="rating", ylabel="count")
    _log(fig, "plots/rating_distribution.png")

    sample = predictions.select("rating", "prediction").dropna().limit(SAMPLE).toPandas()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(sample["rating"], sample["prediction"], s=4, alpha=0.3)
    ax.plot([0.5, 5], [0.5, 5], color="grey", linewidth=1)
    ax.set(title="Rating model: predicted vs actual (held out)", xlabel="actual", ylabel="predicted")
    _log(fig, "plots/predicted_vs_actual.png")

    _bars(rating_grid, "validation_rmse", "Rating model: validation RMSE per setting", "plots/search_rmse.png")
    _bars(ranking_grid, "validation_ndcg", "Ranking model: validation NDCG@k per setting", "plots/search_ndcg.png")


def _bars(grid: list[dict], score: str, title: str, path: str) -> None:
    if len(grid) < 2:
        return  # a grid of one setting was not searched: nothing to compare
    labels = [", ".join(f"{k}={v}" for k, v in g.items() if k != score) for g in grid]
    fig, ax = plt.subplots(figsize=(8, 1 + 0.4 * len(grid)))
    ax.barh(labels, [g[score] for g in grid])
    ax.set(title=title, xlabel=score)
    _log(fig, path)


def _log(fig, path: str) -> None:
    fig.tight_layout()
    mlflow.log_figure(fig, path)
    plt.close(fig)
