"""The raw zone: immutable dataset snapshots, each completed by a marker file written last.

    <lake>/landing/<dataset>/<snapshot_id>/ratings.csv ... _SUCCESS.json

The lake root is a local folder or an S3 location (s3a://bucket/prefix). A snapshot is staged in a
local folder, then published (renamed into place, or uploaded with checksums) and only then marked
complete; readers (and the sensor) trust only marked snapshots, so a half-landed one is never loaded.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from common import lake_files, paths, tables
from common.config import Config
from common.errors import ConfigError, SensorTimeout, SourceError

MARKER = "_SUCCESS.json"
MAX_POLL_S = 30.0  # the sensor's backoff doubles its pause up to this
log = logging.getLogger("lakejobs.raw_zone")


@dataclass(frozen=True)
class Snapshot:
    id: str
    path: str
    manifest: dict

    def file(self, name: str) -> str:
        return paths.join(self.path, name)

    def data_rows(self, name: str, header: bool = True) -> int:
        """Data lines of a landed file (its header line excluded, if it has one), counted at landing,
        independently of Spark."""
        return self.manifest["files"][name]["lines"] - int(header)


def dataset_dir(cfg: Config) -> str:
    root = tables.lake_root(cfg)
    if not paths.python_reaches(root):  # the landing is written from Python: open() or boto3
        raise ConfigError(f"lake.root '{root}': the raw zone lives in a local folder, a Unity Catalog volume "
                          "(/Volumes/<catalog>/<schema>/<volume>/..., which Python opens as files, unlike dbfs:/) "
                          "or under s3a://bucket/prefix")
    return paths.join(root, "landing", cfg["raw.dataset"])


def land(cfg: Config, snapshot_id: str, fill: Callable[[str], None], files: list[str], source: str) -> tuple[Snapshot, bool]:
    """Land a snapshot unless it is already complete. `fill(folder)` writes the files into a staging folder.

    Returns the snapshot and whether it was landed now (False: it was there already, nothing done).
    """
    existing = find(cfg, snapshot_id)
    if existing is not None:
        return existing, False
    base = dataset_dir(cfg)
    final = paths.join(base, snapshot_id)
    staging = lake_files.staging_folder(base, snapshot_id)
    try:
        fill(staging)
        missing = [f for f in files if not os.path.isfile(os.path.join(staging, f))]
        if missing:
            raise SourceError(f"source {source} has no {', '.join(missing)}")
        described = {f: _describe(os.path.join(staging, f)) for f in files}
        manifest = {
            "snapshot_id": snapshot_id,
            "source": source,
            "landed_at": datetime.now(timezone.utc).isoformat(),
            "files": described,
        }
        written = lake_files.publish(cfg, staging, final, {f: d["sha256"] for f, d in described.items()})
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if len(written) < len(files):
        log.info("snapshot %s: %d of %d files were already at %s with the same sha256, not sent again",
                 snapshot_id, len(files) - len(written), len(files), final)
    lake_files.write_bytes(cfg, paths.join(final, MARKER), json.dumps(manifest, indent=2).encode("utf-8"))
    return Snapshot(snapshot_id, final, manifest), True


def find(cfg: Config, snapshot_id: str = "latest") -> Snapshot | None:
    """A completed snapshot by id, or the most recently landed one for 'latest'; None if there is none."""
    base = dataset_dir(cfg)
    if snapshot_id != "latest":
        return _read(cfg, paths.join(base, snapshot_id))
    done = [s for s in (_read(cfg, paths.join(base, d)) for d in lake_files.folders(cfg, base)
                        if not d.startswith(".")) if s]
    return max(done, key=lambda s: s.manifest["landed_at"], default=None)


def wait_for(cfg: Config, snapshot_id: str, timeout_s: float, poll_s: float) -> Snapshot:
    """The sensor: poll until the snapshot's marker exists, pausing poll_s, then twice as long each
    time (up to MAX_POLL_S); after timeout_s fail naming the marker it waited for."""
    deadline, pause = time.monotonic() + timeout_s, poll_s
    while True:
        snapshot = poke(cfg, snapshot_id, waited_s=timeout_s - (deadline - time.monotonic()), timeout_s=timeout_s)
        if snapshot is not None:
            return snapshot
        time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(pause * 2, max(MAX_POLL_S, poll_s))


def poke(cfg: Config, snapshot_id: str, waited_s: float, timeout_s: float) -> Snapshot | None:
    """One look of the sensor: the snapshot if it is complete, None while waited_s < timeout_s, else
    SensorTimeout naming the marker. An orchestrator that frees its worker between looks (Airflow's
    reschedule mode, `lakejobs sense`) keeps the time waited itself."""
    snapshot = find(cfg, snapshot_id)
    if snapshot is None and waited_s >= timeout_s:
        base = dataset_dir(cfg)
        which = (f"no snapshot is complete in {base} (no {paths.join(base, '<snapshot>', MARKER)} marker)"
                 if snapshot_id == "latest" else
                 f"snapshot '{snapshot_id}' is not complete (no marker {paths.join(base, snapshot_id, MARKER)})")
        raise SensorTimeout(f"sensor gave up after {timeout_s:g}s: {which}; run the extract job first, "
                            "or raise sensor.timeout_s")
    return snapshot


def _read(cfg: Config, path: str) -> Snapshot | None:
    text = lake_files.read_text(cfg, paths.join(path, MARKER))
    if text is None:
        return None
    manifest = json.loads(text)
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
