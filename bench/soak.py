"""A soak of the whole platform: a steady clickstream into Kafka and purchases through the services' HTTP APIs, for a
stated time, with the jobs running; lag, memory of every process and p99 latencies compared between the start and
the end. Flat is the target: a leak, a growing backlog or a slowing path shows as an end/start ratio above 1.

    .venv/bin/python bench/soak.py                                   # 10 min, 1,000 clicks/s, 2 purchases/s
    .venv/bin/python bench/soak.py --minutes 30 --clicks 2000 --purchases 5 --jobs analytics,features

Needs the platform (`suuupra platform up`). Starts `suuupra services up` (outbox relay, saga workers, the rule-based
fraud stand-in) on a free port and the jobs (`suuupra jobs run NAME`, unbounded); everything it writes is its own
and removed at the end (topics soak-<id>.*, a services schema, a ClickHouse database, a Feast project, consumer
groups, checkpoints under --logs).

- Clickstream: `clickstream.content_viewed` events stamped now, paced at --clicks per second; one in 100 is a marker
  whose arrival in ClickHouse `raw_events` is polled: visibility = visible - sent (analytics job).
- Purchases, paced at --purchases per second, each by a new user: register, order one of 20 published courses, pay
  by UPI with an Idempotency-Key; each request's latency is recorded, and settle = order fulfilled or cancelled
  (PostgreSQL, polled) - payment answered.
- Every --sample seconds: consumer lag summed per consumer-group family (the jobs', the saga's), and the resident
  memory of each process: every platform component, the services process and each job with its JVM.
- Start = the first --window seconds after --warmup; end = the last --window seconds.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import psycopg

from bench.support import SUUUPRA, bench_settings, percentile, start_job, view
from suuupra.clickhouse.migrate import migrate, server_backend
from suuupra.events import EventPublisher
from suuupra.features.store import apply, remove
from suuupra.isolation import isolated_environment
from suuupra.platform.manager import Platform
from suuupra.settings import Settings, environment_overrides, load_settings
from suuupra.status import consumer_lag

PASSWORD = "Soak-Streams-2026"
COURSES = 20
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Series:
    """Timestamped observations of one figure."""

    points: list[tuple[float, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, value: float, at: float | None = None) -> None:
        with self.lock:
            self.points.append((at if at is not None else time.monotonic(), value))

    def between(self, start: float, end: float) -> list[float]:
        with self.lock:
            return [value for at, value in self.points if start <= at < end]


def _processes() -> dict[int, int]:
    """Every process's parent."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError, IndexError, ValueError):
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    return parents


def tree_rss_mb(root: int, parents: dict[int, int]) -> float:
    """Resident memory of a process and all its descendants (a job's Python driver and its JVM), in MB."""
    members, frontier = {root}, [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier and pid not in members]
        members.update(children)
        frontier = children
    total = 0
    for pid in members:
        with suppress(OSError, IndexError, ValueError):
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES
    return total / 1e6


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Purchases(threading.Thread):
    """New users registering, ordering and paying through the APIs at a steady rate."""

    def __init__(self, base_url: str, rate: float, courses: list[str], stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.http = httpx.Client(base_url=base_url, timeout=30)
        self.rate, self.courses, self.stop = rate, courses, stop
        self.latency = Series()
        self.failures = 0
        self.paid: dict[str, float] = {}  # order id -> when its payment was answered
        self.lock = threading.Lock()

    def timed(self, method: str, path: str, **request: object) -> httpx.Response:
        began = time.monotonic()
        response = self.http.request(method, path, **request)  # type: ignore[arg-type]
        self.latency.add((time.monotonic() - began) * 1000)
        if response.status_code >= 300:
            self.failures += 1
        return response

    def run(self) -> None:
        began, done = time.monotonic(), 0
        while not self.stop.is_set():
            delay = began + done / self.rate - time.monotonic()
            if delay > 0:
                self.stop.wait(delay)
                continue
            done += 1
            email = f"soak-{uuid.uuid4().hex[:12]}@example.com"
            registration = {"email": email, "password": PASSWORD, "display_name": "Soak", "country": "IN",
                            "preferred_language": "en"}  # fmt: skip
            registered = self.timed("POST", "/auth/register", json=registration)
            if registered.status_code != 201:
                continue
            buyer = {"Authorization": f"Bearer {registered.json()['access_token']}"}
            ordered = self.timed("POST", "/orders", json={"course_id": random.choice(self.courses)}, headers=buyer)
            if ordered.status_code != 201:
                continue
            order_id = ordered.json()["order_id"]
            body = {"order_id": order_id, "method": "UPI", "vpa": "soak@okaxis", "device_id": "soak"}
            paid = self.timed("POST", "/payments", json=body, headers=buyer | {"Idempotency-Key": f"soak-{order_id}"})
            if paid.status_code == 201:
                with self.lock:
                    self.paid[order_id] = time.monotonic()


class Settled(threading.Thread):
    """Polls PostgreSQL for paid orders that reached their end (fulfilled or cancelled)."""

    def __init__(self, settings: Settings, purchases: Purchases, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.settings, self.purchases, self.stop = settings, purchases, stop
        self.latency = Series()

    def run(self) -> None:
        with psycopg.connect(self.settings.postgres.dsn(), autocommit=True) as connection:
            while not self.stop.wait(0.5):
                with self.purchases.lock:
                    waiting = dict(self.purchases.paid)
                if not waiting:
                    continue
                ended = connection.execute(
                    "SELECT order_id::text FROM orders WHERE order_id::text = ANY(%s) "
                    "AND status IN ('FULFILLED', 'CANCELLED')",
                    (list(waiting),),
                ).fetchall()
                now = time.monotonic()
                with self.purchases.lock:
                    for (order_id,) in ended:
                        self.latency.add((now - waiting[order_id]) * 1000, now)
                        self.purchases.paid.pop(order_id, None)


class Clicks(threading.Thread):
    """A steady clickstream; every 100th view is a marker whose arrival in `raw_events` is polled."""

    def __init__(self, settings: Settings, rate: float, stop: threading.Event, poll_raw_events: bool) -> None:
        super().__init__(daemon=True)
        self.settings, self.rate, self.stop, self.poll_raw_events = settings, rate, stop, poll_raw_events
        self.visibility = Series()
        self.markers: dict[str, float] = {}
        self.lock = threading.Lock()
        self.sent = 0

    def run(self) -> None:
        publisher = EventPublisher(self.settings, producer_overrides={"linger.ms": 5})
        users = [str(uuid.uuid4()) for _ in range(2000)]
        began = time.monotonic()
        while not self.stop.is_set():
            due = int((time.monotonic() - began) * self.rate) - self.sent
            for _ in range(max(0, due)):
                self.sent += 1
                event = view(users[self.sent % len(users)], int(time.time() * 1000))
                publisher.publish(event)
                if self.poll_raw_events and self.sent % 100 == 0:
                    with self.lock:
                        self.markers[event["event_id"]] = time.monotonic()
            time.sleep(0.01)
        publisher.flush()

    def poll(self) -> None:
        """Runs in its own thread: which markers reached ClickHouse."""
        backend = server_backend(self.settings)
        database = self.settings.clickhouse.database
        while not self.stop.wait(0.5):
            with self.lock:
                waiting = list(self.markers)[:500]
            if not waiting:
                continue
            ids = ", ".join(f"'{event_id}'" for event_id in waiting)
            seen = backend.query(f"SELECT event_id FROM {database}.raw_events WHERE event_id IN ({ids})").rows
            now = time.monotonic()
            with self.lock:
                for (event_id,) in seen:
                    if (sent := self.markers.pop(str(event_id), None)) is not None:
                        self.visibility.add((now - sent) * 1000, now)
        backend.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the load runs, warm-up included")
    parser.add_argument("--clicks", type=float, default=1000.0, help="clickstream events per second")
    parser.add_argument("--purchases", type=float, default=2.0, help="register + order + pay per second, via HTTP")
    parser.add_argument("--jobs", default="analytics,features", help="jobs to run, comma-separated")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before the start window")
    parser.add_argument("--window", type=float, default=60.0, help="seconds of the start and the end windows")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between lag and memory samples")
    parser.add_argument("--logs", type=Path, default=None, help="keep the processes' output here")
    args = parser.parse_args()
    jobs = [name for name in args.jobs.split(",") if name]
    if args.minutes * 60 < args.warmup + 2 * args.window:
        raise SystemExit("--minutes must cover --warmup and two --window")

    base = load_settings()
    platform = Platform(base)
    platform.require_healthy()
    run_id = uuid.uuid4().hex[:8]
    log_dir = args.logs or Path(f"/tmp/soak-{run_id}")
    log_dir.mkdir(parents=True, exist_ok=True)
    with isolated_environment(base, f"soak-{run_id}") as isolated:
        own = bench_settings(isolated, f"soak-{run_id}", log_dir)
        settings = own.model_copy(update={"services": own.services.model_copy(update={"fraud_standin": True})})
        database = settings.clickhouse.database
        backend = server_backend(settings)
        migrate(backend, database)
        if "features" in jobs:
            apply(settings)
        port = free_port()
        environment = {**os.environ, **environment_overrides(settings, "topics", "postgres", "services")}
        with (log_dir / "services.out").open("wb") as services_log:
            services = subprocess.Popen([SUUUPRA, "services", "up", "--port", str(port), "--fraud-standin"],
                                        env=environment, stdout=services_log, stderr=subprocess.STDOUT,
                                        start_new_session=True)  # fmt: skip
        running = {name: start_job(settings, name, log_dir) for name in jobs}
        stop = threading.Event()
        try:
            http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
            deadline = time.monotonic() + 60
            while True:
                with suppress(httpx.HTTPError):
                    if http.get("/openapi.json").status_code == 200:
                        break
                if time.monotonic() > deadline or services.poll() is not None:
                    raise SystemExit(f"the services did not answer; see {log_dir / 'services.out'}")
                time.sleep(0.3)
            instructor_signup = {"email": f"teacher-{run_id}@example.com", "password": PASSWORD,
                                 "display_name": "Teacher", "country": "IN", "preferred_language": "en"}  # fmt: skip
            token = http.post("/auth/register", json=instructor_signup).json()["access_token"]
            instructor = {"Authorization": f"Bearer {token}"}
            courses = []
            for number in range(COURSES):
                course_id = str(uuid.uuid4())
                draft = {"course_id": course_id, "title": f"Soak course {number}", "description": "",
                         "category": "streams", "language": "en", "duration_seconds": 600, "lesson_number": 1,
                         "price_minor": 99_900 if number % 5 else 2_500_000, "currency": "INR"}  # fmt: skip
                content_id = http.post("/contents", json=draft, headers=instructor).json()["content_id"]
                http.post(f"/contents/{content_id}/publish", headers=instructor)
                courses.append(course_id)

            clicks = Clicks(settings, args.clicks, stop, poll_raw_events="analytics" in jobs)
            purchases = Purchases(f"http://127.0.0.1:{port}", args.purchases, courses, stop)
            settled = Settled(settings, purchases, stop)
            threads = [clicks, purchases, settled, threading.Thread(target=clicks.poll, daemon=True)]
            for thread in threads:
                thread.start()
            lag: dict[str, Series] = defaultdict(Series)
            memory: dict[str, Series] = defaultdict(Series)
            began = time.monotonic()
            end = began + args.minutes * 60
            print(f"soak {run_id}: {args.minutes:g} min, {args.clicks:g} clicks/s, {args.purchases:g} purchases/s, "
                  f"jobs {', '.join(jobs) or 'none'}; logs in {log_dir}", flush=True)  # fmt: skip
            while time.monotonic() < end:
                time.sleep(min(args.sample, max(0.0, end - time.monotonic())))
                now = time.monotonic()
                behind: dict[str, int] = {"jobs": 0, "saga": 0}
                for partition in consumer_lag(settings):
                    # The saga's prefix starts with the jobs' one: tested first.
                    if partition.group.startswith(settings.services.consumer_group_prefix):
                        behind["saga"] += partition.lag
                    elif partition.group.startswith(settings.flink.consumer_group_prefix):
                        behind["jobs"] += partition.lag
                for family, records in behind.items():
                    lag[family].add(records, now)
                parents = _processes()
                for status in platform.status():
                    if status.pid is not None:
                        memory[status.name].add(tree_rss_mb(status.pid, parents), now)
                memory["services"].add(tree_rss_mb(services.pid, parents), now)
                for name, job in running.items():
                    memory[f"job {name}"].add(tree_rss_mb(job.pid, parents), now)
                dead = [name for name, job in running.items() if job.poll() is not None]
                print(f"  {now - began:5.0f} s: clicks {clicks.sent:,}, lag "
                      + ", ".join(f"{family} {series.points[-1][1]:,.0f}" for family, series in lag.items())
                      + (f"; DEAD: {', '.join(dead)}" if dead else ""), flush=True)  # fmt: skip
            stop.set()
            for thread in threads:
                thread.join(30)
        finally:
            stop.set()
            for process in [services, *running.values()]:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(30)
            if "features" in jobs:
                remove(settings)
            backend.execute(f"DROP DATABASE IF EXISTS {database}")
            backend.close()

    first = (began + args.warmup, began + args.warmup + args.window)
    last = (end - args.window, end)

    def row(name: str, series: Series, reduce: str) -> None:
        figures = []
        for window in (first, last):
            values = series.between(*window)
            figure = (percentile(values, 0.99) if reduce == "p99" else max(values) if reduce == "max"
                      else sum(values) / len(values)) if values else float("nan")  # fmt: skip
            figures.append(figure)
        ratio = figures[1] / figures[0] if figures[0] else float("nan")
        print(f"{name:<38} {reduce:>4} {figures[0]:>12,.1f} {figures[1]:>12,.1f} {ratio:>9.2f}")

    spans = (
        f"start = {first[0] - began:.0f}-{first[1] - began:.0f} s, end = {last[0] - began:.0f}-{last[1] - began:.0f} s"
    )
    print(
        f"\nsoak {run_id}: {args.minutes:g} min at {args.clicks:g} clicks/s and {args.purchases:g} purchases/s; {spans}"
    )
    print(f"{'':<38} {'':>4} {'start':>12} {'end':>12} {'end/start':>9}")
    row("API request latency, ms", purchases.latency, "p99")
    row("payment answered -> order settled, ms", settled.latency, "p99")
    if "analytics" in jobs:
        row("click sent -> in raw_events, ms", clicks.visibility, "p99")
    for family, series in lag.items():
        row(f"consumer lag, {family} (records)", series, "max")
    for name, series in sorted(memory.items()):
        row(f"memory, {name} (MB)", series, "mean")
    print(f"clicks sent {clicks.sent:,}; API requests {len(purchases.latency.points):,}, failed {purchases.failures}; "
          f"orders still unsettled {len(purchases.paid)}; markers never seen {len(clicks.markers)}")  # fmt: skip
    print(f"load average: {os.getloadavg()}")


if __name__ == "__main__":
    main()
