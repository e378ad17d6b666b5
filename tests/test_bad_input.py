"""Malformed raw rows: every class lands in quarantine with its reason, and counts reconcile."""
from __future__ import annotations

import os

import pytest
from chispa import assert_df_equality

from common import tables
from jobs.generator import GeneratorSpec, generate
from jobs.runner import run_job

GOOD = [b"1,10,4.0,1500000000", b'2,"20",3.5,1500000100']
BAD = {  # raw line -> the reason full_load must give
    b"3,30,4.0": "wrong column count: 3 fields, expected 4",
    b"3,30,4.0,1500000000,extra": "wrong column count: 5 fields, expected 4",
    b"4,abc,4.0,1500000000": "non-numeric movieId: 'abc' is not a valid int",
    b"5,50,four,1500000000": "non-numeric rating: 'four' is not a valid double",
    b"6,60,9.5,1500000000": "rating out of range: 9.5 not in [0.5, 5.0]",
    b"6,61,0.0,1500000000": "rating out of range: 0.0 not in [0.5, 5.0]",
    b"6,62,4.0,1500000000000": "timestamp out of range: 1500000000000 not in [0, 4102444800]",  # milliseconds
    b",70,4.0,1500000000": "null key: userId is empty",
    b"8,,4.0,1500000000": "null key: movieId is empty",
    b"9,90,,1500000000": "missing rating",
    b"\xff\xfe10,100,4.0,1500000000": "undecodable bytes: the line is not valid UTF-8",
    b'11,"110,4.0,1500000000': "unterminated quote",
    b"": "wrong column count: 1 fields, expected 4",
}


@pytest.fixture
def bad_folder(tmp_path) -> str:
    folder = tmp_path / "bad"
    generate(GeneratorSpec(seed=1, ratings=100, users=10, movies=50, tags=10,
                           start="2015-01-01", end="2016-01-01"), str(folder))
    lines = [b"userId,movieId,rating,timestamp", *GOOD, *BAD.keys()]
    (folder / "ratings.csv").write_bytes(b"\n".join(lines) + b"\n")
    return str(folder)


def test_every_malformed_row_is_quarantined_with_its_reason(spark, cfg, bad_folder):
    cfg = cfg.with_overrides({"source.kind": "folder", "source.folder": bad_folder})
    run_job(spark, cfg, "extract")
    result = run_job(spark, cfg, "full_load")

    quarantined = tables.read(spark, cfg, "quarantine.ratings").select("line_bytes", "reason")
    expected = spark.createDataFrame([(bytearray(line), reason) for line, reason in BAD.items()],
                                     quarantined.schema)
    assert_df_equality(quarantined, expected, ignore_row_order=True, ignore_nullable=True)

    bronze = tables.read(spark, cfg, "bronze.ratings").select("userId", "movieId", "rating", "timestamp")
    assert sorted(tuple(r) for r in bronze.collect()) == [(1, 10, 4.0, 1500000000), (2, 20, 3.5, 1500000100)]
    assert result.counts["ratings.input"] == len(GOOD) + len(BAD) == \
        result.counts["ratings.loaded"] + result.counts["ratings.quarantined"]


def test_quarantine_keeps_the_line_readable_and_names_its_source(spark, cfg, bad_folder):
    cfg = cfg.with_overrides({"source.kind": "folder", "source.folder": bad_folder})
    run_job(spark, cfg, "extract")
    run_job(spark, cfg, "full_load")
    rows = {r.reason: r for r in tables.read(spark, cfg, "quarantine.ratings").collect()}
    undecodable = rows["undecodable bytes: the line is not valid UTF-8"]
    assert undecodable.line == "\ufffd\ufffd10,100,4.0,1500000000"
    assert undecodable.source == "ratings"
    assert os.path.basename(undecodable._source_file) == "ratings.csv"


def test_a_changed_header_fails_the_load_naming_both_headers(spark, cfg, bad_folder):
    path = os.path.join(bad_folder, "ratings.csv")
    body = open(path, "rb").read().split(b"\n", 1)[1]
    open(path, "wb").write(b"user,movie,stars,ts\n" + body)
    cfg = cfg.with_overrides({"source.kind": "folder", "source.folder": bad_folder})
    run_job(spark, cfg, "extract")
    with pytest.raises(Exception, match="header is 'user,movie,stars,ts', expected 'userId,movieId,rating,timestamp'"):
        run_job(spark, cfg, "full_load")
