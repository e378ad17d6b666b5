"""Declared source schemas (conf/schemas.yaml) as typed objects."""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

from pyspark.sql import types as T

from common.config import read_conf_file
from common.errors import ConfigError

SPARK_TYPES = {"int": T.IntegerType(), "long": T.LongType(), "double": T.DoubleType(), "string": T.StringType()}
# The encodings a raw file may declare, by the names Spark's decode() takes. Latin-1 maps every byte to
# a character, so a Latin-1 file has no undecodable bytes.
ENCODINGS = {"utf-8": "UTF-8", "utf8": "UTF-8",
             "iso-8859-1": "ISO-8859-1", "latin-1": "ISO-8859-1", "latin1": "ISO-8859-1"}


@dataclass(frozen=True)
class Dialect:
    """How a raw file's lines are split into fields. The defaults are RFC 4180 as ml-latest-small writes it."""
    separator: str = ","        # may be several characters (`::`)
    quote: str | None = '"'     # None: no field is quoted, a quote character is data
    header: bool = True         # False: every line is data, the declared columns in order are its fields
    encoding: str = "UTF-8"     # UTF-8 or ISO-8859-1

    @property
    def python_encoding(self) -> str:
        return "latin-1" if self.encoding == "ISO-8859-1" else "utf-8"


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


# The vocabulary of Databricks/Spark Declarative Pipelines: keep the row and count it; quarantine it
# with the rule's name as its reason; stop the load before anything is committed.
POLICIES = ("expect", "expect_or_drop", "expect_or_fail")
_REFERENCE = re.compile(r"^\s*(\w+)\s+IN\s+(\w+)\.(\w+)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Reference:
    """`column IN source.key`: the row's column must be a key of the other source's good rows."""
    column: str
    source: str
    key: str


@dataclass(frozen=True)
class Expectation:
    name: str
    policy: str                   # one of POLICIES
    condition: str                # a SQL condition on the row's columns, or `column IN source.key`
    reference: Reference | None   # the parsed `column IN source.key` form, else None

    @property
    def label(self) -> str:
        return f"{self.policy} '{self.name}' ({self.condition})"


@dataclass(frozen=True)
class SourceSchema:
    name: str
    file: str | None          # the raw file of a batch source; None for a stream
    columns: tuple[Column, ...]
    expectations: tuple[Expectation, ...] = ()
    max_bad_fraction: float | None = None  # None: sources.max_bad_fraction applies
    dialect: Dialect = Dialect()
    genre_flags: tuple[tuple[str, str], ...] = ()  # (flag column, the genre it stands for), in order

    @property
    def header(self) -> str:
        return self.dialect.separator.join(c.name for c in self.columns)

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
    return parse_schemas(read_conf_file("schemas.yaml"), dataset)


def parse_schemas(declared: dict, dataset: str) -> dict[str, SourceSchema]:
    """The sources of one dataset of a schemas.yaml document, checked."""
    if dataset not in declared:
        raise ConfigError(f"raw.dataset is '{dataset}': conf/schemas.yaml declares no such dataset "
                          f"(it declares {', '.join(sorted(declared))})")
    out = {}
    for name, spec in declared[dataset].items():
        where = f"conf/schemas.yaml: {dataset}.{name}"
        if not spec.get("columns"):
            raise ConfigError(f"{where}.columns: none declared; every source needs its columns, in file order "
                              "(a file without a header is read by them)")
        cols = []
        for col in spec["columns"]:
            if col.get("type") not in SPARK_TYPES:
                raise ConfigError(f"{where}.{col.get('name')} has unknown type {col.get('type')!r}")
            cols.append(Column(**col))
        fraction = spec.get("max_bad_fraction")
        if fraction is not None and not (isinstance(fraction, (int, float)) and 0 <= fraction <= 1):
            raise ConfigError(f"{where}.max_bad_fraction is {fraction!r}; expected 0 to 1")
        out[name] = SourceSchema(name, spec.get("file"), tuple(cols), (), fraction, parse_dialect(where, spec),
                                 _genre_flags(where, spec, cols))
    for name, spec in declared[dataset].items():  # references are checked once every source is known
        rules = tuple(_expectation(f"{dataset}.{name}", rule, out[name], out) for rule in spec.get("expectations", []))
        names = [r.name for r in rules]
        if len(set(names)) != len(names):
            raise ConfigError(f"conf/schemas.yaml: {dataset}.{name} has two expectations of the same name")
        out[name] = replace(out[name], expectations=rules)
    return out


def _expectation(where: str, rule: dict, schema: SourceSchema, sources: dict[str, SourceSchema]) -> Expectation:
    policies = [p for p in POLICIES if p in (rule or {})]
    unknown = set(rule or {}) - {"name", *POLICIES}
    if not isinstance(rule, dict) or not rule.get("name") or len(policies) != 1 or unknown:
        raise ConfigError(f"conf/schemas.yaml: {where}.expectations has {rule!r}; expected "
                          f"{{name: ..., <one of {', '.join(POLICIES)}>: <condition>}}")
    condition = str(rule[policies[0]])
    reference = None
    if match := _REFERENCE.match(condition):
        column, source, key = match.groups()
        other = sources.get(source)
        if column not in {c.name for c in schema.columns} or other is None or key not in {c.name for c in other.columns}:
            raise ConfigError(f"conf/schemas.yaml: {where} expectation '{rule['name']}': '{condition}' needs a column "
                              f"{column} here and a declared source {source} with a column {key}")
        reference = Reference(column, source, key)
    return Expectation(str(rule["name"]), policies[0], condition, reference)


def parse_dialect(where: str, spec: dict) -> Dialect:
    """A source's `dialect:` (conf/schemas.yaml), each key defaulting to today's CSV."""
    given = spec.get("dialect") or {}
    if not isinstance(given, dict) or set(given) - set(Dialect.__dataclass_fields__):
        raise ConfigError(f"{where}.dialect is {given!r}; expected a mapping of separator, quote, header, encoding")
    dialect = Dialect(**given)
    if not isinstance(dialect.separator, str) or not dialect.separator or "\n" in dialect.separator:
        raise ConfigError(f"{where}.dialect.separator is {dialect.separator!r}; expected one or more characters "
                          "(not a newline), e.g. ',', '\\t', '|' or '::'")
    if dialect.quote is not None and (not isinstance(dialect.quote, str) or len(dialect.quote) != 1
                                      or dialect.quote in dialect.separator):
        raise ConfigError(f"{where}.dialect.quote is {dialect.quote!r}; expected one character that is not in the "
                          "separator, or null (no quoting)")
    if not isinstance(dialect.header, bool):
        raise ConfigError(f"{where}.dialect.header is {dialect.header!r}; expected true or false")
    encoding = ENCODINGS.get(str(dialect.encoding).lower())
    if encoding is None:
        raise ConfigError(f"{where}.dialect.encoding is {dialect.encoding!r}; expected UTF-8 or ISO-8859-1 (latin-1)")
    return replace(dialect, encoding=encoding)


def _genre_flags(where: str, spec: dict, cols: list[Column]) -> tuple[tuple[str, str], ...]:
    """`genre_flags: {column: genre, ...}`: flag columns (1 = the movie has that genre), in the order kept."""
    flags = spec.get("genre_flags") or {}
    names = {c.name for c in cols}
    if not isinstance(flags, dict) or any(column not in names or not isinstance(genre, str) or not genre
                                          for column, genre in flags.items()):
        raise ConfigError(f"{where}.genre_flags is {flags!r}; expected {{<declared column>: <genre name>, ...}}")
    return tuple(flags.items())
