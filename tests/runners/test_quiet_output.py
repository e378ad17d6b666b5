"""`lakejobs pipeline`'s output is for people: what the jobs say, no Java stack trace, no WARN line from
Spark, the JVM or MLflow (spark.log_level, ERROR unless set otherwise, holds from the JVM's first line)."""
from __future__ import annotations

import re

JAVA_FRAME = re.compile(r"^\s+at [\w$.]+\(.*\)$|^Caused by: |^\S+(Exception|Error): ", re.MULTILINE)


def test_the_whole_pipeline_prints_no_stack_trace_and_no_warning(pipeline_run):
    _, stdout, stderr = pipeline_run.finished()  # the suite's one `lakejobs pipeline` (tests/conftest.py)
    output = stdout + stderr
    assert "[speed] stream speed_ratings_merge:" in stdout and "[score] wrote" in stdout  # it ran through
    assert not JAVA_FRAME.findall(output), output[-5000:]
    assert "Traceback" not in output
    # The one exception: the JVM's module system prints this for the --add-modules flag Spark's launcher
    # always adds (spark-launcher JavaModuleOptions), before any logging starts; no setting turns it off.
    jvm_line = "WARNING: Using incubator modules: jdk.incubator.vector"
    warnings = [line for line in output.splitlines() if re.search(r"\bWARN(ING)?\b", line) and line != jvm_line]
    assert not warnings, warnings
    assert "log4j profile" not in output and "does not point to the current DFS" not in output
