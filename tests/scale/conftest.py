"""Fixtures for the scale-out tests: a local S3-compatible endpoint (moto server on 127.0.0.1)."""

from __future__ import annotations

import logging
import os
import socket
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest


@dataclass
class S3Endpoint:
    """A running moto server, the bucket made on it, and the AWS_* variables that point at it."""

    url: str
    bucket: str
    env: dict[str, str]

    def uri(self, prefix: str) -> str:
        return f"s3://{self.bucket}/{prefix}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Endpoint]:
    """A moto S3 server on 127.0.0.1 with one empty bucket; AWS_* set for this test, server stopped after."""
    pytest.importorskip("moto.server", reason="moto[server] is needed for the object-store tests")
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    env = {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    try:
        boto3.client("s3", endpoint_url=url, region_name="us-east-1").create_bucket(Bucket="curate-lake")
        yield S3Endpoint(url=url, bucket="curate-lake", env={**env, "PATH": os.environ.get("PATH", "")})
    finally:
        # moto keeps its buckets in process memory across servers: reset, so tests never see each other's data
        urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=10).close()
        server.stop()
