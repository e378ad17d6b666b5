"""Job `simulate`: the source simulator — replays held-back ratings as rating events, like a Lambda
function feeding a stream, at a configured rate, to where the speed layer reads (`stream.source`):
JSON-lines files in the stream landing zone, or a Kafka topic.

It remembers how far it got (task state, under state/), so each run sends the next events. A
file is written under a temporary name and renamed, so the stream never reads half a file. To
Kafka it publishes at least once: a chunk sent just before a crash is sent again, which the
merge absorbs (the same event twice changes nothing).
"""
from __future__ import annotations

import json
import os
import time

from pyspark.sql import SparkSession

from common import lake_files, paths, raw_zone, tables
from common.config import Config
from common.ledger import RunResult
from common.schemas import source_schemas
from jobs.speed.events import Faults, read_held_back, replay_lines
from jobs.batch.extract import HOLDBACK_FILE


def events_dir(cfg: Config) -> str:
    return paths.join(tables.lake_root(cfg), "landing", "events", "ratings")


def _state_file(cfg: Config, snapshot_id: str) -> str:
    return paths.join(tables.lake_root(cfg), "state", "simulator", f"{snapshot_id}.json")


def run(spark: SparkSession, cfg: Config) -> RunResult:
    snapshot = raw_zone.wait_for(cfg, cfg["raw.snapshot"], cfg["sensor.timeout_s"], cfg["sensor.poll_s"])
    if HOLDBACK_FILE not in snapshot.manifest["files"]:
        return RunResult(counts={"events.sent": 0}, notes=[
            f"nothing to replay: snapshot {snapshot.id} holds no {HOLDBACK_FILE} "
            "(land one with stream.holdback_fraction > 0, e.g. --conf stream.holdback_fraction=0.1)"])
    faults = Faults(**{k: cfg[f"simulator.{k}"] for k in Faults.__dataclass_fields__})
    ratings = source_schemas(cfg["raw.dataset"])["ratings"]  # the held-back lines are in its dialect
    with lake_files.open_binary(cfg, snapshot.file(HOLDBACK_FILE)) as held_back:
        rows = read_held_back(held_back.read(), ratings.dialect, tuple(c.name for c in ratings.columns))
    lines = replay_lines(rows, faults, cfg["simulator.seed"])
    state_path = _state_file(cfg, snapshot.id)
    state = lake_files.read_text(cfg, state_path)
    sent = json.loads(state)["sent"] if state is not None else 0
    end = len(lines) if cfg["simulator.max_events"] <= 0 else min(len(lines), sent + cfg["simulator.max_events"])
    kafka = cfg["stream.source"] == "kafka"
    sink = KafkaSink(spark, cfg["stream.kafka_bootstrap"], cfg["stream.kafka_topic"]) if kafka \
        else FileSink(events_dir(cfg), snapshot.id, cfg)
    chunks = send(lines, sent, end, sink, cfg["simulator.events_per_file"], cfg["simulator.rate"],
                  on_chunk=lambda upto: _save_state(cfg, state_path, upto))
    notes = [f"sent events {sent}..{end} of {len(lines)} in {chunks} chunks to {sink}"]
    if end == len(lines):
        notes.append(f"every held-back event of snapshot {snapshot.id} has now been sent: a further run sends "
                     "nothing until a new snapshot is landed")
    return RunResult(counts={"events.sent": end - sent, "events.total": len(lines), "chunks": chunks}, notes=notes)


class FileSink:
    """One JSON-lines file per chunk, named by its snapshot and its first offset: a resend rewrites
    the same file, and another snapshot (whose offsets start from 0 again) never reuses a name. The
    file source skips a path it has seen, so a reused name would drop the new file's events."""

    def __init__(self, folder: str, snapshot_id: str, cfg: Config | None = None):  # cfg: the S3 settings
        self.cfg, self.folder, self.snapshot_id = cfg, folder, snapshot_id
        lake_files.make_folder(cfg, folder)

    def __call__(self, offset: int, lines: list[str]) -> None:
        # Written whole (a dot-file renamed, or one S3 PUT): the stream never reads half a file.
        name = paths.join(self.folder, f"events-{self.snapshot_id}-{offset:010d}.json")
        lake_files.write_bytes(self.cfg, name, encode("\n".join(lines) + "\n"))

    def __str__(self) -> str:
        return self.folder


class KafkaSink:
    """One record per event on a topic, published through Spark's Kafka connector (no extra client)."""

    def __init__(self, spark: SparkSession, bootstrap: str, topic: str):
        self.spark, self.bootstrap, self.topic = spark, bootstrap, topic

    def __call__(self, offset: int, lines: list[str]) -> None:
        (self.spark.createDataFrame([(encode(line),) for line in lines], "value binary").write.format("kafka")
         .option("kafka.bootstrap.servers", self.bootstrap).option("topic", self.topic).save())

    def __str__(self) -> str:
        return f"kafka://{self.bootstrap}/{self.topic}"


def encode(text: str) -> bytes:
    """UTF-8, except that the undecodable bytes of a malformed source line are sent back as they were."""
    return text.encode("utf-8", "surrogateescape")


def send(lines: list[str], start: int, end: int, sink, per_chunk: int, rate: float, on_chunk) -> int:
    """Send lines[start:end] in chunks of per_chunk lines, paced at `rate` lines/s (0: no pacing)."""
    began, chunks = time.monotonic(), 0
    for lo in range(start, end, per_chunk):
        hi = min(end, lo + per_chunk)
        sink(lo, lines[lo:hi])
        on_chunk(hi)
        chunks += 1
        if rate > 0:
            time.sleep(max(0.0, (hi - start) / rate - (time.monotonic() - began)))
    return chunks


def _save_state(cfg: Config, path: str, sent: int) -> None:
    if not paths.is_s3(path):  # a local file: its folder first (S3 has none)
        os.makedirs(os.path.dirname(path), exist_ok=True)
    lake_files.write_bytes(cfg, path, json.dumps({"sent": sent}).encode("utf-8"))
