"""Silver conformance: typed event times, one row per key (latest wins), titles split into title and year."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from chispa import assert_df_equality

from jobs.batch.silver import conform_links, conform_movies, conform_ratings, conform_tags

RATINGS_BRONZE = "userId int, movieId int, rating double, timestamp long"
RATINGS_SILVER = "userId int, movieId int, rating double, event_time timestamp"
MOVIES_BRONZE = "movieId int, title string, genres string"
MOVIES_SILVER = "movieId int, title string, year int, genres array<string>"
TAGS_BRONZE = "userId int, movieId int, tag string, timestamp long"
TAGS_SILVER = "userId int, movieId int, tag string, event_time timestamp"
LINKS = "movieId int, imdbId string, tmdbId int"


def ts(text: str) -> datetime:
    """A UTC instant (aware, so the expected DataFrame does not depend on the machine's time zone)."""
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def test_event_time_is_the_epoch_seconds_as_a_timestamp(spark):
    bronze = spark.createDataFrame([(1, 10, 4.0, 0), (1, 11, 3.5, 1500000000)], RATINGS_BRONZE)
    expected = spark.createDataFrame([
        (1, 10, 4.0, ts("1970-01-01 00:00:00")),
        (1, 11, 3.5, ts("2017-07-14 02:40:00")),
    ], RATINGS_SILVER)
    assert_df_equality(conform_ratings(bronze), expected, ignore_row_order=True, ignore_nullable=True)


def test_ratings_keep_one_row_per_user_and_movie_the_latest(spark):
    bronze = spark.createDataFrame([
        (1, 10, 2.0, 1500000000),
        (1, 10, 4.5, 1500000200),   # latest for (1, 10)
        (1, 10, 3.0, 1500000100),
        (1, 11, 1.0, 1500000000),   # another movie of the same user
        (2, 10, 5.0, 1400000000),   # another user, same movie, older: kept
    ], RATINGS_BRONZE)
    expected = spark.createDataFrame([
        (1, 10, 4.5, ts("2017-07-14 02:43:20")),
        (1, 11, 1.0, ts("2017-07-14 02:40:00")),
        (2, 10, 5.0, ts("2014-05-13 16:53:20")),
    ], RATINGS_SILVER)
    assert_df_equality(conform_ratings(bronze), expected, ignore_row_order=True, ignore_nullable=True)


@pytest.mark.parametrize("rows", [
    [(1, 10, 3.0, 1500000000), (1, 10, 4.5, 1500000000)],
    [(1, 10, 4.5, 1500000000), (1, 10, 3.0, 1500000000)],
])
def test_a_tie_on_event_time_is_broken_by_the_higher_rating_whatever_the_input_order(spark, rows):
    bronze = spark.createDataFrame(rows, RATINGS_BRONZE)
    expected = spark.createDataFrame([(1, 10, 4.5, ts("2017-07-14 02:40:00"))], RATINGS_SILVER)
    assert_df_equality(conform_ratings(bronze), expected, ignore_nullable=True)


def test_title_year_is_split_from_the_title(spark):
    bronze = spark.createDataFrame([(1, "Toy Story (1995)", "Animation")], MOVIES_BRONZE)
    expected = spark.createDataFrame([(1, "Toy Story", 1995, ["Animation"])], MOVIES_SILVER)
    assert_df_equality(conform_movies(bronze), expected, ignore_nullable=True)


def test_title_with_a_comma_and_trailing_space_keeps_the_comma(spark):
    bronze = spark.createDataFrame([(2, "Matrix, The (1999) ", "Action")], MOVIES_BRONZE)
    expected = spark.createDataFrame([(2, "Matrix, The", 1999, ["Action"])], MOVIES_SILVER)
    assert_df_equality(conform_movies(bronze), expected, ignore_nullable=True)


@pytest.mark.parametrize("title", ["Babylon 5", "Cosmos (TV)", "1984"])
def test_title_without_a_year_is_kept_and_year_is_null(spark, title):
    bronze = spark.createDataFrame([(3, title, "Drama")], MOVIES_BRONZE)
    expected = spark.createDataFrame([(3, title, None, ["Drama"])], MOVIES_SILVER)
    assert_df_equality(conform_movies(bronze), expected, ignore_nullable=True)


def test_only_the_final_year_in_parentheses_is_taken(spark):
    bronze = spark.createDataFrame([(4, "Blade Runner (1982) (1991)", "Sci-Fi")], MOVIES_BRONZE)
    expected = spark.createDataFrame([(4, "Blade Runner (1982)", 1991, ["Sci-Fi"])], MOVIES_SILVER)
    assert_df_equality(conform_movies(bronze), expected, ignore_nullable=True)


@pytest.mark.parametrize("genres, expected_genres", [
    ("(no genres listed)", []),
    (None, []),
    ("Drama", ["Drama"]),
    ("A|B", ["A", "B"]),
    ("Action|Adventure|Sci-Fi", ["Action", "Adventure", "Sci-Fi"]),
])
def test_genres_become_an_array(spark, genres, expected_genres):
    bronze = spark.createDataFrame([(5, "Heat (1995)", genres)], MOVIES_BRONZE)
    expected = spark.createDataFrame([(5, "Heat", 1995, expected_genres)], MOVIES_SILVER)
    assert_df_equality(conform_movies(bronze), expected, ignore_nullable=True)


def test_movies_keep_one_row_per_movie_id(spark):
    bronze = spark.createDataFrame([(6, "Heat (1995)", "Action"), (6, "Heat (1995)", "Action")], MOVIES_BRONZE)
    expected = spark.createDataFrame([(6, "Heat", 1995, ["Action"])], MOVIES_SILVER)
    assert_df_equality(conform_movies(bronze), expected, ignore_nullable=True)


def test_tags_are_trimmed(spark):
    bronze = spark.createDataFrame([(1, 10, "  funny ", 1500000000)], TAGS_BRONZE)
    expected = spark.createDataFrame([(1, 10, "funny", ts("2017-07-14 02:40:00"))], TAGS_SILVER)
    assert_df_equality(conform_tags(bronze), expected, ignore_nullable=True)


def test_tags_equal_after_trimming_are_one_tag_at_the_latest_time(spark):
    bronze = spark.createDataFrame([
        (1, 10, "funny", 1500000000),
        (1, 10, " funny", 1500000200),
        (1, 10, "funny ", 1500000100),
        (1, 10, "classic", 1500000000),  # another tag on the same movie: kept
        (2, 10, "funny", 1500000000),    # another user: kept
    ], TAGS_BRONZE)
    expected = spark.createDataFrame([
        (1, 10, "funny", ts("2017-07-14 02:43:20")),
        (1, 10, "classic", ts("2017-07-14 02:40:00")),
        (2, 10, "funny", ts("2017-07-14 02:40:00")),
    ], TAGS_SILVER)
    assert_df_equality(conform_tags(bronze), expected, ignore_row_order=True, ignore_nullable=True)


def test_links_keep_one_row_per_movie_id(spark):
    bronze = spark.createDataFrame([
        (1, "0114709", 862),
        (1, "0114709", 862),
        (2, "0113497", None),
    ], LINKS)
    expected = spark.createDataFrame([(1, "0114709", 862), (2, "0113497", None)], LINKS)
    assert_df_equality(conform_links(bronze), expected, ignore_row_order=True, ignore_nullable=True)


@pytest.mark.parametrize("rows", [
    [(1, "0114709", 862), (1, "0114710", 863)],
    [(1, "0114710", 863), (1, "0114709", 862)],
])
def test_conflicting_links_resolve_the_same_whatever_the_input_order(spark, rows):
    bronze = spark.createDataFrame(rows, LINKS)
    expected = spark.createDataFrame([(1, "0114710", 863)], LINKS)
    assert_df_equality(conform_links(bronze), expected, ignore_nullable=True)
