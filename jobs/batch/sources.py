"""Where a MovieLens snapshot comes from: a GroupLens zip URL, a local folder, or the generator."""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from typing import Callable

from common.config import Config, redact_text
from common.errors import SourceError
from jobs.batch.generator import GeneratorSpec, generate



@dataclass(frozen=True)
class SourcePlan:
    snapshot_id: str
    fill: Callable[[str], None]     # writes the source files into a (staging) folder
    description: str
    cleanup: Callable[[], None] = lambda: None


def plan(cfg: Config, files: list[str]) -> SourcePlan:
    """How to land the configured source; the snapshot id is known before anything is written."""
    kind = cfg["source.kind"]
    if kind == "generator":
        spec = GeneratorSpec(**{k: cfg[f"generator.{k}"] for k in GeneratorSpec.__dataclass_fields__})
        return SourcePlan(spec.snapshot_id, lambda out: generate(spec, out), f"generator {spec.snapshot_id}")
    if kind == "folder":
        folder = cfg["source.folder"]
        if not folder or not os.path.isdir(folder):
            raise SourceError(f"source.folder {folder!r} is not a folder (set DATA_DIR or source.folder)")
        missing = [f for f in files if not os.path.isfile(os.path.join(folder, f))]
        if missing:
            raise SourceError(f"source.folder {folder} has no {', '.join(missing)}")
        digest = hashlib.sha256("".join(sha256_file(os.path.join(folder, f)) for f in files).encode()).hexdigest()
        return SourcePlan(f"dir-{digest[:16]}", lambda out: _copy(folder, files, out),
                          f"folder {os.path.abspath(folder)}")
    zip_path, digest = download(cfg["source.url"], cfg["source.sha256"])
    return SourcePlan(f"zip-{digest[:16]}", lambda out: _unzip(zip_path, files, out),
                      f"url {redact_text(cfg['source.url'])}", cleanup=lambda: os.unlink(zip_path))


def _copy(folder: str, files: list[str], out: str) -> None:
    for f in files:
        shutil.copyfile(os.path.join(folder, f), os.path.join(out, f))


def download(url: str, sha256: str | None) -> tuple[str, str]:
    """Fetch url to a temporary file and verify it: against sha256 when given, else against the
    `<url>.md5` file GroupLens publishes beside each zip. Returns (path, sha256 of the file)."""
    fd, path = tempfile.mkstemp(suffix=".zip", prefix="lakejobs-")
    sha, md5 = hashlib.sha256(), hashlib.md5()
    try:
        with os.fdopen(fd, "wb") as out, _open(url) as response:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
                sha.update(block)
                md5.update(block)
    except SourceError:
        os.unlink(path)
        raise
    if sha256:
        if sha.hexdigest() != sha256.lower():
            os.unlink(path)
            raise SourceError(f"checksum mismatch for {redact_text(url)}: sha256 {sha.hexdigest()}, expected {sha256}")
    else:
        expected = _published_md5(url)
        if md5.hexdigest() != expected:
            os.unlink(path)
            raise SourceError(f"checksum mismatch for {redact_text(url)}: md5 {md5.hexdigest()}, published {expected}")
    return path, sha.hexdigest()


def _open(url: str):
    try:
        return urllib.request.urlopen(url, timeout=60)
    except urllib.error.HTTPError as e:
        raise SourceError(f"cannot download {redact_text(url)}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise SourceError(f"cannot download {redact_text(url)}: {getattr(e, 'reason', e)}") from None


def _published_md5(url: str) -> str:
    try:
        with _open(url + ".md5") as r:
            text = r.read().decode("ascii", "replace")
    except SourceError:
        raise SourceError(f"no checksum to verify {url} against: {url}.md5 is not there; set source.sha256") from None
    # GroupLens writes "MD5 (ml-latest-small.zip) = <hex>"; md5sum writes "<hex>  name".
    words = [w for w in text.replace("=", " ").split() if len(w) == 32 and all(c in "0123456789abcdef" for c in w.lower())]
    if not words:
        raise SourceError(f"{url}.md5 holds no md5 checksum")
    return words[0].lower()


def _unzip(zip_path: str, files: list[str], out: str) -> None:
    try:
        with zipfile.ZipFile(zip_path) as z:
            by_name = {os.path.basename(n): n for n in z.namelist() if not n.endswith("/")}
            for f in files:
                if f not in by_name:
                    raise SourceError(f"the zip has no {f}")
                with z.open(by_name[f]) as src, open(os.path.join(out, f), "wb") as dst:
                    shutil.copyfileobj(src, dst)
    except zipfile.BadZipFile:
        raise SourceError("the download is not a zip file") from None


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
