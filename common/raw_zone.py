"""The raw zone: immutable dataset snapshots, each completed by a marker file written last.

    <lake>/landing/<dataset>/<snapshot_id>/ratings.csv ... _SUCCESS.json

A snapshot is staged in a hidden folder, renamed into place, then marked complete; readers (and
the sensor) trust only marked snapshots, so a half-landed one is never loaded.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from common import tables
from common.config import Config
from common.errors import ConfigError, SensorTimeout, SourceError

MARKER = "_SUCCESS.json"


@dataclass(frozen=True)
class Snapshot:
    id: str
    path: str
    manifest: dict

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def data_rows(self, name: str) -> int:
        """Data lines of a landed file (header excluded), counted at landing, independently of Spark."""
        return self.manifest["files"][name]["lines"] - 1


def dataset_dir(cfg: Config) -> str:
    root = tables.lake_root(cfg)
    if "://" in root or root.startswith("dbfs:"):
        raise ConfigError(f"lake.root '{root}': the raw zone needs a local folder here (S3 landing is issue #6)")
    return os.path.join(root, "landing", cfg["raw.dataset"])


def land(cfg: Config, snapshot_id: str, fill: Callable[[str], None], files: list[str], source: str) -> tuple[Snapshot, bool]:
    """Land a snapshot unless it is already complete. `fill(folder)` writes the files into a staging folder.

    Returns the snapshot and whether it was landed now (False: it was there already, nothing done).
    """
    existing = find(cfg, snapshot_id)
    if existing is not None:
        return existing, False
    base = dataset_dir(cfg)
    final = os.path.join(base, snapshot_id)
    if os.path.exists(final):  # an earlier attempt died between rename and marker: redo it
        shutil.rmtree(final)
    staging = os.path.join(base, f".staging-{snapshot_id}-{uuid.uuid4().hex[:8]}")
    os.makedirs(staging)
    try:
        fill(staging)
        missing = [f for f in files if not os.path.isfile(os.path.join(staging, f))]
        if missing:
            raise SourceError(f"source {source} has no {', '.join(missing)}")
        manifest = {
            "snapshot_id": snapshot_id,
            "source": source,
            "landed_at": datetime.now(timezone.utc).isoformat(),
            "files": {f: _describe(os.path.join(staging, f)) for f in files},
        }
        os.rename(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _write_atomically(os.path.join(final, MARKER), json.dumps(manifest, indent=2))
    return Snapshot(snapshot_id, final, manifest), True


def find(cfg: Config, snapshot_id: str = "latest") -> Snapshot | None:
    """A completed snapshot by id, or the most recently landed one for 'latest'; None if there is none."""
    base = dataset_dir(cfg)
    if not os.path.isdir(base):
        return None
    if snapshot_id != "latest":
        return _read(os.path.join(base, snapshot_id))
    done = [s for s in (_read(os.path.join(base, d)) for d in os.listdir(base) if not d.startswith(".")) if s]
    return max(done, key=lambda s: s.manifest["landed_at"], default=None)


def wait_for(cfg: Config, snapshot_id: str, timeout_s: float, poll_s: float) -> Snapshot:
    """The sensor: poll until the snapshot's marker exists, or fail after timeout_s with what was awaited."""
    deadline = time.monotonic() + timeout_s
    while True:
        snapshot = find(cfg, snapshot_id)
        if snapshot is not None:
            return snapshot
        if time.monotonic() >= deadline:
            which = "no snapshot is" if snapshot_id == "latest" else f"snapshot '{snapshot_id}' is not"
            raise SensorTimeout(
                f"sensor gave up after {timeout_s:g}s: {which} complete in {dataset_dir(cfg)} "
                f"(no {MARKER} marker); run the extract job first, or raise sensor.timeout_s")
        time.sleep(poll_s)


def _read(path: str) -> Snapshot | None:
    marker = os.path.join(path, MARKER)
    if not os.path.isfile(marker):
        return None
    with open(marker, encoding="utf-8") as f:
        manifest = json.load(f)
    return Snapshot(manifest["snapshot_id"], path, manifest)


def _describe(path: str) -> dict:
    """sha256, size and line count of a file, in one pass."""
    digest, lines, size, last = hashlib.sha256(), 0, 0, b"\n"
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
            lines += block.count(b"\n")
            size += len(block)
            last = block[-1:]
    if last != b"\n":
        lines += 1  # a last line without a newline still counts
    return {"sha256": digest.hexdigest(), "bytes": size, "lines": lines}


def _write_atomically(path: str, text: str) -> None:
    tmp = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
