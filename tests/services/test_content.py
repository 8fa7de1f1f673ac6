"""Content against real PostgreSQL and Kafka: create, revise, publish, with ownership and revision checks."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient

from services.outbox.relay import OutboxRelay
from suuupra.events import EventPublisher, event_consumer
from suuupra.settings import Settings
from tests.services.support import sign_up


def _draft(**overrides: Any) -> dict[str, Any]:
    return {
        "course_id": str(uuid.uuid4()), "title": "Streams 101", "description": "Event time, watermarks.",
        "tags": ["flink", "kafka"], "category": "data-engineering", "language": "en", "level": "BEGINNER",
        "duration_seconds": 900, "lesson_number": 1, "price_minor": 49_900, "currency": "INR", **overrides,
    }  # fmt: skip


def _content_events(settings: Settings, content_id: str) -> list[dict[str, Any]]:
    OutboxRelay(settings.postgres.dsn(), EventPublisher(settings)).drain()
    with event_consumer(settings, [settings.topics.content]) as consumer:
        return [r.value for r in consumer.read_to_end() if str(r.value["content_id"]) == content_id]


def test_create_revise_publish_emit_their_events(client: TestClient, isolated: Settings) -> None:
    headers = sign_up(client)
    created = client.post("/contents", json=_draft(), headers=headers)
    assert created.status_code == 201, created.text
    content = created.json()
    assert (content["revision"], content["published_revision"]) == (1, None)

    revised = client.patch(f"/contents/{content['content_id']}", json={"title": "Streams 101, revised"},
                           headers=headers | {"If-Match": "1"})  # fmt: skip
    assert revised.status_code == 200, revised.text
    assert revised.json()["revision"] == 2
    stale = client.patch(f"/contents/{content['content_id']}", json={"title": "lost update"},
                         headers=headers | {"If-Match": "1"})  # fmt: skip
    assert stale.status_code == 412
    assert "revision 2" in stale.json()["detail"]

    published = client.post(f"/contents/{content['content_id']}/publish", headers=headers)
    assert published.status_code == 200
    assert published.json()["published_revision"] == 2
    assert client.post(f"/contents/{content['content_id']}/publish", headers=headers).status_code == 409

    events = _content_events(isolated, content["content_id"])
    assert [e["event_type"] for e in events] == ["content.created", "content.updated", "content.published"]
    assert events[1]["changed_fields"] == ["title"]
    assert (events[2]["title"], events[2]["revision"], events[2]["price_minor"]) == ("Streams 101, revised", 2, 49_900)


def test_only_the_instructor_changes_content_and_bad_drafts_are_refused(client: TestClient) -> None:
    owner, other = sign_up(client), sign_up(client)
    content_id = client.post("/contents", json=_draft(), headers=owner).json()["content_id"]
    assert client.patch(f"/contents/{content_id}", json={"title": "mine now"}, headers=other).status_code == 403
    assert client.post(f"/contents/{content_id}/publish", headers=other).status_code == 403
    assert client.post("/contents", json=_draft()).status_code == 401
    for bad, field in [({"price_minor": -1}, "price_minor"), ({"currency": "rupees"}, "currency"),
                       ({"duration_seconds": 0}, "duration_seconds"), ({"lesson_number": 2**31}, "lesson_number"),
                       ({"price_minor": 2**63}, "price_minor"), ({"title": "Streams\x00"}, "title")]:  # fmt: skip
        response = client.post("/contents", json=_draft(**bad), headers=owner)
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"][-1] == field
    assert client.get(f"/contents/{uuid.uuid4()}").status_code == 404


def test_unpublish_republish_and_delete_take_the_next_revision_and_emit_their_events(
    client: TestClient, isolated: Settings
) -> None:
    owner, other = sign_up(client), sign_up(client)
    content_id = client.post("/contents", json=_draft(), headers=owner).json()["content_id"]
    assert client.post(f"/contents/{content_id}/unpublish", headers=owner).status_code == 409  # a draft
    client.post(f"/contents/{content_id}/publish", headers=owner)
    assert client.post(f"/contents/{content_id}/unpublish", headers=other).status_code == 403
    withdrawn = client.post(f"/contents/{content_id}/unpublish", json={"reason": "re-recording"}, headers=owner)
    assert withdrawn.status_code == 200, withdrawn.text
    assert (withdrawn.json()["revision"], withdrawn.json()["published_revision"]) == (2, None)
    # Not for sale while withdrawn.
    course_id = withdrawn.json()["course_id"]
    assert client.post("/orders", json={"course_id": course_id}, headers=other).status_code == 404
    republished = client.post(f"/contents/{content_id}/publish", headers=owner)
    assert republished.json()["published_revision"] == 3

    assert client.delete(f"/contents/{content_id}", headers=other).status_code == 403
    assert client.delete(f"/contents/{content_id}", headers=owner).status_code == 204
    assert client.get(f"/contents/{content_id}").status_code == 404
    assert client.delete(f"/contents/{content_id}", headers=owner).status_code == 404
    assert client.post("/orders", json={"course_id": course_id}, headers=other).status_code == 404

    events = _content_events(isolated, content_id)
    assert [(e["event_type"], e.get("revision")) for e in events] == [
        ("content.created", None), ("content.published", 1), ("content.unpublished", 2), ("content.published", 3),
        ("content.deleted", 4),
    ]  # fmt: skip
    assert events[2]["reason"] == "re-recording"
