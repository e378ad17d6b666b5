"""A real Apache Airflow on 127.0.0.1 (`airflow standalone`: API server and web UI, scheduler, DAG
processor, triggerer; sqlite metadata DB), from its own virtualenv .airflow/venv, with the DAG folder
at the generated dags/.

    python -m common.local.airflow_server up   --dir .airflow/home --port 8080
    python -m common.local.airflow_server down --dir .airflow/home
    python -m common.local.airflow_server cli  --dir .airflow/home --port 8080 -- dags list
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

from common.local import servers

PROJECT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AIRFLOW = os.path.join(PROJECT, ".airflow", "venv", "bin", "airflow")  # `make airflow-env` installs it
DAGS = os.path.join(PROJECT, "dags")
HOME = os.path.join(".airflow", "home")


def settings(home: str, port: int) -> dict[str, str]:
    """Airflow's configuration, as its environment variables: every airflow process here takes the same."""
    return {
        "AIRFLOW_HOME": os.path.abspath(home),  # airflow.cfg, airflow.db (sqlite), logs
        "AIRFLOW__CORE__DAGS_FOLDER": DAGS,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        # Task processes report to the API server's execution API: on our port, not the default 8080.
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        # Only this machine reaches 127.0.0.1: the UI and the REST API need no login here.
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
    }


def up(folder: str = HOME, port: int = 8080, timeout_s: float = 180.0, env: dict[str, str] | None = None) -> str:
    """Start `airflow standalone` with its state in folder (and env added to its environment, which
    every task inherits); return the web UI's address."""
    if not os.path.exists(AIRFLOW):
        raise servers.ServerError(f"no Airflow at {AIRFLOW}: run `make airflow-env` first")
    os.makedirs(folder, exist_ok=True)
    servers.start("airflow", [AIRFLOW, "standalone"], folder, port, timeout_s, env=_environment(folder, port, env))
    return f"http://127.0.0.1:{port}"


def down(folder: str = HOME, timeout_s: float = 60.0) -> bool:
    """Stop it, parts included: they leave after standalone, the API server last (half a minute on a
    busy machine), and until then its port is taken."""
    return servers.stop("airflow", folder, timeout_s)


def cli(args: list[str], folder: str = HOME, port: int = 8080, env: dict[str, str] | None = None,
        **run) -> subprocess.CompletedProcess:
    """The airflow command line against that home (dags list, dags trigger, backfill create ...)."""
    return subprocess.run([AIRFLOW, *args], env={**os.environ, **_environment(folder, port, env)}, **run)


def _environment(folder: str, port: int, env: dict[str, str] | None) -> dict[str, str]:
    # standalone starts its parts as `airflow ...`: Airflow's virtualenv goes first on the PATH.
    path = os.pathsep.join([os.path.dirname(AIRFLOW), os.environ.get("PATH", "")])
    return {**(env or {}), **settings(folder, port), "PATH": path}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] != ["cli"]:
        return servers.main("Airflow", "common.local.airflow_server", up, down, HOME, 8080, argv)
    parser = argparse.ArgumentParser(prog="python -m common.local.airflow_server cli")
    parser.add_argument("--dir", default=HOME)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("args", nargs=argparse.REMAINDER)
    opts = parser.parse_args(argv[1:])
    args = opts.args[1:] if opts.args[:1] == ["--"] else opts.args
    return cli(args, opts.dir, opts.port).returncode


if __name__ == "__main__":
    sys.exit(main())
