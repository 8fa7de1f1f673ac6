"""What every service shares: settings and Redis from the app, authentication, correlation ids, events, and the
text a request may carry."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

import jwt
import redis
from fastapi import Depends, Header, HTTPException, Request, status
from pydantic import AfterValidator, EmailStr, SecretStr

from suuupra.settings import Settings

SESSION_PREFIX = "session:"


def storable(text: str) -> str:
    """Text PostgreSQL can take, in a column or in the outbox's JSONB: refused here with a 422 naming the field
    rather than by the database with a 500."""
    if "\x00" in text:
        raise ValueError("must not contain the NUL character (U+0000)")
    try:
        text.encode()
    except UnicodeEncodeError:
        # Only a JSON escape such as "\ud800" can bring one in: a half of a UTF-16 pair, no character of its own.
        raise ValueError("must not contain an unpaired surrogate (U+D800 to U+DFFF)") from None
    return text


def _storable_secret(secret: SecretStr) -> SecretStr:
    storable(secret.get_secret_value())  # never stored, but hashed from its UTF-8 bytes
    return secret


StorableText = Annotated[str, AfterValidator(storable)]
StorableEmail = Annotated[EmailStr, AfterValidator(storable)]
StorableSecret = Annotated[SecretStr, AfterValidator(_storable_secret)]


def invalid(field: str, message: str, location: str = "body") -> HTTPException:
    # The shape of FastAPI's own validation errors (and of the ValidationError the OpenAPI description documents for
    # every 422), so clients handle one format.
    error = {"type": "value_error", "loc": [location, field], "msg": message}
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, [error])


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


def correlation(
    x_correlation_id: Annotated[
        uuid.UUID | None, Header(description="Traces a journey across services; a new one when absent.")
    ] = None,
) -> str:
    """The caller's correlation id (a UUID, so declared and validated as one), or a new one."""
    return str(x_correlation_id or uuid.uuid4())


@dataclass(frozen=True)
class SessionClaims:
    user_id: str
    session_id: str


def session_key(session_id: str) -> str:
    return f"{SESSION_PREFIX}{session_id}"


def user_sessions_key(user_id: str) -> str:
    return f"user-sessions:{user_id}"


def current_session(
    settings: SettingsDep, sessions: RedisDep, authorization: Annotated[str | None, Header()] = None
) -> SessionClaims:
    """The session of a valid token that is still open in Redis (checked before the database)."""
    unauthorized = status.HTTP_401_UNAUTHORIZED
    if not authorization or not authorization.lower().startswith("bearer "):
        raise HTTPException(unauthorized, "missing 'Authorization: Bearer <token>' header")
    try:
        claims = jwt.decode(authorization[7:], settings.services.jwt_secret.get_secret_value(), algorithms=["HS256"])
    except jwt.ExpiredSignatureError:
        raise HTTPException(unauthorized, "token expired: log in again") from None
    except jwt.InvalidTokenError:
        raise HTTPException(unauthorized, "invalid token") from None
    if sessions.get(session_key(str(claims.get("sid")))) != claims.get("sub", "").encode():
        raise HTTPException(unauthorized, "session ended: log in again")
    return SessionClaims(user_id=str(claims["sub"]), session_id=str(claims["sid"]))


SessionDep = Annotated[SessionClaims, Depends(current_session)]


def current_user(session: SessionDep) -> str:
    """The user of a valid token whose session is still open in Redis (checked before the database)."""
    return session.user_id


UserDep = Annotated[str, Depends(current_user)]
CorrelationDep = Annotated[str, Depends(correlation)]
