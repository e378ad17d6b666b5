"""The speed layer's Kafka path end to end, against a real broker this module starts (KRaft, on a
free 127.0.0.1 port, from the jars `make setup` resolves into .kafka/)."""
from __future__ import annotations

import pytest

from common import raw_zone, tables
from common.catalogue import BRONZE_RATING_EVENTS, QUARANTINE_RATING_EVENTS
from common.local import kafka_broker
from jobs.speed.events import Faults, read_held_back, replay_lines
from jobs.batch.extract import HOLDBACK_FILE
from jobs.runners.runner import run_job
from tests.lake_checks import assert_serving_equals_recompute, assert_silver_equals_oracle


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("kafka"))
    bootstrap = kafka_broker.up(folder, kafka_broker.free_port())
    yield bootstrap
    kafka_broker.down(folder)


def test_events_published_to_kafka_are_merged_exactly_once(spark, cfg, broker):
    cfg = cfg.with_overrides({"stream.source": "kafka", "stream.kafka_bootstrap": broker,
                              "stream.kafka_topic": "rating-events-e2e", "stream.holdback_fraction": 0.2,
                              "simulator.events_per_file": 400, "simulator.max_events": 250,
                              "simulator.duplicate_rate": 0.05, "simulator.rerating_rate": 0.1,
                              "simulator.malformed_rate": 0.02})
    for job in ("extract", "full_load", "silver", "gold"):
        run_job(spark, cfg, job)
    for _ in range(2):  # two bursts, each merged by an incremental (availableNow) run
        assert run_job(spark, cfg, "simulate").counts["events.sent"] == 250
        run_job(spark, cfg, "speed")
        assert_serving_equals_recompute(spark, cfg)
    # Oracle: the simulator's lines recomputed from the held-back file, not read back from Kafka.
    with open(raw_zone.find(cfg).file(HOLDBACK_FILE), "rb") as holdback:
        rows = read_held_back(holdback.read())
    faults = Faults(**{k: cfg[f"simulator.{k}"] for k in Faults.__dataclass_fields__})
    lines = replay_lines(rows, faults, cfg["simulator.seed"])[:500]
    assert_silver_equals_oracle(spark, cfg, lines)
    logged = tables.read(spark, cfg, BRONZE_RATING_EVENTS.name)
    quarantined = tables.read(spark, cfg, QUARANTINE_RATING_EVENTS.name)
    assert logged.count() + quarantined.count() == 500
    assert logged.where(~logged._source_file.startswith("rating-events-e2e:0:")).count() == 0
    assert run_job(spark, cfg, "speed").counts["events"] == 0  # a rerun finds nothing new in the topic
