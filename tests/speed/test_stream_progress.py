"""How far each stream got: kept in state.stream_progress, so it outlives Delta's log retention, and
checked against the checkpoint, so an older checkpoint restored from a copy is refused."""
from __future__ import annotations

import os
import shutil
import time

import pytest
from pyspark.sql import functions as F

from common import tables
from common.catalogue import BRONZE_RATING_EVENTS, GOLD_MOVIE_STATS_REALTIME, SILVER_RATINGS, STATE_STREAM_PROGRESS
from common.errors import SourceError
from jobs.batch import silver
from jobs.runners.runner import run_job
from jobs.speed.simulate import events_dir
from jobs.speed.speed import checkpoint
from tests.lake_checks import assert_serving_equals_recompute, silver_ratings
from tests.speed.test_speed_layer import T0, ev, tiny, tiny_lake, write_events  # noqa: F401 (fixtures)

OLD, NEW = "speed_ratings_merge", "speed_ratings_merge_2"
PROGRESS = STATE_STREAM_PROGRESS.name


def expire_the_log_of(spark, cfg, name: str) -> None:
    """Make every commit of the table so far older than a one-day log retention, then commit once with
    a checkpoint: Delta's cleanup deletes the expired commits, as it would after 30 days by default."""
    loc = tables.location(cfg, name)
    log = os.path.join(loc, "_delta_log")
    month_ago = time.time() - 30 * 86400
    for entry in os.listdir(log):
        os.utime(os.path.join(log, entry), (month_ago, month_ago))
    spark.sql(f"ALTER TABLE delta.`{loc}` SET TBLPROPERTIES "
              "('delta.logRetentionDuration' = 'interval 1 days', 'delta.deletedFileRetentionDuration' = 'interval 1 days', "
              "'delta.checkpointInterval' = '1')")


def test_a_stopped_streams_events_survive_a_recompute_after_silvers_log_expired(spark, tiny):
    for name, line in (("a", ev(3, 12, 5.0, T0 + 10)), ("b", ev(4, 11, 2.0, T0 + 20))):
        write_events(tiny, name, [line])
        run_job(spark, tiny, "speed")  # the old stream's batches 0 and 1
    expire_the_log_of(spark, tiny, SILVER_RATINGS.name)
    for name in os.listdir(events_dir(tiny)):  # the landing zone keeps new files only
        os.unlink(os.path.join(events_dir(tiny), name))
    renamed = tiny.with_overrides({"stream.query_name": NEW})
    write_events(renamed, "c", [ev(5, 10, 1.5, T0 + 30)])
    run_job(spark, renamed, "speed")  # another stream merges on, and its commits checkpoint the log
    history = tables.delta_table(spark, tiny, SILVER_RATINGS.name).history().select("version", "userMetadata").collect()
    assert min(r.version for r in history) > 0, "the cleanup deleted no commit: the test proves nothing"
    assert not [r for r in history if (r.userMetadata or "").startswith(f"{OLD}:")]

    run_job(spark, renamed, "silver")
    assert silver.merged_progress(spark, renamed) == {OLD: 1, NEW: 0}
    assert silver_ratings(spark, renamed).where("userId >= 3").orderBy("userId").collect() == [
        (3, 12, 5.0, T0 + 10), (4, 11, 2.0, T0 + 20), (5, 10, 1.5, T0 + 30)]
    run_job(spark, renamed, "gold")
    assert_serving_equals_recompute(spark, renamed)


def test_a_merge_whose_progress_was_not_recorded_is_kept_by_a_recompute(spark, tiny, monkeypatch):
    # The process dies between batch 1's MERGE and its progress record: the recompute finds the
    # MERGE in the few commits since the last record, and keeps its event.
    from common import stream_progress
    write_events(tiny, "a", [ev(3, 12, 5.0, T0 + 10)])
    run_job(spark, tiny, "speed")
    record = stream_progress.record

    def crash_on_batch_1(spark_, cfg_, marks, txn=None):
        if txn is not None and txn.version == 1:
            raise RuntimeError("simulated crash after the MERGE")
        return record(spark_, cfg_, marks, txn)

    monkeypatch.setattr(stream_progress, "record", crash_on_batch_1)
    write_events(tiny, "b", [ev(4, 11, 2.0, T0 + 20)])
    with pytest.raises(Exception, match="simulated crash after the MERGE"):
        run_job(spark, tiny, "speed")
    monkeypatch.setattr(stream_progress, "record", record)
    assert stream_progress.read(spark, tiny)[OLD].batch_id == 0
    run_job(spark, tiny, "silver")
    assert silver_ratings(spark, tiny).where("userId = 4").collect() == [(4, 11, 2.0, T0 + 20)]
    assert stream_progress.read(spark, tiny)[OLD].batch_id == 1  # the recompute recorded what it found
    run_job(spark, tiny, "speed")  # the replay of batch 1 changes nothing
    run_job(spark, tiny, "gold")
    assert_serving_equals_recompute(spark, tiny)


def test_an_older_checkpoint_restored_from_a_copy_is_refused_and_nothing_is_written(spark, tiny, tmp_path):
    write_events(tiny, "a", [ev(3, 12, 5.0, T0 + 10)])
    run_job(spark, tiny, "speed")
    copy = tmp_path / "checkpoint-copy"
    shutil.copytree(checkpoint(tiny), copy)
    write_events(tiny, "b", [ev(4, 11, 2.0, T0 + 20)])
    run_job(spark, tiny, "speed")  # batch 1
    shutil.rmtree(checkpoint(tiny))
    shutil.copytree(copy, checkpoint(tiny))  # restored: it ends at batch 0
    write_events(tiny, "c", [ev(5, 10, 1.5, T0 + 30)])
    watched = [name for name in (SILVER_RATINGS.name, BRONZE_RATING_EVENTS.name, GOLD_MOVIE_STATS_REALTIME.name,
                                 PROGRESS) if tables.exists(spark, tiny, name)]
    before = {name: tables.current_version(spark, tiny, name).version for name in watched}

    with pytest.raises(SourceError, match=r"ends at micro-batch 0, behind silver.ratings, which holds micro-batches "
                                          r"up to 1 of stream 'speed_ratings_merge'.*stream.query_name=<new name>"):
        run_job(spark, tiny, "speed")
    assert {name: tables.current_version(spark, tiny, name).version for name in watched} == before

    renamed = tiny.with_overrides({"stream.query_name": NEW})  # the recovery the message names
    run_job(spark, renamed, "speed")
    assert silver_ratings(spark, renamed).where("userId >= 3").orderBy("userId").collect() == [
        (3, 12, 5.0, T0 + 10), (4, 11, 2.0, T0 + 20), (5, 10, 1.5, T0 + 30)]
    logged = tables.read(spark, renamed, BRONZE_RATING_EVENTS.name)
    assert logged.where(F.col("_stream") == NEW).count() == 3  # the new stream read the landing zone anew
    run_job(spark, renamed, "silver")
    run_job(spark, renamed, "gold")
    assert_serving_equals_recompute(spark, renamed)
