"""One SparkSession for the whole run (test overlay: local[2], 2 shuffle partitions, UI off),
and a fresh lake folder per test."""
from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import pytest
from pyspark.sql import SparkSession

from common.config import Config, load_config
from common.session import get_session

# pytest-xdist's workers run with a bare __main__ (no __spec__, no __file__), which pyspark's Spark
# Connect import check (pyspark.sql.connect.utils.check_dependencies, reached by mlflow.spark.log_model)
# takes for a doctest run and ends with sys.exit(0). Give it the file every other runner has.
_main = sys.modules["__main__"]
if getattr(_main, "__spec__", None) is None and not hasattr(_main, "__file__"):
    _main.__file__ = "pytest-xdist-worker"

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAKEJOBS = os.path.join(os.path.dirname(sys.executable), "lakejobs")
SHARED_MOVIELENS = os.path.abspath(os.path.join(REPO, "..", "shared", "data", "movielens"))


# Modules that share the session-scoped pipeline_run (below): under pytest-xdist they run in one worker.
PIPELINE_MODULES = {"test_airflow", "test_quiet_output", "test_status"}
# Modules of long tests that share nothing but the session (each builds its own lake): each test is a
# unit of its own for the scheduler, so that the two workers share them.
ONE_UNIT_PER_TEST = {"test_exactly_once"}


def pytest_collection_modifyitems(config, items):
    """Modules with the most slow tests first, each module's tests in their order: the scheduler below
    hands out modules in collection order, and a long module handed out last runs on alone while
    the other worker waits (the SIGKILL tests, 16 minutes, did in a fresh-clone run)."""
    slow = Counter(item.module.__name__ for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow[item.module.__name__])  # stable: modules stay whole and in order


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`make test` runs two pytest-xdist workers. Each module's tests go to one worker (its module
    fixtures are built once), and the modules sharing the whole pipeline run go to one together.
    (xdist's own --dist loadgroup cannot do it under pytest 9: it renames items by their _nodeid,
    which pytest 9 no longer reads.)"""
    from xdist.scheduler import LoadScopeScheduling

    class ByModule(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::")[0].rpartition("/")[2].removesuffix(".py")
            if module in ONE_UNIT_PER_TEST:
                return nodeid
            return "pipeline" if module in PIPELINE_MODULES else module

    return ByModule(config, log)


@pytest.fixture(scope="session")
def spark():
    # The worker's own JVM lives for the whole run and computes most tests: it keeps the optimising
    # compiler, which conf/test.yaml turns off for the short-lived `lakejobs` processes the tests start
    # (with C1 only there, the in-process tests ran up to 3.5x slower in a fresh-clone run).
    session = get_session(load_config("test", ["spark.conf.spark.driver.extraJavaOptions=-XX:+TieredCompilation"]))
    yield session
    session.stop()


@pytest.fixture(autouse=True, scope="module")
def _release_cached_data():
    """A job runs in a process of its own and leaves nothing behind; here one JVM serves every module,
    so what a module (or a failed job) left cached is dropped after it: the heap would fill otherwise
    (a run of the whole suite once died on "Not enough memory to build and broadcast")."""
    yield
    spark = SparkSession.getActiveSession()
    if spark is None:
        return
    spark.catalog.clearCache()
    for rdd in spark.sparkContext._jsc.getPersistentRDDs().values():
        rdd.unpersist(False)


@pytest.fixture
def lake(tmp_path) -> str:
    return str(tmp_path / "lake")


@pytest.fixture
def cfg(lake) -> Config:
    """Test config with its own lake; extend with cfg.with_overrides({...})."""
    return load_config("test", [f"lake.root={lake}"])


# The settings of the one whole pipeline run the tests share: half the tiny ratings held back, so that
# the pipeline's simulate task replays 2,000 of them and tests that stream more still have some. As
# environment variables too, for the processes the tests start (LAKEJOBS__SECTION__KEY).
PIPELINE_CONF = {"stream.holdback_fraction": 0.5, "simulator.events_per_file": 100}
PIPELINE_ENV = {"LAKEJOBS__" + key.upper().replace(".", "__"): str(value) for key, value in PIPELINE_CONF.items()}


class PipelineRun:
    """`lakejobs pipeline --env test` in a process of its own, as a user runs it, started in the
    background when first asked for; .finished() waits for it and returns (lake, stdout, stderr)."""

    def __init__(self, lake: str):
        self.lake = lake
        self.proc = subprocess.Popen([LAKEJOBS, "pipeline", "--env", "test", "--conf", f"lake.root={lake}"],
                                     env={**os.environ, **PIPELINE_ENV}, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.output: tuple[str, str] | None = None

    def finished(self) -> tuple[str, str, str]:
        """(lake, stdout, stderr) once the run has ended; fails the test when it did not succeed."""
        if self.output is None:
            self.output = self.proc.communicate(timeout=3600)  # a hang guard only
        out, err = self.output
        assert self.proc.returncode == 0, (out + err)[-5000:]
        return self.lake, out, err


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory):
    """The whole pipeline once per test run, on the generator's tiny data. Tests only read its lake
    (or copy it): `lakejobs status` checks it, test_quiet_output its output, test_airflow compares a
    DAG run with it."""
    run = PipelineRun(str(tmp_path_factory.mktemp("pipeline_run") / "lake"))
    yield run
    run.proc.kill()
