"""What every section shares: running a case in its own process, and the shape of a result."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

from bench.case import MARK

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, ".data")      # generated inputs, reused between runs (git ignores it)
WORK = os.path.join(HERE, ".work")      # lakes the cases write, wiped per case (git ignores it)
DRIVER_MEMORY = "4g"                    # local mode: the driver is also the only executor
CASE_TIMEOUT_S = 3600
# Every case run so far as (wall seconds, CPU seconds other processes used meanwhile): run.py reads
# it to say how busy the machine was while a section measured.
LOAD: list[tuple[float, float]] = []


@dataclass
class Metric:
    section: str
    name: str
    value: float | str
    unit: str
    target: str | None = None
    passed: bool | None = None

    def row(self) -> dict:
        return asdict(self)


def run_case(target: str, lake: str, conf: list[str] | None = None, **params) -> dict:
    """Run bench.case in a fresh Python + JVM; its measurements as a dict, plus `wall_s` (the whole
    process) and `other_cores` (how many cores other processes kept busy meanwhile, on average)."""
    shutil.rmtree(lake, ignore_errors=True)
    conf = [f"spark.conf.spark.driver.memory={DRIVER_MEMORY}", *(conf or [])]
    args = json.dumps({"lake": lake, "conf": conf, **params})
    busy, began = _busy_cpu_s(), time.monotonic()
    # Its own process group, so that a timeout or Ctrl-C also ends the JVM the case started.
    case = subprocess.Popen([sys.executable, "-m", "bench.case", target, args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=os.path.dirname(HERE), start_new_session=True)
    try:
        stdout, stderr = case.communicate(timeout=CASE_TIMEOUT_S)
    except BaseException as e:
        os.killpg(case.pid, signal.SIGKILL)
        case.wait()
        if isinstance(e, subprocess.TimeoutExpired):
            raise RuntimeError(f"bench case {target} did not finish in {CASE_TIMEOUT_S} s") from e
        raise
    wall, busy = time.monotonic() - began, _busy_cpu_s() - busy
    if os.path.abspath(lake).startswith(WORK + os.sep):
        shutil.rmtree(lake, ignore_errors=True)  # a scratch lake: only its measurements matter
    lines = [line for line in stdout.splitlines() if line.startswith(MARK)]
    if case.returncode != 0 or not lines:
        raise RuntimeError(f"bench case {target} failed (exit {case.returncode}):\n{stderr[-3000:]}")
    result = json.loads(lines[-1][len(MARK):])
    others = max(0.0, busy - result["process_cpu_s"])
    LOAD.append((wall, others))
    result |= {"wall_s": wall, "other_cores": others / wall}
    print(f"    case {target}: {wall:.0f} s (other processes kept {others / wall:.1f} of {os.cpu_count()} "
          "cores busy meanwhile)", flush=True)
    return result


def _busy_cpu_s() -> float:
    """CPU seconds the whole machine has spent busy (or stolen by the hypervisor) since boot."""
    fields = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def gib(n_bytes: float) -> float:
    return n_bytes / 2**30
