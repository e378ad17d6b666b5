"""Logical table names (`silver.ratings`, declared in common/catalogue.py) → Delta locations, and the
few ways lakejobs writes them, each with the table's declared partitioning and properties.

Every write here is one Delta commit, so a reader sees the old table or the new one, never a mix.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, TypeVar

from delta.tables import DeltaTable
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from common import catalogue, lake_files, paths
from common.catalogue import LAYERS
from common.config import Config

T = TypeVar("T")


@dataclass(frozen=True)
class TableVersion:
    """A table as one job read or wrote it: which version, and how many rows that commit held."""

    name: str
    location: str
    version: int
    rows: int | None = None


def location(cfg: Config, name: str) -> str:
    """Where a declared table lives: a path under lake.root, or a catalog name when lake.catalog is set.
    ConfigError for a name common/catalogue.py does not declare."""
    declared = catalogue.get(name)
    if cfg["lake.catalog"]:
        return f"{cfg['lake.catalog']}.{declared.layer}.{declared.table}"
    return folder(cfg, declared.layer, declared.table)


def folder(cfg: Config, layer: str, table: str) -> str:
    """The folder of <layer>.<table> under lake.root, declared or not (`lakejobs tables` shows either)."""
    return paths.join(lake_root(cfg), layer, table)


def use_catalog(spark: SparkSession, cfg: Config) -> None:
    """With lake.catalog set: make it the session's current catalog (so that `gold.movie_stats` in SQL
    means <catalog>.gold.movie_stats) and create the layers' schemas that are missing, before any write:
    a table cannot be created in a schema that does not exist, and a fresh Unity Catalog has none."""
    catalog = cfg["lake.catalog"]
    if not catalog:
        return
    spark.catalog.setCurrentCatalog(catalog)
    for layer in LAYERS:
        spark.sql(f"CREATE SCHEMA IF NOT EXISTS `{catalog}`.`{layer}`")


def known_tables(cfg: Config) -> list[str]:
    """Every declared Delta table under the lake root (<layer>/<table> folders holding a _delta_log); none
    when tables go by catalog name, or the root is one only Spark reaches (dbfs, abfss...). A Delta folder
    the catalogue does not declare is no table of lakejobs, nor is a stale one where a view now stands (a
    lake scored before gold.recommendations became a view): status, maintain and serving leave them alone."""
    return [name for name in delta_folders(cfg) if catalogue.stored(name)]


def delta_folders(cfg: Config) -> list[str]:
    """<layer>.<table> of every folder under the lake root that holds a _delta_log, declared or not."""
    root = lake_root(cfg)
    if cfg["lake.catalog"] or not paths.python_reaches(root):
        return []
    return [f"{layer}.{t}" for layer in LAYERS for t in lake_files.folders(cfg, paths.join(root, layer))
            if lake_files.exists(cfg, paths.join(root, layer, t, "_delta_log"))]


def lake_root(cfg: Config) -> str:
    """lake.root normalised (paths.normalise): an absolute folder, or a URI without a trailing slash."""
    return paths.normalise(str(cfg["lake.root"]))


def _by_name(cfg: Config) -> bool:
    return bool(cfg["lake.catalog"])


def exists(spark: SparkSession, cfg: Config, name: str) -> bool:
    loc = location(cfg, name)
    if _by_name(cfg):
        return spark.catalog.tableExists(loc)
    if DeltaTable.isDeltaTable(spark, loc):
        return True
    # isDeltaTable answers from the session's cached DeltaLog and never refreshes it: had this
    # session looked while another process was writing the table's first commit, the table would
    # stay "missing" here for good (and a recompute would leave its rows out). Loading refreshes.
    try:
        spark.read.format("delta").load(loc).schema
        return True
    except AnalysisException:  # PATH_NOT_FOUND, or DELTA_TABLE_NOT_FOUND: no commit yet
        return False


def delta_table(spark: SparkSession, cfg: Config, name: str) -> DeltaTable:
    loc = location(cfg, name)
    return DeltaTable.forName(spark, loc) if _by_name(cfg) else DeltaTable.forPath(spark, loc)


def read(spark: SparkSession, cfg: Config, name: str, version: int | None = None) -> DataFrame:
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    loc = location(cfg, name)
    return reader.table(loc) if _by_name(cfg) else reader.load(loc)


def current_version(spark: SparkSession, cfg: Config, name: str) -> TableVersion:
    last = delta_table(spark, cfg, name).history(1).select("version").first()
    return TableVersion(name, location(cfg, name), int(last["version"]))


def commits_after(spark: SparkSession, cfg: Config, name: str, version: int) -> tuple[list[Row], bool]:
    """(the table's commits after `version`, newest first: version, operation, userMetadata; whether
    the history still holds every one of them). A commit that lands while this reads is included:
    history(n) gives the newest n, so a window sized from a version read earlier would lose the
    oldest commit wanted; the window grows until it reaches back past `version`."""
    limit = max(1, current_version(spark, cfg, name).version - version) + 1
    while True:
        rows = delta_table(spark, cfg, name).history(limit).select("version", "operation", "userMetadata").collect()
        after = [r for r in rows if r.version > version]
        if len(after) < len(rows) or not after:  # reached back to `version` (or nothing is newer)
            return after, True
        if len(rows) < limit:  # the history ends before it: Delta has expired the older commits
            return after, min(r.version for r in after) == version + 1
        limit *= 2


def overwrite(df: DataFrame, cfg: Config, name: str, user_metadata: str | None = None) -> TableVersion:
    """Replace the table's contents (and schema) in one atomic commit, with its declared partitioning and
    properties; `user_metadata` is a note kept in the commit's history."""
    if _by_name(cfg):
        return _overwrite_by_name(df, cfg, name, user_metadata)
    writer = with_declared_layout(df.write.format("delta").mode("overwrite").option("overwriteSchema", "true"),
                                  name, df.columns)
    if user_metadata:
        writer = writer.option("userMetadata", user_metadata)
    return _save(df.sparkSession, writer, cfg, name)


def with_declared_layout(writer, name: str, columns: list[str]):
    """A DataFrameWriter of these columns given the table's declared partition columns and Delta
    properties (the properties take effect when the write creates or overwrites the table)."""
    declared = catalogue.get(name)
    if declared.partition_by:
        writer = writer.partitionBy(*declared.partition_by)
    for key, value in declared.delta_properties(columns).items():
        writer = writer.option(key, value)
    return writer


def _overwrite_by_name(df: DataFrame, cfg: Config, name: str, user_metadata: str | None) -> TableVersion:
    """overwrite() of a catalog table: created empty when missing (its version 0, so the data is
    version 1 there), then overwritten in place. Not
    saveAsTable: its create-or-replace runs the query as a nested command, whose observed metrics (a
    pyspark Observation, as full_load counts its lines with) never reach the caller."""
    spark, loc = df.sparkSession, location(cfg, name)
    before = version_before_write(spark, cfg, name)
    if before is None:
        declared = catalogue.get(name)
        creator = spark.createDataFrame([], df.schema).writeTo(loc).using("delta")
        if declared.partition_by:
            creator = creator.partitionedBy(*declared.partition_by)
        for key, value in declared.delta_properties(df.columns).items():
            creator = creator.tableProperty(key, value)
        creator.create()
        before = 0  # the empty table's commit: the data is the next one
    writer = df.writeTo(loc).option("overwriteSchema", "true")
    if user_metadata:
        writer = writer.option("userMetadata", user_metadata)
    writer.overwrite(F.lit(True))
    return last_commit(spark, cfg, name, since=before)


def replace_where(df: DataFrame, cfg: Config, name: str, predicate: str) -> TableVersion:
    """Replace the rows matching predicate (SQL) with df's, in one atomic commit; the rest stays as it is.
    Delta refuses a row of df that does not match the predicate."""
    spark, loc = df.sparkSession, location(cfg, name)
    if _by_name(cfg):
        before = version_before_write(spark, cfg, name)
        df.writeTo(loc).overwrite(F.expr(predicate))
        return last_commit(spark, cfg, name, since=before)
    return _save(spark, df.write.format("delta").mode("overwrite").option("replaceWhere", predicate), cfg, name)


def upsert(df: DataFrame, cfg: Config, name: str) -> TableVersion:
    """Update the rows with df's keys (the table's declared key) and insert the others (MERGE), creating
    the table on first use."""
    spark, keys = df.sparkSession, catalogue.get(name).key
    if not keys:
        raise ValueError(f"{name} declares no key to upsert by (common/catalogue.py)")

    def merge() -> TableVersion:
        if not exists(spark, cfg, name):  # created empty, then merged into like any other time
            append(spark.createDataFrame([], df.schema), cfg, name)  # two creators conflict; the retry merges
        before = version_before_write(spark, cfg, name)
        (delta_table(spark, cfg, name).alias("t")
         .merge(df.alias("s"), " AND ".join(f"t.{k} = s.{k}" for k in keys))
         .whenMatchedUpdateAll().whenNotMatchedInsertAll().execute())
        return last_commit(spark, cfg, name, since=before)

    return with_retry(merge)


def changes(spark: SparkSession, cfg: Config, name: str, start: int, end: int) -> DataFrame:
    """The change feed of versions start..end (the table needs delta.enableChangeDataFeed)."""
    reader = (spark.read.format("delta").option("readChangeFeed", "true")
              .option("startingVersion", start).option("endingVersion", end))
    loc = location(cfg, name)
    return reader.table(loc) if _by_name(cfg) else reader.load(loc)


class StaleInput(Exception):
    """A write's inputs changed between reading them and committing, in a way Delta cannot see as a
    conflict (e.g. a commit that landed before the write's transaction began): recompute, write again."""


def with_retry(action: Callable[[], T], attempts: int = 5) -> T:
    """Run a Delta write again when a concurrent writer made it conflict (or it raised StaleInput).
    Safe only for writes that are idempotent or recompute their input on each attempt (as every
    caller here does)."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as e:  # Delta raises its conflicts through py4j; match them by class name
            if attempt == attempts or not (isinstance(e, StaleInput) or _is_conflict(e)):
                raise
            time.sleep(0.2 * attempt)
    raise AssertionError("unreachable")


def _is_conflict(e: Exception) -> bool:
    text = f"{type(e).__name__} {e}"
    return any(k in text for k in ("ConcurrentAppendException", "ConcurrentDeleteReadException",
                                   "ConcurrentDeleteDeleteException", "ConcurrentTransactionException",
                                   "MetadataChangedException", "ProtocolChangedException", "DELTA_CONCURRENT"))


def append(df: DataFrame, cfg: Config, name: str) -> TableVersion:
    """Add rows in one commit; concurrent blind appends do not conflict in Delta."""
    return _save(df.sparkSession, _appender(df, name), cfg, name)


def append_unversioned(df: DataFrame, cfg: Config, name: str, user_metadata: str) -> None:
    """append() without reading the history for the version it made (two reads a commit): for the
    writes of a micro-batch, which never need it."""
    _write(_appender(df, name).option("userMetadata", user_metadata), cfg, name)


def _appender(df: DataFrame, name: str):
    return with_declared_layout(df.write.format("delta").mode("append").option("mergeSchema", "true"), name, df.columns)


def _save(spark: SparkSession, writer, cfg: Config, name: str) -> TableVersion:
    before = version_before_write(spark, cfg, name)
    _write(writer, cfg, name)
    return last_commit(spark, cfg, name, since=before)


def _write(writer, cfg: Config, name: str) -> None:
    loc = location(cfg, name)
    if _by_name(cfg):
        writer.saveAsTable(loc)
    else:
        writer.save(loc)


# Commits of table upkeep (the maintain job): they change no data, and Delta records them in the history.
UPKEEP_OPERATIONS = ("VACUUM START", "VACUUM END", "OPTIMIZE")


def version_before_write(spark: SparkSession, cfg: Config, name: str) -> int | None:
    return current_version(spark, cfg, name).version if exists(spark, cfg, name) else None


def last_commit(spark: SparkSession, cfg: Config, name: str, since: int | None) -> TableVersion:
    """The version and rows (Delta's own operation metrics) of the newest data commit after version
    `since` (None: the table did not exist): the one a write just made. Upkeep commits are passed over. When there is none, Delta
    found nothing to commit (an empty table overwritten with nothing): the table is unchanged and the
    write wrote no rows."""
    history = delta_table(spark, cfg, name).history(20).where(~F.col("operation").isin(*UPKEEP_OPERATIONS))
    if since is not None:
        history = history.where(F.col("version") > since)
    row = history.orderBy(F.col("version").desc()).select("version", "operationMetrics").first()
    if row is None:
        return TableVersion(name, location(cfg, name), since, 0)
    metrics = row["operationMetrics"] or {}
    rows = metrics.get("numOutputRows")
    return TableVersion(name, location(cfg, name), int(row["version"]), int(rows) if rows is not None else None)
