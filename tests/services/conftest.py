"""Fixtures of the service tests: the HTTP app on the real components, and a private PostgreSQL schema."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql

from services.app import create_app, ensure_schema
from services.outbox.store import create_outbox
from suuupra.settings import Settings


@pytest.fixture
def client(isolated: Settings) -> Iterator[TestClient]:
    ensure_schema(isolated)
    with TestClient(create_app(isolated)) as test_client:
        yield test_client


@pytest.fixture
def private_dsn(isolated: Settings) -> str:
    """The DSN of this test's own PostgreSQL schema (see `isolated`), holding just an outbox."""
    schema = isolated.postgres.services_schema
    assert schema is not None
    with psycopg.connect(isolated.postgres.dsn(), autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        create_outbox(connection)
    return isolated.postgres.dsn()
