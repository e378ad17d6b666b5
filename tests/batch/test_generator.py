"""The MovieLens-shaped generator: deterministic per seed, exact sizes, unique pairs, realistic shape."""
from __future__ import annotations

import csv
import re
import signal
from collections import Counter
from contextlib import contextmanager
from dataclasses import replace

import pytest

from jobs.batch.generator import TASTES, GeneratorSpec, generate, tastes

FILES = ("ratings.csv", "movies.csv", "tags.csv", "links.csv")
SMALL = GeneratorSpec(seed=7, ratings=3000, users=60, movies=400, tags=150, start="2015-01-01", end="2016-01-01")
STARS = {x / 2 for x in range(1, 11)}  # 0.5, 1.0, ..., 5.0


def read_rows(path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """SMALL generated once: (folder, the counts generate returned)."""
    folder = tmp_path_factory.mktemp("small")
    return folder, generate(SMALL, str(folder))


@contextmanager
def deadline(seconds: int):
    """Fail instead of hanging the suite when a call does not return."""
    def expire(signum, frame):
        raise TimeoutError(f"did not return within {seconds}s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_same_seed_writes_byte_identical_files(small, tmp_path):
    folder, _ = small
    generate(SMALL, str(tmp_path))
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (folder / name).read_bytes(), name


def test_a_different_seed_writes_different_files(small, tmp_path):
    folder, _ = small
    generate(replace(SMALL, seed=8), str(tmp_path))
    for name in FILES:
        assert (tmp_path / name).read_bytes() != (folder / name).read_bytes(), name


def test_files_hold_exactly_the_requested_rows(small):
    folder, counts = small
    expected = {"ratings.csv": 3000, "movies.csv": 400, "tags.csv": 150, "links.csv": 400}
    assert counts == expected
    assert {name: len(read_rows(folder / name)) for name in FILES} == expected


def test_every_user_and_movie_pair_is_rated_once(small):
    folder, _ = small
    pairs = Counter((r["userId"], r["movieId"]) for r in read_rows(folder / "ratings.csv"))
    assert [pair for pair, n in pairs.items() if n > 1] == []


def test_ratings_refer_to_generated_users_and_movies(small):
    folder, _ = small
    movie_ids = {r["movieId"] for r in read_rows(folder / "movies.csv")}
    ratings = read_rows(folder / "ratings.csv")
    assert {r["movieId"] for r in ratings} <= movie_ids
    assert {int(r["userId"]) for r in ratings} <= set(range(1, SMALL.users + 1))


def test_ratings_are_half_or_whole_stars_and_both_occur(small):
    folder, _ = small
    ratings = {float(r["rating"]) for r in read_rows(folder / "ratings.csv")}
    assert ratings <= STARS
    assert any(r % 1 == 0.5 for r in ratings)
    assert any(r % 1 == 0 for r in ratings)


def test_timestamps_fall_between_start_and_end(small):
    folder, _ = small
    stamps = [int(r["timestamp"]) for r in read_rows(folder / "ratings.csv")]
    assert 1420070400 <= min(stamps) and max(stamps) < 1451606400  # 2015-01-01 .. 2016-01-01 UTC


def test_popular_movies_take_far_more_than_their_share(tmp_path):
    spec = GeneratorSpec(seed=3, ratings=50_000, users=300, movies=4500, tags=10, start="2015-01-01", end="2016-01-01")
    generate(spec, str(tmp_path))
    per_movie = Counter(r["movieId"] for r in read_rows(tmp_path / "ratings.csv"))
    top = sorted(per_movie.values(), reverse=True)[: spec.movies // 10]
    share = sum(top) / spec.ratings
    assert share >= 0.25, f"top 10% of movies hold {share:.1%} of ratings; uniform would be 10%"


def test_users_mostly_watch_and_like_movies_of_their_taste(small):
    """Something for a recommender to learn beyond popularity: with TASTES groups a user would meet
    their own taste in 1/TASTES of ratings by chance; here in about three times as many (heavy users
    run out of their taste's movies), rated over a star higher."""
    folder, _ = small
    user_taste, movie_taste = tastes(SMALL)
    index = {movie_id: i for i, movie_id in enumerate(sorted(int(r["movieId"]) for r in read_rows(folder / "movies.csv")))}
    same, other = [], []
    for r in read_rows(folder / "ratings.csv"):
        mine = user_taste[int(r["userId"]) - 1] == movie_taste[index[int(r["movieId"])]]
        (same if mine else other).append(float(r["rating"]))
    share = len(same) / (len(same) + len(other))
    assert 2.5 / TASTES < share < 0.7, f"{share:.1%} of ratings on the user's own taste; by chance {1 / TASTES:.1%}"
    assert sum(same) / len(same) - sum(other) / len(other) > 1.0


def test_every_title_ends_with_a_year_in_parentheses(small):
    folder, _ = small
    titles = [r["title"] for r in read_rows(folder / "movies.csv")]
    assert [t for t in titles if not re.fullmatch(r".+ \((19|20)\d\d\)", t)] == []


def test_titles_with_a_comma_are_quoted(small):
    folder, _ = small
    lines = (folder / "movies.csv").read_text(encoding="utf-8").splitlines()[1:]
    quoted = [line for line in lines if re.fullmatch(r'\d+,"[^"]*, The \(\d{4}\)",.*', line)]
    assert quoted, "no quoted title with a comma in movies.csv"
    with_comma = [r["title"] for r in read_rows(folder / "movies.csv") if "," in r["title"]]
    assert len(quoted) == len(with_comma)


def test_more_ratings_than_half_of_all_pairs_is_refused(tmp_path):
    spec = replace(SMALL, ratings=51, users=10, movies=10)  # at most 10 * 10 // 2 = 50
    with pytest.raises(ValueError, match="51 ratings cannot be unique pairs of 10 users × 10 movies"):
        generate(spec, str(tmp_path))


def test_exactly_half_of_all_pairs_is_possible(tmp_path):
    spec = replace(SMALL, ratings=50, users=10, movies=10)
    with deadline(5):
        counts = generate(spec, str(tmp_path))
    pairs = {(r["userId"], r["movieId"]) for r in read_rows(tmp_path / "ratings.csv")}
    assert counts["ratings.csv"] == len(pairs) == 50


def test_with_an_odd_number_of_movies_each_user_rates_at_most_half_rounded_down(tmp_path):
    full = replace(SMALL, ratings=50, users=10, movies=11)  # 10 users × 5 movies each
    with deadline(5):
        counts = generate(full, str(tmp_path))
    pairs = {(r["userId"], r["movieId"]) for r in read_rows(tmp_path / "ratings.csv")}
    assert counts["ratings.csv"] == len(pairs) == 50
    with deadline(5), pytest.raises(ValueError, match="each user rates at most 5, so at most 50"):
        generate(replace(full, ratings=51), str(tmp_path / "over"))


def test_fewer_ratings_than_users_is_refused_not_a_hang(tmp_path):
    # Every user gets at least one rating, so 5 ratings cannot be spread over 10 users.
    spec = replace(SMALL, ratings=5, users=10, movies=20)
    with deadline(5), pytest.raises(ValueError):
        generate(spec, str(tmp_path))
