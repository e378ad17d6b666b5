"""Job `silver`: conform bronze into typed, deduplicated silver tables.

ratings (key userId, movieId; latest event wins), movies (year from the title, genres as an
array), tags, links; a source the dataset does not declare (ml-100k has no tags) becomes an empty
table of the same shape. Each transform is a pure DataFrame → DataFrame function.
"""
from __future__ import annotations

import uuid

from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from common import catalogue, idempotent, stream_progress, tables
from common.config import Config
from common.errors import ConfigError, SourceError
from common.ledger import RunResult
from common.schemas import source_schemas

NO_GENRES = "(no genres listed)"
_TITLE_YEAR = r"^(.*?)\s*\((\d{4})\)\s*$"


def latest_per_key(df: DataFrame, keys: list[str], order: list[str]) -> DataFrame:
    """One row per key: the greatest by `order` (then by every other column, so ties are deterministic)."""
    rest = [c for c in df.columns if c not in keys and c not in order]
    best = F.max(F.struct(*order, *rest)).alias("_best")
    return df.groupBy(*keys).agg(best).select(*keys, *[F.col(f"_best.{c}").alias(c) for c in order + rest])


def conform_ratings(bronze: DataFrame) -> DataFrame:
    ratings = bronze.select("userId", "movieId", "rating", F.timestamp_seconds("timestamp").alias("event_time"))
    return latest_per_key(ratings, ["userId", "movieId"], ["event_time", "rating"]) \
        .select("userId", "movieId", "rating", "event_time")


def genres_listed(genres: Column) -> Column:
    """`Comedy|Drama` → [Comedy, Drama]; none listed → []."""
    return F.when(genres.isNull() | (genres == NO_GENRES), F.array().cast("array<string>")) \
        .otherwise(F.split(genres, r"\|"))


def genres_flagged(flags: tuple[tuple[str, str], ...]) -> Column:
    """The genre of each flag column that is 1, in the declared order (conf/schemas.yaml genre_flags)."""
    named = F.array(*[F.when(F.col(column) == 1, F.lit(genre)) for column, genre in flags])
    return F.filter(named, lambda genre: genre.isNotNull())


def conform_movies(bronze: DataFrame, genre_flags: tuple[tuple[str, str], ...] = ()) -> DataFrame:
    """Movies with the year out of the title and genres as an array: from the `genres` column, or from
    flag columns when the source declares them."""
    title = F.trim("title")
    parsed = bronze.select(
        "movieId",
        F.when(F.regexp_like(title, F.lit(_TITLE_YEAR)), F.regexp_extract(title, _TITLE_YEAR, 1)).otherwise(title)
         .alias("title"),
        F.regexp_extract(title, _TITLE_YEAR, 2).try_cast("int").alias("year"),
        (genres_flagged(genre_flags) if genre_flags else genres_listed(F.col("genres"))).alias("genres"),
    )
    return latest_per_key(parsed, ["movieId"], ["title"]).select("movieId", "title", "year", "genres")


def conform_tags(bronze: DataFrame) -> DataFrame:
    tags = bronze.select("userId", "movieId", F.trim("tag").alias("tag"),
                         F.timestamp_seconds("timestamp").alias("event_time"))
    return latest_per_key(tags, ["userId", "movieId", "tag"], ["event_time"]) \
        .select("userId", "movieId", "tag", "event_time")


def conform_links(bronze: DataFrame) -> DataFrame:
    return latest_per_key(bronze.select("movieId", "imdbId", "tmdbId"), ["movieId"], ["imdbId", "tmdbId"]) \
        .select("movieId", "imdbId", "tmdbId")


def all_ratings(batch: DataFrame, events: DataFrame) -> DataFrame:
    """The master dataset of ratings: the batch snapshot plus every event the speed layer logged."""
    cols = ["userId", "movieId", "rating", "timestamp"]
    return batch.select(*cols).unionByName(events.select(*cols))


SILVER = catalogue.SILVER_RATINGS.name
CONFORM = {"ratings": conform_ratings, "movies": conform_movies, "tags": conform_tags, "links": conform_links}
# The bronze shape of a source the dataset may lack: its silver table is then conformed from no rows.
OPTIONAL = {"tags": "userId int, movieId int, tag string, timestamp long",
            "links": "movieId int, imdbId string, tmdbId int"}
EVENTS = catalogue.BRONZE_RATING_EVENTS.name
MOVIES = catalogue.BRONZE_MOVIES.name


def merged_progress(spark: SparkSession, cfg: Config) -> dict[str, int]:
    """Stream (query name) → the last of its micro-batches that silver.ratings holds. Events a stream
    has logged but not merged yet stay out of a recompute: the MERGE brings them, with their
    real-time deltas, so the serving view stays equal to a recompute at every moment.

    From state.stream_progress, which outlives Delta's log retention; silver's history is read only
    for a stream that logged a batch beyond its mark (its MERGE commits before the mark is recorded),
    and then only since the version the mark was recorded at."""
    if not tables.exists(spark, cfg, SILVER):
        return {}
    logged = logged_progress(tables.read(spark, cfg, EVENTS), cfg) if tables.exists(spark, cfg, EVENTS) else {}
    marks = stream_progress.read(spark, cfg)
    progress = {name: mark.batch_id for name, mark in marks.items()}
    for name, last in logged.items():
        mark = marks.get(name)
        if mark is not None and last <= mark.batch_id:
            continue
        since = -1 if mark is None or mark.silver_version is None else mark.silver_version
        merged, complete = _merged_in_history(spark, cfg, name, since)
        if merged is not None:
            progress[name] = max(merged, progress.get(name, -1))
        elif not complete and mark is not None:
            raise SourceError(
                f"stream '{name}' logged micro-batch {last} after its last recorded one ({mark.batch_id}), and "
                f"{SILVER}' history since version {since}, which would tell whether it was merged, has "
                f"expired. Run the stream once (--conf stream.query_name={name}): its replay of the batch "
                "records it; then recompute")
        elif not complete:  # a lake from before the progress table: its streams merged what they logged
            progress[name] = last
    return progress


def _merged_in_history(spark: SparkSession, cfg: Config, stream: str, since: int) -> tuple[int | None, bool]:
    """(the newest batch of `stream` that a commit of silver.ratings after version `since` is tagged
    with, or None; whether the history still holds every commit after `since`)."""
    notes, complete = tables.commits_after(spark, cfg, SILVER, since)
    batches = [batch for r in notes for app_id, batch in idempotent.parse_tags(r.userMetadata or "") if app_id == stream]
    return max(batches, default=None), complete


def drops_unknown_movies(cfg: Config) -> bool:
    """Whether conf/schemas.yaml drops ratings of movies the catalogue lacks (the shipped rule)."""
    rules = source_schemas(cfg["raw.dataset"])["ratings"].expectations
    return any(r.reference and r.reference.source == "movies" and r.policy == "expect_or_drop" for r in rules)


def of_known_movies(ratings: DataFrame, movies: DataFrame, unknown: Observation) -> DataFrame:
    """The ratings of movies the catalogue holds, the others counted into `unknown`. The load and the
    stream quarantine ratings of unknown movies (conf/schemas.yaml); an event merged while its movie
    was known stays in the event log but leaves silver once a new snapshot drops the movie."""
    known = movies.select("movieId", F.lit(True).alias("_known")).distinct()
    checked = ratings.join(F.broadcast(known), "movieId", "left")
    return (checked.observe(unknown, F.count_if(F.col("_known").isNull()).alias("unknown"))
            .where(F.col("_known")).drop("_known"))


def merged_events(events: DataFrame, progress: dict[str, int], cfg: Config) -> DataFrame:
    """The logged events of micro-batches silver.ratings holds, stream by stream: each stream numbers
    its batches from 0."""
    stream = stream_of(events, cfg)
    held = F.lit(False)
    for name, upto in progress.items():
        held = held | ((stream == F.lit(name)) & (F.col("_batch_id") <= F.lit(upto)))
    return events.where(held)


def _refuse_merges_after(spark: SparkSession, cfg: Config, pinned: int, progress: dict[str, int],
                         note: str | None) -> None:
    """Raise StaleInput if a stream MERGE of a batch beyond `progress` committed to silver.ratings
    after version `pinned` (where `progress` was read) and before the recompute tagged `note` (None:
    before now). Delta sees no conflict in a MERGE that lands before the overwrite's transaction
    begins, and the overwrite would drop its events; a MERGE during the transaction makes it conflict."""
    newer, _ = tables.commits_after(spark, cfg, SILVER, pinned)
    ours = None if note is None else min(  # the note is this attempt's alone (silver.run)
        (r.version for r in newer if r.userMetadata == note and r.operation != "MERGE"), default=None)
    slipped = [f"{app_id}:{batch}" for r in newer if (ours is None or r.version < ours) and r.operation == "MERGE"
               for app_id, batch in idempotent.parse_tags(r.userMetadata or "") if batch > progress.get(app_id, -1)]
    if slipped:
        raise tables.StaleInput(f"{SILVER}: micro-batches {', '.join(slipped)} were merged after this "
                                f"recompute read the streams' progress ({idempotent.covers_tag(progress)})")


def _record_progress(spark: SparkSession, cfg: Config, progress: dict[str, int], version: int) -> None:
    """Record what the recompute holds beyond the recorded marks (found in the log or the history), so
    that the next recompute need not look for it again."""
    marks = stream_progress.read(spark, cfg)
    ahead = [stream_progress.Mark(name, batch, version) for name, batch in sorted(progress.items())
             if name not in marks or batch > marks[name].batch_id]
    if ahead:
        stream_progress.record(spark, cfg, ahead)


def stream_of(events: DataFrame, cfg: Config) -> Column:
    """The stream that logged each event (events logged before they named it: this config's stream)."""
    own = F.lit(cfg["stream.query_name"])
    return F.coalesce(F.col("_stream"), own) if "_stream" in events.columns else own


def logged_progress(events: DataFrame, cfg: Config) -> dict[str, int]:
    """Stream → its last logged micro-batch (of the event log `events`)."""
    stream = stream_of(events, cfg)
    return {r[0]: int(r[1]) for r in events.groupBy(stream).agg(F.max("_batch_id")).collect()}


def run(spark: SparkSession, cfg: Config) -> RunResult:
    result = RunResult()
    declared = source_schemas(cfg["raw.dataset"])
    missing = [name for name in CONFORM if name not in declared and name not in OPTIONAL]
    if missing:
        raise ConfigError(f"raw.dataset '{cfg['raw.dataset']}' declares no {' or '.join(missing)} in "
                          "conf/schemas.yaml: silver needs them")
    flags = declared["movies"].genre_flags
    for name, conform in CONFORM.items():
        if name not in declared:
            target = catalogue.of_source("silver", name).name
            written = tables.overwrite(conform(spark.createDataFrame([], OPTIONAL[name])), cfg, target)
            result.writes.append(written)
            result.counts[f"{name}.rows"] = written.rows
            result.notes.append(f"{target} is empty: raw.dataset '{cfg['raw.dataset']}' declares no {name}")
            continue
        if name == "movies":
            conform = lambda bronze: conform_movies(bronze, flags)  # noqa: E731
        # Recomputed from the latest inputs on each attempt: a concurrent streaming MERGE into
        # silver.ratings makes this overwrite conflict, and the retry then includes its events.
        def attempt(name=name, conform=conform):
            # silver's version first, then what it holds of the stream, then the events (which hold it all)
            pinned = tables.current_version(spark, cfg, SILVER) \
                if name == "ratings" and tables.exists(spark, cfg, SILVER) else None
            progress = merged_progress(spark, cfg) if pinned else {}
            reads = [tables.current_version(spark, cfg, catalogue.of_source("bronze", name).name)]
            source = tables.read(spark, cfg, reads[0].name, reads[0].version)
            if name == "ratings" and tables.exists(spark, cfg, EVENTS):
                reads.append(tables.current_version(spark, cfg, EVENTS))
                events = tables.read(spark, cfg, EVENTS, reads[1].version)
                if not pinned:  # no silver to hold any stream's batches: rebuild from every event
                    progress = logged_progress(events, cfg)
                source = all_ratings(source, merged_events(events, progress, cfg))
            elif progress:  # the MERGEd events are in silver, but not in the log they came from
                held = ", ".join(f"up to {upto} of stream '{stream}'" for stream, upto in sorted(progress.items()))
                raise SourceError(f"{SILVER} holds micro-batches {held}, but {EVENTS}, their log, is missing: "
                                  "recomputing silver without it would drop those events. Restore the table")
            if name == "ratings" and drops_unknown_movies(cfg) and tables.exists(spark, cfg, MOVIES):
                reads.append(tables.current_version(spark, cfg, MOVIES))
                observed["unknown"] = Observation()
                source = of_known_movies(source, tables.read(spark, cfg, MOVIES, reads[-1].version),
                                         observed["unknown"])
            # What of the streams the overwrite holds; checked whenever silver exists, also before any
            # stream has merged: a stream's first MERGE can land inside this attempt too. Unique to the
            # attempt, so that the check after the write finds this write, not another recompute's.
            note = idempotent.covers_tag(progress, uuid.uuid4().hex[:12]) if pinned or progress else None
            if pinned:
                _refuse_merges_after(spark, cfg, pinned.version, progress, note=None)
            written = tables.overwrite(conform(source), cfg, catalogue.of_source("silver", name).name, note)
            if pinned:
                _refuse_merges_after(spark, cfg, pinned.version, progress, note)
            if name == "ratings":
                _record_progress(spark, cfg, progress, written.version)
            return reads, written
        observed: dict[str, Observation] = {}  # one per attempt: an Observation serves one DataFrame
        reads, written = tables.with_retry(attempt)
        result.reads += reads
        result.writes.append(written)
        result.counts[f"{name}.rows"] = written.rows
        if "unknown" in observed:
            result.counts["ratings.expect.unknown movieId"] = int(observed["unknown"].get["unknown"])
    return result
