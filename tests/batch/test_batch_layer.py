"""The batch layer end to end on generated data: extract → full_load → silver → gold, in a temporary lake."""
from __future__ import annotations

import json
import logging

import pandas as pd
import pytest
from chispa import assert_approx_df_equality, assert_df_equality
from pyspark.sql import functions as F

from common import ledger, raw_zone, tables
from common.catalogue import (
    BRONZE_LINKS, BRONZE_MOVIES, BRONZE_RATINGS, BRONZE_TAGS, GOLD_GENRE_STATS, GOLD_MOVIE_STATS_BATCH,
    GOLD_USER_ACTIVITY, QUARANTINE_LINKS, QUARANTINE_MOVIES, QUARANTINE_RATINGS, QUARANTINE_TAGS, SILVER_LINKS,
    SILVER_MOVIES, SILVER_RATINGS, SILVER_TAGS, of_source)
from common.config import load_config
from common.errors import SensorTimeout
from common.schemas import source_schemas
from jobs.runners.runner import run_job

BATCH = ["extract", "full_load", "silver", "gold"]
LOADED = [BRONZE_RATINGS.name, BRONZE_MOVIES.name, BRONZE_TAGS.name, BRONZE_LINKS.name,
          QUARANTINE_RATINGS.name, QUARANTINE_MOVIES.name, QUARANTINE_TAGS.name, QUARANTINE_LINKS.name,
          SILVER_RATINGS.name, SILVER_MOVIES.name, SILVER_TAGS.name, SILVER_LINKS.name,
          GOLD_MOVIE_STATS_BATCH.name, GOLD_GENRE_STATS.name, GOLD_USER_ACTIVITY.name]


def run_batch(spark, cfg) -> dict:
    return {job: run_job(spark, cfg, job) for job in BATCH}


@pytest.fixture(scope="module")
def loaded(spark, tmp_path_factory):
    """One batch run shared by the read-only tests of this module."""
    cfg = load_config("test", [f"lake.root={tmp_path_factory.mktemp('batch')}/lake"])
    return cfg, run_batch(spark, cfg)


def test_every_raw_line_is_loaded_or_quarantined(spark, loaded):
    cfg, results = loaded
    snapshot = raw_zone.find(cfg)
    for source in ("ratings", "movies", "tags", "links"):
        landed = snapshot.data_rows(f"{source}.csv")  # counted by bytes at landing, not by Spark
        bronze = tables.read(spark, cfg, of_source("bronze", source).name).count()
        quarantined = tables.read(spark, cfg, of_source("quarantine", source).name).count()
        assert bronze + quarantined == landed
        assert results["full_load"].counts[f"{source}.loaded"] == bronze
        assert results["full_load"].counts[f"{source}.quarantined"] == quarantined == 0


def test_bronze_carries_ingestion_metadata(spark, loaded):
    cfg, _ = loaded
    snapshot = raw_zone.find(cfg)
    meta = tables.read(spark, cfg, BRONZE_RATINGS.name).select("_source_file", "_snapshot_id").distinct().collect()
    assert [(r._snapshot_id, r._source_file.endswith(f"{snapshot.id}/ratings.csv")) for r in meta] == [(snapshot.id, True)]


def test_bronze_keeps_statistics_on_its_data_columns_only(spark, loaded):
    """The file statistics Delta committed name the data columns, not the ingest metadata."""
    cfg, _ = loaded
    adds = spark.read.json(f"{tables.location(cfg, BRONZE_RATINGS.name)}/_delta_log/*.json").where("add IS NOT NULL")
    stats = [json.loads(r.stats) for r in adds.select("add.stats").collect()]
    assert stats and all(set(s["minValues"]) == {"userId", "movieId", "rating", "timestamp"} for s in stats)


def test_silver_ratings_equal_an_oracle_computed_with_pandas(spark, loaded):
    cfg, _ = loaded
    raw = pd.read_csv(raw_zone.find(cfg).file("ratings.csv"))
    latest = raw.sort_values(["timestamp", "rating"]).groupby(["userId", "movieId"], as_index=False).last()
    expected = spark.createDataFrame(latest[["userId", "movieId", "rating", "timestamp"]]) \
        .select(F.col("userId").cast("int"), F.col("movieId").cast("int"), "rating",
                F.timestamp_seconds("timestamp").alias("event_time"))
    actual = tables.read(spark, cfg, SILVER_RATINGS.name)
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_gold_movie_stats_equal_an_oracle_computed_with_pandas(spark, loaded):
    cfg, _ = loaded
    snapshot = raw_zone.find(cfg)
    ratings = pd.read_csv(snapshot.file("ratings.csv"))
    m = cfg["gold.bayes_min_votes"]
    c = ratings.rating.mean()
    oracle = ratings.groupby("movieId").rating.agg(["count", "sum"]).reset_index()
    oracle["bayes"] = (c * m + oracle["sum"]) / (oracle["count"] + m)
    expected = spark.createDataFrame(oracle).select(
        F.col("movieId").cast("int"), F.col("count").alias("rating_count"), F.col("sum").alias("rating_sum"),
        F.col("bayes").alias("bayes_avg"))
    actual = tables.read(spark, cfg, GOLD_MOVIE_STATS_BATCH.name) \
        .select("movieId", "rating_count", "rating_sum", "bayes_avg")
    assert_approx_df_equality(actual, expected, precision=1e-9, ignore_row_order=True, ignore_nullable=True)


def test_gold_views_are_stamped_with_the_cutoff(spark, loaded):
    cfg, _ = loaded
    cutoff = pd.Timestamp(pd.read_csv(raw_zone.find(cfg).file("ratings.csv")).timestamp.max(), unit="s")
    for view in (GOLD_MOVIE_STATS_BATCH.name, GOLD_GENRE_STATS.name, GOLD_USER_ACTIVITY.name):
        stamps = tables.read(spark, cfg, view).select("cutoff_event_time").distinct().collect()
        assert [pd.Timestamp(r[0]) for r in stamps] == [cutoff]


def test_ledger_records_each_run_with_versions_and_counts(spark, loaded):
    cfg, _ = loaded
    runs = tables.read(spark, cfg, ledger.LEDGER_TABLE).orderBy("started_at").collect()
    assert [r.job for r in runs] == BATCH
    assert {r.status for r in runs} == {"succeeded"}
    silver = runs[2]
    assert sorted((t.table, t.version) for t in silver.reads) == \
        [(t.name, 0) for t in (BRONZE_LINKS, BRONZE_MOVIES, BRONZE_MOVIES, BRONZE_RATINGS, BRONZE_TAGS)]
    # bronze.movies twice: silver.movies conforms it, silver.ratings keeps the ratings of its movies
    assert {t.table: t.rows for t in silver.writes}[SILVER_RATINGS.name] == \
        tables.read(spark, cfg, SILVER_RATINGS.name).count()
    assert runs[1].counts["ratings.loaded"] == 5000
    assert all(r.ended_at >= r.started_at for r in runs)


def test_a_failed_run_is_recorded_as_failed(spark, cfg):
    with pytest.raises(SensorTimeout, match="sensor gave up"):
        run_job(spark, cfg.with_overrides({"sensor.timeout_s": 0.2, "sensor.poll_s": 0.1}), "full_load")
    (row,) = tables.read(spark, cfg, ledger.LEDGER_TABLE).collect()
    assert (row.job, row.status) == ("full_load", "failed")
    assert row.error.startswith("SensorTimeout: sensor gave up")


def test_rerunning_each_job_gives_the_same_data_and_one_new_version(spark, cfg, caplog):
    run_batch(spark, cfg)
    before = {t: (tables.current_version(spark, cfg, t).version, tables.read(spark, cfg, t).collect()) for t in LOADED}
    snapshot_before = raw_zone.find(cfg).manifest
    with caplog.at_level(logging.INFO, logger="lakejobs.full_load"):
        run_batch(spark, cfg)
    # The full-load says which file it is on, n of N: the first and the last always, the others when
    # enough time has passed since the last line; then how long it took.
    lines = [f"full_load: file {n} of {len(files)} ({f})"
             for files in [[s.file for s in source_schemas(cfg["raw.dataset"]).values()]] for n, f in enumerate(files, 1)]
    said = [r.getMessage() for r in caplog.records if r.name == "lakejobs.full_load"]
    steps = [m.split(",")[0] for m in said[:-1]]
    assert steps[0] == lines[0] and steps[-1] == lines[-1] and set(steps) <= set(lines)
    assert said[-1].startswith(f"full_load: file: {len(lines)} done in ")
    assert raw_zone.find(cfg).manifest == snapshot_before  # extract: a no-op
    for t in LOADED:
        version, rows = before[t]
        # One new commit per table; Delta writes none when an empty table is replaced by nothing.
        assert tables.current_version(spark, cfg, t).version == (version + 1 if rows else version), t
        after = tables.read(spark, cfg, t)
        expected = spark.createDataFrame(rows, after.schema)
        # What says when (_ingested_at) and which input version (silver_version) moves with the rerun.
        ignore = [c for c in after.columns if c in ("_ingested_at", "silver_version")]
        assert_df_equality(after.drop(*ignore), expected.drop(*ignore), ignore_row_order=True)
        if "silver_version" in after.columns:
            silver_now = tables.current_version(spark, cfg, SILVER_RATINGS.name).version
            assert {r.silver_version for r in after.select("silver_version").distinct().collect()} <= {silver_now}, t


def test_a_rerun_after_maintain_reconciles_the_empty_quarantine(spark, cfg):
    """VACUUM records its own commits in a table's history, and Delta commits nothing when an empty
    quarantine is replaced by nothing: the rerun's rows come from its own commit (none: 0 rows), not
    from the newest one, whose metrics have no row count. Before: TypeError in the reconciliation."""
    for job in ("extract", "full_load"):
        run_job(spark, cfg, job)
    upkeep = {"maintain.tables": [QUARANTINE_RATINGS.name], "maintain.every_h": 0.0}
    run_job(spark, cfg.with_overrides(upkeep), "maintain")
    assert tables.delta_table(spark, cfg, QUARANTINE_RATINGS.name).history(1).first()["operation"] == "VACUUM END"
    bronze = tables.read(spark, cfg, BRONZE_RATINGS.name).drop("_ingested_at").collect()
    rerun = run_job(spark, cfg, "full_load")
    assert rerun.counts["ratings.quarantined"] == 0 and rerun.counts["ratings.loaded"] == len(bronze)
    reloaded = tables.read(spark, cfg, BRONZE_RATINGS.name).drop("_ingested_at")
    assert_df_equality(reloaded, spark.createDataFrame(bronze, reloaded.schema), ignore_row_order=True)
