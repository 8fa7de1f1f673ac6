"""Helpers shared by the service tests."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

PASSWORD = "Learn-Streams-2026"  # the password of every account sign_up opens


def sign_up(client: TestClient, name: str = "learner") -> dict[str, str]:
    """Registers a new user; returns the Authorization header of its session."""
    registration = {
        "email": f"{name}-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD,
        "display_name": name.title(), "country": "IN", "preferred_language": "en",
    }  # fmt: skip
    return {"Authorization": f"Bearer {client.post('/auth/register', json=registration).json()['access_token']}"}
