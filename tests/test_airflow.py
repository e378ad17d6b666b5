"""The pipeline under a real Apache Airflow (its own virtualenv, .airflow/venv, installed by make when
missing): the generated DAG, its sensor, a whole run beside `lakejobs pipeline`, reruns, the REST API;
and the two `lakejobs` pieces Airflow calls (the sensor's look, the logical date in the ledger)."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from datetime import date

import pytest

from common import local_airflow, tables
from common.config import load_config
from common.ledger import LEDGER_TABLE
from jobs import airflow_dag, cli
from jobs.pipeline import load_tasks
from tests.conftest import REPO

LAKEJOBS = os.path.join(os.path.dirname(sys.executable), "lakejobs")


def lakejobs(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([LAKEJOBS, *args], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, **(env or {})))


def test_a_run_keeps_its_logical_date_in_its_ledger_row(spark, cfg, lake):
    assert cli.main(["run", "extract", "--env", "test", "--conf", f"lake.root={lake}",
                     "--logical-date", "2026-01-05"]) == 0
    assert cli.main(["run", "extract", "--env", "test", "--conf", f"lake.root={lake}"]) == 0
    rows = tables.read(spark, cfg, LEDGER_TABLE).orderBy("started_at").select("job", "logical_date").collect()
    assert [tuple(r) for r in rows] == [("extract", date(2026, 1, 5)), ("extract", None)]


def test_a_logical_date_that_is_no_date_is_one_line():
    done = lakejobs("run", "extract", "--logical-date", "2026-13-01")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "argument --logical-date: invalid fromisoformat value: '2026-13-01'" in done.stderr.splitlines()[-1]


def test_one_look_of_the_sensor_says_not_yet_then_times_out_with_our_line_then_finds_the_snapshot(lake):
    conf = ["--env", "test", "--conf", f"lake.root={lake}", "--conf", "sensor.timeout_s=30"]
    early = lakejobs("sense", *conf, "--waited", "29.5")
    assert early.returncode == cli.NOT_YET, early.stderr
    assert early.stdout.strip() == "raw zone: snapshot latest not complete yet (29.5s of 30s)"
    late = lakejobs("sense", *conf, "--waited", "30")
    assert late.returncode == 2 and late.stdout == ""
    assert late.stderr == (f"lakejobs: error: sensor gave up after 30s: no snapshot is complete in {lake}/landing/"
                           f"movielens (no {lake}/landing/movielens/<snapshot>/_SUCCESS.json marker); run the "
                           "extract job first, or raise sensor.timeout_s\n")
    assert lakejobs("run", "extract", *conf).returncode == 0
    found = lakejobs("sense", *conf, "--waited", "1000")
    assert found.returncode == 0, found.stderr
    assert found.stdout.startswith("snapshot ") and found.stdout.strip().endswith(" is complete")


# ---- Airflow itself: its own virtualenv, a metadata DB in a temporary AIRFLOW_HOME per module ----

DAG_RUN_DATE = "2026-01-06"


def airflow(home, *args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return local_airflow.cli(list(args), str(home), env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory):
    """A fresh Airflow home (sqlite) with the project's DAG folder; `make airflow-env` first, which
    installs Airflow's own virtualenv on a fresh clone and does nothing once it is there."""
    made = subprocess.run(["make", "-s", "airflow-env"], cwd=REPO, capture_output=True, text=True, timeout=1200)
    assert made.returncode == 0, made.stderr[-3000:]
    home = tmp_path_factory.mktemp("airflow_home")
    migrated = airflow(home, "db", "migrate")
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    return home


DESCRIBE_DAG = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
dag = bag.dags.get(sys.argv[2])
print(json.dumps({"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": sorted(bag.dags),
    "schedule": dag and dag.schedule, "params": dag and dag.params.dump(),
    "tasks": dag and {t.task_id: {"upstream": sorted(t.upstream_task_ids), "type": type(t).__name__,
                                  "retries": t.retries, "mode": getattr(t, "mode", None),
                                  "command": getattr(t, "bash_command", None), "cwd": getattr(t, "cwd", None)}
                      for t in dag.tasks}}))
"""


def test_the_committed_dag_file_is_what_conf_pipeline_yaml_gives():
    check = subprocess.run([sys.executable, "-m", "jobs.airflow_dag", "--check"], cwd=REPO, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr  # else: `make airflow-dag`, and commit the result


def test_the_dag_imports_in_a_dagbag_with_the_pipelines_tasks_edges_and_settings(airflow_home):
    shown = airflow_python(airflow_home, DESCRIBE_DAG, local_airflow.DAGS, airflow_dag.DAG_ID)
    dag = json.loads(shown.stdout.splitlines()[-1])
    assert dag["errors"] == {} and dag["dags"] == [airflow_dag.DAG_ID]
    tasks, plan = load_tasks(), airflow_dag.load_schedule(load_tasks())
    assert set(dag["tasks"]) == set(tasks) | {airflow_dag.SENSOR_TASK}
    sensed = set(plan.raw_zone_sensor)
    assert {name: t["upstream"] for name, t in dag["tasks"].items() if name in tasks} == {
        name: sorted(task.depends_on + ([airflow_dag.SENSOR_TASK] if name in sensed else [])) for name, task in tasks.items()}
    sensor = dag["tasks"].pop(airflow_dag.SENSOR_TASK)
    assert (sensor["type"], sensor["mode"]) == ("RawZoneSensor", "reschedule")
    assert sensor["upstream"] == sorted({dep for name in sensed for dep in tasks[name].depends_on}) == ["extract"]
    assert dag["schedule"] == plan.schedule and dag["params"] == {"env": plan.env}
    for name, task in dag["tasks"].items():
        assert (task["type"], task["retries"], task["cwd"]) == ("BashOperator", plan.retries, REPO)
        command, _, template = task["command"].partition(" --env ")
        assert template == "{{ params.env }}{% if dag_run.logical_date %} --logical-date {{ ds }}{% endif %}"
        program, *argv = shlex.split(command)
        assert program == LAKEJOBS  # the project's console script, the entry point of every runner
        args = cli._parser().parse_args([*argv, "--env", plan.env, "--logical-date", DAG_RUN_DATE])
        assert (args.command, args.job) == ("run", name) and argv[2:] == tasks[name].conf_args()
        load_config(args.env, args.conf)  # the settings it passes exist and have the right types


def airflow_python(home, script: str, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([os.path.join(os.path.dirname(local_airflow.AIRFLOW), "python"), "-c", script, *args],
                          env={**os.environ, **local_airflow.settings(str(home), 8080)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done

