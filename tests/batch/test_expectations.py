"""Expectations with policies (conf/schemas.yaml): expect keeps and counts, expect_or_drop quarantines
with the rule's name, expect_or_fail and max_bad_fraction stop the load with nothing committed; the
shipped referential rule keeps ratings of unknown movies out of silver, in the batch load and the stream."""
from __future__ import annotations

import json
import os

import pytest
import yaml
from chispa import assert_df_equality

from common import tables
from common.catalogue import (
    BRONZE_RATINGS, BRONZE_RATING_EVENTS, QUARANTINE_RATINGS, QUARANTINE_RATING_EVENTS, SILVER_MOVIES,
    SILVER_RATINGS, STATE_LEDGER)
from common.errors import ConfigError, ExpectationError
from common.schemas import parse_schemas
from jobs.batch import full_load
from jobs.ops import status, status_text
from jobs.batch.generator import GeneratorSpec, generate
from jobs.runners.runner import run_job
from jobs.speed.simulate import events_dir

RATINGS_HEADER = b"userId,movieId,rating,timestamp"
RULES = """
movielens:
  ratings:
    file: ratings.csv
    columns:
      - {name: userId, type: int, key: true}
      - {name: movieId, type: int, key: true}
      - {name: rating, type: double, min: 0.5, max: 5.0, required: true}
      - {name: timestamp, type: long, min: 0, max: 4102444800, required: true}
    expectations:
      - {name: unknown movieId, expect_or_drop: movieId IN movies.movieId}
      - {name: whole stars, expect: rating = floor(rating)}
      - {name: after 2000, expect_or_drop: "timestamp >= 946684800"}
      - {name: no user 13, expect_or_fail: userId <> 13}
  movies:
    file: movies.csv
    columns:
      - {name: movieId, type: int, key: true}
      - {name: title, type: string, required: true}
      - {name: genres, type: string}
"""


def movie_ids(folder) -> list[int]:
    return [int(line.split(",")[0]) for line in (folder / "movies.csv").read_text().splitlines()[1:]]


def test_the_shipped_rule_quarantines_a_rating_of_an_unknown_movie_and_silver_holds_none(spark, cfg, tmp_path):
    folder = tmp_path / "src"
    generate(GeneratorSpec(seed=3, ratings=200, users=20, movies=40, tags=10, start="2015-01-01", end="2016-01-01"),
             str(folder))
    unknown = max(movie_ids(folder)) + 1
    with open(folder / "ratings.csv", "ab") as f:
        f.write(b"1,%d,4.0,1500000000\n" % unknown)
    cfg = cfg.with_overrides({"source.kind": "folder", "source.folder": str(folder)})
    for job in ("extract", "full_load", "silver"):
        result = run_job(spark, cfg, job)
        if job == "full_load":
            assert result.counts["ratings.expect.unknown movieId"] == 1
    quarantined = tables.read(spark, cfg, QUARANTINE_RATINGS.name).select("line", "reason")
    assert_df_equality(quarantined, spark.createDataFrame([(f"1,{unknown},4.0,1500000000", "unknown movieId")],
                                                          quarantined.schema), ignore_nullable=True)
    orphans = tables.read(spark, cfg, SILVER_RATINGS.name).join(tables.read(spark, cfg, SILVER_MOVIES.name), "movieId",
                                                            "left_anti")
    assert orphans.count() == 0
    assert tables.read(spark, cfg, SILVER_RATINGS.name).count() == 200


def test_the_stream_quarantines_an_event_of_an_unknown_movie(spark, cfg, tmp_path):
    cfg = cfg.with_overrides({"stream.holdback_fraction": 0.2, "simulator.events_per_file": 1000})
    for job in ("extract", "full_load", "silver", "gold", "simulate"):
        run_job(spark, cfg, job)
    known = {r.movieId for r in tables.read(spark, cfg, SILVER_MOVIES.name).select("movieId").collect()}
    unknown = max(known) + 1
    event = {"userId": 1, "movieId": unknown, "rating": 4.0, "timestamp": 1600000000}
    with open(os.path.join(events_dir(cfg), "extra-unknown-movie.json"), "w") as f:
        f.write(json.dumps(event) + "\n")
    run_job(spark, cfg, "speed")
    quarantined = tables.read(spark, cfg, QUARANTINE_RATING_EVENTS.name).where("reason = 'unknown movieId'")
    assert [json.loads(r.line)["movieId"] for r in quarantined.collect()] == [unknown]
    assert tables.read(spark, cfg, SILVER_RATINGS.name).where(f"movieId = {unknown}").count() == 0
    orphans = tables.read(spark, cfg, SILVER_RATINGS.name).join(tables.read(spark, cfg, SILVER_MOVIES.name), "movieId",
                                                            "left_anti")
    assert orphans.count() == 0


@pytest.fixture
def with_rules(monkeypatch):
    """full_load reads the RULES document instead of conf/schemas.yaml (parsed by the same code)."""
    schemas = parse_schemas(yaml.safe_load(RULES), "movielens")
    monkeypatch.setattr(full_load, "source_schemas", lambda dataset: schemas)
    return schemas


def _snapshot(tmp_path, cfg, ratings: list[bytes]):
    folder = tmp_path / "src"
    generate(GeneratorSpec(seed=3, ratings=20, users=5, movies=20, tags=5, start="2015-01-01", end="2016-01-01"),
             str(folder))
    ids = movie_ids(folder)
    lines = [line.replace(b"{m}", b"%d" % ids[0]) for line in ratings]
    (folder / "ratings.csv").write_bytes(b"\n".join([RATINGS_HEADER, *lines]) + b"\n")
    cfg = cfg.with_overrides({"source.kind": "folder", "source.folder": str(folder), "sources.max_bad_fraction": 1.0})
    return cfg, ids


def test_expect_keeps_and_counts_expect_or_drop_quarantines_with_the_rules_name(spark, cfg, tmp_path, with_rules):
    cfg, ids = _snapshot(tmp_path, cfg, [b"1,{m},4.0,1500000000", b"2,{m},3.5,1500000000",
                                         b"3,{m},4.0,900000000", b"4,999999,4.0,1500000000",
                                         b"5,{m},four,1500000000"])
    run_job(spark, cfg, "extract")
    result = run_job(spark, cfg, "full_load")
    bronze = tables.read(spark, cfg, BRONZE_RATINGS.name).select("userId", "rating")
    assert sorted(tuple(r) for r in bronze.collect()) == [(1, 4.0), (2, 3.5)]  # 3.5 breaks `expect` only: kept
    reasons = {r.line.split(",")[0]: r.reason for r in tables.read(spark, cfg, QUARANTINE_RATINGS.name).collect()}
    assert reasons == {"3": "after 2000", "4": "unknown movieId",
                       "5": "non-numeric rating: 'four' is not a valid double"}  # declared checks first
    assert {k: v for k, v in result.counts.items() if k.startswith("ratings.expect.")} == {
        "ratings.expect.unknown movieId": 1, "ratings.expect.whole stars": 1, "ratings.expect.after 2000": 1,
        "ratings.expect.no user 13": 0}
    logged = tables.read(spark, cfg, STATE_LEDGER.name).where("job = 'full_load'").first().counts
    assert logged["ratings.expect.whole stars"] == 1
    tasks = status.last_runs(status.ledger_runs(spark, cfg), ["extract", "full_load"])
    assert status_text.broken_expectations(tasks) == [
        "", "expectations broken (last runs): full_load ratings after 2000 1; full_load ratings unknown movieId 1; "
            "full_load ratings whole stars 1"]


def test_expect_or_fail_stops_the_load_with_nothing_committed(spark, cfg, tmp_path, with_rules):
    cfg, _ = _snapshot(tmp_path, cfg, [b"1,{m},4.0,1500000000", b"13,{m},4.0,1500000000"])
    run_job(spark, cfg, "extract")
    with pytest.raises(ExpectationError) as failed:
        run_job(spark, cfg, "full_load")
    assert str(failed.value) == ("ratings.csv: 1 rows break expect_or_fail 'no user 13' (userId <> 13); nothing was "
                                 "loaded. Fix the source, or change the rule's policy in conf/schemas.yaml")
    assert not tables.exists(spark, cfg, BRONZE_RATINGS.name) and not tables.exists(spark, cfg, QUARANTINE_RATINGS.name)


def test_a_file_over_max_bad_fraction_is_refused_and_the_last_good_load_stays(spark, cfg, tmp_path):
    folder = tmp_path / "src"
    generate(GeneratorSpec(seed=3, ratings=60, users=10, movies=20, tags=10, start="2015-01-01", end="2016-01-01"),
             str(folder))
    cfg = cfg.with_overrides({"source.kind": "folder", "source.folder": str(folder)})
    run_job(spark, cfg, "extract")
    run_job(spark, cfg, "full_load")
    good = {t: tables.current_version(spark, cfg, t).version for t in (BRONZE_RATINGS.name, QUARANTINE_RATINGS.name)}
    # The next snapshot: 40 of its 100 rating lines are garbage.
    lines = (folder / "ratings.csv").read_bytes().splitlines()
    (folder / "ratings.csv").write_bytes(b"\n".join(lines + [b"garbage,%d" % i for i in range(40)]) + b"\n")
    run_job(spark, cfg, "extract")
    with pytest.raises(ExpectationError, match=r"^ratings.csv: 40 of 100 data lines \(40.0%\) are malformed or "
                                               r"dropped, over max_bad_fraction 0.05; nothing was loaded"):
        run_job(spark, cfg, "full_load")
    assert {t: tables.current_version(spark, cfg, t).version for t in good} == good
    # Knowingly: the same snapshot loads with the ceiling raised, its garbage in quarantine.
    result = run_job(spark, cfg.with_overrides({"sources.max_bad_fraction": 0.5}), "full_load")
    assert (result.counts["ratings.loaded"], result.counts["ratings.quarantined"]) == (60, 40)


@pytest.mark.parametrize("rule, problem", [
    ("{name: r, expect: rating > 1, expect_or_drop: rating > 2}", "expected {name: ..., <one of"),
    ("{name: r, expect_or_warn: rating > 1}", "expected {name: ..., <one of"),
    ("{name: r, expect: movieId IN films.movieId}", "needs a column movieId here and a declared source films"),
])
def test_a_malformed_rule_is_a_config_error_naming_it(rule, problem):
    document = yaml.safe_load(RULES.replace("{name: whole stars, expect: rating = floor(rating)}", rule))
    with pytest.raises(ConfigError, match=r"conf/schemas.yaml: movielens.ratings") as failed:
        parse_schemas(document, "movielens")
    assert problem in str(failed.value)


def test_a_rule_that_is_not_sql_on_the_sources_columns_is_a_config_error(spark, cfg, tmp_path, monkeypatch):
    document = yaml.safe_load(RULES.replace("rating = floor(rating)", "stars > 3"))
    schemas = parse_schemas(document, "movielens")
    monkeypatch.setattr(full_load, "source_schemas", lambda dataset: schemas)
    cfg, _ = _snapshot(tmp_path, cfg, [b"1,{m},4.0,1500000000"])
    run_job(spark, cfg, "extract")
    with pytest.raises(ConfigError, match=r"^conf/schemas.yaml: ratings expectation 'whole stars': 'stars > 3' is "
                                          r"not a SQL condition on userId, movieId, rating, timestamp: "):
        run_job(spark, cfg, "full_load")


def test_an_expect_or_fail_rule_on_the_events_stops_the_stream_with_one_error_and_writes_nothing(
        spark, cfg, monkeypatch):
    from jobs.speed import speed

    cfg = cfg.with_overrides({"stream.holdback_fraction": 0.2, "simulator.events_per_file": 1000})
    for job in ("extract", "full_load", "silver", "gold", "simulate"):
        run_job(spark, cfg, job)
    document = yaml.safe_load(RULES)
    document["movielens"]["rating_events"] = {"stream": True, "columns": document["movielens"]["ratings"]["columns"],
                                              "expectations": [{"name": "no user 1", "expect_or_fail": "userId <> 1"}]}
    schema = parse_schemas(document, "movielens")["rating_events"]
    monkeypatch.setattr(speed, "stream_schema", lambda dataset, name: schema)
    before = tables.current_version(spark, cfg, SILVER_RATINGS.name).version
    with pytest.raises(ExpectationError, match=r"^micro-batch 0: [\d,]+ events break expect_or_fail 'no user 1' "
                                               r"\(userId <> 1\); nothing of it was written, the stream stops here$"):
        run_job(spark, cfg, "speed")
    assert tables.current_version(spark, cfg, SILVER_RATINGS.name).version == before
    assert not tables.exists(spark, cfg, BRONZE_RATING_EVENTS.name)
