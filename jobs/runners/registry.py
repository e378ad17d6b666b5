"""The one list of jobs. A name on the command line is looked up here, never imported.

Each job is a module name: it is imported when the job runs, so listing or validating jobs
(`lakejobs list`, the pipeline DAG, the Databricks bundle) needs neither Spark nor MLflow.
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
from types import ModuleType
from typing import TYPE_CHECKING, Callable

from common.errors import UnknownJobError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from common.config import Config
    from common.ledger import RunResult

    Job = Callable[[SparkSession, Config], RunResult]

JOBS: dict[str, str] = {
    "extract": "jobs.batch.extract",
    "full_load": "jobs.batch.full_load",
    "silver": "jobs.batch.silver",
    "gold": "jobs.batch.gold",
    "daily": "jobs.batch.daily",
    "simulate": "jobs.speed.simulate",
    "speed": "jobs.speed.speed",
    "train": "jobs.ml.train",
    "score": "jobs.ml.score",
    "maintain": "jobs.ops.maintain",
}

# Jobs that build one day when given a logical date (run(spark, cfg, logical_date)); `lakejobs backfill` runs them.
DATED = ("daily",)


def check(name: str) -> str:
    """The job's module name; UnknownJobError naming the valid jobs when there is no such job."""
    if name not in JOBS:
        raise UnknownJobError(f"unknown job '{name}'; valid jobs: {', '.join(JOBS)}")
    return JOBS[name]


def get(name: str) -> "Job":
    """The job's run(spark, cfg), its module imported now."""
    return module(name).run


def module(name: str) -> ModuleType:
    """The job's module, imported now (a dated job's also has pending(spark, cfg, first, last))."""
    return importlib.import_module(check(name))


def describe(name: str) -> str:
    """First line of the job module's docstring, read from its source without importing it."""
    spec = importlib.util.find_spec(check(name))
    source = spec.loader.get_source(spec.name) if spec and spec.loader else None
    doc = ast.get_docstring(ast.parse(source)) if source else None
    return doc.strip().splitlines()[0] if doc and doc.strip() else ""
