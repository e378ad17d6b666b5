"""The command line and spark-submit, each in its own process, as a user runs them."""
from __future__ import annotations

import os
import subprocess

from common import __version__, raw_zone, tables
from common.catalogue import BRONZE_RATINGS, STATE_LEDGER
from jobs.runners.registry import JOBS
from jobs.runners.runner import run_job
from tests.conftest import LAKEJOBS, REPO



def lakejobs(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([LAKEJOBS, *args], capture_output=True, text=True, timeout=300)


def test_unknown_job_lists_the_valid_ones_without_a_traceback():
    done = lakejobs("run", "nosuchjob")
    assert done.returncode == 2
    assert done.stderr.strip() == f"lakejobs: error: unknown job 'nosuchjob'; valid jobs: {', '.join(JOBS)}"
    assert "Traceback" not in done.stderr


def test_a_misspelt_config_key_is_named_with_a_suggestion():
    done = lakejobs("run", "extract", "--conf", "lake.rot=/tmp/x")
    assert done.returncode == 2
    assert "unknown config key 'lake.rot' from --conf lake.rot=/tmp/x (did you mean 'lake.root'?)" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_bad_value_from_the_environment_is_named():
    env = dict(os.environ, LAKEJOBS__SPARK__SHUFFLE_PARTITIONS="many")
    done = subprocess.run([LAKEJOBS, "run", "extract"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2
    assert "config key 'spark.shuffle_partitions' must be int, got 'many'" in done.stderr


def test_list_and_version():
    listed = lakejobs("list")
    names = [line.split()[0] for line in listed.stdout.splitlines()]
    assert names == list(JOBS) and names[:4] == ["extract", "full_load", "silver", "gold"]
    assert lakejobs("--version").stdout.strip() == f"lakejobs {__version__}+dev"  # a checkout, not a package


def test_a_job_runs_through_spark_submit_from_the_packaged_zip(spark, cfg, tmp_path):
    run_job(spark, cfg, "extract")
    dist = tmp_path / "dist"
    conf = f"--conf lake.root={cfg['lake.root']}"
    done = subprocess.run(["make", "-s", "submit", "JOB=full_load", "ENV=test", "MASTER=local[2]",
                           f"DIST={dist}", f"CONF={conf}", "DATA_DIR="],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    # spark-submit forwards the Python driver's stderr to its stdout.
    started = [line for line in done.stdout.splitlines() if "job full_load: run" in line]
    assert started and started[0].endswith(f"from {dist}/lakejobs-{__version__}.zip)"), started  # not the checkout
    assert "[full_load] wrote bronze.ratings" in done.stdout
    landed = raw_zone.find(cfg).data_rows("ratings.csv")
    assert tables.read(spark, cfg, BRONZE_RATINGS.name).count() == landed
    (row,) = tables.read(spark, cfg, STATE_LEDGER.name).where("job = 'full_load'").collect()
    assert row.status == "succeeded"


def test_a_master_that_does_not_answer_is_one_clear_line(tmp_path):
    from common.local.servers import free_port

    master = f"spark://127.0.0.1:{free_port()}"
    done = subprocess.run(["make", "-s", "submit", "JOB=full_load", f"MASTER={master}", f"DIST={tmp_path / 'dist'}"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert (f"lakejobs: error: no Spark master answers at {master}: start one (`make cluster-up`) or give another "
            "MASTER") in done.stderr
    assert "Traceback" not in done.stderr and "spark-submit" not in done.stdout + done.stderr


def test_a_query_on_a_table_the_lake_lacks_is_one_clear_line(tmp_path):
    done = lakejobs("query", "SELECT * FROM gold.movie_stats", "--env", "test", "--conf", f"lake.root={tmp_path}")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    error = [line for line in done.stderr.splitlines() if line.startswith("lakejobs: error:")]
    assert len(error) == 1 and "TABLE_OR_VIEW_NOT_FOUND" in error[0] and "`gold`.`movie_stats`" in error[0], done.stderr
    assert error[0].endswith("tables here: none yet (make run)")


def test_a_query_that_writes_is_refused_in_one_line_without_a_stack(tmp_path):
    done = lakejobs("query", "DELETE FROM silver.ratings", "--env", "test", "--conf", f"lake.root={tmp_path}")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "\tat " not in done.stderr  # neither Python's nor the JVM's stack
    error = [line for line in done.stderr.splitlines() if line.startswith("lakejobs: error:")]
    assert error == ["lakejobs: error: refused: DeleteFromTable is not part of a read-only query; `lakejobs query` "
                     "runs one SELECT over the lake's tables -- tables here: none yet (make run)"], done.stderr
