"""How loud Spark's JVM and the Python libraries are: spark.log_level (ERROR by default), from the
JVM's first line on, so that a run prints what lakejobs says and not the libraries' chatter."""
from __future__ import annotations

import logging
import os
import tempfile

# log4j2 levels → Python's, for the Python libraries that follow spark.log_level.
_PYTHON_LEVEL = {"ALL": "DEBUG", "TRACE": "DEBUG", "DEBUG": "DEBUG", "INFO": "INFO", "WARN": "WARNING",
                 "ERROR": "ERROR", "FATAL": "CRITICAL", "OFF": "CRITICAL"}
# Python libraries whose INFO and WARNING lines are for their developers, not for people running jobs.
CHATTY_LIBRARIES = ("mlflow", "py4j", "matplotlib", "alembic", "pyspark")

# Spark's own default file (log4j2-defaults.properties) with the root level in a placeholder. Passed
# at JVM start: setLogLevel after start-up is too late for the start-up warnings (loopback address,
# native-hadoop), and without a file Spark prints which default profile it took, twice.
_LOG4J2 = """\
rootLogger.level = {level}
rootLogger.appenderRef.stdout.ref = console
# Spark, run from Python, counts as a shell: unless the logger of the first Spark class to log has a
# level of its own, it sets the console to WARN and says so on stderr.
logger.spark.name = org.apache.spark
logger.spark.level = {level}
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{{yy/MM/dd HH:mm:ss}} %p %c{{1}}: %m%n%ex
"""


def log4j2_file(level: str) -> str:
    """A log4j2 properties file with the root logger at `level`, in the temporary folder (replaced
    whole, so that processes starting at once never read half a file)."""
    level = level.upper()
    path = os.path.join(tempfile.gettempdir(), f"lakejobs-log4j2-{os.getuid()}-{level}.properties")
    fd, staged = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".properties")
    with os.fdopen(fd, "w") as f:
        f.write(_LOG4J2.format(level=level))
    os.replace(staged, path)
    return path


def jvm_options(level: str) -> str:
    """-D options for the driver JVM: the log4j2 file of `level`."""
    return f"-Dlog4j2.configurationFile=file:{log4j2_file(level)}"


def quiet_python_libraries(level: str) -> None:
    """Set the chatty Python libraries to `level`; MLFLOW_LOGGING_LEVEL too, as MLflow sets its
    logger's level when it is imported, which may come later."""
    python_level = _PYTHON_LEVEL[level.upper()]  # config.py has checked it is one of these
    os.environ["MLFLOW_LOGGING_LEVEL"] = python_level
    for name in CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(python_level)

