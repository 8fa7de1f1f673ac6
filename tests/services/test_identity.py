"""Identity against real PostgreSQL, Redis and Kafka: registration, sessions, profile, and the events they imply."""

from __future__ import annotations

import json
import uuid
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient

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
