"""The real ml-latest-small (from ../shared/data) through the batch layer: its published counts."""
from __future__ import annotations

import os

import pandas as pd
import pytest
from pyspark.sql import functions as F

from common import tables
from common.catalogue import (
    BRONZE_LINKS, BRONZE_MOVIES, BRONZE_RATINGS, BRONZE_TAGS, GOLD_MOVIE_STATS_BATCH, GOLD_USER_ACTIVITY,
    SILVER_MOVIES, SILVER_RATINGS)
from jobs.runners.runner import run_job
from tests.conftest import SHARED_MOVIELENS

ML_SMALL = os.path.join(SHARED_MOVIELENS, "ml-latest-small")

pytestmark = pytest.mark.skipif(not os.path.isfile(os.path.join(ML_SMALL, "ratings.csv")),
                                reason=f"the real dataset is not at {ML_SMALL} (CI has it beside the clone)")


def test_ml_latest_small_loads_with_its_published_counts(spark, cfg):
    cfg = cfg.with_overrides({"source.kind": "folder", "source.folder": ML_SMALL})
    for job in ("extract", "full_load", "silver", "gold"):
        run_job(spark, cfg, job)
    count = lambda name: tables.read(spark, cfg, name).count()  # noqa: E731
    # The dataset's README: 100836 ratings and 3683 tag applications across 9742 movies, by 610 users.
    assert count(BRONZE_RATINGS.name) == count(SILVER_RATINGS.name) == 100_836
    assert count(BRONZE_MOVIES.name) == count(SILVER_MOVIES.name) == 9_742
    assert count(BRONZE_TAGS.name) == 3_683
    assert count(BRONZE_LINKS.name) == 9_742
    assert sum(count(f"quarantine.{s}") for s in ("ratings", "movies", "tags", "links")) == 0
    assert tables.read(spark, cfg, SILVER_RATINGS.name).select("userId").distinct().count() == 610
    assert count(GOLD_USER_ACTIVITY.name) == 610
    assert count(GOLD_MOVIE_STATS_BATCH.name) == 9_724  # distinct movies rated


def test_ml_latest_small_titles_and_genres_are_conformed(spark, cfg):
    cfg = cfg.with_overrides({"source.kind": "folder", "source.folder": ML_SMALL})
    for job in ("extract", "full_load", "silver"):
        run_job(spark, cfg, job)
    movies = tables.read(spark, cfg, SILVER_MOVIES.name)
    toy = movies.where("movieId = 1").first()
    assert (toy.title, toy.year, toy.genres) == \
        ("Toy Story", 1995, ["Adventure", "Animation", "Children", "Comedy", "Fantasy"])
    raw = pd.read_csv(os.path.join(ML_SMALL, "movies.csv"))  # the oracle, computed by pandas
    no_year = (~raw.title.str.strip().str.contains(r"\(\d{4}\)$")).sum()
    assert movies.where(F.col("year").isNull()).count() == no_year > 0
    assert movies.where(F.size("genres") == 0).count() == (raw.genres == "(no genres listed)").sum() > 0
