"""What the lake holds: every Delta table with its location, current version and row count."""
from __future__ import annotations

from pyspark.sql import SparkSession

from common import tables
from common.config import Config

TABLES = [f"bronze.{n}" for n in ("ratings", "movies", "tags", "links")] + \
         [f"quarantine.{n}" for n in ("ratings", "movies", "tags", "links")] + \
         [f"silver.{n}" for n in ("ratings", "movies", "tags", "links")] + \
         ["gold.movie_stats_batch", "gold.genre_stats", "gold.user_activity", "state.ledger"]


def show_tables(spark: SparkSession, cfg: Config) -> list[str]:
    lines = [f"{'table':<24} {'version':>7} {'rows':>10}  location"]
    for name in TABLES:
        if not tables.exists(spark, cfg, name):
            continue
        version = tables.current_version(spark, cfg, name).version
        rows = tables.read(spark, cfg, name).count()
        lines.append(f"{name:<24} {version:>7} {rows:>10}  {tables.location(cfg, name)}")
    return lines
