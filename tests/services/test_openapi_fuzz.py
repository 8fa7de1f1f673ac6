"""The services fuzzed through their OpenAPI description with schemathesis: no request may get a 5xx.

One test per operation: schemathesis' coverage phase (boundary values), then its fuzzing phase, each with valid and
invalid data. A request to an operation that needs a session is sent twice: as generated (no token, or a made-up one),
then with a live session. Three in four of the latter are also aimed at real records (the fuzzing user's content, a
published course, an order of it): their well-formed ids are replaced by those, and their credentials and payment
instruments made valid, so that the fuzzer gets past authentication, lookups and the first checks into the business
logic and the database.
"""

from __future__ import annotations

import copy
import json
import uuid
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
import schemathesis
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient
from psycopg import sql
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from services.app import create_app, ensure_schema
from services.identity import api as identity_api
from suuupra.platform.manager import Platform
from suuupra.search.cowatch import CoWatchGraph
from suuupra.search.embedder import ModelStore
from suuupra.search.engine import engine_client
from suuupra.search.index import SearchIndex, document_row
from suuupra.search.service import fit_embedder
from suuupra.settings import Settings, load_settings
from suuupra.verify.search import event_text
from tests.services.support import PASSWORD, sign_up

MAX_EXAMPLES = 100  # per operation in the fuzzing phase; the coverage phase adds its boundary cases on top
CARD = "4111111111111111"  # a Luhn-valid test VISA number
VPA = "fuzz.learner@okbank"
# Besides no 5xx: the answers the description documents (2xx and 422; a login's 401 and 429 too) have its body and
# content type. The other 4xx (401, 403, 404, 409, 412) are not documented, so status codes themselves are not checked.
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
ENDING_SESSIONS = {"DELETE /users/me", "POST /auth/logout"}  # sent with a disposable account's session

# The description only: the requests go to the app of the module's `world`. (schemathesis.pytest.from_fixture could
# take the app from a fixture, but it fails on pytest 9.2, which renamed Node._nodeid.)
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(load_settings(profile="local")))
# Derandomized and without Hypothesis' example database: every run generates the same cases, whatever ran before.
schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True, database="none")


@dataclass
class World:
    """The real records the fuzzer's requests are aimed at, and the answers they got."""

    app: FastAPI
    client: TestClient
    session: dict[str, str]
    email: str
    content_id: str  # the fuzzing user's own content, which the fuzzer revises and publishes
    foreign_content_id: str  # another instructor's, which the fuzzer may not change
    course_id: str  # the course of that content, published at 999.00 INR, for the orders
    order_id: str  # an order of that course that takes a payment
    leaver: dict[str, str] | None = None
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)

    def leaving_session(self) -> dict[str, str]:
        # DELETE /users/me ends the account and POST /auth/logout the session (every one of the user's with
        # ?everywhere=true): a disposable account keeps the world's session and records alive.
        if self.leaver is None:
            self.leaver = sign_up(self.client, "leaver")
        return self.leaver

    def renew_content(self) -> None:
        # A deleted content is gone for good: later cases need one of the fuzzer's own again (a draft, which the
        # operations after deletion's can publish, then withdraw).
        self.content_id, _ = _published_content(self.client, self.session, publish=False)

    def renew_order(self) -> None:
        # An order takes no other payment while one waits for its outcome (decided by the saga, not run here).
        self.order_id = _order(self.client, self.session, self.course_id)


def _published_content(client: TestClient, session: dict[str, str], publish: bool = True) -> tuple[str, str]:
    draft = {"course_id": str(uuid.uuid4()), "title": "Fuzzing 101", "description": "", "category": "testing",
             "language": "en", "duration_seconds": 600, "lesson_number": 1, "price_minor": 99_900,
             "currency": "INR"}  # fmt: skip
    content = client.post("/contents", json=draft, headers=session)
    assert content.status_code == 201, content.text
    content_id = content.json()["content_id"]
    if publish:
        assert client.post(f"/contents/{content_id}/publish", headers=session).status_code == 200
    return content_id, draft["course_id"]


def _order(client: TestClient, session: dict[str, str], course_id: str) -> str:
    order = client.post("/orders", json={"course_id": course_id}, headers=session)
    assert order.status_code == 201, order.text
    return str(order.json()["order_id"])


@pytest.fixture(scope="module")
def world(settings: Settings, platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    # A PostgreSQL schema of its own, dropped afterwards, as `isolated` gives each test; but no topics: the app only
    # writes its events to the outbox table. One app for the module: every operation's test shares the records.
    # A search index and graph of its own too, holding the world's contents.
    postgres = settings.postgres.model_copy(update={"services_schema": f"fuzz_{uuid.uuid4().hex[:10]}"})
    name = f"fuzz-{uuid.uuid4().hex[:10]}"
    search = settings.search.model_copy(
        update={"index": name, "graph": name, "models_dir": tmp_path_factory.mktemp("fuzz-models")}
    )
    own = settings.model_copy(update={"postgres": postgres, "search": search})
    ensure_schema(own)
    app = create_app(own)
    try:
        with pytest.MonkeyPatch.context() as patch, TestClient(app) as client:
            # At its production cost (0.15 s a hash or check) Argon2 would take most of the run; the fuzzer is after
            # the handlers, not the hash.
            patch.setattr(identity_api, "hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
            session = sign_up(client, "fuzzer")
            email = client.get("/users/me", headers=session).json()["email"]
            content_id, _ = _published_content(client, session)
            foreign_content_id, course_id = _published_content(client, sign_up(client, "instructor"))
            order_id = _order(client, session, course_id)
            _index(own, [client.get(f"/contents/{cid}").json() for cid in (content_id, foreign_content_id)])
            yield World(app, client, session, email, content_id, foreign_content_id, course_id, order_id)
    finally:
        with psycopg.connect(settings.postgres.dsn(), autocommit=True) as connection:
            connection.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(postgres.services_schema)))
        engine = engine_client(own)
        for info in ModelStore(own.embedder_models_dir).models():
            SearchIndex(engine, own, info.version).drop()
        CoWatchGraph(engine, own).drop()
        engine.close()


def _index(settings: Settings, contents: list[dict[str, Any]]) -> None:
    """The world's contents in the search index (as the indexing job would put them), co-watched with each other."""
    texts = [event_text(content) for content in contents] + ["streams and tables", "search engines", "graphs"]
    embedder = fit_embedder(settings, texts, 4)
    engine = engine_client(settings)
    index = SearchIndex(engine, settings, embedder.version, embedder.dim)
    index.ensure()
    vectors = embedder.embed([event_text(content) for content in contents])
    events = [{**content, "event_type": "content.published", "event_time": 0} for content in contents]
    pairs = zip(events, vectors, strict=True)
    index.apply([document_row(event, embedder.version, vector.tobytes()) for event, vector in pairs])
    low, high = sorted(content["content_id"] for content in contents)
    CoWatchGraph(engine, settings).upsert({(low, high, 20_000): 3})
    engine.close()


def _draw(case: schemathesis.Case) -> int:
    """How a case is aimed at the world, drawn from the generated request itself, so that Hypothesis replays and
    shrinks a failing case to the same request."""
    generated = (case.path_parameters, dict(case.headers), case.query, case.body)
    # A missing body is an object whose repr holds its address: named by its type, so every run draws the same.
    text = json.dumps(generated, sort_keys=True, default=lambda value: type(value).__name__)
    return zlib.crc32(text.encode()) % 4


def _is_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _aim(case: schemathesis.Case, world: World, adverse: bool) -> None:
    """Points the case at the world; an adverse case at what the user does not own, with the fuzzer's own
    Idempotency-Key, which an earlier payment may have taken (a replay, or a conflict)."""
    ids = {"content_id": world.foreign_content_id if adverse else world.content_id, "order_id": world.order_id}
    case.path_parameters = {
        name: ids[name] if name in ids and _is_uuid(value) else value for name, value in case.path_parameters.items()
    }
    if not isinstance(case.body, dict):
        return
    body = case.body = copy.deepcopy(case.body)
    for name, real in (("course_id", world.course_id), ("order_id", world.order_id)):
        if _is_uuid(body.get(name)):
            body[name] = real
    label = case.operation.label
    if label == "POST /auth/register" and isinstance(body.get("password"), str):
        # A fresh address: the fuzzer's few addresses would each be taken after their first registration.
        body.update(email=f"fuzz-{uuid.uuid4().hex}@example.com", password=PASSWORD)
    if label == "POST /auth/login" and isinstance(body.get("password"), str):
        body.update(email=world.email, password=PASSWORD)
    key = case.headers.get("Idempotency-Key")
    if label == "POST /payments" and not adverse and isinstance(key, str) and 8 <= len(key) <= 128:
        # The fuzzer's few keys would all be taken by the first payments, refusing the requests after them.
        case.headers["Idempotency-Key"] = uuid.uuid4().hex
    if label == "POST /payments" and body.get("method") == "UPI":
        body.pop("card", None)
        body["vpa"] = VPA
    if label == "POST /payments" and body.get("method") == "CARD":
        body.pop("vpa", None)
        card = body["card"] if isinstance(body.get("card"), dict) else {"expiry_month": 12, "expiry_year": 2099}
        body["card"] = {**card, "number": CARD, "cvv": "123"}


@schema.parametrize()
def test_no_request_gets_a_server_error(case: schemathesis.Case, world: World) -> None:
    label = case.operation.label
    draw = _draw(case)  # on the request as generated: the session token differs from run to run
    # Cases of the coverage phase share their containers: changed in place, the world would leak into later cases.
    case.headers = case.headers.copy()
    if any(parameter.name.lower() == "authorization" for parameter in case.operation.headers):
        response = case.call_and_validate(checks=CHECKS, app=world.app)
        world.statuses[(f"{label} (as generated)", response.status_code)] += 1
        session = world.leaving_session() if label in ENDING_SESSIONS else world.session
        case.headers["Authorization"] = session["Authorization"]
    if draw != 0:  # three cases in four, one of them adverse
        _aim(case, world, adverse=draw == 1)
    response = case.call_and_validate(checks=CHECKS, app=world.app)
    world.statuses[(label, response.status_code)] += 1
    if label in ENDING_SESSIONS and response.status_code == 204:
        world.leaver = None
    if label == "POST /payments" and response.status_code == 201:
        world.renew_order()
    if label == "DELETE /contents/{content_id}" and response.status_code == 204:
        world.renew_content()
    if label == "PATCH /users/me" and response.status_code == 200:
        world.email = response.json()["email"]  # logins aimed at the world keep finding the account


def test_the_fuzzer_got_past_validation(world: World) -> None:
    """Without this, a fuzzer stopped at 401 and 422 by a broken session or aiming would find no 5xx, and pass."""
    if not world.statuses:
        pytest.skip("runs after the fuzzing tests of this module, on what they recorded")
    for label, status in sorted(world.statuses):
        print(f"{label:40} {status}: {world.statuses[(label, status)]}")
    reached = {label for label, status in world.statuses if status < 300}
    expected = {operation.label for operation in (result.ok() for result in schema.get_all_operations())}
    assert expected <= reached, f"never answered with a success: {sorted(expected - reached)}"
