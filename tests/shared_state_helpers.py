"""Real shared stores for the many-host tests: an S3 endpoint (moto's server mode, on a free
port) and the PostgreSQL server CI starts (``.ci/start-postgres``, URL in
``MAPSERVER_TEST_POSTGRES``), each test in its own schema so tests never see each other's rows.

A missing PostgreSQL is a test FAILURE with the command that fixes it, never a skip.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import pytest

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1"}
HOW = ("start it the way CI does: `export MAPSERVER_TEST_POSTGRES=$(.ci/start-postgres)` "
       "(Debian's postgresql package; run as root)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def moto_server() -> Iterator[str]:
    """moto's S3 server on a free port; yields its endpoint URL (credentials set meanwhile)."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    saved = {k: os.environ.get(k) for k in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def s3(endpoint: str):  # noqa: ANN201 - a boto3 client
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def postgres_url() -> str:
    """The test server's URL; fails (not skips) when it is not configured or not answering."""
    url = os.environ.get("MAPSERVER_TEST_POSTGRES")
    if not url:
        pytest.fail("MAPSERVER_TEST_POSTGRES is not set: these tests need PostgreSQL; " + HOW,
                    pytrace=False)
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.Error as exc:
        pytest.fail(f"PostgreSQL at MAPSERVER_TEST_POSTGRES does not answer ({exc}); " + HOW,
                    pytrace=False)
    return url


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A fresh schema in the test database; yields a URL whose search_path is that schema
    (libpq's ``options=-csearch_path=…``, also how a deployment would pick one)."""
    import psycopg

    url = postgres_url()
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(url, autocommit=True) as c:
        c.execute(f"CREATE SCHEMA {name}")
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options={quote(f'-csearch_path={name}')}"
    finally:
        with psycopg.connect(url, autocommit=True) as c:
            c.execute(f"DROP SCHEMA {name} CASCADE")
