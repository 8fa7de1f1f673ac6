"""End-to-end figures of the analytics job (issue 8): Kafka Avro -> PyFlink local mini-cluster -> ClickHouse.

    .venv/bin/python bench/analytics_e2e.py                                  # the full run (about 20 minutes)
    .venv/bin/python bench/analytics_e2e.py --events 200000 --seconds 15     # a quick run while developing
    .venv/bin/python bench/analytics_e2e.py --parallelism 2 --no-quix --seconds 0   # throughput at parallelism 2
    .venv/bin/python bench/analytics_e2e.py --events 0 --rate 10000          # latency only, at another rate

Needs the platform (`suuupra platform up`) and, for the Quix peer, its venv (`bench/quix_venv.py` creates it on the
first run). Everything is its own and removed at the end: topics (bench-<id>.*, and bench-<id>-lat.* for part c) with
their registry subjects and a services schema (`suuupra.isolation`), one migrated ClickHouse database per job run
(bench_<id>_p<N>, bench_<id>_lat) plus bench_<id>_quix for the peer, one consumer group per run
(bench-<id>-p<N>-analytics, bench-<id>-lat-analytics, bench-<id>-quix) and the checkpoint folders. Each job runs as
`suuupra jobs run analytics` (unbounded) in its own process group, configured through SUUUPRA_* variables
(SUUUPRA_FLINK__PARALLELISM among them) with its own FLINK_LOG_DIR, and is killed (SIGKILL to the group) when its
part is done; `--logs DIR` keeps the job's output and Flink log.

(a) Sustained throughput, once per `--parallelism` value (default 1 and 2). `--events` simulator events (4,000,000 by
default, about 49 hours of event time; the usual mix of `--users` users, out-of-order and late events included, event
times ending two minutes before now) are produced once, before any job starts. A drain of 2,000,000 lasts about 20 s,
and the JIT compiler spent about half a core through its first half compiling the job's per-record code: twice the
backlog shows more of the rate the job sustains once compiled, and the JIT figures below show how much of each drain
was warm-up; the job reads every topic it reads in production
(`jobs.analytics.source_topics`: clickstream, commerce, payment, user, content), so every event except the ledger's
must end up as a row of `raw_events`. Each run is a fresh job with its own database and consumer group on that same
backlog. Every `--sample-s` the script reads the row count of `raw_events` and the lag of the job's consumer group
(end offsets minus committed offsets; Flink commits on each checkpoint, every `--checkpoint-interval` s, so it falls
in steps). Reported: start-up (job start -> first row), events/s over the steady middle (20% -> 80% of the expected
rows), over the whole drain (first row -> all rows) and overall (job start -> all rows); and, the aggregates being
continuously updated upserts, when `content_minute`'s SUM(views) FINAL plus the views in `late_events` stopped
changing (polled every second once every raw_events row is in; final when it equals the views produced or has not
changed for `--settle-s`; "<=" when the first poll already saw the final value). Exactness: that sum must equal the
content_viewed events produced (the backlog holds no malformed record, so every one of them is decodable);
registrations likewise; the other aggregates must have rows; raw_events must hold no duplicate; the dead-letter
topic must stay empty. About half-way through the drain the per-vertex busy / back-pressured time (Flink's REST API
of the mini-cluster) is sampled once: a vertex busy ~1000 ms/s and not back-pressured is the bottleneck. CPU is read
from /proc once a second (bench/cpu_usage.py): over the steady middle, CPU microseconds per event of the job's JVM
(and of its JIT compiler and garbage collector threads), of ClickHouse, of the Kafka broker and of the whole machine,
which move far less with the neighbours' load than events/s do; and the JIT compiler's cores in each half of the
drain, which show how much of the drain the JVM spent compiling the job's code rather than running it. Once every
row is in, the size of the job's latest completed checkpoint (Flink's REST API): the state it keeps, per event read.

(a2) The same backlog through bench/analytics_ceiling_job.py, the job writing raw_events alone (the same source,
decoding, late rule and dead letters; no aggregate), at parallelism 1 after the job's runs (`--no-raw-only` skips it):
its events/s and CPU per event, and the whole job's drain events/s against it. It bounds what any tuning of the
aggregates can give: reading, decoding and writing every event once costs that much by itself.

(b) The same backlog through the Quix Streams peer (`bench/quix_peer.py`, its own venv, consumer group and database;
`--no-quix` skips it), after the job runs, with nothing else of the benchmark running: its events/s (first record ->
last sink flush) against the job's drain events/s at each parallelism, and its views in windows against the views it
consumed (Quix's default 0 ms grace drops most of them on a backlog: measured as is).

(c) Latency at `--rate` events/s, parallelism 1, on topics of its own (so the backlog is not read again). The paced
events (no out-of-order or late ones) are generated and Avro-serialized before the job starts; at send time only the
envelope's event_time (and the record timestamp) is rewritten in place to the send time: one Python producer cannot
generate and serialize 20,000 events/s (the old paced loop reached ~13,000/s here, with no job running). The job is
started, found ready by probe events (a few, one per second, until one shows in raw_events), then the events go out
at `--rate`: `--warmup` s, then `--seconds` s measured. About 40 per second of the measured ones are markers: a poller
asks ClickHouse every `--poll-ms` ms which markers `raw_events` holds (reading only rows from the oldest pending
marker's second on, so the polls cost ClickHouse little), so a marker's latency is send -> row visible (resolution:
one poll; the producer's linger.ms of 20 ms is included). Freshness of the aggregates, with the same
poller: per minute, the first marker of that minute sent -> the minute's first content_minute row visible (only
minutes that began after the markers did; a 60 s measurement has one or two); per content_minute key (minute,
content_id) first viewed in the measured window, its first content_viewed event sent -> its row visible (many
samples). After sending, the script waits (at most `--catch-up-timeout` s) for every marker and key, then for
content_minute to hold every view sent. Reported: the rate asked and achieved, the producer's worst delay behind its
schedule, the job's raw_events rows/s and consumer lag meanwhile (whether it kept up; printed every 5 s while
sending), the percentiles, raw_events rows against distinct event ids, and whether content_minute ended with every
view sent.

Each part's table is printed when the part is done; the summary at the end repeats them with the command line, the
load averages and the job under test (a hash of its Python and Java sources and jars, and the commit: a warning if
they changed between the runs of one invocation). Figures depend on the machine's load: the benchmark's own load
generator shares the cores with the job, so run nothing else heavy meanwhile.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from cpu_usage import CpuWatch
from quix_venv import DEFAULT_ROOT, QuixPeerError, ensure_quix_venv, run_quix_peer

from connectors.clickhouse.server import ServerBackend
from jobs.analytics import source_topics
from schemas import Catalog, default_catalog
from suuupra.clickhouse.migrate import migrate, server_backend
from suuupra.events import EVENT_TYPE_HEADER, EventPublisher
from suuupra.flink_jobs import FlinkRest as ProjectFlinkRest
from suuupra.isolation import isolated_environment
from suuupra.platform.manager import Platform
from suuupra.settings import FlinkSettings, Settings, environment_overrides, load_settings
from suuupra.simulate.journeys import SimulationProfile, generate

SUUUPRA = str(Path(sys.executable).parent / "suuupra")
CEILING_JOB = Path(__file__).resolve().parent / "analytics_ceiling_job.py"
JOB_GROUP_SUFFIX = "analytics"  # jobs/analytics.py: group = <flink.consumer_group_prefix>-analytics
VIEW = "clickstream.content_viewed"
REGISTERED = "user.registered"
MARKERS_PER_SECOND = 40
BACKLOG_END_BEFORE_NOW_MS = 120_000
ENVELOPE_HEADER_BYTES = 5  # Confluent framing: magic byte + schema id
AGGREGATES = {  # table -> the FINAL row count query's extra condition
    "content_minute": "",
    "revenue_minute": "",
    "funnel_hour": "",
    "registrations_minute": "",
    "user_sessions": "WHERE deleted = 0",
    "content_dim": "",
}


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (share in [0, 1]) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(share * len(ordered) + 0.5)))
    return ordered[rank - 1]


def percentiles(values: list[float], shares: tuple[float, ...], unit: str = "ms") -> str:
    if not values:
        return "no samples"
    scale = 1000.0 if unit == "ms" else 1.0
    shown = " / ".join(f"{percentile(values, share) * scale:,.0f}" for share in shares)
    return f"{shown} {unit} (n={len(values):,})"


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {load()}] {message}", flush=True)


# --- the isolated environment ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One job run: the bench's topics, with a database, consumer group, parallelism and folder of its own."""

    label: str
    settings: Settings
    workdir: Path

    @property
    def group_id(self) -> str:
        return f"{self.settings.flink.consumer_group_prefix}-{JOB_GROUP_SUFFIX}"

    @property
    def database(self) -> str:
        return self.settings.clickhouse.database


@contextmanager
def job_target(
    topics: Settings, run_id: str, label: str, parallelism: int, checkpoint_s: float, root: Path
) -> Iterator[Target]:
    workdir = root / label
    workdir.mkdir(parents=True)
    settings = topics.model_copy(
        update={
            "clickhouse": topics.clickhouse.model_copy(update={"database": f"bench_{run_id}_{label}"}),
            "flink": topics.flink.model_copy(
                update={
                    "parallelism": parallelism,
                    "checkpoint_interval_s": checkpoint_s,
                    "checkpoint_dir": workdir / "checkpoints",
                    "consumer_group_prefix": f"bench-{run_id}-{label}",
                }
            ),
        }
    )
    target = Target(label, settings, workdir)
    backend = server_backend(settings)
    admin = AdminClient(settings.kafka.client_config())
    try:
        migrate(backend, target.database)
        yield target
    finally:
        with suppress(Exception):
            backend.query(f"DROP DATABASE IF EXISTS {target.database}")
        backend.close()
        with suppress(Exception):
            admin.delete_consumer_groups([target.group_id])[target.group_id].result(timeout=30)


# --- the job --------------------------------------------------------------------------------------------------------

# The last one, the built jars, is not in git.
JOB_SOURCES = (
    "jobs",
    "connectors/flink",
    "connectors/jvm/src",
    "suuupra/settings.py",
    "bench/analytics_ceiling_job.py",
    ".platform/lib/flink",
)


def job_fingerprint() -> str:
    """A short hash of what a job run executes (its Python, the JVM functions' sources, the jars), and the commit."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for name in JOB_SOURCES:
        path = root / name
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if file.is_file() and file.suffix in (".py", ".java", ".jar"):
                digest.update(str(file.relative_to(root)).encode() + b"\0" + file.read_bytes())
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", *JOB_SOURCES[:-1]],
                               capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "?", ""
    return f"{digest.hexdigest()[:10]} (commit {commit}{', with uncommitted changes' if dirty else ''})"


class FlinkRest:
    """The REST API of the job's local mini-cluster (a random port, named in its Flink log); best effort."""

    ADDRESS = re.compile(rb"Rest endpoint listening at ([\w.\-]+):(\d+)")

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.base: str | None = None

    def _get(self, path: str) -> Any:
        if self.base is None:
            for log_file in sorted(self.log_dir.glob("*.log")):
                if found := self.ADDRESS.search(log_file.read_bytes()):
                    self.base = f"http://{found.group(1).decode()}:{found.group(2).decode()}"
            if self.base is None:
                raise LookupError(f"no REST address in {self.log_dir}")
        with urllib.request.urlopen(self.base + path, timeout=10) as response:
            return json.load(response)

    def _running_job(self) -> str | None:
        running = [job["id"] for job in self._get("/jobs")["jobs"] if job["status"] == "RUNNING"]
        return running[0] if running else None

    def checkpointed_bytes(self) -> int | None:
        """The full size of the running job's latest completed checkpoint (every operator's state), if any."""
        job_id = self._running_job()
        if job_id is None or self.base is None:
            return None
        return ProjectFlinkRest(self.base).checkpoints(job_id).state_bytes

    def vertex_load(self) -> list[str]:
        """Per vertex: busy and back-pressured ms per second (average and maximum over its subtasks)."""
        job_id = self._running_job()
        if job_id is None:
            return ["no running job"]
        lines = []
        for vertex in self._get(f"/jobs/{job_id}")["vertices"]:
            metrics = self._get(
                f"/jobs/{job_id}/vertices/{vertex['id']}/subtasks/metrics"
                "?get=busyTimeMsPerSecond,backPressuredTimeMsPerSecond&agg=avg,max"
            )
            by_name = {metric["id"]: metric for metric in metrics}
            busy, pressured = by_name.get("busyTimeMsPerSecond", {}), by_name.get("backPressuredTimeMsPerSecond", {})
            lines.append(
                f"busy {busy.get('avg', float('nan')):4.0f}/{busy.get('max', float('nan')):4.0f}  "
                f"back-pressured {pressured.get('avg', float('nan')):4.0f}/{pressured.get('max', float('nan')):4.0f}"
                f"  x{vertex['parallelism']}  {short_vertex_name(vertex['name'])}"
            )
        return lines


def short_vertex_name(name: str, width: int = 400) -> str:
    operators = [part.strip() for part in name.split("->")]
    text = " -> ".join(operators)
    if len(text) <= width:
        return text
    return f"{operators[0][:45]} -> ... ({len(operators) - 2} more) -> {operators[-1][:45]}"


@dataclass
class RunningJob:
    process: subprocess.Popen[bytes]
    started: float  # perf_counter at launch
    rest: FlinkRest

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"the analytics job exited with code {self.process.returncode}")


@contextmanager
def running_job(target: Target, keep_logs: Path | None, command: list[str] | None = None) -> Iterator[RunningJob]:
    log_path = target.workdir / "job.log"
    flink_logs = target.workdir / "flink-log"
    environment = {
        **os.environ,
        **environment_overrides(target.settings, "topics", "clickhouse", "flink"),
        "FLINK_LOG_DIR": str(flink_logs),
    }
    with log_path.open("wb") as output:
        process = subprocess.Popen(command or [SUUUPRA, "jobs", "run", "analytics"], env=environment,
                                   start_new_session=True, stdout=output, stderr=subprocess.STDOUT)  # fmt: skip
    job = RunningJob(process, time.perf_counter(), FlinkRest(flink_logs))
    try:
        yield job
    finally:
        if process.poll() is not None and process.returncode != -signal.SIGKILL:
            print(f"the job exited with {process.returncode}; its output ended with:")
            print(log_path.read_text(errors="replace")[-4000:])
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
        if keep_logs is not None:
            kept = keep_logs / target.label
            kept.mkdir(parents=True, exist_ok=True)
            shutil.copy2(log_path, kept / "job.log")
            if flink_logs.is_dir():
                shutil.copytree(flink_logs, kept / "flink-log", dirs_exist_ok=True)


class ClickHouseReads:
    def __init__(self, settings: Settings) -> None:
        self.database = settings.clickhouse.database
        self.backend: ServerBackend = server_backend(settings, send_receive_timeout_s=300)

    def scalar(self, sql: str) -> int:
        return int(self.backend.query(sql.format(db=self.database)).rows[0][0] or 0)

    def raw_rows(self) -> int:
        # Without FINAL: cheap; a row written twice (none without a restore) counts twice until a merge.
        return self.scalar("SELECT count() FROM {db}.raw_events")

    def views_counted(self) -> tuple[int, int]:
        """SUM(views) in content_minute FINAL, and the content_viewed events in late_events FINAL."""
        views = self.scalar("SELECT sum(views) FROM {db}.content_minute FINAL")
        late = self.scalar(f"SELECT count() FROM {{db}}.late_events FINAL WHERE event_type = '{VIEW}'")
        return views, late

    def close(self) -> None:
        self.backend.close()


def _coordinator_busy(error: KafkaError) -> bool:
    return error.retriable() or error.code() in (
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
    )


class GroupLag:
    """End offsets minus the group's committed offsets over the job's source partitions (all of it before a commit)."""

    def __init__(self, target: Target) -> None:
        config = {**target.settings.kafka.client_config(), "group.id": target.group_id, "enable.auto.commit": False}
        self.consumer = Consumer(config)
        admin = AdminClient(target.settings.kafka.client_config())
        metadata = admin.list_topics(timeout=30)
        self.partitions = [
            TopicPartition(topic, partition)
            for topic in source_topics(target.settings)
            for partition in metadata.topics[topic].partitions
        ]

    def lag(self) -> int:
        committed = self._committed()
        total = 0
        for position in committed:
            low, high = self.consumer.get_watermark_offsets(
                TopicPartition(position.topic, position.partition), timeout=30, cached=False
            )
            total += high - (position.offset if position.offset >= 0 else low)
        return total

    def _committed(self, attempts: int = 5) -> list[TopicPartition]:
        """The group's committed offsets, asked again while a fresh broker's coordinator moves or loads."""
        for attempt in range(attempts):
            try:
                return self.consumer.committed(self.partitions, timeout=30)
            except KafkaException as error:
                if attempt == attempts - 1 or not _coordinator_busy(error.args[0]):
                    raise
                time.sleep(1.0)
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.consumer.close()


def topic_records(settings: Settings, topic: str) -> int:
    """Records in a topic (end offsets minus start offsets)."""
    consumer = Consumer({**settings.kafka.client_config(), "group.id": f"bench-probe-{uuid.uuid4().hex[:8]}"})
    try:
        metadata = consumer.list_topics(topic, timeout=30)
        total = 0
        for partition in metadata.topics[topic].partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30, cached=False)
            total += high - low
        return total
    finally:
        consumer.close()


# --- (a) throughput -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backlog:
    produced: int
    for_job: int  # events on the topics the job reads: the rows raw_events must end up with
    views: int  # content_viewed events (all decodable: the backlog has no malformed record)
    registrations: int
    tagged_late: int  # events the simulator emitted much later than their event time
    seconds: float
    first_ms: int
    last_ms: int


def produce_backlog(settings: Settings, catalog: Catalog, count: int, users: int, seed: int) -> Backlog:
    # First pass: how much event time `count` events span, so that the second pass can end them just before now.
    probe = SimulationProfile(seed=seed, users=users)
    span_ms = max(e.value["event_time"] for e in generate(probe, count)) - probe.start_time_ms
    start_ms = int(time.time() * 1000) - span_ms - BACKLOG_END_BEFORE_NOW_MS
    profile = SimulationProfile(seed=seed, users=users, start_time_ms=start_ms)
    publisher = EventPublisher(settings, catalog)
    wanted = set(source_topics(settings))
    for_job = views = registrations = tagged_late = 0
    first_ms, last_ms = sys.maxsize, 0
    began = time.perf_counter()
    for event in generate(profile, count):
        topic = publisher.publish(event.value)
        if topic in wanted:
            for_job += 1
            views += event.event_type == VIEW
            registrations += event.event_type == REGISTERED
            tagged_late += "late" in event.tags
        first_ms, last_ms = min(first_ms, event.value["event_time"]), max(last_ms, event.value["event_time"])
    publisher.flush(timeout=600)
    return Backlog(count, for_job, views, registrations, tagged_late, time.perf_counter() - began, first_ms, last_ms)


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the job was started
    rows: int
    lag: int


@dataclass(frozen=True)
class Settled:
    views: int  # SUM(views) in content_minute FINAL
    late_views: int
    at: float | None  # seconds after job start when that value was first seen (None: it never stopped changing)
    at_first_poll: bool  # ... which was the first poll: the value was final by then already
    polls: int
    seconds_per_poll: float


class ViewsWatch:
    """SUM(views) in content_minute FINAL plus the views in late_events, polled: when the value last changed.

    Final once it equals the views sent (nothing else can arrive) or has not changed for `settle_s`.
    """

    def __init__(self, reads: ClickHouseReads, expected: int, settle_s: float) -> None:
        self.reads, self.expected, self.settle_s = reads, expected, settle_s
        self.value: tuple[int, int] | None = None
        self.changed_at = self.polled_at = 0.0
        self.polls, self.query_s = 0, 0.0
        self.changes = 0

    def poll(self, t: float) -> None:
        began = time.perf_counter()
        current = self.reads.views_counted()
        self.polls, self.query_s = self.polls + 1, self.query_s + time.perf_counter() - began
        if current != self.value:
            self.value, self.changed_at = current, t
            self.changes += 1
        self.polled_at = t

    @property
    def total(self) -> int:
        return sum(self.value) if self.value else 0

    @property
    def final(self) -> bool:
        return self.value is not None and (
            self.total == self.expected or self.polled_at - self.changed_at >= self.settle_s
        )

    def settled(self) -> Settled:
        views, late = self.value or (0, 0)
        at = self.changed_at if self.final else None
        return Settled(views, late, at, self.changes == 1, self.polls, self.query_s / max(self.polls, 1))


@dataclass
class Drain:
    samples: list[Sample]
    settled: Settled | None = None
    vertex_load: list[str] = field(default_factory=list)  # sampled half-way through
    vertex_load_at: float = 0.0
    cpu: CpuWatch | None = None  # CPU seconds of the job, ClickHouse, Kafka, the machine, once a second
    state_bytes: int | None = None  # the latest completed checkpoint once every row is in: how much state it keeps


def drain(
    target: Target, job: RunningJob, backlog: Backlog, sample_s: float, settle_s: float, timeout_s: float
) -> Drain:
    """Samples raw_events rows and the group lag until all rows are in, the lag is 0 and the views are final."""
    expected = backlog.for_job
    counts, lag = ClickHouseReads(target.settings), GroupLag(target)
    watch = ViewsWatch(counts, backlog.views, settle_s)
    cpu = CpuWatch(target.settings, job.process.pid, job.started).start()
    result = Drain([], cpu=cpu)
    snapshot: threading.Thread | None = None

    def take_snapshot(at: float) -> None:
        try:
            job.rest.vertex_load()  # the REST API fetches metrics on demand: the first answer can be empty or stale
            time.sleep(3)
            result.vertex_load = job.rest.vertex_load()
        except Exception as error:  # diagnostics only
            result.vertex_load = [f"not available: {type(error).__name__}: {error}"]
        result.vertex_load_at = at

    samples = result.samples
    last_print = -10.0
    try:
        while True:
            job.check_alive()
            t = time.perf_counter() - job.started
            samples.append(Sample(t, counts.raw_rows(), lag.lag()))
            now = samples[-1]
            if snapshot is None and now.rows >= 0.45 * expected:
                snapshot = threading.Thread(target=take_snapshot, args=(now.t,), daemon=True)
                snapshot.start()
            complete = now.rows >= expected
            if complete and now.t - watch.polled_at >= 1.0:
                watch.poll(now.t)
            if now.t - last_print >= 5 or (complete and watch.polls == 1):
                before = next((s for s in reversed(samples[:-1]) if now.t - s.t >= 4.5), samples[0])
                rate = (now.rows - before.rows) / (now.t - before.t) if now.t > before.t else 0.0
                views = f"  views {watch.total:,}/{backlog.views:,}" if watch.polls else ""
                print(
                    f"  t={now.t:6.1f} s  raw_events {now.rows:>10,}/{expected:,}  ({rate:>8,.0f}/s)  "
                    f"lag {now.lag:>10,}{views}  load {load()}",
                    flush=True,
                )
                last_print = now.t
            if complete and now.lag == 0 and watch.final:
                break
            if now.t > timeout_s:
                print(f"  gave up after {timeout_s:.0f} s")
                break
            time.sleep(sample_s)
        result.settled = watch.settled()
        try:
            result.state_bytes = job.rest.checkpointed_bytes()
        except Exception as error:  # diagnostics only
            print(f"  checkpoint size not available: {type(error).__name__}: {error}")
    finally:
        cpu.stop()
        counts.close()
        lag.close()
    if snapshot is not None:
        snapshot.join(60)
    return result


def wait_for_aggregates(target: Target, job: RunningJob, expected: int, settle_s: float, timeout_s: float) -> Settled:
    """Polls the views every second until final (see `ViewsWatch`) or `timeout_s`."""
    reads = ClickHouseReads(target.settings)
    watch = ViewsWatch(reads, expected, settle_s)
    began = time.perf_counter()
    last_print = 0.0
    try:
        while True:
            job.check_alive()
            now = time.perf_counter()
            watch.poll(now - job.started)
            if watch.final or now - began > timeout_s:
                return watch.settled()
            if now - last_print >= 5:
                print(f"  content_minute views + late {watch.total:,}/{expected:,}  load {load()}", flush=True)
                last_print = now
            time.sleep(max(0.0, 1.0 - (time.perf_counter() - now)))
    finally:
        reads.close()


@dataclass
class ThroughputRun:
    parallelism: int
    drain: Drain
    settled: Settled
    aggregate_rows: dict[str, int]
    late_rows: int
    raw_rows: int
    raw_distinct: int
    registrations: int  # SUM(registrations) FINAL
    late_registrations: int
    fingerprint: str
    figures: dict[str, float | None] = field(default_factory=dict)


def measure_throughput(
    topics: Settings,
    run_id: str,
    backlog: Backlog,
    parallelism: int,
    args: argparse.Namespace,
    root: Path,
    raw_events_only: bool = False,
) -> ThroughputRun:
    """One drain of the backlog by the job (or, `raw_events_only`, by bench/analytics_ceiling_job.py)."""
    label = "raw_only" if raw_events_only else f"p{parallelism}"
    command = [sys.executable, str(CEILING_JOB)] if raw_events_only else None
    with job_target(topics, run_id, label, parallelism, args.checkpoint_interval, root) as target:
        what = "the job writing raw_events alone" if raw_events_only else f"parallelism {parallelism}: the job"
        log(f"(a) {what}: starting (database {target.database}, group {target.group_id})")
        fingerprint = job_fingerprint()
        with running_job(target, args.logs, command) as job:
            result = drain(target, job, backlog, args.sample_s, args.settle_s, args.timeout)
        reads = ClickHouseReads(target.settings)
        try:
            aggregate_rows = {
                table: reads.scalar(f"SELECT count() FROM {{db}}.{table} FINAL {condition}")
                for table, condition in AGGREGATES.items()
            }
            assert result.settled is not None
            run = ThroughputRun(
                parallelism,
                result,
                result.settled,
                aggregate_rows,
                late_rows=reads.scalar("SELECT count() FROM {db}.late_events FINAL"),
                raw_rows=reads.raw_rows(),
                raw_distinct=reads.scalar("SELECT uniqExact(event_id) FROM {db}.raw_events"),
                registrations=reads.scalar("SELECT sum(registrations) FROM {db}.registrations_minute FINAL"),
                late_registrations=reads.scalar(
                    f"SELECT count() FROM {{db}}.late_events FINAL WHERE event_type = '{REGISTERED}'"
                ),
                fingerprint=fingerprint,
            )
        finally:
            reads.close()
    run.figures = throughput_figures(backlog, run)
    return run


def first_at(samples: list[Sample], condition: Callable[[Sample], bool]) -> Sample | None:
    return next((s for s in samples if condition(s)), None)


def throughput_figures(backlog: Backlog, run: ThroughputRun) -> dict[str, float | None]:
    samples, expected = run.drain.samples, backlog.for_job
    first = first_at(samples, lambda s: s.rows > 0)
    low = first_at(samples, lambda s: s.rows >= 0.2 * expected)
    high = first_at(samples, lambda s: s.rows >= 0.8 * expected)
    done = first_at(samples, lambda s: s.rows >= expected)
    figures: dict[str, float | None] = {
        "startup_s": first.t if first else None,
        "steady": (high.rows - low.rows) / (high.t - low.t) if low and high and high.t > low.t else None,
        "drain": (expected - first.rows) / max(done.t - first.t, 1e-9) if first and done else None,
        "overall": expected / done.t if done else None,
        "all_rows_s": done.t if done else None,
        "aggregates_s": run.settled.at,
        "state_bytes_per_event": run.drain.state_bytes / expected if run.drain.state_bytes is not None else None,
    }
    cpu = run.drain.cpu
    steady = cpu.between(low.t, high.t) if cpu and low and high else None
    if steady is not None and low and high and high.rows > low.rows:
        events = high.rows - low.rows
        figures |= {
            f"cpu_us_{name}": 1e6 * getattr(steady, name) / events
            for name in ("job", "jit", "gc", "clickhouse", "kafka", "machine")
        }
        figures["job_cores"] = steady.job / steady.t
    if cpu and first and done:
        middle = (first.t + done.t) / 2
        for half, (start, end) in {"first": (first.t, middle), "second": (middle, done.t)}.items():
            used = cpu.between(start, end)
            figures[f"jit_cores_{half}_half"] = used.jit / used.t if used else None
    return figures


def lag_summary(samples: list[Sample]) -> str:
    lags = [s.lag for s in samples]
    increases = [(a, b) for a, b in itertools.pairwise(samples) if b.lag > a.lag]
    caught_up = first_at(samples, lambda s: s.lag == 0 and s.rows > 0)
    text = f"{lags[0]:,} -> {lags[-1]:,}, " + (
        "only ever shrank"
        if not increases
        else f"grew {len(increases)} time(s), e.g. "
        + ", ".join(f"{a.lag:,} -> {b.lag:,} at {b.t:.0f} s" for a, b in increases[:2])
    )
    return text + (f"; 0 at {caught_up.t:.1f} s" if caught_up else "")


# --- (b) the Quix Streams peer --------------------------------------------------------------------------------------


def measure_quix(topics: Settings, run_id: str, backlog: Backlog, timeout_s: float) -> dict[str, Any]:
    log("(b) Quix peer: preparing its venv ...")
    python = ensure_quix_venv(DEFAULT_ROOT)
    clickhouse = topics.clickhouse
    database = f"bench_{run_id}_quix"
    peer_args = [
        "--bootstrap", topics.kafka.bootstrap,
        "--registry-url", topics.registry.ccompat_url,
        "--topics", ",".join(source_topics(topics)),
        "--views-topics", topics.topics.clickstream,
        "--clickhouse-host", clickhouse.host,
        "--clickhouse-port", str(clickhouse.port),
        "--clickhouse-user", clickhouse.user,
        "--clickhouse-password", clickhouse.password.get_secret_value(),
        "--database", database,
        "--group-id", f"bench-{run_id}-quix",
        "--expected-events", str(backlog.for_job),
        "--timeout-s", str(timeout_s),
        "--loglevel", "WARNING",
    ]  # fmt: skip
    log(f"(b) Quix peer: consuming the backlog (database {database}, group bench-{run_id}-quix) ...")
    try:
        return run_quix_peer(python, peer_args, timeout_s + 300)
    finally:
        backend = server_backend(topics)
        with suppress(Exception):
            backend.query(f"DROP DATABASE IF EXISTS {database}")
        backend.close()


# --- (c) latency and freshness --------------------------------------------------------------------------------------


def avro_long(value: int) -> bytes:
    """Avro's encoding of a long: zig-zag, then little-endian base-128 varint."""
    number = (value << 1) ^ (value >> 63)
    out = bytearray()
    while number & ~0x7F:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def skip_avro_string(buffer: bytes, position: int) -> int:
    """The position after the Avro string (varint length + bytes) at `position`."""
    length, shift = 0, 0
    while True:
        byte = buffer[position]
        position += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return position + ((length >> 1) ^ -(length & 1))


@dataclass
class Prepared:
    """Serialized paced events; `time_at[i]` is where event i's event_time (`width` bytes) sits in `values[i]`."""

    topics: list[str] = field(default_factory=list)
    keys: list[bytes] = field(default_factory=list)
    values: list[bytes] = field(default_factory=list)
    time_at: list[int] = field(default_factory=list)
    headers: list[list[tuple[str, bytes]]] = field(default_factory=list)
    view_content: list[str | None] = field(default_factory=list)  # content_id of content_viewed events
    markers: dict[int, str] = field(default_factory=dict)  # index -> event_id
    for_job: list[bool] = field(default_factory=list)
    width: int = 0
    seconds: float = 0.0


def prepare_paced(
    settings: Settings, catalog: Catalog, count: int, marker_range: range, rate: float, users: int, seed: int
) -> Prepared:
    """`count` events of the usual mix (no out-of-order, no late ones), serialized with a placeholder event_time.

    The envelope's first fields are event_id (a uuid string), event_type (a string), event_time (a long): the
    placeholder's bytes are found there (checked), so the sender rewrites them with the send time in place. Any epoch
    milliseconds from 2^34 to 2^41 (mid-1970 to 2039) encode in the same 6 bytes.
    """
    began = time.perf_counter()
    placeholder = int(time.time() * 1000)
    encoded = avro_long(placeholder)
    publisher = EventPublisher(settings, catalog)
    serializer = publisher.producer.serializer
    wanted = set(source_topics(settings))
    every = max(1, round(rate / MARKERS_PER_SECOND))
    headers: dict[str, list[tuple[str, bytes]]] = {}
    prepared = Prepared(width=len(encoded))
    profile = SimulationProfile(seed=seed, users=users, start_time_ms=placeholder, out_of_order_share=0.0,
                                late_share=0.0)  # fmt: skip
    job_events = 0
    for index, event in enumerate(generate(profile, count)):
        schema = catalog.schema_for(event.event_type)
        topic = settings.topics.resolve(schema.topic)
        value = serializer.serialize(topic, schema.schema, {**event.value, "event_time": placeholder})
        at = skip_avro_string(value, skip_avro_string(value, ENVELOPE_HEADER_BYTES))
        if value[at : at + len(encoded)] != encoded:
            raise RuntimeError(f"event_time of a {event.event_type} is not where the envelope puts it")
        prepared.topics.append(topic)
        prepared.keys.append(str(event.value["user_id"]).encode())
        prepared.values.append(value)
        prepared.time_at.append(at)
        prepared.headers.append(headers.setdefault(event.event_type, [(EVENT_TYPE_HEADER, event.event_type.encode())]))
        prepared.view_content.append(str(event.value["content_id"]) if event.event_type == VIEW else None)
        prepared.for_job.append(topic in wanted)
        if topic in wanted:
            job_events += 1
            if index in marker_range and job_events % every == 0:
                prepared.markers[index] = str(event.value["event_id"])
    prepared.seconds = time.perf_counter() - began
    return prepared


class Tracker:
    """Send times of markers and of each content_minute key's first view; when each became visible in ClickHouse."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent: dict[str, float] = {}  # marker event_id -> send time
        self.seen: dict[str, float] = {}
        self.first_marker: dict[int, float] = {}  # minute start (epoch s) -> send time of its first marker
        self.key_sent: dict[tuple[int, str], float] = {}  # (minute, content_id) first viewed in the measured window
        self.minute_seen: dict[int, float] = {}  # minute -> its first content_minute row visible
        self.key_seen: dict[tuple[int, str], float] = {}
        self.polls = 0
        self.poll_seconds = 0.0
        self.progress: list[tuple[float, int, int]] = []  # (time, raw_events rows, group lag), about every second
        self.sent_events = 0  # written by the sender only

    def sent_marker(self, event_id: str, at: float) -> None:
        with self.lock:
            self.sent[event_id] = at
            self.first_marker.setdefault(int(at) - int(at) % 60, at)

    def sent_view(self, content_id: str, at: float) -> None:
        key = (int(at) - int(at) % 60, content_id)
        if key not in self.key_sent:  # only the sending thread writes key_sent
            with self.lock:
                self.key_sent[key] = at

    def pending(self) -> list[str]:
        with self.lock:
            return [event_id for event_id in self.sent if event_id not in self.seen]

    def keys_pending(self) -> int:
        with self.lock:
            return sum(1 for key in self.key_sent if key not in self.key_seen)


def poll_clickhouse(
    settings: Settings, tracker: Tracker, since_s: int, interval_s: float, stop: threading.Event
) -> None:
    database = settings.clickhouse.database
    backend = server_backend(settings)
    first_minute = since_s - since_s % 60
    try:
        while not stop.is_set():
            began = time.time()
            with tracker.lock:
                pending = {event_id: at for event_id, at in tracker.sent.items() if event_id not in tracker.seen}
            visible: list[str] = []
            if pending:
                # Only rows at or after the oldest pending marker's event time (its send time, in whole seconds): a
                # few seconds of rows, not the whole table, so the polls cost ClickHouse little.
                oldest = int(min(pending.values())) - 1
                ids = ", ".join(f"'{event_id}'" for event_id in pending)  # uuids: nothing to escape
                visible = [row[0] for row in backend.query(
                    f"SELECT event_id FROM {database}.raw_events PREWHERE event_time >= toDateTime({oldest}) "
                    f"WHERE event_id IN ({ids})").rows]  # fmt: skip
            keys = backend.query(
                f"SELECT DISTINCT toUInt32(window_start), content_id FROM {database}.content_minute "
                f"WHERE window_start >= toDateTime({max(first_minute, int(began) - int(began) % 60 - 120)})"
            ).rows
            with tracker.lock:
                for event_id in visible:
                    tracker.seen.setdefault(event_id, began)
                for minute, content_id in keys:
                    tracker.minute_seen.setdefault(int(minute), began)
                    tracker.key_seen.setdefault((int(minute), str(content_id)), began)
                tracker.polls += 1
                tracker.poll_seconds += time.time() - began
            stop.wait(max(0.0, interval_s - (time.time() - began)))
    finally:
        backend.close()


def sample_progress(target: Target, tracker: Tracker, stop: threading.Event) -> None:
    """The job's raw_events rows and consumer-group lag about every second (the lag moves on each checkpoint)."""
    reads, lag = ClickHouseReads(target.settings), GroupLag(target)
    first = time.time()
    last_print = 0.0
    try:
        while not stop.is_set():
            began = time.time()
            sample = (began, reads.raw_rows(), lag.lag())
            with tracker.lock:
                tracker.progress.append(sample)
                pending = sum(1 for event_id in tracker.sent if event_id not in tracker.seen)
            if began - last_print >= 5:
                print(f"  t={began - first:6.1f} s  sent {tracker.sent_events:>10,}  raw_events {sample[1]:>10,}  "
                      f"lag {sample[2]:>9,}  markers pending {pending:>5,}  load {load()}", flush=True)  # fmt: skip
                last_print = began
            stop.wait(max(0.0, 1.0 - (time.time() - began)))
    finally:
        reads.close()
        lag.close()


@dataclass
class PacedRun:
    produced: int = 0
    for_job: int = 0
    views: int = 0
    began: float = 0.0
    main_start: float = 0.0  # first marker's index reached
    main_end: float = 0.0
    main_produced: int = 0
    end: float = 0.0
    worst_behind_s: float = 0.0  # the producer's largest delay behind its schedule


def send_paced(publisher: EventPublisher, prepared: Prepared, tracker: Tracker, rate: float, main: range) -> PacedRun:
    """Sends the prepared events at `rate`/s, each stamped with its send time (event time = record timestamp)."""
    producer = publisher.producer
    width = prepared.width
    run = PacedRun()
    began = run.began = time.time()
    for index in range(len(prepared.values)):
        due = began + index / rate
        now = time.time()
        if due > now + 0.0005:
            time.sleep(due - now)
        sent = time.time()
        run.worst_behind_s = max(run.worst_behind_s, sent - due)
        sent_ms = int(sent * 1000)
        stamp = avro_long(sent_ms)
        if len(stamp) != width:
            raise RuntimeError("send time outside the placeholder's encoded width")
        value, at = prepared.values[index], prepared.time_at[index]
        producer.produce_raw(prepared.topics[index], prepared.keys[index], value[:at] + stamp + value[at + width :],
                             prepared.headers[index], sent_ms)  # fmt: skip
        run.produced += 1
        tracker.sent_events = run.produced
        run.for_job += prepared.for_job[index]
        if index == main.start:
            run.main_start = sent
        if index in main:
            run.main_produced += 1
            run.main_end = sent
        content_id = prepared.view_content[index]
        if content_id is not None:
            run.views += 1
            tracker.sent_view(content_id, sent)
        if (marker := prepared.markers.get(index)) is not None:
            tracker.sent_marker(marker, sent)
    publisher.flush(timeout=60)
    run.end = time.time()
    return run


def wait_until_ready(
    target: Target,
    job: RunningJob,
    publisher: EventPublisher,
    tracker: Tracker,
    users: int,
    seed: int,
    timeout_s: float,
) -> tuple[int, int, float]:
    """Sends one probe event per second (event time = now) until one is in raw_events: (probes, probe views, s)."""
    reads = ClickHouseReads(target.settings)
    profile = SimulationProfile(seed=seed, users=users, start_time_ms=int(time.time() * 1000),
                                out_of_order_share=0.0, late_share=0.0)  # fmt: skip
    wanted = set(source_topics(target.settings))
    probes = views = 0
    try:
        for event in generate(profile, 100_000):
            job.check_alive()
            sent = time.time()
            if publisher.publish({**event.value, "event_time": int(sent * 1000)}) not in wanted:
                continue
            probes += 1
            if event.event_type == VIEW:
                views += 1
                tracker.sent_view(str(event.value["content_id"]), sent)
            publisher.flush(timeout=30)
            if reads.raw_rows() > 0:
                return probes, views, time.perf_counter() - job.started
            if time.perf_counter() - job.started > timeout_s:
                raise RuntimeError(f"the job wrote nothing within {timeout_s:.0f} s")
            time.sleep(1.0)
        raise RuntimeError("ran out of probe events")
    finally:
        reads.close()


@dataclass
class LatencyRun:
    prepared_events: int
    prepared_s: float
    ready_s: float
    probes: int
    run: PacedRun
    tracker: Tracker
    settled: Settled
    views_expected: int
    markers: int
    rows_expected: int  # probes and paced events on the job's topics
    raw_rows: int
    raw_distinct: int
    fingerprint: str


def measure_latency(topics: Settings, run_id: str, args: argparse.Namespace, root: Path) -> LatencyRun:
    rate = args.rate
    total = int(rate * (args.warmup + args.seconds))
    main = range(int(rate * args.warmup), total)
    catalog = default_catalog()
    log(f"(c) preparing {total:,} events ({args.warmup:.0f} s + {args.seconds:.0f} s at {rate:,.0f}/s) ...")
    prepared = prepare_paced(topics, catalog, total, main, rate, args.users, args.seed + 1000)
    log(f"(c) prepared in {prepared.seconds:.1f} s; {len(prepared.markers):,} markers")
    with job_target(topics, run_id, "lat", 1, args.checkpoint_interval, root) as target:
        log(f"(c) starting the job at parallelism 1 (database {target.database}) ...")
        publisher = EventPublisher(target.settings, catalog)
        tracker, stop = Tracker(), threading.Event()
        fingerprint = job_fingerprint()
        with running_job(target, args.logs) as job:
            probes, probe_views, ready_s = wait_until_ready(target, job, publisher, tracker, args.users,
                                                            args.seed + 2000, args.timeout)  # fmt: skip
            log(f"(c) job ready {ready_s:.1f} s after its start ({probes} probe events); sending ...")
            threads = [
                threading.Thread(target=poll_clickhouse, daemon=True,
                                 args=(target.settings, tracker, int(time.time()), args.poll_ms / 1000, stop)),
                threading.Thread(target=sample_progress, args=(target, tracker, stop), daemon=True),
            ]  # fmt: skip
            for thread in threads:
                thread.start()
            try:
                run = send_paced(publisher, prepared, tracker, rate, main)
                log(f"(c) sent {run.produced:,} events in {run.end - run.began:.1f} s; waiting for every marker "
                    f"(at most {args.catch_up_timeout:.0f} s) ...")  # fmt: skip
                deadline = time.time() + args.catch_up_timeout
                while (tracker.pending() or tracker.keys_pending()) and time.time() < deadline:
                    job.check_alive()
                    time.sleep(0.2)
            finally:
                stop.set()
                for thread in threads:
                    thread.join(30)
            views_expected = probe_views + run.views
            settled = wait_for_aggregates(target, job, views_expected, args.settle_s, args.catch_up_timeout)
        reads = ClickHouseReads(target.settings)
        try:
            raw_rows = reads.raw_rows()
            raw_distinct = reads.scalar("SELECT uniqExact(event_id) FROM {db}.raw_events")
        finally:
            reads.close()
    return LatencyRun(total, prepared.seconds, ready_s, probes, run, tracker, settled, views_expected,
                      len(prepared.markers), probes + run.for_job, raw_rows, raw_distinct, fingerprint)  # fmt: skip


def latency_figures(latency: LatencyRun, rate: float) -> dict[str, str]:
    tracker, run = latency.tracker, latency.run
    with tracker.lock:
        marker_latencies = [tracker.seen[i] - sent for i, sent in tracker.sent.items() if i in tracker.seen]
        missing = len(tracker.sent) - len(marker_latencies)
        minutes = {m: at for m, at in tracker.first_marker.items() if m >= run.main_start}
        minute_fresh = {m: tracker.minute_seen[m] - at for m, at in minutes.items() if m in tracker.minute_seen}
        # Keys first viewed while measured (not by a warm-up or probe event, whose row may be there already).
        measured_keys = {k: at for k, at in tracker.key_sent.items() if at >= run.main_start}
        key_fresh = [tracker.key_seen[k] - at for k, at in measured_keys.items() if k in tracker.key_seen]
        keys_missing = len(measured_keys) - len(key_fresh)
        poll_ms = tracker.poll_seconds / max(tracker.polls, 1) * 1000
        polls = tracker.polls
        progress = list(tracker.progress)
    main_s = max(run.main_end - run.main_start, 1e-9)
    measured = [p for p in progress if run.main_start <= p[0] <= run.main_end]
    job_rate = (measured[-1][1] - measured[0][1]) / (measured[-1][0] - measured[0][0]) if len(measured) > 1 else None
    at_end = min(progress, key=lambda p: abs(p[0] - run.end)) if progress else None
    per_minute = ", ".join(
        f"{time.strftime('%H:%M', time.gmtime(m))} {fresh:.1f} s" for m, fresh in sorted(minute_fresh.items())
    )
    never = [time.strftime("%H:%M", time.gmtime(m)) for m in minutes if m not in minute_fresh]
    settled = latency.settled
    counted = settled.views + settled.late_views
    return {
        "events prepared (generated + serialized before the job starts)": f"{latency.prepared_events:,} in "
        f"{latency.prepared_s:.1f} s",
        "job ready (start -> first probe row)": f"{latency.ready_s:.1f} s",
        "rate asked / achieved, whole paced phase": f"{rate:,.0f} / {rate_text(run)}",
        "achieved while measured": f"{run.main_produced / main_s:,.0f} events/s over {main_s:.1f} s",
        "producer's worst delay behind schedule": f"{run.worst_behind_s * 1000:,.0f} ms",
        "job's raw_events rows/s while measured": number(job_rate),
        "group lag: max while measured / when sending ended": f"{max((p[2] for p in measured), default=0):,} / "
        + (f"{at_end[2]:,}" if at_end else "n/a")
        + " (committed offsets: up to one checkpoint interval of events even when keeping up)",
        "markers": f"{len(tracker.sent):,} sent, {missing} never seen",
        "raw_events latency p50 / p90 / p99 / max": percentiles(marker_latencies, (0.5, 0.9, 0.99, 1.0)),
        "content_minute, per minute (first marker -> first row)": (per_minute or "none visible")
        + (f"; never visible: {', '.join(never)}" if never else ""),
        "content_minute, per minute p50 / p99": percentiles(list(minute_fresh.values()), (0.5, 0.99)),
        "content_minute, per key (first view -> row) p50 / p90 / p99 / max": percentiles(key_fresh,
                                                                                         (0.5, 0.9, 0.99, 1.0))
        + (f"; {keys_missing} keys never seen" if keys_missing else ""),
        "ClickHouse poll": f"{polls:,} polls, {poll_ms:.0f} ms each on average",
        "raw_events rows / distinct / events sent to the job's topics": f"{latency.raw_rows:,} / "
        f"{latency.raw_distinct:,} / {latency.rows_expected:,}",
        "views sent / in content_minute FINAL + late": f"{latency.views_expected:,} / {settled.views:,} + "
        f"{settled.late_views:,} ({'exact' if counted == latency.views_expected else 'MISMATCH'})",
    }  # fmt: skip


def rate_text(run: PacedRun) -> str:
    seconds = max(run.end - run.began, 1e-9)
    return f"{run.produced:,} events in {seconds:.1f} s = {run.produced / seconds:,.0f} events/s"


# --- the report -----------------------------------------------------------------------------------------------------


def print_rows(title: str, rows: dict[str, str]) -> None:
    print(f"\n{title}")
    width = max(len(key) for key in rows)
    for key, value in rows.items():
        print(f"  {key:<{width}}  {value}")


def print_grid(title: str, header: list[str], rows: list[list[str]]) -> None:
    print(f"\n{title}")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  " + "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in
                               enumerate(zip(row, widths, strict=True))))  # fmt: skip


def number(value: float | None, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:,.0f}{suffix}"


def seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} s"


def print_backlog(backlog: Backlog) -> None:
    span_h = (backlog.last_ms - backlog.first_ms) / 3_600_000
    print(f"backlog: {backlog.produced:,} events produced in {backlog.seconds:.1f} s "
          f"({backlog.produced / backlog.seconds:,.0f}/s); {backlog.for_job:,} on the job's five topics "
          f"(raw_events must get them all), {backlog.views:,} content_viewed, {backlog.registrations:,} "
          f"user.registered, {backlog.tagged_late:,} emitted late by the simulator; "
          f"{span_h:.1f} h of event time")  # fmt: skip


def quix_events_per_s(quix: dict[str, Any] | str | None) -> float | None:
    return float(quix["events_per_s"]) if isinstance(quix, dict) and quix.get("events_per_s") else None


def print_throughput(backlog: Backlog, runs: list[ThroughputRun], quix: dict[str, Any] | str | None) -> None:
    quix_rate = quix_events_per_s(quix)
    header = ["(a) throughput, backlog -> ClickHouse", *(f"parallelism {r.parallelism}" for r in runs)]
    rows: list[list[str]] = [
        ["start-up (job start -> first row)", *(seconds(r.figures["startup_s"]) for r in runs)],
        ["events/s, steady middle (20% -> 80% rows)", *(number(r.figures["steady"]) for r in runs)],
        ["events/s, whole drain (first row -> all rows)", *(number(r.figures["drain"]) for r in runs)],
        ["events/s, overall (job start -> all rows)", *(number(r.figures["overall"]) for r in runs)],
        ["all raw_events rows visible at", *(seconds(r.figures["all_rows_s"]) for r in runs)],
        ["content_minute SUM(views) FINAL final at", *(
            ("<= " if r.settled.at_first_poll else "") + seconds(r.figures["aggregates_s"]) for r in runs)],
        ["raw_events rows / distinct event_id", *(f"{r.raw_rows:,} / {r.raw_distinct:,}" for r in runs)],
        ["views in content_minute + in late_events",
         *(f"{r.settled.views:,} + {r.settled.late_views:,}" for r in runs)],
        ["  = content_viewed produced?", *(
            "exact" if r.settled.views + r.settled.late_views == backlog.views
            else f"MISMATCH ({r.settled.views + r.settled.late_views - backlog.views:+,})" for r in runs)],
        ["registrations + late = produced?", *(
            "exact" if r.registrations + r.late_registrations == backlog.registrations
            else f"MISMATCH ({r.registrations + r.late_registrations - backlog.registrations:+,})" for r in runs)],
        ["late_events rows", *(f"{r.late_rows:,}" for r in runs)],
        *([f"{table} rows (FINAL)", *(f"{r.aggregate_rows[table]:,}" for r in runs)] for table in AGGREGATES),
        ["CPU per event, steady middle: the job's JVM", *(
            f"{r.figures['cpu_us_job']:.1f} us ({r.figures['job_cores']:.2f} cores)" if "cpu_us_job" in r.figures
            else "n/a" for r in runs)],
        ["  of which JIT compiler / garbage collector", *(
            f"{r.figures['cpu_us_jit']:.1f} / {r.figures['cpu_us_gc']:.1f} us" if "cpu_us_jit" in r.figures
            else "n/a" for r in runs)],
        ["  ClickHouse / Kafka broker / whole machine", *(
            f"{r.figures['cpu_us_clickhouse']:.1f} / {r.figures['cpu_us_kafka']:.1f} / "
            f"{r.figures['cpu_us_machine']:.1f} us" if "cpu_us_machine" in r.figures else "n/a" for r in runs)],
        ["JIT compiler cores, 1st / 2nd half of the drain", *(
            f"{r.figures['jit_cores_first_half']:.2f} / {r.figures['jit_cores_second_half']:.2f}"
            if r.figures.get("jit_cores_first_half") is not None and r.figures.get("jit_cores_second_half") is not None
            else "n/a" for r in runs)],
        ["state in the last checkpoint (bytes per event)", *(
            f"{r.drain.state_bytes / 1e6:,.1f} MB ({r.figures['state_bytes_per_event']:.0f})"
            if r.drain.state_bytes is not None else "n/a" for r in runs)],
        ["ours / Quix (whole drain events/s)", *(
            f"{r.figures['drain'] / quix_rate:.2f}x" if quix_rate and r.figures["drain"] else "n/a" for r in runs)],
    ]  # fmt: skip
    print_grid("(a) throughput: the backlog through the job into raw_events and every aggregate", header, rows)
    for r in runs:
        print(f"  p{r.parallelism} consumer lag: {lag_summary(r.drain.samples)}")
        print(f"  p{r.parallelism} content_minute settle polls: {r.settled.polls}, "
              f"{r.settled.seconds_per_poll * 1000:.0f} ms each (SUM FINAL + late count)")  # fmt: skip
        print(f"  p{r.parallelism} vertices at {r.drain.vertex_load_at:.0f} s (busy / back-pressured ms per s, "
              "avg/max over subtasks):")  # fmt: skip
        for line in r.drain.vertex_load:
            print(f"      {line}")


def print_raw_only(backlog: Backlog, runs: list[ThroughputRun], raw_only: ThroughputRun) -> None:
    figures = raw_only.figures
    whole = next((r for r in runs if r.parallelism == 1), None)
    rows = {
        "events/s, steady middle / whole drain": f"{number(figures['steady'])} / {number(figures['drain'])}",
        "raw_events rows / distinct event_id": f"{raw_only.raw_rows:,} / {raw_only.raw_distinct:,}"
        + ("" if raw_only.raw_rows == raw_only.raw_distinct == backlog.for_job else "  <- MISMATCH"),
        "CPU per event, steady middle: job JVM (of which JIT) / whole machine": (
            f"{figures['cpu_us_job']:.1f} ({figures['cpu_us_jit']:.1f}) / {figures['cpu_us_machine']:.1f} us"
            if "cpu_us_machine" in figures
            else "n/a"
        ),
    }
    if whole is not None and whole.figures["drain"] and figures["drain"]:
        rows["whole job at parallelism 1 / raw_events alone (whole drain)"] = (
            f"{whole.figures['drain'] / figures['drain']:.2f}"
        )
    print_rows("(a2) the same backlog through the job writing raw_events alone (bench/analytics_ceiling_job.py: "
               "source, decoding, late rule, dead letters, raw_events; no aggregate), parallelism 1", rows)  # fmt: skip


def print_quix(backlog: Backlog, runs: list[ThroughputRun], quix: dict[str, Any] | str) -> None:
    if isinstance(quix, str):
        print(f"\n(b) Quix peer: {quix}")
        return
    quix_rate = quix_events_per_s(quix)
    print_rows(
        "(b) Quix Streams peer (quixstreams 3.28.1, one Python process), same backlog",
        {
            "events consumed / expected": f"{quix.get('events'):,} / {backlog.for_job:,}"
            + (" (TIMED OUT)" if quix.get("timed_out") else ""),
            "events/s (first record -> last sink flush)": f"{quix_rate:,.0f}" if quix_rate else "n/a",
            "start-up (start -> first record)": f"{quix.get('startup_s')} s",
            "seconds consuming": f"{quix.get('seconds')} s",
            "views consumed / in windows": f"{quix.get('views_consumed'):,} / {quix.get('views_in_windows'):,} "
            f"({quix.get('views_dropped_late'):,} dropped: {quix.get('views_late'):,} late, "
            f"{quix.get('views_in_unclosed_windows'):,} in unclosed windows)",
            "raw_events_quix rows": f"{quix.get('raw_rows'):,}",
            "peak RSS": f"{quix.get('peak_rss_mb')} MB",
            **{
                f"ours at parallelism {r.parallelism} / Quix": f"drain {r.figures['drain'] / quix_rate:.2f}x, "
                f"views in windows {r.settled.views:,} vs {quix.get('views_in_windows'):,} (of {backlog.views:,})"
                for r in runs
                if quix_rate and r.figures["drain"]
            },
        },
    )


def report(
    args: argparse.Namespace,
    backlog: Backlog | None,
    runs: list[ThroughputRun],
    raw_only: ThroughputRun | None,
    quix: dict[str, Any] | str | None,
    latency: LatencyRun | None,
    dead_letters: int,
    loads: dict[str, str],
) -> None:
    print("\n" + "=" * 118)
    print(f"SUMMARY  {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores; load average "
          "(1/5/15 min) " + "; ".join(f"{k} {v}" for k, v in loads.items()))  # fmt: skip
    print("command: " + shlex.join([".venv/bin/python", "bench/analytics_e2e.py", *sys.argv[1:]]))
    prints = {f"parallelism {r.parallelism}": r.fingerprint for r in runs}
    if raw_only is not None:
        prints["raw_events alone"] = raw_only.fingerprint
    if latency is not None:
        prints["latency"] = latency.fingerprint
    print("job under test: " + "; ".join(f"{k} {v}" for k, v in prints.items()))
    if len({value.split()[0] for value in prints.values()}) > 1:
        print("WARNING: the job's files changed between the runs of this invocation: figures are not comparable")
    print(f"dead-letter topics: {dead_letters:,} records" + ("" if dead_letters == 0 else "  <- expected none"))
    if backlog is not None:
        print_backlog(backlog)
        if runs:
            print_throughput(backlog, runs, quix)
        if raw_only is not None:
            print_raw_only(backlog, runs, raw_only)
        if quix is not None:
            print_quix(backlog, runs, quix)
    if latency is not None:
        print_latency(latency, args.rate)
    print("=" * 118)


def print_latency(latency: LatencyRun, rate: float) -> None:
    print_rows(f"(c) latency at {rate:,.0f} events/s asked, parallelism 1", latency_figures(latency, rate))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--events", type=int, default=4_000_000,
        help="backlog size for (a) and (b) (0: skip both); the issue asks for at least 2,000,000",
    )  # fmt: skip
    parser.add_argument("--parallelism", type=int, nargs="+", default=[1, 2], help="one job run per value")
    parser.add_argument("--no-quix", action="store_true", help="skip (b), the Quix Streams peer")
    parser.add_argument("--no-raw-only", action="store_true", help="skip (a2), the job writing raw_events alone")
    parser.add_argument("--rate", type=float, default=20_000.0, help="events/s for (c)")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured seconds of (c) (0: skip it)")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds at --rate before the markers start")
    parser.add_argument("--users", type=int, default=5000, help="simulated users (the event-time density)")
    parser.add_argument(
        "--checkpoint-interval",
        type=float,
        default=FlinkSettings().checkpoint_interval_s,
        help="seconds (default: the job's own); offsets commit on each",
    )
    parser.add_argument("--sample-s", type=float, default=0.5, help="throughput sampling interval")
    parser.add_argument("--settle-s", type=float, default=5.0, help="content_minute counts as final when unchanged "
                        "this long")  # fmt: skip
    parser.add_argument("--catch-up-timeout", type=float, default=600.0, help="seconds (c) waits after sending for "
                        "every marker and for content_minute")  # fmt: skip
    parser.add_argument("--poll-ms", type=float, default=100.0, help="ClickHouse polling interval for (c)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="give up a drain or the peer after this long")
    parser.add_argument("--logs", type=Path, default=None, help="copy each job's output and Flink log here")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    base = load_settings()
    if base.is_local:
        Platform(base).require_healthy()
    run_id = uuid.uuid4().hex[:8]
    root = Path(tempfile.mkdtemp(prefix=f"bench-e2e-{run_id}-"))
    loads = {"start": load()}
    runs: list[ThroughputRun] = []
    raw_only: ThroughputRun | None = None
    quix: dict[str, Any] | str | None = None
    latency: LatencyRun | None = None
    backlog: Backlog | None = None
    dead_letters = 0
    flink = base.flink
    log(f"run {run_id}: checkpoints every {args.checkpoint_interval} s, mini-batch {flink.mini_batch_latency_ms} ms "
        f"/ {flink.mini_batch_rows:,} rows, sink batches {flink.sink_batch_rows:,} rows (growing to "
        f"{flink.sink_batch_max_rows:,} in a drain) / {flink.sink_batch_delay_s} s, "
        f"late bound {flink.max_out_of_orderness_s} s")  # fmt: skip
    try:
        if args.events > 0:
            with isolated_environment(base, f"bench-{run_id}") as topics:
                log(f"(a) producing a backlog of {args.events:,} events ...")
                backlog = produce_backlog(topics, default_catalog(), args.events, args.users, args.seed)
                print_backlog(backlog)
                for parallelism in args.parallelism:
                    loads[f"p{parallelism}"] = load()
                    runs.append(measure_throughput(topics, run_id, backlog, parallelism, args, root))
                    print_throughput(backlog, runs[-1:], None)
                if not args.no_raw_only:
                    loads["raw only"] = load()
                    raw_only = measure_throughput(topics, run_id, backlog, 1, args, root, raw_events_only=True)
                    print_raw_only(backlog, runs, raw_only)
                if not args.no_quix:
                    loads["quix"] = load()
                    try:
                        quix = measure_quix(topics, run_id, backlog, args.timeout)
                    except QuixPeerError as error:
                        quix = f"failed: {error}"
                    print_quix(backlog, runs, quix)
                dead_letters = topic_records(topics, topics.topics.dead_letter)
        if args.seconds > 0:
            with isolated_environment(base, f"bench-{run_id}-lat") as topics:
                loads["latency"] = load()
                latency = measure_latency(topics, run_id, args, root)
                print_latency(latency, args.rate)
                dead_letters += topic_records(topics, topics.topics.dead_letter)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    loads["end"] = load()
    report(args, backlog, runs, raw_only, quix, latency, dead_letters, loads)


if __name__ == "__main__":
    main()
