"""What every service shares: settings and Redis from the app, authentication, correlation ids, events."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

import jwt
import redis
from fastapi import Depends, Header, HTTPException, Request, status

from suuupra.settings import Settings

SESSION_PREFIX = "session:"


def invalid(field: str, message: str) -> HTTPException:
    # The same shape as FastAPI's own validation errors, so clients handle one format.
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, [{"loc": ["body", field], "msg": message}])


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def redis_of(request: Request) -> redis.Redis:
    client: redis.Redis = request.app.state.redis
    return client


SettingsDep = Annotated[Settings, Depends(settings_of)]
RedisDep = Annotated[redis.Redis, Depends(redis_of)]


def make_event(
    settings: Settings, event_type: str, user_id: str, correlation_id: str, **payload: Any
) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "event_time": int(time.time() * 1000),
        "producer": settings.services.producer,
        "correlation_id": correlation_id,
        "user_id": user_id,
        **payload,
    }


def correlation(x_correlation_id: Annotated[str | None, Header()] = None) -> str:
    """The caller's correlation id when it is a UUID, so a journey can be traced across services."""
    try:
        return str(uuid.UUID(x_correlation_id)) if x_correlation_id else str(uuid.uuid4())
    except ValueError:
        raise invalid("X-Correlation-ID", "must be a UUID") from None


def current_user(
    settings: SettingsDep, sessions: RedisDep, authorization: Annotated[str | None, Header()] = None
) -> str:
    """The user of a valid token whose session is still open in Redis (checked before the database)."""
    unauthorized = status.HTTP_401_UNAUTHORIZED
    if not authorization or not authorization.lower().startswith("bearer "):
        raise HTTPException(unauthorized, "missing 'Authorization: Bearer <token>' header")
    try:
        claims = jwt.decode(authorization[7:], settings.services.jwt_secret.get_secret_value(), algorithms=["HS256"])
    except jwt.ExpiredSignatureError:
        raise HTTPException(unauthorized, "token expired: log in again") from None
    except jwt.InvalidTokenError:
        raise HTTPException(unauthorized, "invalid token") from None
    if sessions.get(f"{SESSION_PREFIX}{claims.get('sid')}") != claims.get("sub", "").encode():
        raise HTTPException(unauthorized, "session ended: log in again")
    return str(claims["sub"])


UserDep = Annotated[str, Depends(current_user)]
CorrelationDep = Annotated[str, Depends(correlation)]
