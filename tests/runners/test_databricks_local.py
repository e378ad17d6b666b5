"""The Databricks overlay's code paths, run here: the whole pipeline with tables addressed by catalog name
(<catalog>.<layer>.<table>, the schemas created when missing) and the lake's files under a Unity
Catalog volume path. What only a workspace has is swapped for its local stand-in, nothing else: the
catalog is the session's own (spark_catalog, tables in a warehouse folder), /Volumes is a temporary
folder, MLflow is the embedded store, Delta comes from .jars and the data is the generator's tiny set."""
from __future__ import annotations

import os
import subprocess

import pytest
from mlflow.tracking import MlflowClient

from common import raw_zone
from common.catalogue import (
    BRONZE_RATINGS, BRONZE_RATING_EVENTS, GOLD_RECOMMENDATION_CANDIDATES, QUARANTINE_RATINGS, SILVER_RATINGS,
    STATE_LEDGER)
from common.config import load_config
from jobs.runners.pipeline import load_tasks
from tests.conftest import LAKEJOBS

TEST = load_config("test")


@pytest.mark.slow
def test_the_databricks_overlay_runs_the_whole_pipeline(spark, tmp_path):
    overlay = load_config("databricks")
    assert overlay["lake.root"].startswith("/Volumes/") and overlay["lake.catalog"]
    root, warehouse = f"{tmp_path}{overlay['lake.root']}", tmp_path / "warehouse"
    local_stand_ins = {
        "lake.root": root, "lake.catalog": "spark_catalog",
        "spark.conf.spark.sql.warehouse.dir": str(warehouse),
        "spark.jars_dir": ".jars", "spark.jar_groups": "[delta]", "spark.master": "local[2]",
        "ml.tracking_uri": "null", "ml.registry_uri": "null",
        # the test overlay's sizes: tiny data, a small model search
        **{key: TEST[key] for key in ("spark.shuffle_partitions", "generator.ratings", "generator.users",
                                      "generator.movies", "generator.tags", "ml.ranks", "ml.reg_params",
                                      "ml.max_iters", "ml.min_item_ratings", "ml.preferences", "ml.ranking_ranks",
                                      "ml.ranking_alphas", "ml.ranking_max_iters", "ml.blocks")},
        "stream.holdback_fraction": 0.05,
    }
    args = [arg for key, value in local_stand_ins.items() for arg in ("--conf", f"{key}={value}")]
    done = subprocess.run([LAKEJOBS, "pipeline", "--env", "databricks", *args],
                          capture_output=True, text=True, timeout=3600)  # a hang guard: on a loaded 2-core machine the pipeline has taken over 30 min
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]

    cfg = load_config("databricks", [f"{key}={value}" for key, value in local_stand_ins.items()])
    # The files are under the volume path; no table was written there as a path.
    snapshot = raw_zone.find(cfg)
    assert snapshot is not None and snapshot.path.startswith(f"{root}/landing/")
    assert not any(os.path.exists(os.path.join(root, layer)) for layer in ("bronze", "silver", "gold"))
    # The tables are the catalog's managed tables, one schema per layer.
    def table(name: str):
        layer, t = name.split(".")
        return spark.read.format("delta").load(str(warehouse / f"{layer}.db" / t))

    ledger = table(STATE_LEDGER.name).collect()
    assert sorted(r.job for r in ledger) == sorted(load_tasks()) and {r.status for r in ledger} == {"succeeded"}
    assert {r.env for r in ledger} == {"databricks"}
    landed = snapshot.data_rows("ratings.csv")
    assert table(BRONZE_RATINGS.name).count() + table(QUARANTINE_RATINGS.name).count() == landed
    events = table(BRONZE_RATING_EVENTS.name)
    assert events.count() == snapshot.data_rows("ratings_holdback.csv")  # the speed layer took every held-back event
    keys = table(BRONZE_RATINGS.name).select("userId", "movieId").union(events.select("userId", "movieId")).distinct()
    assert table(SILVER_RATINGS.name).count() == keys.count()  # latest per key over the batch and the stream
    assert table(GOLD_RECOMMENDATION_CANDIDATES.name).count() > 0
    # The model is in the embedded registry, under the overlay's three-part name.
    store = f"sqlite:///{root}/state/mlflow/mlflow.db"
    model = MlflowClient(tracking_uri=store, registry_uri=store).get_registered_model(overlay["ml.model_name"])
    assert "champion" in model.aliases
