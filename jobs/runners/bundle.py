"""The Databricks job of the bundle (databricks.yml), generated from conf/pipeline.yaml: one
python_wheel_task per pipeline task, each calling the `lakejobs` entry point of the wheel with
`run <job> --env databricks`, with the pipeline's depends_on edges and per-task settings.

    python -m jobs.runners.bundle            # write resources/lakejobs_pipeline.job.yml (`make bundle`)
    python -m jobs.runners.bundle --check    # exit 1 when that file is not what conf/pipeline.yaml gives
"""
from __future__ import annotations

import os
import sys

from jobs.runners.pipeline import Task, generated_file_main, load_tasks, run_order

RESOURCE_FILE = os.path.join("resources", "lakejobs_pipeline.job.yml")
JOB_KEY = "lakejobs_pipeline"
CLUSTER_KEY = "lakejobs"
PACKAGE, ENTRY_POINT, ENV = "lakejobs", "lakejobs", "databricks"
WHEEL = "../dist/*.whl"  # relative to the resource file; the bundle's artifact (`make package`) builds it
# Every job is idempotent (same inputs, same tables), so a failed task is simply run again.
RETRIES = {"max_retries": 2, "min_retry_interval_millis": 120_000, "retry_on_timeout": True, "timeout_seconds": 7200}
HEADER = ("# Generated from conf/pipeline.yaml by `make bundle` (python -m jobs.runners.bundle): do not edit by hand.\n"
          "# Cluster size, runtime and schedule are variables of databricks.yml, set per target.\n")


def parameters(name: str, task: Task) -> list[str]:
    """The command line of a task: the same `lakejobs run` every other runner uses."""
    return ["run", name, "--env", ENV, *task.conf_args()]


def job(tasks: dict[str, Task]) -> dict:
    """The job's settings as the Jobs API (and a bundle resource) spells them."""
    order = run_order({name: task.depends_on for name, task in tasks.items()})
    return {
        "name": "lakejobs-pipeline",
        "description": "The lakejobs pipeline of conf/pipeline.yaml: batch layer, speed layer (availableNow), "
                       "recommender.",
        "max_concurrent_runs": 1,  # one writer per streaming checkpoint and per table
        "schedule": {"quartz_cron_expression": "${var.schedule_cron}", "timezone_id": "UTC",
                     "pause_status": "${var.schedule_pause_status}"},
        "job_clusters": [{"job_cluster_key": CLUSTER_KEY, "new_cluster": {
            "spark_version": "${var.spark_version}", "node_type_id": "${var.node_type_id}",
            "num_workers": "${var.num_workers}", "data_security_mode": "SINGLE_USER",
            "spark_conf": {"spark.sql.session.timeZone": "UTC"}}}],
        "tasks": [{
            "task_key": name,
            **({"depends_on": [{"task_key": dep} for dep in tasks[name].depends_on]} if tasks[name].depends_on else {}),
            "job_cluster_key": CLUSTER_KEY,
            "python_wheel_task": {"package_name": PACKAGE, "entry_point": ENTRY_POINT,
                                  "parameters": parameters(name, tasks[name])},
            "libraries": [{"whl": WHEEL}],
            **RETRIES,
        } for name in order],
    }


def render(tasks: dict[str, Task] | None = None) -> str:
    import yaml

    resource = {"resources": {"jobs": {JOB_KEY: job(load_tasks() if tasks is None else tasks)}}}
    return HEADER + yaml.safe_dump(resource, sort_keys=False, width=110)


def main(argv: list[str] | None = None) -> int:
    return generated_file_main(argv, __doc__.splitlines()[0], RESOURCE_FILE, render, "bundle",
                               f"{len(load_tasks())} tasks")


if __name__ == "__main__":
    sys.exit(main())
