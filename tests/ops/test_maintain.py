"""The maintain job: OPTIMIZE and VACUUM beside the running stream, with the serving view equal to
a full recompute and silver to the oracle; the retention rules; its own schedule."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest
from chispa import assert_df_equality

from common import tables
from common.catalogue import (
    BRONZE_RATING_EVENTS, GOLD_MOVIE_STATS_REALTIME, QUARANTINE_RATING_EVENTS, SILVER_RATINGS, STATE_LEDGER)
from common.errors import ConfigError
from jobs.runners.runner import run_job
from jobs.speed.simulate import events_dir
from jobs.speed.speed import checkpoint
from tests import oracle
from tests.conftest import LAKEJOBS
from tests.lake_checks import assert_serving_equals_recompute, assert_silver_equals_oracle

# 1,500 held-back events in 15 files, merged one file a micro-batch: many small files in every stream table.
STREAM = {"stream.holdback_fraction": 0.3, "simulator.events_per_file": 100, "simulator.max_events": 1500,
          "simulator.rerating_rate": 0.2, "simulator.duplicate_rate": 0.1, "stream.max_files_per_trigger": 1}
# The tables the stream writes (maintain on every table of the lake takes minutes on a busy machine).
STREAM_TABLES = [t.name for t in (BRONZE_RATING_EVENTS, QUARANTINE_RATING_EVENTS, SILVER_RATINGS, GOLD_MOVIE_STATS_REALTIME)]
# Maintain runs beside the stream, each after a new micro-batch committed: back to back they starve the
# stream of the 2 cores (a CI run merged fewer than 15 batches in 10 min).
MAINTAIN_RUNS = 3


def committed_batches(cfg) -> int:
    folder = os.path.join(checkpoint(cfg), "commits")
    return sum(n.isdigit() for n in os.listdir(folder)) if os.path.isdir(folder) else 0


def start_live_stream(cfg) -> subprocess.Popen:
    """`lakejobs run speed` with a processing-time trigger, in its own process (and JVM), as a user
    runs the live stream beside everything else."""
    args = [LAKEJOBS, "run", "speed", "--env", "test", "--conf", f"lake.root={cfg['lake.root']}",
            "--conf", "stream.trigger=processing_time", "--conf", "stream.trigger_interval_s=1",
            "--conf", "stream.max_files_per_trigger=1"]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)


@pytest.mark.slow
def test_maintain_beside_the_running_stream_compacts_and_the_serving_view_stays_right(spark, cfg):
    cfg = cfg.with_overrides({**STREAM, "maintain.tables": STREAM_TABLES})
    for job in ("extract", "full_load", "silver", "gold", "simulate"):
        run_job(spark, cfg, job)
    files = len(os.listdir(events_dir(cfg)))
    assert files == 15
    stream = start_live_stream(cfg)
    try:
        runs, merged, progressed = [], 0, time.monotonic()
        while (done := committed_batches(cfg)) < files:
            assert stream.poll() is None, stream.stderr.read()
            if done > merged:
                merged, progressed = done, time.monotonic()
            # Stuck, not slow: a loaded machine merges slowly, a broken stream not at all.
            assert time.monotonic() - progressed < 300, f"no micro-batch committed for 5 min ({done} of {files})"
            if done > (runs[-1][0] if runs else 0) and len(runs) < MAINTAIN_RUNS:
                runs.append((done, run_job(spark, cfg, "maintain")))  # once a new micro-batch has committed
            else:
                time.sleep(0.5)
        assert any(0 < batches < files for batches, _ in runs), "no maintain ran while micro-batches were merging"
        # Every event merged, the stream still running: the view and silver are right, the files fewer.
        assert_serving_equals_recompute(spark, cfg)
        assert_silver_equals_oracle(spark, cfg)
        last = run_job(spark, cfg, "maintain")
        assert stream.poll() is None, stream.stderr.read()
    finally:
        os.killpg(stream.pid, signal.SIGKILL)
        stream.wait()
    assert_serving_equals_recompute(spark, cfg)
    assert_silver_equals_oracle(spark, cfg)
    print(f"{len(runs)} maintain runs beside the stream: {[r.counts for _, r in runs]}; last: {last.counts}")
    # A run beside the stream counts, after, the files the stream's batches added meanwhile; the last one
    # runs once every event is merged.
    assert last.counts["files.live_after"] < last.counts["files.live_before"]
    # Fewer live files than one per micro-batch in the stream's tables (each batch adds at least one to each).
    for name in STREAM_TABLES:
        live = tables.delta_table(spark, cfg, name).detail().first()["numFiles"]
        assert live < files, f"{name} has {live} live files after maintain"
    # The ledger has the file counts of every maintain run.
    logged = (tables.read(spark, cfg, STATE_LEDGER.name).where("job = 'maintain' AND status = 'succeeded'")
              .selectExpr("counts['files.live_before'] AS before", "counts['files.live_after'] AS after"))
    assert_df_equality(logged, spark.createDataFrame(
        [(r.counts["files.live_before"], r.counts["files.live_after"]) for _, r in runs] +
        [(last.counts["files.live_before"], last.counts["files.live_after"])], "before long, after long"),
        ignore_row_order=True, ignore_nullable=True)


@pytest.fixture(scope="module")
def streamed_lake(spark, tmp_path_factory):
    """A lake whose stream has merged 300 events (available_now), built once per module."""
    from common.config import load_config

    lake = tmp_path_factory.mktemp("maintain") / "lake"
    cfg = load_config("test", [f"lake.root={lake}"]).with_overrides({**STREAM, "simulator.max_events": 300})
    for job in ("extract", "full_load", "silver", "gold", "simulate", "speed"):
        run_job(spark, cfg, job)
    return lake


@pytest.fixture
def lake_copy(cfg, streamed_lake):
    shutil.copytree(streamed_lake, cfg["lake.root"], symlinks=True)
    return cfg.with_overrides({**STREAM, "maintain.tables": STREAM_TABLES})


def test_a_retention_below_deltas_safety_check_is_refused_unless_allowed(spark, lake_copy):
    with pytest.raises(ConfigError, match=r"maintain.retention_h=24 is below Delta's safety check \(168 h\)"):
        run_job(spark, lake_copy.with_overrides({"maintain.retention_h": 24}), "maintain")
    done = run_job(spark, lake_copy.with_overrides({"maintain.retention_h": 24, "maintain.allow_short_retention": True}),
                   "maintain")
    assert done.counts["files.live_after"] < done.counts["files.live_before"]


def test_a_retention_below_what_an_unfinished_micro_batch_needs_is_refused(spark, lake_copy):
    # What a crash mid-batch leaves: the batch planned (offsets/N), not committed (commits/N), here 3 h ago.
    last = max(int(n) for n in os.listdir(os.path.join(checkpoint(lake_copy), "commits")) if n.isdigit())
    os.remove(os.path.join(checkpoint(lake_copy), "commits", str(last)))
    three_hours_ago = time.time() - 3 * 3600
    os.utime(os.path.join(checkpoint(lake_copy), "offsets", str(last)), (three_hours_ago, three_hours_ago))
    short = lake_copy.with_overrides({"maintain.allow_short_retention": True, "maintain.retention_h": 2})
    with pytest.raises(ConfigError, match=r"below what stream 'speed_ratings_merge' needs \(4\.0\d h"):
        run_job(spark, short, "maintain")
    run_job(spark, short.with_overrides({"maintain.retention_h": 5}), "maintain")


def test_a_short_retention_allowed_knowingly_deletes_old_files_and_keeps_the_data(spark, lake_copy):
    shutil.rmtree(os.path.join(lake_copy["lake.root"], "state", "checkpoints"))  # no stream here any more
    run_job(spark, lake_copy, "silver")  # an overwrite: the files of the version before are kept until VACUUM
    before = {t.name: tables.read(spark, lake_copy, t.name).collect() for t in (SILVER_RATINGS, GOLD_MOVIE_STATS_REALTIME)}
    done = run_job(spark, lake_copy.with_overrides({"maintain.allow_short_retention": True, "maintain.retention_h": 0}),
                   "maintain")
    assert done.counts["files.stored_after"] < done.counts["files.stored_before"]
    assert done.counts["files.stored_after"] == done.counts["files.live_after"]  # nothing left but the live files
    for name, rows in before.items():
        assert sorted(tables.read(spark, lake_copy, name).collect()) == sorted(rows)
    assert_serving_equals_recompute(spark, lake_copy)
    assert_silver_equals_oracle(spark, lake_copy, oracle.event_lines(events_dir(lake_copy)))


def test_maintain_skips_when_its_last_run_is_younger_than_every_h(spark, lake_copy):
    daily = lake_copy.with_overrides({"maintain.every_h": 24})
    first, second = run_job(spark, daily, "maintain"), run_job(spark, daily, "maintain")
    assert first.counts["tables"] > 0
    assert second.counts == {} and second.notes[0].startswith("skipped: the last maintain started 0.0 h ago")
    assert run_job(spark, lake_copy, "maintain").counts["tables"] == first.counts["tables"]  # every_h 0: always
