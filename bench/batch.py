"""Section `batch`: the full-load of generated ratings through our job (schema-on-read, quarantine
classification, reconciliation, bronze overwrite, ledger row) against a floor: a bare
`spark.read.csv(schema) → Delta` of the same files, at each size of a cost curve to 100M. Targets
(issue 15): ours ≥ 0.75 × the floor's rows/s and ≥ 0.95 × the floor writing our bronze columns;
peak RSS ≤ 4 GiB; at 100M, rows/s ≥ 0.9 × the 10M figure (linear cost)."""
from __future__ import annotations

import glob
import os
from datetime import datetime, timezone

from bench.case import timed
from bench.harness import DATA, DRIVER_MEMORY, WORK, Metric, gib, run_case
from common import catalogue, raw_zone, tables
from common.schemas import source_schemas
from jobs.batch.full_load import ingest_metadata
from jobs.batch.generator import GeneratorSpec
from jobs.runners.runner import run_job

# ratings → (users, movies): each user rates at most half the movies (the generator's cap), with room.
SIZES = {100_000: (1_000, 5_000), 1_000_000: (6_000, 20_000), 10_000_000: (60_000, 50_000),
         100_000_000: (600_000, 100_000)}
DEFAULT_SIZES = [1_000_000, 10_000_000]  # 100k is for trying the bench out; 100M (--sizes) takes many minutes
TAGS, SEED = 10_000, 42
RATIO_TARGET, METADATA_RATIO_TARGET, RSS_TARGET_GIB = 0.75, 0.95, 4.0
LINEAR_TARGET = 0.9  # rows/s at 100M against rows/s at 10M


def generator_conf(ratings: int) -> list[str]:
    users, movies = SIZES[ratings]
    return ["source.kind=generator", f"generator.seed={SEED}", f"generator.ratings={ratings}",
            f"generator.users={users}", f"generator.movies={movies}", f"generator.tags={TAGS}",
            "stream.holdback_fraction=0.0"]


def snapshot_id(ratings: int) -> str:
    users, movies = SIZES[ratings]
    return GeneratorSpec(SEED, ratings, users, movies, TAGS, "", "").snapshot_id


def label(ratings: int) -> str:
    return f"{ratings / 1e6:g}M" if ratings >= 1_000_000 else f"{ratings / 1e3:g}k"


# --- cases (each runs in its own process, through bench.case) ---

def landed(spark, cfg) -> dict:
    """Extract into the cached raw zone, once (generating the data is not what is measured)."""
    _, seconds, _ = timed(spark, lambda: run_job(spark, cfg, "extract"))
    return {"seconds": seconds}


def full_load(spark, cfg, raw_root: str) -> dict:
    """Our job as `lakejobs run full_load` runs it (ledger row included)."""
    _link_raw(cfg, raw_root)
    result, seconds, cpu = timed(spark, lambda: run_job(spark, cfg, "full_load"))
    rows = sum(v for k, v in result.counts.items() if k.endswith(".input"))
    loaded = sum(v for k, v in result.counts.items() if k.endswith(".loaded"))
    return {"seconds": seconds, "cpu_s": cpu, "rows": rows, "loaded": loaded}


def floor(spark, cfg, raw_root: str, with_metadata: bool = False) -> dict:
    """Each file read with its declared schema and written to Delta: no checks, no metadata (or, for
    reference, with our three ingest metadata columns as literals)."""
    _link_raw(cfg, raw_root)
    snapshot = raw_zone.find(cfg)
    ingested_at = datetime.now(timezone.utc)

    def load_all() -> int:
        rows = 0
        for name, schema in source_schemas(cfg["raw.dataset"]).items():
            ddl = ", ".join(f"`{c.name}` {c.type}" for c in schema.columns)
            path = snapshot.file(schema.file)
            df = spark.read.option("header", "true").schema(ddl).csv(path)
            if with_metadata:
                df = df.withColumns(ingest_metadata(f"file:{path}", snapshot.id, ingested_at))
            rows += tables.overwrite(df, cfg, catalogue.of_source("bronze", name).name).rows
        return rows

    rows, seconds, cpu = timed(spark, load_all)
    return {"seconds": seconds, "cpu_s": cpu, "rows": rows}


def _link_raw(cfg, raw_root: str) -> None:
    """Point this case's lake at the cached raw zone (a symlink: the raw zone is immutable)."""
    lake = tables.lake_root(cfg)
    os.makedirs(lake, exist_ok=True)
    os.symlink(raw_root, os.path.join(lake, "landing"))


# --- the section ---

def prepare(ratings: int) -> str:
    """The raw zone holding the generated snapshot, landed once into bench/.data and reused."""
    lake = os.path.join(DATA, f"batch-{label(ratings)}")
    marker = os.path.join(lake, "landing", "movielens", snapshot_id(ratings), "_SUCCESS.json")
    if not os.path.exists(marker):
        print(f"  {label(ratings)}: generating and landing the data once, into {lake}", flush=True)
        run_case("bench.batch:landed", lake, generator_conf(ratings) + ["ledger.enabled=false"])
    stray = [p for p in glob.glob(os.path.join(lake, "landing", "movielens", "*")) if not p.endswith(snapshot_id(ratings))]
    if stray:
        raise RuntimeError(f"{lake} holds other snapshots too ({', '.join(stray)}): remove that folder")
    return os.path.join(lake, "landing")


def _triple(a: dict, b: dict, c: dict, key: str) -> str:
    return " / ".join(f"{x[key]:.1f}" for x in (a, b, c))


def run(sizes: list[int]) -> tuple[list[Metric], list[str]]:
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        raise ValueError(f"no generator shape for {unknown} ratings; sizes: {', '.join(map(str, SIZES))}")
    metrics, heaps, rates = [], [], {}
    for ratings in sizes:
        tag = label(ratings)
        raw_root = prepare(ratings)
        conf = generator_conf(ratings)
        print(f"  {tag}: our full_load, then the floor (csv → delta), each in a fresh JVM", flush=True)
        ours = run_case("bench.batch:full_load", os.path.join(WORK, "batch-ours"), conf, raw_root=raw_root)
        bare = run_case("bench.batch:floor", os.path.join(WORK, "batch-floor"), conf, raw_root=raw_root)
        tagged = run_case("bench.batch:floor", os.path.join(WORK, "batch-floor-meta"), conf, raw_root=raw_root,
                          with_metadata=True)
        if not ours["loaded"] == bare["rows"] == tagged["rows"]:
            raise RuntimeError(f"{tag}: our job loaded {ours['loaded']} rows, the floor {bare['rows']}")
        ours_rate, floor_rate = ours["rows"] / ours["seconds"], bare["rows"] / bare["seconds"]
        tagged_rate = tagged["rows"] / tagged["seconds"]
        ratio, rss = ours_rate / floor_rate, gib(ours["jvm_peak_rss_bytes"])
        print(f"  {tag}: ours {ours_rate:,.0f} rows/s, floor {floor_rate:,.0f} rows/s, ratio {ratio:.3f} "
              f"(floor + metadata {tagged_rate:,.0f} rows/s); peak RSS {rss:.2f} GiB", flush=True)
        metrics += [
            Metric("batch", f"{tag}: input rows (4 files)", ours["rows"], "rows"),
            Metric("batch", f"{tag}: rows/s, ours (full_load)", round(ours_rate), "rows/s"),
            Metric("batch", f"{tag}: rows/s, floor (csv → delta)", round(floor_rate), "rows/s"),
            Metric("batch", f"{tag}: ours / floor", round(ratio, 3), "ratio", f">= {RATIO_TARGET}",
                   ratio >= RATIO_TARGET),
            Metric("batch", f"{tag}: rows/s, floor + our 3 ingest metadata columns (reference)", round(tagged_rate),
                   "rows/s"),
            Metric("batch", f"{tag}: ours / (floor + metadata)", round(ours_rate / tagged_rate, 3), "ratio",
                   f">= {METADATA_RATIO_TARGET}", ours_rate / tagged_rate >= METADATA_RATIO_TARGET),
            Metric("batch", f"{tag}: driver JVM peak RSS, ours", round(rss, 2), "GiB", f"<= {RSS_TARGET_GIB}",
                   rss <= RSS_TARGET_GIB),
            Metric("batch", f"{tag}: driver JVM peak RSS, floor", round(gib(bare["jvm_peak_rss_bytes"]), 2), "GiB"),
            Metric("batch", f"{tag}: wall time, ours / floor / floor + metadata", _triple(ours, bare, tagged, "seconds"),
                   "s"),
            Metric("batch", f"{tag}: driver JVM CPU time, ours / floor / floor + metadata",
                   _triple(ours, bare, tagged, "cpu_s"), "s"),
            Metric("batch", f"{tag}: cores other processes kept busy, ours / floor / floor + metadata",
                   _triple(ours, bare, tagged, "other_cores"), "cores"),
        ]
        heaps.append(gib(ours["jvm_max_heap_bytes"]))
        rates[ratings] = ours_rate
    if 10_000_000 in rates and 100_000_000 in rates:
        linear = rates[100_000_000] / rates[10_000_000]
        metrics.append(Metric("batch", "rows/s at 100M / rows/s at 10M, ours", round(linear, 3), "ratio",
                              f">= {LINEAR_TARGET}", linear >= LINEAR_TARGET))
    shapes = "; ".join(f"{label(r)}: {SIZES[r][0]:,} users × {SIZES[r][1]:,} movies" for r in sizes)
    notes = [f"Local mode (`local[*]`, {os.cpu_count()} cores), spark.driver.memory={DRIVER_MEMORY} (the JVM "
             f"reported a {max(heaps):.2f} GiB heap limit); each case runs in a fresh Python + JVM, so peaks never "
             "mix. Peak RSS: VmHWM of the driver JVM, from /proc. Times cover the job only, not the JVM start; ours "
             "is the job as `lakejobs run full_load` runs it: sensor, header check, bronze and quarantine "
             "overwrites per file, reconciliation with the landing manifest, ledger row.",
             f"Generated data (seed {SEED}, {TAGS:,} tags; {shapes}) is landed once into bench/.data and reused.",
             "The issue sets the targets at 10M; at 1M the fixed cost of each Delta commit weighs more (ours "
             "makes 9 commits, the floor 4). `floor + metadata` is the bare load writing our three ingest "
             "columns too: against it, what classifying every line costs; against the bare floor, what the "
             "bronze contract costs on top.",
             "Our job reads each file twice (three times when it has malformed lines; the generated data has "
             "none): a first pass parses and checks every line and writes nothing, so that a file changed since "
             "landing, an expect_or_fail rule or sources.max_bad_fraction stops the load with nothing committed; "
             "the second classifies the lines again and writes bronze, counting them by an observation as they "
             "stream past. Delta's public API has no way to write files and commit them after a check, so a load "
             "that refuses before it commits reads its input twice."]
    return metrics, notes
