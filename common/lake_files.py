"""The lake's plain files (raw snapshots and their markers, the simulator's events and state), on a
local disk or in S3, behind the same few calls; paths.is_s3 decides which. Delta tables and
checkpoints go through Spark instead.

Writes are atomic either way: a local file is written under a dot-name and renamed (Spark's file
sources skip dot-files), an S3 object appears whole when its PUT completes.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from typing import BinaryIO

from common import paths, s3
from common.config import Config


def exists(cfg: Config, path: str) -> bool:
    """Whether the file (or, for a folder, anything under it) is there."""
    if paths.is_s3(path):
        client = s3.client(cfg)
        return s3.exists(client, path) or s3.has_prefix(client, path)
    return os.path.exists(path)


def open_binary(cfg: Config, path: str) -> BinaryIO:
    return s3.open_object(s3.client(cfg), path) if paths.is_s3(path) else open(path, "rb")


def read_text(cfg: Config, path: str) -> str | None:
    """The file's text, or None when there is no such file."""
    if paths.is_s3(path):
        client = s3.client(cfg)
        return s3.open_object(client, path).read().decode("utf-8") if s3.exists(client, path) else None
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return f.read()


def write_bytes(cfg: Config, path: str, data: bytes) -> None:
    """Write a whole file atomically."""
    if paths.is_s3(path):
        s3.put(s3.client(cfg), path, data)
        return
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def make_folder(cfg: Config, path: str) -> None:
    """A folder Spark can list even while empty (in S3: the 'name/' marker object hadoop-aws uses)."""
    if not paths.is_s3(path):
        os.makedirs(path, exist_ok=True)
    elif not exists(cfg, path):
        s3.put(s3.client(cfg), path.rstrip("/") + "/", b"")


def folders(cfg: Config, path: str) -> list[str]:
    """The names of the folders directly under path (none when path is not there)."""
    if paths.is_s3(path):
        return s3.children(s3.client(cfg), path)
    return sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d))) if os.path.isdir(path) else []


def staging_folder(base: str, name: str) -> str:
    """A fresh local folder to assemble files in before `publish`: beside the target for a local lake
    (so publishing is a rename), in the temporary directory for S3."""
    if paths.is_s3(base):
        return tempfile.mkdtemp(prefix=f"lakejobs-{name}-")
    staging = os.path.join(base, f".staging-{name}-{uuid.uuid4().hex[:8]}")
    os.makedirs(staging)
    return staging


def publish(cfg: Config, staging: str, target: str, checksums: dict[str, str]) -> list[str]:
    """Move the staged files (name → sha256) to the target folder; the names actually written.

    Locally the folder is renamed into place (a leftover without its marker is replaced). To S3 each
    file is uploaded, unless an object with the same sha256 is there already, from an earlier
    attempt that died before its marker: re-running an interrupted landing sends only what is missing.
    """
    if not paths.is_s3(target):
        if os.path.exists(target):
            shutil.rmtree(target)
        os.rename(staging, target)
        return sorted(checksums)
    client, config = s3.client(cfg), s3.transfer(cfg)
    try:
        return [name for name, sha256 in sorted(checksums.items())
                if s3.upload(client, os.path.join(staging, name), paths.join(target, name), sha256, config)]
    finally:
        shutil.rmtree(staging, ignore_errors=True)
