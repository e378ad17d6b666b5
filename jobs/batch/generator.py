"""A deterministic generator of MovieLens-shaped data (ratings, movies, tags, links).

Seeded and vectorised (numpy), written in chunks so that 100M ratings fit in memory. The shape
follows the real dataset: a few popular movies and very active users take most ratings, ratings
peak at 4 with half stars, titles carry a year and sometimes a comma (so they are quoted), and
every (userId, movieId) pair is rated once. Users have a taste, as real ones do: each belongs to one
of TASTES, mostly watches the movies of that taste and rates them higher, so there is something for a
recommender to learn beyond popularity.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from common.errors import ConfigError

GENRES = ["Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama",
          "Fantasy", "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi",
          "Thriller", "War", "Western"]
# Relative frequency of each genre in ml-latest-small (Drama and Comedy dominate).
GENRE_WEIGHTS = [1828, 1263, 611, 664, 3756, 1199, 440, 4361, 779, 87, 978, 158, 334, 573, 1596, 980,
                 1894, 382, 167]
WORDS = ["Love", "Night", "Man", "Story", "City", "Dark", "Last", "Life", "Day", "World", "Girl", "Time",
         "Lost", "Blue", "Star", "House", "King", "Dead", "Summer", "Heart", "River", "Road", "Game", "War"]
TAG_WORDS = ["funny", "atmospheric", "twist ending", "dark comedy", "classic", "visually appealing",
             "thought-provoking", "sci-fi", "based on a book", "Oscar (Best Picture)", "quirky", "violence",
             "slow, but good", "soundtrack", "predictable"]
CHUNK_USERS = 20_000
TASTES = 8           # groups of users and movies (think: fans of a kind of film)
TASTE_PULL = 8.0     # a movie of the user's taste is this many times likelier to be watched ...
TASTE_LIFT = 0.8     # ... and rated this many stars higher than the movie's mean; one of another
TASTE_DROP = -0.6    # taste this many (a user mostly watches what they like, and likes it)


@dataclass(frozen=True)
class GeneratorSpec:
    seed: int
    ratings: int
    users: int
    movies: int
    tags: int
    start: str
    end: str

    def check(self) -> None:
        """Refuse a shape that cannot be generated: every user rates at least one movie, at most half of them."""
        cap = self.movies // 2
        if self.ratings < self.users:
            raise ConfigError(f"{self.ratings} ratings cannot cover {self.users} users: each user rates at least "
                              "one movie (generator.ratings < generator.users)")
        if cap < 1 or self.ratings > self.users * cap:
            raise ConfigError(f"{self.ratings} ratings cannot be unique pairs of {self.users} users × {self.movies} "
                              f"movies: each user rates at most {cap}, so at most {self.users * cap}")

    @property
    def snapshot_id(self) -> str:
        return f"gen-s{self.seed}-r{self.ratings}-u{self.users}-m{self.movies}-t{self.tags}"


def generate(spec: GeneratorSpec, out_dir: str) -> dict[str, int]:
    """Write ratings.csv, movies.csv, tags.csv and links.csv into out_dir; return rows per file."""
    spec.check()
    rng = np.random.default_rng(spec.seed)
    movie_ids = np.sort(rng.choice(np.arange(1, spec.movies * 20 + 1), size=spec.movies, replace=False))
    popularity = _zipf_weights(spec.movies, rng, exponent=0.8)
    quality = rng.normal(0.0, 0.45, spec.movies)
    years = rng.integers(1920, 2019, spec.movies)
    os.makedirs(out_dir, exist_ok=True)
    counts = {"movies.csv": _write_movies(rng, movie_ids, years, os.path.join(out_dir, "movies.csv")),
              "links.csv": _write_links(rng, movie_ids, os.path.join(out_dir, "links.csv"))}
    counts["ratings.csv"] = _write_ratings(spec, rng, movie_ids, popularity, quality,
                                           os.path.join(out_dir, "ratings.csv"))
    counts["tags.csv"] = _write_tags(spec, rng, movie_ids, popularity, os.path.join(out_dir, "tags.csv"))
    return counts


def _zipf_weights(n: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    weights = 1.0 / np.arange(10, n + 10) ** exponent
    rng.shuffle(weights)  # popularity is not tied to the id
    return weights / weights.sum()


def _ratings_per_user(spec: GeneratorSpec, rng: np.random.Generator) -> np.ndarray:
    """Split spec.ratings over users with a heavy tail (lognormal activity), each between 1 and movies/2."""
    cap = spec.movies // 2
    activity = rng.lognormal(0.0, 1.2, spec.users)
    counts = np.minimum(np.floor(activity / activity.sum() * spec.ratings).astype(np.int64), cap)
    counts = np.maximum(counts, 1)
    diff = spec.ratings - int(counts.sum())
    order = np.argsort(-activity)
    while diff != 0:  # hand the rounding remainder to the most active users that still have room
        step = 1 if diff > 0 else -1
        room = (counts < cap) if step > 0 else (counts > 1)
        eligible = order[room[order]][: abs(diff)]
        counts[eligible] += step
        diff -= step * len(eligible)
    return counts


def _unique_pairs(users: np.ndarray, need: np.ndarray, n_movies: int, popularity: np.ndarray,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Movies for each user (need[i] distinct ones for users[i]), drawn by popularity."""
    have_u = np.empty(0, np.int64)
    have_m = np.empty(0, np.int64)
    target = need.copy()
    for _ in range(12):
        short = target - np.bincount(np.searchsorted(users, have_u), minlength=len(users))
        if not short.any():
            break
        extra = np.ceil(short * 1.3).astype(np.int64) + (short > 0)
        new_u = np.repeat(users, extra)
        new_m = rng.choice(n_movies, size=len(new_u), p=popularity)
        keys = np.concatenate([have_u * n_movies + have_m, new_u * n_movies + new_m])
        _, first = np.unique(keys, return_index=True)
        first.sort()  # keep pairs already held, then new ones in draw order
        keys = keys[first]
        u, m = keys // n_movies, keys % n_movies
        order = np.argsort(u, kind="stable")
        u, m = u[order], m[order]
        pos = np.arange(len(u)) - np.searchsorted(u, u)
        keep = pos < target[np.searchsorted(users, u)]
        have_u, have_m = u[keep], m[keep]
    short = target - np.bincount(np.searchsorted(users, have_u), minlength=len(users))
    if short.any():  # rare: fill what sampling left by walking the popularity order
        by_pop = np.argsort(-popularity)
        fill_u, fill_m = [], []
        for i in np.nonzero(short)[0]:
            taken = set(have_m[have_u == users[i]].tolist())
            free = [m for m in by_pop if m not in taken][: short[i]]
            fill_u += [users[i]] * len(free)
            fill_m += free
        have_u = np.concatenate([have_u, np.array(fill_u, np.int64)])
        have_m = np.concatenate([have_m, np.array(fill_m, np.int64)])
    return have_u, have_m


def tastes(spec: GeneratorSpec) -> tuple[np.ndarray, np.ndarray]:
    """The taste (0..TASTES-1) of each user and of each movie, by index, from a stream of their own."""
    rng = np.random.default_rng([spec.seed, 1])
    return rng.integers(0, TASTES, spec.users), rng.integers(0, TASTES, spec.movies)


def _pairs_by_taste(users, need, user_taste, movie_taste, popularity, rng) -> tuple[np.ndarray, np.ndarray]:
    """_unique_pairs for each taste's users, with that taste's movies TASTE_PULL times likelier;
    the pairs ordered by user."""
    parts = []
    for taste in np.unique(user_taste[users]):
        mine = user_taste[users] == taste
        weights = popularity * np.where(movie_taste == taste, TASTE_PULL, 1.0)
        parts.append(_unique_pairs(users[mine], need[mine], len(popularity), weights / weights.sum(), rng))
    u, m = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    order = np.argsort(u, kind="stable")
    return u[order], m[order]


def _write_ratings(spec, rng, movie_ids, popularity, quality, path) -> int:
    per_user = _ratings_per_user(spec, rng)
    bias = rng.normal(0.0, 0.35, spec.users)
    half_stars = rng.random(spec.users) < 0.6
    user_taste, movie_taste = tastes(spec)
    t0, t1 = (int(datetime.fromisoformat(d).replace(tzinfo=timezone.utc).timestamp()) for d in (spec.start, spec.end))
    written = 0
    with open(path, "w", newline="") as f:
        f.write("userId,movieId,rating,timestamp\n")
        for lo in range(0, spec.users, CHUNK_USERS):
            users = np.arange(lo, min(lo + CHUNK_USERS, spec.users))
            u, m = _pairs_by_taste(users, per_user[users], user_taste, movie_taste, popularity, rng)
            raw = (3.7 + quality[m] + bias[u] + np.where(user_taste[u] == movie_taste[m], TASTE_LIFT, TASTE_DROP)
                   + rng.normal(0.0, 0.7, len(u)))
            step = np.where(half_stars[u], 2.0, 1.0)
            rating = np.clip(np.round(raw * step) / step, np.where(half_stars[u], 0.5, 1.0), 5.0)
            ts = rng.integers(t0, t1, len(u))
            pd.DataFrame({"userId": u + 1, "movieId": movie_ids[m], "rating": rating, "timestamp": ts}) \
              .to_csv(f, header=False, index=False, float_format="%.1f")
            written += len(u)
    return written


def _title(rng, year) -> str:
    words = " ".join(rng.choice(WORDS, size=int(rng.integers(1, 4))))
    if rng.random() < 0.15:  # "Matrix, The" style: a comma that must be quoted
        words = f"{words}, The"
    return f"{words} ({year})"


def _write_movies(rng, movie_ids, years, path) -> int:
    p = np.array(GENRE_WEIGHTS, float) / sum(GENRE_WEIGHTS)
    rows = []
    for movie_id, year in zip(movie_ids, years):
        k = int(rng.integers(0, 4))
        genres = "|".join(sorted(rng.choice(GENRES, size=k, replace=False, p=p))) if k else "(no genres listed)"
        rows.append((int(movie_id), _title(rng, int(year)), genres))
    pd.DataFrame(rows, columns=["movieId", "title", "genres"]).to_csv(path, index=False, quoting=csv.QUOTE_MINIMAL)
    return len(rows)


def _write_links(rng, movie_ids, path) -> int:
    imdb = [f"{i:07d}" for i in rng.integers(1, 9_999_999, len(movie_ids))]
    tmdb = pd.array(rng.integers(1, 500_000, len(movie_ids)), dtype="Int64")
    tmdb[rng.random(len(movie_ids)) < 0.01] = pd.NA  # a few links lack a TMDb id, as in the real file
    pd.DataFrame({"movieId": movie_ids, "imdbId": imdb, "tmdbId": tmdb}).to_csv(path, index=False)
    return len(movie_ids)


def _write_tags(spec, rng, movie_ids, popularity, path) -> int:
    taggers = rng.choice(spec.users, size=max(1, spec.users // 10), replace=False)
    t0, t1 = (int(datetime.fromisoformat(d).replace(tzinfo=timezone.utc).timestamp()) for d in (spec.start, spec.end))
    df = pd.DataFrame({
        "userId": rng.choice(taggers, spec.tags) + 1,
        "movieId": movie_ids[rng.choice(spec.movies, spec.tags, p=popularity)],
        "tag": rng.choice(TAG_WORDS, spec.tags),
        "timestamp": rng.integers(t0, t1, spec.tags),
    })
    df.to_csv(path, index=False, quoting=csv.QUOTE_MINIMAL)
    return len(df)
