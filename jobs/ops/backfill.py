"""`lakejobs backfill --from D --to D [TASK...]`: run the dated tasks (jobs/runners/registry.py DATED) for each day
of a range, in order, each day its own run with its own ledger row (logical_date = the day).

A day whose inputs are what it was last built from is skipped (`--rerun` builds it anyway), so a
stopped backfill, run again, resumes where it stopped, and a day without data is not built at all.
"""
from __future__ import annotations

import logging
from datetime import date, timedelta

from pyspark.sql import SparkSession

from common.config import Config
from common.errors import ConfigError
from common.progress import progress
from jobs.runners import registry, runner

log = logging.getLogger("lakejobs.backfill")


def check(tasks: list[str], first: date, last: date) -> list[str]:
    """The tasks to run (every dated task when none is named); ConfigError for a bad range or task."""
    if first > last:
        raise ConfigError(f"backfill: --from {first} is after --to {last}")
    for name in tasks:
        registry.check(name)
        if name not in registry.DATED:
            raise ConfigError(f"backfill: '{name}' is not a dated task; dated tasks: {', '.join(registry.DATED)}")
    return tasks or list(registry.DATED)


def run(spark: SparkSession, cfg: Config, tasks: list[str], first: date, last: date, rerun: bool = False) -> list[str]:
    """Build each pending day of each task, day by day; returns a line per task for people."""
    tasks = check(tasks, first, last)
    every_day = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    pending = {name: set(every_day) if rerun else set(registry.module(name).pending(spark, cfg, first, last)) for name in tasks}
    days = [d for d in every_day if any(d in p for p in pending.values())]
    for day in progress(days, "backfill: day", log):
        for name in tasks:
            if day in pending[name]:
                runner.run_job(spark, cfg, name, day)
    return [f"backfill {name}: {len(pending[name])} of {len(every_day)} day(s) run, "
            f"{len(every_day) - len(pending[name])} skipped (built from the same inputs, or without data)"
            for name in tasks]
