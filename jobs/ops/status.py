"""`lakejobs status` and `lakejobs history`: what ran, what the lake holds, how far the stream is and
which model serves, on one screen. The facts are gathered into plain data (what --json prints);
problems and text are computed from them by pure functions (jobs/ops/status_text.py prints them)."""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from common import ledger, paths, tables
from common.config import Config
from common.hadoop_files import HadoopFiles
from jobs.runners import pipeline

FAILED = "failed"


def now_utc() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)  # Spark hands back naive UTC timestamps


def ledger_runs(spark: SparkSession, cfg: Config) -> list[dict]:
    """Every run of the ledger, newest first, as plain rows (rows in/out summed over its tables)."""
    if not tables.exists(spark, cfg, ledger.LEDGER_TABLE):
        return []
    runs = tables.read(spark, cfg, ledger.LEDGER_TABLE).orderBy(F.col("started_at").desc()).collect()
    return [run_row(r.asDict(recursive=True)) for r in runs]


def run_row(r: dict) -> dict:
    took = (r["ended_at"] - r["started_at"]).total_seconds() if r["ended_at"] and r["started_at"] else None
    rows = lambda refs: sum(t["rows"] for t in refs or [] if t["rows"] is not None) if refs else None  # noqa: E731
    return {"run_id": r["run_id"], "job": r["job"], "status": r["status"], "started_at": r["started_at"],
            "ended_at": r["ended_at"], "seconds": took, "rows_in": rows(r["reads"]), "rows_out": rows(r["writes"]),
            "logical_date": r.get("logical_date"), "counts": r["counts"] or {}, "error": r["error"]}


def last_runs(runs: list[dict], tasks: list[str]) -> list[dict]:
    """Per task (in pipeline order), its newest run; a task never run has status None."""
    newest: dict[str, dict] = {}
    for run in runs:  # newest first
        newest.setdefault(run["job"], run)
    return [{"task": task, **(newest.get(task) or {"status": None})} for task in tasks]


def history(runs: list[dict], task: str | None, limit: int) -> list[dict]:
    return [r for r in runs if task is None or r["job"] == task][:limit]


def table_facts(spark: SparkSession, cfg: Config) -> list[dict]:
    facts = []
    for name in tables.known_tables(cfg):
        last = tables.delta_table(spark, cfg, name).history(1).select("version", "timestamp", "operation").first()
        facts.append({"table": name, "version": int(last["version"]), "last_write": last["timestamp"],
                      "operation": last["operation"], "rows": tables.read(spark, cfg, name).count()})
    return facts


def stream_facts(spark: SparkSession, cfg: Config) -> dict | None:
    """The stream of stream.query_name: its last micro-batch (from its checkpoint), the events landed
    but not yet read by it (files of the landing zone its source log does not list), its last MERGE."""
    from jobs.speed.simulate import events_dir
    from jobs.speed.speed import SILVER, checkpoint

    folder = checkpoint(cfg)
    files = HadoopFiles(spark, folder)
    commits = {int(n): t for n, t in files.files(paths.join(folder, "commits")).items() if n.isdigit()}
    if not commits and not files.files(paths.join(folder, "offsets")):
        return None
    last = max(commits) if commits else None
    facts = {"query": cfg["stream.query_name"], "last_batch": last,
             "last_batch_at": _from_ms(commits[last]) if last is not None else None,
             "last_merge_at": None, "pending_files": None, "pending_events": None}
    if tables.exists(spark, cfg, SILVER):
        merges = tables.delta_table(spark, cfg, SILVER).history().where("operation = 'MERGE'")
        facts["last_merge_at"] = merges.agg(F.max("timestamp")).first()[0]
    if cfg["stream.source"] == "files":  # a Kafka topic's backlog is the broker's to tell
        landed = HadoopFiles(spark, events_dir(cfg))
        pending = sorted(set(landed.files(events_dir(cfg))) - _source_files(files, folder))
        facts["pending_files"] = len(pending)
        facts["pending_events"] = sum(len(landed.read_text(paths.join(events_dir(cfg), n)).splitlines()) for n in pending)
    return facts


def _source_files(files: HadoopFiles, folder: str) -> set[str]:
    """Names of the files the file source has taken into a micro-batch: its log under sources/0 is one
    file per batch (and a .compact file every few), each line after the first a JSON entry."""
    log, seen = paths.join(folder, "sources", "0"), set()
    for name in files.files(log):
        for line in files.read_text(paths.join(log, name)).splitlines()[1:]:
            if line.strip():
                seen.add(json.loads(line)["path"].rstrip("/").rsplit("/", 1)[-1])
    return seen


def _from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).replace(tzinfo=None)


def model_facts(cfg: Config) -> dict | None:
    """The champion of ml.model_name: its version, metrics and when it was promoted; None when there
    is none (or no MLflow store yet: status does not create one)."""
    from mlflow.tracking import MlflowClient

    from common import tracking

    uri = cfg["ml.tracking_uri"]
    if not uri:
        uri, _ = tracking.embedded_store(cfg)
        if not os.path.exists(uri.removeprefix("sqlite:///")):
            return None
    elif uri.startswith(("http://", "https://")):
        tracking.probe(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=cfg["ml.registry_uri"] or uri)
    version = tracking.champion(client, cfg["ml.model_name"])
    if version is None:
        return None
    run = client.get_run(version.run_id)
    # The gate moves the alias inside the training run that registered the version: when that run
    # ended is when the version became champion.
    return {"name": cfg["ml.model_name"], "version": int(version.version), "run_id": version.run_id,
            "promoted_at": _from_ms(run.info.end_time) if run.info.end_time else None,
            "metrics": {k: v for k, v in sorted(run.data.metrics.items()) if not k.startswith("seconds_")}}


def gather(spark: SparkSession, cfg: Config) -> dict:
    """Everything `lakejobs status` shows, and the problems that make it exit 1."""
    report = {"lake": tables.lake_root(cfg), "checked_at": now_utc(),
              "tasks": last_runs(ledger_runs(spark, cfg), list(pipeline.load_tasks())),
              "tables": table_facts(spark, cfg), "stream": stream_facts(spark, cfg), "model": model_facts(cfg)}
    report["problems"] = problems(report, cfg["status.fresh_tables"], cfg["status.max_age_h"],
                                  cfg["status.max_merge_age_h"])
    return report


def _age_h(then: datetime | None, now: datetime) -> float | None:
    return None if then is None else (now - then).total_seconds() / 3600


def problems(report: dict, fresh_tables: list[str], max_age_h: float, max_merge_age_h: float) -> list[str]:
    """One line per reason a monitor should page: a task whose last run failed, a table of
    fresh_tables missing or older than max_age_h, a stream whose last merge is older than max_merge_age_h."""
    now, found = report["checked_at"], []
    for task in report["tasks"]:
        if task["status"] == FAILED:
            found.append(f"task {task['task']}: its last run failed at {task['ended_at']:%Y-%m-%d %H:%M:%S}: "
                         f"{(task['error'] or '').splitlines()[0] if task['error'] else 'no error recorded'}")
    written = {t["table"]: t["last_write"] for t in report["tables"]}
    for name in fresh_tables if max_age_h > 0 else []:
        age = _age_h(written.get(name), now)
        if age is None:
            found.append(f"table {name}: not in the lake")
        elif age > max_age_h:
            found.append(f"table {name}: last written {age:.1f} h ago, status.max_age_h is {max_age_h:g}")
    stream = report["stream"]
    if max_merge_age_h > 0:
        age = _age_h(stream and stream["last_merge_at"], now)
        if age is None or age > max_merge_age_h:
            found.append(f"stream {stream['query'] if stream else '(none)'}: last merge "
                         f"{'never' if age is None else f'{age:.1f} h ago'}, status.max_merge_age_h is {max_merge_age_h:g}")
    return found


def to_json(data) -> str:
    return json.dumps(data, indent=2, default=lambda v: v.isoformat() + "Z" if isinstance(v, datetime) else str(v))
