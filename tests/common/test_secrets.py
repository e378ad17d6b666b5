"""Secrets stay out of what lakejobs records and shows: by key name, by the shape of a value (a URL's
signature or password), and out of the spark-submit command line."""
from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import stat
import subprocess
import threading
import urllib.parse
import zipfile

import pytest

from common import lake_files, paths, raw_zone, tables
from common.catalogue import STATE_LEDGER
from common.config import REDACTED, load_config, redact, redact_text
from common.errors import SourceError
from jobs.batch import sources
from jobs.batch.generator import GeneratorSpec, generate
from jobs.runners.runner import run_job
from tests.conftest import LAKEJOBS

SIGNATURE = "c2e9f0a7d3b14e55aa0f1b2c3d4e5f60"  # stands for a presigned URL's signature


@pytest.mark.parametrize("key", [
    "spark.hadoop.fs.azure.account.key.myaccount.dfs.core.windows.net",
    "spark.hadoop.fs.azure.sas.mycontainer.myaccount.blob.core.windows.net",
    "spark.hadoop.fs.azure.sas.fixed.token.myaccount.dfs.core.windows.net",
    "spark.hadoop.fs.s3a.session.token",
    "spark.hadoop.fs.s3a.secret.key",
    "spark.hadoop.fs.s3a.access.key",
    "spark.hadoop.fs.s3a.encryption.key",
    "spark.hadoop.fs.azure.account.oauth2.client.secret",
    "spark.hadoop.google.cloud.auth.service.account.private.key",
    "spark.hadoop.fs.gs.auth.service.account.private.key.id",
    "spark.ssl.keyStorePassword",
    "mlflow.api_key",
])
def test_a_secret_key_has_its_value_redacted(key):
    assert redact({"spark.conf": {key: "hunter2"}}) == {"spark.conf": {key: REDACTED}}


@pytest.mark.parametrize("key", ["s3.credentials_provider", "spark.hadoop.fs.s3a.aws.credentials.provider",
                                 "spark.sql.session.timeZone", "stream.query_name", "ml.ranking_alphas",
                                 "spark.hadoop.fs.azure.account.auth.type", "source.kind"])
def test_an_ordinary_key_keeps_its_value(key):
    assert redact({key: "value"}) == {key: "value"}


def test_no_key_of_the_shipped_configuration_is_taken_for_a_secret():
    for env in ("local", "test", "cluster", "databricks", "s3"):
        flat = load_config(env, environ={}).flat()
        assert redact(flat) == flat, env


@pytest.mark.parametrize("value, expected", [
    (f"https://b.s3.amazonaws.com/ml.zip?X-Amz-Credential=AKIA1&X-Amz-Signature={SIGNATURE}",
     f"https://b.s3.amazonaws.com/ml.zip?{REDACTED}"),
    (f"https://acct.blob.core.windows.net/c/ml.zip?sv=2022&sig={SIGNATURE}",
     f"https://acct.blob.core.windows.net/c/ml.zip?{REDACTED}"),
    (f"https://user:{SIGNATURE}@host.example/ml.zip", "https://***@host.example/ml.zip"),
    (f"see http://h/x#access_token={SIGNATURE} and ftp://a:{SIGNATURE}@c/d",
     f"see http://h/x#{REDACTED} and ftp://***@c/d"),
    ("https://files.grouplens.org/datasets/movielens/ml-latest-small.zip",
     "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip"),
    ("s3a://lakejobs/lake", "s3a://lakejobs/lake"),
    ("speed_ratings_merge", "speed_ratings_merge"),
])
def test_a_url_loses_its_signature_and_password(value, expected):
    assert redact_text(value) == expected
    assert redact({"source.url": value, "spark.conf": {"x": value}, "ml.list": [value]}) == {
        "source.url": expected, "spark.conf": {"x": expected}, "ml.list": [expected]}


@pytest.fixture
def presigned_url(tmp_path):
    """A zip of tiny MovieLens files served over HTTP, reached by a URL carrying a signature (the server,
    like S3's, reads the path and ignores the query)."""
    data, served = tmp_path / "data", tmp_path / "served"
    data.mkdir(), served.mkdir()
    generate(GeneratorSpec(seed=3, ratings=300, users=20, movies=40, tags=20, start="2015-01-01", end="2015-06-01"),
             str(data))
    with zipfile.ZipFile(served / "ml.zip", "w") as z:
        for f in ("ratings.csv", "movies.csv", "tags.csv", "links.csv"):
            z.write(data / f, f"ml/{f}")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/ml.zip?X-Amz-Credential=AKIA1&X-Amz-Signature={SIGNATURE}"
    yield url, hashlib.sha256((served / "ml.zip").read_bytes()).hexdigest()
    server.shutdown()


def test_a_presigned_source_url_reaches_neither_the_ledger_nor_the_snapshot_marker(spark, cfg, presigned_url):
    url, sha = presigned_url
    cfg = cfg.with_overrides({"source.kind": "url", "source.url": url, "source.sha256": sha})
    run_job(spark, cfg, "extract")
    snapshot = raw_zone.find(cfg)
    marker = lake_files.read_text(cfg, paths.join(snapshot.path, raw_zone.MARKER))
    assert json.loads(marker)["source"] == f"url {url.split('?')[0]}?{REDACTED}"
    (row,) = tables.read(spark, cfg, STATE_LEDGER.name).collect()
    assert row.status == "succeeded"
    assert json.loads(row.params)["source.url"] == f"{url.split('?')[0]}?{REDACTED}"
    assert SIGNATURE not in marker and SIGNATURE not in json.dumps(row.asDict(recursive=True), default=str)


def test_a_presigned_url_that_fails_is_named_without_its_signature(cfg, presigned_url):
    url, sha = presigned_url
    missing = url.replace("/ml.zip?", "/gone.zip?")
    with pytest.raises(SourceError) as err:
        sources.plan(cfg.with_overrides({"source.kind": "url", "source.url": missing, "source.sha256": sha}), [])
    assert str(err.value) == f"cannot download {missing.split('?')[0]}?{REDACTED}: HTTP 404 File not found"
    with pytest.raises(SourceError) as err:
        sources.plan(cfg.with_overrides({"source.kind": "url", "source.url": url, "source.sha256": "0" * 64}), [])
    assert str(err.value).startswith(f"checksum mismatch for {url.split('?')[0]}?{REDACTED}: sha256 ")


def test_properties_are_read_back_by_java_as_written(tmp_path):
    from jobs.runners.cli import _write_properties

    tricky = {"spark.a": "C:\\dir\\new=1 #x!", "spark.b": "line1\nline2", "spark.c": "  lead", "k:e=y #!": "v",
              "spark.d": "é ünïcode"}
    target = _write_properties(tricky, str(tmp_path / "sub" / "spark.properties"))
    assert _java_properties(tmp_path / "sub" / "spark.properties") == tricky
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600


def test_submit_args_keep_spark_settings_off_the_command_line(tmp_path):
    """`ps` shows any process's arguments to every user: the settings go in a file only the owner reads."""
    target = tmp_path / "spark.properties"
    done = subprocess.run([LAKEJOBS, "submit-args", "--env", "test", "--properties-file", str(target),
                           "--conf", f"spark.conf.spark.hadoop.fs.s3a.secret.key={SIGNATURE}",
                           "--conf", "spark.conf.spark.sql.session.timeZone=Europe/Paris"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["--properties-file", str(target)]
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    settings = _java_properties(target)
    assert settings["spark.hadoop.fs.s3a.secret.key"] == SIGNATURE
    assert settings["spark.sql.session.timeZone"] == "Europe/Paris"
    assert settings["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"


def test_submit_args_show_no_setting_value_by_default():
    key = "spark.hadoop.fs.azure.account.key.acct.dfs.core.windows.net"
    done = subprocess.run([LAKEJOBS, "submit-args", "--env", "test", "--conf", f"spark.conf.{key}={SIGNATURE}"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert SIGNATURE not in done.stdout
    option, path = done.stdout.split()
    try:
        assert option == "--properties-file" and stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert _java_properties_of(path)[key] == SIGNATURE
    finally:
        os.unlink(path)


def test_submit_args_tighten_a_properties_file_someone_else_could_read(tmp_path):
    target = tmp_path / "spark.properties"
    target.write_text("old\n")
    os.chmod(target, 0o644)
    done = subprocess.run([LAKEJOBS, "submit-args", "--env", "test", "--properties-file", str(target)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600 and "old" not in target.read_text()


def _java_properties_of(path: str) -> dict[str, str]:
    import pathlib
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        copy = pathlib.Path(folder) / "spark.properties"
        copy.write_bytes(pathlib.Path(path).read_bytes())
        return _java_properties(copy)


def _java_properties(path) -> dict[str, str]:
    """The file as Java reads it (java.util.Properties, what spark-submit uses), not as we wrote it."""
    code = ("import java.util.*; import java.io.*;"
            "public class P { public static void main(String[] a) throws Exception {"
            " Properties p = new Properties(); p.load(new InputStreamReader(new FileInputStream(a[0]), \"UTF-8\"));"
            " for (String k : new TreeSet<>(p.stringPropertyNames())) System.out.println("
            " java.net.URLEncoder.encode(k, \"UTF-8\") + \" \""
            " + java.net.URLEncoder.encode(p.getProperty(k), \"UTF-8\")); } }")
    source = path.parent / "P.java"
    source.write_text(code)
    done = subprocess.run(["java", str(source), str(path)], capture_output=True, text=True, timeout=120, check=True)
    return dict(map(urllib.parse.unquote_plus, line.split(" ")) for line in done.stdout.splitlines())


def test_a_failed_runs_error_is_recorded_without_a_urls_signature(spark, cfg):
    """Any job's error text, not only the source's own messages, is scrubbed before the ledger keeps it."""
    from common.ledger import RunRecord, record
    url = f"https://bucket.example/ml.zip?X-Amz-Signature={SIGNATURE}"
    record(spark, cfg, RunRecord(job="extract", env="test", params={}), None, "failed",
           f"OSError: cannot open {url}")
    (row,) = tables.read(spark, cfg, STATE_LEDGER.name).collect()
    assert row.error == f"OSError: cannot open https://bucket.example/ml.zip?{REDACTED}"
