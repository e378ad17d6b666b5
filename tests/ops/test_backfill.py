"""Backfill by logical date: gold.daily_ratings built day by day equals a pandas computation of those
days from silver.ratings; a rerun changes no data; a stopped backfill resumes; a late rating in an old
day is picked up by the next regular run."""
from __future__ import annotations

import shutil
from datetime import date, datetime, time, timedelta, timezone

import pandas as pd
import pytest
from chispa import assert_approx_df_equality
from pyspark.sql import functions as F

from common import ledger, tables
from common.catalogue import SILVER_RATINGS
from common.config import load_config
from common.errors import ConfigError
from jobs.ops import backfill
from jobs.batch import daily
from jobs.runners import runner
from jobs.runners.runner import run_job

COLUMNS = ["event_date", "movieId", "rating_count", "rating_sum", "rating_mean"]


@pytest.fixture(scope="module")
def built(spark, tmp_path_factory):
    """A lake after extract, full_load and silver: what every test copies and backfills."""
    root = tmp_path_factory.mktemp("backfill") / "lake"
    cfg = load_config("test", [f"lake.root={root}"])
    for job in ("extract", "full_load", "silver"):
        run_job(spark, cfg, job)
    return root


@pytest.fixture
def cfg(built, tmp_path):
    shutil.copytree(built, tmp_path / "lake")
    return load_config("test", [f"lake.root={tmp_path / 'lake'}"])


def oracle(spark, cfg, first: date | None = None, last: date | None = None):
    """The daily figures computed with pandas from silver.ratings: the day from the epoch seconds in UTC."""
    rows = tables.read(spark, cfg, SILVER_RATINGS.name).select(
        "movieId", "rating", F.unix_timestamp("event_time").alias("seconds")).toPandas()
    rows["event_date"] = pd.to_datetime(rows["seconds"], unit="s", utc=True).dt.date
    if first is not None:
        rows = rows[(rows["event_date"] >= first) & (rows["event_date"] <= last)]
    out = rows.groupby(["event_date", "movieId"]).agg(rating_count=("rating", "size"), rating_sum=("rating", "sum"))
    out = out.reset_index()
    out["rating_mean"] = out["rating_sum"] / out["rating_count"]
    return spark.createDataFrame(out[COLUMNS].astype({"movieId": "int32", "rating_count": "int64"}),
                                 "event_date date, movieId int, rating_count long, rating_sum double, rating_mean double")


def gold(spark, cfg):
    return tables.read(spark, cfg, daily.TABLE).select(*COLUMNS)


def days_with_data(spark, cfg, n: int) -> list[date]:
    """The first n days on which silver.ratings has ratings."""
    rows = (tables.read(spark, cfg, SILVER_RATINGS.name).select(F.to_date("event_time").alias("d")).distinct()
            .orderBy("d").limit(n).collect())
    return [r.d for r in rows]


def daily_runs(spark, cfg) -> list:
    return (tables.read(spark, cfg, ledger.LEDGER_TABLE).where(F.col("job") == "daily")
            .orderBy("started_at").collect())


@pytest.mark.slow
def test_a_backfill_equals_pandas_for_its_days_and_a_rerun_changes_no_data(spark, cfg):
    # The first five days with ratings, and a range reaching back a week before them: days without ratings
    # are not built.
    with_data = days_with_data(spark, cfg, 5)
    first, last = with_data[0] - timedelta(days=7), with_data[-1]
    lines = backfill.run(spark, cfg, [], first, last)
    assert_approx_df_equality(gold(spark, cfg), oracle(spark, cfg, first, last), 1e-9, ignore_row_order=True)
    runs = daily_runs(spark, cfg)
    assert sorted(r.logical_date for r in runs) == with_data  # one ledger row per day with data, named by its day
    assert {r.status for r in runs} == {"succeeded"}
    span = (last - first).days + 1
    assert lines == [f"backfill daily: 5 of {span} day(s) run, {span - 5} skipped (built from the same inputs, "
                     f"or without data)"]

    # Again: every day is built from the same inputs, so nothing runs and the table does not move.
    version = tables.current_version(spark, cfg, daily.TABLE).version
    backfill.run(spark, cfg, ["daily"], first, last)
    assert tables.current_version(spark, cfg, daily.TABLE).version == version
    assert len(daily_runs(spark, cfg)) == 5

    # --rerun: each day of the range run again; a day with ratings gets one new version, the same data (Delta
    # commits nothing for a day without: no row to remove, none to add).
    before = gold(spark, cfg).collect()
    backfill.run(spark, cfg, ["daily"], first, last, rerun=True)
    assert len(daily_runs(spark, cfg)) == 5 + span
    assert tables.current_version(spark, cfg, daily.TABLE).version == version + 5
    assert_approx_df_equality(gold(spark, cfg), spark.createDataFrame(before, gold(spark, cfg).schema), 1e-9,
                              ignore_row_order=True)


def test_one_day_rewrites_that_day_only(spark, cfg):
    days = days_with_data(spark, cfg, 3)
    backfill.run(spark, cfg, [], days[0], days[2])
    others = gold(spark, cfg).where(F.col("event_date") != days[1]).collect()
    run_job(spark, cfg, "daily", days[1])
    commit = tables.delta_table(spark, cfg, daily.TABLE).history(1).first()
    assert commit.operation == "WRITE" and days[1].isoformat() in commit.operationParameters["predicate"]
    assert_approx_df_equality(gold(spark, cfg).where(F.col("event_date") != days[1]),
                              spark.createDataFrame(others, gold(spark, cfg).schema), 1e-9, ignore_row_order=True)
    assert_approx_df_equality(gold(spark, cfg), oracle(spark, cfg, days[0], days[2]), 1e-9, ignore_row_order=True)


def test_a_stopped_backfill_resumes_where_it_stopped(spark, cfg, monkeypatch):
    days = days_with_data(spark, cfg, 6)
    real_run_job, ran = runner.run_job, []

    def stopped_after_three(spark, cfg, name, logical_date=None):
        if len(ran) == 3:
            raise runner.Interrupted(15)  # SIGTERM, as a stopped worker gets it
        ran.append(logical_date)
        return real_run_job(spark, cfg, name, logical_date)

    monkeypatch.setattr(runner, "run_job", stopped_after_three)
    with pytest.raises(runner.Interrupted):
        backfill.run(spark, cfg, [], days[0], days[-1])
    monkeypatch.setattr(runner, "run_job", real_run_job)
    assert ran == days[:3]

    backfill.run(spark, cfg, [], days[0], days[-1])
    assert [r.logical_date for r in daily_runs(spark, cfg)] == days  # days 4..6 only, the second time
    assert_approx_df_equality(gold(spark, cfg), oracle(spark, cfg, days[0], days[-1]), 1e-9, ignore_row_order=True)


def test_the_regular_run_rebuilds_the_days_a_late_rating_changed(spark, cfg):
    first = run_job(spark, cfg, "daily")  # no logical date: every day with data, the first time
    assert first.counts["days"] == len(oracle(spark, cfg).select("event_date").distinct().collect())
    assert_approx_df_equality(gold(spark, cfg), oracle(spark, cfg), 1e-9, ignore_row_order=True)
    assert run_job(spark, cfg, "daily").counts["days"] == 0  # nothing changed

    # A late rating lands in an old day (as the stream merges one), and a re-rating changes another (to a
    # different value: 5.5 - r never equals r on MovieLens' half-star scale).
    old_day, other_day = days_with_data(spark, cfg, 2)
    ratings = tables.read(spark, cfg, SILVER_RATINGS.name)
    known = ratings.where(F.to_date("event_time") == other_day).limit(1).collect()[0]
    noon = datetime.combine(old_day, time(12), tzinfo=timezone.utc)
    late = spark.createDataFrame([(99_999, int(known.movieId), 4.5, noon)],
                                 ratings.select("userId", "movieId", "rating", "event_time").schema)
    tables.append(late, cfg, SILVER_RATINGS.name)
    (tables.delta_table(spark, cfg, SILVER_RATINGS.name).update(
        f"userId = {known.userId} AND movieId = {known.movieId}", {"rating": F.lit(5.5 - known.rating)}))

    again = run_job(spark, cfg, "daily")
    assert again.counts["days"] == 2
    assert_approx_df_equality(gold(spark, cfg), oracle(spark, cfg), 1e-9, ignore_row_order=True)


def test_a_backfill_of_a_task_that_is_not_dated_or_of_a_reversed_range_is_refused(spark, cfg):
    with pytest.raises(ConfigError, match="'gold' is not a dated task; dated tasks: daily"):
        backfill.check(["gold"], date(2018, 1, 1), date(2018, 1, 2))
    with pytest.raises(ConfigError, match="--from 2018-01-02 is after --to 2018-01-01"):
        backfill.check([], date(2018, 1, 2), date(2018, 1, 1))


def test_a_day_whose_data_committed_but_not_its_inputs_is_built_again(spark, cfg, monkeypatch):
    """A crash between a day's data commit and its inputs record: the day stays pending, never marked built."""
    day = days_with_data(spark, cfg, 1)[0]

    def crash(*args, **kwargs):
        raise runner.Interrupted(9)

    monkeypatch.setattr(daily, "record_inputs", crash)
    with pytest.raises(runner.Interrupted):
        backfill.run(spark, cfg, [], day, day)
    monkeypatch.undo()
    assert tables.read(spark, cfg, daily.TABLE).count() > 0  # the data was committed
    assert daily.pending(spark, cfg, day, day) == [day]
    backfill.run(spark, cfg, [], day, day)
    assert daily.pending(spark, cfg, day, day) == []
    assert_approx_df_equality(gold(spark, cfg), oracle(spark, cfg, day, day), 1e-9, ignore_row_order=True)


def test_a_dropped_table_is_built_again_whatever_the_state_says(spark, cfg):
    run_job(spark, cfg, "daily")
    shutil.rmtree(tables.location(cfg, daily.TABLE))
    days = days_with_data(spark, cfg, 2)
    assert daily.pending(spark, cfg, days[0], days[1]) == days  # the state's rows no longer count
    run_job(spark, cfg, "daily", days[0])  # a dated run recreates it with one day ...
    assert run_job(spark, cfg, "daily").counts["days"] > 1  # ... and the regular run brings back the rest
    assert_approx_df_equality(gold(spark, cfg), oracle(spark, cfg), 1e-9, ignore_row_order=True)
