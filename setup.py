"""Packaging of lakejobs: the jobs and common packages, conf/ as package data, the `lakejobs` command."""
import json
import os
import re

from setuptools import find_packages, setup

# `make package` builds from a staged copy holding common/_stamp.json (version + commit); a checkout has none.
STAMP = os.path.join("common", "_stamp.json")
VERSION = (json.load(open(STAMP))["version"] if os.path.exists(STAMP)
           else re.search(r'__version__ = "([^"]+)"', open("common/__init__.py").read()).group(1))

setup(
    name="lakejobs",
    version=VERSION,
    description="PySpark jobs for a lambda architecture on Delta Lake, with MLflow models",
    python_requires=">=3.11",
    packages=find_packages(include=["jobs", "jobs.*", "common", "common.*", "conf"]),
    package_data={"conf": ["*.yaml"], "common": ["_stamp.json"]},
    # Spark and Delta are the runtime's (spark-submit, Databricks): installing pyspark into a Databricks
    # cluster would shadow its own. `pip install lakejobs[spark]` brings them for a laptop.
    install_requires=[
        "mlflow>=3.17,<4",
        "boto3>=1.40",
        "pyyaml>=6",
        "pandas>=2.2,<3",
        "pyarrow>=15",
    ],
    extras_require={"spark": ["pyspark==4.2.0", "delta-spark==4.4.0"], "test": ["pytest", "chispa"]},
    entry_points={"console_scripts": ["lakejobs=jobs.runners.cli:entry"]},
)
