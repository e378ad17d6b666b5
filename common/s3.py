"""S3 through boto3: one client from configuration, uploads that carry a content checksum (multipart
above a threshold) and are skipped when the same content is already there, and the few object
calls the lake's plain files need (the raw zone, its markers, the simulator's events).

Credentials are never configuration: boto3 takes them from the standard AWS chain (environment,
profile, instance role), as hadoop-aws does for Spark (`s3.credentials_provider`).

    s3 = client(cfg)
    upload(s3, "/tmp/ratings.csv", "s3a://lakejobs/lake/landing/movielens/x/ratings.csv", sha256, transfer(cfg))
"""
from __future__ import annotations

import contextlib
import functools
from typing import Iterator

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

from common import paths
from common.config import Config
from common.errors import SourceError

SHA256_KEY = "sha256"  # user metadata (x-amz-meta-sha256): the hex sha256 of the whole object
MIB = 1 << 20
_MISSING = ("404", "NoSuchKey", "NotFound")


def client(cfg: Config):
    """The S3 client for s3.endpoint / s3.region / s3.path_style_access (credentials: the AWS chain)."""
    return client_at(cfg["s3.endpoint"] or None, cfg["s3.region"], bool(cfg["s3.path_style_access"]))


@functools.lru_cache(maxsize=8)
def client_at(endpoint: str | None, region: str, path_style: bool):
    """A client for one endpoint (None: AWS), kept for reuse."""
    style = {"addressing_style": "path" if path_style else "auto"}
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name=region,
        config=BotoConfig(s3=style, retries={"max_attempts": 5, "mode": "standard"}))


def transfer(cfg: Config) -> TransferConfig:
    """Multipart above s3.multipart_threshold_mb, in parts of s3.multipart_chunk_mb (S3's floor is 5 MiB)."""
    return TransferConfig(multipart_threshold=int(cfg["s3.multipart_threshold_mb"] * MIB),
                          multipart_chunksize=int(cfg["s3.multipart_chunk_mb"] * MIB))


@contextlib.contextmanager
def errors(uri: str) -> Iterator[None]:
    """S3 failures a user can fix (no credentials, no server, no bucket, access denied) as one line."""
    try:
        yield
    except NoCredentialsError:
        raise SourceError(f"no AWS credentials for {uri}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                          "or AWS_PROFILE, or run with an instance role") from None
    except EndpointConnectionError as e:
        raise SourceError(f"cannot reach S3 for {uri}: {e}") from None
    except ClientError as e:
        err = e.response.get("Error", {})
        raise SourceError(f"S3 refused {e.operation_name} on {uri}: {err.get('Code')} {err.get('Message', '')}".rstrip()) from None
    except BotoCoreError as e:
        raise SourceError(f"S3 failed on {uri}: {e}") from None


def head(s3, uri: str) -> dict | None:
    """The object's metadata, or None when there is no such object."""
    bucket, key = paths.split_s3(uri)
    with errors(uri):
        try:
            return s3.head_object(Bucket=bucket, Key=key)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise


def exists(s3, uri: str) -> bool:
    return head(s3, uri) is not None


def has_prefix(s3, uri: str) -> bool:
    """Whether any object lives under uri/ (S3 has no folders, only keys sharing a prefix)."""
    bucket, key = paths.split_s3(uri)
    with errors(uri):
        return s3.list_objects_v2(Bucket=bucket, Prefix=key.rstrip("/") + "/", MaxKeys=1).get("KeyCount", 0) > 0


def children(s3, uri: str) -> list[str]:
    """The names of the 'folders' directly under uri (common prefixes), sorted."""
    bucket, key = paths.split_s3(uri)
    prefix = key.rstrip("/") + "/" if key else ""
    names: list[str] = []
    with errors(uri):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
            names += [p["Prefix"][len(prefix):].rstrip("/") for p in page.get("CommonPrefixes", [])]
    return sorted(names)


def open_object(s3, uri: str):
    """A readable stream of the object's bytes."""
    bucket, key = paths.split_s3(uri)
    with errors(uri):
        return s3.get_object(Bucket=bucket, Key=key)["Body"]


def put(s3, uri: str, data: bytes) -> None:
    """Write one whole object (a PUT is atomic: readers see the old object or the new one)."""
    bucket, key = paths.split_s3(uri)
    with errors(uri):
        s3.put_object(Bucket=bucket, Key=key, Body=data, ChecksumAlgorithm="SHA256")


def upload(s3, path: str, uri: str, sha256: str, config: TransferConfig) -> bool:
    """Upload a local file unless uri already holds the same content (by the sha256 kept in its
    metadata); True when it was uploaded. Every part carries a SHA-256 checksum that S3 verifies."""
    found = head(s3, uri)
    if found is not None and found.get("Metadata", {}).get(SHA256_KEY) == sha256:
        return False
    bucket, key = paths.split_s3(uri)
    with errors(uri):
        s3.upload_file(path, bucket, key, Config=config,
                       ExtraArgs={"Metadata": {SHA256_KEY: sha256}, "ChecksumAlgorithm": "SHA256"})
    return True


def ensure_bucket(s3, bucket: str, region: str) -> None:
    """Create the bucket unless it exists (for a local server; a real lake's bucket is made by its owner)."""
    with errors(f"s3://{bucket}"):
        try:
            s3.head_bucket(Bucket=bucket)
            return
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
                raise
        extra = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=bucket, **extra)
