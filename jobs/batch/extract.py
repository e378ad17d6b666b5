"""Job `extract`: land the configured MovieLens source in the raw zone as an immutable snapshot.

With stream.holdback_fraction > 0 the newest ratings are kept out of the batch file and landed
beside it as ratings_holdback.csv (lines as they were, in the ratings file's dialect), for the
simulator to replay as a stream.
"""
from __future__ import annotations

import os
from array import array

from pyspark.sql import SparkSession

from common import raw_zone
from common.config import Config
from common.ledger import RunResult
from common.schemas import Dialect, source_schemas
from jobs.batch import sources

HOLDBACK_FILE = "ratings_holdback.csv"


def run(spark: SparkSession, cfg: Config) -> RunResult:
    schemas = source_schemas(cfg["raw.dataset"])
    # Each file landed → (the name its row count goes by, whether its first line is a header).
    landed = {s.file: (s.name, s.dialect.header) for s in schemas.values()}
    plan = sources.plan(cfg, list(landed))
    fraction = cfg["stream.holdback_fraction"]
    snapshot_id, fill = plan.snapshot_id, plan.fill
    if fraction > 0:
        ratings = schemas["ratings"]
        snapshot_id = f"{plan.snapshot_id}-h{fraction:g}"
        landed[HOLDBACK_FILE] = (HOLDBACK_FILE.removesuffix(".csv"), ratings.dialect.header)
        fill = lambda out: (plan.fill(out), hold_back_newest(os.path.join(out, ratings.file),  # noqa: E731
                                                              os.path.join(out, HOLDBACK_FILE), fraction,
                                                              ratings.dialect))
    try:
        snapshot, landed_now = raw_zone.land(cfg, snapshot_id, fill, list(landed), plan.description)
    finally:
        plan.cleanup()
    verb = "landed" if landed_now else "already landed, nothing to do:"
    return RunResult(
        counts={f"{name}.rows": snapshot.data_rows(file, header) for file, (name, header) in landed.items()}
        | {"landed": int(landed_now)},
        notes=[f"{verb} snapshot {snapshot.id} from {plan.description}", f"  at {snapshot.path}"],
    )


def hold_back_newest(ratings: str, holdback: str, fraction: float, dialect: Dialect = Dialect()) -> int:
    """Move the newest `fraction` of rating lines (by their last field, the timestamp) from ratings
    to holdback, bytes unchanged (a header, when the dialect has one, goes to both). Lines without a
    readable timestamp stay for the full-load to judge. Returns the cutoff: every held-back line is
    newer than it, every kept one is not."""
    separator = dialect.separator.encode(dialect.python_encoding)
    with open(ratings, "rb") as f:
        header = f.readline() if dialect.header else b""
        stamps = array("q", (t for t in (_timestamp(line, separator) for line in f) if t is not None))
    ordered = sorted(stamps)
    cutoff = ordered[min(len(ordered) - 1, int(len(ordered) * (1 - fraction)))] if ordered else 0
    kept = f"{ratings}.kept"
    with open(ratings, "rb") as src, open(kept, "wb") as keep, open(holdback, "wb") as hold:
        if dialect.header:
            src.readline()
        keep.write(header)
        hold.write(header)
        for line in src:
            t = _timestamp(line, separator)
            (hold if t is not None and t > cutoff else keep).write(line)
    os.replace(kept, ratings)
    return cutoff


def _timestamp(line: bytes, separator: bytes = b",") -> int | None:
    try:
        return int(line.rstrip(b"\r\n").rsplit(separator, 1)[1])
    except (IndexError, ValueError):
        return None
