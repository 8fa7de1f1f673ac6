"""The payment path through the services' HTTP APIs while a component is killed -9 under it: PostgreSQL (brought
back with `platform up`) or the services process itself (brought back with `services up`). Buyers order and pay the
way a client app does, repeating a request that got no answer or a 5xx with the same Idempotency-Key. Afterwards
every paid order is settled once (fulfilled and enrolled, or cancelled), no order is charged twice, the ledger
balances, and every event the services committed is in Kafka: none is lost from the outbox."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from suuupra.events import event_consumer
from suuupra.flink_jobs import free_local_port
from suuupra.platform.base import wait_until
from suuupra.settings import Settings, environment_overrides
from tests.faults.test_outages import _kill
from tests.jobs.analytics_support import SUUUPRA
from tests.services.support import PASSWORD

ORDERS = 36
APPROVED_PRICE, REJECTED_PRICE = 99_900, 2_500_000  # the fraud stand-in approves the one and rejects the other
ANSWER_WITHIN_S = 180.0  # how long a buyer keeps repeating a request before the test gives up


class Buyers:
    """Buyers ordering and paying through the APIs, each request repeated until it gets an answer that is not a 5xx;
    counts the requests that got none, to show the outage was felt."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=10)
        self.unanswered = 0
        self.orders: dict[str, int] = {}  # order id -> price

    def call(self, method: str, path: str, **request: Any) -> httpx.Response:
        deadline = time.monotonic() + ANSWER_WITHIN_S
        while True:
            try:
                response = self.http.request(method, path, **request)
                if response.status_code < 500:
                    return response
            except httpx.TransportError:
                pass
            self.unanswered += 1
            assert time.monotonic() < deadline, f"{method} {path} got no answer for {ANSWER_WITHIN_S:.0f} s"
            time.sleep(0.25)

    def sign_up(self, name: str) -> dict[str, str]:
        registration = {"email": f"{name}-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD,
                        "display_name": name.title(), "country": "IN", "preferred_language": "en"}  # fmt: skip
        answer = self.call("POST", "/auth/register", json=registration)
        assert answer.status_code == 201, answer.text
        return {"Authorization": f"Bearer {answer.json()['access_token']}"}

    def publish_course(self, instructor: dict[str, str], price_minor: int) -> str:
        course_id = str(uuid.uuid4())
        draft = {"course_id": course_id, "title": f"Course at {price_minor}", "description": "", "language": "en",
                 "category": "streams", "duration_seconds": 600, "lesson_number": 1, "price_minor": price_minor,
                 "currency": "INR"}  # fmt: skip
        created = self.call("POST", "/contents", json=draft, headers=instructor)
        assert created.status_code == 201, created.text
        published = self.call("POST", f"/contents/{created.json()['content_id']}/publish", headers=instructor)
        assert published.status_code == 200, published.text
        return course_id

    def buy(self, buyer: dict[str, str], course_id: str, price_minor: int) -> None:
        ordered = self.call("POST", "/orders", json={"course_id": course_id}, headers=buyer)
        assert ordered.status_code == 201, ordered.text
        order_id = ordered.json()["order_id"]
        payment = {"order_id": order_id, "method": "UPI", "vpa": "kiran@okaxis", "device_id": "web-1"}
        key = {"Idempotency-Key": f"pay-{order_id}"}
        paid = self.call("POST", "/payments", json=payment, headers=buyer | key)
        assert paid.status_code == 201, paid.text
        self.orders[order_id] = price_minor


@contextmanager
def services_process(settings: Settings, port: int, log: Path) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """`suuupra services up` in its own process group; yields a function that starts it (again)."""
    environment = {**os.environ, **environment_overrides(settings, "topics", "postgres", "services")}
    running: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        with log.open("ab") as sink:
            process = subprocess.Popen([SUUUPRA, "services", "up", "--port", str(port), "--fraud-standin"],
                                       env=environment, stdout=sink, stderr=subprocess.STDOUT,
                                       start_new_session=True)  # fmt: skip
        running.append(process)
        assert wait_until(lambda: _answers(port), 60, interval=0.2), log.read_text()[-3000:]
        return process

    try:
        yield start
    finally:
        for process in running:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(30)


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _rows(settings: Settings, query: str, *parameters: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.postgres.dsn()) as connection:
        return connection.execute(query, parameters).fetchall()  # type: ignore[arg-type]


def _unsettled(settings: Settings, order_ids: list[str]) -> int:
    [(count,)] = _rows(
        settings,
        "SELECT count(*) FROM orders WHERE order_id::text = ANY(%s) AND status NOT IN ('FULFILLED', 'CANCELLED')",
        order_ids,
    )
    return int(count)


def _events_in_kafka(settings: Settings) -> set[str]:
    topics = list(settings.topics.model_dump().values())
    with event_consumer(settings, topics) as consumer:
        return {str(record.value["event_id"]) for record in consumer.read_to_end()}


@pytest.mark.parametrize("victim", ["postgres", "services"])
def test_money_moves_once_when_a_component_of_the_payment_path_is_killed(
    isolated: Settings, tmp_path: Path, victim: str
) -> None:
    settings = isolated.model_copy(update={"services": isolated.services.model_copy(update=dict(
        fraud_standin=True, payment_timeout_s=600.0,  # no payment may time out: each must be decided
    ))})  # fmt: skip
    port = free_local_port()
    log = tmp_path / "services.log"
    with services_process(settings, port, log) as start_services:
        first = start_services()
        buyers = Buyers(f"http://127.0.0.1:{port}")
        instructor = buyers.sign_up("instructor")
        courses = [(buyers.publish_course(instructor, price), price) for price in (APPROVED_PRICE, REJECTED_PRICE)]
        failures: list[BaseException] = []

        def shop() -> None:
            try:
                for index in range(ORDERS):
                    course_id, price = courses[index % len(courses)]
                    buyers.buy(buyers.sign_up(f"buyer{index}"), course_id, price)
            except BaseException as error:  # reported by the test's thread
                failures.append(error)

        shopping = threading.Thread(target=shop)
        shopping.start()
        assert wait_until(lambda: len(buyers.orders) >= ORDERS // 3 or not shopping.is_alive(), 120, interval=0.1)
        before = buyers.unanswered
        killed = time.monotonic()
        if victim == "postgres":
            _kill(settings, "postgres")
        else:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(10)
        # Brought back only once the buyers felt the outage: a request of theirs went unanswered.
        assert wait_until(lambda: buyers.unanswered > before, 60, interval=0.1), "the kill did not hit the buyers"
        if victim == "postgres":
            subprocess.run([SUUUPRA, "platform", "up"], check=True, capture_output=True, timeout=300)
        else:
            start_services()
        shopping.join(ANSWER_WITHIN_S * 2)
        assert not failures, failures
        assert len(buyers.orders) == ORDERS
        orders = list(buyers.orders)
        assert wait_until(lambda: _unsettled(settings, orders) == 0, 180, interval=0.5), log.read_text()[-3000:]
        print(f"{victim}: every order settled {time.monotonic() - killed:.1f} s after the kill")
        assert wait_until(lambda: _rows(settings, "SELECT 1 FROM outbox WHERE published_at IS NULL") == [], 60)

    statuses = dict(_rows(settings, "SELECT order_id::text, status FROM orders WHERE order_id::text = ANY(%s)", orders))
    assert statuses == {
        order: "FULFILLED" if price == APPROVED_PRICE else "CANCELLED" for order, price in buyers.orders.items()
    }
    # One payment per order (each buyer paid once, repeating with one key), decided once.
    payments = _rows(settings, "SELECT order_id::text, status FROM payments")
    assert sorted(order for order, _status in payments) == sorted(orders)
    assert {order: status for order, status in payments} == {
        order: "APPROVED" if price == APPROVED_PRICE else "REJECTED" for order, price in buyers.orders.items()
    }
    fulfilled = [order for order, status in statuses.items() if status == "FULFILLED"]
    enrolled = _rows(settings, "SELECT order_id::text FROM enrollments")
    assert sorted(order for (order,) in enrolled) == sorted(fulfilled)
    # Charged once: one sale posting per fulfilled order, each for the order's total; and the ledger balances.
    charged = _rows(settings,
        "SELECT p.order_id::text, count(DISTINCT l.transaction_id) FROM order_postings p "
        "JOIN ledger_lines l USING (transaction_id) GROUP BY p.order_id",
    )  # fmt: skip
    assert sorted(charged) == sorted((order, 1) for order in fulfilled)
    assert _rows(settings,
        "SELECT transaction_id FROM ledger_lines GROUP BY transaction_id, currency "
        "HAVING sum(CASE WHEN direction = 'DEBIT' THEN amount_minor ELSE -amount_minor END) <> 0",
    ) == []  # fmt: skip
    # Nothing lost from the outbox: every committed event reached Kafka.
    committed = {str(event_id) for (event_id,) in _rows(settings, "SELECT event_id FROM outbox")}
    assert committed and committed <= _events_in_kafka(settings)
