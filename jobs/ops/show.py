"""What the lake holds: every Delta table with its location, current version and row count."""
from __future__ import annotations

from pyspark.sql import SparkSession

from common import tables
from common.config import Config


def show_tables(spark: SparkSession, cfg: Config) -> list[str]:
    lines = [f"{'table':<28} {'version':>7} {'rows':>10}  location"]
    for name in tables.known_tables(cfg):
        version = tables.current_version(spark, cfg, name).version
        rows = tables.read(spark, cfg, name).count()
        lines.append(f"{name:<28} {version:>7} {rows:>10}  {tables.location(cfg, name)}")
    return lines
