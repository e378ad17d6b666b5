"""`lakejobs query` is read-only: one query over the lake's tables and the serving view, nothing else.

Each refused statement is run through the CLI's main() on a small lake, and the lake, the session
catalog and the file system are compared before and after: a refusal that let the statement run
first would show here.
"""
from __future__ import annotations

import os

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from common import tables
from common.catalogue import (
    GOLD_MOVIE_STATS, GOLD_MOVIE_STATS_BATCH, GOLD_MOVIE_STATS_REALTIME, SILVER_MOVIES, SILVER_RATINGS)
from common.config import load_config
from common.errors import QueryError
from jobs.runners import cli
from jobs.serving import serving

RATINGS = [(1, 10, 4.0, 100), (1, 20, 3.0, 200), (2, 10, 5.0, 300), (3, 30, 2.0, 400)]
MOVIES = [(10, "Ten", 1990), (20, "Twenty", 2000), (30, "Thirty", 2010)]


@pytest.fixture(scope="module")
def lake_cfg(spark, tmp_path_factory):
    """One small lake for the module: every test leaves it as it was, or fails."""
    cfg = load_config("test", [f"lake.root={tmp_path_factory.mktemp('query') / 'lake'}"])
    tables.overwrite(spark.createDataFrame(RATINGS, "userId int, movieId int, rating double, timestamp long"),
                     cfg, SILVER_RATINGS.name)
    tables.overwrite(spark.createDataFrame(MOVIES, "movieId int, title string, year int"), cfg, SILVER_MOVIES.name)
    tables.overwrite(spark.createDataFrame([(10, 2, 9.0, 0), (20, 1, 3.0, 0)],
                                           "movieId int, rating_count long, rating_sum double, silver_version long"),
                     cfg, GOLD_MOVIE_STATS_BATCH.name)
    tables.overwrite(spark.createDataFrame([(30, 1, 2.0, 1)],
                                           "movieId int, count_delta long, sum_delta double, silver_version long"),
                     cfg, GOLD_MOVIE_STATS_REALTIME.name)
    serving.register(spark, cfg)  # what `lakejobs query` does first: the state compared is the one after it
    spark.sql("CREATE TABLE IF NOT EXISTS default.outside (x INT) USING parquet")  # a table the lake does not own
    return cfg


def query(cfg, sql: str) -> int:
    return cli.main(["query", sql, "--env", "test", "--conf", f"lake.root={cfg['lake.root']}"])


def lake_state(spark, cfg) -> dict:
    """Every table's version and rows, and the tables the session's catalog holds."""
    state = {name: (tables.current_version(spark, cfg, name).version,
                    sorted(map(tuple, tables.read(spark, cfg, name).collect())))
             for name in tables.known_tables(cfg)}
    state["catalog"] = sorted((t.namespace[0] if t.namespace else "", t.name)
                              for db in spark.catalog.listDatabases() for t in spark.catalog.listTables(db.name))
    return state


REFUSED = [
    ("DELETE FROM silver.ratings", "DeleteFromTable"),
    ("UPDATE silver.ratings SET rating = 0", "UpdateTable"),
    ("INSERT INTO silver.ratings SELECT * FROM silver.ratings", "InsertIntoStatement"),
    ("WITH r AS (SELECT * FROM silver.ratings) INSERT INTO silver.ratings SELECT * FROM r", "InsertIntoStatement"),
    ("MERGE INTO silver.ratings t USING silver.ratings s ON t.userId = s.userId WHEN MATCHED THEN DELETE",
     "MergeIntoTable"),
    ("DROP TABLE silver.movies", "DropTable"),
    ("TRUNCATE TABLE silver.movies", "TruncateTable"),
    ("CREATE TABLE silver.copy AS SELECT * FROM silver.ratings", "CreateTableAsSelect"),
    ("CREATE OR REPLACE TEMPORARY VIEW v AS SELECT 1", "CreateViewCommand"),
    ("SET spark.sql.shuffle.partitions = 1", "SetCommand"),
    ("CACHE TABLE silver.ratings", "CacheTable"),
    ("BEGIN DELETE FROM silver.ratings; END", "CompoundBody"),
    ("SELECT 1; DELETE FROM silver.ratings", "PARSE_SYNTAX_ERROR"),
    ("SELECT * FROM text.`/etc/passwd`", "text./etc/passwd is not a table of the lake"),
    ("SELECT * FROM parquet.`/tmp`", "parquet./tmp is not a table of the lake"),
    ("SELECT * FROM silver.ratings JOIN json.`/etc` USING (userId)", "json./etc is not a table of the lake"),
    ("SELECT (SELECT count(*) FROM text.`/etc/passwd`) AS n", "text./etc/passwd is not a table of the lake"),
    ("SELECT * FROM silver.ratings WHERE userId IN (SELECT 1 FROM csv.`/etc/hosts`)", "csv./etc/hosts is not"),
    ("SELECT * FROM default.outside", "default.outside is not a table of the lake"),
    ("SELECT * FROM outside", "outside is not a table of the lake"),
    ("SELECT * FROM range(10)", "UnresolvedTableValuedFunction"),
    ("SELECT * FROM silver.ratings WITH ('path' = '/etc')", "options on table silver.ratings"),
    ("SELECT reflect('java.lang.System', 'getProperty', 'user.home')", "reflect() calls Java methods"),
    ("SELECT * FROM silver.ratings WHERE java_method('java.lang.System', 'exit', 0) IS NULL",
     "java_method() calls Java methods"),
]


@pytest.mark.parametrize("sql, problem", REFUSED, ids=[sql[:40] for sql, _ in REFUSED])
def test_anything_but_a_query_over_the_lake_is_refused_in_one_line_and_changes_nothing(
        spark, lake_cfg, capsys, sql, problem):
    before = lake_state(spark, lake_cfg)
    assert query(lake_cfg, sql) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("lakejobs: error: ") and problem in err, err
    assert " -- tables here: " in err and err.endswith(", gold.movie_stats"), err
    assert lake_state(spark, lake_cfg) == before


def test_a_script_transform_runs_no_shell(spark, lake_cfg, tmp_path, capsys):
    marker = tmp_path / "ran"
    sql = f"SELECT TRANSFORM(userId) USING 'touch {marker}' FROM silver.ratings"
    assert query(lake_cfg, sql) == 2
    assert "refused: ScriptTransformation is not part of a read-only query" in capsys.readouterr().err
    assert not os.path.exists(marker)


def test_the_delta_path_of_a_lake_table_is_refused(spark, lake_cfg, capsys):
    # The lake's own files, by path, bypass the table names: only names are allowed.
    path = tables.location(lake_cfg, SILVER_RATINGS.name)
    assert query(lake_cfg, f"SELECT * FROM delta.`{path}`") == 2
    assert f"refused: delta.{path} is not a table of the lake" in capsys.readouterr().err


def test_a_table_the_lake_lacks_is_still_named_by_spark(spark, lake_cfg, capsys):
    assert query(lake_cfg, "SELECT * FROM gold.nothing") == 2
    err = capsys.readouterr().err
    assert "TABLE_OR_VIEW_NOT_FOUND" in err and "`gold`.`nothing`" in err


def test_select_cte_join_subquery_and_the_serving_view_still_work(spark, lake_cfg, capsys):
    from jobs.serving import query as read_only_query

    readable = serving.register(spark, lake_cfg)
    ratings = spark.createDataFrame(RATINGS, "userId int, movieId int, rating double, timestamp long")
    movies = spark.createDataFrame(MOVIES, "movieId int, title string, year int")

    def run(sql):
        return read_only_query.read_only(spark, lake_cfg, sql, readable)

    per_title = ratings.join(movies, "movieId").groupBy("title").agg(F.avg("rating").alias("mean"))
    got = run("WITH r AS (SELECT * FROM silver.ratings) "
              "SELECT m.title, AVG(r.rating) AS mean FROM r JOIN silver.movies m USING (movieId) GROUP BY m.title")
    assert_df_equality(got, per_title, ignore_row_order=True, ignore_nullable=True)

    got = run("SELECT userId FROM silver.ratings "
              "WHERE movieId IN (SELECT movieId FROM silver.movies WHERE year > 1995)")
    assert sorted(r.userId for r in got.collect()) == [1, 3]

    got = run("SELECT movieId, rating_count FROM gold.movie_stats ORDER BY movieId")
    assert [tuple(r) for r in got.collect()] == [(10, 2), (20, 1), (30, 1)]  # batch view + the real-time delta

    got = run("SELECT COUNT(*) AS n FROM silver.ratings VERSION AS OF 0")
    assert got.collect()[0].n == len(RATINGS)

    assert query(lake_cfg, "SELECT title FROM silver.movies ORDER BY movieId LIMIT 2") == 0
    printed = capsys.readouterr().out
    assert "Ten" in printed and "Twenty" in printed and "Thirty" not in printed


def test_with_a_catalog_the_lake_is_its_layer_schemas(spark, lake_cfg):
    """lake.catalog set (Databricks): the tables are the catalog's, not registered by the session."""
    from jobs.serving import query as read_only_query

    in_catalog = lake_cfg.with_overrides({"lake.catalog": "spark_catalog"})
    views = [GOLD_MOVIE_STATS.name]
    got = read_only_query.read_only(spark, in_catalog, "SELECT COUNT(*) AS n FROM spark_catalog.silver.ratings", views)
    assert got.collect()[0].n == len(RATINGS)
    assert read_only_query.read_only(spark, in_catalog, "SELECT * FROM gold.movie_stats", views).count() == 3
    for sql in ("SELECT * FROM default.outside", "SELECT * FROM spark_catalog.default.outside"):
        with pytest.raises(QueryError, match="refused: .*outside is not a table of the lake"):
            read_only_query.read_only(spark, in_catalog, sql, views)
