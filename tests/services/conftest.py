"""Fixtures of the service tests: the HTTP app on the real components, and a private PostgreSQL schema."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient

from services.app import create_app, ensure_schema
from services.outbox.store import create_outbox
from suuupra.settings import Settings


@pytest.fixture
def client(isolated: Settings) -> Iterator[TestClient]:
    ensure_schema(isolated)
    with TestClient(create_app(isolated)) as test_client:
        yield test_client


@pytest.fixture
def private_dsn(isolated: Settings) -> Iterator[str]:
    """A DSN whose search path is a fresh schema holding an outbox; dropped afterwards."""
    schema = f"test_{uuid.uuid4().hex[:10]}"
    base = isolated.postgres.dsn()
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    dsn = f"{base} options='-c search_path={schema}'"
    with psycopg.connect(dsn, autocommit=True) as connection:
        create_outbox(connection)
    yield dsn
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
