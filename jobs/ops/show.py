"""`lakejobs tables`: the catalogue's tables beside what the lake holds (version, rows, location)."""
from __future__ import annotations

from pyspark.sql import SparkSession

from common import catalogue, tables
from common.config import Config

_ROW = "{:<32} {:>7} {:>10}  {:<24} {:<14} {}"


def show_tables(spark: SparkSession, cfg: Config) -> list[str]:
    """One line per declared table (a view, or one not written yet, says so), then any Delta table of
    the lake the catalogue does not declare."""
    lines = [_ROW.format("table", "version", "rows", "key", "written by", "location")]
    for entry in catalogue.TABLES.values():
        writers = ", ".join("any job" if w == catalogue.ANY_JOB else w for w in entry.writers) or "-"
        key = ", ".join(entry.key) or "-"
        if entry.view:
            lines.append(_ROW.format(entry.name, "", "", key, writers, "view of the serving layer"))
        elif not tables.exists(spark, cfg, entry.name):
            lines.append(_ROW.format(entry.name, "", "", key, writers, "not written yet"))
        else:
            version = tables.current_version(spark, cfg, entry.name).version
            rows = tables.read(spark, cfg, entry.name).count()
            lines.append(_ROW.format(entry.name, version, rows, key, writers, tables.location(cfg, entry.name)))
    for name in tables.delta_folders(cfg):
        if name not in catalogue.TABLES:
            layer, _, table = name.partition(".")
            lines.append(_ROW.format(name, "", "", "", "", f"not in the catalogue: {tables.folder(cfg, layer, table)}"))
    return lines
