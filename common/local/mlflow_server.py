"""A real MLflow tracking server on 127.0.0.1 (sqlite backend, artifacts proxied by the server),
for the same code the embedded default runs, pointed at a server by ml.tracking_uri alone.

    python -m common.local.mlflow_server up   --dir lake/state/mlflow-server --port 5000
    python -m common.local.mlflow_server down --dir lake/state/mlflow-server
"""
from __future__ import annotations

import os
import sys

from common.local import servers


def up(folder: str, port: int = 5000, timeout_s: float = 90.0) -> str:
    """Start a server whose database and artifacts live in folder; return its tracking URI."""
    folder = os.path.abspath(folder)
    os.makedirs(folder, exist_ok=True)
    mlflow = os.path.join(os.path.dirname(sys.executable), "mlflow")
    servers.start("mlflow", [mlflow, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                                  "--backend-store-uri", f"sqlite:///{os.path.join(folder, 'mlflow.db')}",
                                  "--artifacts-destination", os.path.join(folder, "artifacts")],
                       folder, port, timeout_s)
    return f"http://127.0.0.1:{port}"


def down(folder: str) -> bool:
    return servers.stop("mlflow", folder)


def main(argv: list[str] | None = None) -> int:
    return servers.main("mlflow server", "common.local.mlflow_server", up, down, os.path.join("lake", "state", "mlflow-server"), 5000, argv)


if __name__ == "__main__":
    sys.exit(main())
