"""The lake's tables, each declared once: its layer and name, key, partitioning, Delta properties and writers.

The writers of common/tables.py take a table's partitioning and properties from here; a name that is
not declared here has no location.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from common.errors import ConfigError

LAYERS = ("bronze", "silver", "gold", "quarantine", "state")
ANY_JOB = "*"  # a writer that stands for every job: the runner records each run in the ledger
# What full_load adds to each bronze row. One value per load: min/max statistics on them never skip a file,
# and computing them cost ~2 s per 10M rows, so bronze keeps statistics on its data columns only.
INGEST_METADATA = ("_source_file", "_snapshot_id", "_ingested_at")


@dataclass(frozen=True)
class Table:
    """One table of the lake. `key`: the columns no two rows share (empty: a log or a snapshot of raw
    rows, duplicates kept); `no_statistics_on`: columns Delta keeps no min/max statistics on; `view`: a SQL
    view of the serving layer, written by no job."""

    name: str                                   # <layer>.<table>
    description: str
    writers: tuple[str, ...]                    # job names of jobs/runners/registry.py, or ANY_JOB
    key: tuple[str, ...] = ()
    partition_by: tuple[str, ...] = ()
    properties: Mapping[str, str] = field(default_factory=dict, hash=False)
    no_statistics_on: tuple[str, ...] = ()
    view: bool = False

    @property
    def layer(self) -> str:
        return self.name.partition(".")[0]

    @property
    def table(self) -> str:
        return self.name.partition(".")[2]

    def delta_properties(self, columns: list[str]) -> dict[str, str]:
        """The Delta properties a write of these columns gives the table."""
        if not self.no_statistics_on:
            return dict(self.properties)
        kept = ",".join(c for c in columns if c not in self.no_statistics_on)
        return {**self.properties, "delta.dataSkippingStatsColumns": kept}


def _landed(source: str) -> tuple[Table, Table]:
    """A batch source's raw lines, as full_load splits them: the ones that pass its checks, the others."""
    return (Table(f"bronze.{source}", f"{source} lines of the raw snapshot that passed the checks, as landed",
                  ("full_load",), no_statistics_on=INGEST_METADATA),
            Table(f"quarantine.{source}", f"{source} lines of the raw snapshot that failed a check, with the reason",
                  ("full_load",)))


BRONZE_RATINGS, QUARANTINE_RATINGS = _landed("ratings")
BRONZE_MOVIES, QUARANTINE_MOVIES = _landed("movies")
BRONZE_TAGS, QUARANTINE_TAGS = _landed("tags")
BRONZE_LINKS, QUARANTINE_LINKS = _landed("links")

SILVER_RATINGS = Table("silver.ratings", "ratings of the batch snapshot and the merged events: one row per "
                       "user and movie, the latest wins", ("silver", "speed"), ("userId", "movieId"),
                       # The speed layer MERGEs into it and reads its change feed for the real-time view.
                       properties={"delta.enableChangeDataFeed": "true"})
SILVER_MOVIES = Table("silver.movies", "movies with year and genres: one row per movie", ("silver",), ("movieId",))
SILVER_TAGS = Table("silver.tags", "tags: one row per user, movie and tag, the latest wins", ("silver",),
                    ("userId", "movieId", "tag"))
SILVER_LINKS = Table("silver.links", "IMDb and TMDB ids: one row per movie", ("silver",), ("movieId",))

BRONZE_RATING_EVENTS = Table("bronze.rating_events", "every rating event the speed layer read that passed "
                             "the checks, as it arrived (the log a batch recompute replays)", ("speed",))
QUARANTINE_RATING_EVENTS = Table("quarantine.rating_events", "rating events that failed a check, with the reason",
                                 ("speed",))

GOLD_MOVIE_STATS_BATCH = Table("gold.movie_stats_batch", "batch view: per movie, rating count, sum, mean and "
                               "Bayesian average at a silver.ratings version", ("gold",), ("movieId",))
GOLD_MOVIE_STATS_REALTIME = Table("gold.movie_stats_realtime", "real-time view: per movie and silver.ratings "
                                  "version, the deltas a MERGE made (gold retires the covered ones)",
                                  ("speed", "gold"), ("movieId", "silver_version"))
GOLD_GENRE_STATS = Table("gold.genre_stats", "per genre and year of rating: ratings, mean, movies rated",
                         ("gold",), ("genre", "rating_year"))
GOLD_USER_ACTIVITY = Table("gold.user_activity", "per user: ratings, mean, first and last rating, tags",
                           ("gold",), ("userId",))
# By month, not by day: a day of ratings is kilobytes, and a folder per day would be thousands of tiny files.
GOLD_DAILY_RATINGS = Table("gold.daily_ratings", "per event date and movie: ratings, their sum and mean",
                           ("daily",), ("event_date", "movieId"), partition_by=("event_month",))
GOLD_RECOMMENDATION_CANDIDATES = Table("gold.recommendation_candidates", "per user, the top ml.top_k + "
                                       "ml.candidate_buffer movies scored by the champion model",
                                       ("score",), ("userId", "rank"))
GOLD_MOVIE_STATS = Table("gold.movie_stats", "serving view: the batch view plus the real-time deltas it "
                         "does not cover", (), view=True)
GOLD_RECOMMENDATIONS = Table("gold.recommendations", "serving view: per user, the first ml.top_k candidates "
                             "not rated since scoring", (), view=True)

STATE_LEDGER = Table("state.ledger", "one row per job run: params, tables read and written, counts, status",
                     (ANY_JOB,), ("run_id",))
STATE_STREAM_PROGRESS = Table("state.stream_progress", "per stream, the micro-batches silver.ratings holds, one row "
                              "appended per record; the furthest is the stream's mark", ("speed", "silver"),
                              ("stream", "batch_id"))
STATE_DAILY_INPUTS = Table("state.daily_inputs", "per event date, the rows and fingerprint gold.daily_ratings "
                           "was last built from", ("daily",), ("event_date",))

TABLES: dict[str, Table] = {t.name: t for t in (
    BRONZE_RATINGS, BRONZE_MOVIES, BRONZE_TAGS, BRONZE_LINKS, BRONZE_RATING_EVENTS,
    QUARANTINE_RATINGS, QUARANTINE_MOVIES, QUARANTINE_TAGS, QUARANTINE_LINKS, QUARANTINE_RATING_EVENTS,
    SILVER_RATINGS, SILVER_MOVIES, SILVER_TAGS, SILVER_LINKS,
    GOLD_MOVIE_STATS_BATCH, GOLD_MOVIE_STATS_REALTIME, GOLD_GENRE_STATS, GOLD_USER_ACTIVITY, GOLD_DAILY_RATINGS,
    GOLD_RECOMMENDATION_CANDIDATES, GOLD_MOVIE_STATS, GOLD_RECOMMENDATIONS,
    STATE_LEDGER, STATE_STREAM_PROGRESS, STATE_DAILY_INPUTS)}


def get(name: str) -> Table:
    """The declared table of that name; ConfigError when there is none."""
    if name not in TABLES:
        raise ConfigError(f"undeclared table '{name}': every table of the lake is declared in common/catalogue.py "
                          f"(<layer>.<table>, layer one of {', '.join(LAYERS)})")
    return TABLES[name]


def stored(name: str) -> bool:
    """Whether name is a declared table that holds data of its own: not a view, not undeclared."""
    return name in TABLES and not TABLES[name].view


def of_source(layer: str, source: str) -> Table:
    """A batch source's table in bronze, quarantine or silver (a source of conf/schemas.yaml)."""
    return get(f"{layer}.{source}")
