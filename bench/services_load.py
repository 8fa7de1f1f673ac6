"""Requests/s and latency of the transactional services over real HTTP: register, order, pay (UPI and card).

    .venv/bin/python bench/services_load.py [--concurrency 16] [--requests 1000]
    .venv/bin/python bench/services_load.py --concurrency 4 --requests 100 --no-card      # a quick run

Needs the platform (`suuupra platform up`). Starts `suuupra services up` itself on a free port and stops it at the
end: one uvicorn process with, in its background as deployed, the outbox relay and the enrolment saga's workers (the
fraud stand-in approves each payment, the saga posts the ledger, marks the order paid and enrols the learner, so the
pay phases also carry that work; `--up-args=--no-saga` leaves it out). Everything it writes is its own and removed
at the end: a PostgreSQL schema (bench_<id>, every service table and the outbox: the setting postgres.services_schema),
topics (bench-<id>.*, with their registry subjects) and the saga workers' consumer groups (the setting
services.consumer_group_prefix, bench-<id>-services; see suuupra/isolation.py). The dev tables, topics and groups
are not touched.

Setup (not timed): an instructor registers, creates and publishes a course. Then, one phase after the other, each
with `--concurrency` workers (threads, one keep-alive httpx client each), `--warmup` untimed requests followed by
`--requests` timed ones:

  register   POST /auth/register, a new user each (Argon2id hash, user.registered in the outbox, Redis session)
  order      POST /orders, each registered user orders the course (twice with --card: one order per payment);
             this is the pay phases' setup, timed as well because it costs nothing extra
  pay-upi    POST /payments with a fresh Idempotency-Key, UPI, one per order
  pay-card   POST /payments with a fresh Idempotency-Key, card (Luhn, expiry, CVV, tokenized), one per order

Per phase: requests/s over the timed requests, p50 / p90 / p99 / max latency (request sent to response read),
responses by status, CPU in cores (the whole machine; the services process; PostgreSQL with its backends, Kafka,
Redis, the registry and ClickHouse; this load generator; the rest; an idle baseline is measured first), and the
outbox: how many events the phase wrote (the saga's included), how many still waited for the relay when the phase
ended and how long the relay took to publish them. Every response must be 2xx: otherwise the failures are printed,
later phases are skipped and the exit code is 1. At the end, where the saga runs: how long after the last payment
it took until every order was fulfilled (or cancelled); then every outbox event must be in Kafka.

The load generator runs on the same machine as the server, PostgreSQL, Redis and Kafka: its CPU counts against them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from confluent_kafka import Consumer, TopicPartition
from cpu_usage import machine_busy_seconds

from suuupra.isolation import isolated_environment
from suuupra.platform.manager import Platform, PlatformDownError, components
from suuupra.settings import Settings, environment_overrides, load_settings

SUUUPRA = str(Path(sys.executable).parent / "suuupra")
PASSWORD = "Learn-Streams-2026"
PRICE_MINOR = 99_900  # 999.00 INR: the saga's stand-in would approve it
CARD = "4111111111111111"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
IDLE_SAMPLE_S = 5.0


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (share in [0, 1]) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(share * len(ordered) + 0.5)))
    return ordered[rank - 1]


# --- the isolated environment ---------------------------------------------------------------------------------------


@dataclass
class Sandbox:
    settings: Settings
    schema: str
    workdir: Path

    @property
    def dsn(self) -> str:
        return self.settings.postgres.dsn()  # with the search path of the sandbox's schema

    @property
    def run_id(self) -> str:
        return self.schema.removeprefix("bench_")


@contextmanager
def sandbox() -> Iterator[Sandbox]:
    base = load_settings()
    if base.is_local:  # a production platform is operated elsewhere; connection errors will say what is missing
        Platform(base).require_healthy()
    run_id = uuid.uuid4().hex[:8]
    with isolated_environment(base, f"bench-{run_id}") as settings:
        assert settings.postgres.services_schema is not None
        box = Sandbox(settings, settings.postgres.services_schema, Path(tempfile.mkdtemp(prefix=f"bench-{run_id}-")))
        try:
            yield box
        finally:
            shutil.rmtree(box.workdir, ignore_errors=True)


def process_table() -> dict[int, tuple[int, float, float]]:
    """pid -> (parent pid, own CPU seconds, CPU seconds of its exited children), for every process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError, IndexError, ValueError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                own, children = int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])
                table[int(entry.name)] = (int(fields[1]), own / CLOCK_TICKS, children / CLOCK_TICKS)
    return table


class CpuMeter:
    """CPU seconds used so far by: the whole machine, the services process, this load generator, and each platform
    component with its child processes (PostgreSQL's backends: one per connection, so exited ones count through
    the postmaster's children's times)."""

    def __init__(self, settings: Settings, server_pid: int) -> None:
        self.pids = {"services": server_pid}
        if settings.is_local:
            self.pids |= {c.name: pid for c in components(settings) if (pid := c.pid()) is not None}

    def sample(self) -> dict[str, float]:
        table = process_table()
        used = {"all": machine_busy_seconds()}
        for name, pid in self.pids.items():
            _parent, own, exited = table.get(pid, (0, 0.0, 0.0))
            live_children = sum(child_own for parent, child_own, _ in table.values() if parent == pid)
            used[name] = own + (exited + live_children if name != "services" else 0.0)
        used["load generator"] = time.process_time()
        return used

    @staticmethod
    def cores(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
        """Cores used between two samples, with `rest` for whatever is not named (other processes, the kernel)."""
        cores = {name: (after[name] - before[name]) / seconds for name in before}
        cores["rest"] = max(0.0, cores["all"] - sum(v for k, v in cores.items() if k != "all"))  # ticks: ~0.01
        return cores


def describe_cores(cores: dict[str, float]) -> str:
    parts = ", ".join(f"{name} {value:.2f}" for name, value in cores.items() if name != "all")
    return f"{cores['all']:.2f} cores busy: {parts}"


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    def banner(self) -> str:
        """What the command printed on start (which background workers run besides the relay)."""
        return " ".join(self.log_path.read_text(errors="replace").split())[:300]

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"the services exited with code {self.process.returncode}; their output ended:\n{tail}")


@contextmanager
def running_services(box: Sandbox, up_args: list[str], timeout_s: float = 60.0) -> Iterator[Server]:
    """`suuupra services up` in its own process group, on the sandbox's schema, topics and consumer groups."""
    host = box.settings.services.host
    port = free_port(host)
    environment = {
        **os.environ,
        **environment_overrides(box.settings, "topics"),
        "SUUUPRA_POSTGRES__SERVICES_SCHEMA": box.schema,
        **environment_overrides(box.settings, "services"),  # the saga workers' consumer groups (removed afterwards)
    }
    log_path = box.workdir / "services.log"
    with log_path.open("wb") as log:
        # The stand-in decides: this benchmark measures the services and the saga, not the fraud job.
        process = subprocess.Popen([SUUUPRA, "services", "up", "--port", str(port), "--fraud-standin", *up_args],
                                   env=environment,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    server = Server(process, f"http://{host}:{port}", log_path)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            server.check_alive()
            with suppress(httpx.HTTPError):
                if httpx.get(f"{server.base_url}/openapi.json", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the services did not answer on {server.base_url} within {timeout_s:.0f} s")
            time.sleep(0.2)
        yield server
    finally:
        # SIGINT: uvicorn shuts down gracefully, then the command stops its relay.
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# --- load -----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass(frozen=True)
class Outcome:
    status: str  # the HTTP status, or the name of the transport error
    seconds: float
    body: dict[str, Any] | None

    @property
    def ok(self) -> bool:
        return self.status.isdigit() and 200 <= int(self.status) < 300


def run_calls(base_url: str, calls: list[Call], concurrency: int, label: str) -> tuple[list[Outcome], float]:
    """Sends every call with `concurrency` workers; returns the outcomes in call order and the wall time."""
    outcomes: list[Outcome | None] = [None] * len(calls)
    lock = threading.Lock()
    position = 0
    done = 0
    step = max(1, len(calls) // 10)
    last_print = time.monotonic()

    def worker() -> None:
        nonlocal position, done, last_print
        with httpx.Client(base_url=base_url, timeout=120) as client:
            while True:
                with lock:
                    index = position
                    position += 1
                if index >= len(calls):
                    return
                call = calls[index]
                began = time.perf_counter()
                try:
                    response = client.post(call.path, json=call.body, headers=call.headers)
                    seconds = time.perf_counter() - began
                    body = response.json() if response.content else None
                    outcome = Outcome(str(response.status_code), seconds, body if isinstance(body, dict) else None)
                except (httpx.HTTPError, ValueError) as error:
                    outcome = Outcome(type(error).__name__, time.perf_counter() - began, None)
                outcomes[index] = outcome
                with lock:
                    done += 1
                    # Every tenth, at most every 5 s: progress on long phases, quiet on short ones.
                    if label and done % step == 0 and time.monotonic() - last_print > 5:
                        last_print = time.monotonic()
                        print(f"  {label}: {done:,}/{len(calls):,}", flush=True)

    threads = [threading.Thread(target=worker, name=f"load-{i}") for i in range(concurrency)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    return [o for o in outcomes if o is not None], elapsed


@dataclass(frozen=True)
class PhaseReport:
    name: str
    requests: int
    concurrency: int
    elapsed_s: float
    latencies_ms: list[float]
    statuses: Counter[str]
    cores: dict[str, float]  # CPU used while the timed requests ran (see CpuMeter)
    ended: float  # perf_counter when the last timed request was answered
    outbox_events: int
    outbox_waiting: int
    relay_catch_up_s: float | None

    @property
    def errors(self) -> Counter[str]:
        return Counter({s: n for s, n in self.statuses.items() if not (s.isdigit() and 200 <= int(s) < 300)})


def outbox_counts(dsn: str) -> tuple[int, int]:
    """(events in the outbox, events not yet published)."""
    with psycopg.connect(dsn) as connection:
        row = connection.execute("SELECT count(*), count(*) FILTER (WHERE published_at IS NULL) FROM outbox").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def wait_for_relay(dsn: str, timeout_s: float = 120.0) -> float | None:
    """Seconds until the outbox has nothing unpublished (None: still waiting after the timeout)."""
    began = time.perf_counter()
    while outbox_counts(dsn)[1]:
        if time.perf_counter() - began > timeout_s:
            return None
        time.sleep(0.05)
    return time.perf_counter() - began


def run_phase(
    name: str, box: Sandbox, server: Server, meter: CpuMeter, calls: list[Call], concurrency: int, warmup: int
) -> tuple[PhaseReport, list[Outcome]]:
    """The first `warmup` calls untimed, then the rest timed; returns the report and every outcome in call order."""
    print(f"{name}: {warmup:,} warm-up + {len(calls) - warmup:,} timed requests, concurrency {concurrency} ...")
    warm, _ = run_calls(server.base_url, calls[:warmup], concurrency, "")
    wait_for_relay(box.dsn)
    events_before = outbox_counts(box.dsn)[0]
    cpu_before = meter.sample()
    timed, elapsed = run_calls(server.base_url, calls[warmup:], concurrency, name)
    ended = time.perf_counter()
    cores = CpuMeter.cores(cpu_before, meter.sample(), elapsed)
    events, waiting = outbox_counts(box.dsn)
    catch_up = wait_for_relay(box.dsn)
    server.check_alive()
    report = PhaseReport(
        name, len(timed), concurrency, elapsed, [o.seconds * 1000 for o in timed], Counter(o.status for o in timed),
        cores, ended, events - events_before, waiting, catch_up,
    )  # fmt: skip
    warm_errors = Counter(o.status for o in warm if not o.ok)
    if warm_errors:
        report.statuses.update({f"{status} (warm-up)": count for status, count in warm_errors.items()})
    print_phase(report)
    outcomes = warm + timed
    failures = [(i, o) for i, o in enumerate(outcomes) if not o.ok]
    if failures:
        print(f"\n!!! {name}: {len(failures):,} of {len(outcomes):,} requests failed: {dict(report.errors)}")
        for index, outcome in failures[:5]:
            print(f"!!!   {calls[index].path} -> {outcome.status}: {outcome.body}")
    return report, outcomes


def latency_figures(report: PhaseReport) -> tuple[float, float, float, float]:
    values = report.latencies_ms
    return percentile(values, 0.50), percentile(values, 0.90), percentile(values, 0.99), max(values)


def print_phase(report: PhaseReport) -> None:
    rate = report.requests / report.elapsed_s
    p50, p90, p99, top = latency_figures(report)
    catch_up = report.relay_catch_up_s
    relay = "NOT published within 120 s" if catch_up is None else f"all published {catch_up:.2f} s later"
    print(f"  {report.requests:,} requests in {report.elapsed_s:.2f} s = {rate:,.1f} requests/s; "
          f"latency p50 / p90 / p99 / max {p50:.0f} / {p90:.0f} / {p99:.0f} / {top:.0f} ms")  # fmt: skip
    print(f"  responses {dict(sorted(report.statuses.items()))}")
    print(f"  CPU: {describe_cores(report.cores)}")
    print(f"  outbox: {report.outbox_events:,} events written, {report.outbox_waiting:,} waiting when the phase "
          f"ended, {relay}")  # fmt: skip


def table_row(cells: tuple[str, ...]) -> str:
    widths = (10, 9, 6, 10, 11, 7, 7, 7, 7, 7, 17)
    first, *rest = zip(cells, widths, strict=True)
    return " ".join([f"{first[0]:<{first[1]}}", *(f"{cell:>{width}}" for cell, width in rest)])


def print_summary(reports: list[PhaseReport]) -> None:
    header = ("phase", "requests", "conc.", "elapsed s", "requests/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors",
              "CPU server / all")  # fmt: skip
    print()
    print(table_row(header))
    for r in reports:
        cells = (r.name, f"{r.requests:,}", str(r.concurrency), f"{r.elapsed_s:.2f}",
                 f"{r.requests / r.elapsed_s:,.1f}", *(f"{v:.0f}" for v in latency_figures(r)),
                 str(sum(r.errors.values())), f"{r.cores['services']:.2f} / {r.cores['all']:.2f}")  # fmt: skip
        print(table_row(cells))


# --- the requests ---------------------------------------------------------------------------------------------------


def registration(run_id: str, index: int) -> Call:
    body = {"email": f"bench-{run_id}-{index}@example.com", "password": PASSWORD, "display_name": f"Learner {index}",
            "country": "IN", "preferred_language": "en"}  # fmt: skip
    return Call("/auth/register", body, {})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def publish_course(base_url: str, run_id: str) -> str:
    """Setup: an instructor registers, creates a draft and publishes it; returns the course id."""
    with httpx.Client(base_url=base_url, timeout=60) as client:
        signed_up = client.post("/auth/register", json=registration(run_id, -1).body)
        signed_up.raise_for_status()
        instructor = bearer(signed_up.json()["access_token"])
        course_id = str(uuid.uuid4())
        draft = {"course_id": course_id, "title": "Benchmarking the services", "description": "",
                 "category": "architecture", "language": "en", "duration_seconds": 600, "lesson_number": 1,
                 "price_minor": PRICE_MINOR, "currency": "INR"}  # fmt: skip
        created = client.post("/contents", json=draft, headers=instructor)
        created.raise_for_status()
        client.post(f"/contents/{created.json()['content_id']}/publish", headers=instructor).raise_for_status()
    return course_id


def payment(order_id: str, token: str, method: str, index: int) -> Call:
    body: dict[str, Any] = {"order_id": order_id, "method": method, "device_id": f"bench-device-{index}"}
    if method == "UPI":
        body["vpa"] = f"learner{index}@okaxis"
    else:
        body["card"] = {"number": CARD, "expiry_month": 12, "expiry_year": dt.date.today().year + 3, "cvv": "123"}
    return Call("/payments", body, bearer(token) | {"Idempotency-Key": f"bench-{uuid.uuid4().hex}"})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (worker threads)")
    parser.add_argument("--requests", type=int, default=1000, help="timed requests per phase")
    parser.add_argument("--warmup", type=int, default=50, help="untimed requests before each phase's timed ones")
    parser.add_argument("--card", action=argparse.BooleanOptionalAction, default=True,
                        help="also pay a second order of each user by card")  # fmt: skip
    parser.add_argument("--saga-timeout", type=float, default=300.0,
                        help="seconds to wait, after the last payment, for the saga to settle every order")  # fmt: skip
    parser.add_argument("--up-args", default="", metavar="ARGS",
                        help="extra options for `suuupra services up`, e.g. --up-args=--no-saga")  # fmt: skip
    args = parser.parse_args()
    if args.concurrency < 1 or args.requests < 1 or args.warmup < 0:
        parser.error("--concurrency and --requests must be >= 1, --warmup >= 0")

    load_average = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable), load average {load_average}; "
          "the load generator shares them with the server")  # fmt: skip
    try:
        with sandbox() as box, running_services(box, shlex.split(args.up_args)) as server:
            command = " ".join(["suuupra services up", *shlex.split(args.up_args)])
            print(f"`{command}` on {server.base_url} (pid {server.process.pid}), PostgreSQL schema {box.schema}, "
                  f"topics bench-{box.run_id}.*; it says: {server.banner()}")  # fmt: skip
            return load(box, server, args)
    except PlatformDownError as error:
        print(f"error: the platform is not up ({error}): run `suuupra platform up`", file=sys.stderr)
    except (psycopg.OperationalError, httpx.ConnectError) as error:
        print(f"error: {error}\nis the platform up? run `suuupra platform up`", file=sys.stderr)
    return 1


def load(box: Sandbox, server: Server, args: argparse.Namespace) -> int:
    run_id = box.run_id
    total = args.warmup + args.requests
    course_id = publish_course(server.base_url, run_id)
    wait_for_relay(box.dsn)
    meter = CpuMeter(box.settings, server.process.pid)
    began, cpu_before = time.perf_counter(), meter.sample()
    time.sleep(IDLE_SAMPLE_S)
    idle = CpuMeter.cores(cpu_before, meter.sample(), time.perf_counter() - began)
    print(f"idle baseline ({IDLE_SAMPLE_S:.0f} s, no requests): {describe_cores(idle)}")
    reports: list[PhaseReport] = []

    def phase(name: str, calls: list[Call], warmup: int) -> list[Outcome] | None:
        report, outcomes = run_phase(name, box, server, meter, calls, args.concurrency, warmup)
        reports.append(report)
        return None if report.errors else outcomes

    registered = phase("register", [registration(run_id, i) for i in range(total)], args.warmup)
    if registered is None:
        return finish(reports)
    tokens = [str(o.body["access_token"]) for o in registered if o.body]
    buyers = tokens * (2 if args.card else 1)  # with --card every user has one order per payment method
    orders = phase("order", [Call("/orders", {"course_id": course_id}, bearer(t)) for t in buyers],
                   args.warmup * len(buyers) // total)  # fmt: skip
    if orders is None:
        return finish(reports)
    order_ids = [str(o.body["order_id"]) for o in orders if o.body]
    upi = [payment(order_ids[i], tokens[i], "UPI", i) for i in range(total)]
    if phase("pay-upi", upi, args.warmup) is None:
        return finish(reports)
    if args.card:
        card = [payment(order_ids[total + i], tokens[i], "CARD", i) for i in range(total)]
        if phase("pay-card", card, args.warmup) is None:
            return finish(reports)
    if "saga workers running" in server.banner():
        settle_saga(box.dsn, args.saga_timeout, reports[-1].ended)
    written = outbox_counts(box.dsn)[0]
    wait_for_relay(box.dsn)
    in_kafka = topic_records(box.settings)
    print(f"outbox: {written:,} events written in all (setup and warm-up included), {in_kafka:,} records in the "
          f"bench topics (the fraud stand-in's decisions go to Kafka directly)")  # fmt: skip
    if in_kafka < written:
        print(f"!!! {written - in_kafka:,} events of the outbox are not in Kafka")
        return finish(reports, failed=True)
    return finish(reports)


def settle_saga(dsn: str, timeout_s: float, began: float) -> None:
    """Waits until the saga has settled every order (fulfilled or cancelled); prints how long after `began` (a
    perf_counter value) that was."""
    print("\nsaga: waiting until every paid order is fulfilled or cancelled ...")
    while True:
        with psycopg.connect(dsn) as connection:
            rows = connection.execute("SELECT status, count(*) FROM orders GROUP BY status ORDER BY status").fetchall()
        statuses = {str(status): int(count) for status, count in rows}
        waiting = statuses.get("CREATED", 0) + statuses.get("PAID", 0)
        seconds = time.perf_counter() - began
        if not waiting:
            print(f"saga: every order settled {seconds:.1f} s after the last payment was answered: {statuses}")
            return
        if seconds > timeout_s:
            print(f"!!! saga: {waiting:,} orders still unsettled after {timeout_s:.0f} s: {statuses}")
            return
        time.sleep(0.5)


def finish(reports: list[PhaseReport], failed: bool = False) -> int:
    print_summary(reports)
    if failed or any(r.errors for r in reports):
        print("\n!!! FAILED: not every request succeeded (see above)")
        return 1
    return 0


def topic_records(settings: Settings) -> int:
    """Records in the domain topics (sum of the partitions' end offsets; the topics are new, so they start at 0)."""
    consumer = Consumer({**settings.kafka.client_config(), "group.id": f"bench-{uuid.uuid4()}"})
    try:
        total = 0
        metadata = consumer.list_topics(timeout=30)
        for topic in settings.topics.domain().values():
            for partition in metadata.topics[topic].partitions:
                _low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
                total += high
        return total
    finally:
        consumer.close()


if __name__ == "__main__":
    sys.exit(main())
