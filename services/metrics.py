"""Prometheus metrics of the services at `GET /metrics`: requests by route and status, their latency, and, read from
the database at each scrape, the outbox's unpublished events and the payments waiting on a fraud decision."""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator

import psycopg
from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from suuupra.settings import Settings
from suuupra.status import pending_payments

# Requests here take from a millisecond (a cached read) to a second or two (registration hashes a password).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class DatabaseCollector(Collector):
    """What waits in the database, read when Prometheus scrapes (never cached, so never stale)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("suuupra_database_up", "1 when the services' database answered this scrape")
        try:
            with psycopg.connect(self.settings.postgres.dsn(), connect_timeout=3) as connection:
                row = connection.execute(
                    "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0) "
                    "FROM outbox WHERE published_at IS NULL"
                ).fetchone()
            waiting = pending_payments(self.settings)
        except psycopg.Error:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        unpublished, oldest = row if row else (0, 0)
        yield GaugeMetricFamily(
            "suuupra_outbox_unpublished_events", "Events committed but not yet acknowledged by Kafka", value=unpublished
        )
        yield GaugeMetricFamily(
            "suuupra_outbox_oldest_unpublished_seconds", "Age of the oldest unpublished event", value=float(oldest)
        )
        yield GaugeMetricFamily(
            "suuupra_payments_awaiting_fraud_decision", "Payments initiated with no fraud decision yet",
            value=waiting.count,
        )  # fmt: skip


class RequestStats(Collector):
    """Requests by method, route template and status, and their latency, kept here rather than in
    prometheus_client's metric objects: importing Feast switches those to multiprocess mode for the whole process
    (values in files shared by every metric of the same name), which would mix the counts of unrelated apps."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str, str]] = Counter()
        self._buckets: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * len(LATENCY_BUCKETS))
        self._sums: dict[tuple[str, str], float] = defaultdict(float)
        self._observed: Counter[tuple[str, str]] = Counter()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self._counts[(method, route, str(status))] += 1
            key = (method, route)
            self._observed[key] += 1
            self._sums[key] += seconds
            buckets = self._buckets[key]
            for index, bound in enumerate(LATENCY_BUCKETS):
                if seconds <= bound:
                    buckets[index] += 1

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "suuupra_http_requests", "Requests answered, by method, route template and status",
            labels=["method", "route", "status"],
        )  # fmt: skip
        latency = HistogramMetricFamily(
            "suuupra_http_request_duration_seconds", "Time to answer, by method and route template",
            labels=["method", "route"],
        )  # fmt: skip
        with self._lock:
            for labels, count in sorted(self._counts.items()):
                requests.add_metric(list(labels), count)
            for key, observed in sorted(self._observed.items()):
                cumulative = [
                    (str(bound), count) for bound, count in zip(LATENCY_BUCKETS, self._buckets[key], strict=True)
                ]
                latency.add_metric(list(key), [*cumulative, ("+Inf", observed)], self._sums[key])
        yield requests
        yield latency


def install_metrics(app: FastAPI, settings: Settings) -> CollectorRegistry:
    registry = CollectorRegistry()
    stats = RequestStats()
    registry.register(stats)
    registry.register(DatabaseCollector(settings))

    @app.middleware("http")
    async def measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        # The route's template, not the path: one series per endpoint, whatever ids the paths carry.
        route = getattr(request.scope.get("route"), "path", "unmatched")
        stats.observe(request.method, route, response.status_code, time.perf_counter() - started)
        return response

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return registry
