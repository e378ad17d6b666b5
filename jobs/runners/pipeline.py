"""The pipeline DAG of conf/pipeline.yaml: validated against the registry and put in run order.

The one definition every runner reads: `lakejobs pipeline` (and so `make pipeline`) runs it in
one process, and the Databricks job (jobs/runners/bundle.py) and the Airflow DAG (jobs/runners/airflow_dag.py) are
generated from it.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from typing import Any, Callable

from common.config import read_conf_file
from common.errors import ConfigError
from jobs.runners.registry import JOBS

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass(frozen=True)
class Task:
    depends_on: list[str]
    # Config the task always runs with, whatever the environment says (the stream task's availableNow
    # trigger: a processing-time query inside a pipeline would never end).
    conf: dict[str, Any] = field(default_factory=dict)

    def conf_args(self) -> list[str]:
        """The task's settings as command-line arguments: ['--conf', 'stream.trigger=available_now']."""
        return [arg for key, value in self.conf.items()
                for arg in ("--conf", f"{key}={value if isinstance(value, str) else json.dumps(value)}")]


def load_tasks() -> dict[str, Task]:
    """task → its Task, in the file's order."""
    specs = read_conf_file("pipeline.yaml").get("tasks") or {}
    tasks = {name: Task(list((spec or {}).get("depends_on", [])), dict((spec or {}).get("conf") or {}))
             for name, spec in specs.items()}
    for name, task in tasks.items():
        if name not in JOBS:
            raise ConfigError(f"conf/pipeline.yaml: task '{name}' is not a job; valid jobs: {', '.join(JOBS)}")
        for dep in task.depends_on:
            if dep not in tasks:
                raise ConfigError(f"conf/pipeline.yaml: task '{name}' depends on unknown task '{dep}'")
    return tasks


def load_dag() -> dict[str, list[str]]:
    """task → the tasks it depends on."""
    return {name: task.depends_on for name, task in load_tasks().items()}


def run_order(dag: dict[str, list[str]]) -> list[str]:
    try:
        return list(TopologicalSorter(dag).static_order())
    except CycleError as e:
        raise ConfigError(f"conf/pipeline.yaml has a cycle: {' -> '.join(e.args[1])}") from None


def generated_file_main(argv: list[str] | None, description: str, relpath: str, render: Callable[[], str],
                        make_target: str, summary: str) -> int:
    """The command line of a file generated from this pipeline (the Databricks job, the Airflow DAG):
    write it, or with --check say whether the committed file is still what conf/pipeline.yaml gives."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    path, text = os.path.join(REPO, relpath), render()
    if args.check:
        current = open(path).read() if os.path.exists(path) else ""
        if current != text:
            print(f"{relpath} is not what conf/pipeline.yaml gives: run `make {make_target}`", file=sys.stderr)
            return 1
        print(f"{relpath} matches conf/pipeline.yaml")
        return 0
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    print(f"wrote {relpath} ({summary})")
    return 0
