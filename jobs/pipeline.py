"""The pipeline DAG of conf/pipeline.yaml: validated against the registry and put in run order."""
from __future__ import annotations

from graphlib import CycleError, TopologicalSorter

from common.config import read_conf_file
from common.errors import ConfigError
from jobs.registry import JOBS


def load_dag() -> dict[str, list[str]]:
    """task → the tasks it depends on."""
    tasks = read_conf_file("pipeline.yaml").get("tasks") or {}
    dag = {name: list((spec or {}).get("depends_on", [])) for name, spec in tasks.items()}
    for name, deps in dag.items():
        if name not in JOBS:
            raise ConfigError(f"conf/pipeline.yaml: task '{name}' is not a job; valid jobs: {', '.join(JOBS)}")
        for dep in deps:
            if dep not in dag:
                raise ConfigError(f"conf/pipeline.yaml: task '{name}' depends on unknown task '{dep}'")
    return dag


def run_order(dag: dict[str, list[str]]) -> list[str]:
    try:
        return list(TopologicalSorter(dag).static_order())
    except CycleError as e:
        raise ConfigError(f"conf/pipeline.yaml has a cycle: {' -> '.join(e.args[1])}") from None
