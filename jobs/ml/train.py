"""Job `train`: fit the two recommender models on silver.ratings — a ranking model (implicit ALS,
served by `score`) and a rating model (bias + ALS on its residuals) — measure them beside the two
baselines (bias, popularity) on the same held-out ratings, log everything to MLflow, register the
ranking model with the rating model in the same run, and move the `champion` alias only when the
gate says so (see `_gate`).

Which data made a model is recorded with it: the silver.ratings Delta version (tag and input
dataset), and the split's seed and fraction, so the evaluation can be rebuilt exactly.
"""
from __future__ import annotations

import logging
import warnings

import mlflow
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from common import catalogue, paths, tables, tracking
from common.config import Config
from common.errors import SourceError
from common.ledger import RunResult
from jobs.ml import plots
from jobs.ml.metrics import paired_bootstrap
from jobs.ml.recommender import KEYS, split
from jobs.ml.tuning import Evaluation, best, fit_and_evaluate

log = logging.getLogger("lakejobs.train")
SILVER = catalogue.SILVER_RATINGS.name
RATING_MODEL = "rating_model"  # the rating model's artifact path in the ranking model's run
SIGNATURE = ModelSignature(inputs=Schema([ColSpec("integer", c) for c in KEYS]),
                           outputs=Schema([ColSpec("float", "prediction")]))


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
        version = None if paths.is_s3(read.location) else str(read.version)
        with warnings.catch_warnings():  # MLflow's hint that int columns cannot hold nulls: these keys never are
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer", category=UserWarning)
            mlflow.log_input(mlflow.data.from_spark(ratings, version=version, name=SILVER, **source),
                             context="training")
        mlflow.log_params({f"ml.{key}": cfg[f"ml.{key}"] for key in (
            "seed", "test_fraction", "ranks", "reg_params", "max_iters", "preferences", "ranking_ranks",
            "ranking_reg_params", "ranking_alphas", "ranking_max_iters", "baseline_reg", "relevant_rating",
            "top_k", "min_item_ratings", "bootstrap_samples", "rmse_tolerance")}
            | {"train_rows": train.count(), "test_rows": test.count()})

        ev = fit_and_evaluate(train, test, cfg)
        mlflow.log_params({f"best.rating.{p}": v for p, v in best(ev.rating_grid).items()}
                          | {f"best.ranking.{p}": v for p, v in best(ev.ranking_grid).items()})
        mlflow.log_metrics({f"{model}_{m}": v for model, scores in ev.scores.items() for m, v in scores.items()}
                           | {f"seconds_{step}": s for step, s in ev.seconds.items()})
        mlflow.log_dict({"rating": ev.rating_grid, "ranking": ev.ranking_grid}, "search/grid.json")
        plots.log_all(train, ev.rating.transform(test), ev.rating_grid, ev.ranking_grid)

        # Requirements given, not inferred: inferring reloads the model in a new Python and Spark (~30 s).
        requirements = mlflow.spark.get_default_pip_requirements()
        mlflow.spark.log_model(ev.rating, artifact_path=RATING_MODEL, signature=SIGNATURE,
                               pip_requirements=requirements)
        info = mlflow.spark.log_model(ev.ranking, artifact_path="model", signature=SIGNATURE,
                                      registered_model_name=name, pip_requirements=requirements)
        version = int(info.registered_model_version)
        decision = _gate(client, name, version, ev, cfg)
        mlflow.set_tags({f"gate.{key}": value for key, value in decision.items()})
        for key, value in decision.items():
            client.set_model_version_tag(name, str(version), f"gate.{key}", str(value))
        client.set_model_version_tag(name, str(version), "rating_model", f"runs:/{active.info.run_id}/{RATING_MODEL}")
        run_id = active.info.run_id

    ev.per_user.unpersist()
    ev.holdout.release()
    train.unpersist()
    test.unpersist()
    s = ev.scores
    return RunResult(reads=[read], counts={"model.version": version, "promoted": int(decision["promoted"])}, notes=[
        f"ranking model ({_fmt(best(ev.ranking_grid))}): precision@{k} {s['ranking']['precision_at_k']:.4f}, "
        f"NDCG@{k} {s['ranking']['ndcg_at_k']:.4f} over {s['ranking']['users']} users",
        f"rating model ({_fmt(best(ev.rating_grid))}): RMSE {s['rating']['rmse']:.4f}, MAE {s['rating']['mae']:.4f}",
        f"bias baseline: RMSE {s['bias']['rmse']:.4f}, MAE {s['bias']['mae']:.4f}, "
        f"precision@{k} {s['bias']['precision_at_k']:.4f}, NDCG@{k} {s['bias']['ndcg_at_k']:.4f}",
        f"popularity baseline: precision@{k} {s['popularity']['precision_at_k']:.4f}, "
        f"NDCG@{k} {s['popularity']['ndcg_at_k']:.4f}",
        "searches " + ", ".join(f"{step} {t:.1f}s" for step, t in ev.seconds.items()) + f"; MLflow run {run_id}",
        f"registered {name} version {version}: {decision['reason']}"])


def _gate(client, name: str, version: int, ev: Evaluation, cfg: Config) -> dict:
    """Whether the challenger (this run's two models) becomes champion. It must beat, on the same
    held-out ratings, the bias baseline on RMSE and both baselines on NDCG@k — the first model
    too. Against a champion it must also raise NDCG@k with a paired bootstrap over users whose
    95% interval lies above 0, with an RMSE no worse than the champion's + ml.rmse_tolerance.
    The split is a seeded hash of the key, so no rating held out now was in the champion's
    training data (given the same ml.seed and ml.test_fraction)."""
    s, k = ev.scores, cfg["ml.top_k"]
    numbers = {"challenger_version": version, "ndcg": s["ranking"]["ndcg_at_k"], "rmse": s["rating"]["rmse"],
               "bias_ndcg": s["bias"]["ndcg_at_k"], "bias_rmse": s["bias"]["rmse"],
               "popularity_ndcg": s["popularity"]["ndcg_at_k"], "users": s["ranking"]["users"],
               "rows": s["rating"]["rows"]}
    failed = [f"RMSE {s['rating']['rmse']:.4f} does not beat the bias baseline's {s['bias']['rmse']:.4f}"
              ] if not s["rating"]["rmse"] < s["bias"]["rmse"] else []
    failed += [f"NDCG@{k} {s['ranking']['ndcg_at_k']:.4f} does not beat the {b} baseline's {s[b]['ndcg_at_k']:.4f}"
               for b in ("bias", "popularity") if not s["ranking"]["ndcg_at_k"] > s[b]["ndcg_at_k"]]
    current = tracking.champion(client, name)
    stays = f"champion stays v{current.version}" if current else "no champion yet"
    if current is not None:
        numbers["champion_version"] = int(current.version)
    if failed:
        return _decided(False, "; ".join(failed) + f": {stays}", numbers)
    if current is None:
        client.set_registered_model_alias(name, tracking.CHAMPION, str(version))
        return _decided(True, f"first model to beat both baselines (NDCG@{k} {numbers['ndcg']:.4f} vs "
                        f"{numbers['bias_ndcg']:.4f} bias, {numbers['popularity_ndcg']:.4f} popularity; RMSE "
                        f"{numbers['rmse']:.4f} vs {numbers['bias_rmse']:.4f} bias): champion now", numbers)

    # By version, not by alias: the alias could move between reading it and loading the model.
    champion = mlflow.spark.load_model(f"models:/{name}/{current.version}")
    paired = (ev.per_user.select("userId", F.col("ndcg").alias("challenger"))
              .join(ev.holdout.judge_model(champion).select("userId", F.col("ndcg").alias("champion")), "userId")
              .toPandas())
    gain = paired_bootstrap((paired.challenger - paired.champion).to_numpy(), cfg["ml.bootstrap_samples"],
                            cfg["ml.seed"])
    test = ev.holdout.test
    both = (ev.rating.transform(test).select(*KEYS, "rating", F.col("prediction").alias("challenger"))
            .join(_rating_model(client, current).transform(test.select(*KEYS))
                  .select(*KEYS, F.col("prediction").alias("champion")), KEYS)
            .where(~F.isnan("challenger") & ~F.isnan("champion")))
    errors = both.agg(_rmse("challenger"), _rmse("champion"), F.count("*").alias("rows")).first()
    numbers |= {"champion_ndcg": float(paired.champion.mean()), "ndcg_gain": gain["mean"],
                "ndcg_gain_lower95": gain["lower"], "ndcg_gain_upper95": gain["upper"],
                "bootstrap_samples": cfg["ml.bootstrap_samples"], "bootstrap_seed": cfg["ml.seed"],
                "paired_rows": errors.rows, "paired_rmse_challenger": errors.challenger,
                "paired_rmse_champion": errors.champion}
    ndcg_ok = gain["lower"] > 0
    rmse_ok = errors.challenger <= errors.champion + cfg["ml.rmse_tolerance"]
    promoted = ndcg_ok and rmse_ok
    if promoted:
        client.set_registered_model_alias(name, tracking.CHAMPION, str(version))
    reason = (f"NDCG@{k} gain over champion v{current.version} {gain['mean']:+.4f} (95% bootstrap interval "
              f"{gain['lower']:+.4f} .. {gain['upper']:+.4f} over {gain['users']} users: "
              f"{'above 0' if ndcg_ok else 'not above 0'}); RMSE {errors.challenger:.4f} vs {errors.champion:.4f} "
              f"on the same {errors.rows} ratings ({'within' if rmse_ok else 'beyond'} "
              f"+{cfg['ml.rmse_tolerance']}): " + ("champion now" if promoted else stays))
    return _decided(promoted, reason, numbers)


def _decided(promoted: bool, reason: str, numbers: dict) -> dict:
    log.info("gate: %s", reason)
    return {"promoted": promoted, "reason": reason} | numbers


def _rating_model(client, version):
    """The champion's rating model, logged in its run; a model from before there were two (one
    explicit ALS predicting ratings) is its own rating model."""
    if client.list_artifacts(version.run_id, RATING_MODEL):
        return mlflow.spark.load_model(f"runs:/{version.run_id}/{RATING_MODEL}")
    return mlflow.spark.load_model(f"models:/{version.name}/{version.version}")


def _rmse(prediction: str):
    return F.sqrt(F.avg((F.col(prediction) - F.col("rating")) ** 2)).alias(prediction)


def _fmt(setting: dict) -> str:
    return ", ".join(f"{p}={v}" for p, v in setting.items())
