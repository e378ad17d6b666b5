"""Job `extract`: land the configured MovieLens source in the raw zone as an immutable snapshot."""
from __future__ import annotations

from pyspark.sql import SparkSession

from common import raw_zone
from common.config import Config
from common.ledger import RunResult
from common.schemas import source_schemas
from jobs import sources


def run(spark: SparkSession, cfg: Config) -> RunResult:
    files = [s.file for s in source_schemas(cfg["raw.dataset"]).values()]
    plan = sources.plan(cfg, files)
    try:
        snapshot, landed_now = raw_zone.land(cfg, plan.snapshot_id, plan.fill, files, plan.description)
    finally:
        plan.cleanup()
    verb = "landed" if landed_now else "already landed, nothing to do:"
    return RunResult(
        counts={f"{name.removesuffix('.csv')}.rows": snapshot.data_rows(name) for name in files}
        | {"landed": int(landed_now)},
        notes=[f"{verb} snapshot {snapshot.id} from {plan.description}", f"  at {snapshot.path}"],
    )
