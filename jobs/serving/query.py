"""`lakejobs query`: one read-only Spark SQL query over the lake's tables and the serving view.

spark.sql() runs a command (DELETE, DROP, INSERT, CACHE, SET ...) at once, so the text is first
parsed by Spark's own parser and its plan checked: every node must be a query node, every
relation a table of the lake (or a CTE), no reflection. Only then is it analysed, and the
analysed plan checked again (what a name resolved to), before anything runs.
"""
from __future__ import annotations

import logging
from typing import Iterator

from pyspark.sql import DataFrame, SparkSession

from common import catalogue
from common.config import Config
from common.errors import QueryError

# Plan nodes a plain query is made of (Spark's parser output, by class): anything else — a command,
# an INSERT, a script TRANSFORM (it runs a shell), a table-valued function that reads a path — is refused.
_QUERY_NODES = frozenset({
    "Project", "Filter", "Aggregate", "Sort", "GlobalLimit", "LocalLimit", "Offset", "Tail", "Join", "LateralJoin",
    "Union", "Intersect", "Except", "Distinct", "Deduplicate", "SubqueryAlias", "UnresolvedWith", "Window",
    "WithWindowDefinition", "Generate", "Pivot", "Unpivot", "Sample", "RepartitionByExpression", "Repartition",
    "UnresolvedHint", "UnresolvedHaving", "UnresolvedSubqueryColumnAliases", "RelationTimeTravel", "PipeOperator",
    "UnresolvedRelation", "OneRowRelation", "LocalRelation", "UnresolvedInlineTable",
})
_PLAN_PACKAGES = ("org.apache.spark.sql.catalyst.plans.logical.", "org.apache.spark.sql.catalyst.analysis.")
# Builtins that call any static Java method: a query must not reach the JVM through them.
_REFLECTION = frozenset({"reflect", "java_method", "try_reflect"})
# Leaves of an analysed plan that read nothing from outside the query itself.
_INLINE_LEAVES = frozenset({"OneRowRelation", "LocalRelation", "CTERelationRef"})


def run(spark: SparkSession, cfg: Config, sql: str, limit: int) -> None:
    """Print what a read-only query over the lake returns; anything else is one line naming the problem."""
    from pyspark.errors import AnalysisException
    from pyspark.logger import PySparkLogger

    from jobs.serving import serving

    # PySpark also logs each SQL error with the JVM's stack trace; the error itself is reported below.
    PySparkLogger.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)
    readable = serving.register(spark, cfg)
    here = f"tables here: {', '.join(readable) or 'none yet (make run)'}"
    try:
        read_only(spark, cfg, sql, readable).show(limit, truncate=False)
    except AnalysisException as e:  # ParseException is one too
        raise QueryError(f"{_first_line(e)} -- {here}") from None
    except QueryError as e:
        raise QueryError(f"{e} -- {here}") from None


def read_only(spark: SparkSession, cfg: Config, sql: str, readable: list[str]) -> DataFrame:
    """The query as a DataFrame, nothing run yet; QueryError unless it only reads the `readable` tables."""
    parsed = spark._jsparkSession.sessionState().sqlParser().parsePlan(sql)
    ctes = set()
    for node in _nodes(parsed):
        kind = _kind(node)
        if kind not in _QUERY_NODES:
            raise QueryError(f"refused: {kind} is not part of a read-only query; `lakejobs query` runs one "
                             "SELECT over the lake's tables")
        if kind == "UnresolvedWith":
            relations = node.cteRelations()
            ctes.update(relations.apply(i)._1().lower() for i in range(relations.size()))
        if kind == "UnresolvedRelation":
            parts = _seq(node.multipartIdentifier())
            if not (_lake_shaped(cfg, parts) or (len(parts) == 1 and parts[0].lower() in ctes)):
                raise QueryError(f"refused: {'.'.join(parts)} is not a table of the lake")
            if not node.options().isEmpty():
                raise QueryError(f"refused: options on table {'.'.join(parts)}")
        _check_functions(node)
    df = spark.sql(sql)  # analysed now, still not run: a query is lazy
    views = {name.lower() for name in readable}
    for node in _nodes(df._jdf.queryExecution().analyzed(), stop_at_views=views):
        kind = _kind(node)
        if node.children().isEmpty() and node.innerChildren().isEmpty() and kind not in _INLINE_LEAVES:
            name = _table_name(node)
            # With a catalog (Databricks) the lake's tables are the catalog's <layer> schemas; with a
            # folder, the ones serving.register made readable in this session.
            if name is None or not (name in views or (cfg["lake.catalog"] and name.split(".")[0] in catalogue.LAYERS)):
                raise QueryError(f"refused: the query reads {name or kind}, which is not a table of the lake")
        _check_functions(node)
    return df


def _lake_shaped(cfg: Config, parts: list[str]) -> bool:
    """<layer>.<table>, optionally behind the lake's catalog: the only names worth resolving."""
    lowered = [p.lower() for p in parts]
    catalogs = {"spark_catalog", str(cfg["lake.catalog"] or "spark_catalog").lower()}
    return (len(lowered) == 2 or (len(lowered) == 3 and lowered[0] in catalogs)) and lowered[-2] in catalogue.LAYERS


def _table_name(node) -> str | None:
    """'layer.table' of the catalog table a relation (or view) reads; None for a path or anything else."""
    kind = _kind(node)
    if kind == "DataSourceV2Relation":
        ident = node.identifier()
        return ".".join([*ident.get().namespace(), ident.get().name()]).lower() if ident.isDefined() else None
    if kind == "View":
        table = node.desc()
    elif kind.endswith(".LogicalRelation") and node.catalogTable().isDefined():
        table = node.catalogTable().get()
    else:
        return None
    ident = table.identifier()
    return f"{ident.database().get()}.{ident.table()}".lower() if ident.database().isDefined() else None


def _check_functions(node) -> None:
    for expr in _expressions(node):
        kind = expr.getClass().getSimpleName()
        called = _seq(expr.nameParts())[-1].lower() if kind == "UnresolvedFunction" else None
        if called in _REFLECTION or kind in ("CallMethodViaReflection", "TryReflect"):
            raise QueryError(f"refused: {called or 'reflect'}() calls Java methods")


def _nodes(plan, stop_at_views: set[str] = frozenset()) -> Iterator:
    """Every plan node: children, CTE definitions and subqueries in expressions (innerChildren). A view
    of the lake (the serving view) is one leaf: what it reads is its own, checked when it was made."""
    stack = [plan]
    while stack:
        node = stack.pop()
        if _kind(node) == "View" and _table_name(node) in stop_at_views:
            continue
        yield node
        stack.extend(_seq(node.children()) + _seq(node.innerChildren()))


def _expressions(node) -> Iterator:
    stack = _seq(node.expressions())
    while stack:
        expr = stack.pop()
        yield expr
        stack.extend(_seq(expr.children()))


def _kind(node) -> str:
    cls = node.getClass()
    name = cls.getName()
    return cls.getSimpleName() if name.startswith(_PLAN_PACKAGES) else name


def _seq(seq) -> list:
    return [seq.apply(i) for i in range(seq.size())]


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0]
