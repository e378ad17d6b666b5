"""Malformed raw rows: every class lands in quarantine with its reason, and counts reconcile."""
from __future__ import annotations

import os
import subprocess

import pytest
from chispa import assert_df_equality

from common import raw_zone, tables
from common.catalogue import BRONZE_MOVIES, BRONZE_RATINGS, BRONZE_TAGS, QUARANTINE_RATINGS, QUARANTINE_TAGS
from common.errors import ReconciliationError
from jobs.batch import full_load
from jobs.batch.generator import GeneratorSpec, generate
from jobs.runners.runner import run_job
from tests.conftest import LAKEJOBS


UNTERMINATED = "unterminated quote: the quoted field runs past the end of the line (a newline inside quotes?)"
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
    b'11,"110,4.0,1500000000': UNTERMINATED,
    b"": "wrong column count: 1 fields, expected 4",
}


@pytest.fixture
def cfg(cfg):
    """The files here are mostly malformed on purpose: no ceiling on the quarantined share."""
    return cfg.with_overrides({"sources.max_bad_fraction": 1.0})


@pytest.fixture
def bad_folder(tmp_path) -> str:
    folder = tmp_path / "bad"
    generate(GeneratorSpec(seed=1, ratings=100, users=10, movies=50, tags=10,
                           start="2015-01-01", end="2016-01-01"), str(folder))
    lines = [b"userId,movieId,rating,timestamp", *GOOD, *BAD.keys()]
    (folder / "ratings.csv").write_bytes(b"\n".join(lines) + b"\n")
    # The movies the hand-written lines name (10, 20, ... 120), so that no good line is an unknown movie.
    known = {line.split(b",")[0] for line in (folder / "movies.csv").read_bytes().splitlines()}
    with open(folder / "movies.csv", "ab") as f:
        f.writelines(b"%d,Movie %d (2000),Drama\n" % (m, m) for m in range(10, 130, 10) if b"%d" % m not in known)
    return str(folder)


def test_every_malformed_row_is_quarantined_with_its_reason(spark, cfg, bad_folder):
    cfg = cfg.with_overrides({"source.kind": "folder", "source.folder": bad_folder})
    run_job(spark, cfg, "extract")
    result = run_job(spark, cfg, "full_load")

    quarantined = tables.read(spark, cfg, QUARANTINE_RATINGS.name).select("line_bytes", "reason")
    expected = spark.createDataFrame([(bytearray(line), reason) for line, reason in BAD.items()],
                                     quarantined.schema)
    assert_df_equality(quarantined, expected, ignore_row_order=True, ignore_nullable=True)

    bronze = tables.read(spark, cfg, BRONZE_RATINGS.name).select("userId", "movieId", "rating", "timestamp")
    assert sorted(tuple(r) for r in bronze.collect()) == [(1, 10, 4.0, 1500000000), (2, 20, 3.5, 1500000100)]
    assert result.counts["ratings.input"] == len(GOOD) + len(BAD) == \
        result.counts["ratings.loaded"] + result.counts["ratings.quarantined"]


def test_quarantine_keeps_the_line_readable_and_names_its_source(spark, cfg, bad_folder):
    cfg = cfg.with_overrides({"source.kind": "folder", "source.folder": bad_folder})
    run_job(spark, cfg, "extract")
    run_job(spark, cfg, "full_load")
    rows = {r.reason: r for r in tables.read(spark, cfg, QUARANTINE_RATINGS.name).collect()}
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


# Line ends. The landing manifest counts lines by \n; the full-load must read the same lines, so a CR
# (\r) is a line end only right before \n, and each \n-line of the file is one row, in bronze or in quarantine.
TAGS_HEADER = b"userId,movieId,tag,timestamp"
TAG_LINES = {  # raw line -> None when it loads, else the reason it is quarantined
    b'1,10,"funny\rsad",1500000000': None,  # a CR inside quotes is part of the value (RFC 4180)
    b"2,20,dark\rcomedy,1500000001": "carriage return (CR) outside quotes: other CSV readers end the line there",
    b'3,30,"multi': UNTERMINATED,
    b'line",1500000002': UNTERMINATED,
    b"4,40,plain,1500000003": None,
}


def _land_tags(folder: str, line_end: bytes) -> None:
    lines = [TAGS_HEADER, *TAG_LINES]
    open(os.path.join(folder, "tags.csv"), "wb").write(line_end.join(lines) + line_end)


@pytest.mark.parametrize("line_end", [b"\n", b"\r\n"], ids=["LF", "CRLF"])
def test_carriage_returns_and_newlines_inside_fields_reconcile(spark, cfg, bad_folder, line_end):
    _land_tags(bad_folder, line_end)
    cfg = cfg.with_overrides({"source.kind": "folder", "source.folder": bad_folder})
    run_job(spark, cfg, "extract")
    result = run_job(spark, cfg, "full_load")  # failed before: the reader split at the lone CRs

    bronze = tables.read(spark, cfg, BRONZE_TAGS.name).select("userId", "movieId", "tag", "timestamp")
    assert sorted(tuple(r) for r in bronze.collect()) == [(1, 10, "funny\rsad", 1500000000),
                                                          (4, 40, "plain", 1500000003)]
    quarantined = tables.read(spark, cfg, QUARANTINE_TAGS.name).select("line_bytes", "reason")
    expected = spark.createDataFrame([(bytearray(line), reason) for line, reason in TAG_LINES.items() if reason],
                                     quarantined.schema)  # the bytes of the line, without its line end
    assert_df_equality(quarantined, expected, ignore_row_order=True, ignore_nullable=True)
    assert result.counts["tags.input"] == len(TAG_LINES) == result.counts["tags.loaded"] + result.counts["tags.quarantined"]


def test_a_crlf_snapshot_loads_the_same_rows_as_its_lf_twin(spark, cfg, bad_folder, tmp_path):
    """Every file of the snapshot with CRLF line ends (as ml-latest-small ships): bronze and quarantine
    hold what the LF original gives, and each count reconciles."""
    crlf_folder = tmp_path / "crlf"
    crlf_folder.mkdir()
    for name in ("ratings.csv", "movies.csv", "tags.csv", "links.csv"):
        data = open(os.path.join(bad_folder, name), "rb").read()
        (crlf_folder / name).write_bytes(data.replace(b"\n", b"\r\n"))
    lf = cfg.with_overrides({"source.kind": "folder", "source.folder": bad_folder})
    crlf = cfg.with_overrides({"source.kind": "folder", "source.folder": str(crlf_folder),
                               "lake.root": str(tmp_path / "crlf_lake")})
    for c in (lf, crlf):
        run_job(spark, c, "extract")
    results = {"lf": run_job(spark, lf, "full_load"), "crlf": run_job(spark, crlf, "full_load")}
    assert results["lf"].counts == results["crlf"].counts
    for source in ("ratings", "movies", "tags", "links"):
        for layer, drop in (("bronze", ["_source_file", "_snapshot_id", "_ingested_at"]),
                            ("quarantine", ["_source_file", "_snapshot_id", "_ingested_at"])):
            a = tables.read(spark, lf, f"{layer}.{source}").drop(*drop)
            b = tables.read(spark, crlf, f"{layer}.{source}").drop(*drop)
            assert_df_equality(a, b, ignore_row_order=True, ignore_nullable=True)
    assert results["crlf"].counts["ratings.quarantined"] == len(BAD)


def _tamper(path: str, old: bytes, new: bytes) -> None:
    """Change a landed file in place, keeping its size (so only the line count can tell)."""
    data = open(path, "rb").read()
    assert len(old) == len(new) and data.count(old) >= 1
    open(path, "wb").write(data.replace(old, new, 1))


SPLIT = (b"1,10,4.0,1500000000", b"1,10,4.0\n1500000000")  # one line split in two at a comma
JOINED = (b"1500000000\n2,", b"1500000000,2,")  # two lines joined: the manifest counted one more


@pytest.fixture(params=[SPLIT], ids=["split"])
def loaded_then_tampered(request, spark, cfg, bad_folder, tmp_path):
    """A lake with a loaded snapshot, then a second snapshot landed whose ratings.csv was changed after
    landing, keeping its size (by default one line split in two at a comma)."""
    second, landed = _loaded_then_landed(spark, cfg, bad_folder, tmp_path)
    _tamper(landed.file("ratings.csv"), *request.param)
    return second, landed


def _loaded_then_landed(spark, cfg, bad_folder, tmp_path):
    first = cfg.with_overrides({"source.kind": "folder", "source.folder": bad_folder})
    run_job(spark, first, "extract")
    run_job(spark, first, "full_load")
    second_folder = tmp_path / "second"
    second_folder.mkdir()
    for name in ("ratings.csv", "movies.csv", "tags.csv", "links.csv"):
        (second_folder / name).write_bytes(open(os.path.join(bad_folder, name), "rb").read())
    with open(second_folder / "ratings.csv", "ab") as f:
        f.write(b"12,120,3.0,1500000200\n")
    second = cfg.with_overrides({"source.kind": "folder", "source.folder": str(second_folder)})
    run_job(spark, second, "extract")
    return second, raw_zone.find(second)


@pytest.mark.parametrize("loaded_then_tampered", [SPLIT, JOINED], ids=["split", "joined"], indirect=True)
def test_a_load_that_does_not_reconcile_writes_nothing(spark, loaded_then_tampered):
    """Split: the load reads a line more than landed. Joined: one fewer (before, the missing line was
    booked as a repeated header and the load succeeded). Refused before the commit: no new version of
    either table (before, bronze was overwritten, then restored)."""
    cfg, landed = loaded_then_tampered
    landed_lines = len(GOOD) + len(BAD) + 2  # the header, the lines of bad_folder, one more line
    read = open(landed.file("ratings.csv"), "rb").read().count(b"\n")  # the file ends with one
    assert read != landed_lines
    before = {t: tables.current_version(spark, cfg, t).version for t in (BRONZE_RATINGS.name, QUARANTINE_RATINGS.name)}
    with pytest.raises(ReconciliationError) as failed:
        run_job(spark, cfg, "full_load")
    assert str(failed.value) == (f"ratings.csv: {landed_lines:,} lines counted at landing (_SUCCESS.json), "
                                 f"{read:,} read now: the file changed after landing; nothing was loaded. "
                                 f"Land it again: delete {landed.path} and run extract")
    assert {t: tables.current_version(spark, cfg, t).version for t in before} == before
    assert landed.id not in {r._snapshot_id for r in tables.read(spark, cfg, BRONZE_RATINGS.name).collect()}


def test_a_file_changed_during_the_load_leaves_bronze_and_quarantine_as_they_were(spark, cfg, bad_folder, tmp_path,
                                                                                 monkeypatch):
    """The race the check before the writes cannot see: the file changes once it was counted (here
    right after the check). The counts after the writes catch it and both tables go back."""
    cfg, landed = _loaded_then_landed(spark, cfg, bad_folder, tmp_path)
    check = full_load.check_before_writing

    def check_then_tamper(snapshot, schema, counts, cfg):
        check(snapshot, schema, counts, cfg)
        if schema.file == "ratings.csv":
            _tamper(landed.file(schema.file), *SPLIT)
    monkeypatch.setattr(full_load, "check_before_writing", check_then_tamper)
    before = {t: tables.current_version(spark, cfg, t).version for t in (BRONZE_RATINGS.name, QUARANTINE_RATINGS.name)}
    with pytest.raises(ReconciliationError, match=r"^ratings.csv: .* read now: .*; bronze.ratings restored to v0 "
                                                  r"and quarantine.ratings restored to v0; the file changed"):
        run_job(spark, cfg, "full_load")
    for t, version in before.items():
        assert_df_equality(tables.read(spark, cfg, t), tables.read(spark, cfg, t, version=version),
                           ignore_row_order=True)


def test_a_file_changed_in_size_after_landing_is_refused_before_anything_is_written(spark, cfg, bad_folder):
    cfg = cfg.with_overrides({"source.kind": "folder", "source.folder": bad_folder})
    run_job(spark, cfg, "extract")
    path = raw_zone.find(cfg).file("movies.csv")
    with open(path, "ab") as f:
        f.write(b"99999,Appended Later (2020),Drama\n")
    with pytest.raises(ReconciliationError, match=r"^movies.csv: \S+ bytes now, \S+ when it landed \(_SUCCESS.json\): "
                                                  r"the file changed after landing; nothing was loaded"):
        run_job(spark, cfg, "full_load")
    assert not tables.exists(spark, cfg, BRONZE_MOVIES.name)


def test_a_reconciliation_failure_is_one_line_from_the_cli_without_a_traceback(loaded_then_tampered):
    cfg, landed = loaded_then_tampered
    done = subprocess.run([LAKEJOBS, "run", "full_load", "--env", "test", "--conf", f"lake.root={cfg['lake.root']}",
                           "--conf", f"raw.snapshot={landed.id}", "--conf", "sources.max_bad_fraction=1"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    assert errors == [f"lakejobs: error: ratings.csv: {len(GOOD) + len(BAD) + 2:,} lines counted at landing "
                      f"(_SUCCESS.json), {len(GOOD) + len(BAD) + 3:,} read now: the file changed after landing; "
                      f"nothing was loaded. Land it again: delete {landed.path} and run extract"], done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "\tat org." not in done.stderr


def _load_with_a_huge_tag(spark, cfg, folder: str, huge: bytes, overrides: dict) -> tuple:
    lines = [TAGS_HEADER, b"4,40,plain,1500000003", huge, b"5,50,other,1500000004"]
    open(os.path.join(folder, "tags.csv"), "wb").write(b"\n".join(lines) + b"\n")
    cfg = cfg.with_overrides({"source.kind": "folder", "source.folder": folder} | overrides)
    run_job(spark, cfg, "extract")
    result = run_job(spark, cfg, "full_load")
    return cfg, result


@pytest.mark.parametrize("cap, size", [(1000, 50_000), (None, 4 * 1024 * 1024 + 100)], ids=["low-cap", "default-cap"])
def test_a_line_over_max_line_bytes_is_quarantined_whole_with_its_size(spark, cfg, bad_folder, cap, size):
    """A tag of commas inside quotes (the worst case for a scan from each comma to the end of the line)."""
    head, tail = b'6,60,"', b'",1500000005'
    huge = head + b"x," * ((size - len(head) - len(tail)) // 2) + tail
    cfg, result = _load_with_a_huge_tag(spark, cfg, bad_folder, huge, {"sources.max_line_bytes": cap} if cap else {})
    cap = cap or cfg["sources.max_line_bytes"]
    assert len(huge) > cap
    (row,) = tables.read(spark, cfg, QUARANTINE_TAGS.name).collect()
    assert row.reason == f"line too long: {len(huge)} bytes, over sources.max_line_bytes ({cap}); not parsed"
    assert bytes(row.line_bytes) == huge  # nothing lost
    assert sorted(r.tag for r in tables.read(spark, cfg, BRONZE_TAGS.name).collect()) == ["other", "plain"]
    assert result.counts["tags.input"] == 3 == result.counts["tags.loaded"] + result.counts["tags.quarantined"]
