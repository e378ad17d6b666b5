"""The search and the judgement of both models on one held-out split: each grid is searched on a
seeded validation split of the training ratings (the rating model by validation RMSE, the ranking
model by validation NDCG@k), the winners are refitted on all of it, then they and the two
baselines are measured on the same held-out ratings. Used by the train job and the benchmark."""
from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass

from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from common import paths, tables
from common.config import Config
from common.progress import progress
from jobs.ml.metrics import per_user_ranking, ranking_means, rating_errors
from jobs.ml.recommender import (KEYS, als_candidates, bias_candidates, eligible_items, fit_bias, fit_ranking,
                              fit_rating, popularity_candidates, split, top_k_unseen)

log = logging.getLogger("lakejobs.tuning")
CHECKPOINTS = "state/checkpoints/als"


@dataclass
class Holdout:
    """Training ratings and the held-out ones a top-k list is judged on: the held-out users with
    a relevant rating, against the eligible movies they have not rated in training."""

    train: DataFrame
    test: DataFrame
    k: int
    relevant: float
    users: DataFrame = None
    items: DataFrame = None

    @classmethod
    def of(cls, train: DataFrame, test: DataFrame, cfg: Config) -> "Holdout":
        users = test.where(F.col("rating") >= cfg["ml.relevant_rating"]).select("userId").distinct().cache()
        items = eligible_items(train, cfg["ml.min_item_ratings"]).cache()
        return cls(train, test, cfg["ml.top_k"], cfg["ml.relevant_rating"], users, items)

    def judge(self, candidates: DataFrame) -> DataFrame:
        """(userId, precision, ndcg) of candidates (userId, movieId, score) ranked, seen ones removed."""
        return per_user_ranking(top_k_unseen(candidates, self.train, self.k), self.test, self.relevant, self.k)

    def judge_model(self, ranking: PipelineModel) -> DataFrame:
        return self.judge(als_candidates(ranking, self.users, self.items))

    def release(self) -> None:
        self.users.unpersist()
        self.items.unpersist()


@dataclass
class Evaluation:
    ranking: PipelineModel     # implicit ALS: gold.recommendations is served from it
    rating: PipelineModel      # bias + ALS on residuals, clipped: predicts ratings
    ranking_grid: list[dict]   # each searched setting with its validation NDCG@k
    rating_grid: list[dict]    # each searched setting with its validation RMSE
    scores: dict               # {"ranking", "rating", "bias", "popularity"}: metrics on the held-out ratings
    per_user: DataFrame        # userId, precision, ndcg of the ranking model (cached; the gate pairs it)
    holdout: Holdout           # what the models were judged on (the gate judges the champion on it too)
    seconds: dict              # wall time of each search and final fit


def settings(**choices: list) -> list[dict]:
    """Every combination of the given choices, as one dict each."""
    return [dict(zip(choices, values)) for values in itertools.product(*choices.values())]


def rating_settings(cfg: Config) -> list[dict]:
    return settings(rank=cfg["ml.ranks"], regParam=cfg["ml.reg_params"], maxIter=cfg["ml.max_iters"])


def ranking_settings(cfg: Config) -> list[dict]:
    return settings(preference=cfg["ml.preferences"], rank=cfg["ml.ranking_ranks"],
                    regParam=cfg["ml.ranking_reg_params"], alpha=cfg["ml.ranking_alphas"],
                    maxIter=cfg["ml.ranking_max_iters"])


def fit_and_evaluate(train: DataFrame, test: DataFrame, cfg: Config) -> Evaluation:
    seed, blocks = cfg["ml.seed"], cfg["ml.blocks"]
    use_checkpoints(train.sparkSession, paths.join(tables.lake_root(cfg), CHECKPOINTS))
    seconds = {}
    fit, valid = (df.cache() for df in split(train, cfg["ml.test_fraction"], seed + 1))
    inner = Holdout.of(fit, valid, cfg)
    inner_bias = fit_bias(fit, cfg["ml.baseline_reg"])

    def validation_rmse(s: dict) -> float:
        return rating_errors(fit_rating(fit, inner_bias, seed, blocks, **s).transform(valid))["rmse"]

    def validation_ndcg(s: dict) -> float:
        ndcg = ranking_means(inner.judge_model(fit_ranking(fit, seed, blocks, **s)))["ndcg_at_k"]
        log.info("ranking %s: validation NDCG@%d %.4f", s, inner.k, ndcg)
        return ndcg

    began = time.monotonic()
    rating_grid = _search(rating_settings(cfg), "validation_rmse", validation_rmse, "rating model")
    seconds["rating_search"] = time.monotonic() - began
    began = time.monotonic()
    ranking_grid = _search(ranking_settings(cfg), "validation_ndcg", validation_ndcg, "ranking model")
    seconds["ranking_search"] = time.monotonic() - began
    fit.unpersist()
    valid.unpersist()
    inner.release()

    bias = fit_bias(train, cfg["ml.baseline_reg"])
    began = time.monotonic()
    rating = fit_rating(train, bias, seed, blocks, **best(rating_grid))
    seconds["rating_fit"] = time.monotonic() - began
    began = time.monotonic()
    ranking = fit_ranking(train, seed, blocks, **best(ranking_grid))
    seconds["ranking_fit"] = time.monotonic() - began

    held = Holdout.of(train, test, cfg)
    predicted = rating.transform(test).cache()  # the held-out ratings the rating model can score
    per_user = held.judge_model(ranking).cache()
    scores = {"rating": rating_errors(predicted),
              # the baseline's errors on the same ratings, so the two RMSEs compare
              "bias": rating_errors(bias.predict(predicted.select(*KEYS, "rating")))
              | ranking_means(held.judge(bias_candidates(bias, held.users, held.items))),
              "ranking": ranking_means(per_user),
              "popularity": ranking_means(held.judge(popularity_candidates(train, held.users, held.items)))}
    scores["rating"]["coverage"] = scores["rating"]["rows"] / max(1, test.count())
    predicted.unpersist()
    return Evaluation(ranking, rating, ranking_grid, rating_grid, scores, per_user, held, seconds)


def _search(grid: list[dict], score: str, measure, model: str) -> list[dict]:
    """Each setting with its validation score; a grid of one setting is not searched (None)."""
    if len(grid) == 1:
        return [grid[0] | {score: None}]
    return [s | {score: measure(s)} for s in progress(grid, f"{model} search: setting", log, label=_setting_text)]


def _setting_text(setting: dict) -> str:
    return ", ".join(f"{p}={v}" for p, v in setting.items())


def best(grid: list[dict]) -> dict:
    """The setting with the best validation score (lowest RMSE, or highest NDCG), without it."""
    if len(grid) == 1:
        chosen = grid[0]
    elif "validation_rmse" in grid[0]:
        chosen = min(grid, key=lambda g: g["validation_rmse"])
    else:
        chosen = max(grid, key=lambda g: g["validation_ndcg"])
    return {p: v for p, v in chosen.items() if not p.startswith("validation_")}


def use_checkpoints(spark: SparkSession, folder: str) -> None:
    """ALS cuts its lineage every checkpointInterval (10) iterations only when Spark has a checkpoint
    folder; without one, 15 iterations on ml-latest-small overflow the stack serialising a task."""
    try:
        context = spark.sparkContext
    except Exception:  # Spark Connect (Databricks serverless) has no SparkContext: its server manages lineage
        log.warning("no SparkContext: ALS runs without a checkpoint folder")
        return
    current = context.getCheckpointDir()
    # A folder the runner set stays. One set here for another lake (a session that moved to another lake,
    # as in tests) is replaced: that lake may be gone, or on a server that is not there any more.
    if current is None or (CHECKPOINTS in current and not current.startswith(folder.rstrip("/") + "/")):
        context.setCheckpointDir(folder)
