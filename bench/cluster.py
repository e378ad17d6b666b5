"""Section `cluster`: the full-load of 10M generated ratings on `local[2]` and on a Spark standalone
cluster of two 1-core workers on this machine (started here from the pyspark installation), in one
run. On one 2-core machine the cluster is not expected to win: the figure is the cost of the
distributed path (executors in their own JVMs, tasks and results over the network, the jars served
by the driver)."""
from __future__ import annotations

import glob
import os
import time

from bench import batch
from bench.harness import DRIVER_MEMORY, LOAD, WORK, Metric, run_case
from common.local import spark_cluster, servers

RATINGS = 10_000_000
EXECUTOR_MEMORY = spark_cluster.WORKER_MEMORY  # each worker's whole offer: 2 × 2g beside local mode's 4g heap


def _executors(webui: str, app_id: str) -> dict[str, int]:
    """How many executors of the application each worker ran, from the workers' own JSON status."""
    ran = {}
    for worker in spark_cluster.status(webui)["workers"]:
        own = spark_cluster.status(worker["webuiaddress"])
        ran[worker["id"]] = sum(e["appid"] == app_id for e in own["executors"] + own["finishedexecutors"])
    return ran


def _cluster_cpu_s(folder: str) -> float:
    """CPU seconds used so far by the cluster's processes: the master, the workers and the executors
    they started and reaped (each daemon leads its own process group, see common/local/servers)."""
    groups = {int(open(p).read()) for p in glob.glob(os.path.join(folder, "*.pid"))}
    total = 0.0
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = open(stat).read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        if int(fields[2]) in groups:  # pgrp; then utime, stime, cutime, cstime
            total += sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return total


def _app(webui: str) -> dict:
    deadline = time.monotonic() + 30
    while True:
        apps = spark_cluster.status(webui)["completedapps"]
        if apps or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if len(apps) != 1:
        raise RuntimeError(f"expected one finished application on the bench cluster, found {len(apps)}")
    return apps[0]


def run() -> tuple[list[Metric], list[str]]:
    tag = batch.label(RATINGS)
    raw_root = batch.prepare(RATINGS)
    conf = batch.generator_conf(RATINGS)
    print(f"  {tag}: our full_load on local[2], then on the standalone cluster, each in a fresh JVM", flush=True)
    local = run_case("bench.batch:full_load", os.path.join(WORK, "cluster-local"), conf + ["spark.master=local[2]"],
                     raw_root=raw_root)
    folder = os.path.join(WORK, "cluster-daemons")
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"  # the case's driver binds where the workers are
    began = time.monotonic()
    master = spark_cluster.up(folder, servers.free_port(), servers.free_port())
    started_s = time.monotonic() - began
    try:
        webui = spark_cluster.webui(folder)
        cluster_cpu = _cluster_cpu_s(folder)
        remote = run_case("bench.batch:full_load", os.path.join(WORK, "cluster-standalone"),
                          conf + [f"spark.master={master}", f"spark.conf.spark.executor.memory={EXECUTOR_MEMORY}"],
                          raw_root=raw_root)
        app = _app(webui)
        ran = _executors(webui, app["id"])
        cluster_cpu = _cluster_cpu_s(folder) - cluster_cpu
    finally:
        spark_cluster.down(folder)
    if sorted(ran.values()) != [1, 1]:
        raise RuntimeError(f"the application did not run one executor on each worker: {ran}")
    if local["loaded"] != remote["loaded"]:
        raise RuntimeError(f"{tag}: local[2] loaded {local['loaded']} rows, the cluster {remote['loaded']}")
    # The harness counts every process but the case's own as "other": here the executors are ours.
    remote["other_cores"] = max(0.0, remote["other_cores"] - cluster_cpu / remote["wall_s"])
    LOAD[-1] = (remote["wall_s"], remote["other_cores"] * remote["wall_s"])
    ratio = remote["seconds"] / local["seconds"]
    print(f"  {tag}: local[2] {local['seconds']:.1f} s, cluster {remote['seconds']:.1f} s, cluster / local "
          f"{ratio:.2f}", flush=True)
    metrics = [
        Metric("cluster", f"{tag}: input rows (4 files)", local["rows"], "rows"),
        Metric("cluster", f"{tag}: full_load wall time, local[2]", round(local["seconds"], 1), "s"),
        Metric("cluster", f"{tag}: full_load wall time, standalone cluster (2 workers × 1 core)",
               round(remote["seconds"], 1), "s"),
        Metric("cluster", f"{tag}: cluster / local[2] wall time", round(ratio, 2), "ratio"),
        Metric("cluster", f"{tag}: rows/s, local[2] / cluster",
               f"{local['rows'] / local['seconds']:,.0f} / {remote['rows'] / remote['seconds']:,.0f}", "rows/s"),
        Metric("cluster", f"{tag}: whole case incl. JVM start, local[2] / cluster",
               f"{local['wall_s']:.1f} / {remote['wall_s']:.1f}", "s"),
        Metric("cluster", f"{tag}: CPU time, local[2] (driver) / cluster (driver + master, workers, executors)",
               f"{local['process_cpu_s']:.1f} / {remote['process_cpu_s'] + cluster_cpu:.1f}", "s"),
        Metric("cluster", "cluster start (master + 2 workers registered)", round(started_s, 1), "s"),
        Metric("cluster", f"{tag}: executors of the application per worker", " / ".join(map(str, ran.values())),
               "executors"),
        Metric("cluster", f"{tag}: cores other processes kept busy, local[2] / cluster",
               f"{local['other_cores']:.1f} / {remote['other_cores']:.1f}", "cores"),
    ]
    notes = [f"The same job as the batch section (`lakejobs run full_load` on the same cached {tag} raw zone), run "
             f"twice: on `local[2]` (driver and executor one JVM, spark.driver.memory={DRIVER_MEMORY}) and with "
             f"spark.master set to a standalone cluster started for the section from the pyspark installation: a "
             f"master and two workers on 127.0.0.1, each worker 1 core and {spark_cluster.WORKER_MEMORY}, one "
             f"executor of {EXECUTOR_MEMORY} on each. Both have two task slots on the same 2 cores, so the ratio is "
             "the cost of the distributed path, not a speed-up. Times cover the job only (sensor, load, "
             "reconciliation, ledger row), not the JVMs' start; the cluster's start is listed apart. The "
             "executors per worker come from each worker's JSON status. The cluster's CPU time (master, workers, "
             "executors, from /proc) counts as the case's, not as other processes' load."]
    return metrics, notes
