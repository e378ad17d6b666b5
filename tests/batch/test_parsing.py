"""Schema-on-read of raw CSV lines: typed values for good lines, the first failing check's reason for bad ones."""
from __future__ import annotations

import csv

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from common.schemas import source_schemas
from jobs.batch.parsing import REASON, TEXT_CHARS, bad_rows, classify, good_rows

UNTERMINATED = "unterminated quote: the quoted field runs past the end of the line (a newline inside quotes?)"
SCHEMAS = source_schemas("movielens")
RATINGS = SCHEMAS["ratings"]
MOVIES = SCHEMAS["movies"]


def reasons(spark, lines: list[str], schema=RATINGS) -> list:
    df = spark.createDataFrame([(line,) for line in lines], "value string")
    return [r[REASON] for r in classify(df, schema).collect()]


def reason_of(spark, line: str, schema=RATINGS):
    (reason,) = reasons(spark, [line], schema)
    return reason


@pytest.mark.parametrize("line, expected", [
    ("1,10,4.0", "wrong column count: 3 fields, expected 4"),
    ("1,10,4.0,1500000000,extra", "wrong column count: 5 fields, expected 4"),
    ("", "wrong column count: 1 fields, expected 4"),
])
def test_wrong_column_count(spark, line, expected):
    assert reason_of(spark, line) == expected


def test_comma_inside_quotes_does_not_count_as_a_column(spark):
    assert reason_of(spark, '1,"Toy Story, The (1995)"', MOVIES) == "wrong column count: 2 fields, expected 3"


@pytest.mark.parametrize("line, expected", [
    ("1,abc,4.0,1500000000", "non-numeric movieId: 'abc' is not a valid int"),
    ("1,10,four,1500000000", "non-numeric rating: 'four' is not a valid double"),
    ("1,10,4.0,1500000000.5", "non-numeric timestamp: '1500000000.5' is not a valid long"),
    ("1,10,4.0,99999999999999999999", "non-numeric timestamp: '99999999999999999999' is not a valid long"),
])
def test_non_numeric_field(spark, line, expected):
    assert reason_of(spark, line) == expected


@pytest.mark.parametrize("line, expected", [
    ("1,10,5.5,1500000000", "rating out of range: 5.5 not in [0.5, 5.0]"),
    ("1,10,0.0,1500000000", "rating out of range: 0.0 not in [0.5, 5.0]"),
])
def test_rating_out_of_range(spark, line, expected):
    assert reason_of(spark, line) == expected


def test_rating_range_bounds_are_inclusive(spark):
    assert reasons(spark, ["1,10,0.5,1500000000", "1,11,5.0,1500000000"]) == [None, None]


@pytest.mark.parametrize("line, expected", [
    (",10,4.0,1500000000", "null key: userId is empty"),
    ("1,,4.0,1500000000", "null key: movieId is empty"),
    ("1,  ,4.0,1500000000", "null key: movieId is empty"),
])
def test_null_key(spark, line, expected):
    assert reason_of(spark, line) == expected


@pytest.mark.parametrize("line, schema, expected", [
    ("1,10,,1500000000", RATINGS, "missing rating"),
    ("1,10,4.0,", RATINGS, "missing timestamp"),
    ('7,"",Drama', MOVIES, "missing title"),
])
def test_missing_required_field(spark, line, schema, expected):
    assert reason_of(spark, line, schema) == expected


def test_optional_field_may_be_empty(spark):
    assert reason_of(spark, "7,Heat (1995),", MOVIES) is None


def test_unterminated_quote(spark):
    assert reason_of(spark, '1,"10,4.0,1500000000') == UNTERMINATED


def test_undecodable_bytes(spark):
    # 31 2C 32 C3 28 2C 33 2C 34 = "1,2" + a broken two-byte sequence + "(,3,4"
    lines = spark.sql("SELECT CAST(X'312C32C3282C332C34' AS STRING) AS value")
    assert not lines.select(F.is_valid_utf8("value")).first()[0]  # the input really is invalid UTF-8
    assert [r[REASON] for r in classify(lines, RATINGS).collect()] == \
        ["undecodable bytes: the line is not valid UTF-8"]


@pytest.mark.parametrize("line, expected", [
    ('"1,abc,9.0', UNTERMINATED),                              # also wrong count, non-numeric
    ("1,abc,9.0", "wrong column count: 3 fields, expected 4"),         # also non-numeric, out of range
    (",abc,9.0,1500000000", "null key: userId is empty"),             # also non-numeric, out of range
    ("1,abc,,1500000000", "non-numeric movieId: 'abc' is not a valid int"),  # also missing rating
    ("1,10,,x", "non-numeric timestamp: 'x' is not a valid long"),     # also missing rating
    ("1,10,9.0,x", "non-numeric timestamp: 'x' is not a valid long"),  # also out of range
])
def test_first_failing_check_wins(spark, line, expected):
    assert reason_of(spark, line) == expected


def test_undecodable_bytes_win_over_every_other_check(spark):
    # X'C3' alone is a broken sequence; the line also has too few fields and a non-numeric value.
    lines = spark.sql("SELECT CAST(X'C3612C62' AS STRING) AS value")
    assert [r[REASON] for r in classify(lines, RATINGS).collect()] == \
        ["undecodable bytes: the line is not valid UTF-8"]


def test_good_rating_lines_parse_into_typed_values(spark):
    lines = spark.createDataFrame([
        ("1,10,4.0,1500000000",),
        (" 2 , 20 , 3.5 , 1500000100 ",),  # whitespace around numbers is trimmed
        ('3,"30",0.5,1500000200',),       # a quoted number is still a number
    ], "value string")
    parsed = classify(lines, RATINGS).select("userId", "movieId", "rating", "timestamp", REASON)
    expected = spark.createDataFrame([
        (1, 10, 4.0, 1500000000, None),
        (2, 20, 3.5, 1500000100, None),
        (3, 30, 0.5, 1500000200, None),
    ], "userId int, movieId int, rating double, timestamp long, _reason string")
    assert_df_equality(parsed, expected, ignore_row_order=True, ignore_nullable=True)


def test_good_movie_lines_keep_quoted_commas_and_doubled_quotes(spark):
    lines = spark.createDataFrame([
        ('1,"Matrix, The (1999)",Action|Sci-Fi',),
        ('2,"He Said ""Hi"" (2000)",Drama',),
        ('3,"Quote ""A, B"" (2001)",(no genres listed)',),
        ("4,Heat (1995),Action|Crime",),
    ], "value string")
    parsed = classify(lines, MOVIES).select("movieId", "title", "genres", REASON)
    expected = spark.createDataFrame([
        (1, "Matrix, The (1999)", "Action|Sci-Fi", None),
        (2, 'He Said "Hi" (2000)', "Drama", None),
        (3, 'Quote "A, B" (2001)', "(no genres listed)", None),
        (4, "Heat (1995)", "Action|Crime", None),
    ], "movieId int, title string, genres string, _reason string")
    assert_df_equality(parsed, expected, ignore_row_order=True, ignore_nullable=True)


@pytest.fixture
def classified(spark):
    lines = spark.createDataFrame([
        ("1,10,4.0,1500000000", "a.csv"),
        ("1,10,9.0,1500000000", "a.csv"),
    ], "value string, _source_file string")
    return classify(lines, RATINGS)


def test_good_rows_keep_the_typed_columns_and_metadata(spark, classified):
    expected = spark.createDataFrame([(1, 10, 4.0, 1500000000, "a.csv")],
                                     "userId int, movieId int, rating double, timestamp long, _source_file string")
    assert_df_equality(good_rows(classified, RATINGS, ["_source_file"]), expected, ignore_nullable=True)


def test_bad_rows_keep_the_line_its_bytes_and_the_reason(spark, classified):
    expected = spark.createDataFrame(
        [("ratings", "1,10,9.0,1500000000", bytearray(b"1,10,9.0,1500000000"),
          "rating out of range: 9.0 not in [0.5, 5.0]", "a.csv")],
        "source string, line string, line_bytes binary, reason string, _source_file string")
    assert_df_equality(bad_rows(classified, "ratings", ["_source_file"]), expected, ignore_nullable=True)


def test_bad_rows_keep_the_exact_bytes_of_an_undecodable_line(spark):
    lines = spark.sql("SELECT CAST(X'312C32C3282C332C34' AS STRING) AS value")
    bad = bad_rows(classify(lines, RATINGS), "ratings", [])
    expected = spark.createDataFrame(
        [("ratings", "1,2\ufffd(,3,4", bytearray(bytes.fromhex("312C32C3282C332C34")),
          "undecodable bytes: the line is not valid UTF-8")],
        "source string, line string, line_bytes binary, reason string")
    assert_df_equality(bad, expected, ignore_nullable=True)


@pytest.mark.parametrize("line", [
    'a,b,c', '"a,b",c', '"a,""b,c""",d', '"",,""', '"a""",b', 'x,"y,z",w', '"a,b","c,d","e,f"', '",",","', '"a"b,c',
])
def test_field_count_agrees_with_pythons_csv_module(spark, line):
    from jobs.batch.parsing import field_count

    df = spark.createDataFrame([(line,)], "value string")
    (expected,) = csv.reader([line], quotechar='"', doublequote=True)
    assert df.select(field_count(F.col("value"))).first()[0] == len(expected)


def test_a_line_over_the_cap_is_quarantined_without_being_parsed(spark):
    good = "1,10, 4.0,1500000000"
    at_cap = good.replace(" ", " " * (100 - len(good) + 1))  # whitespace around a number is trimmed
    over = at_cap.replace(" ", "  ", 1)
    assert (len(at_cap), len(over)) == (100, 101)
    lines = spark.createDataFrame([(at_cap,), (over,)], "value string")
    parsed = classify(lines, RATINGS, max_line_bytes=100).select("userId", "rating", REASON)
    expected = spark.createDataFrame(
        [(1, 4.0, None), (None, None, "line too long: 101 bytes, over sources.max_line_bytes (100); not parsed")],
        "userId int, rating double, _reason string")
    assert_df_equality(parsed, expected, ignore_row_order=True, ignore_nullable=True)


def test_a_huge_quarantined_line_keeps_all_its_bytes_and_a_readable_start(spark):
    line = '1,"' + "ab,cd," * 5000 + '",4.0,1500000000'
    lines = spark.createDataFrame([(line,)], "value string")
    (row,) = bad_rows(classify(lines, RATINGS, max_line_bytes=1000), "ratings", []).collect()
    assert row.reason == f"line too long: {len(line)} bytes, over sources.max_line_bytes (1000); not parsed"
    assert bytes(row.line_bytes) == line.encode()
    assert row.line == line[:TEXT_CHARS] + "…"


def test_a_lone_carriage_return_outside_quotes_is_named(spark):
    assert reason_of(spark, "1,10,4.0\r,1500000000") == "carriage return (CR) outside quotes: other CSV readers end the line there"


def test_a_carriage_return_inside_quotes_is_part_of_the_value(spark):
    lines = spark.createDataFrame([('7,"Heat\r(1995)",Drama',)], "value string")
    assert [tuple(r) for r in classify(lines, MOVIES).select("title", REASON).collect()] == [("Heat\r(1995)", None)]
