"""Run a job the same way for every runner: time it, record it in the ledger, report it."""
from __future__ import annotations

import logging
import os
import signal
import threading
from datetime import date
from typing import Callable

from pyspark import InheritableThread
from pyspark.sql import SparkSession

from common import ledger, version
from common.config import Config
from common.ledger import RunRecord, RunResult
from jobs.runners import registry

log = logging.getLogger("lakejobs")


class Interrupted(KeyboardInterrupt):
    """A job stopped by SIGINT (Ctrl-C) or SIGTERM. A KeyboardInterrupt, so that no `except Exception`
    in a job (a retry loop) swallows it; the command exits with the shell's status 128 + signum."""

    def __init__(self, signum: int):
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


def run_job(spark: SparkSession, cfg: Config, name: str, logical_date: date | None = None) -> RunResult:
    """Run one job; its ledger row says succeeded or failed (with the error) either way, and carries
    the logical date an orchestrator ran it for (Airflow's ds), if any."""
    job = registry.get(name)
    run = RunRecord(job=name, env=cfg.env, params=cfg.flat(), logical_date=logical_date)
    log.info("job %s: run %s started (lakejobs %s from %s)", name, run.run_id, version(),
             os.path.dirname(os.path.dirname(os.path.dirname(registry.__file__))))
    try:
        dated = name in registry.DATED  # the others keep the logical date in the ledger row only
        result = _interruptible(spark, lambda: job(spark, cfg, logical_date) if dated else job(spark, cfg))
    except KeyboardInterrupt as e:
        _record(spark, cfg, run, None, "interrupted", str(e) or "interrupted by SIGINT")
        raise
    except Exception as e:
        _record(spark, cfg, run, None, "failed", f"{type(e).__name__}: {e}")
        raise
    _record(spark, cfg, run, result, "succeeded")
    return result


def _interruptible(spark: SparkSession, work: Callable[[], RunResult]) -> RunResult:
    """Run `work` so that SIGINT and SIGTERM raise Interrupted here, with the JVM connection free.

    Python's default for SIGTERM ends the process with no cleanup, and an exception raised by a
    handler while the main thread waits inside a py4j call leaves that connection out of step (the
    next call reads the abandoned call's answer). So the job runs in a worker thread, the main
    thread waits and takes the signal, cancels the Spark jobs under way and leaves the worker (a
    daemon) to end with the process. Not on the main thread, no handler can be set: run directly.
    """
    if threading.current_thread() is not threading.main_thread():
        return work()
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["result"] = work()
        except BaseException as e:  # handed to the waiting thread, raised there
            outcome["error"] = e

    def interrupt(signum, frame):
        raise Interrupted(signum)

    worker = InheritableThread(target=target, name="lakejobs-job", daemon=True)  # keeps Spark's local properties
    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        worker.start()
        worker.join()
    except Interrupted:
        spark.sparkContext.cancelAllJobs()
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _record(spark, cfg, run, result, status, error=None) -> None:
    if cfg["ledger.enabled"]:
        ledger.record(spark, cfg, run, result, status, error)


def report(name: str, result: RunResult) -> list[str]:
    """Lines a person reads after a job: its notes, then each table written with version and rows."""
    lines = [f"[{name}] {note}" for note in result.notes]
    for t in result.writes:
        lines.append(f"[{name}] wrote {t.name:<28} v{t.version:<3} {t.rows if t.rows is not None else '?':>10} rows  {t.location}")
    if not result.writes and result.counts:
        lines.append(f"[{name}] " + ", ".join(f"{k}={v}" for k, v in result.counts.items()))
    return lines
