"""The analytics job's results computed independently, in plain Python, from the records as Kafka holds them.

Nothing here shares code with the job: the late rule, the per-minute and per-hour counts, the revenue join, the
gap sessions and the content dimension are written again from their definitions (docs/analytics.md), and compared
with what ClickHouse holds, table by table (`suuupra verify analytics`, and the job tests).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from connectors.clickhouse.backend import ClickHouseBackend
from schemas import default_catalog
from suuupra.settings import Settings
from suuupra.verify.acceptance import CANONICAL_UUID, accepted_events

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
SESSION_GAP_MS = 30 * MINUTE_MS


@dataclass(frozen=True)
class KafkaEvent:
    topic: str
    partition: int
    offset: int
    value: dict[str, Any]  # wire values: times in epoch ms, ids as str

    @property
    def time(self) -> int:
        return int(self.value["event_time"])


def _utc(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms // 1000, dt.UTC)


def split_late(events: Iterable[KafkaEvent], bound_ms: int) -> tuple[list[KafkaEvent], list[tuple[KafkaEvent, int]]]:
    """Late: older than the newest earlier-or-same event of its partition by more than the bound; with how much."""
    by_partition: dict[tuple[str, int], list[KafkaEvent]] = defaultdict(list)
    for event in events:
        by_partition[(event.topic, event.partition)].append(event)
    on_time: list[KafkaEvent] = []
    late: list[tuple[KafkaEvent, int]] = []
    for partition_events in by_partition.values():
        newest = None
        for event in sorted(partition_events, key=lambda e: e.offset):
            newest = event.time if newest is None else max(newest, event.time)
            if event.time < newest - bound_ms:
                late.append((event, newest - bound_ms - event.time))
            else:
                on_time.append(event)
    return on_time, late


def expected_tables(events: list[KafkaEvent], bound_ms: int) -> dict[str, set[tuple[Any, ...]]]:
    on_time, late = split_late(events, bound_ms)
    of_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in on_time:
        of_type[event.value["event_type"]].append(event.value)

    content: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for view in of_type["clickstream.content_viewed"]:
        content[(view["event_time"] // MINUTE_MS * MINUTE_MS, view["content_id"], view["course_id"])].append(view)
    content_minute = {
        (_utc(minute), content_id, course_id, len(views), len({v["user_id"] for v in views}),
         sum(v["watch_seconds"] for v in views), sum(1 for v in views if v["completed"]))
        for (minute, content_id, course_id), views in content.items()
    }  # fmt: skip

    registrations: dict[int, int] = defaultdict(int)
    for registered in of_type["user.registered"]:
        registrations[registered["event_time"] // MINUTE_MS * MINUTE_MS] += 1
    registrations_minute = {(_utc(minute), count) for minute, count in registrations.items()}

    approvals = {a["payment_id"]: a for a in of_type["payment.approved"]}
    revenue: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for paid in of_type["order.paid"]:
        approved = approvals.get(paid["payment_id"])
        if approved and approved["event_time"] <= paid["event_time"] <= approved["event_time"] + HOUR_MS:
            key = (paid["event_time"] // MINUTE_MS * MINUTE_MS, paid["course_id"], approved["method"], paid["currency"])
            revenue[key].append(paid["total_minor"])
    revenue_minute = {
        (_utc(minute), course, method, currency, sum(amounts), len(amounts))
        for (minute, course, method, currency), amounts in revenue.items()
    }

    stages = ("clickstream.content_viewed", "order.created", "order.paid", "user.enrolled")
    funnel: dict[int, list[set[str]]] = defaultdict(lambda: [set(), set(), set(), set()])
    for event in on_time:
        value = event.value
        if value["event_type"] in stages:
            funnel[value["event_time"] // HOUR_MS * HOUR_MS][stages.index(value["event_type"])].add(value["user_id"])
    funnel_hour = {(_utc(hour), *(len(users) for users in sets)) for hour, sets in funnel.items()}

    clicks: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in on_time:
        if event.value["event_type"].startswith("clickstream."):
            clicks[event.value["user_id"]].append(event.value)
    user_sessions = set()
    for user, user_clicks in clicks.items():
        ordered = sorted(user_clicks, key=lambda v: v["event_time"])
        session: list[dict[str, Any]] = [ordered[0]]
        following: list[dict[str, Any] | None] = [*ordered[1:], None]
        for click in following:
            if click is not None and click["event_time"] - session[-1]["event_time"] < SESSION_GAP_MS:
                session.append(click)
                continue
            start, end = session[0]["event_time"], session[-1]["event_time"]
            watched = {
                _content_key(v["content_id"]) for v in session if v["event_type"] == "clickstream.content_viewed"
            }
            user_sessions.add((user, _utc(start), _utc(end), (end - start) // 1000, len(session), len(watched)))
            session = [click] if click is not None else []

    published: dict[str, dict[str, Any]] = {}
    for event in events:
        value = event.value
        if value["event_type"] == "content.published":
            newest = published.get(value["content_id"])
            if newest is None or value["revision"] > newest["revision"]:
                published[value["content_id"]] = value
    content_dim = {(v["content_id"], v["course_id"], v["title"], v.get("course_title") or "", v["revision"])
                   for v in published.values()}  # fmt: skip

    late_events = {
        (e.value["event_id"], e.value["event_type"], e.topic, e.partition, e.offset, lateness) for e, lateness in late
    }
    envelope = set(default_catalog().envelope_fields)
    raw_events = {
        (e.value["event_id"], e.value["event_type"], _utc(e.time), e.time, e.value.get("user_id"),
         e.value.get("correlation_id"), e.value.get("producer"), e.topic, e.partition, e.offset,
         canonical_json({name: value for name, value in e.value.items() if name not in envelope}))
        for e in events
    }  # fmt: skip
    return {
        "content_minute": content_minute,
        "registrations_minute": registrations_minute,
        "revenue_minute": revenue_minute,
        "funnel_hour": funnel_hour,
        "user_sessions": user_sessions,
        "late_events": late_events,
        "raw_events": raw_events,
        "content_dim": content_dim,
    }


# How each table is read back to compare with the oracle (FINAL: a row written twice after a restore counts once).
ACTUAL_QUERIES = {
    "content_minute": "SELECT window_start, content_id, course_id, views, unique_viewers, watch_seconds, "
    "completed_views FROM {db}.content_minute FINAL",
    "registrations_minute": "SELECT window_start, registrations FROM {db}.registrations_minute FINAL",
    "revenue_minute": "SELECT window_start, course_id, payment_method, currency, revenue_minor, payments "
    "FROM {db}.revenue_minute FINAL",
    "funnel_hour": "SELECT window_start, viewed, ordered, paid, enrolled FROM {db}.funnel_hour FINAL",
    "user_sessions": "SELECT user_id, session_start, session_end, duration_seconds, events, contents_watched "
    "FROM {db}.user_sessions FINAL WHERE deleted = 0",
    "late_events": "SELECT event_id, event_type, topic, partition, kafka_offset, lateness_ms "
    "FROM {db}.late_events FINAL",
    # Every column; the payload last (actual_tables reads it as JSON).
    "raw_events": "SELECT event_id, event_type, event_time, event_time_ms, user_id, correlation_id, producer, topic, "
    "partition, kafka_offset, payload FROM {db}.raw_events FINAL",
    "content_dim": "SELECT content_id, course_id, title, course_title, revision FROM {db}.content_dim FINAL",
}


def source_topics(settings: Settings) -> list[str]:
    """The Kafka topics the analytics job reads (several logical topics may share one)."""
    topics = settings.topics
    return sorted({topics.clickstream, topics.commerce, topics.payment, topics.user, topics.content})


def kafka_events(settings: Settings) -> list[KafkaEvent]:
    """Every event of the job's topics the job accepts, read to their current end: readable and a possible event of
    its topic (suuupra/verify/acceptance.py; the job dead-letters the others, this only looks and skips them). Read as
    the job reads them, with their writer's fields (raw_events.payload holds those)."""
    return [
        KafkaEvent(record.topic, record.partition, record.offset, value)
        for record, value in accepted_events(settings, source_topics(settings), as_written=True)
    ]


def _content_key(content_id: Any) -> Any:
    """What the sessions operator counts as one watched content: a UUID's 128 bits, so its text in either case (a
    writer that does not mark content_id uuid keeps its case), any other id its text (connectors/jvm ContentIds)."""
    if isinstance(content_id, str) and CANONICAL_UUID.fullmatch(content_id):
        return content_id.lower()
    return content_id


def canonical_json(value: Any) -> str:
    """JSON as raw_events.payload holds it: sorted keys, no spaces (ClickHouse's visitParamExtract* finds only
    `"key":value`), UTF-8 text, null for a number JSON cannot hold, as the JVM writes it."""
    return json.dumps(_finite(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def _has_float(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_float(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_float(item) for item in value)
    return isinstance(value, float)


def _stored_payload(text: str) -> str:
    """A payload read back, to compare with canonical_json's: as it is, byte for byte, unless it holds a double, which
    the JVM writes as Java does (3.0E-4 for 0.0003): then by value."""
    value = json.loads(text)
    return canonical_json(value) if _has_float(value) else text


def actual_tables(backend: ClickHouseBackend, database: str) -> dict[str, set[tuple[Any, ...]]]:
    tables = {table: set(backend.query(sql.format(db=database)).rows) for table, sql in ACTUAL_QUERIES.items()}
    tables["raw_events"] = {(*row[:-1], _stored_payload(row[-1])) for row in tables["raw_events"]}
    return tables


@dataclass(frozen=True)
class TableCheck:
    table: str
    expected: int
    actual: int
    missing: list[tuple[Any, ...]]  # a few expected rows ClickHouse lacks
    extra: list[tuple[Any, ...]]  # a few rows ClickHouse holds that are not expected

    @property
    def equal(self) -> bool:
        return not self.missing and not self.extra


def compare(
    expected: dict[str, set[tuple[Any, ...]]], actual: dict[str, set[tuple[Any, ...]]], sample: int = 3
) -> list[TableCheck]:
    return [
        TableCheck(table, len(rows), len(actual[table]), sorted(rows - actual[table])[:sample],
                   sorted(actual[table] - rows)[:sample])
        for table, rows in expected.items()
    ]  # fmt: skip
