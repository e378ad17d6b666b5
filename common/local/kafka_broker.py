"""A real single-node Kafka broker (KRaft: broker and controller in one JVM) on 127.0.0.1.

For the speed layer's Kafka path on a machine without Docker: `make kafka-up` / `make kafka-down`,
and tests that start their own. The jars come from Maven Central (`jvm/kafka/pom.xml`, resolved
into .kafka/libs by `make setup`). Everything the broker writes lives in one folder: its
config, its log segments, its log file and its pid file.

    python -m common.local.kafka_broker up   --dir lake/state/kafka --port 9092
    python -m common.local.kafka_broker down --dir lake/state/kafka
"""
from __future__ import annotations

import base64
import os
import subprocess
import sys
import uuid

from common.local import servers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
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


free_port = servers.free_port


def _java(main: str, *args: str) -> list[str]:
    if not os.path.isdir(LIBS):
        raise servers.ServerError(f"no Kafka jars in {LIBS}: run `make setup` first")
    return ["java", "-Xmx512m", "-cp", os.path.join(LIBS, "*"), main, *args]


def up(folder: str, port: int = 9092, timeout_s: float = 60.0) -> str:
    """Start a broker whose state lives in folder (formatted on first use); return its bootstrap address."""
    folder = os.path.abspath(folder)
    os.makedirs(folder, exist_ok=True)
    config = os.path.join(folder, "server.properties")
    data = os.path.join(folder, "data")
    with open(config, "w") as f:
        f.write(PROPERTIES.format(port=port, controller_port=free_port(), data=data))
    if not os.path.exists(os.path.join(data, "meta.properties")):
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        subprocess.run(_java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", config),
                       check=True, capture_output=True, text=True)
    servers.start("broker", _java("kafka.Kafka", config), folder, port, timeout_s)
    return f"127.0.0.1:{port}"


def down(folder: str) -> bool:
    """Stop the broker started from folder; False if none was running."""
    return servers.stop("broker", folder)


def main(argv: list[str] | None = None) -> int:
    return servers.main("kafka broker", "common.local.kafka_broker", up, down, os.path.join("lake", "state", "kafka"), 9092, argv)


if __name__ == "__main__":
    sys.exit(main())
