"""Job `full_load` (batch layer, bronze): load a raw snapshot schema-on-read into bronze Delta tables.

Each source file becomes one atomic overwrite of bronze.<source>, and its malformed lines one of
quarantine.<source>. Every line is accounted for: data lines in the snapshot's manifest
(counted at landing, outside Spark) = loaded + quarantined, or the job fails.
"""
from __future__ import annotations

from datetime import datetime, timezone

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from common import raw_zone, tables
from common.config import Config
from common.errors import SourceError
from common.ledger import RunResult
from common.schemas import SourceSchema, source_schemas
from jobs.parsing import LINE, REASON, bad_rows, classify, good_rows

METADATA = ["_source_file", "_snapshot_id", "_ingested_at"]


def run(spark: SparkSession, cfg: Config) -> RunResult:
    snapshot = raw_zone.wait_for(cfg, cfg["raw.snapshot"], cfg["sensor.timeout_s"], cfg["sensor.poll_s"])
    ingested_at = datetime.now(timezone.utc)
    result = RunResult(notes=[f"loaded snapshot {snapshot.id}"])
    for name, schema in source_schemas(cfg["raw.dataset"]).items():
        lines, source_file = read_lines(spark, snapshot.file(schema.file), schema)
        metadata = ingest_metadata(source_file, snapshot.id, ingested_at)
        # One pass parses and checks the file, writes its good lines and counts the malformed ones. Only a
        # file with malformed lines is read a second time, for them: clean files cost one pass, and no
        # cache holds a whole file in memory.
        loaded, malformed = _load_good(lines, schema, metadata, cfg, name)
        if malformed:  # counted again only for the fence the observation makes (see `counted`)
            bad = bad_rows(counted(lines, schema, Observation()).withColumns(metadata), name, METADATA)
        else:
            bad = bad_rows(classify(lines, schema).withColumns(metadata), name, METADATA).where(F.lit(False))
        quarantined = tables.overwrite(bad, cfg, f"quarantine.{name}")
        if quarantined.rows != malformed:
            raise RuntimeError(f"{schema.file}: {malformed} malformed lines counted while loading, "
                               f"{quarantined.rows} quarantined")
        expected = snapshot.data_rows(schema.file)
        extra_headers = expected - loaded.rows - quarantined.rows
        if extra_headers < 0:
            raise RuntimeError(f"{schema.file}: {loaded.rows} loaded + {quarantined.rows} quarantined "
                               f"exceeds the {expected} data lines landed")
        result.writes += [loaded, quarantined]
        result.counts |= {f"{name}.input": expected, f"{name}.loaded": loaded.rows,
                          f"{name}.quarantined": quarantined.rows}
        if extra_headers:  # lines equal to the header, e.g. from concatenated files: not data
            result.counts[f"{name}.repeated_headers"] = extra_headers
    return result


def _load_good(lines: DataFrame, schema: SourceSchema, metadata: dict[str, F.Column], cfg: Config,
               name: str) -> tuple[tables.TableVersion, int]:
    """Overwrite bronze.<name> with the good lines; the table version and the malformed lines seen."""
    seen = Observation()
    loaded = tables.overwrite(good_rows(counted(lines, schema, seen).withColumns(metadata), schema, METADATA),
                              cfg, f"bronze.{name}", data_statistics_only(schema))
    return loaded, int(seen.get["malformed"])


def data_statistics_only(schema: SourceSchema) -> dict[str, str]:
    """Delta keeps min/max statistics on the data columns only: the ingest metadata is one value per
    load, so statistics on it never skip a file, and computing them cost ~2 s per 10M rows."""
    return {"delta.dataSkippingStatsColumns": ",".join(c.name for c in schema.columns)}


def counted(lines: DataFrame, schema: SourceSchema, observation: Observation) -> DataFrame:
    """The classified lines, counted (`lines`, `malformed`) into `observation` as they stream past.

    The observation is also a fence: Spark never pushes a filter below it, and a filter on `_reason`
    pushed below the classification would inline from_csv into every check, parsing each line once
    per check instead of once.
    """
    return classify(lines, schema).observe(
        observation, F.count(F.lit(1)).alias("lines"), F.count_if(F.col(REASON).isNotNull()).alias("malformed"))


def read_lines(spark: SparkSession, path: str, schema: SourceSchema) -> tuple[DataFrame, str]:
    """The data lines of one raw CSV file (column `value`) and the file's URI as Spark names it,
    its header checked."""
    lines = spark.read.text(path).select(F.col("value").alias(LINE), F.col("_metadata.file_path").alias("_source_file"))
    first = lines.first()
    header = (first[LINE] if first else "").lstrip("\ufeff").rstrip("\r")
    if header != schema.header:
        raise SourceError(f"{path}: header is '{header}', expected '{schema.header}' (conf/schemas.yaml)")
    return lines.select(LINE).where(F.col(LINE) != F.lit(first[LINE])), first["_source_file"]


def ingest_metadata(source_file: str, snapshot_id: str, ingested_at: datetime) -> dict[str, F.Column]:
    return {"_source_file": F.lit(source_file), "_snapshot_id": F.lit(snapshot_id), "_ingested_at": F.lit(ingested_at)}
