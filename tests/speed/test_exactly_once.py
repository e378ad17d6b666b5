"""Exactly once under crashes and under a concurrent batch recompute.

The merge job runs as a user runs it (`lakejobs run speed`, its own process and JVM). It is
killed with SIGKILL while a micro-batch is in flight, restarted, killed again, and finally run
to the end; the lake must then equal what a plain-Python oracle computes from the event lines.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import pytest
from chispa import assert_df_equality

from common import tables
from common.catalogue import BRONZE_RATING_EVENTS, QUARANTINE_RATING_EVENTS
from jobs.runners.runner import run_job
from jobs.speed.simulate import events_dir
from jobs.speed.speed import checkpoint
from tests import oracle
from tests.conftest import LAKEJOBS
from tests.lake_checks import assert_serving_equals_recompute, assert_silver_equals_oracle

KILLS = 5
# 21,000 held-back ratings, replayed with every kind of fault, 1,000 events a file, 3 files a batch.
STREAM = {"generator.ratings": 30000, "generator.users": 300, "generator.movies": 2000,
          "stream.holdback_fraction": 0.7, "stream.max_files_per_trigger": 3,
          "simulator.events_per_file": 1000, "simulator.duplicate_rate": 0.03, "simulator.rerating_rate": 0.05,
          "simulator.out_of_order_rate": 0.05, "simulator.late_rate": 0.02, "simulator.malformed_rate": 0.01}


def start_speed(cfg, *conf: str) -> subprocess.Popen:
    """`lakejobs run speed` in a new process group, so a kill takes its JVM down with it."""
    args = [LAKEJOBS, "run", "speed", "--env", "test", "--conf", f"lake.root={cfg['lake.root']}"]
    for item in (f"stream.max_files_per_trigger={cfg['stream.max_files_per_trigger']}", *conf):
        args += ["--conf", item]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def batches(cfg, kind: str) -> set[int]:
    """Batch ids the checkpoint has planned (offsets) or finished (commits)."""
    folder = os.path.join(checkpoint(cfg), kind)
    return {int(n) for n in os.listdir(folder) if n.isdigit()} if os.path.isdir(folder) else set()


def kill_mid_batch(cfg, proc: subprocess.Popen, rng: random.Random, timeout: float = 240.0) -> int | None:
    """SIGKILL the job at a random moment while a micro-batch is in flight, once this run has
    committed one (so every run makes progress); the batch id killed, or None when it finished first."""
    deadline = time.monotonic() + timeout
    done_before = batches(cfg, "commits")
    while time.monotonic() < deadline and proc.poll() is None:
        in_flight = batches(cfg, "offsets") - batches(cfg, "commits")
        if in_flight and batches(cfg, "commits") != done_before:
            time.sleep(rng.uniform(0.0, 1.5))  # somewhere inside foreachBatch: appends, MERGE, deltas
            if proc.poll() is not None:
                return None
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return max(in_flight)
        time.sleep(0.1)
    assert proc.poll() is not None, "the merge job neither progressed nor finished in time"
    return None


def valid_events(spark, lines: list[str]):
    rows = [e for e in map(oracle.valid_event, lines) if e is not None]
    return spark.createDataFrame(rows, "userId int, movieId int, rating double, timestamp long")


@pytest.mark.slow
def test_sigkill_mid_batch_loses_nothing_and_applies_nothing_twice(spark, cfg):
    cfg = cfg.with_overrides(STREAM)
    for job in ("extract", "full_load", "silver", "gold", "simulate"):
        run_job(spark, cfg, job)
    lines = oracle.event_lines(events_dir(cfg))
    assert len(lines) >= 20000

    rng, killed = random.Random(20261124), []
    while len(killed) < KILLS:
        batch = kill_mid_batch(cfg, start_speed(cfg), rng)
        assert batch is not None, f"the job finished after only {len(killed)} kills: make the burst longer"
        killed.append(batch)
    final = start_speed(cfg)
    assert final.wait(timeout=600) == 0, final.stderr.read()
    print(f"killed during micro-batches {killed}; {len(batches(cfg, 'commits'))} batches committed")

    assert_silver_equals_oracle(spark, cfg)
    logged = tables.read(spark, cfg, BRONZE_RATING_EVENTS.name).select("userId", "movieId", "rating", "timestamp")
    assert_df_equality(logged, valid_events(spark, lines), ignore_row_order=True, ignore_nullable=True)
    quarantined = tables.read(spark, cfg, QUARANTINE_RATING_EVENTS.name).count()
    assert quarantined == sum(oracle.valid_event(line) is None for line in lines)
    assert_serving_equals_recompute(spark, cfg)


@pytest.mark.slow
def test_batch_recompute_running_beside_the_stream_loses_nothing(spark, cfg):
    cfg = cfg.with_overrides({**STREAM, "generator.ratings": 5000, "stream.max_files_per_trigger": 1})
    for job in ("extract", "full_load", "silver", "gold", "simulate"):
        run_job(spark, cfg, job)
    stream = start_speed(cfg)
    recomputes = 0
    while stream.poll() is None or recomputes < 2:  # the batch layer keeps recomputing while events merge
        for job in ("silver", "gold"):
            run_job(spark, cfg, job)
        recomputes += 1
    assert stream.wait(timeout=600) == 0, stream.stderr.read()
    assert len(batches(cfg, "commits")) > 1
    for job in ("silver", "gold"):  # one more recompute now that the stream is done: it must change nothing
        assert_silver_equals_oracle(spark, cfg)
        assert_serving_equals_recompute(spark, cfg)
        run_job(spark, cfg, job)
    assert_silver_equals_oracle(spark, cfg)
    assert_serving_equals_recompute(spark, cfg)


@pytest.mark.slow
def test_sigkill_across_a_snapshot_change_loses_nothing_and_applies_nothing_twice(spark, cfg):
    # Snapshot A's events are being merged when the job is killed; snapshot B is landed, loaded and
    # replayed (its offsets start from 0 again) while the job is down; the job is killed again, then
    # run to the end. Every event of both snapshots is in the log and in silver, once.
    first = cfg.with_overrides({**STREAM, "generator.ratings": 6000, "stream.holdback_fraction": 0.5,
                                "simulator.events_per_file": 300, "stream.max_files_per_trigger": 2})
    second = first.with_overrides({"generator.ratings": 7000})  # the same catalogue, more ratings, new events
    rng, killed = random.Random(20261201), []
    for snapshot in (first, second):
        for job in ("extract", "full_load", "silver", "gold", "simulate"):
            run_job(spark, snapshot, job)
        for _ in range(2):
            killed.append(kill_mid_batch(snapshot, start_speed(snapshot), rng))
    assert None not in killed, f"the job finished before it was killed: {killed}"
    final = start_speed(second)
    assert final.wait(timeout=600) == 0, final.stderr.read()
    print(f"killed during micro-batches {killed}; {len(batches(second, 'commits'))} batches committed")

    lines = oracle.event_lines(events_dir(second))
    assert len(lines) >= 6000
    assert_silver_equals_oracle(spark, second, lines)
    logged = tables.read(spark, second, BRONZE_RATING_EVENTS.name).select("userId", "movieId", "rating", "timestamp")
    assert_df_equality(logged, valid_events(spark, lines), ignore_row_order=True, ignore_nullable=True)
    quarantined = tables.read(spark, second, QUARANTINE_RATING_EVENTS.name).count()
    assert quarantined == sum(oracle.valid_event(line) is None for line in lines)
    assert_serving_equals_recompute(spark, second)
