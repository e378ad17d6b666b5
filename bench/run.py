"""`make bench`: run the benchmark sections and record their figures.

Each section's figures replace its own entries in bench/results.json (the other sections' stay), and
bench/RESULTS.md is rendered from that file.

    python -m bench.run                                  # every section
    python -m bench.run --only batch --sizes 1000000     # one section, one size
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback

from bench import batch, report
from bench.harness import LOAD


def section(name: str):
    """bench/<name>.py, imported when its section runs: a broken section cannot stop the others."""
    return importlib.import_module(f"bench.{name}")


# One line per section: name → function(args) returning its metrics, or (metrics, notes).
SECTIONS = {
    "batch": lambda args: section("batch").run(args.sizes),
    "stream": lambda args: section("stream").run(),
    "ml": lambda args: section("ml").run(),
    "s3": lambda args: section("s3").run(),
    "cluster": lambda args: section("cluster").run(),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=list(SECTIONS), action="append", help="run this section (repeatable)")
    parser.add_argument("--sizes", type=int, nargs="+", default=batch.DEFAULT_SIZES, metavar="RATINGS",
                        help=f"batch section: ratings per case, of {', '.join(map(str, batch.SIZES))} "
                             f"(default: {' '.join(map(str, batch.DEFAULT_SIZES))})")
    parser.add_argument("--note", help="a remark kept with the sections of this run, e.g. about the machine")
    args = parser.parse_args(argv)
    names = args.only or list(SECTIONS)
    began, failed = time.monotonic(), []
    print(f"bench: sections {', '.join(names)}; results in {report.RESULTS_JSON}", flush=True)
    for i, name in enumerate(names, 1):
        print(f"== [{i}/{len(names)}] section {name}", flush=True)
        section_began, LOAD[:] = time.monotonic(), []
        try:
            out = SECTIONS[name](args)
        except Exception:  # one broken section must not cost the others their figures
            traceback.print_exc()
            print(f"== section {name} FAILED after {time.monotonic() - section_began:.0f} s; its previous "
                  "figures are kept", flush=True)
            failed.append(name)
            continue
        metrics, notes = out if isinstance(out, tuple) else (out, [])
        seconds = time.monotonic() - section_began
        report.save(name, metrics, notes + ([args.note] if args.note else []), seconds, list(LOAD))
        for m in metrics:
            flag = "" if m.passed is None else ("  (target met)" if m.passed else f"  (target {m.target} NOT met)")
            print(f"  {m.name}: {m.value} {m.unit}{flag}", flush=True)
        print(f"== section {name} took {seconds:.0f} s", flush=True)
    total = time.monotonic() - began
    print(f"bench: {len(names) - len(failed)} of {len(names)} sections in {total:.0f} s ({total / 60:.1f} min); "
          f"wrote {report.RESULTS_JSON} and {report.RESULTS_MD}", flush=True)
    if failed:
        print(f"bench: FAILED sections: {', '.join(failed)}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
