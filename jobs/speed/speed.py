"""Job `speed` (speed layer): merge rating events into silver.ratings exactly once, and keep the
real-time view gold.movie_stats_realtime.

Each micro-batch, in foreachBatch, every write tagged (query name, batch id): valid events →
bronze.rating_events (the log the batch layer recomputes from); the latest event per (userId,
movieId) → MERGE into silver.ratings (newer event wins), and the batch recorded as merged
(state.stream_progress); malformed events → quarantine.rating_events; the MERGE's own change feed →
per-movie count and sum deltas. The last three writes wait for the MERGE and for nothing else: they
run side by side. Exactly once (common/idempotent): the MERGE keeps Delta's identity;
the appends are blind, and the first batch of a run, the only one a crashed run can have begun,
skips each append whose rows are already there.
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

from pyspark import inheritable_thread_target
from pyspark.errors import AnalysisException, StreamingQueryException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQueryListener

from common import catalogue, idempotent, lake_files, paths, stream_progress, tables
from common.config import Config
from common.errors import ExpectationError, LakejobsError, SourceError
from common.idempotent import Txn
from common.ledger import RunResult
from common.schemas import SourceSchema, stream_schema
from jobs.batch import expectations
from jobs.batch.parsing import LINE, REASON, bad_rows, classify_json
from jobs.speed.realtime import realtime_deltas
from jobs.batch.silver import conform_ratings, logged_progress, stream_of
from jobs.speed.simulate import events_dir

log = logging.getLogger("lakejobs.speed")
EVENTS = catalogue.BRONZE_RATING_EVENTS.name
QUARANTINE = catalogue.QUARANTINE_RATING_EVENTS.name
SILVER = catalogue.SILVER_RATINGS.name
REALTIME = catalogue.GOLD_MOVIE_STATS_REALTIME.name
NEWER = "s.event_time > t.event_time OR (s.event_time = t.event_time AND s.rating > t.rating)"


def checkpoint(cfg: Config) -> str:
    return paths.join(tables.lake_root(cfg), "state", "checkpoints", cfg["stream.query_name"])


def read_events(spark: SparkSession, cfg: Config) -> DataFrame:
    """The raw event lines as a stream (column `value`), from files or from Kafka."""
    if cfg["stream.source"] == "kafka":
        return (spark.readStream.format("kafka")
                .option("kafka.bootstrap.servers", cfg["stream.kafka_bootstrap"])
                .option("subscribe", cfg["stream.kafka_topic"]).option("startingOffsets", "earliest")
                .load().select(F.col("value").cast("string").alias(LINE),
                               F.concat_ws(":", "topic", "partition", "offset").alias("_source_file")))
    folder = events_dir(cfg)
    lake_files.make_folder(cfg, folder)
    return (spark.readStream.format("text").option("maxFilesPerTrigger", cfg["stream.max_files_per_trigger"])
            .load(folder).select(F.col("value").alias(LINE), F.col("_metadata.file_path").alias("_source_file")))


def merge_latest(spark: SparkSession, cfg: Config, latest: DataFrame) -> None:
    """MERGE one row per (userId, movieId) into silver.ratings: new keys inserted, a stored rating
    replaced only by a newer event."""
    (tables.delta_table(spark, cfg, SILVER).alias("t")
     .merge(latest.alias("s"), "t.userId = s.userId AND t.movieId = s.movieId")
     .whenMatchedUpdateAll(condition=NEWER).whenNotMatchedInsertAll().execute())


def late_events(events: DataFrame, watermark: datetime | None) -> F.Column:
    return F.lit(False) if watermark is None else F.col("event_time") < F.lit(watermark)


@dataclass
class BatchCounts:
    """What the micro-batches of one run did, for its ledger row."""

    batches: int = 0
    events: int = 0
    quarantined: int = 0
    broken: Counter = field(default_factory=Counter)  # expect.<rule> -> events that broke it
    stage_ms: Counter = field(default_factory=Counter)  # stage -> milliseconds summed over the batches
    failure: LakejobsError | None = None  # a user's error inside a micro-batch, for the job to raise as is

    def fail(self, error: LakejobsError) -> LakejobsError:
        self.failure = error
        return error


def make_batch_handler(cfg: Config, counts: BatchCounts) -> Callable[[DataFrame, int], None]:
    """The foreachBatch function: a replay of a micro-batch applies nothing twice."""
    schema = stream_schema(cfg["raw.dataset"], "rating_events")
    query_name = cfg["stream.query_name"]
    first_batch: list[int] = []  # of this run: the only one a crashed run can have begun

    def handle(batch: DataFrame, batch_id: int) -> None:
        spark = batch.sparkSession
        txn = Txn(query_name, batch_id)
        if not first_batch:
            first_batch.append(batch_id)
        may_be_a_replay = batch_id == first_batch[0]

        def written_before(name: str, rows_of_this_batch: Callable[[DataFrame], F.Column]) -> bool:
            return may_be_a_replay and _holds(spark, cfg, name, rows_of_this_batch)

        def append(df: DataFrame, name: str, rows_of_this_batch: Callable[[DataFrame], F.Column]) -> None:
            if not written_before(name, rows_of_this_batch):
                idempotent.append_tagged(df, cfg, name, txn)

        def record_progress(version: int | None) -> None:
            if not written_before(stream_progress.PROGRESS,
                                  lambda table: (F.col("stream") == query_name) & (F.col("batch_id") == batch_id)):
                stream_progress.record(spark, cfg, [stream_progress.Mark(query_name, batch_id, version)], txn)

        def this_batch(table: DataFrame) -> F.Column:  # a log from before `_stream` was written has none
            return (stream_of(table, cfg) == query_name) & (F.col("_batch_id") == batch_id)

        meta = {"_stream": F.lit(query_name), "_batch_id": F.lit(batch_id),
                "_ingested_at": F.lit(datetime.now(timezone.utc))}
        try:
            references = reference_keys(spark, cfg, schema)
        except LakejobsError as e:
            raise counts.fail(e)
        classified = expectations.apply(classify_json(batch, schema), schema, references)
        classified = classified.withColumns(meta)
        # Only for valid events: a timestamp out of range would overflow the conversion and fail the batch.
        classified = classified.withColumn("event_time", F.when(F.col(REASON).isNull(), F.timestamp_seconds("timestamp")))
        if cfg["stream.late_policy"] == "quarantine":
            classified = classified.withColumn(REASON, F.coalesce(F.col(REASON), F.when(
                late_events(classified, _watermark(spark, cfg, txn)),
                F.lit(f"late event: older than the watermark (allowed lateness {cfg['stream.allowed_lateness_s']:g}s)"))))
        classified = classified.persist()
        took = _Stopwatch()
        try:
            total, bad_count, broken = _counts(classified, schema)
            if failed := expectations.first_broken_fail_rule(schema, broken):  # before the batch writes anything
                rule, n = failed
                raise counts.fail(ExpectationError(f"micro-batch {batch_id}: {n:,} events break {rule.label}; "
                                                   "nothing of it was written, the stream stops here"))
            took.lap("parse")
            # In this order, which a recompute relies on (jobs/batch/silver.py): the event log, then the
            # MERGE that makes the events visible in silver, then the record that silver holds the batch.
            good = classified.where(F.col(REASON).isNull()).select(
                *[c.name for c in schema.columns], "event_time", "_source_file", "_stream", "_batch_id", "_ingested_at")
            append(good, EVENTS, this_batch)
            took.lap("log")
            latest = conform_ratings(good)
            version = idempotent.apply_once(spark, cfg, SILVER, txn, lambda: merge_latest(spark, cfg, latest))
            took.lap("merge")
            # What follows only delays the next batch. Its writes go to three tables, none read by the
            # others, and each is skipped on a replay when its rows are there: they run side by side.
            after_merge = [lambda: record_progress(version)]
            # An empty batch commits nothing here (a replay classifies its lines the same way); the
            # first one creates the table, so that it can be queried before any event is malformed.
            if bad_count or batch_id == 0:
                after_merge.append(lambda: append(
                    bad_rows(classified, "rating_events", ["_source_file", "_stream", "_batch_id", "_ingested_at"]),
                    QUARANTINE, this_batch))
            if version is not None:
                # A replay finds no rows when the deltas were empty, or when gold has since retired
                # them (its batch view covers the version): appended again, the serving view skips them.
                after_merge.append(lambda: append(realtime_deltas(tables.changes(spark, cfg, SILVER, version, version),
                                                                  version),
                                                  REALTIME, lambda table: F.col("silver_version") == version))
            side_by_side(after_merge)
            took.lap("after_merge")  # progress, quarantine and view, side by side
            log.info("batch %d: %d events, %d quarantined; %s", batch_id, total, bad_count, took)
            counts.batches += 1
            counts.events += total
            counts.quarantined += bad_count
            counts.broken.update(broken)
            counts.stage_ms.update({stage: round(seconds * 1000) for stage, seconds in took.laps.items()})
        finally:
            classified.unpersist()

    return handle


def _holds(spark: SparkSession, cfg: Config, name: str, rows: Callable[[DataFrame], F.Column]) -> bool:
    """Whether table `name` exists and has rows matching `rows(table)`."""
    if not tables.exists(spark, cfg, name):
        return False
    table = tables.read(spark, cfg, name)
    return not table.where(rows(table)).isEmpty()


def reference_keys(spark: SparkSession, cfg: Config, schema: SourceSchema) -> dict[str, DataFrame]:
    """For each `column IN source.key` rule of the events, the keys silver holds of that source now."""
    keys = {}
    for rule in schema.expectations:
        if rule.reference:
            table = catalogue.of_source("silver", rule.reference.source).name
            if not tables.exists(spark, cfg, table):
                raise SourceError(f"{table} does not exist, and the events' expectation '{rule.name}' checks against it: "
                                  "run the batch layer (full_load, silver) first")
            keys[rule.name] = tables.read(spark, cfg, table).select(F.col(rule.reference.key).alias("key"))
    return keys


def side_by_side(writes: list[Callable[[], None]]) -> None:
    """Run the writes in threads of their own (each its own Spark jobs and Delta commit) and wait for
    all of them; then raise the first one's error, if any, so that the micro-batch fails as a whole.
    inheritable_thread_target: the thread takes this one's Spark local properties (job group, tags).
    The pool lives for one batch: py4j closes a thread's JVM connection when the thread ends.
    Only the first error in list order is raised; the others' are not reported (a known gap)."""
    if len(writes) == 1:
        writes[0]()
        return
    with ThreadPoolExecutor(max_workers=len(writes), thread_name_prefix="after-merge") as pool:
        futures = [pool.submit(inheritable_thread_target(write)) for write in writes]
    for future in futures:
        future.result()


class _Stopwatch:
    """Wall seconds of the stages of one micro-batch, for its log line and the run's counts."""

    def __init__(self) -> None:
        self._last, self.laps = time.monotonic(), {}

    def lap(self, stage: str) -> None:
        now = time.monotonic()
        self.laps[stage] = now - self._last
        self._last = now

    def __str__(self) -> str:
        return ", ".join(f"{stage} {seconds:.2f}s" for stage, seconds in self.laps.items())


def _counts(classified: DataFrame, schema: SourceSchema) -> tuple[int, int, dict[str, int]]:
    """(events, malformed events, events per broken expectation) of a micro-batch, in one pass over
    the cached batch."""
    row = classified.agg(F.count(F.lit(1)).alias("_events"), F.count(REASON).alias("_bad"),
                         *expectations.count_columns(schema)).first().asDict()
    return int(row.pop("_events")), int(row.pop("_bad")), {k: int(v) for k, v in row.items()}


def _watermark(spark: SparkSession, cfg: Config, txn: Txn) -> datetime | None:
    """The newest event time in silver.ratings less the allowed lateness. A replayed batch whose MERGE
    has committed reads silver as it was before that MERGE: judged against its own events, some of
    them would turn late, and land in quarantine although they are in silver."""
    merged_at = idempotent.committed_version(spark, cfg, SILVER, txn)
    silver = tables.read(spark, cfg, SILVER, merged_at - 1 if merged_at is not None else None)
    newest = silver.agg(F.max("event_time")).first()[0]
    if newest is None:
        return None
    return newest - timedelta(seconds=cfg["stream.allowed_lateness_s"])


class _ProgressLog(StreamingQueryListener):
    """Streaming progress to the log (delivered asynchronously, so totals come from the handler)."""

    def onQueryStarted(self, event) -> None:
        log.info("stream %s started (id %s)", event.name, event.id)

    def onQueryProgress(self, event) -> None:
        p = event.progress
        log.info("stream %s batch %d: %d events, %.0f events/s, %s ms", p.name, p.batchId, p.numInputRows,
                 p.processedRowsPerSecond or 0.0, p.durationMs.get("triggerExecution"))

    def onQueryIdle(self, event) -> None:
        pass

    def onQueryTerminated(self, event) -> None:
        log.info("stream %s stopped%s", event.id, f": {event.exception}" if event.exception else "")


def _refuse_a_lost_checkpoint(spark: SparkSession, cfg: Config) -> None:
    """A new checkpoint numbers its batches from 0 again, and Delta would skip every write whose
    (app id, batch id) it has already seen: the new events would be silently dropped."""
    if _checkpoint_exists(spark, checkpoint(cfg)):
        return
    name = cfg["stream.query_name"]
    mark = stream_progress.read(spark, cfg).get(name)
    # The log too: a batch logged but not merged (a crash between the two) has its id taken there.
    held = [(SILVER, mark.batch_id if mark else None), (EVENTS, _logged_upto(spark, cfg, name))]
    for table, seen in held:
        if seen is not None:
            raise SourceError(
                f"the checkpoint {checkpoint(cfg)} is missing, but {table} already holds micro-batches up to "
                f"{seen} of stream '{name}': restarting from batch 0 would be skipped as already applied. "
                "Restore the checkpoint, or start a new stream with --conf stream.query_name=<new name>")


def _refuse_an_older_checkpoint(spark: SparkSession, cfg: Config) -> None:
    """A checkpoint restored from an older copy plans again batch ids that silver already holds: Delta
    skips their writes as already applied, and the events they now hold (a replanned batch can hold
    more, or other, events than the original) would be silently dropped."""
    name = cfg["stream.query_name"]
    mark = stream_progress.read(spark, cfg).get(name)
    planned = _last_planned_batch(spark, checkpoint(cfg))
    if mark is not None and planned is not None and planned < mark.batch_id:
        raise SourceError(
            f"the checkpoint {checkpoint(cfg)} ends at micro-batch {planned}, behind silver.ratings, which holds "
            f"micro-batches up to {mark.batch_id} of stream '{name}': it is an older copy, and its next batches "
            "would be skipped as already applied. Put the newest checkpoint back, or start a new stream with "
            "--conf stream.query_name=<new name> (it reads the landing zone from its start; events already "
            "merged change nothing)")


def _logged_upto(spark: SparkSession, cfg: Config, name: str) -> int | None:
    if not tables.exists(spark, cfg, EVENTS):
        return None
    return logged_progress(tables.read(spark, cfg, EVENTS), cfg).get(name)


def _last_planned_batch(spark: SparkSession, folder: str) -> int | None:
    """The newest batch id the checkpoint has planned (its offsets log: one file per batch, named by
    the id), read through Spark so that it holds on every file system; None when it has none."""
    try:
        names = (spark.read.option("pathGlobFilter", "[0-9]*").text(paths.join(folder, "offsets"))
                 .select(F.col("_metadata.file_name").cast("long").alias("batch")).agg(F.max("batch")).first())
    except AnalysisException:
        return None
    return None if names[0] is None else int(names[0])


def _checkpoint_exists(spark: SparkSession, folder: str) -> bool:
    """Whether a query has started from this checkpoint (its `metadata` file is written at start).
    Asked of Spark, so that it holds for every file system the checkpoint can live on (a folder,
    s3a://, dbfs:/)."""
    path = spark._jvm.org.apache.hadoop.fs.Path(paths.join(folder, "metadata"))
    # FileSystem.exists, not a read: reading a missing file logs a 90-line FileNotFoundException at WARN.
    return bool(path.getFileSystem(spark._jsc.hadoopConfiguration()).exists(path))


def run(spark: SparkSession, cfg: Config) -> RunResult:
    if not tables.exists(spark, cfg, SILVER):
        raise SourceError(f"{SILVER} does not exist yet: run the batch layer (extract, full_load, silver) first")
    _refuse_a_lost_checkpoint(spark, cfg)
    _refuse_an_older_checkpoint(spark, cfg)
    progress, counts = _ProgressLog(), BatchCounts()
    spark.streams.addListener(progress)
    writer = (read_events(spark, cfg).writeStream.queryName(cfg["stream.query_name"])
              .foreachBatch(make_batch_handler(cfg, counts)).option("checkpointLocation", checkpoint(cfg)))
    if cfg["stream.trigger"] == "available_now":
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=f"{cfg['stream.trigger_interval_s']:g} seconds")
    query = writer.start()
    try:
        query.awaitTermination()
    except StreamingQueryException:
        if counts.failure:  # Spark wraps what the batch raised in a stack trace: the user's error is one line
            raise counts.failure from None
        raise
    finally:
        spark.streams.removeListener(progress)
    totals = {"batches": counts.batches, "events": counts.events, "quarantined": counts.quarantined}
    # Where the batches' time went (the ledger keeps it; bench/stream.py reports it per batch).
    totals |= {f"stage_ms.{stage}": ms for stage, ms in counts.stage_ms.items()}
    return RunResult(counts=totals | {f"rating_events.{k}": v for k, v in counts.broken.items()}, notes=[
        f"stream {cfg['stream.query_name']}: {counts.events} events in {counts.batches} micro-batches, "
        f"{counts.quarantined} quarantined"])
