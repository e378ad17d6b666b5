"""Malformed lines among the newest ratings: held back for the stream, replayed as malformed events,
quarantined by the speed layer with their reasons. Every line of the source ends in one table."""
from __future__ import annotations

import io

import pandas as pd
from chispa import assert_df_equality
from pyspark.sql import functions as F

from common import raw_zone, tables
from common.catalogue import BRONZE_RATINGS, BRONZE_RATING_EVENTS, QUARANTINE_RATINGS, QUARANTINE_RATING_EVENTS
from jobs.batch.generator import GeneratorSpec, generate
from jobs.runners.runner import run_job
from jobs.batch.silver import merged_progress
from jobs.speed.simulate import events_dir
from tests import oracle
from tests.lake_checks import assert_serving_equals_recompute, silver_ratings

NEWEST = {  # newer than every generated rating, so held back; line -> the speed layer's reason
    b",70,4.0,1700000001": "null key: userId is empty",
    b"8,,4.0,1700000002": "null key: movieId is empty",
    b"5,50,four,1700000003": "non-numeric rating: 'four' is not a valid double",
    b"9,90,,1700000004": "missing rating",
    b"3,30,31,4.0,1700000005": "not a JSON object",                # wrong field count
    b'11,"110,4.0,1700000006': "not a JSON object",                # unterminated quote
    b"6,60,9.5,1700000007": "rating out of range: 9.5 not in [0.5, 5.0]",
    b"6,62,4.0,1700000000000": "timestamp out of range: 1700000000000 not in [0, 4102444800]",  # milliseconds
    b"\xff\xfe10,100,4.0,1700000008": "undecodable bytes: the line is not valid UTF-8",
}
OLD_BAD = [b"5,51,four,1430000000", b"3,31,4.0"]  # among the batch's ratings: the full-load quarantines them
GOOD_NEWEST = [b"7,70,4.5,1700000009"]


def test_malformed_held_back_lines_are_quarantined_by_the_stream_and_every_line_reconciles(spark, cfg, tmp_path):
    source = tmp_path / "source"
    generate(GeneratorSpec(seed=3, ratings=1000, users=50, movies=120, tags=10,
                           start="2015-01-01", end="2016-01-01"), str(source))
    with open(source / "movies.csv", "a") as f:  # the movie of GOOD_NEWEST, or its event is an unknown movie's
        f.write("70,Seventy (2000),Drama\n")
    ratings = source / "ratings.csv"
    body = ratings.read_bytes().rstrip(b"\n").split(b"\n")
    lines = body[1:] + OLD_BAD + list(NEWEST) + GOOD_NEWEST
    ratings.write_bytes(b"\n".join([body[0], *lines]) + b"\n")
    cfg = cfg.with_overrides({"source.kind": "folder", "source.folder": str(source),
                              "stream.holdback_fraction": 0.05, "simulator.events_per_file": 20})

    for job in ("extract", "full_load", "silver", "gold", "simulate", "speed"):
        run_job(spark, cfg, job)

    stream_quarantine = tables.read(spark, cfg, QUARANTINE_RATING_EVENTS.name)
    assert_df_equality(stream_quarantine.select("reason"),
                       spark.createDataFrame([(r,) for r in NEWEST.values()], "reason string"),
                       ignore_row_order=True, ignore_nullable=True)
    undecodable = stream_quarantine.where(F.col("reason").startswith("undecodable")).first()
    assert bytes(undecodable.line_bytes) == b"\xff\xfe10,100,4.0,1700000008"  # the source's bytes, unchanged
    batch_quarantine = tables.read(spark, cfg, QUARANTINE_RATINGS.name).select("line_bytes")
    assert sorted(bytes(r.line_bytes) for r in batch_quarantine.collect()) == sorted(OLD_BAD)

    logged = tables.read(spark, cfg, BRONZE_RATING_EVENTS.name)
    assert merged_progress(spark, cfg) == {cfg["stream.query_name"]: logged.agg(F.max("_batch_id")).first()[0]}
    assert logged.where("userId = 7 AND movieId = 70 AND rating = 4.5").count() == 1
    counts = [tables.read(spark, cfg, BRONZE_RATINGS.name).count(), batch_quarantine.count(),
              logged.count(), stream_quarantine.count()]
    assert sum(counts) == len(lines), f"bronze, quarantine, event log, stream quarantine: {counts}"
    batch_file = open(raw_zone.find(cfg).file("ratings.csv"), "rb").read().split(b"\n")
    batch = pd.read_csv(io.BytesIO(b"\n".join(line for line in batch_file if line not in OLD_BAD)))
    expected = oracle.latest_ratings(batch, oracle.event_lines(events_dir(cfg)))
    actual = silver_ratings(spark, cfg).toPandas().rename(columns={"ts": "timestamp"}) \
        .sort_values(["userId", "movieId"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(actual, expected, check_dtype=False)
    assert_serving_equals_recompute(spark, cfg)
