"""The Airflow DAG of conf/pipeline.yaml (its `airflow:` section: schedule, retries, env overlay, which
tasks wait for the raw zone), generated the way jobs/runners/bundle.py generates the Databricks job.

    python -m jobs.runners.airflow_dag            # write dags/lakejobs_pipeline.py (`make airflow-dag`)
    python -m jobs.runners.airflow_dag --check    # exit 1 when that file is not what conf/pipeline.yaml gives
"""
from __future__ import annotations

import datetime
import os
import sys
from dataclasses import dataclass

from common.config import ENVIRONMENTS, load_config, read_conf_file
from common.errors import ConfigError
from common.raw_zone import MAX_POLL_S
from jobs.runners import registry
from jobs.runners.cli import NOT_YET
from jobs.runners.pipeline import Task, generated_file_main, load_tasks, run_order

DAG_FILE = os.path.join("dags", "lakejobs_pipeline.py")
DAG_ID = "lakejobs_pipeline"
SENSOR_TASK = "raw_zone_landed"


@dataclass(frozen=True)
class Schedule:
    """The `airflow:` section of conf/pipeline.yaml."""

    env: str
    schedule: str | None
    start_date: str
    retries: int
    retry_delay_s: int
    raw_zone_sensor: list[str]


def load_schedule(tasks: dict[str, Task]) -> Schedule:
    spec = read_conf_file("pipeline.yaml").get("airflow") or {}
    known = set(Schedule.__dataclass_fields__)
    if set(spec) != known:
        raise ConfigError(f"conf/pipeline.yaml: the airflow section needs exactly {', '.join(sorted(known))}; "
                          f"unknown: {', '.join(sorted(set(spec) - known)) or '-'}, "
                          f"missing: {', '.join(sorted(known - set(spec))) or '-'}")
    schedule = Schedule(**spec)
    if schedule.env not in ENVIRONMENTS:
        raise ConfigError(f"conf/pipeline.yaml: airflow.env '{schedule.env}' is not one of {', '.join(ENVIRONMENTS)}")
    datetime.date.fromisoformat(str(schedule.start_date))
    for name in schedule.raw_zone_sensor:
        if name not in tasks:
            raise ConfigError(f"conf/pipeline.yaml: airflow.raw_zone_sensor names unknown task '{name}'")
    return schedule


HEADER = '''\
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
SPARK_ENV = {{"PYSPARK_PYTHON": PYTHON, "PYSPARK_DRIVER_PYTHON": PYTHON}}
# The overlay is a DAG param (a run's conf {{"env": "test"}} picks another); the logical date goes to the
# ledger row. A run triggered without a logical date (Airflow 3 allows it) records none.
ARGS = " --env {{{{ params.env }}}}{{% if dag_run.logical_date %}} --logical-date {{{{ ds }}}}{{% endif %}}"
# A dated task builds the one day it is given. It gets the date only in a backfill's runs (airflow backfill
# create), as `lakejobs backfill` gives it; in a scheduled or manual run it gets none and rebuilds every day
# whose inputs changed since its last run, late events included (jobs/batch/daily.py).
DATED_ARGS = (" --env {{{{ params.env }}}}{{% if dag_run.logical_date and dag_run.run_type == 'backfill' %}}"
              " --logical-date {{{{ ds }}}}{{% endif %}}")
DATED = {dated!r}
NOT_YET = {not_yet}  # `lakejobs sense`: not complete yet


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
        look = subprocess.run([LAKEJOBS, "sense", "--env", context["params"]["env"], "--waited", f"{{waited:.1f}}"],
                              cwd=PROJECT, env={{**os.environ, **SPARK_ENV}}, capture_output=True, text=True)
        self.log.info("%s", (look.stdout + look.stderr).strip())
        if look.returncode in (0, NOT_YET):
            return look.returncode == 0
        raise AirflowFailException((look.stderr.strip().splitlines() or [f"lakejobs sense: exit {{look.returncode}}"])[-1])


with DAG(
    dag_id="{dag_id}",
    description="The lakejobs pipeline of conf/pipeline.yaml: batch layer, speed layer (availableNow), recommender.",
    schedule={schedule!r},
    start_date=pendulum.datetime({start.year}, {start.month}, {start.day}, tz="UTC"),
    catchup=False,  # past days run only when asked: airflow backfill create
    max_active_runs=1,  # one writer per streaming checkpoint and per table
    # Every job is idempotent (same inputs, same tables), so a failed task is simply run again.
    default_args={{"retries": {retries}, "retry_delay": timedelta(seconds={retry_delay_s})}},
    params={{"env": Param({env!r}, enum={environments!r}, description="lakejobs configuration overlay (--env)")}},
    tags=["lakejobs"],
) as dag:
    # Airflow's timeout is only a backstop; the poke interval and its doubling up to {max_poll:g} s are those
    # of lakejobs' own sensor (sensor.poll_s of the {env} overlay).
    {sensor} = RawZoneSensor(
        task_id="{sensor}", mode="reschedule", poke_interval={poll_s!r}, exponential_backoff=True,
        max_wait=timedelta(seconds={max_poll:g}), timeout=timedelta(days=1).total_seconds(), retries=0)
'''


def render(tasks: dict[str, Task] | None = None) -> str:
    tasks = load_tasks() if tasks is None else tasks
    plan = load_schedule(tasks)
    start = datetime.date.fromisoformat(str(plan.start_date))
    lines = [HEADER.format(
        not_yet=NOT_YET, dated=registry.DATED, dag_id=DAG_ID, schedule=plan.schedule, start=start, retries=plan.retries,
        retry_delay_s=plan.retry_delay_s, env=plan.env, environments=list(ENVIRONMENTS), sensor=SENSOR_TASK,
        poll_s=load_config(plan.env, environ={})["sensor.poll_s"], max_poll=MAX_POLL_S)]
    order = run_order({name: task.depends_on for name, task in tasks.items()})
    for name in order:
        lines.append(f"    {name} = lakejobs_run({', '.join(repr(a) for a in [name, *tasks[name].conf_args()])})")
    for name in order:
        upstream = tasks[name].depends_on + ([SENSOR_TASK] if name in plan.raw_zone_sensor else [])
        if upstream:
            lines.append(f"    [{', '.join(upstream)}] >> {name}")
    sensed_after = sorted({dep for name in plan.raw_zone_sensor for dep in tasks[name].depends_on})
    if sensed_after:
        lines.append(f"    [{', '.join(sensed_after)}] >> {SENSOR_TASK}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    return generated_file_main(argv, __doc__.splitlines()[0], DAG_FILE, render, "airflow-dag",
                               f"{len(load_tasks())} tasks and the sensor {SENSOR_TASK}")


if __name__ == "__main__":
    sys.exit(main())
