"""Ctrl-C (SIGINT) or SIGTERM in the middle of a job: the ledger still gets the run's row, as interrupted,
and the command ends with one line and the shell's exit status for the signal, not a traceback."""
from __future__ import annotations

import signal
import subprocess

import pytest

from common import tables
from common.catalogue import STATE_LEDGER
from common.config import load_config
from jobs.runners.runner import run_job
from tests.conftest import LAKEJOBS



@pytest.fixture(scope="module")
def batch_lake(spark, tmp_path_factory):
    """A lake with silver.ratings, so that `speed` can start (and, on a processing-time trigger, never ends)."""
    cfg = load_config("test", [f"lake.root={tmp_path_factory.mktemp('interrupt') / 'lake'}"])
    for job in ("extract", "full_load", "silver"):
        run_job(spark, cfg, job)
    return cfg


def run_until_started_then(cfg, sig: int, query_name: str) -> tuple[int, str]:
    """Start `lakejobs run speed` on an endless trigger, send `sig` once its stream has started (the job
    is then surely mid-run), and return the exit status and everything it wrote to stderr."""
    proc = subprocess.Popen([LAKEJOBS, "run", "speed", "--env", "test", "--conf", f"lake.root={cfg['lake.root']}",
                             "--conf", "stream.trigger=processing_time", "--conf", f"stream.query_name={query_name}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    try:
        for line in proc.stderr:
            seen.append(line)
            if f"stream {query_name} started" in line:
                proc.send_signal(sig)
                break
        _, rest = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, "".join(seen) + rest


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_mid_job_leaves_an_interrupted_ledger_row(spark, batch_lake, sig):
    cfg, name = batch_lake, signal.Signals(sig).name
    status, stderr = run_until_started_then(cfg, sig, f"interrupt_{name.lower()}")
    assert status == 128 + sig, stderr[-3000:]
    assert f"lakejobs: interrupted by {name}" in stderr
    assert "Traceback" not in stderr, stderr[-3000:]
    rows = tables.read(spark, cfg, STATE_LEDGER.name).where("job = 'speed'").collect()
    mine = [r for r in rows if f"interrupt_{name.lower()}" in r.params]
    assert len(mine) == 1, rows
    (row,) = mine
    assert row.status == "interrupted"
    assert row.error == f"interrupted by {name}"
    assert row.ended_at >= row.started_at
