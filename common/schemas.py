"""Declared source schemas (conf/schemas.yaml) as typed objects."""
from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import types as T

from common.config import read_conf_file
from common.errors import ConfigError

SPARK_TYPES = {"int": T.IntegerType(), "long": T.LongType(), "double": T.DoubleType(), "string": T.StringType()}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    key: bool = False
    required: bool = False
    min: float | None = None
    max: float | None = None

    @property
    def spark_type(self) -> T.DataType:
        return SPARK_TYPES[self.type]


@dataclass(frozen=True)
class SourceSchema:
    name: str
    file: str | None          # the raw file of a batch source; None for a stream
    columns: tuple[Column, ...]

    @property
    def header(self) -> str:
        return ",".join(c.name for c in self.columns)

    @property
    def struct(self) -> T.StructType:
        return T.StructType([T.StructField(c.name, c.spark_type, not c.key) for c in self.columns])


def source_schemas(dataset: str) -> dict[str, SourceSchema]:
    """The batch sources (one raw file each) of a dataset."""
    return {n: s for n, s in _declared(dataset).items() if s.file}


def stream_schema(dataset: str, name: str) -> SourceSchema:
    schema = _declared(dataset).get(name)
    if schema is None or schema.file:
        raise ConfigError(f"no stream '{name}' declared for dataset '{dataset}' in conf/schemas.yaml")
    return schema


def _declared(dataset: str) -> dict[str, SourceSchema]:
    declared = read_conf_file("schemas.yaml")
    if dataset not in declared:
        raise ConfigError(f"no schemas declared for dataset '{dataset}' in conf/schemas.yaml")
    out = {}
    for name, spec in declared[dataset].items():
        cols = []
        for col in spec["columns"]:
            if col.get("type") not in SPARK_TYPES:
                raise ConfigError(f"conf/schemas.yaml: {dataset}.{name}.{col.get('name')} has unknown type {col.get('type')!r}")
            cols.append(Column(**col))
        out[name] = SourceSchema(name, spec.get("file"), tuple(cols))
    return out
