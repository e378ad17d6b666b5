"""The catalogue against itself, the job registry, and what Delta reports of a lake the jobs built."""
from __future__ import annotations

import dataclasses

import pytest
from pyspark.sql import functions as F

from common import catalogue, tables
from common.config import load_config
from common.errors import ConfigError
from jobs.runners.registry import JOBS
from jobs.runners.runner import run_job
from jobs.ops.show import show_tables
from jobs.serving import serving

BATCH_JOBS = ["extract", "full_load", "silver", "gold", "daily"]
DECLARED = list(catalogue.TABLES.values())
STORED = [t for t in DECLARED if not t.view]


def test_each_table_is_declared_once_under_a_valid_name():
    constants = [v for v in vars(catalogue).values() if isinstance(v, catalogue.Table)]
    assert sorted(t.name for t in constants) == sorted(catalogue.TABLES)  # no constant left out of TABLES
    for name, table in catalogue.TABLES.items():
        assert table.name == name and table.layer in catalogue.LAYERS
        assert table.table and table.table.replace("_", "").isalnum() and table.table.islower(), name
        assert table.description and "\n" not in table.description


def test_every_writer_is_a_job_of_the_registry():
    for table in STORED:
        assert table.writers, f"{table.name} names no job that writes it"
        assert set(table.writers) <= set(JOBS) | {catalogue.ANY_JOB}, table.name
    assert all(not t.writers and not t.partition_by and not t.properties for t in DECLARED if t.view)


def test_the_serving_views_are_the_catalogues_views_over_declared_tables():
    views = serving._views(load_config("test"))
    assert set(views) == {t.name for t in DECLARED if t.view}
    assert all(catalogue.TABLES[name].view is False for reads, _ in views.values() for name in reads)


def test_a_table_is_frozen_and_its_statistics_skip_the_ingest_metadata():
    with pytest.raises(dataclasses.FrozenInstanceError):
        catalogue.SILVER_RATINGS.key = ()
    columns = ["userId", "movieId", *catalogue.INGEST_METADATA]
    assert catalogue.BRONZE_RATINGS.delta_properties(columns) == {"delta.dataSkippingStatsColumns": "userId,movieId"}
    assert catalogue.SILVER_RATINGS.delta_properties(columns) == {"delta.enableChangeDataFeed": "true"}


def test_an_undeclared_table_has_no_location():
    cfg = load_config("test", ["lake.root=/tmp/nowhere"])
    assert tables.location(cfg, catalogue.SILVER_RATINGS.name) == "/tmp/nowhere/silver/ratings"
    for name in ("silver.nothing_here", "silver", "nolayer.ratings"):
        with pytest.raises(ConfigError, match=f"undeclared table '{name}'"):
            tables.location(cfg, name)
    with pytest.raises(ConfigError, match="undeclared table 'silver.nothing_here'"):
        catalogue.of_source("silver", "nothing_here")


@pytest.fixture(scope="module")
def built(spark, tmp_path_factory):
    """A tiny lake the batch jobs wrote."""
    cfg = load_config("test", [f"lake.root={tmp_path_factory.mktemp('catalogue')}/lake"])
    for job in BATCH_JOBS:
        run_job(spark, cfg, job)
    return cfg


def test_every_table_in_the_lake_is_declared_and_the_jobs_wrote_what_they_declare(built):
    found = set(tables.delta_folders(built))
    assert found <= set(catalogue.TABLES)
    ran = set(BATCH_JOBS) | {catalogue.ANY_JOB}
    assert {t.name for t in STORED if set(t.writers) <= ran} <= found  # declared as the batch jobs' own, and there
    assert all(set(catalogue.TABLES[name].writers) & ran for name in found)


def test_delta_reports_the_declared_partitioning_and_properties(spark, built):
    for name in tables.known_tables(built):
        declared = catalogue.TABLES[name]
        detail = tables.delta_table(spark, built, name).detail().select("partitionColumns", "properties").first()
        columns = tables.read(spark, built, name).columns
        assert detail.partitionColumns == list(declared.partition_by), name
        assert detail.properties == declared.delta_properties(columns), name


def test_keyed_tables_hold_one_row_per_key(spark, built):
    for name in tables.known_tables(built):
        key = list(catalogue.TABLES[name].key)
        if not key:
            continue
        df = tables.read(spark, built, name)
        counts = df.agg(F.count("*").alias("rows"), F.count_distinct(*key).alias("keys")).first()
        assert counts.rows == counts.keys, (name, counts)
        # Every keyed table holds rows but the real-time view, empty until the speed layer merges.
        assert counts.rows > 0 or name == catalogue.GOLD_MOVIE_STATS_REALTIME.name, name
        assert df.where(" OR ".join(f"`{k}` IS NULL" for k in key)).count() == 0, name


def test_a_delta_folder_the_catalogue_does_not_declare_is_shown_and_left_alone(spark, tmp_path):
    cfg = load_config("test", [f"lake.root={tmp_path}/lake"])
    spark.range(2).withColumnRenamed("id", "movieId").write.format("delta").save(
        tables.location(cfg, catalogue.SILVER_LINKS.name))
    spark.range(3).write.format("delta").save(f"{tmp_path}/lake/gold/scratch")  # someone's own table
    # A stale table where a view of the catalogue now stands (a lake scored before it became a view).
    spark.range(1).write.format("delta").save(f"{tmp_path}/lake/gold/recommendations")
    assert sorted(tables.delta_folders(cfg)) == sorted([catalogue.SILVER_LINKS.name, "gold.scratch",
                                                        catalogue.GOLD_RECOMMENDATIONS.name])
    assert tables.known_tables(cfg) == [catalogue.SILVER_LINKS.name]  # what status, maintain and serving see
    shown = {line.split()[0]: line for line in show_tables(spark, cfg)[1:]}
    assert "not in the catalogue" in shown["gold.scratch"]
    assert shown[catalogue.SILVER_LINKS.name].split()[1:3] == ["0", "2"]  # version, rows
