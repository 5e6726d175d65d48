"""Object-store URIs (s3://, gs://) for the lake's small files, with the same credentials Lance uses.

Lance reads and writes the tables through its own object store (`storage_options`). The lake's other files (the
`lake.json` marker) go through an fsspec filesystem. For s3:// and gs:// that filesystem is pyarrow's native
S3/GCS client wrapped for fsspec (`ArrowFSWrapper`), not s3fs/gcsfs: pyarrow is already a dependency, and a
current s3fs pins aiobotocore, which pins an older botocore than boto3 needs, so the two cannot share one
environment. Local paths and every other protocol go through fsspec unchanged.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlparse

import fsspec

OBJECT_STORE_SCHEMES = ("s3", "s3a", "gs", "gcs")


def is_object_store(uri: str) -> bool:
    """True for s3://, s3a://, gs:// and gcs:// URIs."""
    return urlparse(str(uri)).scheme in OBJECT_STORE_SCHEMES


def split_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/a/b` -> ("bucket", "a/b"): the bucket and the key prefix inside it."""
    parsed = urlparse(str(uri))
    return parsed.netloc, parsed.path.strip("/")


def url_to_fs(uri: str, *, storage_options: dict[str, str] | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """An fsspec filesystem for `uri` and the path of `uri` inside it.

    Args:
        uri: a local path, s3://bucket/prefix, gs://bucket/prefix or any fsspec URI.
        storage_options: Lance-style options (`aws_endpoint`, `aws_access_key_id`, `aws_region`, ...), as made by
            `curate.lake.storage_options_from_env`; the same keys configure the marker's filesystem.

    Returns:
        (filesystem, root): for object stores root is "bucket/prefix".
    """
    scheme = urlparse(str(uri)).scheme
    if scheme not in OBJECT_STORE_SCHEMES:
        return fsspec.core.url_to_fs(str(uri))
    from fsspec.implementations.arrow import ArrowFSWrapper

    bucket, key = split_uri(uri)
    root = f"{bucket}/{key}" if key else bucket
    arrow_fs = s3_filesystem(storage_options or {}) if scheme.startswith("s3") else gcs_filesystem()
    return ArrowFSWrapper(arrow_fs), root


def s3_filesystem(storage_options: dict[str, str]) -> Any:
    """pyarrow's S3 client configured from Lance-style storage options (falls back to AWS_* and ~/.aws)."""
    from pyarrow import fs as pafs

    kwargs: dict[str, Any] = {}
    if storage_options.get("aws_access_key_id"):
        kwargs["access_key"] = storage_options["aws_access_key_id"]
        kwargs["secret_key"] = storage_options.get("aws_secret_access_key")
        if storage_options.get("aws_session_token"):
            kwargs["session_token"] = storage_options["aws_session_token"]
    region = storage_options.get("aws_region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        kwargs["region"] = region
    endpoint = storage_options.get("aws_endpoint")
    if endpoint:
        parsed = urlparse(endpoint)
        if parsed.scheme in ("http", "https"):
            kwargs["scheme"] = parsed.scheme
            endpoint = parsed.netloc + parsed.path.rstrip("/")
        kwargs["endpoint_override"] = endpoint
        kwargs.setdefault("region", "us-east-1")  # an S3-compatible endpoint needs no region lookup
    return pafs.S3FileSystem(**kwargs)


def gcs_filesystem() -> Any:
    """pyarrow's GCS client; credentials come from GOOGLE_APPLICATION_CREDENTIALS or the metadata server."""
    from pyarrow import fs as pafs

    return pafs.GcsFileSystem()
