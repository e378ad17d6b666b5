"""A real S3 API server on 127.0.0.1 (moto's standalone server, from PyPI), with the lake's bucket
created at start, for `make run-s3` and for tests that start their own. It keeps the objects in
memory: `down` loses them. It accepts any credentials; clients still take theirs from the AWS chain.

    python -m common.local.s3_server up   --dir lake/state/s3 --port 9000
    python -m common.local.s3_server down --dir lake/state/s3
"""
from __future__ import annotations

import os
import sys

from common import s3
from common.local import servers

BUCKET = "lakejobs"
REGION = "us-east-1"


def up(folder: str, port: int = 9000, timeout_s: float = 60.0, bucket: str = BUCKET) -> str:
    """Start a server (pid and log in folder) and create the bucket; return its endpoint URL."""
    folder = os.path.abspath(folder)
    os.makedirs(folder, exist_ok=True)
    moto = os.path.join(os.path.dirname(sys.executable), "moto_server")
    servers.start("s3", [moto, "-H", "127.0.0.1", "-p", str(port)], folder, port, timeout_s)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        s3.ensure_bucket(s3.client_at(endpoint, REGION, True), bucket, REGION)
    except Exception as e:
        down(folder)
        raise servers.ServerError(f"the S3 server came up but bucket '{bucket}' could not be created: {e}") from None
    return endpoint


def down(folder: str) -> bool:
    return servers.stop("s3", folder)


def main(argv: list[str] | None = None) -> int:
    return servers.main("s3 server", "common.local.s3_server", up, down, os.path.join("lake", "state", "s3"), 9000, argv)


if __name__ == "__main__":
    sys.exit(main())
