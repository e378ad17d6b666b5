"""The run ledger: one Delta row per job run (task state), kept apart from the data tables."""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

from pyspark.sql import SparkSession
from pyspark.sql import types as T

from common import catalogue, tables, version
from common.config import Config, redact, redact_text
from common.tables import TableVersion

LEDGER_TABLE = catalogue.STATE_LEDGER.name

_TABLE_REF = T.StructType([
    T.StructField("table", T.StringType()),
    T.StructField("location", T.StringType()),
    T.StructField("version", T.LongType()),
    T.StructField("rows", T.LongType()),
])

LEDGER_SCHEMA = T.StructType([
    T.StructField("run_id", T.StringType(), False),
    T.StructField("job", T.StringType(), False),
    T.StructField("env", T.StringType()),
    T.StructField("lakejobs_version", T.StringType()),
    T.StructField("params", T.StringType()),          # JSON of the config the job ran with
    T.StructField("reads", T.ArrayType(_TABLE_REF)),
    T.StructField("writes", T.ArrayType(_TABLE_REF)),
    T.StructField("counts", T.MapType(T.StringType(), T.LongType())),
    T.StructField("status", T.StringType(), False),    # succeeded | failed | interrupted (SIGINT, SIGTERM)
    T.StructField("error", T.StringType()),
    T.StructField("started_at", T.TimestampType()),
    T.StructField("ended_at", T.TimestampType()),
    T.StructField("logical_date", T.DateType()),      # the day an orchestrator's run stands for (Airflow's ds); null: none given
])


@dataclass
class RunResult:
    """What a job reports back: tables read and written (with versions), counts, and lines for people."""

    reads: list[TableVersion] = field(default_factory=list)
    writes: list[TableVersion] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class RunRecord:
    job: str
    env: str
    params: dict
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    logical_date: date | None = None


def record(spark: SparkSession, cfg: Config, run: RunRecord, result: RunResult | None,
           status: str, error: str | None = None) -> None:
    """Append the run's row to the ledger (a blind append: concurrent jobs never conflict)."""
    result = result or RunResult()
    row = (
        run.run_id, run.job, run.env, version(), json.dumps(redact(run.params), sort_keys=True, default=str),
        [_ref(t) for t in result.reads], [_ref(t) for t in result.writes],
        {k: int(v) for k, v in result.counts.items()},
        status, None if error is None else redact_text(error), run.started_at, datetime.now(timezone.utc), run.logical_date,
    )
    tables.append(spark.createDataFrame([row], LEDGER_SCHEMA), cfg, LEDGER_TABLE)


def _ref(t: TableVersion) -> tuple:
    return (t.name, t.location, t.version, t.rows)
