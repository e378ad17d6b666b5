"""`make package`: the wheel, the --py-files zip and the spark-submit entry file, built from a staged
copy of the sources that carries a version stamp (common/_stamp.json: version, commit, build time).

The stamp goes into the staged copy only, so a checkout never reports a build it is not.

    python -m common.local.package --dist dist
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from datetime import datetime, timezone

from common import STAMP_FILE, __version__

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGES = ("jobs", "common", "conf")
SUFFIXES = (".py", ".yaml")


def stamp(repo: str = REPO) -> dict:
    """Version, commit and build time; `+g<commit>` (`.dirty` with uncommitted changes to the sources)
    is the version's local label, so each build of the same release has its own wheel version."""
    def git(*args: str) -> str:
        try:
            done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=30)
        except OSError:
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short=8", "HEAD")
    dirty = bool(git("status", "--porcelain", "--", *PACKAGES, "setup.py"))
    label = f"+g{commit}{'.dirty' if dirty else ''}" if commit else ""
    return {"version": f"{__version__}{label}", "commit": commit or None, "dirty": dirty,
            "built_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def _sources(root: str) -> list[str]:
    """The files that make up the packages (relative to root), in a stable order."""
    found = []
    for package in PACKAGES:
        for folder, dirs, files in os.walk(os.path.join(root, package)):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            found += [os.path.relpath(os.path.join(folder, f), root) for f in sorted(files) if f.endswith(SUFFIXES)]
    return found


def build(dist: str, repo: str = REPO) -> dict:
    """Write <dist>/lakejobs-<version>-py3-none-any.whl, <dist>/lakejobs-<release>.zip and
    <dist>/lakejobs_entry.py; return the stamp they carry."""
    info = stamp(repo)
    os.makedirs(dist, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lakejobs-package-") as stage:
        files = _sources(repo)
        for rel in files + ["setup.py"]:
            os.makedirs(os.path.dirname(os.path.join(stage, rel)), exist_ok=True)
            shutil.copy2(os.path.join(repo, rel), os.path.join(stage, rel))
        stamp_rel = os.path.join("common", STAMP_FILE)
        with open(os.path.join(stage, stamp_rel), "w") as f:
            json.dump(info, f, indent=2)
        # No build isolation: setuptools comes from the project's venv, so packaging works offline.
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                        "-w", os.path.abspath(dist), stage], check=True)
        with zipfile.ZipFile(os.path.join(dist, f"lakejobs-{__version__}.zip"), "w", zipfile.ZIP_DEFLATED) as z:
            for rel in files + [stamp_rel]:
                z.write(os.path.join(stage, rel), rel)
    shutil.copy2(os.path.join(repo, "jobs", "runners", "entry.py"), os.path.join(dist, "lakejobs_entry.py"))
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m common.local.package", description=__doc__.splitlines()[0])
    parser.add_argument("--dist", default="dist", help="output folder (default: dist)")
    args = parser.parse_args(argv)
    info = build(args.dist)
    print(f"lakejobs {info['version']} (commit {info['commit']}, built {info['built_at']}) in {args.dist}:")
    for name in sorted(os.listdir(args.dist)):
        print(f"  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
