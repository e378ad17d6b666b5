"""Job `maintain`: table upkeep, OPTIMIZE (compact small files) then VACUUM (delete unneeded ones).

Every micro-batch and append leaves small files, every overwrite keeps the old ones; the files of
each table before and after go to the ledger. Safe beside the running stream: OPTIMIZE rewrites
files without changing data (a concurrent MERGE that loses the race is retried, as is OPTIMIZE),
and the retention is never shorter than Delta's safety check allows, nor than the streams' oldest
unfinished micro-batch needs.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

from pyspark.errors import AnalysisException
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from common import catalogue, ledger, paths, tables
from common.config import Config
from common.errors import ConfigError
from common.hadoop_files import HadoopFiles
from common.ledger import RunResult

log = logging.getLogger("lakejobs.maintain")
DELTA_SAFE_RETENTION_H = 168.0  # Delta's default delta.deletedFileRetentionDuration, which its VACUUM check enforces
_CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"
# A micro-batch reads its own MERGE's change feed right after committing it, and a replayed batch reads
# silver.ratings as it was before its MERGE: VACUUM must keep those files for the batch's duration.
# An hour covers any micro-batch here by far (seconds to minutes).
STREAM_MARGIN_H = 1.0
# A schedule fires at the same hour, but the task starts when its upstream tasks end: allow for that.
SCHEDULE_SLACK_H = 1.0


def retention_h(spark: SparkSession, cfg: Config) -> float:
    """maintain.retention_h, once it is known to be safe; ConfigError naming the rule it breaks."""
    retention = float(cfg["maintain.retention_h"])
    if retention < 0:
        raise ConfigError(f"maintain.retention_h must be >= 0, got {retention:g}")
    if retention < DELTA_SAFE_RETENTION_H and not cfg["maintain.allow_short_retention"]:
        raise ConfigError(
            f"maintain.retention_h={retention:g} is below Delta's safety check ({DELTA_SAFE_RETENTION_H:g} h): "
            "VACUUM would delete files a reader or writer may still need. Lower it only knowingly, with "
            "--conf maintain.allow_short_retention=true, when no job but the stream writes the lake")
    needed, stream = stream_needs_h(spark, cfg)
    if retention < needed:
        raise ConfigError(
            f"maintain.retention_h={retention:g} is below what stream '{stream}' needs ({needed:.2f} h: its oldest "
            f"unfinished micro-batch plus {STREAM_MARGIN_H:g} h): VACUUM would delete files a replay of that "
            "batch reads. Raise maintain.retention_h, or let the stream finish the batch first")
    return retention


def checkpoints_dir(cfg: Config) -> str:
    return paths.join(tables.lake_root(cfg), "state", "checkpoints")


def stream_needs_h(spark: SparkSession, cfg: Config) -> tuple[float, str | None]:
    """(hours of files the streams need kept, the stream needing most): for every streaming
    checkpoint, the age of its oldest micro-batch planned (offsets/N) but not committed (commits/N),
    plus STREAM_MARGIN_H; a stream with no batch pending needs the margin only."""
    fs = HadoopFiles(spark, checkpoints_dir(cfg))
    worst: tuple[float, str | None] = (0.0, None)
    for query in fs.folders(checkpoints_dir(cfg)):
        planned = _batches(fs, paths.join(checkpoints_dir(cfg), query, "offsets"))
        if not planned:
            continue  # not a streaming query's checkpoint (ALS keeps its own there)
        committed = _batches(fs, paths.join(checkpoints_dir(cfg), query, "commits"))
        pending = [t for batch, t in planned.items() if batch not in committed]
        age_h = (time.time() - min(pending) / 1000) / 3600 if pending else 0.0
        worst = max(worst, (age_h + STREAM_MARGIN_H, query), key=lambda w: w[0])
    return worst


def _batches(fs: HadoopFiles, folder: str) -> dict[str, int]:
    """Batch id → when its file was written (ms), in a checkpoint's offsets/ or commits/ log."""
    return {name: t for name, t in fs.files(folder).items() if name.isdigit()}


def _last_success(spark: SparkSession, cfg: Config) -> datetime | None:
    if not tables.exists(spark, cfg, ledger.LEDGER_TABLE):
        return None
    rows = tables.read(spark, cfg, ledger.LEDGER_TABLE).where((F.col("job") == "maintain") & (F.col("status") == "succeeded"))
    return rows.agg(F.max("started_at")).first()[0]


def _due(spark: SparkSession, cfg: Config) -> str | None:
    """Why this run does nothing (the last maintain is recent enough), or None when it is due."""
    every = float(cfg["maintain.every_h"])
    last = _last_success(spark, cfg) if every > 0 else None
    if last is None:
        return None
    age_h = (datetime.now(timezone.utc) - last.replace(tzinfo=timezone.utc)).total_seconds() / 3600
    if age_h < every - SCHEDULE_SLACK_H:
        return f"skipped: the last maintain started {age_h:.1f} h ago, maintain.every_h is {every:g}"
    return None


def lake_tables(spark: SparkSession, cfg: Config) -> list[str]:
    """Every declared table of the lake: under its root, or in the catalog's <layer> schemas (Unity Catalog)."""
    catalog = cfg["lake.catalog"]
    if not catalog:
        return tables.known_tables(cfg)
    found = []
    for layer in catalogue.LAYERS:
        try:
            found += [f"{layer}.{t.name}" for t in spark.catalog.listTables(f"{catalog}.{layer}")]
        except AnalysisException:  # no such schema yet: nothing of that layer written
            pass
    return [name for name in found if catalogue.stored(name)]


def _table_files(spark: SparkSession, cfg: Config, name: str) -> tuple[int, int]:
    """(files of the current version, files on storage) of a table."""
    detail = tables.delta_table(spark, cfg, name).detail().select("numFiles", "location").first()
    return int(detail["numFiles"]), HadoopFiles(spark, detail["location"]).count_files(detail["location"])


def maintain_table(spark: SparkSession, cfg: Config, name: str, retention: float) -> dict[str, int]:
    """OPTIMIZE then VACUUM one table; its live and stored file counts before and after."""
    live_before, stored_before = _table_files(spark, cfg, name)
    table = tables.delta_table(spark, cfg, name)
    # A MERGE of the stream that commits first makes OPTIMIZE conflict: compact again from the new state.
    tables.with_retry(lambda: table.optimize().executeCompaction())
    short = retention < DELTA_SAFE_RETENTION_H
    if short:  # allowed knowingly (retention_h checked it): Delta's own check would refuse it
        spark.conf.set(_CHECK, "false")
    try:
        table.vacuum(retention)
    finally:
        if short:
            spark.conf.unset(_CHECK)
    live_after, stored_after = _table_files(spark, cfg, name)
    return {"live_before": live_before, "live_after": live_after,
            "stored_before": stored_before, "stored_after": stored_after}


def run(spark: SparkSession, cfg: Config) -> RunResult:
    skipped = _due(spark, cfg)
    if skipped:
        return RunResult(notes=[skipped])
    retention = retention_h(spark, cfg)
    names = list(cfg["maintain.tables"]) or lake_tables(spark, cfg)
    # A table not written yet (the stream's before its first micro-batch) has nothing to keep up.
    missing = [n for n in names if not tables.exists(spark, cfg, n)]
    names = [n for n in names if n not in missing]
    result = RunResult(notes=[f"not in the lake (yet), skipped: {', '.join(missing)}"] if missing else [])
    totals = dict.fromkeys(("live_before", "live_after", "stored_before", "stored_after"), 0)
    for name in names:
        files = maintain_table(spark, cfg, name, retention)
        for key, value in files.items():
            totals[key] += value
        result.writes.append(tables.current_version(spark, cfg, name))
        result.notes.append(f"{name}: {files['live_before']} -> {files['live_after']} live files, "
                            f"{files['stored_before']} -> {files['stored_after']} stored")
    result.counts = {"tables": len(names), "files.live_before": totals["live_before"],
                     "files.live_after": totals["live_after"], "files.stored_before": totals["stored_before"],
                     "files.stored_after": totals["stored_after"]}
    result.notes.append(f"{len(names)} tables: {totals['live_before']} -> {totals['live_after']} live files, "
                        f"{totals['stored_before']} -> {totals['stored_after']} stored "
                        f"(VACUUM kept {retention:g} h of history)")
    return result
