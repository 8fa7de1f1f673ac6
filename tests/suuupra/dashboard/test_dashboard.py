"""The dashboard end to end: realistic rows in a database of its own on the platform's ClickHouse, the server in a
thread, and headless Chromium loading the page, so the charts checked are the ones its JavaScript really drew."""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import shutil
import socket
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from prometheus_client.parser import text_string_to_metric_families

from connectors.clickhouse.backend import ClickHouseBackend
from suuupra.clickhouse.migrate import migrate, server_backend
from suuupra.clickhouse.panels import load_panels, run_panel
from suuupra.dashboard.server import DashboardError, bind, create_app, to_json_value
from suuupra.platform.manager import Platform
from suuupra.settings import Settings
from tests.browser import chromium, read_dom, serving

UTC = dt.UTC
T0 = dt.datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
SCREENSHOT_COPY = Path("/tmp/dashboard.png")

COLUMNS: dict[str, tuple[str, ...]] = {
    "content_minute": (
        "window_start", "content_id", "course_id", "views", "unique_viewers", "watch_seconds", "completed_views",
    ),
    "revenue_minute": ("window_start", "course_id", "payment_method", "currency", "revenue_minor", "payments"),
    "funnel_hour": ("window_start", "viewed", "ordered", "paid", "enrolled"),
    "registrations_minute": ("window_start", "registrations"),
    "user_sessions": ("user_id", "session_start", "session_end", "duration_seconds", "events", "contents_watched"),
    "late_events": (
        "event_id", "event_type", "user_id", "event_time", "watermark", "lateness_ms", "topic", "partition",
        "kafka_offset",
    ),
    "raw_events": (
        "event_id", "event_type", "event_time", "event_time_ms", "user_id", "correlation_id", "producer", "topic",
        "partition", "kafka_offset", "payload",
    ),
    "content_dim": ("content_id", "course_id", "title", "course_title", "revision", "published_at"),
    "fraud_decisions": (
        "decision_id", "payment_id", "order_id", "user_id", "payment_time", "decided_at", "decided_at_ms", "decision",
        "score", "reasons", "model_version", "first_rank",
    ),
}  # fmt: skip
COURSES = {
    "course-python-101": ["python-101-l01-variables", "python-101-l02-loops", "python-101-l03-functions"],
    "course-sql-201": ["sql-201-l01-joins", "sql-201-l02-window-functions"],
    "course-ml-301": ["ml-301-l01-regression"],
}
COURSE_TITLES = {
    "course-python-101": "Python 101", "course-sql-201": "SQL 201", "course-ml-301": "Machine Learning 301",
}  # fmt: skip
PRICES_PAISE = {"course-python-101": 49_900, "course-sql-201": 129_900, "course-ml-301": 299_900}
METHODS = ("UPI", "CARD", "NETBANKING")

Rows = dict[str, list[tuple[Any, ...]]]


def _minute(m: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=m)


def _user(n: int) -> str:
    return str(uuid.UUID(int=0x5EED_0000 + n))


def _traffic(m: int) -> float:
    """Relative load at minute m of the morning: rising towards noon, with a mid-morning bump."""
    return 0.7 + 0.5 * m / 180 + 0.25 * math.sin(m / 25)


def _count(rng: random.Random, mean: float) -> int:
    return max(0, round(rng.gauss(mean, math.sqrt(mean))))


def sample_rows() -> Rows:
    """Three hours of a small learning platform's morning, as the analytics job would have written it: one row per
    window key (as after FINAL), counts that follow the load with noise, INR in paise, one USD payment, one refund."""
    rng = random.Random(20240506)
    rows: Rows = {table: [] for table in COLUMNS}
    contents = [(course, content) for course, items in COURSES.items() for content in items]
    popularity = [1.0, 0.8, 0.55, 0.9, 0.45, 0.35]
    for m in range(180):
        for (course, content), weight in zip(contents, popularity, strict=True):
            views = _count(rng, 3.0 * weight * _traffic(m))
            if views == 0:
                continue  # the job writes no row for a window without views
            completed = sum(rng.random() < 0.35 for _ in range(views))
            viewers = max(1, views - rng.randint(0, views // 3))
            rows["content_minute"].append(
                (_minute(m), content, course, views, viewers, views * rng.randint(180, 600), completed)
            )
    revenue: dict[tuple[dt.datetime, str, str, str], tuple[int, int]] = {}
    for m in range(180):
        for method, share in zip(METHODS, (0.55, 0.3, 0.15), strict=True):
            for _ in range(_count(rng, 1.4 * share * _traffic(m))):
                course = rng.choices(list(PRICES_PAISE), weights=(5, 3, 2))[0]
                key = (_minute(m), course, method, "INR")
                amount, payments = revenue.get(key, (0, 0))
                revenue[key] = (amount + PRICES_PAISE[course], payments + 1)
    revenue[(_minute(61), "course-ml-301", "CARD", "USD")] = (3_599, 1)  # an international card
    revenue[(_minute(95), "course-sql-201", "UPI", "INR")] = (-129_900, 1)  # a minute with only a refund
    rows["revenue_minute"] = [(*key, amount, payments) for key, (amount, payments) in sorted(revenue.items())]
    for h in range(3):
        viewed = _count(rng, 150 * _traffic(60 * h + 30))
        ordered = round(viewed * rng.uniform(0.18, 0.26))
        paid = round(ordered * rng.uniform(0.75, 0.9))
        rows["funnel_hour"].append((T0 + dt.timedelta(hours=h), viewed, ordered, paid, paid - rng.randint(0, 2)))
    for m in range(180):
        if registrations := _count(rng, 1.2 * _traffic(m)):
            rows["registrations_minute"].append((_minute(m), registrations))
    sessions: dict[tuple[str, dt.datetime], tuple[Any, ...]] = {}
    for _ in range(60):
        user, start = _user(rng.randrange(40)), _minute(rng.randrange(175)) + dt.timedelta(seconds=rng.randrange(60))
        duration = int(rng.lognormvariate(6.3, 0.7))
        events = 3 + duration // rng.randint(40, 90)
        sessions[(user, start)] = (user, start, start + dt.timedelta(seconds=duration), duration, events, events // 4)
    rows["user_sessions"] = list(sessions.values())
    late_types = ("clickstream.content_viewed", "payment.captured", "order.created", "clickstream.search_performed")
    for e in range(20):
        when = _minute(rng.randrange(180)) + dt.timedelta(seconds=rng.randrange(60))
        lateness = rng.randint(5_000, 240_000)
        rows["late_events"].append(
            (str(uuid.UUID(int=0x1A7E_0000 + e)), rng.choices(late_types, weights=(6, 2, 2, 1))[0], _user(e), when,
             when + dt.timedelta(milliseconds=lateness), lateness, "clickstream.events", e % 3, 90_000 + e)
        )  # fmt: skip
    for e in range(150):
        course, content = rng.choices(contents, weights=popularity)[0]
        when = _minute(rng.randrange(180)) + dt.timedelta(seconds=rng.randrange(60))
        payload = {"content_id": content, "course_id": course, "watch_seconds": rng.randint(20, 900)}
        rows["raw_events"].append(
            (str(uuid.UUID(int=0xE7E_0000 + e)), "clickstream.content_viewed", when, int(when.timestamp() * 1000),
             _user(rng.randrange(40)), str(uuid.UUID(int=0xC0_0000 + e // 3)), "web", "clickstream.events", e % 3,
             5_000 + e, json.dumps(payload))
        )  # fmt: skip
    for course, content in contents:
        # Two revisions: the dimension shows the newer title.
        for revision in (1, 2):
            title = f"{content.split('-', 2)[2].replace('-', ' ').title()} (rev {revision})"
            rows["content_dim"].append((content, course, title, COURSE_TITLES[course], revision, T0))
    reasons = ("devices_5m_log", "failed_5m_log", "account_age_log", "amount_vs_usual_log")
    for d in range(60):
        when = _minute(rng.randrange(0, 180, 6)) + dt.timedelta(seconds=rng.randrange(60))
        score = round(rng.random(), 4)
        decision = "REJECT" if score >= 0.9 else "REVIEW" if score >= 0.6 else "APPROVE"
        named = rng.sample(reasons, 2)
        rows["fraud_decisions"].append(
            (str(uuid.UUID(int=0xDEC_0000 + d)), str(uuid.UUID(int=0xBA7_0000 + d)), str(uuid.UUID(int=0x0D_0000 + d)),
             _user(d % 40), when, when, int(when.timestamp() * 1000), decision, score,
             f"{named[0]}=1.5 (+2.10); {named[1]}=0.7 (+0.40)", "fraud-lr-test", 2**62 - int(when.timestamp() * 1000))
        )  # fmt: skip
    return rows


def expected_points(rows: Rows) -> dict[str, int]:
    """What each panel's chart must draw for this sample with all data shown: one point per time (per series where a
    time has several rows), one bar per label, at most 10 bars."""
    revenue, fraud = rows["revenue_minute"], rows["fraud_decisions"]
    return {
        "content_engagement": min(10, len({row[1] for row in rows["content_minute"]})),
        "engagement_per_minute": len({row[0] for row in rows["content_minute"]}),
        "funnel": len(rows["funnel_hour"]),
        "late_events": min(10, len({row[1] for row in rows["late_events"]})),
        "registrations": len(rows["registrations_minute"]),
        "revenue_by_course": min(10, len({(row[1], row[3]) for row in revenue})),
        "revenue_by_method": len({(row[0], row[2]) for row in revenue}),
        "sessions": len({row[1].replace(minute=0, second=0) for row in rows["user_sessions"]}),
        "fraud_decisions": len({(row[5].replace(second=0), row[7]) for row in fraud}),
        "fraud_scores": min(10, len({(min(int(row[8] * 100) // 10, 9), row[7]) for row in fraud})),
        "fraud_reasons": min(
            10, len({reason.split("=")[0] for row in fraud if row[7] != "APPROVE" for reason in row[9].split("; ")})
        ),
    }


# --- fixtures ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def loaded(settings: Settings, platform: Platform) -> Iterator[tuple[ClickHouseBackend, Settings, Rows]]:
    """A database of this module's own, migrated and holding the sample; settings pointing at it; dropped after."""
    database = f"suuupra_test_dashboard_{uuid.uuid4().hex[:8]}"
    own = settings.model_copy(update={"clickhouse": settings.clickhouse.model_copy(update={"database": database})})
    backend = server_backend(settings)
    try:
        migrate(backend, database)
        rows = sample_rows()
        for table, table_rows in rows.items():
            backend.insert(f"{database}.{table}", COLUMNS[table], table_rows)
        yield backend, own, rows
    finally:
        backend.execute(f"DROP DATABASE IF EXISTS {database}")
        backend.close()


def count_requests(app: FastAPI) -> Counter[str]:
    hits: Counter[str] = Counter()

    @app.middleware("http")
    async def count(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        hits[request.url.path] += 1
        return await call_next(request)

    return hits


@pytest.fixture(scope="module")
def dashboard(loaded: tuple[ClickHouseBackend, Settings, Rows]) -> Iterator[tuple[str, Counter[str]]]:
    _, own, _ = loaded
    # A short refresh so a few refresh rounds fit in Chromium's virtual time budget.
    app = create_app(own, refresh_s=2.0)
    hits = count_requests(app)
    with serving(app) as url:
        yield url, hits


def unreachable_settings(settings: Settings) -> Settings:
    with socket.socket() as probe:  # a port nothing listens on once the probe closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return settings.model_copy(update={"clickhouse": settings.clickhouse.model_copy(update={"port": port})})


# --- headless Chromium ---------------------------------------------------------------------------------------------
# --- tests ---------------------------------------------------------------------------------------------------------
def test_page_charts_every_panel(
    dashboard: tuple[str, Counter[str]], loaded: tuple[ClickHouseBackend, Settings, Rows], tmp_path: Path
) -> None:
    url, hits = dashboard
    backend, own, rows = loaded
    hits.clear()
    dom = read_dom(chromium(url, tmp_path / "profile", "--dump-dom"))

    panels = load_panels()
    assert set(dom.charts) == set(panels), "one chart element per panel, no more"
    points = {name: int(attributes["data-points"]) for name, attributes in dom.charts.items()}
    assert all(count > 0 for count in points.values()), points
    assert points == expected_points(rows)
    for name, attributes in dom.charts.items():
        first_kind = "line" if name in {"engagement_per_minute", "funnel", "registrations", "revenue_by_method",
                                        "sessions", "fraud_decisions"} else "bar"  # fmt: skip
        assert attributes["data-chart"] == first_kind, name
    assert dom.banner_hidden, dom.banner_text
    assert not any("no data yet" in text for text in dom.chart_text.values())

    # Money as the panel gives it, to the paisa: the table shows the exact strings, never a float's rounding.
    columns, course_rows = run_panel(backend, "revenue_by_course", own.clickhouse.database)
    revenue = columns.index("revenue")
    shown = [row[revenue] for row in course_rows[:8]]
    assert all(value in dom.cells for value in shown), (shown, dom.cells)

    # Loaded once, then refreshed in place: every panel asked for again without the page being fetched again.
    assert hits["/"] == 1
    assert hits["/api/panels"] == 1
    assert all(hits[f"/api/panels/{name}"] >= 2 for name in panels), hits


def test_the_operations_panel_and_metrics_show_the_platform(
    dashboard: tuple[str, Counter[str]], tmp_path: Path
) -> None:
    url, hits = dashboard
    dom = read_dom(chromium(url, tmp_path / "profile", "--dump-dom"))
    assert dom.operations_loaded
    assert {"kafka", "clickhouse", "postgres", "healthy"} <= set(dom.cells), dom.cells
    assert hits["/api/operations"] >= 1

    metrics = httpx.get(f"{url}metrics", timeout=60)
    assert metrics.status_code == 200
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics.text)
        for sample in family.samples
    }
    assert samples[("suuupra_component_up", (("component", "kafka"),))] == 1
    assert samples[("suuupra_status_problems", ())] == 0


def test_screenshot(dashboard: tuple[str, Counter[str]], tmp_path: Path) -> None:
    url, _ = dashboard
    shot = tmp_path / "dashboard.png"
    chromium(url, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1400,2400")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # For a person to look at: what the page really looks like with the sample loaded.
    shutil.copyfile(shot, SCREENSHOT_COPY)


def test_panel_api(dashboard: tuple[str, Counter[str]], loaded: tuple[ClickHouseBackend, Settings, Rows]) -> None:
    url, _ = dashboard
    _, _, rows = loaded
    with httpx.Client(base_url=url, timeout=30) as client:
        listed = client.get("/api/panels")
        assert listed.status_code == 200
        panels = load_panels()
        assert listed.json() == [
            {"name": p.name, "title": p.title, "description": p.description} for p in panels.values()
        ]

        answer = client.get("/api/panels/revenue_by_course")
        assert answer.status_code == 200
        body = answer.json()
        assert body["columns"] == ["course", "course_id", "currency", "payments", "revenue_minor", "revenue"]
        assert body["kinds"] == ["text", "text", "text", "number", "number", "text"]
        totals: Counter[tuple[str, str]] = Counter()
        for row in rows["revenue_minute"]:
            totals[(row[1], row[3])] += row[4]
        for name, course, currency, _, minor, revenue in body["rows"]:
            assert name == COURSE_TITLES[course], "courses are named by their titles"
            assert minor == totals[(course, currency)]
            sign = "-" if minor < 0 else ""
            assert revenue == f"{sign}{abs(minor) // 100}.{abs(minor) % 100:02d}"
        assert ["Machine Learning 301", "course-ml-301", "USD", 1, 3_599, "35.99"] in body["rows"]

        # Datetimes in ISO-8601 (UTC); `hours` counts back from the newest row.
        recent = client.get("/api/panels/registrations", params={"hours": 1}).json()
        newest = max(row[0] for row in rows["registrations_minute"])
        assert recent["hours"] == 1
        assert recent["rows"][0][0] == newest.isoformat()
        assert dt.datetime.fromisoformat(recent["rows"][0][0]).utcoffset() == dt.timedelta(0)
        assert len(recent["rows"]) == len(
            [r for r in rows["registrations_minute"] if r[0] > newest - dt.timedelta(hours=1)]
        )
        assert client.get("/api/panels/registrations", params={"limit": 5}).json()["truncated"] is True

        assert client.get("/api/panels/registrations", params={"hours": -1}).status_code == 422
        assert client.get("/healthz").json()["clickhouse"] == "up"


def test_unknown_panel_is_404_with_the_known_ones(dashboard: tuple[str, Counter[str]]) -> None:
    url, _ = dashboard
    answer = httpx.get(f"{url}api/panels/no_such_panel", timeout=30)
    assert answer.status_code == 404
    body = answer.json()
    assert body["known"] == list(load_panels())
    assert "unknown panel 'no_such_panel'" in body["detail"]
    assert "revenue_by_course" in body["detail"]


def test_clickhouse_down_is_503_and_said_on_the_page(settings: Settings, tmp_path: Path) -> None:
    app = create_app(unreachable_settings(settings), refresh_s=30.0)
    with serving(app) as url:
        answer = httpx.get(f"{url}api/panels/funnel", timeout=30)
        assert answer.status_code == 503
        assert "unreachable" in answer.json()["detail"]
        health = httpx.get(f"{url}healthz", timeout=30)
        assert health.status_code == 200
        assert "unreachable" in health.json()["clickhouse"]
        dom = read_dom(chromium(url, tmp_path / "profile", "--dump-dom"))
    assert not dom.banner_hidden
    assert dom.banner_text.startswith("ClickHouse is unavailable: ")
    assert "unreachable" in dom.banner_text
    assert set(dom.charts) == set(load_panels())
    assert all(attributes["data-points"] == "0" for attributes in dom.charts.values())


def test_empty_panels_say_no_data_yet(settings: Settings, platform: Platform, tmp_path: Path) -> None:
    database = f"suuupra_test_dashboard_empty_{uuid.uuid4().hex[:8]}"
    own = settings.model_copy(update={"clickhouse": settings.clickhouse.model_copy(update={"database": database})})
    with server_backend(settings) as backend:
        try:
            migrate(backend, database)
            with serving(create_app(own)) as url:
                assert httpx.get(f"{url}api/panels/funnel", timeout=30).json()["rows"] == []
                dom = read_dom(chromium(url, tmp_path / "profile", "--dump-dom"))
        finally:
            backend.execute(f"DROP DATABASE IF EXISTS {database}")
    assert all(attributes["data-points"] == "0" for attributes in dom.charts.values())
    assert set(dom.charts) == set(load_panels())
    assert all(text == "no data yet" for text in dom.chart_text.values()), dom.chart_text
    assert dom.banner_hidden


def test_json_values_stay_exact() -> None:
    assert to_json_value(Decimal("1234567890123456789.01")) == "1234567890123456789.01"
    assert to_json_value(2**53 - 1) == 2**53 - 1
    assert to_json_value(2**60) == str(2**60)
    assert to_json_value(-(2**60)) == str(-(2**60))
    assert to_json_value(dt.datetime(2024, 5, 6, 9, 0, tzinfo=UTC)) == "2024-05-06T09:00:00+00:00"
    assert to_json_value(float("nan")) is None
    assert to_json_value([1, Decimal("2.50")]) == [1, "2.50"]


def test_a_busy_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(DashboardError, match=f"cannot listen on 127.0.0.1:{port}: .*choose another port"):
            bind("127.0.0.1", port)
