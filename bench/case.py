"""One benchmark case in a fresh process (so JVM peaks and caches never mix between cases).

    python -m bench.case bench.batch:full_load '{"lake": "...", "conf": [...], "raw_root": "..."}'

The case function gets (spark, cfg, **params) and returns a dict of measurements (use `timed` for
the measured part); this module adds the driver JVM's peak resident memory, its heap limit and the
CPU time of the whole process pair, and prints one line `BENCH_RESULT <json>`.
"""
from __future__ import annotations

import importlib
import json
import os
import sys
import time
from typing import Any, Callable

from common.config import load_config
from common.session import get_session

MARK = "BENCH_RESULT "
_TICK = os.sysconf("SC_CLK_TCK")


def jvm_pid(spark) -> int:
    """The driver JVM behind this session (in local mode, the only JVM: the python process's java child)."""
    return int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())


def peak_rss_bytes(pid: int) -> int:
    """VmHWM (peak resident set since the process started) of a process, from /proc."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def timed(spark, action: Callable[[], Any]) -> tuple[Any, float, float]:
    """Run `action`; its result, wall seconds and the driver JVM's CPU seconds meanwhile."""
    pid = jvm_pid(spark)
    cpu, began = cpu_seconds(pid), time.monotonic()
    result = action()
    return result, time.monotonic() - began, cpu_seconds(pid) - cpu


def main(target: str, params_json: str) -> int:
    module, func = target.split(":")
    params = json.loads(params_json)
    conf = [f"lake.root={params.pop('lake')}", *params.pop("conf", [])]
    cfg = load_config("local", conf)
    spark = get_session(cfg)
    spark.sparkContext.setLogLevel("ERROR")
    result = getattr(importlib.import_module(module), func)(spark, cfg, **params)
    pid = jvm_pid(spark)
    result |= {"jvm_peak_rss_bytes": peak_rss_bytes(pid),
               "jvm_max_heap_bytes": int(spark.sparkContext._jvm.java.lang.Runtime.getRuntime().maxMemory()),
               "process_cpu_s": cpu_seconds(pid) + cpu_seconds(os.getpid())}
    print(MARK + json.dumps(result), flush=True)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
