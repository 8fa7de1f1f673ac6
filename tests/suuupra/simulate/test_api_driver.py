"""`suuupra simulate --via api`: the plan (deterministic, valid and invalid by the services' own rules) and a run
against the real services (uvicorn in a thread, on PostgreSQL and Redis), checked in the database and the outbox."""

from __future__ import annotations

import functools
import json
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from email_validator import EmailNotValidError, validate_email
from typer.testing import CliRunner

from services.app import create_app, ensure_schema
from services.commerce.instruments import card_problem, vpa_problem
from services.identity.api import password_problems
from suuupra.cli import simulate_cmd
from suuupra.cli.main import app
from suuupra.settings import Settings
from suuupra.simulate.api_driver import (
    INVALID_KINDS,
    REQUIRED_PATHS,
    ApiPlan,
    ApiProfile,
    Outcome,
    RunOptions,
    ServicesUnreachableError,
    build_plan,
    luhn_check_digit,
    run_plan,
)

SMALL = ApiProfile(instructors=2, learners=10, invalid_share=0.5, repeat_payment_share=0.5, delete_share=0.2)
runner = CliRunner()


def covers_everything(plan: ApiPlan) -> bool:
    """A plan that exercises every kind of request the driver knows, so a small run tests them all."""
    learners = plan.learners
    payments = [learner.payment for learner in learners if learner.payment]
    return (
        {learner.invalid.kind for learner in learners if learner.invalid} == set(INVALID_KINDS)
        and {payment.repeat for payment in payments} == {"no", "after", "concurrently"}
        and any(payment.card for payment in payments)
        and any(payment.vpa for payment in payments)
        and any(learner.delete_account for learner in learners)
        and any(learner.profile_change for learner in learners)
        and any(not learner.buys for learner in learners)
    )


def small_plan(run_id: str) -> ApiPlan:
    for seed in range(200):
        plan = build_plan(replace(SMALL, seed=seed), run_id)
        if covers_everything(plan):
            return plan
    raise AssertionError("no seed below 200 gives a small plan that covers every request kind")


# --- the plan, without any server ----------------------------------------------------------------------------


def test_same_seed_same_plan_and_more_learners_extend_it() -> None:
    plan = build_plan(SMALL, "run1")
    assert build_plan(SMALL, "run1") == plan
    assert build_plan(replace(SMALL, seed=SMALL.seed + 1), "run1") != plan
    bigger = build_plan(replace(SMALL, learners=30), "run1")
    assert bigger.learners[:10] == plan.learners
    assert bigger.instructors == plan.instructors
    # Another run of the same seed differs only in the addresses, which must not collide with the first run's.
    other = build_plan(SMALL, "run2")
    assert [learner.payment for learner in other.learners] == [learner.payment for learner in plan.learners]
    assert not set(other.emails) & set(plan.emails)


def test_luhn_check_digit_of_known_test_cards() -> None:
    for number in ("4111111111111111", "5555555555554444", "378282246310005", "6011111111111117"):
        assert luhn_check_digit(number[:-1]) == number[-1]


def test_valid_requests_pass_and_invalid_ones_fail_the_services_own_checks() -> None:
    plan = build_plan(replace(SMALL, learners=300, invalid_share=0.6), "check")
    assert len(set(plan.emails)) == len(plan.emails)
    for account in [person.account for person in plan.instructors] + [person.account for person in plan.learners]:
        validate_email(account.email, check_deliverability=False)
        assert not password_problems(account.password, account.email)
    kinds: Counter[str] = Counter()
    for learner in plan.learners:
        if learner.payment is not None:
            if learner.payment.card is not None:
                assert card_problem(learner.payment.card.number) is None
            else:
                assert learner.payment.vpa is not None
                assert vpa_problem(learner.payment.vpa) is None
        if learner.invalid is None:
            continue
        kinds[learner.invalid.kind] += 1
        body: dict[str, Any] = dict(learner.invalid.body)
        if learner.invalid.kind == "bad_email":
            with pytest.raises(EmailNotValidError):
                validate_email(body["email"], check_deliverability=False)
        elif learner.invalid.kind == "weak_password":
            assert password_problems(body["password"], body["email"])
        elif learner.invalid.kind == "bad_vpa":
            assert vpa_problem(body["vpa"])
        else:
            assert card_problem(body["card"]["number"])
    assert set(kinds) == set(INVALID_KINDS)


def test_unreachable_services_are_reported_with_what_to_do() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once the probe is closed
    with pytest.raises(ServicesUnreachableError, match="suuupra services up"):
        run_plan(build_plan(SMALL, "down"), f"http://127.0.0.1:{port}", RunOptions(connect_timeout_s=2))


def fake_services(failing: dict[str, int] | None = None) -> httpx.MockTransport:
    """A stand-in for the services that accepts every request (invalid ones too) and settles every order at once;
    endpoints in `failing` (e.g. {"POST /payments": 500}) answer with that status instead."""
    emails: dict[str, str] = {}  # token -> address
    deleted: set[str] = set()

    def handle(request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        template = "/".join("{id}" if len(part) == 36 else part for part in path.split("/"))
        if f"{method} {template}" in (failing or {}):
            return httpx.Response((failing or {})[f"{method} {template}"], text="Internal Server Error")
        body = json.loads(request.content) if request.content else {}
        token = request.headers.get("Authorization", "")[len("Bearer ") :]
        new_id = str(uuid.uuid4())
        if path == "/openapi.json":
            return httpx.Response(200, json={"paths": {route: {} for route in REQUIRED_PATHS}})
        if path == "/auth/register":
            emails[new_id] = body["email"]
            return httpx.Response(201, json={"user_id": new_id, "access_token": new_id})
        if path == "/auth/login":
            user = next(t for t, email in emails.items() if email == body["email"] and t not in deleted)
            return httpx.Response(200, json={"user_id": user, "access_token": user})
        if path == "/users/me":
            if token in deleted:
                return httpx.Response(401, json={"detail": "session ended"})
            if method == "DELETE":
                deleted.add(token)
                return httpx.Response(204)
            return httpx.Response(200, json={"email": emails[token], **body})
        answers = {
            "POST /contents": (201, {"content_id": new_id}),
            "POST /contents/{id}/publish": (200, {"published_revision": 1}),
            "GET /contents/{id}": (200, {}),
            "POST /orders": (201, {"order_id": new_id}),
            "POST /payments": (201, {"payment_id": request.headers.get("Idempotency-Key")}),
            "GET /orders/{id}": (200, {"status": "FULFILLED"}),
        }
        status, answer = answers[f"{method} {template}"]
        return httpx.Response(status, json=answer)

    return httpx.MockTransport(handle)


def test_an_accepted_invalid_request_is_an_error() -> None:
    plan = small_plan("fake")
    summary = run_plan(plan, "http://services.test", transport=fake_services())
    invalid = sum(1 for learner in plan.learners if learner.invalid)
    assert summary.error_count == invalid > 0
    assert all("not refused with a 4xx" in error.detail for error in summary.errors)
    assert summary.invalid_rejected.total() == 0
    buyers = sum(learner.buys for learner in plan.learners)
    assert summary.journeys[("learner", Outcome.FULFILLED)] == buyers


def test_server_errors_are_counted_end_the_journey_and_fail_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = small_plan("fake")
    transport = fake_services({"POST /payments": 500})
    summary = run_plan(plan, "http://services.test", transport=transport)
    buyers = sum(learner.buys for learner in plan.learners)
    assert summary.server_errors >= buyers > 0
    assert summary.requests[("POST /payments", 500)] == summary.server_errors
    assert summary.journeys[("learner", Outcome.FAILED)] == buyers
    assert not summary.ok
    assert any(error.status == 500 and "server error" in error.detail for error in summary.errors)

    monkeypatch.setattr(simulate_cmd, "run_plan", functools.partial(run_plan, transport=transport))
    result = runner.invoke(app, ["simulate", "--via", "api", "--services-url", "http://services.test", "--seed", "0",
                                 "--instructors", "2", "--learners", "10"])  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "server errors" in result.output
    assert "suuupra services up` log" in " ".join(result.output.split())


def test_options_of_the_other_mode_are_refused() -> None:
    result = runner.invoke(app, ["simulate", "--via", "api", "--rate", "10"])
    assert result.exit_code == 1
    assert "--rate applies only to --via kafka" in result.output
    result = runner.invoke(app, ["simulate", "--learners", "5"])
    assert result.exit_code == 1
    assert "--learners applies only to --via api" in result.output


# --- against the real services -------------------------------------------------------------------------------


@pytest.fixture
def services(isolated: Settings) -> Iterator[Settings]:
    """The services' app served by uvicorn in a thread on a free port; the test's settings, pointing at it.

    No outbox relay and no saga workers run here: orders stay CREATED after payment, as they would without them.
    """
    settings = isolated
    ensure_schema(settings)
    with socket.socket() as probe:
        probe.bind((settings.services.host, 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host=settings.services.host, port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="services", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield settings.model_copy(update={"services": settings.services.model_copy(update={"port": port})})
    server.should_exit = True
    thread.join(timeout=30)


def test_run_through_the_apis_lands_in_the_database_and_the_outbox(services: Settings) -> None:
    plan = small_plan(f"t{time.time_ns() % 10**10}")
    url = f"http://{services.services.host}:{services.services.port}"
    summary = run_plan(plan, url, RunOptions(concurrency=6, settle_timeout_s=1.0, poll_interval_s=0.2))

    assert summary.ok, "\n".join(map(str, summary.errors))
    assert summary.server_errors == 0
    assert not [key for key in summary.requests if key[1] >= 500]

    learners, instructors = plan.learners, plan.instructors
    buyers = [learner for learner in learners if learner.buys]
    lessons = sum(len(course.lessons) for course in plan.courses)
    planned_invalid = Counter(learner.invalid.kind for learner in learners if learner.invalid)
    assert summary.invalid_sent == planned_invalid
    assert summary.invalid_rejected == planned_invalid, "every invalid request must get a 4xx"
    assert summary.journeys[("instructor", Outcome.PUBLISHED)] == len(instructors)
    assert summary.journeys[("learner", Outcome.NO_PURCHASE)] == len(learners) - len(buyers)
    settled_or_not = (Outcome.FULFILLED, Outcome.CANCELLED, Outcome.PENDING)
    assert sum(summary.journeys[("learner", outcome)] for outcome in settled_or_not) == len(buyers)
    repeats = sum({"no": 0, "after": 1, "concurrently": 1}[b.payment.repeat] for b in buyers if b.payment)
    assert summary.payment_repeats == repeats > 0

    emails = list(plan.emails)
    user_ids = summary.user_ids
    with psycopg.connect(services.postgres.dsn()) as connection:
        users = connection.execute(
            "SELECT user_id::text, deleted_at IS NOT NULL FROM users WHERE email = ANY(%s)", (emails,)
        ).fetchall()
        # One account per planned address, whatever the invalid registrations tried.
        assert sorted(user_id for user_id, _ in users) == sorted(user_ids)
        assert len(users) == len(instructors) + len(learners)
        assert sum(deleted for _, deleted in users) == sum(learner.delete_account for learner in learners)
        published = connection.execute(
            "SELECT count(*) FROM contents WHERE instructor_id::text = ANY(%s) AND published_revision = 1",
            (user_ids,),
        ).fetchone()
        assert published == (lessons,)
        orders = connection.execute(
            "SELECT order_id::text FROM orders WHERE user_id::text = ANY(%s)", (user_ids,)
        ).fetchall()
        assert sorted(order for (order,) in orders) == sorted(summary.order_ids)
        assert len(orders) == len(buyers)
        # A repeated payment (same Idempotency-Key) must not have created a second one.
        payments = connection.execute(
            "SELECT order_id::text, count(*) FROM payments WHERE user_id::text = ANY(%s) GROUP BY order_id",
            (user_ids,),
        ).fetchall()
        assert sorted(order for order, _ in payments) == sorted(summary.order_ids)
        assert all(count == 1 for _, count in payments)
        events: dict[str, int] = dict(
            connection.execute(
                "SELECT event_type, count(*) FROM outbox WHERE record_key = ANY(%s) GROUP BY event_type", (user_ids,)
            ).fetchall()
        )
        leaked = connection.execute(
            "SELECT count(*) FROM outbox WHERE record_key = ANY(%s) AND payload::text LIKE ANY(%s)",
            (user_ids, [f"%{b.payment.card.number}%" for b in buyers if b.payment and b.payment.card]),
        ).fetchone()
    card_buyers = sum(1 for b in buyers if b.payment and b.payment.card)
    assert events.get("user.registered") == len(instructors) + len(learners)
    assert events.get("user.updated") == sum(1 for learner in learners if learner.profile_change)
    assert events.get("user.deleted") == sum(learner.delete_account for learner in learners)
    assert events.get("content.created") == events.get("content.published") == lessons
    assert events.get("order.created") == events.get("payment.initiated") == len(buyers)
    assert events.get("payment.card_tokenized", 0) == card_buyers
    assert events.get("payment.upi_vpa_validated", 0) == len(buyers) - card_buyers
    assert leaked == (0,), "a card number reached the outbox"


def test_cli_via_api_uses_the_settings_url_and_reports_pending_orders(services: Settings) -> None:
    env = {"SUUUPRA_SERVICES__PORT": str(services.services.port)}
    args = ["simulate", "--via", "api", "--seed", "3", "--instructors", "1", "--learners", "4", "--settle-timeout", "0"]
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert f"requests to http://{services.services.host}:{services.services.port}" in text
    assert "POST /auth/register" in text
    assert "p99 ms" in text

    plan = build_plan(ApiProfile(seed=3, instructors=1, learners=4), "any")
    if any(learner.buys for learner in plan.learners):
        # Nothing settles orders here (no saga workers), so requiring it fails the run, saying why.
        strict = runner.invoke(app, [*args, "--require-settled"], env=env)
        assert strict.exit_code == 1, strict.output
        assert "--require-settled" in strict.output
        assert "still pending" in strict.output
