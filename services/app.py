"""The services' HTTP application: one process hosts identity (and, as they come, content and commerce)."""

from __future__ import annotations

from importlib import resources

import psycopg
import redis
from fastapi import FastAPI
from psycopg import sql

from services.commerce.api import router as commerce_router
from services.content.api import router as content_router
from services.identity.api import router as identity_router
from services.outbox.store import create_outbox
from suuupra.settings import Settings


def ensure_schema(settings: Settings) -> None:
    with psycopg.connect(settings.postgres.dsn(), autocommit=True) as connection:
        if schema := settings.postgres.services_schema:
            connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        create_outbox(connection)
        for service in ("identity", "content", "commerce", "ledger"):
            connection.execute(resources.files(f"services.{service}").joinpath("schema.sql").read_text())


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(
        title="Suuupra services",
        version="0.1.0",
        description="Identity (registration, login, profile); content (create, revise, publish); orders and payments.",
    )
    app.state.settings = settings
    app.state.redis = redis.Redis(
        host=settings.redis.host, port=settings.redis.port, db=settings.redis.db,
        password=settings.redis.password.get_secret_value() if settings.redis.password else None,
    )  # fmt: skip
    app.include_router(identity_router)
    app.include_router(content_router)
    app.include_router(commerce_router)
    return app
