"""Orders and payments against real PostgreSQL, Redis and Kafka: one charge per idempotency key even under
concurrency, precise refusals, and no card number anywhere but in the request."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from services.outbox.relay import OutboxRelay
from suuupra.events import EventPublisher, event_consumer
from suuupra.settings import Settings
from tests.services.support import sign_up

CARD = "4111111111111111"  # a Luhn-valid test VISA number


def _published_course(client: TestClient, price_minor: int = 99_900) -> str:
    instructor = sign_up(client)
    course_id = str(uuid.uuid4())
    draft = {"course_id": course_id, "title": "Kafka in depth", "description": "", "category": "data", "language": "en",
             "duration_seconds": 600, "lesson_number": 1, "price_minor": price_minor, "currency": "INR"}  # fmt: skip
    content_id = client.post("/contents", json=draft, headers=instructor).json()["content_id"]
    client.post(f"/contents/{content_id}/publish", headers=instructor)
    return course_id


def _order(client: TestClient, buyer: dict[str, str]) -> dict[str, Any]:
    response = client.post("/orders", json={"course_id": _published_course(client)}, headers=buyer)
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_order_is_priced_from_the_published_course_with_gst(client: TestClient) -> None:
    order = _order(client, sign_up(client))
    assert (order["subtotal_minor"], order["tax_minor"], order["total_minor"]) == (99_900, 17_982, 117_882)
    missing = client.post("/orders", json={"course_id": str(uuid.uuid4())}, headers=sign_up(client))
    assert missing.status_code == 404
    assert "not published" in missing.json()["detail"]


def test_concurrent_duplicate_payment_requests_charge_once(client: TestClient, isolated: Settings) -> None:
    buyer = sign_up(client)
    order = _order(client, buyer)
    body = {"order_id": order["order_id"], "method": "CARD", "device_id": "pixel-7",
            "card": {"number": CARD, "expiry_month": 12, "expiry_year": 2031, "cvv": "123"}}  # fmt: skip
    headers = buyer | {"Idempotency-Key": f"pay-{uuid.uuid4().hex}"}
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: client.post("/payments", json=body, headers=headers), range(8)))
    assert {r.status_code for r in responses} == {201}, [r.text for r in responses]
    assert len({r.json()["payment_id"] for r in responses}) == 1, "every repeat returns the first answer"
    with psycopg.connect(isolated.postgres.dsn()) as connection:
        count = connection.execute("SELECT count(*) FROM payments WHERE order_id = %s", (order["order_id"],)).fetchone()
        stored = connection.execute("SELECT * FROM payments WHERE order_id = %s", (order["order_id"],)).fetchall()
    assert count == (1,)
    assert CARD not in repr(stored) and "123" not in repr(stored[0][9:]), "no card number or CVV stored"

    other_body = client.post("/payments", json=body | {"device_id": "another-phone"}, headers=headers)
    assert other_body.status_code == 422
    [problem] = other_body.json()["detail"]
    assert (problem["loc"], problem["msg"]) == (["header", "Idempotency-Key"], "already used with a different request")

    OutboxRelay(isolated.postgres.dsn(), EventPublisher(isolated)).drain()
    with event_consumer(isolated, [isolated.topics.payment]) as consumer:
        events = [r.value for r in consumer.read_to_end() if str(r.value.get("order_id")) == order["order_id"]]
    assert [e["event_type"] for e in events] == ["payment.initiated", "payment.card_tokenized"]
    assert events[1]["last4"] == "1111" and events[1]["network"] == "VISA"
    assert CARD not in repr(events), "the card number is never emitted"


@pytest.mark.parametrize(
    ("payment", "field", "message"),
    [
        ({"method": "UPI", "vpa": "not a vpa"}, "vpa", "is not a UPI address"),
        (
            {
                "method": "UPI",
                "vpa": "meera@okbank",
                "card": {"number": CARD, "expiry_month": 1, "expiry_year": 2031, "cvv": "123"},
            },
            "vpa",
            "no 'card'",
        ),
        (
            {
                "method": "CARD",
                "card": {"number": "4111111111111112", "expiry_month": 1, "expiry_year": 2031, "cvv": "123"},
            },
            "card.number",
            "checksum",
        ),
        (
            {"method": "CARD", "card": {"number": CARD, "expiry_month": 1, "expiry_year": 2001, "cvv": "123"}},
            "card.expiry_year",
            "expired",
        ),
        (
            {"method": "CARD", "card": {"number": CARD, "expiry_month": 1, "expiry_year": 2031, "cvv": "12"}},
            "card.cvv",
            "3 or 4 digits",
        ),
    ],
    ids=["bad-vpa", "upi-with-card", "luhn", "expired", "cvv"],
)
def test_invalid_payments_get_422_naming_the_field(
    client: TestClient, payment: dict[str, Any], field: str, message: str
) -> None:
    buyer = sign_up(client)
    order = _order(client, buyer)
    headers = buyer | {"Idempotency-Key": f"pay-{uuid.uuid4().hex}"}
    response = client.post(
        "/payments", json={"order_id": order["order_id"], "device_id": "d", **payment}, headers=headers
    )
    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["loc"][-1] == field
    assert message in problem["msg"]


def test_a_upi_payment_without_an_idempotency_key_is_refused(client: TestClient) -> None:
    buyer = sign_up(client)
    order = _order(client, buyer)
    body = {"order_id": order["order_id"], "method": "UPI", "vpa": "meera@okbank", "device_id": "d"}
    missing = client.post("/payments", json=body, headers=buyer)
    assert missing.status_code == 422
    assert any(p["loc"][-1] == "idempotency-key" for p in missing.json()["detail"])
    ok = client.post("/payments", json=body, headers=buyer | {"Idempotency-Key": "upi-key-0001"})
    assert ok.status_code == 201


def test_payment_requests_that_once_gave_server_errors_get_precise_4xx(client: TestClient) -> None:
    buyer = sign_up(client, "buyer")
    order = _order(client, buyer)
    key = {"Idempotency-Key": f"k-{uuid.uuid4().hex}"}
    upi = {"order_id": order["order_id"], "method": "UPI", "vpa": "kiran@okaxis", "device_id": "\u0000"}
    assert client.post("/payments", json=upi, headers=buyer | key).status_code == 422
    card = {"number": "²" * 16, "expiry_month": 12, "expiry_year": 2099, "cvv": "123"}
    superscript = client.post("/payments", json={**upi, "device_id": "web", "method": "CARD", "vpa": None,
                                                 "card": card}, headers=buyer | key)  # fmt: skip
    assert superscript.status_code == 422
    assert "12 to 19 digits (0-9)" in superscript.text
    instructor = sign_up(client, "instructor")
    course_id = str(uuid.uuid4())
    free = {"course_id": course_id, "title": "Free intro", "description": "", "category": "intro", "language": "en",
            "duration_seconds": 60, "lesson_number": 1, "price_minor": 0, "currency": "INR"}  # fmt: skip
    content_id = client.post("/contents", json=free, headers=instructor).json()["content_id"]
    client.post(f"/contents/{content_id}/publish", headers=instructor)
    free_order = client.post("/orders", json={"course_id": course_id}, headers=buyer).json()
    nothing = client.post("/payments", json={**upi, "device_id": "web", "order_id": free_order["order_id"]},
                          headers=buyer | {"Idempotency-Key": f"k-{uuid.uuid4().hex}"})  # fmt: skip
    assert nothing.status_code == 409
    assert "costs nothing" in nothing.json()["detail"]
    too_dear = client.post("/contents", json={**free, "price_minor": 10**13}, headers=instructor)
    assert too_dear.status_code == 422


def test_an_order_is_priced_from_the_published_revision_not_a_later_draft(client: TestClient) -> None:
    instructor, buyer = sign_up(client, "instructor"), sign_up(client, "buyer")
    course_id = str(uuid.uuid4())
    draft = {"course_id": course_id, "title": "Pricing", "description": "", "category": "business", "language": "en",
             "duration_seconds": 60, "lesson_number": 1, "price_minor": 10_000, "currency": "INR"}  # fmt: skip
    content_id = client.post("/contents", json=draft, headers=instructor).json()["content_id"]
    client.post(f"/contents/{content_id}/publish", headers=instructor)
    assert client.patch(f"/contents/{content_id}", json={"price_minor": 1}, headers=instructor).status_code == 200
    order = client.post("/orders", json={"course_id": course_id}, headers=buyer).json()
    assert order["unit_price_minor"] == 10_000
