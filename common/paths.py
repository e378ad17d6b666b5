"""What a lake location is (local folder, Unity Catalog volume, S3, dbfs:, another scheme), normalised and
joined: the one module that reads a path's scheme. Pure strings, no I/O, so that config and s3 can use it
(lake_files, which does the I/O, imports both).

    kind("s3a://b/lake/") is Kind.S3;  normalise("s3a://b/lake/") == "s3a://b/lake"
    join(normalise("lake"), "silver", "ratings") == "<working directory>/lake/silver/ratings"
    split_s3("s3a://b/lake/x.csv") == ("b", "lake/x.csv")
"""
from __future__ import annotations

import os
from enum import Enum

from common.errors import ConfigError


class Kind(Enum):
    FOLDER = "local folder"
    VOLUME = "Unity Catalog volume"  # /Volumes/<catalog>/<schema>/<volume>/...: a folder to Python as well
    S3 = "S3"                        # s3a://bucket/key, or s3:// (boto3 reads it, Spark's connector does not)
    DBFS = "dbfs"                    # dbfs:/...: Spark only, Python cannot open it
    REMOTE = "remote"                # any other scheme:// (abfss://, gs://...): Spark only

SPARK_S3_SCHEME = "s3a"  # the one hadoop-aws registers
_S3_SCHEMES = (SPARK_S3_SCHEME, "s3")
_DBFS = "dbfs:"          # written dbfs:/path as often as dbfs:///path
_VOLUMES = "/Volumes/"


def scheme(path: str) -> str:
    """'s3a://b/k' → 's3a', 'dbfs:/x' → 'dbfs', a local folder (or volume) → ''. Case as written:
    'S3A://' is not S3 here, as it never was."""
    if path.startswith(_DBFS):
        return "dbfs"
    name, sep, _ = path.partition("://")
    return name if sep else ""


def kind(path: str) -> Kind:
    name = scheme(path)
    if not name:
        return Kind.VOLUME if os.path.abspath(path).startswith(_VOLUMES) else Kind.FOLDER
    if name in _S3_SCHEMES:
        return Kind.S3
    return Kind.DBFS if name == "dbfs" else Kind.REMOTE


def opens_as_files(path: str) -> bool:
    """Whether Python's open() reaches it: a local folder or a Unity Catalog volume."""
    return kind(path) in (Kind.FOLDER, Kind.VOLUME)


def is_s3(path: str) -> bool:
    return kind(path) is Kind.S3


def is_s3a(path: str) -> bool:
    """S3 as Spark addresses it (s3a://); s3:// is S3 to boto3 only."""
    return scheme(path) == SPARK_S3_SCHEME


def python_reaches(path: str) -> bool:
    """Whether lakejobs' Python side reads and writes files there (open() or boto3); dbfs:/ and other
    schemes are reached through Spark only."""
    return opens_as_files(path) or is_s3(path)


def normalise(path: str) -> str:
    """A local folder made absolute (against the working directory), anything else without its
    trailing slashes: the form every location under it is joined to."""
    return os.path.abspath(path) if opens_as_files(path) else path.rstrip("/")


def join(base: str, *parts: str) -> str:
    """parts under base, with '/' whatever the kind (a base's trailing slash is not doubled)."""
    return "/".join([base.rstrip("/"), *parts])


def split_s3(uri: str) -> tuple[str, str]:
    """'s3a://bucket/a/b' → ('bucket', 'a/b'); a ConfigError for anything that does not name a bucket."""
    bucket, _, key = uri.partition("://")[2].partition("/") if is_s3(uri) else ("", "", "")
    if not bucket:
        raise ConfigError(f"'{uri}' is not an S3 location: expected s3a://bucket/prefix")
    return bucket, key
