"""Section `batch`: the full-load of generated ratings through our job (schema-on-read, quarantine
classification, reconciliation, bronze overwrite) against a floor: a bare
`spark.read.csv(schema) → Delta` of the same file. Targets: ours ≥ 0.85 × the floor's rows/s;
driver JVM peak RSS ≤ 4 GiB."""
from __future__ import annotations

import os
import time

from bench.harness import DATA, WORK, Metric, gib, run_case
from common import raw_zone, tables
from common.schemas import source_schemas
from jobs.runner import run_job

# ratings → (users, movies): sized so that users rate at most half the movies, with room to spare.
SIZES = {1_000_000: (6_000, 20_000), 10_000_000: (60_000, 50_000)}
RATIO_TARGET, RSS_TARGET_GIB = 0.85, 4.0


def generator_conf(ratings: int) -> list[str]:
    users, movies = SIZES[ratings]
    return ["source.kind=generator", f"generator.ratings={ratings}", f"generator.users={users}",
            f"generator.movies={movies}", "generator.tags=10000", "stream.holdback_fraction=0.0"]


# --- cases (each runs in its own process, through bench.case) ---

def landed(spark, cfg) -> dict:
    """Extract into the shared raw zone once (generation is not what is measured)."""
    began = time.monotonic()
    run_job(spark, cfg, "extract")
    return {"seconds": time.monotonic() - began}


def full_load(spark, cfg, raw_root: str) -> dict:
    cfg = cfg.with_overrides({"ledger.enabled": False})
    _link_raw(cfg, raw_root)
    began = time.monotonic()
    result = run_job(spark, cfg, "full_load")
    rows = sum(v for k, v in result.counts.items() if k.endswith(".input"))
    return {"seconds": time.monotonic() - began, "rows": rows, "ratings": result.counts["ratings.input"]}


def floor(spark, cfg, raw_root: str) -> dict:
    """Each file read with its declared schema and written to Delta: no checks, no metadata."""
    _link_raw(cfg, raw_root)
    snapshot = raw_zone.find(cfg)
    began, rows = time.monotonic(), 0
    for name, schema in source_schemas(cfg["raw.dataset"]).items():
        ddl = ", ".join(f"`{c.name}` {c.type}" for c in schema.columns)
        target = tables.location(cfg, f"bronze.{name}")
        (spark.read.option("header", "true").option("mode", "PERMISSIVE").schema(ddl).csv(snapshot.file(schema.file))
         .write.format("delta").mode("overwrite").save(target))
        rows += int(tables.delta_table(spark, cfg, f"bronze.{name}").history(1).first()["operationMetrics"]["numOutputRows"])
    return {"seconds": time.monotonic() - began, "rows": int(rows)}


def _link_raw(cfg, raw_root: str) -> None:
    """Point this case's lake at the landed raw zone (a symlink: the raw zone is immutable)."""
    lake = tables.lake_root(cfg)
    os.makedirs(lake, exist_ok=True)
    os.symlink(raw_root, os.path.join(lake, "landing"))


# --- the section ---

def run(sizes: list[int]) -> list[Metric]:
    metrics = []
    for ratings in sizes:
        label = f"{ratings // 1_000_000}M" if ratings >= 1_000_000 else f"{ratings // 1000}k"
        data_lake = os.path.join(DATA, f"batch-{label}")
        conf = generator_conf(ratings)
        if not os.path.exists(os.path.join(data_lake, "landing")):
            print(f"  generating and landing {label} ratings (once, kept in {data_lake})", flush=True)
            run_case("bench.batch:landed", data_lake, conf)
        raw_root = os.path.join(data_lake, "landing")
        print(f"  full-load of {label} ratings: ours, then the floor", flush=True)
        ours = run_case("bench.batch:full_load", os.path.join(WORK, "ours"), conf, raw_root=raw_root)
        bare = run_case("bench.batch:floor", os.path.join(WORK, "floor"), conf, raw_root=raw_root)
        ours_rate, floor_rate = ours["rows"] / ours["seconds"], bare["rows"] / bare["seconds"]
        ratio = ours_rate / floor_rate
        metrics += [
            Metric("batch", f"full_load {label}: input rows (4 files)", ours["rows"], "rows"),
            Metric("batch", f"full_load {label}: seconds (ours)", round(ours["seconds"], 1), "s"),
            Metric("batch", f"full_load {label}: rows/s (ours)", round(ours_rate), "rows/s"),
            Metric("batch", f"full_load {label}: rows/s (floor: csv → delta)", round(floor_rate), "rows/s"),
            Metric("batch", f"full_load {label}: ours / floor", round(ratio, 3), "ratio",
                   f">= {RATIO_TARGET}", ratio >= RATIO_TARGET),
            Metric("batch", f"full_load {label}: driver JVM peak RSS (ours)", round(gib(ours["jvm_peak_rss_bytes"]), 2),
                   "GiB", f"<= {RSS_TARGET_GIB}", gib(ours["jvm_peak_rss_bytes"]) <= RSS_TARGET_GIB),
            Metric("batch", f"full_load {label}: driver JVM peak RSS (floor)", round(gib(bare["jvm_peak_rss_bytes"]), 2),
                   "GiB"),
        ]
    return metrics
