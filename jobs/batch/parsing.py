"""Schema-on-read of raw delimited lines: typed columns plus a reason when a line is malformed.

The file's dialect (separator, quote, encoding: conf/schemas.yaml) parameterises one set of checks.
Open-source Spark ignores badRecordsPath and its CSV reader pads short rows with nulls, so the
checks are explicit column expressions over the raw line, in this order (the first failure wins):
line too long, undecodable bytes (UTF-8 files), unterminated quote, carriage return outside quotes,
wrong column count, null key, non-numeric field, missing required field, value out of range.
"""
from __future__ import annotations

import re

from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from common.schemas import Column, Dialect, SourceSchema

REASON = "_reason"
LINE = "value"  # the raw line, as spark.read.text names it (decoded, for a file that is not UTF-8)
TEXT_CHARS = 10_000  # a quarantined line's readable text stops here; its bytes are kept whole


def csv_options(dialect: Dialect) -> dict[str, str]:
    """Spark's CSV options for a dialect. RFC 4180 when quoted: a quote inside a field is doubled. An empty
    quote turns quoting off."""
    quote = dialect.quote or ""
    return {"sep": dialect.separator, "quote": quote, "escape": quote, "mode": "PERMISSIVE"}


def outside_quotes(line: SparkColumn, quote: str | None = '"') -> SparkColumn:
    """The line without its quoted spans (for a line whose quotes are balanced); the line itself when
    nothing is quoted. A quoted span, doubled quotes included ("a""b" is two spans), is matched in one
    left-to-right scan; a lookahead to the end of the line at every separator would be quadratic."""
    if quote is None:
        return line
    q = re.escape(quote)
    return F.when(F.instr(line, quote) == 0, line).otherwise(F.regexp_replace(line, f"{q}[^{q}]*+{q}", ""))


def field_count(line: SparkColumn, dialect: Dialect = Dialect()) -> SparkColumn:
    """Number of fields in a line; separators inside quotes do not split."""
    return _count(outside_quotes(line, dialect.quote), dialect.separator) + 1


def quote_count(line: SparkColumn, quote: str = '"') -> SparkColumn:
    return F.when(F.instr(line, quote) == 0, F.lit(0)).otherwise(_count(line, quote))


def _count(line: SparkColumn, text: str) -> SparkColumn:
    """Non-overlapping occurrences of `text`, left to right (as the CSV reader splits). octet_length reads
    the stored size, where length would decode the line to count its characters: this runs on every line."""
    size = len(text.encode("utf-8"))
    removed = F.octet_length(line) - F.octet_length(F.replace(line, F.lit(text), F.lit("")))
    return removed if size == 1 else F.floor(removed / size).cast("int")


def size_in_file(line: SparkColumn, encoding: str = "UTF-8") -> SparkColumn:
    """The line's bytes in its file: a decoded Latin-1 line's characters are one byte each there."""
    return F.octet_length(line) if encoding == "UTF-8" else F.length(line)


def fits(line: SparkColumn, max_line_bytes: int | None, encoding: str = "UTF-8") -> SparkColumn:
    """Whether the line is short enough to parse (always, without a cap)."""
    return F.lit(True) if max_line_bytes is None else size_in_file(line, encoding) <= max_line_bytes


def with_fields(lines: DataFrame, schema: SourceSchema, max_line_bytes: int | None = None) -> DataFrame:
    """Add `_raw` (every field as a string) and one typed column per declared column; a line over
    max_line_bytes is not parsed (its fields are null)."""
    raw_schema = ", ".join(f"`{c.name}` STRING" for c in schema.columns)
    line = F.col(LINE)
    options = csv_options(schema.dialect)
    parsed = lines.withColumn("_raw", F.from_csv(F.when(fits(line, max_line_bytes, schema.dialect.encoding), line),
                                                     raw_schema, options))
    return parsed.select("*", *[_typed(c).alias(c.name) for c in schema.columns])


def _typed(col: Column) -> SparkColumn:
    raw = F.col(f"_raw.`{col.name}`")
    return raw if col.type == "string" else F.trim(raw).try_cast(col.spark_type)


def with_reason(fields: DataFrame, schema: SourceSchema, max_line_bytes: int | None = None) -> DataFrame:
    """Add `_reason` for a line: null for a good line, else why it is malformed (from with_fields).
    The size check comes first, so a line over max_line_bytes is never scanned by the others."""
    line = F.col(LINE)
    n = len(schema.columns)
    dialect = schema.dialect
    structural = [
        (~fits(line, max_line_bytes, dialect.encoding), F.format_string(
            f"line too long: %d bytes, over sources.max_line_bytes ({max_line_bytes}); not parsed",
            size_in_file(line, dialect.encoding))),
    ]
    if dialect.encoding == "UTF-8":  # a Latin-1 file's lines were decoded from bytes that all mean a character
        structural.append((~F.is_valid_utf8(line), F.lit("undecodable bytes: the line is not valid UTF-8")))
    if dialect.quote is not None:
        structural.append((quote_count(line, dialect.quote) % 2 == 1, F.lit(
            "unterminated quote: the quoted field runs past the end of the line (a newline inside quotes?)")))
    structural += [
        # The reader ends lines at \n only (as the landing manifest counts them); most CSV readers
        # would end one at this CR too. Inside quotes a CR is part of the value, as RFC 4180 allows.
        (F.instr(outside_quotes(line, dialect.quote), "\r") > 0,
         F.lit("carriage return (CR) outside quotes: other CSV readers end the line there")),
        (field_count(line, dialect) != n,
         F.format_string(f"wrong column count: %d fields, expected {n}", field_count(line, dialect))),
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


def bad_rows(classified: DataFrame, source: str, metadata: list[str], encoding: str = "UTF-8") -> DataFrame:
    """Quarantine rows: the line as text (bad bytes shown as U+FFFD; at most TEXT_CHARS characters, so
    a huge line is not copied whole again) and as its exact bytes (a decoded Latin-1 line encoded back:
    the same bytes), and why."""
    line = F.col(LINE)
    line_bytes = line.cast("binary") if encoding == "UTF-8" else F.encode(line, encoding)
    return classified.where(F.col(REASON).isNotNull()).select(
        F.lit(source).alias("source"),
        F.when(F.octet_length(line) <= TEXT_CHARS, F.make_valid_utf8(line))
         .when(F.length(line) <= TEXT_CHARS, F.make_valid_utf8(line))
         .otherwise(F.concat(F.make_valid_utf8(F.substring(line, 1, TEXT_CHARS)), F.lit("…"))).alias("line"),
        line_bytes.alias("line_bytes"),
        F.col(REASON).alias("reason"),
        *metadata,
    )
