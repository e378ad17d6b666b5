"""`lakejobs status` and `lakejobs history` on a lake the tiny pipeline built: every fact checked
against the ledger, the Delta tables, the stream's landing zone and the MLflow registry, read
another way; the exit status on a failed task and on a stale table."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess

import pytest
from mlflow.tracking import MlflowClient
from pyspark.sql import functions as F

from common import tables, tracking
from common.catalogue import GOLD_MOVIE_STATS_BATCH, STATE_LEDGER
from common.errors import SensorTimeout, UnknownJobError
from jobs.runners import pipeline
from jobs.ops import status, status_text
from jobs.runners.runner import run_job
from jobs.speed.simulate import events_dir
from tests.conftest import LAKEJOBS, PIPELINE_CONF

# The settings of the suite's pipeline run: half the ratings held back, the pipeline replayed 2,000 of
# them (its simulate task), the tests stream some of the rest.
TINY = PIPELINE_CONF


def lakejobs(cfg, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([LAKEJOBS, *args, "--env", "test", "--conf", f"lake.root={cfg['lake.root']}"],
                          capture_output=True, text=True, timeout=600)


@pytest.fixture
def lake(cfg, pipeline_run):
    """A copy of the lake of the suite's one `lakejobs pipeline` run (tests/conftest.py), for a test to change."""
    shutil.copytree(pipeline_run.finished()[0], cfg["lake.root"], symlinks=True)
    return cfg.with_overrides(TINY)


def args(command: str, **kw) -> argparse.Namespace:
    return argparse.Namespace(command=command, json=kw.pop("json", False), **kw)


@pytest.mark.slow
def test_status_json_reports_what_the_ledger_tables_stream_and_registry_hold(spark, lake):
    done = lakejobs(lake, "status", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["problems"] == []
    # Tasks: one per pipeline task, each with its newest ledger row.
    ledger = tables.read(spark, lake, STATE_LEDGER.name)
    newest = {r.job: r for r in ledger.orderBy("started_at").collect()}
    assert [t["task"] for t in report["tasks"]] == list(pipeline.load_tasks())
    for task in report["tasks"]:
        row = newest[task["task"]]
        assert (task["run_id"], task["status"]) == (row.run_id, "succeeded")
        assert task["rows_out"] == (sum(t.rows for t in row.writes if t.rows is not None) if row.writes else None)
        assert task["seconds"] == pytest.approx((row.ended_at - row.started_at).total_seconds())
    # Tables: every Delta table of the lake with its current version and row count.
    assert sorted(t["table"] for t in report["tables"]) == sorted(tables.known_tables(lake))
    for t in report["tables"]:
        assert t["version"] == tables.current_version(spark, lake, t["table"]).version
        assert t["rows"] == tables.read(spark, lake, t["table"]).count()
    # Stream: every landed event merged, the last micro-batch the checkpoint's last commit.
    stream = report["stream"]
    assert (stream["pending_files"], stream["pending_events"]) == (0, 0)
    commits = os.listdir(os.path.join(lake["lake.root"], "state", "checkpoints", lake["stream.query_name"], "commits"))
    assert stream["last_batch"] == max(int(n) for n in commits if n.isdigit())
    # Model: the registry's champion.
    uri, _ = tracking.embedded_store(lake)
    champion = tracking.champion(MlflowClient(uri, uri), lake["ml.model_name"])
    assert report["model"]["version"] == int(champion.version) and report["model"]["run_id"] == champion.run_id
    logged = MlflowClient(uri).get_run(champion.run_id).data.metrics
    assert report["model"]["metrics"] == pytest.approx({k: v for k, v in logged.items() if not k.startswith("seconds_")},
                                                       rel=0, abs=0, nan_ok=True)


def test_status_text_counts_landed_events_not_merged_yet(spark, lake, capsys):
    landed = set(os.listdir(events_dir(lake)))
    run_job(spark, lake.with_overrides({"simulator.max_events": 250}), "simulate")
    new_files = sorted(set(os.listdir(events_dir(lake))) - landed)
    lines = [line for f in new_files for line in open(os.path.join(events_dir(lake), f)).read().splitlines()]
    assert len(new_files) == 3 and len(lines) == 250
    assert status_text.command(spark, lake, args("status")) == 0
    text = capsys.readouterr().out
    report = status.gather(spark, lake)
    assert (report["stream"]["pending_files"], report["stream"]["pending_events"]) == (3, 250)
    assert "landed, not merged yet: 3 files, 250 events" in text
    for name in ("extract", "speed", "train", "score"):
        assert any(line.startswith(f"{name:<12} succeeded ") for line in text.splitlines()), text
    assert "model movielens_als: champion v" in text and text.rstrip().endswith("OK")


@pytest.mark.slow
def test_status_exits_1_naming_a_task_whose_last_run_failed(spark, lake):
    with pytest.raises(SensorTimeout):
        run_job(spark, lake.with_overrides({"raw.snapshot": "nosuch", "sensor.timeout_s": 0.5, "sensor.poll_s": 0.1}),
                "full_load")
    done = lakejobs(lake, "status")
    assert done.returncode == 1, done.stdout + done.stderr
    problems = done.stdout[done.stdout.index("PROBLEMS:"):].splitlines()[1:]
    assert len(problems) == 1 and problems[0].startswith("  task full_load: its last run failed at "), done.stdout
    assert "SensorTimeout" in problems[0]
    run_job(spark, lake, "full_load")  # fixed: the newest run succeeded
    assert status_text.command(spark, lake, args("status")) == 0


def test_status_exits_1_naming_a_stale_table(spark, lake, capsys):
    strict = lake.with_overrides({"status.max_age_h": 1e-6, "status.fresh_tables": [GOLD_MOVIE_STATS_BATCH.name]})
    assert status_text.command(spark, strict, args("status")) == 1
    problems = capsys.readouterr().out.split("PROBLEMS:\n")[1].splitlines()
    assert len(problems) == 1 and problems[0].startswith("  table gold.movie_stats_batch: last written ")
    assert problems[0].endswith("h ago, status.max_age_h is 1e-06")
    missing = lake.with_overrides({"status.fresh_tables": ["gold.nosuch"]})
    assert status.gather(spark, missing)["problems"] == ["table gold.nosuch: not in the lake"]
    assert status_text.command(spark, lake, args("status")) == 0  # the default limit (26 h) holds


def test_history_lists_a_tasks_runs_newest_first(spark, lake, capsys):
    run_job(spark, lake, "gold")
    ledger = tables.read(spark, lake, STATE_LEDGER.name)
    expected = [r.run_id for r in ledger.where("job = 'gold'").orderBy(F.col("started_at").desc()).collect()]
    assert len(expected) == 2
    assert status_text.command(spark, lake, args("history", task="gold", limit=5, json=True)) == 0
    assert [r["run_id"] for r in json.loads(capsys.readouterr().out)] == expected
    assert status_text.command(spark, lake, args("history", task="gold", limit=1)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[1].split()[2:4] == ["gold", "succeeded"] and lines[1].split()[-1] == expected[0]
    assert status_text.command(spark, lake, args("history", task=None, limit=1000, json=True)) == 0
    assert len(json.loads(capsys.readouterr().out)) == ledger.count()
    with pytest.raises(UnknownJobError, match="unknown job 'nosuch'"):
        status_text.command(spark, lake, args("history", task="nosuch", limit=5))
