"""The platform's health in one place (`suuupra status`): components, jobs, consumer lag, dead letters and payments
waiting on a fraud decision. Each part is read on its own, so one that is down never hides the others."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from connectors.kafka.dead_letter import read_dead_letters
from suuupra.flink_jobs import JobHealth, job_healths
from suuupra.platform.base import PlatformError
from suuupra.platform.manager import ComponentStatus, Platform
from suuupra.settings import Settings

KAFKA_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int
    end: int

    @property
    def lag(self) -> int:
        return max(0, self.end - self.committed)


@dataclass(frozen=True)
class PendingPayments:
    count: int
    oldest_age_s: float | None


@dataclass
class PlatformReport:
    components: list[ComponentStatus] = field(default_factory=list)
    jobs: list[JobHealth] = field(default_factory=list)
    lag: list[PartitionLag] = field(default_factory=list)
    dead_letters: Counter[tuple[str, str]] = field(default_factory=Counter)  # (failed by, reason code) -> records
    pending_payments: PendingPayments | None = None
    problems: list[str] = field(default_factory=list)  # what could not be read, and why

    @property
    def healthy(self) -> bool:
        components_ok = all(status.health.ok for status in self.components)
        jobs_ok = all(job.state in {"RUNNING", "FINISHED", "CREATED", "INITIALIZING"} for job in self.jobs)
        return components_ok and jobs_ok and not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "components": [
                {"name": s.name, "pid": s.pid, "address": s.address, "ok": s.health.ok, "detail": s.health.detail}
                for s in self.components
            ],
            "jobs": [job.as_dict() for job in self.jobs],
            "lag": [{**vars(entry), "lag": entry.lag} for entry in self.lag],
            "dead_letters": [
                {"failed_by": by, "reason": reason, "records": count}
                for (by, reason), count in sorted(self.dead_letters.items())
            ],
            "pending_payments": vars(self.pending_payments) if self.pending_payments else None,
            "problems": self.problems,
        }


def consumer_lag(settings: Settings) -> list[PartitionLag]:
    """Every consumer group's committed offset against each partition's end (groups that committed nothing, such as
    the throw-away readers of `summary`, have no lag to show)."""
    admin = AdminClient({**settings.kafka.client_config(), "log_level": 0})
    listed = admin.list_consumer_groups(request_timeout=KAFKA_TIMEOUT_S).result()
    groups = sorted(listing.group_id for listing in listed.valid)
    # One group per request (the client's limit), all sent before any answer is awaited.
    pending = [
        future
        for group in groups
        for future in admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group)], request_timeout=KAFKA_TIMEOUT_S
        ).values()
    ]
    committed: list[tuple[str, TopicPartition]] = []
    for future in pending:
        offsets = future.result()
        committed.extend((offsets.group_id, tp) for tp in offsets.topic_partitions or [] if tp.offset >= 0)
    if not committed:
        return []
    unique = {(tp.topic, tp.partition) for _, tp in committed}
    latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
    requests = {TopicPartition(topic, partition): latest for topic, partition in unique}
    ends_futures = admin.list_offsets(requests, request_timeout=KAFKA_TIMEOUT_S)
    ends = {(tp.topic, tp.partition): future.result().offset for tp, future in ends_futures.items()}
    lags = [
        PartitionLag(group, tp.topic, tp.partition, tp.offset, ends[tp.topic, tp.partition]) for group, tp in committed
    ]
    return sorted(lags, key=lambda entry: (entry.group, entry.topic, entry.partition))


def dead_letter_counts(settings: Settings) -> Counter[tuple[str, str]]:
    letters = read_dead_letters(settings.kafka.client_config(), settings.topics.dead_letter)
    return Counter(
        (letter.headers.get("failed.by") or letter.headers.get("original.topic") or "?",
         letter.headers.get("reason.code", "?"))
        for letter in letters
    )  # fmt: skip


def pending_payments(settings: Settings) -> PendingPayments:
    """Payments the services started that have no fraud decision yet (the saga waits on it)."""
    with psycopg.connect(settings.postgres.dsn(), connect_timeout=5) as connection:
        row = connection.execute("""
            SELECT count(*), EXTRACT(EPOCH FROM now() - min(p.created_at))
            FROM payments p
            WHERE p.status = 'INITIATED' AND NOT EXISTS (
                SELECT 1 FROM payment_events e WHERE e.payment_id = p.payment_id
                AND e.event_type = 'payment.fraud_decided')""").fetchone()
    count, oldest = row if row else (0, None)
    return PendingPayments(int(count), float(oldest) if oldest is not None else None)


def platform_report(settings: Settings) -> PlatformReport:
    report = PlatformReport()
    try:
        report.components = Platform(settings).status()
    except PlatformError as error:
        report.problems.append(f"components: {error}")
    jobs, problems = job_healths(settings)
    report.jobs = jobs
    report.problems.extend(f"jobs: {problem}" for problem in problems)
    started = time.monotonic()
    try:
        report.lag = consumer_lag(settings)
        report.dead_letters = dead_letter_counts(settings)
    except (KafkaException, TimeoutError) as error:
        report.problems.append(
            f"kafka at {settings.kafka.bootstrap} did not answer within {time.monotonic() - started:.0f} s ({error}); "
            "is the platform up? (`suuupra platform up`)"
        )
    try:
        report.pending_payments = pending_payments(settings)
    except psycopg.errors.UndefinedTable:
        report.pending_payments = PendingPayments(0, None)  # the services never ran here: nothing can wait
    except psycopg.Error as error:
        report.problems.append(f"postgresql: {str(error).strip().splitlines()[0]}")
    return report


def prometheus_text(report: PlatformReport) -> bytes:
    """The report in Prometheus' text format (the dashboard's `/metrics`): one scrape, the figures of `status`."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector

    class ReportCollector(Collector):
        def collect(self) -> Iterator[Metric]:
            up = GaugeMetricFamily(
                "suuupra_component_up", "1 when the component's health check passed", labels=["component"]
            )
            for status in report.components:
                up.add_metric([status.name], 1 if status.health.ok else 0)
            yield up
            labels = ["job", "where"]
            running = GaugeMetricFamily("suuupra_job_running", "1 when the job is RUNNING", labels=labels)
            restarts = GaugeMetricFamily(
                "suuupra_job_restarts", "Restarts of the job since it was started", labels=labels
            )
            age = GaugeMetricFamily(
                "suuupra_job_last_checkpoint_age_seconds", "Age of the job's last completed checkpoint", labels=labels
            )
            for job in report.jobs:
                running.add_metric([job.name, job.where], 1 if job.state == "RUNNING" else 0)
                restarts.add_metric([job.name, job.where], job.restarts)
                if job.last_checkpoint_age_s is not None:
                    age.add_metric([job.name, job.where], job.last_checkpoint_age_s)
            yield from (running, restarts, age)
            lag = GaugeMetricFamily(
                "suuupra_consumer_lag_records",
                "Records behind the partition's end",
                labels=["group", "topic", "partition"],
            )
            for entry in report.lag:
                lag.add_metric([entry.group, entry.topic, str(entry.partition)], entry.lag)
            yield lag
            letters = GaugeMetricFamily(
                "suuupra_dead_letters", "Records in the dead-letter topic", labels=["failed_by", "reason"]
            )
            for (failed_by, reason), count in report.dead_letters.items():
                letters.add_metric([failed_by, reason], count)
            yield letters
            if report.pending_payments is not None:
                yield GaugeMetricFamily(
                    "suuupra_payments_awaiting_fraud_decision", "Payments initiated with no fraud decision yet",
                    value=report.pending_payments.count,
                )  # fmt: skip
            yield GaugeMetricFamily(
                "suuupra_status_problems", "Parts of the status that could not be read", value=len(report.problems)
            )

    registry = CollectorRegistry()
    registry.register(ReportCollector())
    return bytes(generate_latest(registry))
