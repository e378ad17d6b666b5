"""The pipeline under a real Apache Airflow (its own virtualenv, .airflow/venv, installed by make when
missing): the generated DAG, its sensor, a whole run beside `lakejobs pipeline`, reruns, the REST API;
and the two `lakejobs` pieces Airflow calls (the sensor's look, the logical date in the ledger)."""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from datetime import date

import pytest
import requests
from chispa import assert_df_equality

from common import tables
from common.catalogue import (BRONZE_RATING_EVENTS, BRONZE_RATINGS, GOLD_MOVIE_STATS_BATCH, GOLD_MOVIE_STATS_REALTIME,
                              GOLD_RECOMMENDATION_CANDIDATES, GOLD_RECOMMENDATIONS, SILVER_RATINGS)
from common.config import load_config
from common.local import airflow_server, servers
from common.ledger import LEDGER_TABLE
from jobs.runners import airflow_dag, cli, registry
from jobs.runners.pipeline import load_tasks
from tests.conftest import LAKEJOBS, PIPELINE_ENV, REPO



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

DAG_RUN_DATE, SENSOR_RUN_DATE = "2026-01-06", "2026-01-07"
STREAM = PIPELINE_ENV  # as the suite's `lakejobs pipeline` run, which a DAG run is compared with


def airflow(home, *args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return airflow_server.cli(list(args), str(home), env=env, capture_output=True, text=True, timeout=timeout)


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
    check = subprocess.run([sys.executable, "-m", "jobs.runners.airflow_dag", "--check"], cwd=REPO, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr  # else: `make airflow-dag`, and commit the result


def test_the_dag_imports_in_a_dagbag_with_the_pipelines_tasks_edges_and_settings(airflow_home):
    shown = airflow_python(airflow_home, DESCRIBE_DAG, airflow_server.DAGS, airflow_dag.DAG_ID)
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
        when = "dag_run.logical_date and dag_run.run_type == 'backfill'" if name in registry.DATED else "dag_run.logical_date"
        assert template == f"{{{{ params.env }}}}{{% if {when} %}} --logical-date {{{{ ds }}}}{{% endif %}}"
        program, *argv = shlex.split(command)
        assert program == LAKEJOBS  # the project's console script, the entry point of every runner
        args = cli._parser().parse_args([*argv, "--env", plan.env, "--logical-date", DAG_RUN_DATE])
        assert (args.command, args.job) == ("run", name) and argv[2:] == tasks[name].conf_args()
        load_config(args.env, args.conf)  # the settings it passes exist and have the right types


def airflow_python(home, script: str, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([os.path.join(os.path.dirname(airflow_server.AIRFLOW), "python"), "-c", script, *args],
                          env={**os.environ, **airflow_server.settings(str(home), 8080)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def lake_cfg(lake: str):
    return load_config("test", [f"lake.root={lake}"])


def data_tables(spark, lake: str) -> list[str]:
    return [name for name in tables.known_tables(lake_cfg(lake)) if name != LEDGER_TABLE]


# Differ between two lakes built from the same data: times of loading, and paths that name the lake.
PER_LAKE_COLUMNS = {"_ingested_at", "_source_file", "recorded_at", "built_at"}


def assert_same_data(left, right, name: str) -> None:
    if name in (GOLD_RECOMMENDATION_CANDIDATES.name, GOLD_RECOMMENDATIONS.name):
        # Two ALS fits in two processes agree only to the last digits of a score, which reorders
        # near-ties: the same users, served by the same source, with as many movies each.
        per_user = ["userId", "source"]
        assert_df_equality(left.groupBy(per_user).count(), right.groupBy(per_user).count(), ignore_row_order=True)
        return
    keep = [c for c in left.columns if c not in PER_LAKE_COLUMNS]
    assert_df_equality(left.select(keep), right.select(keep), ignore_row_order=True, ignore_nullable=True)


@pytest.fixture(scope="module")
def dag_run(airflow_home, pipeline_run, tmp_path_factory) -> tuple[str, str]:
    """One whole run of the DAG by `airflow dags test` (every task, sensor included, in dependency
    order) on the generator's tiny data; returns its lake and its Airflow output. Asks for the suite's
    `lakejobs pipeline` run first, so that the two run side by side."""
    lake = str(tmp_path_factory.mktemp("airflow_lake") / "lake")
    done = airflow(airflow_home, "dags", "test", airflow_dag.DAG_ID, DAG_RUN_DATE, "-c", json.dumps({"env": "test"}),
                   env={"LAKEJOBS__LAKE__ROOT": lake, **STREAM}, timeout=3600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    return lake, done.stdout + done.stderr


@pytest.mark.slow
def test_a_whole_dag_run_leaves_the_tables_lakejobs_pipeline_leaves(spark, pipeline_run, dag_run):
    lake, _ = dag_run
    reference, _, _ = pipeline_run.finished()  # started before the DAG run (see dag_run), it ran beside it
    names = data_tables(spark, reference)
    assert data_tables(spark, lake) == names
    assert {t.name for t in (BRONZE_RATINGS, SILVER_RATINGS, GOLD_MOVIE_STATS_BATCH, BRONZE_RATING_EVENTS,
                             GOLD_MOVIE_STATS_REALTIME, GOLD_RECOMMENDATION_CANDIDATES)} <= set(names)
    for name in names:
        assert_same_data(tables.read(spark, lake_cfg(lake), name), tables.read(spark, lake_cfg(reference), name), name)
    ledger = tables.read(spark, lake_cfg(lake), LEDGER_TABLE).select("job", "status", "logical_date").collect()
    # A manual run: the dated task (daily) gets no logical date and builds every changed day, as the pipeline does.
    assert sorted(tuple(r) for r in ledger) == sorted(
        (job, "succeeded", None if job in registry.DATED else date.fromisoformat(DAG_RUN_DATE)) for job in load_tasks())


@pytest.mark.slow
def test_the_sensor_waits_in_reschedule_mode_then_fails_with_our_line_when_nothing_landed(airflow_home, tmp_path):
    lake = str(tmp_path / "lake")  # nothing landed: extract is marked done without running
    done = airflow(airflow_home, "dags", "test", airflow_dag.DAG_ID, SENSOR_RUN_DATE, "-c", json.dumps({"env": "test"}),
                   "--mark-success-pattern", "extract",
                   env={"LAKEJOBS__LAKE__ROOT": lake, "LAKEJOBS__SENSOR__TIMEOUT_S": "4"}, timeout=900)
    out = done.stdout + done.stderr
    assert done.returncode != 0 and "DagRun failed" in out, out[-3000:]
    ours = (f"lakejobs: error: sensor gave up after 4s: no snapshot is complete in {lake}/landing/movielens "
            f"(no {lake}/landing/movielens/<snapshot>/_SUCCESS.json marker); run the extract job first, "
            "or raise sensor.timeout_s")
    assert f"AirflowFailException: {ours}" in out
    assert "new_state=up_for_reschedule" in out  # it let its worker go between looks
    states = airflow(airflow_home, "tasks", "states-for-dag-run", airflow_dag.DAG_ID, run_id(out), "-o", "json")
    by_task = {t["task_id"]: t["state"] for t in json.loads(states.stdout)}
    assert by_task[airflow_dag.SENSOR_TASK] == "failed" and by_task["full_load"] == "upstream_failed"
    assert not os.path.exists(lake + "/bronze")  # nothing downstream ran


@pytest.mark.slow
def test_a_task_run_again_for_the_same_logical_date_changes_no_data(spark, airflow_home, dag_run):
    """What clearing a finished task in the UI does, by Airflow's own `tasks test` on the same run: a
    batch task and the stream task run again, each adding at most one version and changing no data."""
    lake, output = dag_run
    cfg = lake_cfg(lake)
    before = {name: tables.current_version(spark, cfg, name).version for name in data_tables(spark, lake)}
    ledger_rows = tables.read(spark, cfg, LEDGER_TABLE).count()
    for task in ("full_load", "speed"):
        done = airflow(airflow_home, "tasks", "test", airflow_dag.DAG_ID, task, run_id(output),
                       "-t", json.dumps({"env": "test"}), env={"LAKEJOBS__LAKE__ROOT": lake, **STREAM}, timeout=1800)
        assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    for name, version in before.items():
        after = tables.current_version(spark, cfg, name).version
        assert after - version <= 1, f"{name}: {after - version} new versions"
        assert_same_data(tables.read(spark, cfg, name, after), tables.read(spark, cfg, name, version), name)
    reruns = tables.read(spark, cfg, LEDGER_TABLE).orderBy("started_at").select("job", "status", "logical_date") \
        .collect()[ledger_rows:]
    assert [tuple(r) for r in reruns] == [(job, "succeeded", date.fromisoformat(DAG_RUN_DATE))
                                          for job in ("full_load", "speed")]


def run_id(airflow_output: str) -> str:
    (found,) = set(re.findall(r"run_id=(manual__[^,\s]+)", airflow_output))
    return found


@pytest.fixture(scope="module")
def running_airflow(airflow_home, dag_run):
    """`airflow standalone` (API server and UI, scheduler, DAG processor) on a free port, on the home
    that holds the finished run of dag_run; its tasks would run on that run's lake. Stopped after."""
    lake, _ = dag_run
    # No runs of the schedule: unpausing would start the latest daily one at once (catchup=False), with
    # the default overlay on this lake, ahead of the run the tests clear.
    no_schedule = {"AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"}
    url = airflow_server.up(str(airflow_home), servers.free_port(),
                           env={"LAKEJOBS__LAKE__ROOT": lake, **STREAM, **no_schedule})
    try:
        wait_until(lambda: requests.get(f"{url}/api/v2/monitor/health", timeout=10).ok, 180, "the API's health")
        yield url
    finally:
        airflow_server.down(str(airflow_home))


def api(url: str, method: str, path: str, **body) -> dict:
    answer = requests.request(method, f"{url}/api/v2{path}", json=body or None, timeout=60)
    assert answer.ok, f"{method} {path}: {answer.status_code} {answer.text[:2000]}"
    return answer.json()


def wait_until(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if condition():
                return
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, f"gave up waiting for {what} after {timeout_s:g}s"
        time.sleep(2)


@pytest.mark.slow
def test_the_rest_api_of_a_running_airflow_answers_for_the_dag_and_the_finished_runs_task_states(running_airflow):
    dag = api(running_airflow, "GET", f"/dags/{airflow_dag.DAG_ID}")
    assert dag["dag_id"] == airflow_dag.DAG_ID and dag["tags"][0]["name"] == "lakejobs"
    runs = api(running_airflow, "GET", f"/dags/{airflow_dag.DAG_ID}/dagRuns")["dag_runs"]
    (run,) = [r for r in runs if r["logical_date"].startswith(DAG_RUN_DATE)]
    assert (run["state"], run["conf"]) == ("success", {"env": "test"})
    tis = api(running_airflow, "GET", f"/dags/{airflow_dag.DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances")
    assert {t["task_id"]: t["state"] for t in tis["task_instances"]} == {
        name: "success" for name in [*load_tasks(), airflow_dag.SENSOR_TASK]}
