"""Job `full_load` (batch layer, bronze): load a raw snapshot schema-on-read into bronze Delta tables.

Each source file becomes one atomic overwrite of bronze.<source>, and its malformed lines one of
quarantine.<source>. Every line is accounted for: the lines in the snapshot's manifest (counted at
landing, outside Spark, by \\n) = headers + loaded + quarantined. A file whose size or lines differ
from its manifest is refused before anything is written; when the counts after the writes do not add
up, both tables are restored to their versions before the load. Either way the job fails with one
line saying why.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from common import raw_zone, tables
from common.config import Config
from common.errors import ReconciliationError, SourceError
from common.ledger import RunResult
from common.schemas import SourceSchema, source_schemas
from jobs.parsing import LINE, REASON, bad_rows, classify, good_rows

METADATA = ["_source_file", "_snapshot_id", "_ingested_at"]
HEADER = "_header"
HEADER_SHOWN = 200  # characters of a wrong header the error shows


@dataclass(frozen=True)
class RawFile:
    lines: DataFrame  # every line (column `value`, its line end removed) and whether it is a header
    source_file: str  # the file's URI as Spark names it
    size: int         # bytes, as the file system reports them now


def run(spark: SparkSession, cfg: Config) -> RunResult:
    snapshot = raw_zone.wait_for(cfg, cfg["raw.snapshot"], cfg["sensor.timeout_s"], cfg["sensor.poll_s"])
    ingested_at = datetime.now(timezone.utc)
    result = RunResult(notes=[f"loaded snapshot {snapshot.id}"])
    for name, schema in source_schemas(cfg["raw.dataset"]).items():
        raw = read_lines(spark, snapshot.file(schema.file), schema)
        refuse_if_changed(raw, snapshot, schema.file)
        metadata = ingest_metadata(raw.source_file, snapshot.id, ingested_at)
        # One pass parses and checks the file, writes its good lines and counts the malformed ones. Only a
        # file with malformed lines is read a second time, for them: clean files cost one pass (and the line count), and no
        # cache holds a whole file in memory.
        loaded, seen = _load_good(raw.lines, schema, metadata, cfg, name)
        if seen["malformed"]:  # counted again only for the fence the observation makes (see `counted`)
            classified = counted(raw.lines, schema, cfg, Observation()).where(~F.col(HEADER))
        else:
            classified = classify(raw.lines, schema).where(F.lit(False))
        quarantined = tables.overwrite(bad_rows(classified.withColumns(metadata), name, METADATA),
                                       cfg, f"quarantine.{name}")
        reconcile(spark, cfg, snapshot, schema, seen, loaded, quarantined)
        result.writes += [loaded, quarantined]
        result.counts |= {f"{name}.input": snapshot.data_rows(schema.file), f"{name}.loaded": loaded.rows,
                          f"{name}.quarantined": quarantined.rows}
        if seen["headers"] > 1:  # lines equal to the header, e.g. from concatenated files: not data
            result.counts[f"{name}.repeated_headers"] = seen["headers"] - 1
    return result


def refuse_if_changed(raw: RawFile, snapshot: raw_zone.Snapshot, file: str) -> None:
    """Refuse, before anything is written, a file that is not what landed: its size, then its lines
    split as the load splits them (a pass that parses nothing, ~5% of a load). Bronze is never
    replaced by a load that then fails to reconcile."""
    landed = snapshot.manifest["files"][file]
    again = (f"the file changed after landing; nothing was loaded. Land it again: delete {snapshot.path} "
             "and run extract")
    if raw.size != landed["bytes"]:
        raise ReconciliationError(
            f"{file}: {raw.size:,} bytes now, {landed['bytes']:,} when it landed ({raw_zone.MARKER}): {again}")
    read = raw.lines.count()
    if read != landed["lines"]:
        raise ReconciliationError(
            f"{file}: {landed['lines']:,} lines counted at landing ({raw_zone.MARKER}), {read:,} read now: {again}")


def reconcile(spark: SparkSession, cfg: Config, snapshot: raw_zone.Snapshot, schema: SourceSchema,
              seen: dict[str, int], loaded: tables.TableVersion, quarantined: tables.TableVersion) -> None:
    """Fail, with both tables restored to their versions before this load, unless every landed line
    is a header, a loaded row or a quarantined one. The landed lines were counted before the writes
    (refuse_if_changed); this catches a file changed during the load, or rows lost by a bug."""
    landed = snapshot.manifest["files"][schema.file]["lines"]
    read, headers = seen["lines"], seen["headers"]
    if read == landed == headers + loaded.rows + quarantined.rows and quarantined.rows == seen["malformed"]:
        return
    restored = " and ".join(restore_before(spark, cfg, t) for t in (loaded, quarantined))
    sides = (f"{landed:,} lines counted at landing ({raw_zone.MARKER}), {read:,} read now: {headers:,} header, "
             f"{loaded.rows:,} loaded, {quarantined.rows:,} quarantined ({seen['malformed']:,} found malformed)")
    todo = (f"the file changed after landing: delete {snapshot.path} and run extract again" if read != landed
            else "rows were lost between reading and writing: a bug, please report it with this line")
    raise ReconciliationError(f"{schema.file}: {sides}; {restored}; {todo}")


def restore_before(spark: SparkSession, cfg: Config, written: tables.TableVersion) -> str:
    """Undo one write of this load: back to the version before it, or emptied if it created the table."""
    table = tables.delta_table(spark, cfg, written.name)
    if written.version == 0:
        table.delete()
        return f"{written.name} emptied (it did not exist before)"
    table.restoreToVersion(written.version - 1)
    return f"{written.name} restored to v{written.version - 1}"


def _load_good(lines: DataFrame, schema: SourceSchema, metadata: dict[str, F.Column], cfg: Config,
               name: str) -> tuple[tables.TableVersion, dict[str, int]]:
    """Overwrite bronze.<name> with the good lines; the table version and the lines seen (`lines`,
    `headers`, `malformed`)."""
    seen = Observation()
    good = good_rows(counted(lines, schema, cfg, seen).where(~F.col(HEADER)).withColumns(metadata), schema, METADATA)
    loaded = tables.overwrite(good, cfg, f"bronze.{name}", data_statistics_only(schema))
    return loaded, {k: int(v) for k, v in seen.get.items()}


def data_statistics_only(schema: SourceSchema) -> dict[str, str]:
    """Delta keeps min/max statistics on the data columns only: the ingest metadata is one value per
    load, so statistics on it never skip a file, and computing them cost ~2 s per 10M rows."""
    return {"delta.dataSkippingStatsColumns": ",".join(c.name for c in schema.columns)}


def counted(lines: DataFrame, schema: SourceSchema, cfg: Config, observation: Observation) -> DataFrame:
    """The classified lines, headers included, counted (`lines`, `headers`, `malformed`) into
    `observation` as they stream past.

    The observation is also a fence: Spark never pushes a filter below it, and a filter on `_reason`
    pushed below the classification would inline from_csv into every check, parsing each line once
    per check instead of once.
    """
    return classify(lines, schema, cfg["sources.max_line_bytes"]).observe(
        observation, F.count(F.lit(1)).alias("lines"), F.count_if(F.col(HEADER)).alias("headers"),
        F.count_if(F.col(REASON).isNotNull() & ~F.col(HEADER)).alias("malformed"))


def read_lines(spark: SparkSession, path: str, schema: SourceSchema) -> RawFile:
    """The lines of one raw CSV file, split at \\n as the landing manifest counts them (Spark's default
    also splits at a lone \\r, which a quoted field may hold), its header checked."""
    line = F.col("value")
    # A CR right before the \n is the line end of a CRLF file (as MovieLens ships), not data; it is cut
    # as bytes, so a line that is not valid UTF-8 keeps its exact bytes for the quarantine.
    value = F.when(line.endswith("\r"), F.expr("cast(substring(cast(value as binary), 1, octet_length(value) - 1) "
                                                 "as string)")).otherwise(line)
    lines = spark.read.option("lineSep", "\n").text(path).select(
        value.alias(LINE), F.col("_metadata.file_path").alias("_source_file"),
        F.col("_metadata.file_size").alias("_size"))
    first = lines.select(F.left(LINE, F.lit(HEADER_SHOWN + 1)).alias(LINE), "_source_file", "_size").first()
    if first is None:
        raise SourceError(f"{path}: the file is empty, expected the header '{schema.header}' (conf/schemas.yaml)")
    header = first[LINE].lstrip("\ufeff")
    if header != schema.header:
        shown = header[:HEADER_SHOWN] + ("…" if len(header) > HEADER_SHOWN else "")
        raise SourceError(f"{path}: header is '{shown}', expected '{schema.header}' (conf/schemas.yaml)")
    is_header = F.col(LINE).isin(schema.header, first[LINE])  # the first line, and repeats of it
    return RawFile(lines.select(LINE, is_header.alias(HEADER)), first["_source_file"], int(first["_size"]))


def ingest_metadata(source_file: str, snapshot_id: str, ingested_at: datetime) -> dict[str, F.Column]:
    return {"_source_file": F.lit(source_file), "_snapshot_id": F.lit(snapshot_id), "_ingested_at": F.lit(ingested_at)}
