"""The feature views, in one place: the Feast definitions (`definitions.py`), the features job (jobs/features.py)
and the fraud model read them from here.

Every feature is an aggregate of one entity's activity over a window that ends at the entity's newest event
(`as_of`): `count`, `sum` (of the activity's amount) or `distinct` (activity items) over the events of one kind
with `as_of - window < event_time <= as_of`, or `first` (the earliest event time of that kind, ever).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

MINUTE_MS = 60_000
FIVE_MINUTES_MS = 5 * MINUTE_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

# Every view also carries the time its values are as of, as a feature: serving and training derive the time since
# the entity's last activity from it the same way.
AS_OF_FEATURE = "as_of_ms"


@dataclass(frozen=True)
class Aggregate:
    name: str
    function: str  # count | sum | distinct | first
    kind: str  # the activity kind it reads, or "*"
    window_ms: int  # 0 for `first`

    def spec(self) -> str:
        return f"{self.function}:{self.kind}:{self.window_ms}"


@dataclass(frozen=True)
class View:
    name: str
    entity: str
    join_key: str
    description: str
    aggregates: tuple[Aggregate, ...]

    @property
    def features(self) -> list[str]:
        return [aggregate.name for aggregate in self.aggregates] + [AS_OF_FEATURE]

    def spec(self) -> str:
        """The `spec` argument of the `sliding_features` JVM function."""
        return ",".join(aggregate.spec() for aggregate in self.aggregates)


def _windows(prefix: str, function: str, kind: str, windows: dict[str, int]) -> tuple[Aggregate, ...]:
    return tuple(Aggregate(f"{prefix}_{label}", function, kind, window) for label, window in windows.items())


HOUR_DAY = {"1h": HOUR_MS, "1d": DAY_MS}
FIVE_HOUR_DAY = {"5m": FIVE_MINUTES_MS, "1h": HOUR_MS, "1d": DAY_MS}

USER_ENGAGEMENT = View(
    "user_engagement", "user", "user_id",
    "Content views, watch time and distinct contents watched by the user over the last hour and day.",
    _windows("views", "count", "view", HOUR_DAY)
    + _windows("watch_seconds", "sum", "view", HOUR_DAY)
    + _windows("contents", "distinct", "view", HOUR_DAY),
)  # fmt: skip
USER_PAYMENTS = View(
    "user_payments", "user", "user_id",
    "Payments started, their amount (minor units), distinct instruments (cards, UPI handles) and devices, and failed "
    "payments of the user over the last 5 minutes, hour and day.",
    _windows("payments", "count", "payment", FIVE_HOUR_DAY)
    + _windows("amount_minor", "sum", "payment", FIVE_HOUR_DAY)
    + _windows("instruments", "distinct", "instrument", FIVE_HOUR_DAY)
    + _windows("devices", "distinct", "payment", FIVE_HOUR_DAY)
    + _windows("failed", "count", "failed", FIVE_HOUR_DAY),
)  # fmt: skip
USER_ACCOUNT = View(
    "user_account", "user", "user_id",
    "When the user registered (epoch ms); the account's age is derived from it at the moment it is needed.",
    (Aggregate("registered_at_ms", "first", "registered", 0),),
)  # fmt: skip
DEVICE_ACTIVITY = View(
    "device_activity", "device", "device_id",
    "When the device was first seen (epoch ms), and its distinct users, sessions and payments over the last day.",
    (Aggregate("first_seen_ms", "first", "*", 0), Aggregate("users_1d", "distinct", "*", DAY_MS),
     Aggregate("sessions_1d", "count", "session", DAY_MS), Aggregate("payments_1d", "count", "payment", DAY_MS)),
)  # fmt: skip

VIEWS = (USER_ENGAGEMENT, USER_PAYMENTS, USER_ACCOUNT, DEVICE_ACTIVITY)
ENTITIES = {"user": "user_id", "device": "device_id"}
# Feast's TTL for the point-in-time join: none. A row stays the entity's latest until a newer one, exactly as the
# online store keeps it; the model sees how old it is through `as_of_ms`.
TTL = timedelta(0)
