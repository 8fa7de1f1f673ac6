"""The journey generator: schema-valid, deterministic, internally consistent, with the configured disorder and fraud."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import json
import random
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import fastavro
import pytest
import yaml
from fastavro.validation import validate

from connectors.avro.values import to_wire
from suuupra.simulate.journeys import EVENT_TYPES, FRAUD_PATTERNS, SimulatedEvent, SimulationProfile, generate

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"
COUNT = 20_000
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
PAYMENT_OUTCOMES = ("payment.approved", "payment.rejected", "payment.failed")


@cache
def parsed_schemas() -> dict[str, Any]:
    entries = yaml.safe_load((SCHEMAS / "catalog.yaml").read_text())["events"]
    return {
        event_type: fastavro.parse_schema(json.loads((SCHEMAS / entry["schema"]).read_text()), named_schemas={})
        for event_type, entry in entries.items()
    }


@cache
def sample() -> tuple[SimulatedEvent, ...]:
    return tuple(generate(SimulationProfile(), COUNT))


@cache
def complete_until() -> int:
    """Event time up to which `sample()` holds every generated event: none is emitted more than 2 late delays late."""
    profile = SimulationProfile()
    return sample()[-1].emit_time_ms - 2 * profile.late_delay_ms - 1


def of_type(events: Iterable[SimulatedEvent], *event_types: str) -> list[dict[str, Any]]:
    return [event.value for event in events if event.event_type in event_types]


wire = to_wire


def fraudulent(event: SimulatedEvent) -> bool:
    return any(tag.startswith("fraud:") for tag in event.tags)


def settled(journey: list[SimulatedEvent]) -> bool:
    """The journey started long enough before the end of `sample()` for all of it to be there."""
    return bool(journey[0].value["event_time"] <= complete_until() - 4 * 3_600_000)


def by_journey(events: Iterable[SimulatedEvent]) -> dict[str, list[SimulatedEvent]]:
    """Events per correlation_id, in event-time order (which is the order they happened in)."""
    journeys: dict[str, list[SimulatedEvent]] = defaultdict(list)
    for event in events:
        journeys[event.value["correlation_id"]].append(event)
    for journey in journeys.values():
        journey.sort(key=lambda event: event.value["event_time"])
    return journeys


# --- basics ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("count", [0, 1, 7, 1_234])
def test_count_is_exact(count: int) -> None:
    assert len(list(generate(SimulationProfile(seed=3), count))) == count
    assert len(sample()) == COUNT


def test_invalid_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="count"):
        list(generate(SimulationProfile(), -1))
    for bad in (
        SimulationProfile(users=0),
        SimulationProfile(late_share=1.5),
        SimulationProfile(fraud_share=-0.1),
        SimulationProfile(out_of_order_share=0.6, late_share=0.6),
    ):
        with pytest.raises(ValueError, match="must be"):
            list(generate(bad, 10))


def test_event_types_are_the_catalogs_and_all_occur() -> None:
    assert set(EVENT_TYPES) == set(parsed_schemas())
    assert len(EVENT_TYPES) == len(set(EVENT_TYPES))
    assert set(Counter(event.event_type for event in sample())) == set(EVENT_TYPES)


def test_every_event_validates_and_round_trips() -> None:
    schemas = parsed_schemas()
    profile = SimulationProfile()
    for event in sample():
        value = event.value
        assert value["event_type"] == event.event_type
        assert value["producer"] == profile.producer
        schema = schemas[event.event_type]
        assert validate(value, schema, raise_errors=True)
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, schema, value)
        buffer.seek(0)
        assert wire(fastavro.schemaless_reader(buffer, schema)) == value, event.event_type


def test_event_ids_are_unique_uuid4() -> None:
    ids = [event.value["event_id"] for event in sample()]
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(event_id).version == 4 for event_id in ids[:500])


# --- determinism -------------------------------------------------------------------------------------------
def test_same_seed_same_events_other_seed_other_events() -> None:
    first = list(generate(SimulationProfile(seed=5), 3_000))
    assert first == list(generate(SimulationProfile(seed=5), 3_000))
    other = list(generate(SimulationProfile(seed=6), 3_000))
    assert [event.value["event_id"] for event in first] != [event.value["event_id"] for event in other]


def test_a_shorter_run_is_a_prefix_of_a_longer_one() -> None:
    assert list(generate(SimulationProfile(), 5_000)) == list(sample()[:5_000])


def test_global_randomness_and_the_real_clock_are_not_used() -> None:
    random.seed(1)
    state = random.getstate()
    first = list(generate(SimulationProfile(seed=9), 1_000))
    assert random.getstate() == state, "generate must not draw from the global random generator"
    random.seed(2)
    assert list(generate(SimulationProfile(seed=9), 1_000)) == first
    start = SimulationProfile().start_time_ms
    assert min(event.value["event_time"] for event in first) >= start
    assert max(event.value["event_time"] for event in first) < start + 7 * 24 * 3_600_000


# --- emit order, out-of-order and late events --------------------------------------------------------------
def test_emit_order_and_disorder_tags() -> None:
    profile = SimulationProfile()
    events = sample()
    emit_times = [event.emit_time_ms for event in events]
    assert emit_times == sorted(emit_times)
    for event in events:
        delay = event.emit_time_ms - event.value["event_time"]
        assert not {"late", "out_of_order"} <= event.tags
        if "late" in event.tags:
            assert profile.late_delay_ms <= delay <= 2 * profile.late_delay_ms
        elif "out_of_order" in event.tags:
            assert 1 <= delay <= profile.max_disorder_ms
        else:
            assert delay == 0
    late = sum("late" in event.tags for event in events) / len(events)
    disordered = sum("out_of_order" in event.tags for event in events) / len(events)
    assert profile.late_share * 0.7 <= late <= profile.late_share * 1.3
    assert profile.out_of_order_share * 0.85 <= disordered <= profile.out_of_order_share * 1.15
    # The point of both: some events really do arrive after events that happened later.
    inversions = sum(a.value["event_time"] > b.value["event_time"] for a, b in itertools.pairwise(events))
    assert inversions > 0


@pytest.mark.parametrize(("late_share", "out_of_order_share"), [(0.0, 0.0), (0.05, 0.2)])
def test_configured_disorder_shares(late_share: float, out_of_order_share: float) -> None:
    profile = SimulationProfile(seed=21, late_share=late_share, out_of_order_share=out_of_order_share)
    events = list(generate(profile, 10_000))
    late = sum("late" in event.tags for event in events) / len(events)
    disordered = sum("out_of_order" in event.tags for event in events) / len(events)
    assert late == pytest.approx(late_share, abs=0.012)
    assert disordered == pytest.approx(out_of_order_share, abs=0.015)
    if late_share == out_of_order_share == 0.0:
        assert all(event.emit_time_ms == event.value["event_time"] for event in events)


# --- users and journeys ------------------------------------------------------------------------------------
def test_each_users_history_is_consistent() -> None:
    events = [event for event in sample() if event.value["event_time"] <= complete_until()]
    instructors = {value["instructor_id"] for value in of_type(events, "content.created", "content.published")}
    per_user: dict[str, list[SimulatedEvent]] = defaultdict(list)
    for event in events:
        per_user[event.value["user_id"]].append(event)
    learners = 0
    for user_id, history in per_user.items():
        history.sort(key=lambda event: event.value["event_time"])
        times = [event.value["event_time"] for event in history]
        assert times == sorted(times)
        if user_id in instructors:
            assert {event.event_type.split(".")[0] for event in history} == {"content"}
            continue
        learners += 1
        types = [event.event_type for event in history]
        assert types[0] == "user.registered", f"{user_id} acts before registering: {types[:3]}"
        assert types.count("user.registered") == 1
        if "user.deleted" in types:
            assert types[-1] == "user.deleted"
            assert types.count("user.deleted") == 1
        # One user's journeys never overlap in time (chargebacks come from the card network, not the user).
        spans = sorted(
            (journey[0].value["event_time"], journey[-1].value["event_time"])
            for journey in by_journey(e for e in history if "chargeback" not in e.tags).values()
        )
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end < start, f"{user_id} has overlapping journeys"
    assert learners > 100


def test_sessions_are_consistent() -> None:
    events = [event for event in sample() if event.value["event_time"] <= complete_until()]
    for journey in by_journey(events).values():
        times = [event.value["event_time"] for event in journey]
        assert len(set(times)) == len(times), "events of one journey happen one after the other"
        assert len({event.value["user_id"] for event in journey}) == 1
        sessions = {event.value["session_id"] for event in journey if event.event_type.startswith("clickstream.")}
        assert len(sessions) <= 1, "one session per journey"
        clicks = [event for event in journey if event.event_type.startswith("clickstream.")]
        if not clicks or clicks[0].event_type != "clickstream.session_started":
            assert not clicks, "a session starts with clickstream.session_started"
            continue
        ended = [event for event in clicks if event.event_type == "clickstream.session_ended"]
        if ended:
            assert ended == [clicks[-1]]
            duration = ended[0].value["event_time"] - clicks[0].value["event_time"]
            assert ended[0].value["duration_ms"] == duration
        orders = of_type(journey, "order.created")
        assert all(order["session_id"] == clicks[0].value["session_id"] for order in orders)


def test_content_exists_before_it_is_used() -> None:
    events = sorted(sample(), key=lambda event: event.value["event_time"])
    published: dict[str, dict[str, Any]] = {}
    published_courses: set[str] = set()
    revisions: dict[str, int] = {}  # of each content's latest lifecycle event: every change takes the next one
    deleted: set[str] = set()
    for event in events:
        value = event.value
        if event.event_type.startswith("content."):
            assert value["content_id"] not in deleted, "nothing happens to a deleted content"
            last = revisions.get(value["content_id"], 0)
            revision = value.get("revision", 1)  # content.created is revision 1
            # Publishing an edit keeps its revision; publishing after a withdrawal takes the next one.
            allowed = (last, last + 1) if event.event_type == "content.published" else (last + 1,)
            assert revision in allowed or revision == 1, (event.event_type, last, revision)
            revisions[value["content_id"]] = revision
        if event.event_type in ("content.unpublished", "content.deleted"):
            assert value["content_id"] in published
            if event.event_type == "content.deleted":
                deleted.add(value["content_id"])
        if event.event_type == "content.published":
            published[value["content_id"]] = value
            published_courses.add(value["course_id"])
            assert value["user_id"] == value["instructor_id"]
            assert 49_900 <= value["price_minor"] <= 999_900
            assert value["currency"] == "INR"
        elif event.event_type in ("clickstream.content_clicked", "clickstream.content_viewed"):
            content = published.get(value["content_id"])
            assert content is not None, "a content id is published before anyone sees it"
            assert content["course_id"] == value["course_id"]
            if event.event_type == "clickstream.content_viewed":
                assert value["content_duration_seconds"] == content["duration_seconds"]
        elif event.event_type == "order.created":
            assert value["course_id"] in published_courses


def test_views_are_plausible() -> None:
    views = of_type(sample(), "clickstream.content_viewed")
    assert views
    for view in views:
        duration = view["content_duration_seconds"]
        assert 0 < view["watch_seconds"] <= duration
        assert view["watch_seconds"] <= view["position_seconds"] <= duration
        assert view["completed"] == (view["watch_seconds"] * 10 >= duration * 9)
    completed = sum(view["completed"] for view in views) / len(views)
    assert 0.1 < completed < 0.7


# --- commerce, payments and the ledger ---------------------------------------------------------------------
def test_order_amounts_add_up() -> None:
    orders = {order["order_id"]: order for order in of_type(sample(), "order.created")}
    assert orders
    for order in orders.values():
        assert order["currency"] == "INR"
        assert order["subtotal_minor"] == order["quantity"] * order["unit_price_minor"] - order["discount_minor"]
        assert order["tax_minor"] == (order["subtotal_minor"] * 18 + 50) // 100
        assert order["total_minor"] == order["subtotal_minor"] + order["tax_minor"]
    for payment in of_type(sample(), "payment.initiated", *PAYMENT_OUTCOMES):
        paid_order = orders.get(payment["order_id"])
        if paid_order is not None:
            assert payment["amount_minor"] == paid_order["total_minor"]
            assert payment["currency"] == paid_order["currency"]


def test_payment_steps_follow_each_other() -> None:
    events = [event for event in sample() if event.value["event_time"] <= complete_until() - 60 * 60_000]
    steps: dict[str, list[str]] = defaultdict(list)
    for event in sorted(sample(), key=lambda event: event.value["event_time"]):
        if event.event_type.startswith("payment."):
            steps[event.value["payment_id"]].append(event.event_type)
    methods: Counter[str] = Counter()
    for event in events:
        if event.event_type == "payment.initiated" and event.value["attempt"] == 1 and not fraudulent(event):
            methods[event.value["method"]] += 1
    for initiated in of_type(events, "payment.initiated"):
        sequence = steps[initiated["payment_id"]]
        check = "payment.upi_vpa_validated" if initiated["method"] == "UPI" else "payment.card_tokenized"
        assert sequence[:2] == ["payment.initiated", check]
        assert sum(step in PAYMENT_OUTCOMES for step in sequence) == 1, sequence
        assert sequence[-1] in PAYMENT_OUTCOMES
    upi_share = methods["UPI"] / sum(methods.values())
    assert 0.5 <= upi_share <= 0.72, "about 60% of (legit, first) payments are UPI"
    decisions = of_type(sample(), "payment.fraud_decided")
    assert all(0.0 <= decision["score"] <= 1.0 for decision in decisions)
    assert {decision["decision"] for decision in decisions} == {"APPROVE", "REVIEW", "REJECT"}


def test_every_approved_payment_pays_enrols_and_fulfils_its_order() -> None:
    events = sample()
    paid = {(value["order_id"], value["payment_id"]) for value in of_type(events, "order.paid")}
    enrolled = {value["order_id"] for value in of_type(events, "user.enrolled")}
    fulfilled = {value["order_id"] for value in of_type(events, "order.fulfilled")}
    postings = {value["reference"] for value in of_type(events, "ledger.entry_posted")}
    approved = [
        value for value in of_type(events, "payment.approved") if value["event_time"] <= complete_until() - 5_000
    ]
    assert approved
    for payment in approved:
        assert (payment["order_id"], payment["payment_id"]) in paid
        assert payment["payment_id"] in postings
        assert payment["order_id"] in enrolled
        assert payment["order_id"] in fulfilled
    approved_ids = {value["payment_id"] for value in of_type(events, "payment.approved")}
    early_paid = [
        value["payment_id"] for value in of_type(events, "order.paid") if value["event_time"] <= complete_until()
    ]
    assert all(payment_id in approved_ids for payment_id in early_paid), "no order.paid without payment.approved"
    cancelled = {value["order_id"] for value in of_type(events, "order.cancelled")}
    assert not cancelled & {order_id for order_id, _ in paid}


def test_every_ledger_posting_balances() -> None:
    postings = of_type(sample(), "ledger.entry_posted")
    assert postings
    totals = {value["payment_id"]: value["amount_minor"] for value in of_type(sample(), "payment.approved")}
    transactions = {posting["transaction_id"]: posting for posting in postings}
    for posting in postings:
        assert len(posting["lines"]) >= 2
        balance: Counter[str] = Counter()
        for line in posting["lines"]:
            assert line["amount_minor"] > 0
            balance[line["currency"]] += line["amount_minor"] if line["direction"] == "DEBIT" else -line["amount_minor"]
        assert all(amount == 0 for amount in balance.values()), posting
        if posting["reference_type"] == "PAYMENT" and posting["reference"] in totals:
            clearing = posting["lines"][0]
            assert (clearing["direction"], clearing["amount_minor"]) == ("DEBIT", totals[posting["reference"]])
        reversed_id = posting["reverses_transaction_id"]
        if reversed_id is not None and reversed_id in transactions:
            original = transactions[reversed_id]
            assert posting["reference"] == original["reference"]
            flipped = {"DEBIT": "CREDIT", "CREDIT": "DEBIT"}
            assert [
                (line["account"], flipped[line["direction"]], line["amount_minor"]) for line in posting["lines"]
            ] == [(line["account"], line["direction"], line["amount_minor"]) for line in original["lines"]]


def test_compensating_postings_occur() -> None:
    events = list(generate(SimulationProfile(seed=4, fraud_share=0.3), 20_000))
    reversals = [value for value in of_type(events, "ledger.entry_posted") if value["reverses_transaction_id"]]
    assert reversals
    assert all(value["reference_type"] == "CHARGEBACK" for value in reversals)


# --- fraud-like patterns -----------------------------------------------------------------------------------
def test_all_fraud_patterns_appear_and_look_like_fraud() -> None:
    events = sample()
    # Chargebacks carry the fraud tag of the payment they reverse, but are a journey of their own.
    tagged = {
        pattern: [event for event in events if f"fraud:{pattern}" in event.tags and "chargeback" not in event.tags]
        for pattern in FRAUD_PATTERNS
    }
    for pattern, pattern_events in tagged.items():
        assert pattern_events, f"no fraud:{pattern} events"
        assert any(event.event_type == "payment.initiated" for event in pattern_events), pattern

    history: dict[str, list[SimulatedEvent]] = defaultdict(list)
    for event in sorted(events, key=lambda event: event.value["event_time"]):
        history[event.value["user_id"]].append(event)

    burst_sizes = []
    for journey in filter(settled, by_journey(tagged["velocity_burst"]).values()):
        times = [value["event_time"] for value in of_type(journey, "payment.initiated")]
        burst_sizes.append(len(times))
        assert times[-1] - times[0] <= 60_000, "a velocity burst fits in one minute"
    assert burst_sizes
    assert max(burst_sizes) >= 5

    for journey in filter(settled, by_journey(tagged["new_device"]).values()):
        first = journey[0].value
        devices = {value["device_id"] for value in of_type(journey, "payment.initiated", "clickstream.session_started")}
        earlier = {
            event.value.get("device_id")
            for event in history[first["user_id"]]
            if event.value["event_time"] < first["event_time"]
        }
        assert devices
        assert not devices & earlier, "the device was never seen for this user"

    for journey in filter(settled, by_journey(tagged["unusual_amount"]).values()):
        (order,) = of_type(journey, "order.created")
        usual = [
            event.value["total_minor"]
            for event in history[order["user_id"]]
            if event.event_type == "order.created"
            and event.value["event_time"] < order["event_time"]
            and not fraudulent(event)
        ]
        assert usual, "an unusual amount needs a usual one"
        assert order["total_minor"] >= 10 * (sum(usual) // len(usual))

    for journey in filter(settled, by_journey(tagged["failed_attempts"]).values()):
        outcomes = [event.event_type for event in journey if event.event_type in PAYMENT_OUTCOMES]
        assert outcomes[:3] == ["payment.failed"] * 3, outcomes


def test_fraud_share_is_configurable() -> None:
    def fraud_share(profile: SimulationProfile) -> float:
        journeys = by_journey(event for event in generate(profile, 20_000) if event.event_type == "order.created")
        fraudulent = sum(any(tag.startswith("fraud:") for tag in journey[0].tags) for journey in journeys.values())
        return fraudulent / len(journeys)

    assert fraud_share(SimulationProfile(fraud_share=0.0)) == 0.0
    assert fraud_share(SimulationProfile(fraud_share=0.5)) > fraud_share(SimulationProfile(fraud_share=0.05))
