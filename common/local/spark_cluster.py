"""A real Spark standalone cluster on 127.0.0.1: one master and small workers, each a JVM started
from the pyspark installation (`spark-class` with the deploy Master and Worker).

For `make cluster-up` / `make cluster-down`, the tests and the benchmark that start their own.
Everything lives in one folder: each daemon's pid and log file, the workers' work dirs (executor
logs) and cluster.json (the master URL and web UI), which `down` and `status` read.

    python -m common.local.spark_cluster up   --dir lake/state/cluster --port 7077
    python -m common.local.spark_cluster down --dir lake/state/cluster
"""
from __future__ import annotations

import glob
import json
import os
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pyspark

from common.local import servers

SPARK_CLASS = os.path.join(os.path.dirname(pyspark.__file__), "bin", "spark-class")
MASTER, WORKER = "org.apache.spark.deploy.master.Master", "org.apache.spark.deploy.worker.Worker"
STATE_FILE = "cluster.json"
# Each worker small enough that two fit a 2-core machine beside the driver.
WORKERS, WORKER_CORES, WORKER_MEMORY = 2, 1, "2g"
DAEMON_MEMORY = "512m"  # the master's and workers' own heaps; executors get WORKER_MEMORY

free_port = servers.free_port


def up(folder: str, port: int = 7077, webui_port: int = 8080, workers: int = WORKERS, cores: int = WORKER_CORES,
       memory: str = WORKER_MEMORY, timeout_s: float = 90.0) -> str:
    """Start a master and `workers` workers; return the master URL once every worker has registered."""
    folder = os.path.abspath(folder)
    os.makedirs(folder, exist_ok=True)
    if servers.listening(webui_port):
        raise servers.ServerError(f"port {webui_port} on 127.0.0.1 is taken: choose another web UI port")
    # SPARK_LOCAL_IP: every daemon and executor binds to and advertises 127.0.0.1, never the host's address.
    env = {"SPARK_LOCAL_IP": "127.0.0.1", "SPARK_DAEMON_MEMORY": DAEMON_MEMORY, "SPARK_LOG_DIR": folder,
           "SPARK_PID_DIR": folder}
    url = f"spark://127.0.0.1:{port}"
    servers.start("master", [SPARK_CLASS, MASTER, "--host", "127.0.0.1", "--port", str(port),
                                  "--webui-port", str(webui_port)], folder, port, timeout_s, env)
    def start_worker(i: int) -> None:
        worker_port = free_port()
        servers.start(f"worker-{i}", [SPARK_CLASS, WORKER, "--host", "127.0.0.1", "--port", str(worker_port),
                                           "--webui-port", str(free_port()), "--cores", str(cores), "--memory", memory,
                                           "--work-dir", os.path.join(folder, f"worker-{i}"), url],
                           folder, worker_port, timeout_s, env)

    try:
        with ThreadPoolExecutor(workers) as pool:  # the JVMs start side by side
            list(pool.map(start_worker, range(1, workers + 1)))
        with open(os.path.join(folder, STATE_FILE), "w") as f:
            json.dump({"master": url, "webui": f"http://127.0.0.1:{webui_port}", "workers": workers}, f)
        _wait_for_workers(folder, workers, timeout_s)
    except BaseException:
        down(folder)
        raise
    return url


def down(folder: str) -> bool:
    """Stop the workers, then the master, started from folder; False if none was running."""
    workers = sorted(os.path.basename(p)[:-len(".pid")] for p in glob.glob(os.path.join(folder, "worker-*.pid")))
    stopped = [servers.stop(name, folder) for name in workers]
    return servers.stop("master", folder) or any(stopped)


def webui(folder: str) -> str:
    """The master's web UI address (http://127.0.0.1:<port>) of the cluster started from folder."""
    path = os.path.join(os.path.abspath(folder), STATE_FILE)
    if not os.path.exists(path):
        raise servers.ServerError(f"no cluster was started from {folder} (no {STATE_FILE})")
    with open(path) as f:
        return json.load(f)["webui"]


def status(address: str, timeout_s: float = 5.0) -> dict:
    """The JSON status of a master or worker web UI (http://127.0.0.1:<port>): the master's lists its
    workers, activeapps and completedapps; a worker's its executors and finishedexecutors."""
    with urllib.request.urlopen(f"{address.rstrip('/')}/json/", timeout=timeout_s) as r:
        return json.load(r)


def _wait_for_workers(folder: str, expected: int, timeout_s: float) -> None:
    deadline, alive = time.monotonic() + timeout_s, 0
    while time.monotonic() < deadline:
        try:
            alive = status(webui(folder)).get("aliveworkers", 0)
        except (urllib.error.URLError, OSError, ValueError):
            alive = 0  # the web UI starts a moment after the master's port
        if alive >= expected:
            return
        time.sleep(0.5)
    raise servers.ServerError(f"{alive} of {expected} workers registered with the master in {timeout_s:.0f} s; "
                                   f"see the logs in {folder}")


def _up_cli(folder: str, port: int) -> str:
    url = up(folder, port)
    return f"{url} (web UI {webui(folder)}; {WORKERS} workers × {WORKER_CORES} core, {WORKER_MEMORY})"


def main(argv: list[str] | None = None) -> int:
    return servers.main("spark standalone cluster", "common.local.spark_cluster", _up_cli, down,
                             os.path.join("lake", "state", "cluster"), 7077, argv)


if __name__ == "__main__":
    sys.exit(main())
