"""Run a job the same way for every runner: time it, record it in the ledger, report it."""
from __future__ import annotations

import logging
import os
from datetime import date

from pyspark.sql import SparkSession

from common import ledger, version
from common.config import Config
from common.ledger import RunRecord, RunResult
from jobs import registry

log = logging.getLogger("lakejobs")


def run_job(spark: SparkSession, cfg: Config, name: str, logical_date: date | None = None) -> RunResult:
    """Run one job; its ledger row says succeeded or failed (with the error) either way, and carries
    the logical date an orchestrator ran it for (Airflow's ds), if any."""
    job = registry.get(name)
    run = RunRecord(job=name, env=cfg.env, params=cfg.flat(), logical_date=logical_date)
    log.info("job %s: run %s started (lakejobs %s from %s)", name, run.run_id, version(),
             os.path.dirname(os.path.dirname(registry.__file__)))
    try:
        result = job(spark, cfg)
    except Exception as e:
        _record(spark, cfg, run, None, "failed", f"{type(e).__name__}: {e}")
        raise
    _record(spark, cfg, run, result, "succeeded")
    return result


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
