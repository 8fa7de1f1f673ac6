"""Identity HTTP API: `POST /auth/register`, `POST /auth/login`, `POST /auth/logout`, `GET|PATCH|DELETE /users/me`."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

import jwt
import psycopg
import redis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from services.common import (
    CorrelationDep,
    RedisDep,
    SessionDep,
    SettingsDep,
    StorableEmail,
    StorableSecret,
    StorableText,
    UserDep,
    invalid,
    make_event,
    session_key,
    user_sessions_key,
)
from services.identity.throttle import LoginThrottle
from services.outbox.store import enqueue
from suuupra.settings import Settings

router = APIRouter(tags=["identity"])
hasher = PasswordHasher()  # Argon2id with the library's current recommended parameters
MIN_PASSWORD_LENGTH = 12


class RegisterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: StorableEmail
    password: StorableSecret = Field(
        description=f"At least {MIN_PASSWORD_LENGTH} characters with upper and lower case and a digit."
    )
    display_name: StorableText = Field(min_length=1, max_length=80)
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2, e.g. IN.")
    preferred_language: str = Field(pattern=r"^[a-z]{2}(-[A-Z]{2})?$", description="e.g. en or hi-IN.")
    signup_platform: Literal["WEB", "ANDROID", "IOS", "OTHER"] = "WEB"
    marketing_opt_in: bool = False
    referral_code: StorableText | None = Field(default=None, min_length=1, max_length=32)


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: StorableEmail
    password: StorableSecret


class ProfileUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: StorableEmail | None = None
    display_name: StorableText | None = Field(default=None, min_length=1, max_length=80)
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    preferred_language: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[A-Z]{2})?$")
    marketing_opt_in: bool | None = None


class Session(BaseModel):
    user_id: str
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class Problem(BaseModel):
    detail: str


class Profile(BaseModel):
    user_id: str
    email: str
    display_name: str
    country: str
    preferred_language: str
    marketing_opt_in: bool


def password_problems(password: str, email: str) -> list[str]:
    problems = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(f"must have at least {MIN_PASSWORD_LENGTH} characters (has {len(password)})")
    if not any(c.islower() for c in password):
        problems.append("must contain a lower-case letter")
    if not any(c.isupper() for c in password):
        problems.append("must contain an upper-case letter")
    if not any(c.isdigit() for c in password):
        problems.append("must contain a digit")
    local_part = email.split("@", 1)[0].lower()
    if len(local_part) >= 3 and local_part in password.lower():
        problems.append("must not contain the email address")
    return problems


def _open_session(settings: Settings, sessions: redis.Redis, user_id: str) -> Session:
    session_id = uuid.uuid4().hex
    ttl = settings.services.session_ttl_s
    sessions.set(session_key(session_id), user_id, ex=ttl)
    sessions.sadd(user_sessions_key(user_id), session_id)
    # The set outlives none of its sessions (each new one pushes its expiry to the newest session's), and lingers
    # no longer: members of expired sessions would otherwise pile up for as long as the user keeps logging in.
    sessions.expire(user_sessions_key(user_id), ttl)
    now = int(time.time())
    claims = {"sub": user_id, "sid": session_id, "iat": now, "exp": now + ttl}
    token = jwt.encode(claims, settings.services.jwt_secret.get_secret_value(), algorithm="HS256")
    return Session(user_id=user_id, access_token=token, expires_in=ttl)


@router.post("/auth/register", status_code=status.HTTP_201_CREATED, response_model=Session)
def register(
    body: RegisterRequest, settings: SettingsDep, sessions: RedisDep, correlation_id: CorrelationDep
) -> Session:
    """Create an account: stored and announced (`user.registered`) in one transaction; returns a session token."""
    password = body.password.get_secret_value()
    if problems := password_problems(password, str(body.email)):
        raise invalid("password", "password " + "; ".join(problems))
    user_id = str(uuid.uuid4())
    with psycopg.connect(settings.postgres.dsn()) as connection, connection.transaction():
        try:
            connection.execute(
                "INSERT INTO users (user_id, email, display_name, country, preferred_language, marketing_opt_in, "
                "password_hash) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (user_id, str(body.email), body.display_name, body.country, body.preferred_language,
                 body.marketing_opt_in, hasher.hash(password)),
            )  # fmt: skip
        except psycopg.errors.UniqueViolation:
            raise HTTPException(status.HTTP_409_CONFLICT, "an account with this email address already exists") from None
        enqueue(connection, make_event(
            settings, "user.registered", user_id, correlation_id, email=str(body.email),
            display_name=body.display_name, country=body.country, preferred_language=body.preferred_language,
            signup_platform=body.signup_platform, referral_code=body.referral_code,
            marketing_opt_in=body.marketing_opt_in,
        ))  # fmt: skip
    return _open_session(settings, sessions, user_id)


def _end_sessions(sessions: redis.Redis, user_id: str) -> None:
    session_ids: set[bytes] = sessions.smembers(user_sessions_key(user_id))  # type: ignore[assignment]
    sessions.delete(*(session_key(sid.decode()) for sid in session_ids), user_sessions_key(user_id))


RETRY_AFTER = {"description": "Seconds until logins are accepted again.", "schema": {"type": "integer"}}
LOGIN_REFUSALS: dict[int | str, dict[str, Any]] = {
    status.HTTP_401_UNAUTHORIZED: {"model": Problem, "description": "Wrong password or unknown email (one answer)."},
    status.HTTP_429_TOO_MANY_REQUESTS: {
        "model": Problem,
        "description": "Too many failed logins for the account or from the client's address: every login is refused, "
        "the right password too, until the window that began with the first failure ends.",
        "headers": {"Retry-After": RETRY_AFTER},
    },
}


@router.post("/auth/login", response_model=Session, responses=LOGIN_REFUSALS)
def login(body: LoginRequest, request: Request, settings: SettingsDep, sessions: RedisDep) -> Session:
    """Opens a session. Failed logins are limited per account (unknown addresses too) and per client address:
    beyond `services.login_attempts_per_account` / `login_attempts_per_address` failures in `login_window_s`, 429."""
    # The peer address only: X-Forwarded-For is set by whoever sends the request, so it would let a guesser pick a
    # new address for each attempt.
    address = request.client.host if request.client else "unknown"  # a Unix socket's clients share one counter
    throttle = LoginThrottle.of(sessions, settings, str(body.email), address)
    if refusal := throttle.reserve():
        headers = {"Retry-After": str(refusal.retry_after_s)}
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, refusal.message, headers=headers)
    with psycopg.connect(settings.postgres.dsn()) as connection:
        row = connection.execute(
            "SELECT user_id, password_hash FROM users WHERE lower(email) = lower(%s) AND deleted_at IS NULL",
            (str(body.email),),
        ).fetchone()
    try:
        if row is None:
            raise VerifyMismatchError
        hasher.verify(row[1], body.password.get_secret_value())
    except (VerifyMismatchError, InvalidHashError):
        # One answer for an unknown address and a wrong password: no account enumeration.
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "email or password is wrong") from None
    throttle.succeeded()
    return _open_session(settings, sessions, str(row[0]))


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(
    session: SessionDep,
    sessions: RedisDep,
    everywhere: Annotated[
        bool, Query(description="End every session of the user (all devices), not only this token's.")
    ] = False,
) -> None:
    """Ends the session of the token: the token (and, with `everywhere`, every token of the user) then gets 401."""
    if everywhere:
        _end_sessions(sessions, session.user_id)
        return
    sessions.delete(session_key(session.session_id))
    sessions.srem(user_sessions_key(session.user_id), session.session_id)


def _profile(connection: psycopg.Connection[Any], user_id: str) -> Profile:
    row = connection.execute(
        "SELECT user_id, email, display_name, country, preferred_language, marketing_opt_in FROM users "
        "WHERE user_id = %s AND deleted_at IS NULL",
        (user_id,),
    ).fetchone()
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such user")
    return Profile(user_id=str(row[0]), email=row[1], display_name=row[2], country=row[3].strip(),
                   preferred_language=row[4], marketing_opt_in=row[5])  # fmt: skip


@router.get("/users/me", response_model=Profile)
def read_profile(user_id: UserDep, settings: SettingsDep) -> Profile:
    with psycopg.connect(settings.postgres.dsn()) as connection:
        return _profile(connection, user_id)


@router.patch("/users/me", response_model=Profile)
def update_profile(
    body: ProfileUpdate, user_id: UserDep, settings: SettingsDep, correlation_id: CorrelationDep
) -> Profile:
    changes = body.model_dump(exclude_none=True)
    if not changes:
        raise invalid("body", "nothing to change: give at least one field")
    if "email" in changes:
        changes["email"] = str(changes["email"])
    with psycopg.connect(settings.postgres.dsn()) as connection, connection.transaction():
        assignments = ", ".join(f"{column} = %s" for column in changes)
        try:
            updated = connection.execute(
                f"UPDATE users SET {assignments}, updated_at = now() WHERE user_id = %s AND deleted_at IS NULL",
                (*changes.values(), user_id),
            ).rowcount
        except psycopg.errors.UniqueViolation:
            raise HTTPException(status.HTTP_409_CONFLICT, "an account with this email address already exists") from None
        if updated != 1:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such user")
        event = make_event(settings, "user.updated", user_id, correlation_id, changed_fields=sorted(changes), **changes)
        enqueue(connection, event)
        return _profile(connection, user_id)


@router.delete("/users/me", status_code=status.HTTP_204_NO_CONTENT)
def delete_account(user_id: UserDep, settings: SettingsDep, sessions: RedisDep, correlation_id: CorrelationDep) -> None:
    """Soft-deletes the account (the address is freed), announces `user.deleted` and ends every session."""
    with psycopg.connect(settings.postgres.dsn()) as connection, connection.transaction():
        connection.execute("UPDATE users SET deleted_at = now() WHERE user_id = %s AND deleted_at IS NULL", (user_id,))
        enqueue(connection, make_event(settings, "user.deleted", user_id, correlation_id, reason="USER_REQUEST",
                                   erasure_requested=True))  # fmt: skip
    _end_sessions(sessions, user_id)
