"""A real single-node Kafka broker (KRaft: broker and controller in one JVM) on 127.0.0.1.

For the speed layer's Kafka path on a machine without Docker: `make kafka-up` / `make kafka-down`,
and tests that start their own. The jars come from Maven Central (`jvm/kafka/pom.xml`, resolved
into .kafka/libs by `make kafka-jars`). Everything the broker writes lives in one folder: its
config, its log segments, its log file and its pid file.

    python -m common.local_kafka up   --dir lake/state/kafka --port 9092
    python -m common.local_kafka down --dir lake/state/kafka
"""
from __future__ import annotations

import argparse
import base64
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBS = os.path.join(REPO, ".kafka", "libs")

PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data}
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
group.initial.rebalance.delay.ms=0
"""


class BrokerError(RuntimeError):
    """The broker could not be set up or did not come up; the message says where its log is."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _java(main: str, *args: str) -> list[str]:
    if not os.path.isdir(LIBS):
        raise BrokerError(f"no Kafka jars in {LIBS}: run `make kafka-jars` first")
    return ["java", "-Xmx512m", "-cp", os.path.join(LIBS, "*"), main, *args]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def up(folder: str, port: int = 9092, timeout_s: float = 60.0) -> str:
    """Start a broker whose state lives in folder (formatted on first use); return its bootstrap address."""
    folder = os.path.abspath(folder)
    os.makedirs(folder, exist_ok=True)
    pid_file, log_file = os.path.join(folder, "broker.pid"), os.path.join(folder, "broker.log")
    if _alive(pid_file):
        raise BrokerError(f"a broker is already running from {folder} (pid file {pid_file})")
    if _listening(port):
        raise BrokerError(f"port {port} on 127.0.0.1 is taken: choose another with --port")
    config = os.path.join(folder, "server.properties")
    data = os.path.join(folder, "data")
    with open(config, "w") as f:
        f.write(PROPERTIES.format(port=port, controller_port=free_port(), data=data))
    if not os.path.exists(os.path.join(data, "meta.properties")):
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        subprocess.run(_java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", config),
                       check=True, capture_output=True, text=True)
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(_java("kafka.Kafka", config), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    with open(pid_file, "w") as f:
        f.write(str(proc.pid))
    deadline = time.monotonic() + timeout_s
    while not _listening(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            down(folder)
            raise BrokerError(f"the Kafka broker did not come up on 127.0.0.1:{port}; see {log_file}")
        time.sleep(0.3)
    return f"127.0.0.1:{port}"


def down(folder: str) -> bool:
    """Stop the broker started from folder (SIGTERM, then SIGKILL); False if none was running."""
    pid_file = os.path.join(os.path.abspath(folder), "broker.pid")
    if not _alive(pid_file):
        return False
    pid = int(open(pid_file).read())
    os.killpg(pid, signal.SIGTERM)
    for _ in range(100):
        if not _alive(pid_file):
            break
        time.sleep(0.2)
    else:
        os.killpg(pid, signal.SIGKILL)
    os.remove(pid_file)
    return True


def _alive(pid_file: str) -> bool:
    if not os.path.exists(pid_file):
        return False
    pid = int(open(pid_file).read())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped) counts as gone
        return open(f"/proc/{pid}/stat").read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m common.local_kafka", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--dir", default=os.path.join("lake", "state", "kafka"))
    parser.add_argument("--port", type=int, default=9092)
    args = parser.parse_args(argv)
    try:
        if args.action == "up":
            print(f"kafka broker up at {up(args.dir, args.port)} (state and log in {args.dir})")
        else:
            print("kafka broker stopped" if down(args.dir) else f"no kafka broker running from {args.dir}")
    except BrokerError as e:
        print(f"local_kafka: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
