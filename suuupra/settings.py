"""One typed settings object for every host, port, topic and path.

Precedence, highest first: environment variables (``SUUUPRA_`` prefix, ``__`` between nested names, e.g.
``SUUUPRA_KAFKA__PORT=29092``), the optional settings file (``--config`` or ``SUUUPRA_CONFIG``, TOML or YAML),
the profile file ``infra/profiles/<profile>.toml``, then the defaults below (which describe the local platform).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import re
import secrets
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from connectors.kafka.config import ConfigValue
from suuupra.private_file import write_private

ENV_PREFIX = "SUUUPRA_"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROFILES_DIR = PROJECT_ROOT / "infra" / "profiles"
LOOPBACK = "127.0.0.1"

Profile = Literal["local", "production"]


class SettingsError(ValueError):
    """A settings file or value that cannot be used; the message says what to change."""


class KafkaSettings(BaseModel):
    host: str = LOOPBACK
    port: int = 19092
    controller_port: int = 19093
    bootstrap_servers: str | None = Field(
        default=None,
        description="Comma-separated brokers; when set, host/port are ignored (remote clusters).",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    brokers: int = Field(
        default=1, ge=1, le=9,
        description="Nodes of the local platform's Kafka (`suuupra platform up --brokers N` records it).",
    )  # fmt: skip
    replication_factor: int = 1
    min_insync_replicas: int = 1
    client_overrides: dict[str, str] = Field(
        default_factory=dict, description="librdkafka properties passed through unchanged."
    )
    heap: str = "1g"

    def node_port(self, node: int) -> int:
        """The broker port of node `node` (1-based) of the local cluster; its controller listens on the next one."""
        return self.port + 2 * (node - 1)

    def node_controller_port(self, node: int) -> int:
        return self.controller_port + 2 * (node - 1)

    @property
    def bootstrap(self) -> str:
        # Every node of a local cluster, so clients still find it with any one of them down.
        nodes = range(1, self.brokers + 1)
        return self.bootstrap_servers or ",".join(f"{self.host}:{self.node_port(node)}" for node in nodes)

    def client_config(self) -> dict[str, ConfigValue]:
        """librdkafka settings shared by producers, consumers and the admin client."""
        config: dict[str, ConfigValue] = {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            config["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            config["sasl.username"] = self.sasl_username
        if self.sasl_password:
            config["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_ca_location:
            config["ssl.ca.location"] = self.ssl_ca_location
        config.update(self.client_overrides)
        return config


class RegistrySettings(BaseModel):
    host: str = LOOPBACK
    port: int = 18081
    url: str | None = Field(default=None, description="Confluent-compatible base URL; overrides host/port.")
    basic_auth_user_info: SecretStr | None = Field(default=None, description="'user:password' for the registry.")
    # FULL = BACKWARD (new readers read old data) + FORWARD (old readers, e.g. a running Flink job, read new data):
    # producers and consumers of a shared topic upgrade independently.
    compatibility: Literal["BACKWARD", "BACKWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE"] = "FULL"
    heap: str = "512m"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ccompat_url(self) -> str:
        return self.url or f"{self.base_url}/apis/ccompat/v7"

    def client_config(self) -> dict[str, str]:
        config = {"url": self.ccompat_url}
        if self.basic_auth_user_info:
            config["basic.auth.user.info"] = self.basic_auth_user_info.get_secret_value()
        return config


class ClickHouseSettings(BaseModel):
    host: str = LOOPBACK
    port: int = Field(default=19000, description="Native protocol port (clickhouse-driver).")
    http_port: int = 18123
    database: str = "suuupra"
    user: str = "default"
    password: SecretStr = SecretStr("")
    secure: bool = False
    # The dashboards read through this user, which the server lets read and nothing else.
    reader_user: str = "dashboard"
    reader_password: SecretStr = SecretStr("")

    def as_reader(self) -> ClickHouseSettings:
        return self.model_copy(update={"user": self.reader_user, "password": self.reader_password})


class RedisSettings(BaseModel):
    host: str = LOOPBACK
    port: int = 16379
    password: SecretStr | None = None
    db: int = 0


class SearchSettings(BaseModel):
    """The search engine (docs/search.md): its own Redis 8.2 server with RediSearch (the content index) and FalkorDB
    (the co-watch graph), apart from the Redis of sessions and features; and the names, model and tuning of both."""

    host: str = LOOPBACK
    port: int = 16380
    password: SecretStr | None = None
    # Index `<index>-<model version>` over keys `<index>:<model version>:...`: a new model builds a new index beside
    # the old one (the job reads the content topic again for it), queries use the current model's.
    index: str = Field(default="content", pattern=r"^[A-Za-z0-9_.-]{1,60}$")
    graph: str = Field(default="cowatch", pattern=r"^[A-Za-z0-9_.-]{1,60}$")
    models_dir: Path | None = Field(default=None, description="Fitted embedders; <data_dir>/models/embedder.")
    model_version: str | None = Field(default=None, description="The embedder to use; the current one when unset.")
    embedding_dim: int = Field(default=256, ge=2, le=4096)
    # Two views of different items by one user at most this far apart (event time) are a co-watch.
    cowatch_window_s: int = Field(default=3 * 3600, gt=0)
    # A co-watch counts half as much after this long (the query's reference time minus the day it happened).
    cowatch_half_life_days: float = Field(default=14.0, gt=0)
    # The engine sinks: a batch is written at this many rows or after this delay, retried on failure.
    sink_batch_rows: int = Field(default=500, gt=0)
    sink_batch_delay_s: float = Field(default=0.2, gt=0)
    sink_max_retries: int = Field(default=10, ge=0)
    # Rows per batch handed to the embedder (a vectorized Python function), and the longest a row waits for its batch
    # to fill (the event-to-searchable delay when few items come).
    embed_batch_rows: int = Field(default=1000, gt=0)
    embed_max_delay_ms: int = Field(default=200, gt=0)
    aof_fsync: Literal["always", "everysec", "no"] = "everysec"
    # The append-only file is rewritten (compacted into a snapshot of the data) once it is larger than this and has
    # doubled since the last rewrite. A restart replays it command by command: Redis's 64 MB default let 15 MB of
    # index and graph writes take 19 s to replay here, a snapshot of the same data a fraction of a second.
    aof_rewrite_min_size_mb: int = Field(default=4, gt=0)


class PostgresSettings(BaseModel):
    host: str = LOOPBACK
    port: int = 15432
    user: str = "suuupra"
    password: SecretStr = SecretStr("suuupra-local")
    database: str = "suuupra"
    registry_database: str = Field(default="apicurio", description="Where Apicurio Registry keeps its schemas.")
    # The services' tables live in this schema of `database` (PostgreSQL's default, public, when unset). Two
    # deployments sharing a server need their own schema AND their own topics and services.consumer_group_prefix
    # (the tests give each test all three), or one's saga would consume the other's events.
    services_schema: str | None = Field(default=None, pattern=r"^[a-z_][a-z0-9_]{0,62}$")

    def dsn(self, database: str | None = None) -> str:
        """A libpq connection string; for the services' database it also selects `services_schema`."""
        dsn = (
            f"host={self.host} port={self.port} dbname={database or self.database} "
            f"user={self.user} password={self.password.get_secret_value()}"
        )
        if database is None and self.services_schema:
            dsn += f" options='-c search_path={self.services_schema}'"
        return dsn


class TopicNames(BaseModel):
    """Logical topic -> Kafka topic name. `infra/topics.yaml` declares each logical topic's configuration."""

    user: str = "user.events"
    content: str = "content.events"
    commerce: str = "commerce.events"
    payment: str = "payment.events"
    ledger: str = "ledger.events"
    clickstream: str = "clickstream.events"
    dead_letter: str = "dead-letter.events"
    analytics_late: str = "analytics.late-events"

    def resolve(self, logical: str) -> str:
        try:
            return str(getattr(self, logical))
        except AttributeError:
            known = ", ".join(type(self).model_fields)
            raise SettingsError(f"unknown logical topic '{logical}'; known: {known}") from None

    def domain(self) -> dict[str, str]:
        """The topics services publish domain events to."""
        return {k: self.resolve(k) for k in ("user", "content", "commerce", "payment", "ledger", "clickstream")}


JVM_DIR = Path("/usr/lib/jvm")
# The Java versions a job's JVM runs on by default, the newest installed first: Java 25 runs the analytics job faster
# than Java 17 here (docs/benchmarks.md, "Java 25"). Flink 2.2 names 11, 17 and 21 as supported; the whole test suite
# runs on 25.
JOB_JAVA_VERSIONS = range(21, 26)
# HotSpot's collectors, each chosen by its -XX:+Use<name> option (flink.local_gc names one).
JVM_COLLECTORS = ("SerialGC", "ParallelGC", "G1GC", "ZGC", "ShenandoahGC", "EpsilonGC")
# Much more and HotSpot's Tier4CompileThreshold overflows: the JVM would not start at all.
C2_THRESHOLD_SCALE_MAX = 1000


def jdk_version(home: Path) -> int | None:
    """The feature version (17, 25 ...) of the JDK at `home`, from its `release` file; None if it cannot be read."""
    try:
        version = re.search(r'^JAVA_VERSION="(\d+)', (home / "release").read_text(errors="replace"), re.MULTILINE)
    except OSError:
        return None  # no release file, or not readable here: not a JDK this process can use
    return int(version[1]) if version else None


def installed_jdks() -> dict[Path, int | None]:
    """The JDKs under /usr/lib/jvm (a folder with a `release` file and a bin/java) and their feature versions, None
    where the `release` file names none. A JDK that several folders name (Debian links java-1.17.0-openjdk-amd64 to
    java-17-openjdk-amd64) is listed once, by the first name in sorted order."""
    jdks: dict[Path, int | None] = {}
    seen: set[Path] = set()
    for release in sorted(JVM_DIR.glob("*/release")):
        home = release.parent
        if not (home / "bin" / "java").is_file() or home.resolve() in seen:
            continue
        seen.add(home.resolve())
        jdks[home] = jdk_version(home)
    return jdks


def newest_job_jdk() -> Path | None:
    """The home of the newest JDK of JOB_JAVA_VERSIONS under /usr/lib/jvm (its `release` file says which), if any."""
    homes: dict[int, Path] = {}
    for home, version in installed_jdks().items():
        if version is not None and version in JOB_JAVA_VERSIONS:
            homes.setdefault(version, home)
    return homes[max(homes)] if homes else None


class FlinkSettings(BaseModel):
    """How jobs run: the same values for the local mini-cluster and a session cluster."""

    parallelism: int = 1
    checkpoint_interval_s: float = 5.0
    checkpoint_dir: Path | None = Field(default=None, description="Defaults to <data_dir>/flink/checkpoints.")
    state_backend: Literal["hashmap", "rocksdb"] = "hashmap"
    # None: aligned checkpoints (Flink's default). A number: a checkpoint whose barriers wait longer than this behind
    # buffered records (back-pressure, a backlog) lets them overtake and stores those records in the checkpoint, so a
    # back-pressured job still checkpoints within seconds; 0: always so.
    aligned_checkpoint_timeout_s: float | None = Field(default=None, ge=0)
    restore_from: Path | None = Field(default=None, description="A checkpoint or savepoint to start from.")
    # The JDK of the local mini-cluster a job's process starts (`suuupra jobs run`, the tests, the benchmarks): the
    # newest of JOB_JAVA_VERSIONS installed by default; None (none installed, or set empty): JAVA_HOME, else the
    # `java` on PATH. A session cluster keeps JAVA_HOME's: Flink 2.2's scripts and its CLI do not start on Java 24+.
    java_home: Path | None = Field(default_factory=newest_job_jdk)
    # The garbage collector of that JVM (its `-XX:+Use...GC` option), unless the JVM's options choose one (JVM_ARGS,
    # FLINK_ENV_JAVA_OPTS, JAVA_TOOL_OPTIONS, JDK_JAVA_OPTIONS); None: the JVM's own choice (G1 on 2+ CPUs). The
    # parallel collector's write barrier only marks a card, where G1's also filters the store and queues it for
    # concurrent refinement, and the job stores references on every record (heap state, buffers): in alternating
    # runs it used less CPU per event and drained faster (docs/benchmarks.md, "Garbage collector").
    local_gc: str | None = "ParallelGC"
    # How many times HotSpot's default number of calls to a method of that JVM it waits for before C2, the optimizing
    # JIT compiler, compiles it (its -XX:Tier4*Threshold options), unless the JVM's options set when C2 compiles
    # themselves; None: the job's own choice (jobs.runtime.run_job's c2_threshold_scale: 10 for the analytics job,
    # HotSpot's defaults, 1, for the others). The same JVM plans the job (Calcite) and generates its code (Janino) at
    # start, and C2 went on compiling those merely warm methods well into a backlog's drain, its thread busy
    # throughout: at ten times, the analytics job's JIT used 40 % less CPU per event in alternating runs
    # (docs/benchmarks.md, "C2 thresholds"). But a method called for every record then reaches C2 ten times later in
    # wall time too, minutes at a few hundred records per second: the fraud job's decision p99 went from 64-99 to
    # 242-290 ms.
    local_c2_threshold_scale: int | None = Field(default=None, ge=1, le=C2_THRESHOLD_SCALE_MAX)
    jobmanager: str = "127.0.0.1:8081"
    # Jobs resume from their group's committed offsets (earliest when the group is new).
    consumer_group_prefix: str = "suuupra"
    rest_port: int = 8081
    # Where `suuupra jobs run` serves the job's metrics in Prometheus' format, on 127.0.0.1; 0: a free port (each
    # job's is printed at its start and shown by `suuupra status`).
    metrics_port: int = Field(default=0, ge=0, le=65535)
    # The late rule: an event older than the newest event already seen in its Kafka partition by more than this is
    # late (recorded in `late_events`, kept out of the aggregates). The analytics job's watermark follows the rule
    # (each partition's newest event minus this), so it is never ahead of an event the rule lets through
    # (docs/analytics.md).
    max_out_of_orderness_s: int = 30
    # A partition none of whose records the job read while it read this many records of the other partitions of the
    # same source subtask no longer holds the watermark back, so an empty or quiet partition keeps at most this many
    # records' windows open; its next event, if the watermark has passed it, is recorded in `late_events` as behind
    # the watermark. A partition with records still to read gets some in every round of Kafka fetches, at most
    # `source_partition_fetch_bytes` of each partition: between two of its batches the subtask reads at most about
    # two batches of each other partition, some 75,000-125,000 of this platform's events with the 36 partitions of
    # the local topics. None (or set empty): never idle.
    partition_idle_after_records: int | None = Field(default=300_000, gt=0)
    # The Kafka source's `max.partition.fetch.bytes` (Kafka's default is 1 MiB): what a partition hands over per
    # fetch, so what `partition_idle_after_records` must stay well above. 128 KiB measured raw-event latencies of
    # 10-17 s at 20,000 events/s, 256 KiB 1.2 s (p99). (`kafka.client_overrides` wins.)
    source_partition_fetch_bytes: int = Field(default=256 * 1024, gt=0)
    # An event time outside [from, until) is not a time this platform's events can have (a producer's bug or garbage):
    # such a record goes to the dead-letter topic (`invalid_event_time`) instead of a dashboard's year 2200.
    event_time_valid_from: dt.datetime = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    event_time_valid_until: dt.datetime = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
    # No text field of this platform's events is anywhere near this long: a longer one is garbage or an attack, and
    # would otherwise travel into ClickHouse rows, feature keys and the search index (`invalid_value`).
    max_string_bytes: int = Field(default=64 * 1024, gt=0)
    # Aggregates are updated continuously; Flink folds the updates of this long into one write per key (the analytics
    # job's windows emit their current values this often).
    mini_batch_latency_ms: int = Field(default=1000, gt=0)
    mini_batch_rows: int = Field(default=20_000, gt=0)
    # Kafka reading and decoding in a task of their own, the SQL operators reading the events in another: two threads
    # per subtask instead of one, each decoded row serialized and copied once between them. Off: on 2 cores the
    # analytics job used less CPU per event in 5 of 5 alternating pairs without the hand-over (docs/benchmarks.md).
    decode_in_own_task: bool = False
    # Keyed state untouched for this long is dropped (processing time): an aggregate key can only be revisited by an
    # event within the late rule's bound of its partition's newest event, so a week is ample. (The analytics job's
    # windows are dropped by the watermark instead; its sessions use this as a last resort.)
    state_ttl_h: int = Field(default=168, gt=0)
    # The ClickHouse sinks: a batch is inserted at this many rows or this long after its first row (while the job goes
    # on with the next), retried on transient failures, and always before a checkpoint completes. Larger batches cost
    # ClickHouse less CPU per event (fewer parts to merge) but a catch-up's large inserts hold the next ones up, so
    # the analytics job's batches grow to sink_batch_max_rows (at least sink_batch_rows; equal: no growth), and their
    # delay in the same proportion (at most 4 times), only after three in a row left full (a backlog's drain), and
    # shrink back once one's rows came slower than sink_batch_rows per sink_batch_delay_s (connectors/jvm BatchSizer).
    sink_batch_rows: int = Field(default=20_000, gt=0)
    sink_batch_max_rows: int = Field(default=50_000, gt=0)
    sink_batch_delay_s: float = Field(default=0.5, gt=0)
    sink_max_retries: int = Field(default=5, ge=0)
    sink_parallelism: int | None = Field(default=None, description="Defaults to the job's parallelism.")
    python_bundle_size: int = 5000
    # A failed job restarts by itself from its last checkpoint, waiting longer after each failure in a row (so an
    # outage of the broker, registry or ClickHouse of a few minutes heals without a person, and a job failing at once
    # does not spin); a job that ran `restart_reset_after_s` without failing starts again from the initial wait.
    restart_initial_backoff_s: float = Field(default=1.0, gt=0)
    restart_max_backoff_s: float = Field(default=60.0, gt=0)
    restart_backoff_multiplier: float = Field(default=2.0, ge=1)
    restart_reset_after_s: float = Field(default=600.0, gt=0)
    restart_jitter: float = Field(default=0.1, ge=0, le=1)

    @field_validator("java_home", "local_gc", "local_c2_threshold_scale", "partition_idle_after_records", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # SUUUPRA_FLINK__JAVA_HOME= (empty) opts out of the default: JAVA_HOME's Java, else the `java` on PATH;
        # SUUUPRA_FLINK__LOCAL_GC= the JVM's own collector; SUUUPRA_FLINK__LOCAL_C2_THRESHOLD_SCALE= each job's choice;
        # SUUUPRA_FLINK__PARTITION_IDLE_AFTER_RECORDS= never idle. environment_overrides relies on it: every field
        # that may be None and defaults to something else reads an empty variable as None.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("local_gc")
    @classmethod
    def _local_gc_names_a_collector(cls, value: str | None) -> str | None:
        if value is not None and value not in JVM_COLLECTORS:
            raise ValueError(
                f"flink.local_gc {value!r} is not a collector's name: one of {', '.join(JVM_COLLECTORS)} (the word of "
                "its -XX:+Use...GC option), or empty for the JVM's own choice"
            )
        return value

    @model_validator(mode="after")
    def _batches_grow_not_shrink(self) -> FlinkSettings:
        if self.sink_batch_max_rows < self.sink_batch_rows:
            raise ValueError(
                f"flink.sink_batch_max_rows ({self.sink_batch_max_rows}) is below flink.sink_batch_rows "
                f"({self.sink_batch_rows}): set it at least as high (equal: batches never grow)"
            )
        return self

    @model_validator(mode="after")
    def _java_home_has_java(self) -> FlinkSettings:
        if self.java_home is not None and not (self.java_home / "bin" / "java").is_file():
            raise ValueError(f"flink.java_home {self.java_home} has no bin/java: point it at a JDK's home folder")
        return self

    @property
    def event_time_range_ms(self) -> tuple[int, int]:
        return (int(self.event_time_valid_from.timestamp() * 1000), int(self.event_time_valid_until.timestamp() * 1000))


class FeaturesSettings(BaseModel):
    """The feature store (Feast: online store in Redis, offline store in PostgreSQL) and the features job."""

    # Feast's project: it ends every online-store key, so two projects share one Redis without meeting.
    project: str = Field(default="suuupra", pattern=r"^[a-z][a-z0-9_]{0,62}$")
    # The PostgreSQL schema (in postgres.database) of the offline store's tables, one per feature view.
    offline_schema: str = Field(default="features", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    repo_dir: Path | None = Field(
        default=None, description="Where `suuupra features apply` keeps Feast's registry; <data_dir>/feature_store."
    )
    # Online writes: the newest row per entity, written in one Redis pipeline per batch.
    online_flush_ms: int = Field(default=50, gt=0)
    online_batch_rows: int = Field(default=2000, gt=0)
    # Beside the newest row, each entity's newest rows by time (Redis sorted sets): the fraud job reads the row as of
    # just before a payment from them, as training does; older moments are read from the offline store.
    serving_history_rows: int = Field(default=16, ge=1)
    # How long a read as of a moment that only the offline store still holds waits for its JDBC sink to catch up.
    offline_catch_up_s: float = Field(default=5.0, ge=0)
    # Offline writes (every row, the history training reads): JDBC batches into PostgreSQL.
    offline_batch_rows: int = Field(default=5000, gt=0)
    offline_batch_delay_s: float = Field(default=0.5, gt=0)


class FraudSettings(BaseModel):
    """The fraud scoring job and its models."""

    # A model version saved by `suuupra fraud train`, or "latest" for the newest one.
    model_version: str = "latest"
    models_dir: Path | None = Field(default=None, description="Saved models; <data_dir>/models/fraud.")
    # Records leave a task when its network buffer fills or after this long (Flink's default is 100 ms).
    buffer_timeout_ms: int = Field(default=5, ge=0)
    # How many reasons (the largest feature contributions) a decision carries.
    reasons: int = Field(default=3, ge=0)
    # A feature read from Redis that takes longer fails (once retried on a new connection), and so does the job.
    feature_read_timeout_ms: int = Field(default=2000, gt=0)
    # Likewise a query of the offline store (a moment older than the online history keeps), and connecting to it.
    offline_read_timeout_s: int = Field(default=30, gt=0)


class ServicesSettings(BaseModel):
    """The transactional services (identity, content, commerce): where they listen and how they sign sessions."""

    host: str = LOOPBACK
    port: int = 8090
    # Local default only: production sets SUUUPRA_SERVICES__JWT_SECRET from a vault.
    jwt_secret: SecretStr = SecretStr("local-development-only-secret-change-me")
    session_ttl_s: int = Field(default=3600, gt=0)
    # Login throttling (docs/services.md): a window starts at an account's or a client address's first failed login;
    # after this many failures within it, every login of that account or from that address (the right password too,
    # else guessing would go on) gets 429 until the window ends. A success clears the account's count. The address
    # limit is higher because one address may be many people (a school's NAT); it counts failures only, so many
    # people logging in from one address are not refused.
    login_attempts_per_account: int = Field(default=5, gt=0)
    login_attempts_per_address: int = Field(default=20, gt=0)
    login_window_s: int = Field(default=15 * 60, gt=0)
    producer: str = "suuupra-services"
    # The enrolment saga's consumers (run by `suuupra services up`) join groups named from this prefix.
    consumer_group_prefix: str = "suuupra-services"
    # Fraud decisions come from the fraud job (`suuupra jobs run fraud`). The rule-based stand-in publishes them
    # instead when this is on: for tests and set-ups that run no job.
    fraud_standin: bool = False
    # A payment with no fraud decision after this long fails (TIMEOUT) and its order is cancelled.
    payment_timeout_s: float = Field(default=120.0, gt=0)
    payment_timeout_check_s: float = Field(default=5.0, gt=0)
    # How soon the saga's consumers in a process that died (killed, machine lost) give their partitions to the ones of
    # a restarted process: payments wait meanwhile. Kafka's default is 45 s.
    consumer_session_timeout_s: float = Field(default=10.0, ge=6.0)


class PathSettings(BaseModel):
    data_dir: Path = PROJECT_ROOT / ".platform"
    topics_file: Path = PROJECT_ROOT / "infra" / "topics.yaml"
    schemas_dir: Path = PROJECT_ROOT / "schemas"
    maven_pom: Path = PROJECT_ROOT / "infra" / "maven" / "pom.xml"
    jvm_connectors: Path = Field(
        default=PROJECT_ROOT / "connectors" / "jvm", description="The Maven project of the jobs' JVM functions."
    )

    lib: Path | None = Field(
        default=None,
        description="The JVM components (jobs' jars among them); <data_dir>/lib. A checkout of its own can run its "
        "jobs against a shared platform's data folder with the jars it built itself.",
    )

    @property
    def lib_dir(self) -> Path:
        return self.lib if self.lib is not None else self.data_dir / "lib"

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "log"

    @property
    def jvm_temp_dir(self) -> Path:
        """Local job JVMs' temporary files, a folder per process (jobs/runtime.py local_temp_dir)."""
        return self.data_dir / "tmp"

    @property
    def flink_jars(self) -> Path:
        return self.lib_dir / "flink"


class PlatformSettings(BaseModel):
    startup_timeout_s: float = 180.0
    lock_timeout_s: float = Field(
        default=300.0, description="How long `platform up`/`down` waits for another one to finish before it gives up."
    )
    java: str = "java"
    registry_java: str | None = Field(
        default=None, description="A Java 21+ for Apicurio Registry 3.3; found under /usr/lib/jvm when unset."
    )
    maven: str = "mvn"
    apt_packages: list[str] = Field(default_factory=lambda: ["clickhouse-server", "redis-server", "postgresql"])


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    profile: Profile = "local"
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    clickhouse: ClickHouseSettings = Field(default_factory=ClickHouseSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    search: SearchSettings = Field(default_factory=SearchSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    topics: TopicNames = Field(default_factory=TopicNames)
    paths: PathSettings = Field(default_factory=PathSettings)
    platform: PlatformSettings = Field(default_factory=PlatformSettings)
    flink: FlinkSettings = Field(default_factory=FlinkSettings)
    services: ServicesSettings = Field(default_factory=ServicesSettings)
    features: FeaturesSettings = Field(default_factory=FeaturesSettings)
    fraud: FraudSettings = Field(default_factory=FraudSettings)

    @property
    def checkpoint_dir(self) -> Path:
        return self.flink.checkpoint_dir or self.paths.data_dir / "flink" / "checkpoints"

    @property
    def feature_repo_dir(self) -> Path:
        return self.features.repo_dir or self.paths.data_dir / "feature_store"

    @property
    def fraud_models_dir(self) -> Path:
        return self.fraud.models_dir or self.paths.data_dir / "models" / "fraud"

    @property
    def embedder_models_dir(self) -> Path:
        return self.search.models_dir or self.paths.data_dir / "models" / "embedder"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Files arrive as init values (see `load_settings`); the environment must still win over them.
        return env_settings, init_settings

    @model_validator(mode="after")
    def _production_needs_real_endpoints(self) -> Settings:
        if self.profile == "production" and self.kafka.bootstrap_servers is None:
            raise SettingsError(
                "profile 'production' needs the brokers: set SUUUPRA_KAFKA__BOOTSTRAP_SERVERS "
                "(or kafka.bootstrap_servers in the settings file)"
            )
        return self

    @cached_property
    def is_local(self) -> bool:
        return self.profile == "local"


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SettingsError(f"settings file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as error:
        raise SettingsError(f"settings file {path} is not valid {path.suffix[1:].upper()}: {error}") from error
    if not isinstance(data, dict):
        raise SettingsError(f"settings file {path} must hold a mapping at the top level")
    return data


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def environment_overrides(settings: Settings, *sections: str) -> dict[str, str]:
    """The given sections as `SUUUPRA_*` variables, so a child process (a job, `flink run`) loads the same values."""
    overrides: dict[str, str] = {}
    for section in sections:
        values = getattr(settings, section)
        for key, value in values.model_dump().items():
            if value is None:
                if type(values).model_fields[key].get_default(call_default_factory=True) is None:
                    continue  # the child's default is None too
                value = ""  # the fields that may be None with another default read an empty variable as None
            elif isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, list | tuple | dict):
                value = json.dumps(value, default=str)  # how pydantic-settings reads a complex field (paths as text)
            overrides[f"{ENV_PREFIX}{section.upper()}__{key.upper()}"] = str(value)
    return overrides


PLATFORM_STATE_FILE = "platform.toml"


def platform_state_file(*layers: dict[str, Any]) -> Path:
    """Where `platform up` records what the local platform is, in its data folder (which a settings file or the
    environment may move)."""
    chosen = os.environ.get(f"{ENV_PREFIX}PATHS__DATA_DIR")
    for layer in reversed(layers):  # the later layer wins, as in the merge
        if not chosen and isinstance(paths := layer.get("paths"), dict) and paths.get("data_dir"):
            chosen = str(paths["data_dir"])
    return Path(chosen or PathSettings().data_dir) / PLATFORM_STATE_FILE


def record_platform_state(settings: Settings, section: str, values: dict[str, int | str | bool]) -> Path:
    """Writes `values` into `section` of the platform's state file, keeping what else it holds."""
    path = settings.paths.data_dir / PLATFORM_STATE_FILE
    with _locked(path):
        state = _read_file(path) if path.is_file() else {}
        state[section] = {**state.get(section, {}), **values}
        _write_state(path, state)
    return path


# The local platform's passwords (and the services' signing key): generated once per data folder, never in the code.
LOCAL_SECRETS = {
    "postgres": ("password",),
    "clickhouse": ("password", "reader_password"),
    "redis": ("password",),
    "search": ("password",),
    "services": ("jwt_secret",),
}


def ensure_local_secrets(path: Path) -> dict[str, Any]:
    """The platform's state file, first given every local secret it lacks (each a fresh random one)."""
    if path.is_file() and _has_secrets(state := _read_file(path)):
        return state
    with _locked(path):
        state = _read_file(path) if path.is_file() else {}
        for section, keys in LOCAL_SECRETS.items():
            table = state.setdefault(section, {})
            for key in keys:
                table.setdefault(key, secrets.token_urlsafe(24))
        _write_state(path, state)
    return state


def _has_secrets(state: dict[str, Any]) -> bool:
    return all(key in state.get(section, {}) for section, keys in LOCAL_SECRETS.items() for key in keys)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One writer at a time: two processes starting together must not make two sets of passwords."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with (path.parent / f".{path.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _write_state(path: Path, state: dict[str, Any]) -> None:
    lines = [
        "# Written by suuupra: what this local platform is (its passwords, the brokers `platform up` started).",
        "# Readable by this user only. A settings file and SUUUPRA_* variables still win over it.",
    ]
    for name, table in state.items():
        lines += ["", f"[{name}]", *(f"{key} = {json.dumps(value)}" for key, value in table.items())]
    temporary = path.with_suffix(".tmp")
    write_private(temporary, "\n".join(lines) + "\n")
    temporary.replace(path)


def load_profile(name: str) -> dict[str, Any]:
    """The values of a profile file (`infra/profiles/NAME.toml`)."""
    profile_file = PROFILES_DIR / f"{name}.toml"
    if not profile_file.is_file():
        known = ", ".join(sorted(p.stem for p in PROFILES_DIR.glob("*.toml")))
        raise SettingsError(f"unknown profile '{name}' (no {profile_file}); known profiles: {known}")
    return _read_file(profile_file)


def load_settings(config_file: Path | None = None, profile: str | None = None) -> Settings:
    """Builds the settings from profile file, optional settings file and environment."""
    config_path = config_file or (Path(p) if (p := os.environ.get(f"{ENV_PREFIX}CONFIG")) else None)
    file_values = _read_file(config_path) if config_path else {}
    from_environment = os.environ.get(f"{ENV_PREFIX}PROFILE")
    if profile and from_environment and profile != from_environment:
        # The environment would override the profile name but not the profile file's values.
        raise SettingsError(f"--profile {profile} conflicts with {ENV_PREFIX}PROFILE={from_environment}: unset one")
    chosen = profile or from_environment or file_values.get("profile") or "local"
    profile_values = load_profile(chosen)
    if chosen == "local":
        # What the local platform is: its generated passwords, and what `platform up` recorded (the brokers).
        state = ensure_local_secrets(platform_state_file(profile_values, file_values))
        profile_values = _deep_merge(profile_values, state)
    values = _deep_merge(profile_values, file_values)
    values["profile"] = chosen
    try:
        return Settings(**values)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg'].removeprefix('Value error, ')}"
            for e in error.errors()
        )
        raise SettingsError(problems) from None


def isolated_settings(settings: Settings, prefix: str) -> Settings:
    """The settings with topics (`<prefix>.<name>`), a services schema and consumer-group prefix of their own, so a
    test or a benchmark shares the platform with everything else without seeing or touching its data."""
    topics = TopicNames(**{logical: f"{prefix}.{name}" for logical, name in TopicNames().model_dump().items()})
    postgres = settings.postgres.model_copy(update={"services_schema": re.sub(r"[^a-z0-9_]", "_", prefix.lower())})
    services = settings.services.model_copy(update={"consumer_group_prefix": f"{prefix}-services"})
    schema = postgres.services_schema
    features = settings.features.model_copy(update={
        "project": schema if schema and schema[0].isalpha() else f"p{schema}", "offline_schema": f"{schema}_features",
    })  # fmt: skip
    search = settings.search.model_copy(update={"index": f"{prefix}.content", "graph": f"{prefix}.cowatch"})
    return settings.model_copy(update={
        "topics": topics, "postgres": postgres, "services": services, "features": features, "search": search,
    })  # fmt: skip
