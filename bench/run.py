"""`make bench`: run the benchmark sections, merge their results into bench/results.json (a
section's rerun replaces its own entries) and render bench/RESULTS.md.

    python -m bench.run                      # every section
    python -m bench.run --only batch --sizes 1000000
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone

from bench import batch, ml, stream
from bench.harness import HERE, Metric

# One line per section: name → function(args) returning its metrics.
SECTIONS = {
    "batch": lambda args: batch.run(args.sizes),
    "stream": lambda args: stream.run(),
    "ml": lambda args: ml.run(),
}
RESULTS_JSON = os.path.join(HERE, "results.json")
RESULTS_MD = os.path.join(HERE, "RESULTS.md")


def machine() -> dict:
    import delta
    import pyspark

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    mem_kb = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[0]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gib": round(mem_kb / 2**20, 1),
            "os": platform.platform(), "python": platform.python_version(), "java": java,
            "spark": pyspark.__version__, "delta": _version(delta), "commit": commit}


def _version(module) -> str:
    from importlib.metadata import version

    return version("delta-spark") if module.__name__ == "delta" else getattr(module, "__version__", "?")


def save(section: str, metrics: list[Metric], seconds: float) -> dict:
    results = json.load(open(RESULTS_JSON)) if os.path.exists(RESULTS_JSON) else {"sections": {}}
    results["sections"][section] = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
        "seconds": round(seconds), "metrics": [m.row() for m in metrics]}
    with open(RESULTS_JSON, "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    with open(RESULTS_MD, "w") as f:
        f.write(render(results))
    return results


def render(results: dict) -> str:
    out = ["# Benchmark results", "", "Written by `make bench` (bench/run.py) from bench/results.json.", ""]
    for name, section in results["sections"].items():
        m = section["machine"]
        out += [f"## {name}", "", f"{section['date']}, commit {m['commit']}, {section['seconds']} s. "
                f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM; {m['os']}; "
                f"Python {m['python']}, {m['java']}, Spark {m['spark']}, Delta {m['delta']}.", "",
                "| measure | value | unit | target | met |", "|---|---:|---|---|---|"]
        for r in section["metrics"]:
            met = "" if r["passed"] is None else ("yes" if r["passed"] else "**no**")
            out.append(f"| {r['name']} | {r['value']} | {r['unit']} | {r['target'] or ''} | {met} |")
        if section.get("note"):
            out += ["", section["note"]]
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=list(SECTIONS), action="append")
    parser.add_argument("--sizes", type=int, nargs="+", default=sorted(batch.SIZES))
    args = parser.parse_args(argv)
    for name in args.only or SECTIONS:
        print(f"== bench section {name}", flush=True)
        began = time.monotonic()
        metrics = SECTIONS[name](args)
        save(name, metrics, time.monotonic() - began)
        for m in metrics:
            flag = "" if m.passed is None else ("  (target met)" if m.passed else f"  (target {m.target} NOT met)")
            print(f"  {m.name}: {m.value} {m.unit}{flag}", flush=True)
        print(f"== {name} took {time.monotonic() - began:.0f}s", flush=True)
    print(f"results: {RESULTS_JSON}, {RESULTS_MD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
