"""Expectations (conf/schemas.yaml): rules with a policy on the rows that pass the declared checks.

`apply` adds one boolean column per rule, true where a row that passed the declared checks breaks
it, and gives a row broken by an expect_or_drop rule that rule's name as its quarantine reason (the
first such rule wins, as the declared checks' first failure does). Counting the columns is the
caller's: the full-load counts them before it writes anything, so an expect_or_fail rule stops the
load with nothing committed.
"""
from __future__ import annotations

from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from common.errors import ConfigError, ExpectationError
from common.schemas import Expectation, SourceSchema
from jobs.batch.parsing import REASON


def broken(index: int) -> str:
    return f"_broken_{index}"


def apply(classified: DataFrame, schema: SourceSchema, references: dict[str, DataFrame]) -> DataFrame:
    """`classified` with a `_broken_<i>` column per rule and expect_or_drop reasons set. references:
    for each `column IN source.key` rule, by rule name, a DataFrame of the allowed keys (column `key`)."""
    passed = F.col(REASON).isNull()
    out = classified
    for i, rule in enumerate(schema.expectations):
        if rule.reference:
            keys = references[rule.name].select(F.col("key").alias(f"_key_{i}")).distinct()
            out = out.join(F.broadcast(keys), F.col(rule.reference.column) == F.col(f"_key_{i}"), "left")
            holds = F.col(f"_key_{i}").isNotNull()
        else:
            holds = F.coalesce(_condition(classified, schema, rule), F.lit(False))  # null: not true, broken
        out = out.withColumn(broken(i), passed & ~holds)
    drops = [(F.col(broken(i)), F.lit(r.name)) for i, r in enumerate(schema.expectations) if r.policy == "expect_or_drop"]
    reason = F.col(REASON)
    for condition, name in reversed(drops):
        reason = F.when(condition, name).otherwise(reason)
    return out.withColumn(REASON, reason).drop(*[f"_key_{i}" for i in range(len(schema.expectations))])


def _condition(classified: DataFrame, schema: SourceSchema, rule: Expectation) -> Column:
    try:  # parsed and resolved now, on the source's columns: a typo is a config error, not a stack trace
        condition = F.expr(rule.condition)
        classified.select(*[c.name for c in schema.columns]).where(condition)
    except AnalysisException as e:  # ParseException included
        raise ConfigError(f"conf/schemas.yaml: {schema.name} expectation '{rule.name}': '{rule.condition}' is not a "
                          f"SQL condition on {', '.join(c.name for c in schema.columns)}: "
                          f"{str(e).splitlines()[0]}") from None
    return condition


def count_columns(schema: SourceSchema) -> list[Column]:
    """Aggregates counting each rule's broken rows, named `expect.<rule name>`."""
    return [F.count_if(F.col(broken(i))).alias(f"expect.{r.name}") for i, r in enumerate(schema.expectations)]


def first_broken_fail_rule(schema: SourceSchema, counts: dict[str, int]) -> tuple[Expectation, int] | None:
    """The first expect_or_fail rule some rows broke (counts: count_columns' results), and how many."""
    return next(((r, counts[f"expect.{r.name}"]) for r in schema.expectations
                 if r.policy == "expect_or_fail" and counts[f"expect.{r.name}"]), None)


def refuse(file: str, schema: SourceSchema, counts: dict[str, int], max_bad_fraction: float) -> None:
    """Stop the load (nothing is committed yet) when an expect_or_fail rule is broken, or when more
    than max_bad_fraction of the data lines are quarantined."""
    if broken_fail_rule := first_broken_fail_rule(schema, counts):
        rule, n = broken_fail_rule
        raise ExpectationError(f"{file}: {n:,} rows break {rule.label}; nothing was loaded. Fix the source, or "
                               "change the rule's policy in conf/schemas.yaml")
    data = counts["lines"] - counts["headers"]
    if data and counts["malformed"] / data > max_bad_fraction:
        raise ExpectationError(
            f"{file}: {counts['malformed']:,} of {data:,} data lines ({counts['malformed'] / data:.1%}) are malformed "
            f"or dropped, over max_bad_fraction {max_bad_fraction:g}; nothing was loaded. Run with "
            f"--conf sources.max_bad_fraction=1 to load it anyway and see the reasons in quarantine.{schema.name}")
