"""Schema-on-read of raw CSV lines: typed columns plus a reason when a line is malformed.

Open-source Spark ignores badRecordsPath and its CSV reader pads short rows with nulls, so the
checks are explicit column expressions over the raw line, in this order (the first failure wins):
line too long, undecodable bytes, unterminated quote, carriage return outside quotes, wrong column
count, null key, non-numeric field, missing required field, value out of range.
"""
from __future__ import annotations

from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from common.schemas import Column, SourceSchema

REASON = "_reason"
LINE = "value"  # the raw line, as spark.read.text names it
# RFC 4180 as MovieLens writes it: fields may be quoted, a quote inside one is doubled.
CSV_OPTIONS = {"sep": ",", "quote": '"', "escape": '"', "mode": "PERMISSIVE"}
# A quoted span, doubled quotes included ("a""b" is two spans): what is left is outside quotes. One
# left-to-right scan; a lookahead to the end of the line at every comma would be quadratic in its length.
_QUOTED_SPAN = '"[^"]*+"'
TEXT_CHARS = 10_000  # a quarantined line's readable text stops here; its bytes are kept whole


def outside_quotes(line: SparkColumn) -> SparkColumn:
    """The line without its quoted spans (for a line whose quotes are balanced)."""
    return F.when(F.instr(line, '"') == 0, line).otherwise(F.regexp_replace(line, _QUOTED_SPAN, ""))


def field_count(line: SparkColumn) -> SparkColumn:
    """Number of fields in a CSV line; commas inside quotes do not split."""
    return _count_byte(outside_quotes(line), ",") + 1


def quote_count(line: SparkColumn) -> SparkColumn:
    return F.when(F.instr(line, '"') == 0, F.lit(0)).otherwise(_count_byte(line, '"'))


def _count_byte(line: SparkColumn, char: str) -> SparkColumn:
    # An ASCII character is one byte. octet_length reads the stored size, where length would decode
    # the line to count its characters: this runs on every line loaded.
    return F.octet_length(line) - F.octet_length(F.replace(line, F.lit(char), F.lit("")))


def fits(line: SparkColumn, max_line_bytes: int | None) -> SparkColumn:
    """Whether the line is short enough to parse (always, without a cap)."""
    return F.lit(True) if max_line_bytes is None else F.octet_length(line) <= max_line_bytes


def with_fields(lines: DataFrame, schema: SourceSchema, max_line_bytes: int | None = None) -> DataFrame:
    """Add `_raw` (every field as a string) and one typed column per declared column; a line over
    max_line_bytes is not parsed (its fields are null)."""
    raw_schema = ", ".join(f"`{c.name}` STRING" for c in schema.columns)
    line = F.col(LINE)
    parsed = lines.withColumn("_raw", F.from_csv(F.when(fits(line, max_line_bytes), line), raw_schema, CSV_OPTIONS))
    return parsed.select("*", *[_typed(c).alias(c.name) for c in schema.columns])


def _typed(col: Column) -> SparkColumn:
    raw = F.col(f"_raw.`{col.name}`")
    return raw if col.type == "string" else F.trim(raw).try_cast(col.spark_type)


def with_reason(fields: DataFrame, schema: SourceSchema, max_line_bytes: int | None = None) -> DataFrame:
    """Add `_reason` for a CSV line: null for a good line, else why it is malformed (from with_fields).
    The size check comes first, so a line over max_line_bytes is never scanned by the others."""
    line = F.col(LINE)
    n = len(schema.columns)
    structural = [
        (~fits(line, max_line_bytes), F.format_string(
            f"line too long: %d bytes, over sources.max_line_bytes ({max_line_bytes}); not parsed", F.octet_length(line))),
        (~F.is_valid_utf8(line), F.lit("undecodable bytes: the line is not valid UTF-8")),
        (quote_count(line) % 2 == 1,
         F.lit("unterminated quote: the quoted field runs past the end of the line (a newline inside quotes?)")),
        # The reader ends lines at \n only (as the landing manifest counts them); most CSV readers
        # would end one at this CR too. Inside quotes a CR is part of the value, as RFC 4180 allows.
        (F.instr(outside_quotes(line), "\r") > 0,
         F.lit("carriage return (CR) outside quotes: other CSV readers end the line there")),
        (field_count(line) != n, F.format_string(f"wrong column count: %d fields, expected {n}", field_count(line))),
    ]
    return fields.withColumn(REASON, first_failure(structural + field_checks(schema)))


def field_checks(schema: SourceSchema) -> list[tuple[SparkColumn, SparkColumn]]:
    """(condition, message) pairs on `_raw` and the typed columns, in the order they are reported."""
    checks: list[tuple[SparkColumn, SparkColumn]] = []
    for c in schema.columns:
        raw = F.col(f"_raw.`{c.name}`")
        if c.key:
            checks.append((raw.isNull() | (F.trim(raw) == ""), F.lit(f"null key: {c.name} is empty")))
    for c in schema.columns:
        raw = F.col(f"_raw.`{c.name}`")
        if c.type != "string":
            checks.append((raw.isNotNull() & F.col(c.name).isNull(),
                           F.format_string(f"non-numeric {c.name}: '%s' is not a valid {c.type}", raw)))
    for c in schema.columns:
        if c.required and not c.key:
            checks.append((F.col(c.name).isNull(), F.lit(f"missing {c.name}")))
    for c in schema.columns:
        if c.min is not None or c.max is not None:
            low = F.col(c.name) < c.min if c.min is not None else F.lit(False)
            high = F.col(c.name) > c.max if c.max is not None else F.lit(False)
            checks.append((low | high, F.format_string(
                f"{c.name} out of range: %s not in [{c.min}, {c.max}]", F.col(c.name).cast("string"))))
    return checks


def first_failure(checks: list[tuple[SparkColumn, SparkColumn]]) -> SparkColumn:
    """The message of the first condition that holds, or null."""
    reason = F.lit(None).cast("string")
    for condition, message in reversed(checks):
        reason = F.when(condition, message).otherwise(reason)
    return reason


def classify_json(lines: DataFrame, schema: SourceSchema) -> DataFrame:
    """JSON lines (column `value`) → typed columns + `_reason`. Numbers may come quoted or not."""
    raw_schema = ", ".join([f"`{c.name}` STRING" for c in schema.columns] + ["_corrupt STRING"])
    options = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": "_corrupt"}
    parsed = lines.withColumn("_raw", F.from_json(F.col(LINE), raw_schema, options))
    typed = parsed.select("*", *[_typed(c).alias(c.name) for c in schema.columns])
    not_an_object = F.col("_raw").isNull() | F.col("_raw._corrupt").isNotNull() | ~F.trim(F.col(LINE)).startswith("{")
    structural = [
        (~F.is_valid_utf8(F.col(LINE)), F.lit("undecodable bytes: the line is not valid UTF-8")),
        (not_an_object, F.lit("not a JSON object")),
    ]
    return typed.withColumn(REASON, first_failure(structural + field_checks(schema)))


def classify(lines: DataFrame, schema: SourceSchema, max_line_bytes: int | None = None) -> DataFrame:
    """Raw lines (column `value`, header already removed) → typed columns + `_reason`."""
    return with_reason(with_fields(lines, schema, max_line_bytes), schema, max_line_bytes)


def good_rows(classified: DataFrame, schema: SourceSchema, metadata: list[str]) -> DataFrame:
    return classified.where(F.col(REASON).isNull()).select(*[c.name for c in schema.columns], *metadata)


def bad_rows(classified: DataFrame, source: str, metadata: list[str]) -> DataFrame:
    """Quarantine rows: the line as text (bad bytes shown as U+FFFD; at most TEXT_CHARS characters, so
    a huge line is not copied whole again) and as its exact bytes, and why."""
    line = F.col(LINE)
    return classified.where(F.col(REASON).isNotNull()).select(
        F.lit(source).alias("source"),
        F.when(F.octet_length(line) <= TEXT_CHARS, F.make_valid_utf8(line))
         .when(F.length(line) <= TEXT_CHARS, F.make_valid_utf8(line))
         .otherwise(F.concat(F.make_valid_utf8(F.substring(line, 1, TEXT_CHARS)), F.lit("…"))).alias("line"),
        F.col(LINE).cast("binary").alias("line_bytes"),
        F.col(REASON).alias("reason"),
        *metadata,
    )
