"""Job `simulate`: the source simulator — replays held-back ratings as rating events, like a Lambda
function feeding a stream: JSON-lines files in the stream landing zone, at a configured rate.

It remembers how far it got (task state, under state/), so each run sends the next events; a
file is written under a temporary name and renamed, so the stream never reads half a file.
"""
from __future__ import annotations

import json
import os
import time

import pandas as pd
from pyspark.sql import SparkSession

from common import raw_zone, tables
from common.config import Config
from common.ledger import RunResult
from jobs.events import Faults, replay_lines
from jobs.extract import HOLDBACK_FILE


def events_dir(cfg: Config) -> str:
    return os.path.join(tables.lake_root(cfg), "landing", "events", "ratings")


def _state_file(cfg: Config, snapshot_id: str) -> str:
    return os.path.join(tables.lake_root(cfg), "state", "simulator", f"{snapshot_id}.json")


def run(spark: SparkSession, cfg: Config) -> RunResult:
    snapshot = raw_zone.wait_for(cfg, cfg["raw.snapshot"], cfg["sensor.timeout_s"], cfg["sensor.poll_s"])
    if HOLDBACK_FILE not in snapshot.manifest["files"]:
        return RunResult(counts={"events.sent": 0}, notes=[
            f"nothing to replay: snapshot {snapshot.id} holds no {HOLDBACK_FILE} "
            "(land one with stream.holdback_fraction > 0, e.g. --conf stream.holdback_fraction=0.1)"])
    faults = Faults(**{k: cfg[f"simulator.{k}"] for k in Faults.__dataclass_fields__})
    lines = replay_lines(pd.read_csv(snapshot.file(HOLDBACK_FILE)), faults, cfg["simulator.seed"])
    state_path = _state_file(cfg, snapshot.id)
    sent = json.load(open(state_path))["sent"] if os.path.exists(state_path) else 0
    end = len(lines) if cfg["simulator.max_events"] <= 0 else min(len(lines), sent + cfg["simulator.max_events"])
    files = send(lines, sent, end, events_dir(cfg), cfg["simulator.events_per_file"], cfg["simulator.rate"],
                 on_file=lambda upto: _save_state(state_path, upto))
    return RunResult(counts={"events.sent": end - sent, "events.total": len(lines), "files": files},
                     notes=[f"sent events {sent}..{end} of {len(lines)} in {files} files to {events_dir(cfg)}"])


def send(lines: list[str], start: int, end: int, folder: str, per_file: int, rate: float, on_file) -> int:
    """Write lines[start:end] as files of per_file lines, paced at `rate` lines/s (0: no pacing)."""
    os.makedirs(folder, exist_ok=True)
    began, files = time.monotonic(), 0
    for lo in range(start, end, per_file):
        hi = min(end, lo + per_file)
        name = os.path.join(folder, f"events-{lo:010d}.json")  # named by offset: a resend overwrites nothing new
        tmp = os.path.join(folder, f".events-{lo:010d}.json.tmp")  # the file source skips dot files
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("\n".join(lines[lo:hi]) + "\n")
        os.replace(tmp, name)
        on_file(hi)
        files += 1
        if rate > 0:
            time.sleep(max(0.0, (hi - start) / rate - (time.monotonic() - began)))
    return files


def _save_state(path: str, sent: int) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump({"sent": sent}, f)
    os.replace(tmp, path)
