"""The lake on S3, against a real S3 API server (moto's standalone server) this module starts on a
free port of 127.0.0.1: extract with boto3, the sensor, full_load and silver on s3a://, re-runs that
upload nothing, and credentials that never reach the logs, the ledger or MLflow."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid

import pytest
from chispa import assert_df_equality

from common import raw_zone, s3, tables, tracking
from common.catalogue import QUARANTINE_RATINGS, SILVER_LINKS, SILVER_MOVIES, SILVER_RATINGS, SILVER_TAGS, STATE_LEDGER
from common.local import s3_server, servers
from common.config import REDACTED, load_config
from common.errors import SensorTimeout, SourceError
from common.session import get_session
from jobs.batch.generator import GeneratorSpec, generate
from jobs.runners.runner import run_job

ACCESS_KEY = "lakejobs-test-access"
SECRET_KEY = f"lakejobs-test-secret-{uuid.uuid4().hex}"
BUCKET = f"lakejobs-test-{uuid.uuid4().hex[:8]}"  # a new name per run: hadoop-aws caches a filesystem per bucket
BATCH = ["extract", "full_load", "silver"]
SILVER = [SILVER_RATINGS.name, SILVER_MOVIES.name, SILVER_TAGS.name, SILVER_LINKS.name]
MALFORMED = ["7,notanumber,4.0,1500000000", "8,12,9.5,1500000000", "9,13,3.0"]


@pytest.fixture(scope="module")
def endpoint(spark, tmp_path_factory):
    """The server, with credentials in the AWS chain: environment variables for boto3, and the same pair as
    the SDK chain's first link (Java system properties) for the test JVM, which may have started before."""
    folder = str(tmp_path_factory.mktemp("s3-server"))
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    system = spark.sparkContext._jvm.java.lang.System
    system.setProperty("aws.accessKeyId", ACCESS_KEY)
    system.setProperty("aws.secretAccessKey", SECRET_KEY)
    try:
        yield s3_server.up(folder, servers.free_port(), bucket=BUCKET)
    finally:
        s3_server.down(folder)
        system.clearProperty("aws.accessKeyId")
        system.clearProperty("aws.secretAccessKey")
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name)
            else:
                os.environ[name] = value


def s3_config(spark, endpoint: str, prefix: str, tmp, *overrides: str):
    cfg = load_config("test", [f"lake.root=s3a://{BUCKET}/{prefix}", f"s3.endpoint={endpoint}",
                               "s3.path_style_access=true", f"ml.embedded_dir={tmp}/mlflow", *overrides])
    get_session(cfg)  # the shared session gets the s3a settings, as a runner's session would
    return cfg


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> str:
    """Generated MovieLens files (the test size) with a few malformed rating lines, so quarantine is not empty."""
    folder = str(tmp_path_factory.mktemp("movielens"))
    generate(GeneratorSpec(seed=11, ratings=3000, users=80, movies=300, tags=150,
                           start="2015-01-01", end="2016-01-01"), folder)
    with open(os.path.join(folder, "ratings.csv"), "a") as f:
        f.write("\n".join(MALFORMED) + "\n")
    return folder


class Captured(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(self.format(record))


@pytest.fixture(scope="module")
def runs(spark, endpoint, dataset, tmp_path_factory):
    """The batch layer on S3 (every Python log line at DEBUG captured, boto3's included) and on a local
    folder, from the same files."""
    tmp = tmp_path_factory.mktemp("s3-runs")
    source = ["source.kind=folder", f"source.folder={dataset}"]
    local = load_config("test", [f"lake.root={tmp}/lake", "ledger.enabled=false", *source])
    on_s3 = s3_config(spark, endpoint, "lake", tmp, *source)
    handler, loggers = Captured(), [logging.getLogger(n) for n in ("", "botocore", "boto3", "s3transfer", "urllib3")]
    levels = [lg.level for lg in loggers]
    logging.getLogger().addHandler(handler)
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    logging.getLogger("py4j").setLevel(logging.INFO)
    try:
        s3_results = {job: run_job(spark, on_s3, job) for job in BATCH + ["train"]}
    finally:
        logging.getLogger().removeHandler(handler)
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
    local_results = {job: run_job(spark, local, job) for job in BATCH}
    return {"s3": (on_s3, s3_results), "local": (local, local_results), "log": handler.lines, "tmp": tmp}


def listing(client, prefix: str) -> dict[str, tuple[str, object]]:
    """key → (ETag, LastModified) of every object under prefix, from the server."""
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return {o["Key"]: (o["ETag"], o["LastModified"]) for page in pages for o in page.get("Contents", [])}


def test_the_snapshot_lands_in_the_bucket_with_checksums_and_its_marker_last(runs):
    cfg, _ = runs["s3"]
    snapshot = raw_zone.find(cfg)
    assert snapshot.path == f"s3a://{BUCKET}/lake/landing/movielens/{snapshot.id}"
    client = s3.client(cfg)
    objects = listing(client, f"lake/landing/movielens/{snapshot.id}/")
    names = {k.rsplit("/", 1)[1] for k in objects}
    assert names == {"ratings.csv", "movies.csv", "tags.csv", "links.csv", raw_zone.MARKER}
    for name, described in snapshot.manifest["files"].items():
        head = s3.head(client, snapshot.file(name))
        assert head["Metadata"][s3.SHA256_KEY] == described["sha256"]
        assert head["ContentLength"] == described["bytes"]
    marker_time = objects[f"lake/landing/movielens/{snapshot.id}/{raw_zone.MARKER}"][1]
    assert all(modified <= marker_time for _, modified in objects.values())
    assert snapshot.data_rows("ratings.csv") == 3000 + len(MALFORMED)


def test_full_load_and_silver_on_s3_equal_the_local_folder_run(spark, runs):
    (on_s3, s3_results), (local, local_results) = runs["s3"], runs["local"]
    for source in ("ratings", "movies", "tags", "links"):
        for count in ("input", "loaded", "quarantined"):
            key = f"{source}.{count}"
            assert s3_results["full_load"].counts[key] == local_results["full_load"].counts[key], key
    assert s3_results["full_load"].counts["ratings.quarantined"] == len(MALFORMED)
    assert all(t.location.startswith(f"s3a://{BUCKET}/lake/") for t in s3_results["silver"].writes)
    written = [{t.name: t.rows for t in results["silver"].writes} for results in (s3_results, local_results)]
    assert written[0] == written[1] and set(written[0]) == set(SILVER) and all(written[0].values())
    assert_df_equality(tables.read(spark, on_s3, SILVER_RATINGS.name), tables.read(spark, local, SILVER_RATINGS.name),
                       ignore_row_order=True, ignore_nullable=True)
    assert tables.read(spark, on_s3, QUARANTINE_RATINGS.name).count() == len(MALFORMED)


def test_rerunning_the_extract_uploads_nothing(spark, runs):
    cfg, _ = runs["s3"]
    client = s3.client(cfg)
    before = listing(client, "lake/landing/")
    time.sleep(1.1)  # LastModified has one-second resolution: an upload now would show
    result = run_job(spark, cfg, "extract")
    assert result.counts["landed"] == 0
    assert listing(client, "lake/landing/") == before


def test_an_interrupted_landing_sends_only_what_is_missing(spark, endpoint, dataset, tmp_path):
    cfg = s3_config(spark, endpoint, "interrupted", tmp_path, "source.kind=folder", f"source.folder={dataset}",
                    "ledger.enabled=false")
    run_job(spark, cfg, "extract")
    snapshot = raw_zone.find(cfg)
    client, prefix = s3.client(cfg), f"interrupted/landing/movielens/{snapshot.id}/"
    # As if the extract had died after uploading three files: no marker, no tags.csv.
    client.delete_object(Bucket=BUCKET, Key=prefix + raw_zone.MARKER)
    client.delete_object(Bucket=BUCKET, Key=prefix + "tags.csv")
    kept = listing(client, prefix)
    time.sleep(1.1)
    assert run_job(spark, cfg, "extract").counts["landed"] == 1
    after = listing(client, prefix)
    assert {k: v for k, v in after.items() if k in kept} == kept  # same ETag, same LastModified: not sent again
    assert set(after) - set(kept) == {prefix + "tags.csv", prefix + raw_zone.MARKER}


def test_a_large_file_goes_up_in_parts_with_its_checksum(endpoint, tmp_path):
    cfg = load_config("test", [f"lake.root=s3a://{BUCKET}/multipart", f"s3.endpoint={endpoint}",
                               "s3.path_style_access=true", "s3.multipart_threshold_mb=5", "s3.multipart_chunk_mb=5"])
    path = tmp_path / "big.csv"
    path.write_bytes(os.urandom(11 * s3.MIB))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    client, uri = s3.client(cfg), f"s3a://{BUCKET}/multipart/big.csv"
    assert s3.upload(client, str(path), uri, digest, s3.transfer(cfg))
    head = s3.head(client, uri)
    assert head["ETag"].strip('"').endswith("-3")  # a multipart ETag: three parts of 5, 5 and 1 MiB
    assert head["Metadata"][s3.SHA256_KEY] == digest and head["ContentLength"] == 11 * s3.MIB
    assert not s3.upload(client, str(path), uri, digest, s3.transfer(cfg))


def test_the_sensor_times_out_naming_the_marker_it_waited_for(spark, endpoint, tmp_path):
    cfg = s3_config(spark, endpoint, "nothing-here", tmp_path)
    marker = f"s3a://{BUCKET}/nothing-here/landing/movielens/snap-1/_SUCCESS.json"
    began = time.monotonic()
    with pytest.raises(SensorTimeout, match=f"sensor gave up after 1s: snapshot 'snap-1' is not complete "
                                            f"\\(no marker {marker}\\)"):
        raw_zone.wait_for(cfg, "snap-1", timeout_s=1.0, poll_s=0.2)
    assert time.monotonic() - began < 5


def test_a_bucket_that_does_not_exist_is_one_clear_error(spark, endpoint, tmp_path):
    cfg = load_config("test", ["lake.root=s3a://no-such-bucket/lake", f"s3.endpoint={endpoint}",
                               "s3.path_style_access=true"])
    with pytest.raises(SourceError, match="S3 refused ListObjectsV2 on s3a://no-such-bucket/.*NoSuchBucket"):
        raw_zone.find(cfg)


def test_the_secret_key_is_in_no_log_ledger_row_or_mlflow_param(spark, endpoint, runs):
    on_s3, _ = runs["s3"]
    # A user who put the secret in the configuration too: the ledger must still not keep it.
    careless = on_s3.with_overrides({"spark.conf": {"spark.hadoop.fs.s3a.secret.key": SECRET_KEY}})
    run_job(spark, careless, "extract")
    train = runs["s3"][1]["train"]
    assert any("botocore" in line for line in runs["log"])  # the log capture saw S3 traffic at DEBUG
    assert not [line for line in runs["log"] if SECRET_KEY in line]
    ledger = [json.dumps(r.asDict(recursive=True), default=str)
              for r in tables.read(spark, on_s3, STATE_LEDGER.name).collect()]
    assert {json.loads(row)["job"] for row in ledger} >= {*BATCH, "train"}
    params = [json.loads(json.loads(row)["params"]) for row in ledger]
    assert [p["spark.conf"]["spark.hadoop.fs.s3a.secret.key"] for p in params if "spark.hadoop.fs.s3a.secret.key"
            in p["spark.conf"]] == [REDACTED]
    assert not [row for row in ledger if SECRET_KEY in row]
    client = tracking.connect(on_s3)
    experiment = client.get_experiment_by_name(on_s3["ml.experiment"])
    [run] = client.search_runs([experiment.experiment_id])
    assert train.counts["model.version"] == 1 and run.data.params
    assert run.data.tags["data.location"] == f"s3a://{BUCKET}/lake/silver/ratings"
    assert SECRET_KEY not in json.dumps({"params": run.data.params, "tags": run.data.tags})
    settings = dict(spark.sparkContext.getConf().getAll())
    assert not [k for k, v in settings.items() if SECRET_KEY in v]
