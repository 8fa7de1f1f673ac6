"""The services' HTTP application: one process hosts identity (and, as they come, content and commerce)."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from importlib import resources
from typing import Any

import psycopg
import redis
from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.utils import is_body_allowed_for_status_code
from psycopg import sql
from starlette.exceptions import HTTPException

from services.commerce.api import router as commerce_router
from services.content.api import router as content_router
from services.identity.api import router as identity_router
from services.metrics import install_metrics
from services.outbox.store import create_outbox
from services.search.api import router as search_router
from suuupra.settings import Settings


def ensure_schema(settings: Settings) -> None:
    with psycopg.connect(settings.postgres.dsn(), autocommit=True) as connection:
        if schema := settings.postgres.services_schema:
            connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        create_outbox(connection)
        for service in ("identity", "content", "commerce", "ledger"):
            connection.execute(resources.files(f"services.{service}").joinpath("schema.sql").read_text())


class ErrorResponse(JSONResponse):
    """An error answer, which may echo the request's input: an unpaired surrogate there (only a JSON escape such as
    "\\ud800" brings one in) has no UTF-8 form, so it is sent escaped instead of failing the answer with a 500."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


async def _invalid_request(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    return ErrorResponse({"detail": jsonable_encoder(error.errors())}, status_code=422)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    if not is_body_allowed_for_status_code(error.status_code):
        return Response(status_code=error.status_code, headers=error.headers)
    return ErrorResponse({"detail": error.detail}, status_code=error.status_code, headers=error.headers)


def create_app(
    settings: Settings, lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None
) -> FastAPI:
    """The app; `lifespan` runs what must start with the server and stop with it (the relay and the saga's workers
    of `suuupra services up`)."""
    app = FastAPI(
        lifespan=lifespan,
        title="Suuupra services",
        version="0.1.0",
        description="Identity (registration, login, profile); content (create, revise, publish, withdraw, delete); "
        "search, similar and also-watched content; orders and payments.",
    )
    app.state.settings = settings
    app.state.redis = redis.Redis(
        host=settings.redis.host, port=settings.redis.port, db=settings.redis.db,
        password=settings.redis.password.get_secret_value() if settings.redis.password else None,
    )  # fmt: skip
    # FastAPI's own handlers, but rendering with ErrorResponse.
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(HTTPException, _http_error)
    app.include_router(identity_router)
    app.include_router(content_router)
    app.include_router(commerce_router)
    app.include_router(search_router)
    install_metrics(app, settings)
    return app
