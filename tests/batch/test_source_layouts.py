"""Sources declared in conf: other MovieLens layouts (ml-100k, the `::` files of ml-1m) load through
conf/schemas.yaml alone, by the same checks that quarantine a malformed line."""
from __future__ import annotations

import os

import pytest

from dataclasses import replace

from common import tables
from common.catalogue import (
    BRONZE_MOVIES, BRONZE_RATINGS, GOLD_USER_ACTIVITY, QUARANTINE_MOVIES, QUARANTINE_RATINGS, SILVER_LINKS,
    SILVER_MOVIES, SILVER_RATINGS, SILVER_TAGS)
from common.errors import ConfigError
from common.schemas import Dialect, parse_schemas, source_schemas
from jobs.speed import events
from jobs.batch import extract
from jobs.batch.parsing import REASON, classify
from jobs.batch.silver import conform_movies
from jobs.runners.runner import run_job
from tests.conftest import SHARED_MOVIELENS

ML_100K = os.path.join(SHARED_MOVIELENS, "ml-100k")


def rows(spark, cfg, name):
    return tables.read(spark, cfg, name).collect()


@pytest.mark.skipif(not os.path.isfile(os.path.join(ML_100K, "u.item")),
                    reason=f"ml-100k is not at {ML_100K} (CI has it beside the clone)")
def test_ml_100k_lands_through_conf_only(spark, cfg):
    cfg = cfg.with_overrides({"source.kind": "folder", "source.folder": ML_100K, "raw.dataset": "movielens-100k"})
    for job in ("extract", "full_load", "silver", "gold"):
        run_job(spark, cfg, job)
    count = lambda name: tables.read(spark, cfg, name).count()  # noqa: E731
    # ml-100k's README: 100,000 ratings (1-5) from 943 users on 1,682 movies.
    assert count(BRONZE_RATINGS.name) == count(SILVER_RATINGS.name) == 100_000
    assert count(BRONZE_MOVIES.name) == count(SILVER_MOVIES.name) == 1_682
    assert tables.read(spark, cfg, SILVER_RATINGS.name).select("userId").distinct().count() == 943
    assert count(QUARANTINE_RATINGS.name) == count(QUARANTINE_MOVIES.name) == 0
    # No tags and no links in this release: empty tables of the usual shape, and gold copes.
    assert count(SILVER_TAGS.name) == count(SILVER_LINKS.name) == 0
    assert tables.read(spark, cfg, SILVER_TAGS.name).columns == ["userId", "movieId", "tag", "event_time"]
    activity = tables.read(spark, cfg, GOLD_USER_ACTIVITY.name)
    assert activity.count() == 943 and activity.where("tag_count != 0").count() == 0

    # The oracle, in plain Python: u.genre names the 19 flags of u.item, in order; titles are Latin-1.
    with open(os.path.join(ML_100K, "u.genre"), encoding="latin-1") as f:
        genre_names = [line.split("|")[0] for line in f if line.strip()]
    expected = {}
    with open(os.path.join(ML_100K, "u.item"), encoding="latin-1") as f:
        for line in f:
            fields = line.rstrip("\n").split("|")
            expected[int(fields[0])] = (fields[1], [g for g, flag in zip(genre_names, fields[5:]) if flag == "1"])
    assert len(genre_names) == 19 and len(expected) == 1_682
    movies = {r.movieId: r for r in rows(spark, cfg, SILVER_MOVIES.name)}
    assert {m: r.genres for m, r in movies.items()} == {m: genres for m, (_, genres) in expected.items()}
    bronze_titles = {r.movieId: r.title for r in rows(spark, cfg, BRONZE_MOVIES.name)}
    assert bronze_titles == {m: title for m, (title, _) in expected.items()}
    assert (movies[1104].title, movies[1104].year) == ("C'est arrivé près de chez vous", 1992)


MOVIES = source_schemas("movielens")["movies"]  # movieId, title, genres


def classified(spark, lines: list[str], dialect: Dialect, max_line_bytes: int | None = None) -> list[tuple]:
    df = spark.createDataFrame([(line,) for line in lines], "value string")
    out = classify(df, replace(MOVIES, dialect=dialect), max_line_bytes)
    return [(r.title if r[REASON] is None else None, r[REASON]) for r in out.collect()]


def test_one_set_of_checks_parameterised_by_the_dialect(spark):
    tab_quoted = Dialect(separator="\t", quote="'")
    assert classified(spark, ["1\t'Tab\there'\tDrama", "2\t'Open\tDrama", "3\tA\tB\tC", "4\tx\r\tDrama"],
                      tab_quoted) == [
        ("Tab\there", None),
        (None, "unterminated quote: the quoted field runs past the end of the line (a newline inside quotes?)"),
        (None, "wrong column count: 4 fields, expected 3"),
        (None, "carriage return (CR) outside quotes: other CSV readers end the line there")]
    unquoted = Dialect(separator="::", quote=None, header=False)
    assert classified(spark, ['1::"Quoted" (1990)::Drama', "2::A:::Drama", "3::B::C::D"], unquoted) == [
        ('"Quoted" (1990)', None), ("A", None), (None, "wrong column count: 4 fields, expected 3")]


def test_undecodable_bytes_are_a_reason_in_a_utf8_file_only(spark, tmp_path):
    """The same bytes (0xE9, é in Latin-1) through the full-load's reader: a UTF-8 file quarantines the
    line, a Latin-1 one decodes it. A Latin-1 line's size is its bytes in the file."""
    from jobs.batch.full_load import read_lines
    path = tmp_path / "movies.dat"
    path.write_bytes(dat("1::Caf\xe9::Drama", "2::" + "\xe9" * 20 + "::Drama", "3::" + "\xe9" * 31 + "::Drama"))
    too_long = (None, "line too long: 41 bytes, over sources.max_line_bytes (40); not parsed")
    for encoding, expected in [
        ("UTF-8", [(None, "undecodable bytes: the line is not valid UTF-8")] * 2 + [too_long]),
        ("ISO-8859-1", [("Café", None), ("é" * 20, None), too_long])]:  # 30 bytes in the file, 50 decoded
        schema = replace(MOVIES, dialect=Dialect(separator="::", quote=None, header=False, encoding=encoding))
        lines = read_lines(spark, str(path), schema).lines
        assert [(r.title if r[REASON] is None else None, r[REASON])
                for r in classify(lines, schema, 40).collect()] == expected


def test_genres_from_flag_columns_in_the_declared_order(spark):
    bronze = spark.createDataFrame([(1, "Heat (1995)", 1, 0, 1), (2, "Nothing (2000)", 0, 0, 0), (3, "Gap", 0, None, 1)],
                                   "movieId int, title string, f_crime int, f_drama int, f_action int")
    flags = (("f_action", "Action"), ("f_crime", "Crime"), ("f_drama", "Drama"))
    assert [tuple(r) for r in conform_movies(bronze, flags).orderBy("movieId").collect()] == [
        (1, "Heat", 1995, ["Action", "Crime"]), (2, "Nothing", 2000, []), (3, "Gap", None, ["Action"])]


def dat(*lines: str) -> bytes:
    return "".join(line + "\n" for line in lines).encode("latin-1")


def test_a_double_colon_file_of_the_ml_1m_layout(spark, cfg, tmp_path):
    """Latin-1 bytes decode (é is one byte, 0xE9, not valid UTF-8); a malformed line goes to quarantine
    with its reason and its exact bytes; a quote is data when the dialect quotes nothing."""
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    movies = [f"{m}::Movie {m} (1990)::Drama|Comedy" for m in range(4, 40)]
    broken = "3::Broken::Café::Drama"
    (folder / "movies.dat").write_bytes(dat("1::Café Society (2016)::Comedy|Romance",
                                            '2::"Great Performances" Cats (1998)::Musical', broken, *movies))
    ratings = [f"{u}::{m}::{1 + (u + m) % 5}::{978300000 + u * 100 + m}" for u in range(1, 5) for m in range(1, 40)]
    (folder / "ratings.dat").write_bytes(dat(*ratings, "9::1::x::978300000"))
    cfg = cfg.with_overrides({"source.kind": "folder", "source.folder": str(folder), "raw.dataset": "movielens-1m"})
    for job in ("extract", "full_load", "silver", "gold"):
        run_job(spark, cfg, job)

    silver = {r.movieId: r for r in rows(spark, cfg, SILVER_MOVIES.name)}
    assert (silver[1].title, silver[1].year, silver[1].genres) == ("Café Society", 2016, ["Comedy", "Romance"])
    assert silver[2].title == '"Great Performances" Cats'
    assert sorted(silver) == [1, 2, *range(4, 40)]
    [bad] = rows(spark, cfg, QUARANTINE_MOVIES.name)
    assert (bad.reason, bad.line, bytes(bad.line_bytes)) == \
        ("wrong column count: 4 fields, expected 3", broken, broken.encode("latin-1"))
    # the ratings of movie 3 (quarantined) are dropped by the shipped expectation, the others loaded
    assert sorted((r.reason, r.line) for r in rows(spark, cfg, QUARANTINE_RATINGS.name)) == \
        [("non-numeric rating: 'x' is not a valid double", "9::1::x::978300000")] + \
        [("unknown movieId", f"{u}::3::{1 + (u + 3) % 5}::{978300000 + u * 100 + 3}") for u in range(1, 5)]
    assert tables.read(spark, cfg, SILVER_RATINGS.name).count() == 4 * 38
    assert tables.read(spark, cfg, SILVER_TAGS.name).count() == 0


def test_holding_back_a_headerless_double_colon_file(tmp_path):
    """extract's hold-back and the simulator's reading of it follow the ratings file's dialect."""
    dialect = Dialect(separator="::", quote=None, header=False, encoding="ISO-8859-1")
    ratings, held = tmp_path / "ratings.dat", tmp_path / "held.dat"
    ratings.write_bytes(dat(*[f"{u}::7::4::{1000 + u}" for u in range(1, 11)], "11::7::x::2000"))
    cutoff = extract.hold_back_newest(str(ratings), str(held), 0.2, dialect)
    assert cutoff == 1009  # of the 11 readable timestamps (the malformed line has one), the newest 20%
    assert ratings.read_bytes() == dat(*[f"{u}::7::4::{1000 + u}" for u in range(1, 10)])
    replayed = events.read_held_back(held.read_bytes(), dialect, ("userId", "movieId", "rating", "timestamp"))
    assert replayed[0] == events.Rating(10, 7, 4.0, 1010)
    assert replayed[1] == events.Unparsed('{"userId": "11", "movieId": "7", "rating": "x", "timestamp": "2000"}', 2000)


@pytest.mark.parametrize("dialect, named", [
    ({"encoding": "cp1252"}, "dialect.encoding is 'cp1252'"),
    ({"separator": ""}, "dialect.separator is ''"),
    ({"separator": None}, "dialect.separator is None"),
    ({"quote": "::"}, "dialect.quote is '::'"),
    ({"separator": "|", "quote": "|"}, "dialect.quote is '|'"),
    ({"header": "no"}, "dialect.header is 'no'"),
    ({"sep": ","}, "ratings.dialect is {'sep': ','}"),
])
def test_a_mistake_in_a_dialect_is_one_line_naming_the_setting(dialect, named):
    declared = {"mine": {"ratings": {"file": "r.dat", "dialect": dialect,
                                     "columns": [{"name": "userId", "type": "int", "key": True}]}}}
    with pytest.raises(ConfigError) as raised:
        parse_schemas(declared, "mine")
    message = str(raised.value)
    assert "\n" not in message and message.startswith("conf/schemas.yaml: mine.ratings") and named in message


def test_other_mistakes_in_a_declared_source_name_the_setting():
    headerless = {"mine": {"ratings": {"file": "r.dat", "dialect": {"header": False}}}}
    with pytest.raises(ConfigError, match=r"mine\.ratings\.columns: none declared"):
        parse_schemas(headerless, "mine")
    flags = {"mine": {"movies": {"file": "m.dat", "genre_flags": {"nope": "Drama"},
                                 "columns": [{"name": "movieId", "type": "int", "key": True}]}}}
    with pytest.raises(ConfigError, match=r"mine\.movies\.genre_flags is"):
        parse_schemas(flags, "mine")
    with pytest.raises(ConfigError, match=r"^raw\.dataset is 'other': conf/schemas\.yaml declares no such dataset"):
        parse_schemas(headerless, "other")
