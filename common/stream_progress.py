"""Stream progress: the last micro-batch of each stream that silver.ratings holds, as rows of a small
Delta table (state.stream_progress). Unlike commit history, which Delta deletes after
delta.logRetentionDuration, a row stays until it is replaced by a later batch of its stream.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from pyspark.sql import SparkSession

from common import catalogue, idempotent, tables
from common.config import Config
from common.idempotent import Txn

PROGRESS = catalogue.STATE_STREAM_PROGRESS.name
_SCHEMA = "stream string, batch_id long, silver_version long, recorded_at timestamp"


@dataclass(frozen=True)
class Mark:
    stream: str                # the streaming query's name (its idempotent-write app id)
    batch_id: int              # its last micro-batch that silver.ratings holds
    silver_version: int | None  # the silver.ratings version that held it when recorded


def read(spark: SparkSession, cfg: Config) -> dict[str, Mark]:
    """Stream → its mark; empty when nothing was ever recorded."""
    if not tables.exists(spark, cfg, PROGRESS):
        return {}
    rows = tables.read(spark, cfg, PROGRESS).select("stream", "batch_id", "silver_version").collect()
    return {r.stream: Mark(r.stream, int(r.batch_id), r.silver_version) for r in rows}


def record(spark: SparkSession, cfg: Config, marks: list[Mark], txn: Txn | None = None) -> None:
    """Upsert the marks; a stream's mark only moves forward. With `txn` (a micro-batch's identity) the
    write is idempotent: a replayed batch records nothing twice."""
    now = datetime.now(timezone.utc)
    rows = spark.createDataFrame([(m.stream, m.batch_id, m.silver_version, now) for m in marks], _SCHEMA)

    def upsert() -> None:
        if not tables.exists(spark, cfg, PROGRESS):
            # The first record creates the table; a concurrent creator makes this conflict, and the retry merges.
            if txn is None:
                tables.append(rows, cfg, PROGRESS)
            else:
                idempotent.append_once(rows, cfg, PROGRESS, txn)
            return
        (tables.delta_table(spark, cfg, PROGRESS).alias("t")
         .merge(rows.alias("s"), "t.stream = s.stream")
         .whenMatchedUpdateAll(condition="s.batch_id > t.batch_id").whenNotMatchedInsertAll().execute())

    if txn is None:
        tables.with_retry(upsert)
    else:
        with idempotent.identity(spark, txn):
            tables.with_retry(upsert)
