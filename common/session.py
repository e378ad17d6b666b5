"""The one place a SparkSession is built from configuration (Delta, jars, log level, shuffles)."""
from __future__ import annotations

import glob
import os
import socket

from pyspark.sql import SparkSession

from common import logs, paths, tables
from common.config import Config
from common.errors import ClusterError, ConfigError

# Which jars of `make setup` (see jvm/pom.xml) each group needs, by file name pattern.
JAR_GROUPS = {
    "delta": ["delta-*.jar", "unitycatalog-*.jar", "jackson-datatype-jdk8-*.jar", "javax.annotation-api-*.jar"],
    "kafka": ["spark-sql-kafka-*.jar", "spark-token-provider-kafka-*.jar", "kafka-clients-*.jar", "commons-pool2-*.jar"],
    "s3": ["hadoop-aws-*.jar", "bundle-*.jar", "analyticsaccelerator-s3-*.jar", "wildfly-openssl-*.jar"],
}

DELTA_SETTINGS = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


# A source checkout (or editable install) keeps `make setup`'s .jars beside common/.
_CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def jars_dir(cfg: Config) -> str | None:
    """spark.jars_dir as an absolute folder, relative paths tried against the working directory and
    then the checkout; None when unset (Databricks, where the runtime has the jars)."""
    configured = cfg["spark.jars_dir"]
    if not configured:
        return None
    candidates = [configured] if os.path.isabs(configured) else [configured, os.path.join(_CHECKOUT, configured)]
    found = next((os.path.abspath(c) for c in candidates if os.path.isdir(c)), None)
    if found is None:
        raise ConfigError(f"spark.jars_dir '{configured}' does not exist: run `make setup` to resolve the jars")
    return found


def jar_paths(cfg: Config) -> list[str]:
    """Absolute paths of the jars the configured groups need; empty when there is no jars folder."""
    folder = jars_dir(cfg)
    if folder is None:
        return []
    paths: list[str] = []
    for group in cfg["spark.jar_groups"]:
        if group not in JAR_GROUPS:
            raise ConfigError(f"config key 'spark.jar_groups' has unknown group '{group}'; valid: {', '.join(JAR_GROUPS)}")
        for pattern in JAR_GROUPS[group]:
            found = sorted(glob.glob(os.path.join(folder, pattern)))
            if not found:
                raise ConfigError(f"no {pattern} in {folder}: run `make setup` to resolve the jars")
            paths.extend(found)
    return paths


def session_settings(cfg: Config) -> dict[str, str]:
    """Every Spark setting lakejobs asks for, given the config."""
    settings = dict(DELTA_SETTINGS)
    settings["spark.sql.shuffle.partitions"] = str(cfg["spark.shuffle_partitions"])
    jars = jar_paths(cfg)
    if jars and cfg["spark.master"].startswith("local"):
        # One JVM: the jars go on its class path as they are. spark.jars would copy each into the
        # session's temporary folder (686 MB with the s3 group's AWS SDK, ~2.5 s a start, and left
        # behind by a killed JVM).
        settings["spark.driver.extraClassPath"] = os.pathsep.join(jars)
    elif jars:
        settings["spark.jars"] = ",".join(jars)  # a cluster's executors fetch them from the driver
    settings.update({f"spark.hadoop.{k}": v for k, v in s3a_settings(cfg).items()})
    settings.update({k: str(v) for k, v in cfg["spark.conf"].items()})
    return settings


def s3a_settings(cfg: Config) -> dict[str, str]:
    """hadoop-aws settings for an s3a:// lake (none otherwise). No credentials: hadoop-aws asks the
    AWS chain of s3.credentials_provider, as boto3 does."""
    if not paths.is_s3a(str(cfg["lake.root"])):
        return {}
    settings = {"fs.s3a.aws.credentials.provider": cfg["s3.credentials_provider"],
                "fs.s3a.endpoint.region": cfg["s3.region"],
                "fs.s3a.path.style.access": str(bool(cfg["s3.path_style_access"])).lower()}
    endpoint = cfg["s3.endpoint"]
    if endpoint:
        settings["fs.s3a.endpoint"] = endpoint
        settings["fs.s3a.connection.ssl.enabled"] = str(endpoint.startswith("https://")).lower()
    return settings


def get_session(cfg: Config) -> SparkSession:
    """The active session when a runner gave one (spark-submit, Databricks), else a new local one.

    A given session keeps its master and jars; only runtime SQL settings are applied to it.
    """
    logs.quiet_python_libraries(cfg["spark.log_level"])
    active = SparkSession.getActiveSession()
    if active is None and _launched_by_spark_submit():
        active = SparkSession.builder.getOrCreate()  # master and jars come from spark-submit
    if active is not None:
        active.conf.set("spark.sql.shuffle.partitions", str(cfg["spark.shuffle_partitions"]))
        active.sparkContext.setLogLevel(cfg["spark.log_level"])
        hadoop = active.sparkContext._jsc.hadoopConfiguration()
        for key, value in s3a_settings(cfg).items():  # an s3a:// lake on a session built without them
            hadoop.set(key, value)
        tables.use_catalog(active, cfg)
        return active
    check_master(cfg["spark.master"])
    settings = session_settings(cfg)
    # The log level from the JVM's first line on (setLogLevel below comes after the start-up warnings).
    java_options = [settings.get("spark.driver.extraJavaOptions", ""), logs.jvm_options(cfg["spark.log_level"])]
    settings["spark.driver.extraJavaOptions"] = " ".join(o for o in java_options if o)
    if cfg["spark.master"].startswith("local"):
        # A local session talks to itself only: bind it to loopback rather than the first interface
        # (and no warning that the hostname resolves to 127.0.0.1). Read by the JVM about to start.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder.master(cfg["spark.master"]).appName(cfg["spark.app_name"])
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(cfg["spark.log_level"])
    tables.use_catalog(spark, cfg)
    return spark


def check_master(master: str, timeout_s: float = 3.0) -> None:
    """Fail in seconds, with one line, when a standalone master (spark://host:port[,host:port]) does
    not answer: Spark itself retries for a minute and then dies with a stack trace."""
    if not master.startswith("spark://"):
        return  # local[*], yarn, k8s://...: nothing to probe here
    for address in master[len("spark://"):].split(","):
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"bad Spark master '{master}': expected spark://host:port")
        try:
            socket.create_connection((host, int(port)), timeout=timeout_s).close()
            return
        except OSError:
            continue
    raise ClusterError(f"no Spark master answers at {master}: start one (`make cluster-up`) or give another MASTER")


def _launched_by_spark_submit() -> bool:
    # spark-submit starts the Python driver with the JVM gateway already up and says so here; a
    # Databricks task's Python runs beside the cluster's driver the same way.
    return "PYSPARK_GATEWAY_PORT" in os.environ or "DATABRICKS_RUNTIME_VERSION" in os.environ
