"""The pipeline DAG of conf/pipeline.yaml: validated against the registry and put in run order.

The one definition every runner reads: `lakejobs pipeline` (and so `make pipeline`) runs it in
one process, and the Databricks job of the bundle is generated from it (jobs/bundle.py).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from typing import Any

from common.config import read_conf_file
from common.errors import ConfigError
from jobs.registry import JOBS


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
