"""Job `full_load` (batch layer, bronze): load a raw snapshot schema-on-read into bronze Delta tables.

Each source file becomes one atomic overwrite of bronze.<source>, and its malformed lines one of
quarantine.<source>. Every line is accounted for: the lines in the snapshot's manifest (counted at
landing, outside Spark, by \\n) = headers + loaded + quarantined. A file whose size or lines differ
from its manifest is refused before anything is written; when the counts after the writes do not add
up, both tables are restored to their versions before the load. Either way the job fails with one
line saying why. How a file's lines are split and decoded is its dialect in conf/schemas.yaml.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from common import catalogue, raw_zone, tables
from common.config import Config
from common.errors import ReconciliationError, SourceError
from common.ledger import RunResult
from common.progress import progress
from common.schemas import SourceSchema, source_schemas
from jobs.batch import expectations
from jobs.batch.parsing import LINE, REASON, bad_rows, classify, good_rows

METADATA = list(catalogue.INGEST_METADATA)
HEADER = "_header"
HEADER_SHOWN = 200  # characters of a wrong header the error shows
log = logging.getLogger("lakejobs.full_load")


@dataclass(frozen=True)
class RawFile:
    lines: DataFrame  # every line (column `value`, its line end removed) and whether it is a header
    source_file: str  # the file's URI as Spark names it
    size: int         # bytes, as the file system reports them now


def run(spark: SparkSession, cfg: Config) -> RunResult:
    snapshot = raw_zone.wait_for(cfg, cfg["raw.snapshot"], cfg["sensor.timeout_s"], cfg["sensor.poll_s"])
    ingested_at = datetime.now(timezone.utc)
    result = RunResult(notes=[f"loaded snapshot {snapshot.id}"])
    sources = list(source_schemas(cfg["raw.dataset"]).items())
    for name, schema in progress(sources, "full_load: file", log, label=lambda source: source[1].file):
        raw = read_lines(spark, snapshot.file(schema.file), schema)
        refuse_if_resized(raw, snapshot, schema.file)
        metadata = ingest_metadata(raw.source_file, snapshot.id, ingested_at)
        references = reference_keys(spark, cfg, snapshot, schema)
        # The first pass parses and checks every line and writes nothing: a file that is not what landed,
        # breaks an expect_or_fail rule or is too often malformed is refused with nothing committed. The
        # second writes the good lines; only a file with malformed lines is read a third time, for them.
        # No cache holds a whole file in memory.
        before = checked_lines(raw.lines, schema, cfg, references).agg(*_tallies(schema)).first().asDict()
        check_before_writing(snapshot, schema, before, cfg)
        loaded, seen = _load_good(raw.lines, schema, metadata, cfg, references)
        if seen["malformed"]:  # counted again only for the fence the observation makes (see `counted`)
            classified = counted(raw.lines, schema, cfg, references, Observation()).where(~F.col(HEADER))
        else:
            classified = classify(raw.lines, schema).where(F.lit(False))
        quarantined = tables.overwrite(bad_rows(classified.withColumns(metadata), name, METADATA,
                                                schema.dialect.encoding),
                                       cfg, catalogue.of_source("quarantine", name).name)
        reconcile(spark, cfg, snapshot, schema, seen, loaded, quarantined)
        result.writes += [loaded, quarantined]
        result.counts |= {f"{name}.input": snapshot.data_rows(schema.file, schema.dialect.header),
                          f"{name}.loaded": loaded.rows, f"{name}.quarantined": quarantined.rows}
        result.counts |= {f"{name}.{k}": v for k, v in seen.items() if k.startswith("expect.")}
        if seen["headers"] > 1:  # lines equal to the header, e.g. from concatenated files: not data
            result.counts[f"{name}.repeated_headers"] = seen["headers"] - 1
    return result


def refuse_if_resized(raw: RawFile, snapshot: raw_zone.Snapshot, file: str) -> None:
    """Refuse, before a line is read, a file whose size is not what landed."""
    landed = snapshot.manifest["files"][file]["bytes"]
    if raw.size != landed:
        raise ReconciliationError(f"{file}: {raw.size:,} bytes now, {landed:,} when it landed ({raw_zone.MARKER}): "
                                  f"{_changed(snapshot)}")


def check_before_writing(snapshot: raw_zone.Snapshot, schema: SourceSchema, counts: dict[str, int], cfg: Config) -> None:
    """Refuse, with nothing written, a file whose lines (split as the load splits them) are not what
    landed, or that breaks its expectations (an expect_or_fail rule, max_bad_fraction): bronze is never
    replaced by a load that then fails."""
    landed = snapshot.manifest["files"][schema.file]["lines"]
    if counts["lines"] != landed:
        raise ReconciliationError(f"{schema.file}: {landed:,} lines counted at landing ({raw_zone.MARKER}), "
                                  f"{counts['lines']:,} read now: {_changed(snapshot)}")
    ceiling = schema.max_bad_fraction if schema.max_bad_fraction is not None else cfg["sources.max_bad_fraction"]
    expectations.refuse(schema.file, schema, counts, ceiling)


def _changed(snapshot: raw_zone.Snapshot) -> str:
    return (f"the file changed after landing; nothing was loaded. Land it again: delete {snapshot.path} "
            "and run extract")


def reference_keys(spark: SparkSession, cfg: Config, snapshot: raw_zone.Snapshot,
                   schema: SourceSchema) -> dict[str, DataFrame]:
    """For each `column IN source.key` rule, the keys of that source's rows in the same snapshot that
    pass its declared checks (column `key`)."""
    sources = source_schemas(cfg["raw.dataset"])
    keys = {}
    for rule in schema.expectations:
        if rule.reference:
            other = sources[rule.reference.source]
            lines = read_lines(spark, snapshot.file(other.file), other).lines.where(~F.col(HEADER))
            good = classify(lines, other, cfg["sources.max_line_bytes"]).where(F.col(REASON).isNull())
            keys[rule.name] = good.select(F.col(rule.reference.key).alias("key"))
    return keys


def reconcile(spark: SparkSession, cfg: Config, snapshot: raw_zone.Snapshot, schema: SourceSchema,
              seen: dict[str, int], loaded: tables.TableVersion, quarantined: tables.TableVersion) -> None:
    """Fail, with both tables restored to their versions before this load, unless every landed line
    is a header, a loaded row or a quarantined one. The landed lines were counted before the writes
    (check_before_writing); this catches a file changed during the load, or rows lost by a bug."""
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
               references: dict[str, DataFrame]) -> tuple[tables.TableVersion, dict[str, int]]:
    """Overwrite bronze.<source> with the good lines; the table version and the lines seen (`lines`,
    `headers`, `malformed`, `expect.<rule>`)."""
    seen = Observation()
    checked = counted(lines, schema, cfg, references, seen).where(~F.col(HEADER)).withColumns(metadata)
    loaded = tables.overwrite(good_rows(checked, schema, METADATA), cfg,
                              catalogue.of_source("bronze", schema.name).name)
    return loaded, {k: int(v) for k, v in seen.get.items()}


def counted(lines: DataFrame, schema: SourceSchema, cfg: Config, references: dict[str, DataFrame],
            observation: Observation) -> DataFrame:
    """The classified lines, headers included, their expectations applied, counted (`_tallies`) into
    `observation` as they stream past.

    The observation is also a fence: Spark never pushes a filter below it, and a filter on `_reason`
    pushed below the classification would inline from_csv into every check, parsing each line once
    per check instead of once.
    """
    return checked_lines(lines, schema, cfg, references).observe(observation, *_tallies(schema))


def checked_lines(lines: DataFrame, schema: SourceSchema, cfg: Config, references: dict[str, DataFrame]) -> DataFrame:
    """The lines classified by the declared checks, then by the expectations."""
    classified = classify(lines, schema, cfg["sources.max_line_bytes"])
    # A header line is not a row (every reader of these lines drops it): no expectation applies to it.
    not_a_row = classified.withColumn(REASON, F.when(F.col(HEADER), F.lit("header")).otherwise(F.col(REASON)))
    return expectations.apply(not_a_row, schema, references)


def _tallies(schema: SourceSchema) -> list[F.Column]:
    return [F.count(F.lit(1)).alias("lines"), F.count_if(F.col(HEADER)).alias("headers"),
            F.count_if(F.col(REASON).isNotNull() & ~F.col(HEADER)).alias("malformed"),
            *expectations.count_columns(schema)]


def read_lines(spark: SparkSession, path: str, schema: SourceSchema) -> RawFile:
    """The lines of one raw file, split at \\n as the landing manifest counts them (Spark's default
    also splits at a lone \\r, which a quoted field may hold), decoded as its dialect says, its header
    checked (a file declared without one has none: every line is data)."""
    dialect = schema.dialect
    line = F.col("value")
    # A CR right before the \n is the line end of a CRLF file (as MovieLens ships), not data; it is cut
    # as bytes, so a line that is not valid UTF-8 keeps its exact bytes for the quarantine.
    without_cr = F.expr("substring(cast(value as binary), 1, octet_length(value) - 1)")
    if dialect.encoding == "UTF-8":  # the string is the line's bytes as they are, valid or not
        value = F.when(line.endswith("\r"), without_cr.cast("string")).otherwise(line)
    else:  # decoded from the bytes: every byte of a Latin-1 line is a character, none is undecodable
        value = F.decode(F.when(line.endswith("\r"), without_cr).otherwise(line.cast("binary")), dialect.encoding)
    lines = spark.read.option("lineSep", "\n").text(path).select(
        value.alias(LINE), F.col("_metadata.file_path").alias("_source_file"),
        F.col("_metadata.file_size").alias("_size"))
    first = lines.select(F.left(LINE, F.lit(HEADER_SHOWN + 1)).alias(LINE), "_source_file", "_size").first()
    if first is None:
        expected = f"the header '{schema.header}'" if dialect.header else "data lines"
        raise SourceError(f"{path}: the file is empty, expected {expected} (conf/schemas.yaml)")
    if not dialect.header:
        return RawFile(lines.select(LINE, F.lit(False).alias(HEADER)), first["_source_file"], int(first["_size"]))
    header = first[LINE].lstrip("\ufeff")
    if header != schema.header:
        shown = header[:HEADER_SHOWN] + ("…" if len(header) > HEADER_SHOWN else "")
        raise SourceError(f"{path}: header is '{shown}', expected '{schema.header}' (conf/schemas.yaml)")
    is_header = F.col(LINE).isin(schema.header, first[LINE])  # the first line, and repeats of it
    return RawFile(lines.select(LINE, is_header.alias(HEADER)), first["_source_file"], int(first["_size"]))


def ingest_metadata(source_file: str, snapshot_id: str, ingested_at: datetime) -> dict[str, F.Column]:
    return {"_source_file": F.lit(source_file), "_snapshot_id": F.lit(snapshot_id), "_ingested_at": F.lit(ingested_at)}
