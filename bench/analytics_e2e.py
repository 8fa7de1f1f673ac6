"""End-to-end throughput and latency of the analytics job: Kafka -> PyFlink (local mini-cluster) -> ClickHouse.

    .venv/bin/python bench/analytics_e2e.py [--events 300000] [--parallelism 1] [--rate 1000] [--seconds 60]
    .venv/bin/python bench/analytics_e2e.py --events 20000 --seconds 15        # a quick run while developing
    .venv/bin/python bench/analytics_e2e.py --parallelism 2 --seconds 0       # throughput only

Needs the platform (`suuupra platform up`). Everything is its own and removed at the end: topics (bench-<id>.*),
their registry subjects, a ClickHouse database (bench_<id>, migrated), a consumer group (bench-<id>-analytics) and
a checkpoint folder. The job runs as `suuupra jobs run analytics` (unbounded) in its own process group, configured
through SUUUPRA_* variables, and is killed (SIGKILL to the group) at the end.

(a) Sustained throughput. `--events` simulator events (the usual mix, `--users` users, out-of-order and late
events included) are produced before the job starts, with event times ending two minutes before now, so they are
recent and never ahead of the events of part (b). The job then drains that backlog. Every `--sample-s` the script
reads the row count of `raw_events` (every decodable event of the four topics the job reads lands there) and the
lag of the job's consumer group (end offsets minus committed offsets; Flink commits on each checkpoint, every
`--checkpoint-interval` s, so the lag moves in steps). Reported: start-up (job start to first row), drain time,
events/s over the steady middle (from 20% to 80% of the expected rows) and over the whole drain, and whether the
lag only ever shrank.

(b) Latency at a stated rate. With the job caught up, events of the same mix are produced at `--rate` events/s for
`--seconds` s (after `--warmup` s), each stamped with event_time = record timestamp = the send time. About 40 per
second of those going to the job's topics are markers: a poller asks ClickHouse every `--poll-ms` ms which markers
`raw_events` holds, so a marker's latency is send -> row visible (resolution: one poll interval). Window latency:
for `content_minute`, the time from a minute's end to the first (and the last) of its rows being visible. A window
closes only when the watermark (newest event time - 30 s) passes its end, so about 30 s is expected by design; the
producer keeps going until at least one minute has ended after the markers began, then for that bound + 10 s more,
so the windows that ended meanwhile close (with a short `--seconds` this adds up to a minute).

Figures depend on the machine's load: run nothing else heavy meanwhile.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient

from connectors.clickhouse.server import ServerBackend
from schemas import Catalog, default_catalog
from suuupra.clickhouse.migrate import migrate, server_backend
from suuupra.events import EventPublisher, make_registry
from suuupra.schema_tools.registry_sync import register_all
from suuupra.settings import Settings, TopicNames, environment_overrides, load_settings
from suuupra.simulate.journeys import SimulationProfile, generate
from suuupra.topics.apply import apply_topics
from suuupra.topics.spec import load_topic_specs

SUUUPRA = str(Path(sys.executable).parent / "suuupra")
JOB_GROUP_SUFFIX = "analytics"
MARKERS_PER_SECOND = 40
BACKLOG_END_BEFORE_NOW_MS = 120_000


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (share in [0, 1]) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(share * len(ordered) + 0.5)))
    return ordered[rank - 1]


def source_topics(settings: Settings) -> list[str]:
    """The topics the analytics job reads (see `jobs/analytics.py`)."""
    topics = settings.topics
    return sorted({topics.clickstream, topics.commerce, topics.payment, topics.user})


# --- the isolated environment ---------------------------------------------------------------------------------------


@dataclass
class Sandbox:
    settings: Settings
    admin: AdminClient
    registry: SchemaRegistryClient
    catalog: Catalog
    workdir: Path
    subjects: list[str] = field(default_factory=list)

    @property
    def group_id(self) -> str:
        return f"{self.settings.flink.consumer_group_prefix}-{JOB_GROUP_SUFFIX}"


@contextmanager
def sandbox(checkpoint_interval_s: float, parallelism: int) -> Iterator[Sandbox]:
    base = load_settings()
    run_id = uuid.uuid4().hex[:8]
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-e2e-{run_id}-"))
    settings = base.model_copy(
        update={
            "topics": TopicNames(**{k: f"bench-{run_id}.{v}" for k, v in TopicNames().model_dump().items()}),
            "clickhouse": base.clickhouse.model_copy(update={"database": f"bench_{run_id}"}),
            "flink": base.flink.model_copy(
                update={
                    "parallelism": parallelism,
                    "checkpoint_interval_s": checkpoint_interval_s,
                    "checkpoint_dir": workdir / "checkpoints",
                    "consumer_group_prefix": f"bench-{run_id}",
                }
            ),
        }
    )
    admin = AdminClient(settings.kafka.client_config())
    box = Sandbox(settings, admin, make_registry(settings), default_catalog(), workdir)
    backend = server_backend(settings)
    try:
        apply_topics(admin, load_topic_specs(settings))
        box.subjects = [r.subject for r in register_all(settings, box.catalog, box.registry)]
        migrate(backend, settings.clickhouse.database)
        yield box
    finally:
        with suppress(Exception):
            backend.query(f"DROP DATABASE IF EXISTS {settings.clickhouse.database}")
        backend.close()
        for future in admin.delete_topics(list(settings.topics.model_dump().values())).values():
            with suppress(Exception):
                future.result(timeout=60)
        with suppress(Exception):
            admin.delete_consumer_groups([box.group_id])[box.group_id].result(timeout=30)
        for subject in box.subjects:
            with suppress(Exception):
                box.registry.delete_subject(subject)
                box.registry.delete_subject(subject, permanent=True)
        shutil.rmtree(workdir, ignore_errors=True)


def job_environment(settings: Settings) -> dict[str, str]:
    return {**os.environ, **environment_overrides(settings, "topics", "clickhouse", "flink")}


@contextmanager
def running_job(box: Sandbox) -> Iterator[subprocess.Popen[bytes]]:
    log_path = box.workdir / "job.log"
    with log_path.open("wb") as log:
        job = subprocess.Popen([SUUUPRA, "jobs", "run", "analytics"], env=job_environment(box.settings),
                               start_new_session=True, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        yield job
    finally:
        if job.poll() is not None and job.returncode != -signal.SIGKILL:
            print(f"the job exited with {job.returncode}; its output ended with:")
            print(log_path.read_text(errors="replace")[-4000:])
        with suppress(ProcessLookupError):
            os.killpg(job.pid, signal.SIGKILL)
        job.wait(30)


def check_alive(job: subprocess.Popen[bytes]) -> None:
    if job.poll() is not None:
        raise RuntimeError(f"the analytics job exited with code {job.returncode}")


class ClickHouseCounts:
    def __init__(self, settings: Settings) -> None:
        self.database = settings.clickhouse.database
        self.backend: ServerBackend = server_backend(settings)

    def raw_rows(self) -> int:
        # Without FINAL: cheaper, and nothing is written twice without a restore.
        return int(self.backend.query(f"SELECT count() FROM {self.database}.raw_events").rows[0][0])

    def close(self) -> None:
        self.backend.close()


class GroupLag:
    """End offsets minus the group's committed offsets over the job's source partitions (all of it before a commit)."""

    def __init__(self, box: Sandbox) -> None:
        config = {**box.settings.kafka.client_config(), "group.id": box.group_id, "enable.auto.commit": False}
        self.consumer = Consumer(config)
        metadata = box.admin.list_topics(timeout=30)
        self.partitions = [
            TopicPartition(topic, partition)
            for topic in source_topics(box.settings)
            for partition in metadata.topics[topic].partitions
        ]

    def lag(self) -> int:
        committed = self.consumer.committed(self.partitions, timeout=30)
        total = 0
        for position in committed:
            low, high = self.consumer.get_watermark_offsets(
                TopicPartition(position.topic, position.partition), timeout=30, cached=False
            )
            total += high - (position.offset if position.offset >= 0 else low)
        return total

    def close(self) -> None:
        self.consumer.close()


# --- (a) throughput -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backlog:
    produced: int
    for_job: int  # events on the topics the job reads: the rows raw_events must end up with
    seconds: float
    first_ms: int
    last_ms: int


def produce_backlog(box: Sandbox, count: int, users: int, seed: int) -> Backlog:
    # First pass: how much event time `count` events span, so that the second pass can end them just before now.
    probe = SimulationProfile(seed=seed, users=users)
    span_ms = max(e.value["event_time"] for e in generate(probe, count)) - probe.start_time_ms
    start_ms = int(time.time() * 1000) - span_ms - BACKLOG_END_BEFORE_NOW_MS
    profile = SimulationProfile(seed=seed, users=users, start_time_ms=start_ms)
    publisher = EventPublisher(box.settings, box.catalog, box.registry)
    wanted = set(source_topics(box.settings))
    for_job = 0
    first_ms, last_ms = sys.maxsize, 0
    began = time.perf_counter()
    for event in generate(profile, count):
        topic = publisher.publish(event.value)
        for_job += topic in wanted
        first_ms, last_ms = min(first_ms, event.value["event_time"]), max(last_ms, event.value["event_time"])
    publisher.flush(timeout=600)
    return Backlog(count, for_job, time.perf_counter() - began, first_ms, last_ms)


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the job was started
    rows: int
    lag: int


def drain(
    box: Sandbox, job: subprocess.Popen[bytes], started: float, expected: int, sample_s: float, timeout_s: float
) -> list[Sample]:
    counts, lag = ClickHouseCounts(box.settings), GroupLag(box)
    samples: list[Sample] = []
    last_print = -10.0
    try:
        while True:
            check_alive(job)
            t = time.perf_counter() - started
            samples.append(Sample(t, counts.raw_rows(), lag.lag()))
            now = samples[-1]
            if now.t - last_print >= 5 or now.rows >= expected:
                before = next((s for s in reversed(samples[:-1]) if now.t - s.t >= 4.5), samples[0])
                rate = (now.rows - before.rows) / (now.t - before.t) if now.t > before.t else 0.0
                print(
                    f"  t={now.t:6.1f} s  raw_events {now.rows:>9,}/{expected:,}  ({rate:>8,.0f}/s)  lag {now.lag:>9,}"
                )
                last_print = now.t
            if now.rows >= expected and now.lag == 0:
                return samples
            if now.t > timeout_s:
                print(f"  gave up after {timeout_s:.0f} s")
                return samples
            time.sleep(sample_s)
    finally:
        counts.close()
        lag.close()


def first_at(samples: list[Sample], condition: Callable[[Sample], bool]) -> Sample | None:
    return next((s for s in samples if condition(s)), None)


def report_throughput(backlog: Backlog, samples: list[Sample]) -> dict[str, str]:
    expected = backlog.for_job
    first = first_at(samples, lambda s: s.rows > 0)
    low = first_at(samples, lambda s: s.rows >= 0.2 * expected)
    high = first_at(samples, lambda s: s.rows >= 0.8 * expected)
    done = first_at(samples, lambda s: s.rows >= expected)
    caught_up = first_at(samples, lambda s: s.lag == 0 and s.rows >= expected)
    lags = [s.lag for s in samples]
    increases = [(a, b) for a, b in itertools.pairwise(samples) if b.lag > a.lag]
    result = {
        "backlog produced": f"{backlog.produced:,} events in {backlog.seconds:.1f} s "
        f"({backlog.produced / backlog.seconds:,.0f}/s); {expected:,} on the job's topics",
        "backlog event time span": f"{(backlog.last_ms - backlog.first_ms) / 60_000:.1f} min",
        "start-up (job start -> first row)": f"{first.t:.1f} s" if first else "no row",
    }
    if low and high and high.t > low.t:
        result["steady events/s (20%->80% rows)"] = f"{(high.rows - low.rows) / (high.t - low.t):,.0f}"
    else:
        result["steady events/s (20%->80% rows)"] = "n/a (too few samples: use more --events)"
    if first and done:
        result["drain events/s (first row -> all)"] = f"{(expected - first.rows) / max(done.t - first.t, 1e-9):,.0f}"
        result["all rows visible at"] = f"{done.t:.1f} s after job start ({expected / done.t:,.0f} events/s overall)"
    else:
        result["rows visible"] = f"{samples[-1].rows:,} of {expected:,} (NOT drained)"
    result["lag"] = (
        f"{lags[0]:,} -> {lags[-1]:,}; "
        + (
            "only ever shrank"
            if not increases
            else f"grew {len(increases)} time(s): "
            + ", ".join(f"{a.lag:,} -> {b.lag:,} at {b.t:.1f} s" for a, b in increases[:3])
        )
        + (f"; 0 at {caught_up.t:.1f} s" if caught_up else "")
    )
    return result


# --- (b) latency ----------------------------------------------------------------------------------------------------


class Tracker:
    """Send times of markers, and when each became visible in raw_events; content_minute windows as they appear."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent: dict[str, float] = {}
        self.seen: dict[str, float] = {}
        self.window_first: dict[int, float] = {}  # window start (epoch s) -> first seen
        self.window_last: dict[int, tuple[int, float]] = {}  # window start -> (rows, when that row count appeared)
        self.polls = 0
        self.poll_seconds = 0.0

    def sent_marker(self, event_id: str, at: float) -> None:
        with self.lock:
            self.sent[event_id] = at

    def pending(self) -> list[str]:
        with self.lock:
            return [event_id for event_id in self.sent if event_id not in self.seen]


def poll_clickhouse(
    settings: Settings, tracker: Tracker, since_s: int, interval_s: float, stop: threading.Event
) -> None:
    database = settings.clickhouse.database
    backend = server_backend(settings)
    try:
        while not stop.is_set():
            began = time.time()
            pending = tracker.pending()
            visible: list[str] = []
            if pending:
                ids = ", ".join(f"'{event_id}'" for event_id in pending)  # uuids: nothing to escape
                visible = [row[0] for row in backend.query(
                    f"SELECT event_id FROM {database}.raw_events PREWHERE event_time >= toDateTime({since_s}) "
                    f"WHERE event_id IN ({ids})").rows]  # fmt: skip
            windows = backend.query(
                f"SELECT toUInt32(window_start), count() FROM {database}.content_minute "
                f"WHERE window_start >= toDateTime({since_s - since_s % 60}) GROUP BY window_start"
            ).rows
            with tracker.lock:
                for event_id in visible:
                    tracker.seen.setdefault(event_id, began)
                for start, rows in windows:
                    tracker.window_first.setdefault(int(start), began)
                    if tracker.window_last.get(int(start), (0, 0.0))[0] != rows:
                        tracker.window_last[int(start)] = (int(rows), began)
                tracker.polls += 1
                tracker.poll_seconds += time.time() - began
            stop.wait(max(0.0, interval_s - (time.time() - began)))
    finally:
        backend.close()


@dataclass
class PacedRun:
    produced: int = 0
    markers: int = 0
    began: float = 0.0
    main_start: float = 0.0
    main_end: float = 0.0
    windows_until: float = 0.0  # content_minute windows ending by then are reported
    end: float = 0.0


def produce_paced(
    box: Sandbox, tracker: Tracker, rate: float, warmup_s: float, seconds: float, tail_s: float, users: int, seed: int
) -> PacedRun:
    """Events at `rate`/s, event time = send time; markers only within the measured `seconds`."""
    publisher = EventPublisher(box.settings, box.catalog, box.registry)
    wanted = set(source_topics(box.settings))
    every = max(1, round(rate / MARKERS_PER_SECOND))
    began = time.time()
    run = PacedRun(began=began, main_start=began + warmup_s, main_end=began + warmup_s + seconds)
    # At least one minute boundary is measured: the first one after the markers start, if they end before it.
    run.windows_until = max(run.main_end, run.main_start - run.main_start % 60 + 60)
    run.end = run.windows_until + tail_s
    profile = SimulationProfile(seed=seed, users=users, start_time_ms=int(began * 1000), out_of_order_share=0.0,
                                late_share=0.0)  # fmt: skip
    for_job = 0
    for index, event in enumerate(generate(profile, int(rate * (run.end - began)) + 1)):
        due = began + index / rate
        now = time.time()
        if due > now + 0.0005:
            time.sleep(due - now)
        sent = time.time()
        if sent >= run.end:
            break
        value = {**event.value, "event_time": int(sent * 1000)}
        topic = publisher.publish(value)
        run.produced += 1
        if topic in wanted:
            for_job += 1
            if run.main_start <= sent < run.main_end and for_job % every == 0:
                tracker.sent_marker(str(value["event_id"]), sent)
                run.markers += 1
    publisher.flush(timeout=60)
    run.end = time.time()
    return run


def report_latency(tracker: Tracker, run: PacedRun, rate: float, bound_s: int) -> dict[str, str]:
    with tracker.lock:
        latencies = [(tracker.seen[i] - sent) * 1000 for i, sent in tracker.sent.items() if i in tracker.seen]
        missing = len(tracker.sent) - len(latencies)
        first = dict(tracker.window_first)
        last = {start: at for start, (_rows, at) in tracker.window_last.items()}
        rows = {start: count for start, (count, _at) in tracker.window_last.items()}
        poll_ms = tracker.poll_seconds / max(tracker.polls, 1) * 1000
    result = {
        "rate asked / achieved": f"{rate:,.0f} / {run.produced / max(run.end - run.began, 1e-9):,.0f} events/s "
        f"({run.produced:,} events incl. warm-up and tail)",
        "markers (send -> visible in raw_events)": f"{len(latencies):,} seen, {missing} never seen",
        "ClickHouse poll": f"{tracker.polls:,} polls, {poll_ms:.0f} ms each on average",
    }
    if latencies:
        result["raw_events latency p50 / p90 / p99 / max"] = (
            " / ".join(f"{percentile(latencies, share):,.0f}" for share in (0.5, 0.9, 0.99, 1.0)) + " ms"
        )
    first_window = int(run.began) - int(run.began) % 60
    for start in range(first_window, int(run.windows_until) - 59, 60):
        label = time.strftime("%H:%M", time.gmtime(start))
        partial = " (partial minute)" if start < run.began else ""
        if start not in first:
            result[f"content_minute {label} UTC{partial}"] = "never visible"
            continue
        result[f"content_minute {label} UTC{partial}"] = (
            f"{rows[start]} rows; first visible {first[start] - start - 60:.1f} s, "
            f"last {last[start] - start - 60:.1f} s after the minute's end (bound {bound_s} s)"
        )
    return result


def print_table(title: str, rows: dict[str, str]) -> None:
    print(f"\n{title}")
    width = max(len(key) for key in rows)
    for key, value in rows.items():
        print(f"  {key:<{width}}  {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=300_000, help="backlog size for the throughput part")
    parser.add_argument("--parallelism", type=int, default=1)
    parser.add_argument("--rate", type=float, default=1000.0, help="events/s for the latency part")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured seconds of the latency part (0: skip it)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds at --rate before markers are sent")
    parser.add_argument("--users", type=int, default=5000, help="simulated users (the event-time density)")
    parser.add_argument("--checkpoint-interval", type=float, default=2.0, help="seconds; offsets commit on each")
    parser.add_argument("--sample-s", type=float, default=0.5, help="throughput sampling interval")
    parser.add_argument("--poll-ms", type=float, default=100.0, help="ClickHouse polling interval for latencies")
    parser.add_argument("--timeout", type=float, default=1800.0, help="give up draining after this many seconds")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    with sandbox(args.checkpoint_interval, args.parallelism) as box:
        flink = box.settings.flink
        print(f"settings: parallelism {flink.parallelism}, checkpoint every {flink.checkpoint_interval_s} s, "
              f"sink batch {flink.sink_batch_rows} rows / {flink.sink_batch_delay_s} s, "
              f"python bundle {flink.python_bundle_size}, watermark bound {flink.max_out_of_orderness_s} s, "
              f"idle timeout {flink.source_idle_timeout_s} s; database {box.settings.clickhouse.database}")  # fmt: skip
        print(f"(a) producing a backlog of {args.events:,} events ...")
        backlog = produce_backlog(box, args.events, args.users, args.seed)
        with running_job(box) as job:
            started = time.perf_counter()
            print(f"(a) job started (pid {job.pid}); draining ...")
            samples = drain(box, job, started, backlog.for_job, args.sample_s, args.timeout)
            throughput = report_throughput(backlog, samples)
            print_table(f"(a) throughput, parallelism {args.parallelism}", throughput)
            if samples[-1].rows < backlog.for_job or args.seconds <= 0:
                return

            print(f"\n(b) producing at {args.rate:,.0f} events/s: {args.warmup:.0f} s warm-up, {args.seconds:.0f} s "
                  f"measured, then on until a minute has ended and {flink.max_out_of_orderness_s + 10} s more "
                  "to close it ...")  # fmt: skip
            tracker, stop = Tracker(), threading.Event()
            poller = threading.Thread(
                target=poll_clickhouse,
                args=(box.settings, tracker, int(time.time()), args.poll_ms / 1000, stop),
                daemon=True,
            )
            poller.start()
            try:
                run = produce_paced(box, tracker, args.rate, args.warmup, args.seconds,
                                    flink.max_out_of_orderness_s + 10, args.users, args.seed + 1000)  # fmt: skip
                deadline = time.time() + 30
                while tracker.pending() and time.time() < deadline:
                    check_alive(job)
                    time.sleep(0.2)
            finally:
                stop.set()
                poller.join(30)
            check_alive(job)
            print_table(f"(b) latency at {args.rate:,.0f} events/s, parallelism {args.parallelism}",
                        report_latency(tracker, run, args.rate, flink.max_out_of_orderness_s))  # fmt: skip


if __name__ == "__main__":
    main()
