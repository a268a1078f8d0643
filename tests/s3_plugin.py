"""A real S3-compatible server on loopback for the object-storage tests (moto's server, not a mock of boto3)."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

REGION = "us-east-1"


# moto's ThreadedMotoServer in a child process: its memory (it holds objects whole) and its request
# threads stay out of the tests' process, so what a test measures there is the portal alone.
_SERVER = """
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()  # until the tests close the pipe
server.stop()
"""


@pytest.fixture(scope="session")
def s3_server() -> str:
    """moto's S3 server on 127.0.0.1, once per session; its base URL."""
    proc = subprocess.Popen([sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        port = int(proc.stdout.readline())
    except ValueError:
        proc.kill()
        proc.wait()
        pytest.fail("moto's S3 server did not start (is moto[server] installed? pip install -e '.[dev]')")
    yield f"http://127.0.0.1:{port}"
    proc.stdin.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    proc.stdout.close()


@pytest.fixture
def s3_credentials(monkeypatch, tmp_path) -> None:
    """Dummy AWS credentials; a developer's own AWS settings and profiles are hidden from the test."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


def s3_client(endpoint: str):
    """A plain boto3 client for looking behind the store's back."""
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION)


@pytest.fixture
def s3_bucket(s3_server, s3_credentials) -> str:
    """A fresh bucket per test, so tests never see each other's objects."""
    name = f"portal-{uuid.uuid4().hex[:16]}"
    s3_client(s3_server).create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_app(app, s3_server, s3_bucket):
    """The app with ``STORAGE_URL=s3://<bucket>/portal`` on the loopback server."""
    app.config.update(STORAGE_URL=f"s3://{s3_bucket}/portal", S3_ENDPOINT_URL=s3_server)
    app.extensions.pop("portal_storage", None)
    return app


def bucket_keys(endpoint: str, bucket: str, prefix: str = "") -> list[str]:
    """Every object key in ``bucket`` under ``prefix``, sorted."""
    keys = []
    for page in s3_client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [obj["Key"] for obj in page.get("Contents", [])]
    return sorted(keys)
