"""What leaves the repository: the packaged wheel in a fresh virtualenv, and the Databricks bundle,
whose job must be the one pipeline of conf/pipeline.yaml (no workspace here: the bundle is checked
with the databricks-sdk's own job settings types)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import venv
import zipfile

import pytest
import yaml
from databricks.sdk.service.jobs import JobSettings, Task

from common.config import load_config
from jobs.runners import bundle, cli, registry
from jobs.runners.pipeline import load_dag, load_tasks, run_order
from tests.conftest import REPO


def read_yaml(path: str):
    with open(os.path.join(REPO, path)) as f:
        return yaml.safe_load(f)


def resolved(node, variables: dict):
    """The job as the bundle CLI deploys it: each `${var.name}` replaced by the target's value."""
    if isinstance(node, dict):
        return {k: resolved(v, variables) for k, v in node.items()}
    if isinstance(node, list):
        return [resolved(v, variables) for v in node]
    found = re.fullmatch(r"\$\{var\.(\w+)\}", node) if isinstance(node, str) else None
    return variables[found.group(1)] if found else node


@pytest.fixture(scope="module", params=["dev", "prod"])
def job(request) -> dict:
    """The generated job resource, for each target of databricks.yml."""
    root = read_yaml("databricks.yml")
    variables = {name: spec["default"] for name, spec in root["variables"].items()}
    variables |= root["targets"][request.param].get("variables") or {}
    (settings,) = read_yaml(bundle.RESOURCE_FILE)["resources"]["jobs"].values()
    return resolved(settings, variables)


def test_make_package_installs_into_a_fresh_virtualenv_and_lists_the_jobs(tmp_path):
    dist = tmp_path / "dist"
    made = subprocess.run(["make", "-s", "package", f"DIST={dist}"], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert made.returncode == 0, made.stderr[-2000:]
    (wheel,) = dist.glob("*.whl")
    stamped = re.fullmatch(r"lakejobs-(0\.\d+\.\d+\+g[0-9a-f]{8}(\.dirty)?)-py3-none-any\.whl", wheel.name)
    assert stamped, wheel.name
    assert {p.name for p in dist.iterdir()} == {wheel.name, "lakejobs-0.1.0.zip", "lakejobs_entry.py"}
    # A new virtualenv, nothing inherited; the wheel alone (--no-deps: its dependencies are 1.4 GB,
    # a minute to install even from the cache) — `list` and `--version` need none of them.
    fresh = tmp_path / "venv"
    venv.create(fresh, with_pip=True, symlinks=True)
    pip = subprocess.run([fresh / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel],
                         capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr
    env = {"PATH": f"{fresh / 'bin'}:/usr/bin:/bin"}  # nothing of the project's .venv or checkout
    listed = subprocess.run(["lakejobs", "list"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()] == list(registry.JOBS)
    assert all(registry.describe(name) in listed.stdout for name in registry.JOBS)
    shown = subprocess.run(["lakejobs", "--version"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert shown.stdout.strip() == f"lakejobs {stamped.group(1)}"
    # The wheel holds every configuration file the jobs read.
    with zipfile.ZipFile(wheel) as z:
        packaged = {n for n in z.namelist() if n.startswith("conf/")}
    assert packaged >= {f"conf/{name}" for name in os.listdir(os.path.join(REPO, "conf")) if name.endswith(".yaml")}


def test_the_bundle_job_is_generated_from_the_pipeline_definition():
    check = subprocess.run([sys.executable, "-m", "jobs.runners.bundle", "--check"], cwd=REPO, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr  # else: `make bundle`, and commit the result


def test_every_task_parses_as_a_databricks_job_task(job):
    settings = JobSettings.from_dict(job)
    assert len(settings.tasks) == len(load_dag())
    for raw in job["tasks"]:
        assert Task.from_dict(raw).as_dict() == raw  # from_dict drops what it does not know: a misspelt key
    assert JobSettings.from_dict(job).as_dict() == job
    assert settings.schedule.quartz_cron_expression and settings.schedule.timezone_id == "UTC"
    assert settings.schedule.pause_status is not None and settings.job_clusters[0].new_cluster.num_workers >= 1
    assert [c.job_cluster_key for c in settings.job_clusters] == [bundle.CLUSTER_KEY]
    assert all(t.job_cluster_key == bundle.CLUSTER_KEY and t.max_retries >= 1 for t in settings.tasks)


def test_every_task_runs_a_registered_job_through_the_lakejobs_entry_point(job):
    for task in JobSettings.from_dict(job).tasks:
        wheel = task.python_wheel_task
        assert (wheel.package_name, wheel.entry_point) == ("lakejobs", "lakejobs")
        args = cli._parser().parse_args(wheel.parameters)  # what the entry point will parse
        assert (args.command, args.job, args.env) == ("run", task.task_key, "databricks")
        registry.check(args.job)
        load_config(args.env, args.conf)  # the settings it passes exist and have the right types
    setup = open(os.path.join(REPO, "setup.py")).read()
    assert '"lakejobs=jobs.runners.cli:entry"' in setup


def test_the_edges_and_task_settings_equal_the_pipeline_definition(job):
    settings = JobSettings.from_dict(job)
    edges = {t.task_key: sorted(d.task_key for d in t.depends_on or []) for t in settings.tasks}
    assert edges == {name: sorted(deps) for name, deps in load_dag().items()}
    tasks = load_tasks()
    stream = {t.task_key: t.python_wheel_task.parameters for t in settings.tasks}["speed"]
    assert stream[-2:] == ["--conf", "stream.trigger=available_now"] == tasks["speed"].conf_args()


def test_the_makefile_pipeline_runs_the_definition_in_order():
    planned = subprocess.run(["make", "-s", "pipeline", "PLAN=1", "ENV=test"], cwd=REPO, capture_output=True,
                             text=True, timeout=120)
    assert planned.returncode == 0, planned.stderr
    order = [line.split()[0] for line in planned.stdout.splitlines()]
    assert order == run_order(load_dag())
    done = set()
    for name in order:  # each task after everything it depends on
        assert set(load_dag()[name]) <= done
        done.add(name)


def test_the_bundle_declares_what_its_job_uses():
    root = read_yaml("databricks.yml")
    assert "resources/*.yml" in root["include"]
    (artifact,) = root["artifacts"].values()
    assert (artifact["type"], artifact["build"]) == ("whl", "make package")
    used = set(re.findall(r"\$\{var\.(\w+)\}", open(os.path.join(REPO, bundle.RESOURCE_FILE)).read()))
    assert used and used <= set(root["variables"])
    databricks = load_config("databricks")
    assert (databricks["ml.tracking_uri"], databricks["ml.registry_uri"]) == ("databricks", "databricks-uc")
    assert databricks["ml.model_name"].count(".") == 2  # Unity Catalog: catalog.schema.model
