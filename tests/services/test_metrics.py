"""`GET /metrics` of the services: Prometheus text with requests per route template and status, and the outbox
backlog and waiting payments as they are in the database at the scrape."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from services.outbox.relay import OutboxRelay
from suuupra.events import EventPublisher
from suuupra.settings import Settings


def _samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_requests_and_the_outbox_backlog_are_counted(client: TestClient, isolated: Settings) -> None:
    body = {
        "email": f"m-{uuid.uuid4().hex[:8]}@example.com", "password": "Correct-Horse-42-battery",
        "display_name": "Ravi", "country": "IN", "preferred_language": "en-IN", "signup_platform": "WEB",
    }  # fmt: skip
    assert client.post("/auth/register", json=body).status_code == 201
    assert client.post("/auth/register", json=body).status_code == 409
    missing = client.get(f"/contents/{uuid.uuid4()}")
    before = _samples(client)

    def requests(route: str, status: int) -> float:
        key = ("suuupra_http_requests_total", (("method", "POST"), ("route", route), ("status", str(status))))
        return before.get(key, 0.0)

    assert requests("/auth/register", 201) == 1
    assert requests("/auth/register", 409) == 1
    # The route's template, never the id in the path.
    labels = (("method", "GET"), ("route", "/contents/{content_id}"), ("status", str(missing.status_code)))
    assert ("suuupra_http_requests_total", labels) in before
    assert before[("suuupra_database_up", ())] == 1
    assert before[("suuupra_outbox_unpublished_events", ())] >= 1  # the registration's event, not yet relayed
    assert before[("suuupra_payments_awaiting_fraud_decision", ())] == 0

    OutboxRelay(isolated.postgres.dsn(), EventPublisher(isolated)).drain()
    assert _samples(client)[("suuupra_outbox_unpublished_events", ())] == 0
