"""The one list of jobs. A name on the command line is looked up here, never imported."""
from __future__ import annotations

import sys
from typing import Callable

from pyspark.sql import SparkSession

from common.config import Config
from common.errors import UnknownJobError
from common.ledger import RunResult
from jobs import extract, full_load, gold, score, silver, simulate, speed, train

Job = Callable[[SparkSession, Config], RunResult]

JOBS: dict[str, Job] = {
    "extract": extract.run,
    "full_load": full_load.run,
    "silver": silver.run,
    "gold": gold.run,
    "simulate": simulate.run,
    "speed": speed.run,
    "train": train.run,
    "score": score.run,
}


def get(name: str) -> Job:
    if name not in JOBS:
        raise UnknownJobError(f"unknown job '{name}'; valid jobs: {', '.join(JOBS)}")
    return JOBS[name]


def describe(name: str) -> str:
    """First line of the job module's docstring."""
    doc = sys.modules[get(name).__module__].__doc__ or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""
