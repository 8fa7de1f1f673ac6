"""Identity against real PostgreSQL, Redis and Kafka: registration, sessions, profile, and the events they imply."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient

from services.app import create_app, ensure_schema
from services.outbox.relay import OutboxRelay
from suuupra.events import EventPublisher, event_consumer
from suuupra.settings import Settings

PASSWORD = "Correct-Horse-42-battery"


def _registration(**overrides: Any) -> dict[str, Any]:
    return {
        "email": f"learner-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD, "display_name": "Asha",
        "country": "IN", "preferred_language": "hi-IN", "signup_platform": "ANDROID", **overrides,
    }  # fmt: skip


def _events(settings: Settings) -> list[dict[str, Any]]:
    # Events of committed transactions reach Kafka through the outbox relay.
    OutboxRelay(settings.postgres.dsn(), EventPublisher(settings)).drain()
    with event_consumer(settings, [settings.topics.user]) as consumer:
        return [record.value for record in consumer.read_to_end()]


@contextmanager
def _app_with(settings: Settings, client_host: str = "testclient", **services: Any) -> Iterator[TestClient]:
    """A client of an app on the test's settings with some services settings changed, seen from `client_host`."""
    own = settings.model_copy(update={"services": settings.services.model_copy(update=services)})
    ensure_schema(own)
    with TestClient(create_app(own), client=(client_host, 50000)) as test_client:
        yield test_client


def _login(client: TestClient, email: str, password: str = PASSWORD) -> Any:
    return client.post("/auth/login", json={"email": email, "password": password})


def _bearer(session: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {session.json()['access_token']}"}


def _mine(events: list[dict[str, Any]], user_id: str) -> list[dict[str, Any]]:
    return [e for e in events if str(e["user_id"]) == user_id]


def test_register_stores_the_user_opens_a_session_and_announces_it(client: TestClient, isolated: Settings) -> None:
    body = _registration()
    response = client.post("/auth/register", json=body)
    assert response.status_code == 201, response.text
    session = response.json()
    assert session["token_type"] == "bearer"

    profile = client.get("/users/me", headers={"Authorization": f"Bearer {session['access_token']}"})
    assert profile.status_code == 200, profile.text
    assert profile.json()["email"] == body["email"]

    [registered] = _mine(_events(isolated), session["user_id"])
    assert registered["event_type"] == "user.registered"
    assert registered["email"] == body["email"]
    assert registered["signup_platform"] == "ANDROID"
    assert PASSWORD not in repr(registered), "no password, not even hashed, in an event"


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"email": "not-an-email"}, "email", "valid email"),
        ({"password": "short1A"}, "password", "at least 12 characters"),
        ({"password": "alllowercase-and-long"}, "password", "upper-case letter"),
        ({"country": "India"}, "country", "pattern"),
        ({"role": "admin"}, "role", "Extra inputs are not permitted"),
        ({"display_name": "Asha\x00"}, "display_name", "NUL character"),
        ({"referral_code": "\x00"}, "referral_code", "NUL character"),
    ],
    ids=["email", "short-password", "no-upper-case", "country", "unknown-field", "nul-in-name", "nul-in-referral"],
)
def test_invalid_registrations_get_422_naming_the_field(
    client: TestClient, overrides: dict[str, Any], field: str, message: str
) -> None:
    response = client.post("/auth/register", json=_registration(**overrides))
    assert response.status_code == 422, response.text
    [problem] = [p for p in response.json()["detail"] if p["loc"][-1] == field]
    assert message in problem["msg"]


def test_an_unpaired_surrogate_gets_422_echoed_in_valid_json(client: TestClient) -> None:
    # Only a JSON escape can carry one; it has no UTF-8 form, neither for Argon2 nor for the answer echoing it.
    body = json.dumps(_registration(password="SURROGATE")).replace("SURROGATE", f"{PASSWORD}\\udc00")
    response = client.post("/auth/register", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert (problem["loc"][-1], problem["input"]) == ("password", f"{PASSWORD}\udc00")
    assert "unpaired surrogate" in problem["msg"]


def test_duplicate_email_is_409_whatever_the_case(client: TestClient) -> None:
    body = _registration()
    assert client.post("/auth/register", json=body).status_code == 201
    again = client.post("/auth/register", json={**body, "email": body["email"].upper()})
    assert again.status_code == 409
    assert "already exists" in again.json()["detail"]


def test_login_and_sessions(client: TestClient, isolated: Settings) -> None:
    body = _registration()
    client.post("/auth/register", json=body)
    wrong = client.post("/auth/login", json={"email": body["email"], "password": PASSWORD + "x"})
    unknown = client.post("/auth/login", json={"email": "nobody-" + body["email"], "password": PASSWORD})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json(), "the same answer for a wrong password and an unknown address"

    token = client.post("/auth/login", json={"email": body["email"], "password": PASSWORD}).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/users/me", headers=headers).status_code == 200
    session_id = jwt.decode(token, options={"verify_signature": False})["sid"]
    client.app.state.redis.delete(f"session:{session_id}")  # type: ignore[attr-defined]
    ended = client.get("/users/me", headers=headers)
    assert ended.status_code == 401
    assert "session ended" in ended.json()["detail"]
    assert client.get("/users/me", headers={"Authorization": "Bearer forged"}).status_code == 401


def test_update_and_delete_emit_their_events(client: TestClient, isolated: Settings) -> None:
    session = client.post("/auth/register", json=_registration()).json()
    headers = {"Authorization": f"Bearer {session['access_token']}"}
    updated = client.patch("/users/me", json={"display_name": "Asha K", "country": "NP"}, headers=headers)
    assert updated.status_code == 200, updated.text
    assert (updated.json()["display_name"], updated.json()["country"]) == ("Asha K", "NP")
    assert client.patch("/users/me", json={}, headers=headers).status_code == 422
    assert client.delete("/users/me", headers=headers).status_code == 204
    assert client.get("/users/me", headers=headers).status_code == 401, "deleting ends every session"

    events = _mine(_events(isolated), session["user_id"])
    assert [e["event_type"] for e in events] == ["user.registered", "user.updated", "user.deleted"]
    assert events[1]["changed_fields"] == ["country", "display_name"]
    assert (events[1]["display_name"], events[1]["email"]) == ("Asha K", None)


def test_failed_logins_lock_the_account_even_for_the_right_password(client: TestClient, isolated: Settings) -> None:
    limit, window = isolated.services.login_attempts_per_account, isolated.services.login_window_s
    email, other = _registration()["email"], _registration()["email"]
    client.post("/auth/register", json={**_registration(), "email": email})
    client.post("/auth/register", json={**_registration(), "email": other})
    for _ in range(limit):
        assert _login(client, email, PASSWORD + "x").status_code == 401
    for password in (PASSWORD + "x", PASSWORD):
        locked = _login(client, email.upper(), password)  # addresses match case-insensitively: the same account
        assert locked.status_code == 429, locked.text
        retry_after = int(locked.headers["Retry-After"])
        assert 0 < retry_after <= window
        assert locked.json()["detail"].startswith("too many failed logins for this account: try again in ")
        assert f"in {retry_after} s (after " in locked.json()["detail"]
    assert _login(client, other).status_code == 200, "another account from the same address is not locked"


def test_unknown_addresses_are_counted_and_answered_alike(client: TestClient, isolated: Settings) -> None:
    known, unknown = _registration()["email"], _registration()["email"]
    client.post("/auth/register", json={**_registration(), "email": known})
    answers: dict[str, list[tuple[int, str]]] = {known: [], unknown: []}
    for email in answers:
        for _ in range(isolated.services.login_attempts_per_account + 1):
            answer = _login(client, email, PASSWORD + "x")
            answers[email].append((answer.status_code, answer.json()["detail"].split(": try again")[0]))
    assert answers[known] == answers[unknown]
    assert [status for status, _ in answers[known]][-2:] == [401, 429]


def test_a_successful_login_clears_the_account_count(client: TestClient, isolated: Settings) -> None:
    body = _registration()
    client.post("/auth/register", json=body)
    limit = isolated.services.login_attempts_per_account
    for _ in range(limit - 1):
        assert _login(client, body["email"], PASSWORD + "x").status_code == 401
    assert _login(client, body["email"]).status_code == 200
    for _ in range(limit):
        assert _login(client, body["email"], PASSWORD + "x").status_code == 401, "counted from zero again"
    assert _login(client, body["email"]).status_code == 429


def test_failed_logins_lock_the_address_until_the_window_ends(isolated: Settings) -> None:
    with _app_with(isolated, login_attempts_per_account=3, login_attempts_per_address=7, login_window_s=2) as client:
        body = _registration()
        client.post("/auth/register", json=body)
        for attempt in range(7):  # different accounts, none reaching its own limit
            assert _login(client, f"guess-{attempt}-{body['email']}").status_code == 401
        locked = _login(client, body["email"])
        assert locked.status_code == 429, "the right password too, from this address"
        assert locked.json()["detail"].startswith("too many failed logins from this address: try again in ")
        with _app_with(isolated, "192.0.2.7", login_attempts_per_address=7) as elsewhere:
            assert _login(elsewhere, body["email"]).status_code == 200, "another address is not locked"
        time.sleep(int(locked.headers["Retry-After"]))
        assert _login(client, body["email"]).status_code == 200, "unlocked when Retry-After says"


def test_logins_that_succeed_do_not_count_against_the_address(isolated: Settings) -> None:
    # Many people behind one address (a school's NAT) all log in.
    with _app_with(isolated, login_attempts_per_address=2) as client:
        body = _registration()
        client.post("/auth/register", json=body)
        assert _login(client, "nobody-" + body["email"]).status_code == 401
        for _ in range(3):
            assert _login(client, body["email"]).status_code == 200
        assert _login(client, "nobody-" + body["email"]).status_code == 401
        assert _login(client, body["email"]).status_code == 429


def test_an_expired_token_is_refused(isolated: Settings) -> None:
    with _app_with(isolated, session_ttl_s=1) as client:
        session = client.post("/auth/register", json=_registration())
        assert session.json()["expires_in"] == 1
        assert client.get("/users/me", headers=_bearer(session)).status_code == 200
        time.sleep(2.1)  # the JWT's exp is whole seconds, up to one before the session's Redis TTL ends
        expired = client.get("/users/me", headers=_bearer(session))
        assert expired.status_code == 401
        assert expired.json()["detail"] == "token expired: log in again"
        session_id = jwt.decode(session.json()["access_token"], options={"verify_signature": False})["sid"]
        assert not client.app.state.redis.exists(f"session:{session_id}"), "the session ended in Redis too"  # type: ignore[attr-defined]


def test_logout_ends_this_session_or_every_one(client: TestClient) -> None:
    body = _registration()
    first = _bearer(client.post("/auth/register", json=body))
    second, third = _bearer(_login(client, body["email"])), _bearer(_login(client, body["email"]))
    assert client.post("/auth/logout").status_code == 401

    assert client.post("/auth/logout", headers=second).status_code == 204
    ended = client.get("/users/me", headers=second)
    assert (ended.status_code, ended.json()["detail"]) == (401, "session ended: log in again")
    assert client.post("/auth/logout", headers=second).status_code == 401
    assert (
        client.get("/users/me", headers=first).status_code == client.get("/users/me", headers=third).status_code == 200
    )

    assert client.post("/auth/logout", params={"everywhere": "true"}, headers=first).status_code == 204
    assert (
        client.get("/users/me", headers=first).status_code == client.get("/users/me", headers=third).status_code == 401
    )
    user_id = jwt.decode(first["Authorization"][7:], options={"verify_signature": False})["sub"]
    assert not client.app.state.redis.exists(f"user-sessions:{user_id}")  # type: ignore[attr-defined]
