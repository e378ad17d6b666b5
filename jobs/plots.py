"""The training run's plots, logged as MLflow artifacts: the rating distribution, predicted
against actual on held-out ratings, and validation RMSE per searched setting."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only: no display on a cluster or in CI

import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
from pyspark.sql import DataFrame  # noqa: E402

SAMPLE = 5000


def log_all(train: DataFrame, predictions: DataFrame, grid: list[dict]) -> None:
    counts = train.groupBy("rating").count().orderBy("rating").toPandas()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar(counts["rating"].astype(str), counts["count"])
    ax.set(title="Ratings in the training split", xlabel="rating", ylabel="count")
    _log(fig, "plots/rating_distribution.png")

    sample = predictions.select("rating", "prediction").dropna().limit(SAMPLE).toPandas()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(sample["rating"], sample["prediction"], s=4, alpha=0.3)
    ax.plot([0.5, 5], [0.5, 5], color="grey", linewidth=1)
    ax.set(title="Predicted vs actual (held out)", xlabel="actual", ylabel="predicted")
    _log(fig, "plots/predicted_vs_actual.png")

    labels = [", ".join(f"{k}={v}" for k, v in g.items() if k != "validation_rmse") for g in grid]
    fig, ax = plt.subplots(figsize=(7, 1 + 0.4 * len(grid)))
    ax.barh(labels, [g["validation_rmse"] for g in grid])
    ax.set(title="Validation RMSE per setting", xlabel="RMSE")
    _log(fig, "plots/search_rmse.png")


def _log(fig, path: str) -> None:
    fig.tight_layout()
    mlflow.log_figure(fig, path)
    plt.close(fig)
