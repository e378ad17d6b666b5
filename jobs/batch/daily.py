"""Job `daily` (batch layer, gold, dated): gold.daily_ratings, per event date (UTC) and movie: ratings, their sum and mean.

With a logical date it rebuilds that day alone (`replaceWhere`: one atomic commit, the other days untouched);
without one, every day whose ratings changed since it was last built: late events land in old days, and the
pipeline's regular run picks them up. Which silver rows each day was built from is kept apart from the data,
in state.daily_inputs (per day: rows and a fingerprint), which `lakejobs backfill` reads to skip days already
built from the same inputs.
"""
from __future__ import annotations

from datetime import date, datetime, timezone

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from common import catalogue, tables
from common.config import Config
from common.ledger import RunResult

TABLE = catalogue.GOLD_DAILY_RATINGS.name
INPUTS = catalogue.STATE_DAILY_INPUTS.name
SOURCE = catalogue.SILVER_RATINGS.name
# The version of how a day is built (daily_ratings below): raise it when that changes, and every day counts
# as changed, so the next regular run rebuilds them all.
BUILD = 1


def run(spark: SparkSession, cfg: Config, logical_date: date | None = None) -> RunResult:
    source = tables.current_version(spark, cfg, SOURCE)
    ratings = with_event_date(tables.read(spark, cfg, SOURCE, source.version))
    if logical_date is not None:
        ratings = ratings.where(F.col("event_date") == F.lit(logical_date))
    inputs_now = fingerprints(ratings).cache()
    days = [logical_date] if logical_date is not None else changed_days(spark, cfg, inputs_now)
    result = RunResult(reads=[source], counts={"days": len(days)})
    if days:
        first_build = not tables.exists(spark, cfg, TABLE)
        # Retried on a conflict with a concurrent writer (maintain's OPTIMIZE): the input is pinned to one version.
        result.writes.append(tables.with_retry(lambda: write_days(spark, cfg, ratings, days)))
        result.writes.append(record_inputs(spark, cfg, inputs_now, days, source.version, replace=first_build))
        result.notes.append(f"rebuilt {_days(days)}")
    else:
        result.notes.append("no day changed since the last build")
    inputs_now.unpersist()
    return result


def pending(spark: SparkSession, cfg: Config, first: date, last: date) -> list[date]:
    """The days of first..last whose ratings differ from what they were last built from (`lakejobs backfill`)."""
    ratings = with_event_date(tables.read(spark, cfg, SOURCE)).where(F.col("event_date").between(first, last))
    return changed_days(spark, cfg, fingerprints(ratings), within=(first, last))


def with_event_date(ratings: DataFrame) -> DataFrame:
    """The rating's day in UTC, from its epoch seconds: whatever the session's time zone."""
    return ratings.withColumn("event_date",
                              F.date_from_unix_date(F.floor(F.unix_seconds("event_time") / 86400).cast("int")))


def fingerprints(ratings: DataFrame) -> DataFrame:
    """(event_date, rows, fingerprint): per day, its rows and an order-free hash of them (the XOR of each
    row's hash; (userId, movieId) is silver's key, so no two rows are equal and cancel out)."""
    row_hash = F.xxhash64("userId", "movieId", "rating", "event_time")
    return ratings.groupBy("event_date").agg(F.count("*").alias("rows"), F.bit_xor(row_hash).alias("fingerprint"))


def daily_ratings(ratings: DataFrame) -> DataFrame:
    """Per event date and movie: rating_count, rating_sum, rating_mean (the sum adds up across days)."""
    return (ratings.groupBy("event_date", "movieId")
            .agg(F.count("*").alias("rating_count"), F.sum("rating").alias("rating_sum"))
            .withColumn("rating_mean", F.col("rating_sum") / F.col("rating_count"))
            .withColumn("event_month", F.trunc("event_date", "month")))


def built_inputs(spark: SparkSession, cfg: Config) -> DataFrame | None:
    """(event_date, rows, fingerprint) each day was last built from, by this BUILD; None when nothing is
    built (no state yet, or the table is gone: its days are then built again, whatever the state says)."""
    if not tables.exists(spark, cfg, INPUTS) or not tables.exists(spark, cfg, TABLE):
        return None
    return tables.read(spark, cfg, INPUTS).where(F.col("build") == BUILD).select("event_date", "rows", "fingerprint")


def changed_days(spark: SparkSession, cfg: Config, inputs_now: DataFrame,
                 within: tuple[date, date] | None = None) -> list[date]:
    """Days whose rows differ from those they were last built from (new days, days with changed or late
    rows, days whose rows are all gone), optionally only those within (first, last)."""
    built = built_inputs(spark, cfg)
    if built is None:
        changed = inputs_now.select("event_date")
    else:
        now, then = inputs_now.alias("now"), built.alias("then")
        changed = (now.join(then, "event_date", "full_outer")
                   .where(~F.coalesce(F.col("now.rows") == F.col("then.rows"), F.lit(False))
                          | ~F.coalesce(F.col("now.fingerprint") == F.col("then.fingerprint"), F.lit(False)))
                   .where(F.coalesce("now.rows", F.lit(0)) + F.coalesce("then.rows", F.lit(0)) > 0)
                   .select("event_date"))
    if within is not None:
        changed = changed.where(F.col("event_date").between(*within))
    return sorted(r.event_date for r in changed.collect())


def write_days(spark: SparkSession, cfg: Config, ratings: DataFrame, days: list[date]):
    """Replace exactly these days of gold.daily_ratings in one commit. The predicate names the months
    too (the table is partitioned by month: common/catalogue.py), so that Delta sees which partitions
    the write touches (a concurrent write to other months does not conflict with it)."""
    rows = daily_ratings(ratings.where(F.col("event_date").isin(days)))
    if not tables.exists(spark, cfg, TABLE):
        return tables.overwrite(rows, cfg, TABLE)
    months = sorted({d.replace(day=1) for d in days})
    predicate = f"event_month IN ({_dates(months)}) AND event_date IN ({_dates(days)})"
    return tables.replace_where(rows, cfg, TABLE, predicate)


def record_inputs(spark: SparkSession, cfg: Config, inputs_now: DataFrame, days: list[date], version: int,
                  replace: bool):
    """Each rebuilt day's rows and fingerprint (rows 0 for a day with none left), written after its data is
    committed: a crash in between leaves the day to be rebuilt again, never marked built when it is not.
    Upserted; replacing the whole state when the table was just created (other days' rows are stale)."""
    built_at = datetime.now(timezone.utc)
    rebuilt = (spark.createDataFrame([(d,) for d in days], "event_date DATE")
               .join(inputs_now, "event_date", "left")
               .select("event_date", F.coalesce("rows", F.lit(0)).cast("long").alias("rows"),
                       F.coalesce("fingerprint", F.lit(0)).cast("long").alias("fingerprint"),
                       F.lit(BUILD).alias("build"), F.lit(version).cast("long").alias("silver_version"),
                       F.lit(built_at).alias("built_at")))
    if replace:
        return tables.overwrite(rebuilt, cfg, INPUTS)
    return tables.upsert(rebuilt, cfg, INPUTS)


def _dates(days: list[date]) -> str:
    return ", ".join(f"DATE'{d.isoformat()}'" for d in days)


def _days(days: list[date]) -> str:
    return f"day {days[0]}" if len(days) == 1 else f"{len(days)} days between {days[0]} and {days[-1]}"
