"""Commerce HTTP API: `POST /orders`, `GET /orders/{id}`, `POST /payments` (with an `Idempotency-Key` header).

Payment requests carry an idempotency key: the first request with a key is carried out; a repeat (even a concurrent
one) returns the first answer without charging again; the same key with a different request is refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Header, HTTPException, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from services.commerce.instruments import CVV, card_problem, tokenize, vpa_problem
from services.commerce.payment_events import record
from services.common import CorrelationDep, SettingsDep, StorableText, UserDep, invalid, make_event
from services.outbox.store import enqueue

router = APIRouter(tags=["commerce"])
GST_PERCENT = 18


class OrderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    course_id: uuid.UUID


class Order(BaseModel):
    order_id: str
    course_id: str
    unit_price_minor: int
    subtotal_minor: int
    tax_minor: int
    total_minor: int
    currency: str
    status: str


class CardDetails(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: SecretStr
    expiry_month: int = Field(ge=1, le=12)
    expiry_year: int = Field(ge=2000, le=2100)
    cvv: SecretStr


class PaymentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_id: uuid.UUID
    method: Literal["UPI", "CARD"]
    vpa: str | None = Field(default=None, max_length=320)
    card: CardDetails | None = None
    device_id: StorableText = Field(min_length=1, max_length=128)


def _tax(subtotal_minor: int) -> int:
    return (subtotal_minor * GST_PERCENT + 50) // 100  # GST rounded half up, in minor units


@router.post("/orders", status_code=status.HTTP_201_CREATED, response_model=Order)
def create_order(body: OrderRequest, user_id: UserDep, settings: SettingsDep, correlation_id: CorrelationDep) -> Order:
    """Order a course at its published list price plus GST; emits `order.created`."""
    with psycopg.connect(settings.postgres.dsn()) as connection, connection.transaction():
        price = connection.execute(
            "SELECT published_price_minor, published_currency FROM contents "
            "WHERE course_id = %s AND published_revision IS NOT NULL ORDER BY lesson_number LIMIT 1",
            (body.course_id,),
        ).fetchone()
        if price is None:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, f"course {body.course_id} does not exist or is not published"
            )
        unit, currency = int(price[0]), price[1].strip()
        order = Order(order_id=str(uuid.uuid4()), course_id=str(body.course_id), unit_price_minor=unit,
                      subtotal_minor=unit, tax_minor=_tax(unit), total_minor=unit + _tax(unit), currency=currency,
                      status="CREATED")  # fmt: skip
        connection.execute(
            "INSERT INTO orders (order_id, user_id, course_id, unit_price_minor, subtotal_minor, tax_minor, "
            "total_minor, currency, status) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'CREATED')",
            (order.order_id, user_id, order.course_id, unit, unit, order.tax_minor, order.total_minor, currency),
        )
        enqueue(connection, make_event(
            settings, "order.created", user_id, correlation_id, order_id=order.order_id, course_id=order.course_id,
            session_id=None, quantity=1, unit_price_minor=unit, discount_minor=0, subtotal_minor=unit,
            tax_minor=order.tax_minor, total_minor=order.total_minor, currency=currency, coupon_code=None,
        ))  # fmt: skip
    return order


@router.get("/orders/{order_id}", response_model=Order)
def read_order(order_id: uuid.UUID, user_id: UserDep, settings: SettingsDep) -> Order:
    with psycopg.connect(settings.postgres.dsn()) as connection:
        row = connection.execute(
            "SELECT order_id, course_id, unit_price_minor, subtotal_minor, tax_minor, total_minor, currency, status "
            "FROM orders WHERE order_id = %s AND user_id = %s",
            (order_id, user_id),
        ).fetchone()
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no order {order_id} of yours")
    return Order(order_id=str(row[0]), course_id=str(row[1]), unit_price_minor=row[2], subtotal_minor=row[3],
                 tax_minor=row[4], total_minor=row[5], currency=row[6].strip(), status=row[7])  # fmt: skip


def _check_instrument(body: PaymentRequest) -> None:
    if body.method == "UPI":
        if body.vpa is None or body.card is not None:
            raise invalid("vpa", "a UPI payment needs 'vpa' and no 'card'")
        if problem := vpa_problem(body.vpa):
            raise invalid("vpa", f"'{body.vpa}' {problem}")
        return
    if body.card is None or body.vpa is not None:
        raise invalid("card", "a card payment needs 'card' and no 'vpa'")
    if problem := card_problem(body.card.number.get_secret_value()):
        raise invalid("card.number", f"card number {problem}")
    cvv = body.card.cvv.get_secret_value()
    if not CVV.fullmatch(cvv):
        raise invalid("card.cvv", "must be 3 or 4 digits")
    today = dt.date.today()
    if (body.card.expiry_year, body.card.expiry_month) < (today.year, today.month):
        raise invalid("card.expiry_year", "the card has expired")


@router.post("/payments", status_code=status.HTTP_201_CREATED)
def start_payment(
    body: PaymentRequest, request: Request, response: Response, user_id: UserDep, settings: SettingsDep,
    correlation_id: CorrelationDep, idempotency_key: Annotated[str, Header(min_length=8, max_length=128)],
) -> dict[str, Any]:  # fmt: skip
    """Start paying an order by UPI or card; emits `payment.initiated` and the validation or tokenization step."""
    _check_instrument(body)
    token = tokenize(body.card.number.get_secret_value(), settings.services.jwt_secret.get_secret_value().encode()) \
        if body.card else None  # fmt: skip
    # What identifies the request, without the card's secrets: the token stands for the number.
    fingerprint = {"order_id": str(body.order_id), "method": body.method, "vpa": body.vpa,
                   "card": token.token if token else None, "device_id": body.device_id}  # fmt: skip
    request_hash = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()
    with psycopg.connect(settings.postgres.dsn()) as connection, connection.transaction():
        # A concurrent request with the same key waits here until the first one commits.
        claimed = connection.execute(
            "INSERT INTO idempotency_keys (user_id, idempotency_key, request_hash) VALUES (%s, %s, %s) "
            "ON CONFLICT DO NOTHING RETURNING user_id",
            (user_id, idempotency_key, request_hash),
        ).fetchone()
        if claimed is None:
            first = connection.execute(
                "SELECT request_hash, response_status, response_body FROM idempotency_keys "
                "WHERE user_id = %s AND idempotency_key = %s",
                (user_id, idempotency_key),
            ).fetchone()
            assert first is not None
            if first[0] != request_hash:
                raise invalid("Idempotency-Key", "already used with a different request", location="header")
            response.status_code = first[1]
            result: dict[str, Any] = first[2]
            return result
        order = connection.execute(
            "SELECT total_minor, currency, status FROM orders WHERE order_id = %s AND user_id = %s FOR UPDATE",
            (body.order_id, user_id),
        ).fetchone()
        if order is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no order {body.order_id} of yours")
        if order[2] != "CREATED":
            raise HTTPException(status.HTTP_409_CONFLICT, f"order {body.order_id} is {order[2]}, not payable")
        in_progress = connection.execute(
            "SELECT payment_id FROM payments WHERE order_id = %s AND status = 'INITIATED'", (body.order_id,)
        ).fetchone()
        if in_progress is not None:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"payment {in_progress[0]} of order {body.order_id} is still waiting for its outcome; "
                "repeat that request (same Idempotency-Key) for its answer, or follow the order with GET /orders/{id}",
            )
        amount, currency = int(order[0]), order[1].strip()
        if amount == 0:
            raise HTTPException(status.HTTP_409_CONFLICT, f"order {body.order_id} costs nothing: nothing to pay")
        attempt_row = connection.execute(
            "SELECT count(*) + 1 FROM payments WHERE order_id = %s", (body.order_id,)
        ).fetchone()
        attempt = int(attempt_row[0]) if attempt_row else 1
        payment_id = str(uuid.uuid4())
        connection.execute(
            "INSERT INTO payments (payment_id, order_id, user_id, attempt, method, amount_minor, currency, status, "
            "card_token, card_last4, vpa) VALUES (%s, %s, %s, %s, %s, %s, %s, 'INITIATED', %s, %s, %s)",
            (payment_id, body.order_id, user_id, attempt, body.method, amount, currency,
             token.token if token else None, token.last4 if token else None, body.vpa),
        )  # fmt: skip
        common = {"payment_id": payment_id, "order_id": str(body.order_id)}
        client_ip = request.client.host if request.client else "unknown"
        record(connection, make_event(
            settings, "payment.initiated", user_id, correlation_id, **common, attempt=attempt, method=body.method,
            amount_minor=amount, currency=currency, device_id=body.device_id, ip_address=client_ip,
            idempotency_key=idempotency_key,
        ))  # fmt: skip
        if token is not None:
            step = make_event(settings, "payment.card_tokenized", user_id, correlation_id, **common,
                              token=token.token, network=token.network, card_type="UNKNOWN", last4=token.last4,
                              bin=token.bin, issuer_country="IN")  # fmt: skip
        else:
            assert body.vpa is not None
            step = make_event(settings, "payment.upi_vpa_validated", user_id, correlation_id, **common,
                              vpa=body.vpa, psp=body.vpa.split("@", 1)[1], valid=True)  # fmt: skip
        record(connection, step)
        result = {"payment_id": payment_id, "order_id": str(body.order_id), "attempt": attempt,
                  "status": "INITIATED", "amount_minor": amount, "currency": currency}  # fmt: skip
        connection.execute(
            "UPDATE idempotency_keys SET response_status = 201, response_body = %s "
            "WHERE user_id = %s AND idempotency_key = %s",
            (json.dumps(result), user_id, idempotency_key),
        )
    return result
