"""Packaging of lakejobs: the jobs and common packages, conf/ as package data, the `lakejobs` command."""
import re

from setuptools import setup

VERSION = re.search(r'__version__ = "([^"]+)"', open("common/__init__.py").read()).group(1)

setup(
    name="lakejobs",
    version=VERSION,
    description="PySpark jobs for a lambda architecture on Delta Lake, with MLflow models",
    python_requires=">=3.11",
    packages=["jobs", "common", "conf"],
    package_data={"conf": ["*.yaml"]},
    install_requires=[
        "pyspark==4.2.0",
        "delta-spark==4.4.0",
        "mlflow>=3.17,<4",
        "boto3>=1.40",
        "pyyaml>=6",
        "pandas>=2.2,<3",
        "pyarrow>=15",
    ],
    extras_require={"test": ["pytest", "chispa"]},
    entry_points={"console_scripts": ["lakejobs=jobs.cli:main"]},
)
