"""Logical tables on a lake folder: what a session sees when another process writes them."""
from __future__ import annotations

import os
import shutil

from common import tables
from common.catalogue import BRONZE_RATING_EVENTS, GOLD_DAILY_RATINGS


def test_a_table_whose_first_commit_lands_after_a_look_is_seen(spark, cfg, tmp_path):
    """Another process (the stream) creates a table's log folder, then writes its first commit. A
    session that looked in between must see the table once the commit is there: a batch recompute
    asking whether bronze.rating_events exists would otherwise leave every streamed event out."""
    committed = str(tmp_path / "committed")
    spark.range(3).write.format("delta").save(committed)
    events = tables.location(cfg, BRONZE_RATING_EVENTS.name)
    os.makedirs(os.path.join(events, "_delta_log"))  # the writer has begun: a log folder, no commit
    assert not tables.exists(spark, cfg, BRONZE_RATING_EVENTS.name)
    shutil.rmtree(events)
    shutil.copytree(committed, events)  # its commit lands, written by another JVM than this session's
    assert tables.exists(spark, cfg, BRONZE_RATING_EVENTS.name)
    assert tables.read(spark, cfg, BRONZE_RATING_EVENTS.name).count() == 3


def test_a_table_that_is_not_there_does_not_exist(spark, cfg):
    assert not tables.exists(spark, cfg, GOLD_DAILY_RATINGS.name)
