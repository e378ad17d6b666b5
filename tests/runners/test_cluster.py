"""A real Spark standalone cluster on 127.0.0.1 (a master and two 1-core workers, started here from
the pyspark installation): the batch full-load and the training job go to it through `make submit`
with the packaged code, run on executors of both workers, and give what a local run gives on the
same data."""
from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import time
import zipfile

import pytest
from chispa import assert_df_equality
from mlflow.tracking import MlflowClient
from pyspark.sql import functions as F

from common import tables, tracking
from common.catalogue import STATE_LEDGER
from common.local import spark_cluster, servers
from common.config import Config, load_config
from jobs.runners.runner import run_job
from tests.conftest import REPO

BRONZE = ["ratings", "movies", "tags", "links"]
INGEST_TIME = "_ingested_at"  # when a row was loaded: the one column two runs cannot share
# The driver and executors of a test live for seconds on a 2-core machine: JIT with C1 only, so that
# C2's compiler threads do not compete with the tasks.
SHORT_LIVED_JVMS = " ".join(f"--conf spark.conf.spark.{side}.extraJavaOptions=-XX:TieredStopAtLevel=1"
                            for side in ("driver", "executor"))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("cluster"))
    master = spark_cluster.up(folder, servers.free_port(), servers.free_port())
    yield master, spark_cluster.webui(folder)
    groups = [int(open(pid_file).read()) for pid_file in glob.glob(os.path.join(folder, "*.pid"))]
    spark_cluster.down(folder)
    # Every daemon's process group is gone (executors included). Not "the master's port is free": under
    # xdist another worker's JVM may bind the freed port (CI at f9babd6 found 33419 taken after down).
    assert len(groups) == 1 + spark_cluster.WORKERS
    assert not [g for g in groups if servers.group_alive(g)], \
        f"after down, the master's port is held by {servers.listener(int(master.rsplit(':', 1)[1]))}"


@pytest.fixture(scope="module")
def reference(spark, tmp_path_factory) -> Config:
    """The local run every cluster run is compared with: extract, full_load, silver, train in-process."""
    cfg = load_config("test", [f"lake.root={tmp_path_factory.mktemp('local') / 'lake'}"])
    for job in ("extract", "full_load", "silver", "train"):
        run_job(spark, cfg, job)
    return cfg


def lake_cfg(folder) -> Config:
    return load_config("test", [f"lake.root={folder / 'lake'}"])


def copy_from(reference: Config, cfg: Config, *parts: str) -> None:
    """The same input data for the cluster's lake: a copy of one folder of the local lake."""
    shutil.copytree(os.path.join(tables.lake_root(reference), *parts), os.path.join(tables.lake_root(cfg), *parts))


def submit(job: str, master: str, cfg: Config, dist) -> str:
    """`make submit` as a user types it; spark-submit's output (the driver's log included)."""
    conf = f"--conf lake.root={tables.lake_root(cfg)} {SHORT_LIVED_JVMS}"
    done = subprocess.run(["make", "-s", "submit", f"JOB={job}", "ENV=test", f"MASTER={master}", f"DIST={dist}",
                           f"CONF={conf}", "DATA_DIR="],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def executors_per_worker(webui: str, app_name: str) -> tuple[dict | None, dict]:
    """The finished application of that name from the master's JSON status, and how many of its
    executors each worker ran (from each worker's own JSON status, running or finished)."""
    state = spark_cluster.status(webui)
    apps = [a for a in state["completedapps"] if a["name"] == app_name]
    if len(apps) != 1:
        return None, {}
    ran = {}
    for worker in state["workers"]:
        own = spark_cluster.status(worker["webuiaddress"])
        ran[worker["id"]] = sum(e["appid"] == apps[0]["id"] for e in own["executors"] + own["finishedexecutors"])
    return apps[0], ran


def assert_ran_on_both_workers(webui: str, app_name: str) -> None:
    deadline = time.monotonic() + 20  # the master and workers learn of the app's end a moment after it
    while True:
        app, ran = executors_per_worker(webui, app_name)
        if (app and sorted(ran.values()) == [1, 1]) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert app and app["state"] == "FINISHED" and app["cores"] == 2, app
    assert sorted(ran.values()) == [1, 1], ran  # one executor on each of the two workers


def packaged_version(dist) -> str:
    with zipfile.ZipFile(next(p for p in dist.iterdir() if p.suffix == ".zip")) as z:
        return json.loads(z.read("common/_stamp.json"))["version"]


def comparable(spark, cfg: Config, name: str):
    """A table without its ingestion time, source files relative to the lake root."""
    df = tables.read(spark, cfg, name).drop(INGEST_TIME)
    if "_source_file" in df.columns:
        df = df.withColumn("_source_file", F.replace("_source_file", F.lit(tables.lake_root(cfg)), F.lit("<lake>")))
    return df


@pytest.mark.slow
def test_full_load_runs_on_both_workers_and_equals_the_local_run(spark, cluster, reference, tmp_path):
    master, webui = cluster
    cfg = lake_cfg(tmp_path)
    copy_from(reference, cfg, "landing")
    out = submit("full_load", master, cfg, tmp_path / "dist")
    assert "[full_load] wrote bronze.ratings" in out
    assert_ran_on_both_workers(webui, "lakejobs-full_load")
    for name in [f"{layer}.{source}" for source in BRONZE for layer in ("bronze", "quarantine")]:
        assert_df_equality(comparable(spark, cfg, name), comparable(spark, reference, name),
                           ignore_row_order=True, ignore_nullable=True)
    (run,) = tables.read(spark, cfg, STATE_LEDGER.name).collect()
    assert (run.job, run.status, run.lakejobs_version) == ("full_load", "succeeded", packaged_version(tmp_path / "dist"))


@pytest.mark.slow
def test_training_runs_on_both_workers_and_equals_the_local_run(spark, cluster, reference, tmp_path):
    master, webui = cluster
    cfg = lake_cfg(tmp_path)
    copy_from(reference, cfg, "silver", "ratings")
    out = submit("train", master, cfg, tmp_path / "dist")
    assert "registered movielens_als version 1" in out
    assert_ran_on_both_workers(webui, "lakejobs-train")
    local, remote = (only_run(c) for c in (reference, cfg))
    assert remote.data.params == local.data.params  # the split's sizes, the grid and the setting it chose
    scores = [m for m in local.data.metrics if m.startswith(("ranking_", "rating_", "bias_", "popularity_"))]
    assert {"rating_rmse", "ranking_ndcg_at_k", "bias_rmse", "popularity_ndcg_at_k"} <= set(scores)
    assert {m: remote.data.metrics[m] for m in scores} == pytest.approx({m: local.data.metrics[m] for m in scores},
                                                                       rel=1e-6)
    assert remote.data.tags["data.version"] == local.data.tags["data.version"]


def only_run(cfg: Config):
    uri, _ = tracking.embedded_store(cfg)
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name(cfg["ml.experiment"]).experiment_id])
    return run
