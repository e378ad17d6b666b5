"""What every section shares: running a case in its own process, and the shape of a result."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

from bench.case import MARK

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, ".data")      # generated inputs, reused between runs (git ignores it)
WORK = os.path.join(HERE, ".work")      # lakes the cases write, wiped per case
DRIVER_MEMORY = "4g"                    # local mode: the driver is also the only executor


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
    """Run bench.case in a fresh Python + JVM; its measurements as a dict."""
    import shutil

    shutil.rmtree(lake, ignore_errors=True)
    conf = [f"spark.conf.spark.driver.memory={DRIVER_MEMORY}", *(conf or [])]
    args = json.dumps({"lake": lake, "conf": conf, **params})
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "bench.case", target, args], capture_output=True, text=True,
                          cwd=os.path.dirname(HERE))
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"bench case {target} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(lines[-1][len(MARK):])
    print(f"    {target} done in {time.monotonic() - began:.0f}s", flush=True)
    return result


def gib(n_bytes: float) -> float:
    return n_bytes / 2**30
