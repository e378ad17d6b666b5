"""`lakejobs pipeline`'s output is for people: what the jobs say, no Java stack trace, no WARN line from
Spark, the JVM or MLflow (spark.log_level, ERROR unless set otherwise, holds from the JVM's first line)."""
from __future__ import annotations

import os
import re
import subprocess
import sys

LAKEJOBS = os.path.join(os.path.dirname(sys.executable), "lakejobs")
JAVA_FRAME = re.compile(r"^\s+at [\w$.]+\(.*\)$|^Caused by: |^\S+(Exception|Error): ", re.MULTILINE)


def test_the_whole_pipeline_prints_no_stack_trace_and_no_warning(tmp_path):
    done = subprocess.run([LAKEJOBS, "pipeline", "--env", "test", "--conf", f"lake.root={tmp_path / 'lake'}",
                           "--conf", "stream.holdback_fraction=0.05"],  # so that the speed layer has events to merge
                          capture_output=True, text=True, timeout=3600)  # a hang guard: on a loaded 2-core machine the pipeline has taken over 30 min
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    assert "[speed] stream speed_ratings_merge:" in done.stdout and "[score] wrote" in done.stdout  # it ran through
    assert not JAVA_FRAME.findall(output), output[-5000:]
    assert "Traceback" not in output
    # The one exception: the JVM's module system prints this for the --add-modules flag Spark's launcher
    # always adds (spark-launcher JavaModuleOptions), before any logging starts; no setting turns it off.
    jvm_line = "WARNING: Using incubator modules: jdk.incubator.vector"
    warnings = [line for line in output.splitlines() if re.search(r"\bWARN(ING)?\b", line) and line != jvm_line]
    assert not warnings, warnings
    assert "log4j profile" not in output and "does not point to the current DFS" not in output
