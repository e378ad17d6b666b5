"""Extract: landing snapshots from each kind of source, immutability, the sensor."""
from __future__ import annotations

import functools
import hashlib
import http.server
import os
import shutil
import threading
import time
import zipfile

import pytest

from common import raw_zone
from common.errors import SensorTimeout, SourceError
from jobs.batch import extract
from jobs.batch.generator import GeneratorSpec, generate

FILES = ["ratings.csv", "movies.csv", "tags.csv", "links.csv"]


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("movielens")
    generate(GeneratorSpec(seed=7, ratings=2000, users=50, movies=200, tags=100,
                           start="2015-01-01", end="2016-01-01"), str(folder))
    return str(folder)


@pytest.fixture(scope="module")
def dataset_zip(small_dataset, tmp_path_factory) -> str:
    """The dataset zipped the way GroupLens ships it, with a top folder and an .md5 file beside it."""
    served = tmp_path_factory.mktemp("served")
    path = served / "ml-tiny.zip"
    with zipfile.ZipFile(path, "w") as z:
        for f in FILES:
            z.write(os.path.join(small_dataset, f), f"ml-tiny/{f}")
        z.writestr("ml-tiny/README.txt", "tiny")
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    (served / "ml-tiny.zip.md5").write_text(f"MD5 (ml-tiny.zip) = {md5}\n")
    return str(path)


def sha256(path: str) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_generator_snapshot_lands_with_marker_and_manifest(spark, cfg):
    result = extract.run(spark, cfg)
    snapshot = raw_zone.find(cfg)
    assert result.counts["landed"] == 1
    assert snapshot.id == "gen-s42-r5000-u100-m400-t200"
    assert os.path.isfile(os.path.join(snapshot.path, raw_zone.MARKER))
    for f in FILES:
        assert snapshot.manifest["files"][f]["sha256"] == sha256(snapshot.file(f))
    # line counts in the manifest are the files' own, header included
    assert snapshot.data_rows("ratings.csv") == 5000
    assert snapshot.data_rows("movies.csv") == 400


def test_landing_the_same_snapshot_twice_is_a_no_op(spark, cfg):
    extract.run(spark, cfg)
    first = raw_zone.find(cfg)
    mtimes = {f: os.stat(first.file(f)).st_mtime_ns for f in FILES + [raw_zone.MARKER]}
    again = extract.run(spark, cfg)
    assert again.counts["landed"] == 0
    assert {f: os.stat(first.file(f)).st_mtime_ns for f in mtimes} == mtimes
    assert os.listdir(raw_zone.dataset_dir(cfg)) == [first.id]


def test_folder_source_copies_files_byte_for_byte(spark, cfg, small_dataset):
    cfg = cfg.with_overrides({"source.kind": "folder", "source.folder": small_dataset})
    extract.run(spark, cfg)
    snapshot = raw_zone.find(cfg)
    assert snapshot.id.startswith("dir-")
    for f in FILES:
        assert sha256(snapshot.file(f)) == sha256(os.path.join(small_dataset, f))


def test_folder_source_missing_file_is_named(spark, cfg, small_dataset, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(small_dataset, partial)
    os.remove(partial / "tags.csv")
    cfg = cfg.with_overrides({"source.kind": "folder", "source.folder": str(partial)})
    with pytest.raises(SourceError, match="has no tags.csv"):
        extract.run(spark, cfg)
    assert raw_zone.find(cfg) is None


def test_url_source_verifies_sha256(spark, cfg, dataset_zip, small_dataset):
    cfg = cfg.with_overrides({"source.kind": "url", "source.url": f"file://{dataset_zip}",
                              "source.sha256": sha256(dataset_zip)})
    extract.run(spark, cfg)
    snapshot = raw_zone.find(cfg)
    assert snapshot.id == f"zip-{sha256(dataset_zip)[:16]}"
    assert sha256(snapshot.file("ratings.csv")) == sha256(os.path.join(small_dataset, "ratings.csv"))


def test_url_source_rejects_a_checksum_mismatch(spark, cfg, dataset_zip):
    cfg = cfg.with_overrides({"source.kind": "url", "source.url": f"file://{dataset_zip}", "source.sha256": "0" * 64})
    with pytest.raises(SourceError, match="checksum mismatch"):
        extract.run(spark, cfg)
    assert raw_zone.find(cfg) is None


@pytest.fixture
def http_server(dataset_zip):
    """A real HTTP server on 127.0.0.1 serving the zip and its .md5, like files.grouplens.org."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=os.path.dirname(dataset_zip))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_url_source_over_http_checks_the_published_md5(spark, cfg, http_server, dataset_zip):
    cfg = cfg.with_overrides({"source.kind": "url", "source.url": f"{http_server}/ml-tiny.zip"})
    extract.run(spark, cfg)
    assert raw_zone.find(cfg).id == f"zip-{sha256(dataset_zip)[:16]}"


def test_url_source_without_any_checksum_is_refused(spark, cfg, http_server, dataset_zip):
    shutil.copy(dataset_zip, os.path.join(os.path.dirname(dataset_zip), "no-md5.zip"))
    cfg = cfg.with_overrides({"source.kind": "url", "source.url": f"{http_server}/no-md5.zip"})
    with pytest.raises(SourceError, match=r"no checksum to verify .*no-md5.zip against.*set source.sha256"):
        extract.run(spark, cfg)
    assert raw_zone.find(cfg) is None


def test_url_source_that_cannot_be_fetched_is_named(spark, cfg, http_server):
    cfg = cfg.with_overrides({"source.kind": "url", "source.url": f"{http_server}/missing.zip"})
    with pytest.raises(SourceError, match=r"cannot download http://127.0.0.1:\d+/missing.zip: HTTP 404"):
        extract.run(spark, cfg)


def test_sensor_times_out_with_a_clear_message(cfg):
    started = time.monotonic()
    with pytest.raises(SensorTimeout, match=r"sensor gave up after 0.5s: no snapshot is complete in .*landing/movielens"):
        raw_zone.wait_for(cfg, "latest", timeout_s=0.5, poll_s=0.1)
    assert time.monotonic() - started >= 0.5


def test_sensor_ignores_an_unmarked_snapshot_and_sees_the_marker(spark, cfg):
    extract.run(spark, cfg)
    snapshot = raw_zone.find(cfg)
    marker = os.path.join(snapshot.path, raw_zone.MARKER)
    hidden = marker + ".hidden"
    os.rename(marker, hidden)  # as if the upstream were still writing
    assert raw_zone.find(cfg) is None
    threading.Timer(0.5, os.rename, (hidden, marker)).start()
    found = raw_zone.wait_for(cfg, snapshot.id, timeout_s=10, poll_s=0.1)
    assert found.id == snapshot.id
