# Generated from conf/pipeline.yaml by `make airflow-dag` (python -m jobs.runners.airflow_dag): do not edit by hand.
"""The lakejobs pipeline of conf/pipeline.yaml as an Airflow DAG: one task per pipeline task, each the
project's own `lakejobs run <job>` (BashOperator: the same console script every runner calls, so no Spark
provider and no Spark in Airflow's environment), and a raw-zone sensor in reschedule mode."""
from __future__ import annotations

import os
import shlex
import subprocess
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, BaseSensorOperator, Param
from airflow.sdk.exceptions import AirflowFailException

# The project this file lives in: its .venv runs the jobs, and its folder is their working directory
# (so a relative lake.root is the same lake `make run` builds).
PROJECT = Path(__file__).resolve().parents[1]
PYTHON = str(PROJECT / ".venv" / "bin" / "python")
LAKEJOBS = str(PROJECT / ".venv" / "bin" / "lakejobs")
SPARK_ENV = {"PYSPARK_PYTHON": PYTHON, "PYSPARK_DRIVER_PYTHON": PYTHON}
# The overlay is a DAG param (a run's conf {"env": "test"} picks another); the logical date goes to the
# ledger row. A run triggered without a logical date (Airflow 3 allows it) records none.
ARGS = " --env {{ params.env }}{% if dag_run.logical_date %} --logical-date {{ ds }}{% endif %}"
# A dated task builds the one day it is given. It gets the date only in a backfill's runs (airflow backfill
# create), as `lakejobs backfill` gives it; in a scheduled or manual run it gets none and rebuilds every day
# whose inputs changed since its last run, late events included (jobs/batch/daily.py).
DATED_ARGS = (" --env {{ params.env }}{% if dag_run.logical_date and dag_run.run_type == 'backfill' %}"
              " --logical-date {{ ds }}{% endif %}")
DATED = ('daily',)
NOT_YET = 3  # `lakejobs sense`: not complete yet


def lakejobs_run(job: str, *conf: str) -> BashOperator:
    args = DATED_ARGS if job in DATED else ARGS
    return BashOperator(task_id=job, bash_command=shlex.join([LAKEJOBS, "run", job, *conf]) + args,
                        cwd=str(PROJECT), env=SPARK_ENV, append_env=True,
                        skip_on_exit_code=None)  # a failure is a failure, never a skip


class RawZoneSensor(BaseSensorOperator):
    """Waits for the raw zone's snapshot marker (_SUCCESS.json) with `lakejobs sense`, the sensor of
    common/raw_zone.py, looking once per poke. lakejobs decides the timeout from sensor.timeout_s of the
    run's config, so a timeout fails with its one line, which names the marker."""

    def poke(self, context) -> bool:
        first = context["ti"].get_first_reschedule_date(context)  # reschedule mode: the first poke's start
        waited = (pendulum.now("UTC") - first).total_seconds() if first else 0.0
        look = subprocess.run([LAKEJOBS, "sense", "--env", context["params"]["env"], "--waited", f"{waited:.1f}"],
                              cwd=PROJECT, env={**os.environ, **SPARK_ENV}, capture_output=True, text=True)
        self.log.info("%s", (look.stdout + look.stderr).strip())
        if look.returncode in (0, NOT_YET):
            return look.returncode == 0
        raise AirflowFailException((look.stderr.strip().splitlines() or [f"lakejobs sense: exit {look.returncode}"])[-1])


with DAG(
    dag_id="lakejobs_pipeline",
    description="The lakejobs pipeline of conf/pipeline.yaml: batch layer, speed layer (availableNow), recommender.",
    schedule='0 3 * * *',
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,  # past days run only when asked: airflow backfill create
    max_active_runs=1,  # one writer per streaming checkpoint and per table
    # Every job is idempotent (same inputs, same tables), so a failed task is simply run again.
    default_args={"retries": 2, "retry_delay": timedelta(seconds=120)},
    params={"env": Param('local', enum=['local', 'test', 'cluster', 'databricks', 's3'], description="lakejobs configuration overlay (--env)")},
    tags=["lakejobs"],
) as dag:
    # Airflow's timeout is only a backstop; the poke interval and its doubling up to 30 s are those
    # of lakejobs' own sensor (sensor.poll_s of the local overlay).
    raw_zone_landed = RawZoneSensor(
        task_id="raw_zone_landed", mode="reschedule", poke_interval=1.0, exponential_backoff=True,
        max_wait=timedelta(seconds=30), timeout=timedelta(days=1).total_seconds(), retries=0)

    extract = lakejobs_run('extract')
    full_load = lakejobs_run('full_load')
    simulate = lakejobs_run('simulate', '--conf', 'simulator.max_events=2000')
    silver = lakejobs_run('silver')
    gold = lakejobs_run('gold')
    speed = lakejobs_run('speed', '--conf', 'stream.trigger=available_now')
    daily = lakejobs_run('daily')
    train = lakejobs_run('train')
    score = lakejobs_run('score')
    maintain = lakejobs_run('maintain', '--conf', 'maintain.every_h=24')
    [extract, raw_zone_landed] >> full_load
    [extract, raw_zone_landed] >> simulate
    [full_load] >> silver
    [silver] >> gold
    [simulate, gold] >> speed
    [speed] >> daily
    [speed] >> train
    [train] >> score
    [score, daily] >> maintain
    [extract] >> raw_zone_landed
