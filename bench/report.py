"""bench/results.json (the figures, machine-readable) and bench/RESULTS.md (rendered from it).

results.json: {"machine": {...the latest run's machine, date and commit},
               "sections": {name: {date, commit, seconds, other_cores, machine, notes}},
               "results": [{section, name, value, unit, target, passed}, ...]}
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from datetime import datetime, timezone

from bench.harness import HERE, Metric

RESULTS_JSON = os.path.join(HERE, "results.json")
RESULTS_MD = os.path.join(HERE, "RESULTS.md")
REPO = os.path.dirname(HERE)
CODE_PATHS = ["jobs", "common", "conf", "bench", "setup.py", "requirements.txt"]
SHARED_CORES = 0.25  # other processes busier than this on average: say the figures are from a shared machine


def machine() -> dict:
    from importlib.metadata import version

    import pyspark

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    mem_kb = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    java_bin = os.path.join(os.environ["JAVA_HOME"], "bin", "java") if os.environ.get("JAVA_HOME") else shutil.which("java")
    java = subprocess.run([java_bin or "java", "-version"], capture_output=True, text=True).stderr.splitlines()
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gib": round(mem_kb / 2**20, 1), "os": platform.platform(),
            "python": platform.python_version(), "java": java[0] if java else "?", "spark": pyspark.__version__,
            "delta": version("delta-spark"), "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            **git_state()}


def git_state() -> dict:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=REPO).stdout

    results = (os.path.relpath(RESULTS_JSON, REPO), os.path.relpath(RESULTS_MD, REPO))
    changed = [line[3:] for line in git("status", "--porcelain", "--", *CODE_PATHS).splitlines()
               if line[3:] not in results]
    return {"commit": git("rev-parse", "--short", "HEAD").strip() or "?", "uncommitted": changed}


def load() -> dict:
    empty = {"machine": {}, "sections": {}, "results": []}
    if not os.path.exists(RESULTS_JSON):
        return empty
    with open(RESULTS_JSON) as f:
        results = json.load(f)
    return results if isinstance(results.get("results"), list) else empty  # an older layout: start again


def save(section: str, metrics: list[Metric], notes: list[str], seconds: float,
         cases: list[tuple[float, float]]) -> dict:
    """Replace `section`'s entries in results.json (the other sections' stay) and re-render RESULTS.md.
    `cases`: (wall seconds, CPU seconds of other processes) per case the section ran."""
    results = load()
    here = machine()
    wall = sum(w for w, _ in cases)
    results["machine"] = here
    results["sections"][section] = {
        "date": here["date"], "commit": here["commit"], "uncommitted": here["uncommitted"], "seconds": round(seconds),
        "other_cores": round(sum(o for _, o in cases) / wall, 2) if wall else None,
        "machine": {k: here[k] for k in ("cpu", "cores", "ram_gib")}, "notes": notes}
    results["results"] = [r for r in results["results"] if r["section"] != section] + [m.row() for m in metrics]
    with open(RESULTS_JSON, "w") as f:
        json.dump(results, f, indent=2, ensure_ascii=False)
        f.write("\n")
    with open(RESULTS_MD, "w") as f:
        f.write(render(results))
    return results


def render(results: dict) -> str:
    m = results["machine"]
    out = ["# Benchmark results", "",
           "Written by `make bench` (`python -m bench.run`) from `bench/results.json`; do not edit by hand.", "",
           f"- Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM; {m['os']}",
           f"- Versions: Python {m['python']}; {m['java']}; Spark {m['spark']}; Delta {m['delta']}",
           f"- Last run: {m['date']}, commit {_commit(m)}", ""]
    shared = {name: s["other_cores"] for name, s in results["sections"].items() if (s["other_cores"] or 0) > SHARED_CORES}
    if shared:
        out += ["**Measured on a shared machine**: while the cases of "
                + ", ".join(f"`{n}`" for n in shared) + " ran, other processes kept "
                + ", ".join(f"{c:.1f}" for c in shared.values()) + f" of the {m['cores']} cores busy on average. "
                "Treat those figures as indicative; re-run `make bench` on a quiet machine for final numbers.", ""]
    for name, s in results["sections"].items():
        where = "" if s["machine"] == {k: m.get(k) for k in ("cpu", "cores", "ram_gib")} else \
            f" On another machine: {s['machine']['cpu']}, {s['machine']['cores']} cores, {s['machine']['ram_gib']} GiB."
        busy = "" if s["other_cores"] is None else f"; other processes kept {s['other_cores']:.1f} cores busy"
        out += [f"## {name}", "", f"{s['date']}, commit {_commit(s)}, {s['seconds']} s{busy}.{where}", "",
                "| measure | value | unit | target | met |", "|---|---:|---|---|---|"]
        for r in (r for r in results["results"] if r["section"] == name):
            met = "" if r["passed"] is None else ("yes" if r["passed"] else "**no**")
            value = f"{r['value']:,}" if isinstance(r["value"], int) and not isinstance(r["value"], bool) else r["value"]
            out.append(f"| {r['name']} | {value} | {r['unit']} | {r['target'] or ''} | {met} |")
        out += [""] + [line for note in s.get("notes", []) for line in (note, "")]
    return "\n".join(out).rstrip() + "\n"


def _commit(run: dict) -> str:
    changed = run.get("uncommitted") or []
    return f"`{run['commit']}`" + (f" (with uncommitted changes to {', '.join(changed)})" if changed else "")
