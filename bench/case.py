"""One benchmark case in a fresh process (so JVM peaks and caches never mix between cases).

    python -m bench.case bench.batch:full_load '{"data": "...", "lake": "..."}'

The case function gets (spark, cfg, **params) and returns a dict of measurements; this module
adds the driver JVM's peak resident memory and prints one line `BENCH_RESULT <json>`.
"""
from __future__ import annotations

import importlib
import json
import sys

from common.config import load_config
from common.session import get_session

MARK = "BENCH_RESULT "


def jvm_peak_rss_bytes(spark) -> int:
    """VmHWM (peak resident set) of the JVM behind this session, from /proc."""
    pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc status")


def main(target: str, params_json: str) -> int:
    module, func = target.split(":")
    params = json.loads(params_json)
    conf = [f"lake.root={params.pop('lake')}", *params.pop("conf", [])]
    cfg = load_config("local", conf)
    spark = get_session(cfg)
    spark.sparkContext.setLogLevel("ERROR")
    result = getattr(importlib.import_module(module), func)(spark, cfg, **params)
    result["jvm_peak_rss_bytes"] = jvm_peak_rss_bytes(spark)
    print(MARK + json.dumps(result), flush=True)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
