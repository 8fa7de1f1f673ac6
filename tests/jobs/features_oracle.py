"""The features computed again in plain Python from the events themselves, for the features job's tests: a window
of length W at an entity's newest event time A holds the events with A - W < time <= A, whatever their order."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

HOUR, DAY, FIVE_MINUTES = 3_600_000, 86_400_000, 300_000

# (entity, time, kind, amount, item) per event, spelled out here rather than taken from the job.
Activity = tuple[str, int, str, int, str | None]


def activities(events: Iterable[Mapping[str, Any]]) -> dict[str, list[Activity]]:
    by_view: dict[str, list[Activity]] = defaultdict(list)
    for event in events:
        kind, time, user = event["event_type"], int(event["event_time"]), str(event["user_id"])
        if kind == "clickstream.content_viewed":
            by_view["user_engagement"].append((user, time, "view", int(event["watch_seconds"]), event["content_id"]))
        elif kind == "payment.initiated":
            by_view["user_payments"].append((user, time, "payment", int(event["amount_minor"]), event["device_id"]))
            by_view["device_activity"].append((event["device_id"], time, "payment", 0, user))
        elif kind == "payment.card_tokenized":
            by_view["user_payments"].append((user, time, "instrument", 0, f"card:{event['token']}"))
        elif kind == "payment.upi_vpa_validated":
            by_view["user_payments"].append((user, time, "instrument", 0, f"upi:{event['vpa']}"))
        elif kind == "payment.failed":
            by_view["user_payments"].append((user, time, "failed", 0, event["payment_id"]))
        elif kind == "user.registered":
            by_view["user_account"].append((user, time, "registered", 0, None))
        elif kind == "clickstream.session_started":
            by_view["device_activity"].append((event["device_id"], time, "session", 0, user))
    return by_view


def _window(rows: list[Activity], as_of: int, length: int, kind: str) -> list[Activity]:
    return [row for row in rows if as_of - length < row[1] <= as_of and row[2] == kind]


def _features(view: str, rows: list[Activity]) -> dict[str, int]:
    as_of = max(row[1] for row in rows)
    out: dict[str, int] = {"as_of_ms": as_of}
    if view == "user_engagement":
        for label, length in (("1h", HOUR), ("1d", DAY)):
            window = _window(rows, as_of, length, "view")
            out[f"views_{label}"] = len(window)
            out[f"watch_seconds_{label}"] = sum(row[3] for row in window)
            out[f"contents_{label}"] = len({row[4] for row in window})
    elif view == "user_payments":
        for label, length in (("5m", FIVE_MINUTES), ("1h", HOUR), ("1d", DAY)):
            payments = _window(rows, as_of, length, "payment")
            out[f"payments_{label}"] = len(payments)
            out[f"amount_minor_{label}"] = sum(row[3] for row in payments)
            out[f"devices_{label}"] = len({row[4] for row in payments})
            out[f"instruments_{label}"] = len({row[4] for row in _window(rows, as_of, length, "instrument")})
            out[f"failed_{label}"] = len(_window(rows, as_of, length, "failed"))
    elif view == "user_account":
        out["registered_at_ms"] = min(row[1] for row in rows)
    else:
        day = [row for row in rows if as_of - DAY < row[1] <= as_of]
        out["first_seen_ms"] = min(row[1] for row in rows)
        out["users_1d"] = len({row[4] for row in day})
        out["sessions_1d"] = sum(1 for row in day if row[2] == "session")
        out["payments_1d"] = sum(1 for row in day if row[2] == "payment")
    return out


def expected_features(events: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, int]]]:
    """view -> entity -> feature -> value, as of each entity's newest event."""
    expected: dict[str, dict[str, dict[str, int]]] = {}
    for view, rows in activities(events).items():
        per_entity: dict[str, list[Activity]] = defaultdict(list)
        for row in rows:
            per_entity[row[0]].append(row)
        expected[view] = {entity: _features(view, entity_rows) for entity, entity_rows in per_entity.items()}
    return expected
