"""Section `s3`: the full-load of the same generated ratings with the lake in a local folder and with
the lake on a local S3 API server (moto, started here on a free port of 127.0.0.1), in one run.
Both read the raw snapshot from their own lake and write bronze and quarantine there; the ratio
says what S3 (through hadoop-aws, and a Python S3 server on the same cores) costs. No target."""
from __future__ import annotations

import os
import uuid

from bench import batch
from bench.case import timed
from bench.harness import WORK, Metric, run_case
from common.local import s3_server, servers
from jobs.runners.runner import run_job

RATINGS = 1_000_000
BUCKET = "lakejobs-bench"


def landed(spark, cfg) -> dict:
    """Extract the prepared files from their folder into the S3 lake's raw zone (boto3 uploads)."""
    result, seconds, _ = timed(spark, lambda: run_job(spark, cfg, "extract"))
    return {"seconds": seconds, "landed": result.counts["landed"]}


def full_load(spark, cfg) -> dict:
    """`lakejobs run full_load` with the lake on S3: raw files read through s3a://, Delta written there."""
    result, seconds, cpu = timed(spark, lambda: run_job(spark, cfg, "full_load"))
    return {"seconds": seconds, "cpu_s": cpu, "rows": sum(v for k, v in result.counts.items() if k.endswith(".input")),
            "loaded": sum(v for k, v in result.counts.items() if k.endswith(".loaded"))}


def run() -> tuple[list[Metric], list[str]]:
    tag = batch.label(RATINGS)
    raw_root = batch.prepare(RATINGS)
    files = os.path.join(raw_root, "movielens", batch.snapshot_id(RATINGS))
    # The local server takes any key; the AWS chain of the cases (boto3 and hadoop-aws) must still find one.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "local-only")
    folder, port = os.path.join(WORK, "s3-server"), servers.free_port()
    endpoint = s3_server.up(folder, port, bucket=BUCKET)
    try:
        lake = f"s3a://{BUCKET}/{uuid.uuid4().hex[:8]}"
        s3_conf = batch.generator_conf(RATINGS) + [
            "source.kind=folder", f"source.folder={files}", "spark.jar_groups=[delta, kafka, s3]",
            f"s3.endpoint={endpoint}", "s3.path_style_access=true"]
        print(f"  {tag}: the same files in a local lake, then in a lake on {endpoint}, each full_load in a fresh JVM",
              flush=True)
        local = run_case("bench.batch:full_load", os.path.join(WORK, "s3-local"), batch.generator_conf(RATINGS),
                         raw_root=raw_root)
        upload = run_case("bench.s3:landed", lake, s3_conf + ["ledger.enabled=false"])
        remote = run_case("bench.s3:full_load", lake, s3_conf)
    finally:
        s3_server.down(folder)
    if upload["landed"] != 1:
        raise RuntimeError(f"{tag}: the extract found the snapshot already in {lake}: nothing was uploaded")
    if not (local["loaded"] == remote["loaded"] and local["rows"] == remote["rows"]):
        raise RuntimeError(f"{tag}: local loaded {local['loaded']} of {local['rows']}, S3 {remote['loaded']} "
                           f"of {remote['rows']}")
    size = sum(os.path.getsize(os.path.join(files, f)) for f in os.listdir(files) if f.endswith(".csv"))
    ratio = remote["seconds"] / local["seconds"]
    print(f"  {tag}: full_load {local['seconds']:.1f} s local, {remote['seconds']:.1f} s on S3 "
          f"(S3 / local {ratio:.2f}); landing on S3 took {upload['seconds']:.1f} s", flush=True)
    metrics = [
        Metric("s3", f"{tag}: input rows (4 files, {size / 2**20:.0f} MiB)", local["rows"], "rows"),
        Metric("s3", f"{tag}: full_load wall time, lake in a local folder", round(local["seconds"], 1), "s"),
        Metric("s3", f"{tag}: full_load wall time, lake on the local S3 server", round(remote["seconds"], 1), "s"),
        Metric("s3", f"{tag}: S3 / local", round(ratio, 2), "ratio"),
        Metric("s3", f"{tag}: driver JVM CPU time, local / S3", f"{local['cpu_s']:.1f} / {remote['cpu_s']:.1f}", "s"),
        Metric("s3", f"{tag}: extract to S3 (sha256, boto3 upload, marker), not part of the ratio",
               round(upload["seconds"], 1), "s"),
    ]
    notes = [f"Generated data (the `batch` section's {tag} case, seed {batch.SEED}), the same files for both. Each "
             "full_load runs in a fresh Python + JVM, as `lakejobs run full_load` runs it (sensor, header check, "
             "bronze and quarantine overwrites per file, reconciliation, ledger row); times cover the job, not "
             "the JVM start. The S3 server is moto's standalone server, a Python process on the same cores: "
             "the ratio measures hadoop-aws and S3's request pattern against a local disk, plus that server's "
             "cost, not the network of a real bucket."]
    return metrics, notes
