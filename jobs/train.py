"""Job `train`: fit the ALS recommender on silver.ratings, judge it against a bias baseline, log
everything to MLflow, register it, and move the `champion` alias only when it beats the current
champion on the same held-out ratings.

Which data made a model is recorded with it: the silver.ratings Delta version (tag and input
dataset), and the split's seed and fraction, so the evaluation can be rebuilt exactly.
"""
from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass

import mlflow
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema
from pyspark.ml import Pipeline, PipelineModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from common import lake_files, tables, tracking
from common.config import Config
from common.errors import SourceError
from common.ledger import RunResult
from jobs import plots
from jobs.recommender import (KEYS, als, als_candidates, als_search, bias_candidates, eligible_items, evaluate,
                              fit_bias, grid_results, split, top_k_unseen)

log = logging.getLogger("lakejobs.train")
SILVER = "silver.ratings"
CHECKPOINTS = "state/checkpoints/als"


def run(spark: SparkSession, cfg: Config) -> RunResult:
    if not tables.exists(spark, cfg, SILVER):
        raise SourceError(f"{SILVER} does not exist yet: run the batch layer (extract, full_load, silver) first")
    client = tracking.connect(cfg)
    read = tables.current_version(spark, cfg, SILVER)
    ratings = tables.read(spark, cfg, SILVER, read.version)
    train, test = (df.cache() for df in split(ratings, cfg["ml.test_fraction"], cfg["ml.seed"]))
    name, k = cfg["ml.model_name"], cfg["ml.top_k"]
    with mlflow.start_run(run_name=f"als on {SILVER} v{read.version}") as active:
        mlflow.set_tags({"data.table": SILVER, "data.location": read.location, "data.version": read.version})
        source = {"table_name": read.location} if cfg["lake.catalog"] else {"path": read.location}
        # MLflow recognises a Delta path on a local disk only; on S3 the version is in the tags above
        version = None if lake_files.is_remote(read.location) else str(read.version)
        with warnings.catch_warnings():  # MLflow's hint that int columns cannot hold nulls: these keys never are
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer", category=UserWarning)
            mlflow.log_input(mlflow.data.from_spark(ratings, version=version, name=SILVER, **source),
                             context="training")
        mlflow.log_params({"seed": cfg["ml.seed"], "test_fraction": cfg["ml.test_fraction"],
                           "grid.rank": cfg["ml.ranks"], "grid.regParam": cfg["ml.reg_params"],
                           "grid.maxIter": cfg["ml.max_iters"], "baseline_reg": cfg["ml.baseline_reg"],
                           "relevant_rating": cfg["ml.relevant_rating"], "k": k,
                           "min_item_ratings": cfg["ml.min_item_ratings"],
                           "train_rows": train.count(), "test_rows": test.count()})

        result = fit_and_evaluate(train, test, cfg)
        model, grid, best = result.model, result.grid, result.best
        als_scores, base_scores, search_s, fit_s = result.als, result.baseline, result.search_s, result.fit_s
        mlflow.log_params({f"best.{p}": v for p, v in _params(best).items()})
        metrics = {f"als_{m}": v for m, v in als_scores.items()} | {f"baseline_{m}": v for m, v in base_scores.items()}
        metrics |= {"search_seconds": search_s, "fit_seconds": fit_s}
        mlflow.log_metrics(metrics)
        mlflow.log_dict({"settings": grid}, "search/grid.json")
        plots.log_all(train, model.transform(test), grid)

        signature = ModelSignature(inputs=Schema([ColSpec("integer", c) for c in KEYS]),
                                   outputs=Schema([ColSpec("float", "prediction")]))
        # Requirements given, not inferred: inferring reloads the model in a new Python and Spark (~30 s).
        info = mlflow.spark.log_model(model, artifact_path="model", signature=signature, registered_model_name=name,
                                      pip_requirements=mlflow.spark.get_default_pip_requirements())
        version = int(info.registered_model_version)
        decision = _gate(client, name, version, model, test)
        mlflow.set_tags({f"gate.{key}": value for key, value in decision.items()})
        for key, value in decision.items():
            client.set_model_version_tag(name, str(version), f"gate.{key}", str(value))
        run_id = active.info.run_id

    train.unpersist()
    test.unpersist()
    return RunResult(reads=[read], counts={"model.version": version, "promoted": int(decision["promoted"])}, notes=[
        f"ALS {_fmt(best)}: RMSE {als_scores['rmse']:.4f}, MAE {als_scores['mae']:.4f}, "
        f"precision@{k} {als_scores['precision_at_k']:.4f}, NDCG@{k} {als_scores['ndcg_at_k']:.4f}",
        f"bias baseline: RMSE {base_scores['rmse']:.4f}, MAE {base_scores['mae']:.4f}, "
        f"precision@{k} {base_scores['precision_at_k']:.4f}, NDCG@{k} {base_scores['ndcg_at_k']:.4f}",
        f"search {search_s:.1f}s over {len(grid)} settings, final fit {fit_s:.1f}s; MLflow run {run_id}",
        f"registered {name} version {version}: {decision['reason']}"])


@dataclass
class Evaluation:
    model: PipelineModel
    grid: list[dict]      # each searched setting with its validation RMSE
    best: dict
    als: dict             # metrics of the tuned ALS on the held-out ratings
    baseline: dict        # the same metrics for the bias baseline
    search_s: float
    fit_s: float


def fit_and_evaluate(train: DataFrame, test: DataFrame, cfg: Config) -> Evaluation:
    """Search the grid on train, refit the winner, and judge it and the bias baseline on test
    (also what the benchmark runs on the public datasets)."""
    k, relevant = cfg["ml.top_k"], cfg["ml.relevant_rating"]
    use_checkpoints(train.sparkSession, tables.join(tables.lake_root(cfg), CHECKPOINTS))
    began = time.monotonic()
    search = als_search(cfg["ml.ranks"], cfg["ml.reg_params"], cfg["ml.max_iters"], cfg["ml.seed"],
                        cfg["ml.blocks"]).fit(train)
    search_s = time.monotonic() - began
    grid = grid_results(search)
    best = min(grid, key=lambda g: g["validation_rmse"])
    began = time.monotonic()
    # The search refits its winner too; it is fitted again alone so the final fit is timed on its own.
    model = Pipeline(stages=[als(cfg["ml.seed"], cfg["ml.blocks"], **_params(best))]).fit(train)
    fit_s = time.monotonic() - began
    users, items = test.select("userId").distinct(), eligible_items(train, cfg["ml.min_item_ratings"])
    predicted = model.transform(test).cache()  # coldStartStrategy drop: the ratings ALS can score
    als_scores = evaluate(predicted, top_k_unseen(als_candidates(model, users, items), train, k), test, relevant, k)
    bias = fit_bias(train, cfg["ml.baseline_reg"])
    # The baseline's errors on the same ratings as ALS's, so the two RMSEs compare.
    base_scores = evaluate(bias.predict(predicted.select(*KEYS, "rating")),
                           top_k_unseen(bias_candidates(bias, users, items), train, k), test, relevant, k)
    predicted.unpersist()
    return Evaluation(model, grid, best, als_scores, base_scores, search_s, fit_s)


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


def _gate(client, name: str, version: int, challenger, test: DataFrame) -> dict:
    """Challenger vs champion on the same held-out ratings: those both models can score. The split
    is a seeded hash of the key, so no rating held out now was in the champion's training data
    (given the same ml.seed and ml.test_fraction)."""
    current = tracking.champion(client, name)
    scored = challenger.transform(test).withColumnRenamed("prediction", "challenger")
    if current is None or int(current.version) == version:
        errors = scored.agg(_rmse("challenger"), F.count("*").alias("rows")).first()
        client.set_registered_model_alias(name, tracking.CHAMPION, str(version))
        return {"promoted": True, "reason": "first model: champion", "challenger_version": version,
                "challenger_rmse": errors.challenger, "rows": errors.rows}
    # By version, not by alias: the alias could move between reading it and loading the model.
    champion = mlflow.spark.load_model(f"models:/{name}/{current.version}")
    both = scored.join(champion.transform(test.select(*KEYS)).withColumnRenamed("prediction", "champion"), KEYS)
    errors = both.agg(_rmse("challenger"), _rmse("champion"), F.count("*").alias("rows")).first()
    promoted = errors.challenger < errors.champion
    if promoted:
        client.set_registered_model_alias(name, tracking.CHAMPION, str(version))
    verdict = "beats" if promoted else "does not beat"
    reason = (f"challenger RMSE {errors.challenger:.4f} {verdict} champion v{current.version} RMSE "
              f"{errors.champion:.4f} on the same {errors.rows} held-out ratings: "
              + ("champion now" if promoted else f"champion stays v{current.version}"))
    log.info(reason)
    return {"promoted": promoted, "reason": reason, "challenger_version": version,
            "champion_version": int(current.version), "challenger_rmse": errors.challenger,
            "champion_rmse": errors.champion, "rows": errors.rows}


def _rmse(prediction: str):
    return F.sqrt(F.avg((F.col(prediction) - F.col("rating")) ** 2)).alias(prediction)


def _params(setting: dict) -> dict:
    return {p: v for p, v in setting.items() if p != "validation_rmse"}


def _fmt(best: dict) -> str:
    return ", ".join(f"{p}={v}" for p, v in _params(best).items())
