"""Gold batch views against oracles computed in plain Python on the same tiny inputs."""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone

from chispa import assert_approx_df_equality, assert_df_equality

from jobs.batch.gold import genre_stats, movie_stats, user_activity

RATINGS = "userId int, movieId int, rating double, event_time timestamp"
MOVIES = "movieId int, title string, year int, genres array<string>"
TAGS = "userId int, movieId int, tag string, event_time timestamp"
MOVIE_STATS = ("movieId int, title string, year int, rating_count long, rating_sum double, rating_mean double, "
               "bayes_avg double, cutoff_event_time timestamp")
GENRE_STATS = ("genre string, rating_year int, rating_count long, rating_mean double, movies_rated long, "
               "cutoff_event_time timestamp")
USER_ACTIVITY = ("userId int, rating_count long, rating_mean double, first_rated_at timestamp, "
                 "last_rated_at timestamp, tag_count long, cutoff_event_time timestamp")


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


CUTOFF = ts("2020-06-30 12:00:00")
RATING_ROWS = [
    (1, 10, 4.0, ts("2019-03-01 10:00:00")),
    (2, 10, 5.0, ts("2019-12-31 23:59:59")),
    (3, 10, 3.5, ts("2020-01-01 00:00:00")),
    (1, 20, 2.0, ts("2020-02-01 08:00:00")),
    (2, 20, 2.5, ts("2020-03-01 09:00:00")),
    (3, 30, 0.5, ts("2020-04-01 10:00:00")),  # movie 30 is missing from movies
]
MOVIE_ROWS = [
    (10, "Heat", 1995, ["Action", "Crime"]),
    (20, "Toy Story", 1995, ["Animation", "Comedy"]),
    (40, "Never Rated", 2001, ["Drama"]),
]


def movie_stats_oracle(ratings, movies, m):
    c = sum(r[2] for r in ratings) / len(ratings)
    by_movie = defaultdict(list)
    for _, movie_id, rating, _ in ratings:
        by_movie[movie_id].append(rating)
    titles = {movie_id: (title, year) for movie_id, title, year, _ in movies}
    return [(movie_id, *titles.get(movie_id, (None, None)), len(rs), sum(rs), sum(rs) / len(rs),
             (c * m + sum(rs)) / (m + len(rs)), CUTOFF)
            for movie_id, rs in by_movie.items()]


def test_movie_stats_match_a_plain_python_oracle(spark):
    ratings = spark.createDataFrame(RATING_ROWS, RATINGS)
    movies = spark.createDataFrame(MOVIE_ROWS, MOVIES)
    expected = spark.createDataFrame(movie_stats_oracle(RATING_ROWS, MOVIE_ROWS, m=2), MOVIE_STATS)
    assert_approx_df_equality(movie_stats(ratings, movies, 2, CUTOFF), expected, 1e-9,
                              ignore_row_order=True, ignore_nullable=True)


def test_bayesian_average_by_hand(spark):
    # C = (4 + 2) / 2 = 3; movie 10: (3·3 + 4) / (3 + 1) = 3.25; movie 20: (3·3 + 2) / (3 + 1) = 2.75
    ratings = spark.createDataFrame([(1, 10, 4.0, ts("2020-01-01 00:00:00")),
                                     (1, 20, 2.0, ts("2020-01-01 00:00:00"))], RATINGS)
    movies = spark.createDataFrame([(10, "Heat", 1995, []), (20, "Toy Story", 1995, [])], MOVIES)
    stats = movie_stats(ratings, movies, 3, CUTOFF).select("movieId", "bayes_avg")
    expected = spark.createDataFrame([(10, 3.25), (20, 2.75)], "movieId int, bayes_avg double")
    assert_approx_df_equality(stats, expected, 1e-12, ignore_row_order=True, ignore_nullable=True)


def test_movie_stats_stamp_every_row_with_the_cutoff(spark):
    ratings = spark.createDataFrame(RATING_ROWS, RATINGS)
    movies = spark.createDataFrame(MOVIE_ROWS, MOVIES)
    stamped = movie_stats(ratings, movies, 2, CUTOFF).select("movieId", "cutoff_event_time")
    expected = spark.createDataFrame([(10, CUTOFF), (20, CUTOFF), (30, CUTOFF)],
                                     "movieId int, cutoff_event_time timestamp")
    assert_df_equality(stamped, expected, ignore_row_order=True, ignore_nullable=True)


def test_movie_missing_from_movies_is_kept_with_a_null_title(spark):
    ratings = spark.createDataFrame([(1, 30, 0.5, ts("2020-04-01 10:00:00"))], RATINGS)
    movies = spark.createDataFrame(MOVIE_ROWS, MOVIES)
    stats = movie_stats(ratings, movies, 2, CUTOFF).select("movieId", "title", "year", "rating_count")
    expected = spark.createDataFrame([(30, None, None, 1)], "movieId int, title string, year int, rating_count long")
    assert_df_equality(stats, expected, ignore_nullable=True)


def test_genre_stats_explode_genres_and_group_by_rating_year(spark):
    ratings = spark.createDataFrame(RATING_ROWS, RATINGS)
    movies = spark.createDataFrame(MOVIE_ROWS, MOVIES)
    # Movie 10 (Action, Crime): 4.0 and 5.0 in 2019, 3.5 in 2020 (the last second of 2019 stays in 2019).
    # Movie 20 (Animation, Comedy): 2.0 and 2.5 in 2020. Movie 30 has no genres (not in movies): left out.
    expected = spark.createDataFrame([
        ("Action", 2019, 2, 4.5, 1, CUTOFF),
        ("Action", 2020, 1, 3.5, 1, CUTOFF),
        ("Crime", 2019, 2, 4.5, 1, CUTOFF),
        ("Crime", 2020, 1, 3.5, 1, CUTOFF),
        ("Animation", 2020, 2, 2.25, 1, CUTOFF),
        ("Comedy", 2020, 2, 2.25, 1, CUTOFF),
    ], GENRE_STATS)
    assert_approx_df_equality(genre_stats(ratings, movies, CUTOFF), expected, 1e-12,
                              ignore_row_order=True, ignore_nullable=True)


def test_genre_stats_count_distinct_movies_per_genre(spark):
    ratings = spark.createDataFrame([
        (1, 10, 4.0, ts("2020-01-01 00:00:00")),
        (2, 10, 2.0, ts("2020-01-02 00:00:00")),
        (1, 20, 3.0, ts("2020-01-03 00:00:00")),
    ], RATINGS)
    movies = spark.createDataFrame([(10, "Heat", 1995, ["Drama"]), (20, "Ran", 1985, ["Drama"])], MOVIES)
    expected = spark.createDataFrame([("Drama", 2020, 3, 3.0, 2, CUTOFF)], GENRE_STATS)
    assert_approx_df_equality(genre_stats(ratings, movies, CUTOFF), expected, 1e-12, ignore_nullable=True)


def test_user_activity_counts_tags_and_first_and_last_times(spark):
    ratings = spark.createDataFrame(RATING_ROWS, RATINGS)
    tags = spark.createDataFrame([
        (1, 10, "classic", ts("2019-03-02 00:00:00")),
        (1, 20, "funny", ts("2020-02-02 00:00:00")),
        (2, 10, "tense", ts("2020-01-05 00:00:00")),
        (9, 10, "orphan", ts("2020-01-05 00:00:00")),  # user 9 never rated: no row
    ], TAGS)
    expected = spark.createDataFrame([
        (1, 2, 3.0, ts("2019-03-01 10:00:00"), ts("2020-02-01 08:00:00"), 2, CUTOFF),
        (2, 2, 3.75, ts("2019-12-31 23:59:59"), ts("2020-03-01 09:00:00"), 1, CUTOFF),
        (3, 2, 2.0, ts("2020-01-01 00:00:00"), ts("2020-04-01 10:00:00"), 0, CUTOFF),  # no tags: 0, not null
    ], USER_ACTIVITY)
    assert_approx_df_equality(user_activity(ratings, tags, CUTOFF), expected, 1e-12,
                              ignore_row_order=True, ignore_nullable=True)


def test_user_activity_with_no_tags_at_all_counts_zero(spark):
    ratings = spark.createDataFrame([(1, 10, 4.0, ts("2020-01-01 00:00:00"))], RATINGS)
    tags = spark.createDataFrame([], TAGS)
    expected = spark.createDataFrame(
        [(1, 1, 4.0, ts("2020-01-01 00:00:00"), ts("2020-01-01 00:00:00"), 0, CUTOFF)], USER_ACTIVITY)
    assert_df_equality(user_activity(ratings, tags, CUTOFF), expected, ignore_nullable=True)
