"""A new snapshot on a running lake: the simulator's event files of two snapshots never collide, and
the events of both reach the event log and silver."""
from __future__ import annotations

import json

import pandas as pd
from chispa import assert_df_equality

from common import raw_zone, tables
from common.catalogue import BRONZE_RATING_EVENTS
from jobs.batch.extract import HOLDBACK_FILE
from jobs.runners.runner import run_job
from tests.lake_checks import assert_serving_equals_recompute, assert_silver_equals_oracle

EVENTS = "userId int, movieId int, rating double, timestamp long"


def held_back_lines(cfg) -> list[str]:
    """The event lines the simulator must send for the latest snapshot (no faults: one per held-back row)."""
    held = pd.read_csv(raw_zone.find(cfg).file(HOLDBACK_FILE))
    return [json.dumps({"userId": int(r.userId), "movieId": int(r.movieId), "rating": float(r.rating),
                        "timestamp": int(r.timestamp)}) for r in held.itertuples(index=False)]


def land_and_stream(spark, cfg) -> tuple[str, list[str]]:
    """(the snapshot landed, its event lines) after the whole pipeline ran on it."""
    for job in ("extract", "full_load", "silver", "gold", "simulate", "speed"):
        run_job(spark, cfg, job)
    snapshot = raw_zone.find(cfg)  # the latest: the one just landed
    lines = held_back_lines(cfg)
    assert len(lines) == snapshot.data_rows(HOLDBACK_FILE)
    return snapshot.id, lines


def test_the_events_of_a_second_snapshot_reach_silver_beside_the_first(spark, cfg):
    first = cfg.with_overrides({"stream.holdback_fraction": 0.1, "simulator.events_per_file": 100})
    # A new snapshot of the same catalogue (a seed draws the movies too; ratings of movies the new
    # catalogue lacks would leave silver by the unknown-movieId rule): more ratings, new events.
    second = first.with_overrides({"generator.ratings": 6000})
    first_id, lines = land_and_stream(spark, first)
    second_id, more = land_and_stream(spark, second)
    assert first_id != second_id
    lines += more

    logged = tables.read(spark, second, BRONZE_RATING_EVENTS.name).select("userId", "movieId", "rating", "timestamp")
    expected = spark.createDataFrame([tuple(json.loads(line).values()) for line in lines], EVENTS)
    assert_df_equality(logged, expected, ignore_row_order=True, ignore_nullable=True)
    assert_silver_equals_oracle(spark, second, lines)
    assert_serving_equals_recompute(spark, second)
