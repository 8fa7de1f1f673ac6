"""Events/s through the transactional outbox: written with `enqueue`, then published by `OutboxRelay.drain()`.

    .venv/bin/python bench/outbox_relay.py [--events 100000] [--per-transaction 20] [--batch-size 500]
    .venv/bin/python bench/outbox_relay.py --events 10000 --warmup 500      # a quick run

Needs the platform (`suuupra platform up`). Everything is its own and removed at the end: a PostgreSQL schema
(bench_<id>, the setting postgres.services_schema, holding only an outbox) and topics (bench-<id>.*, with their
registry subjects). The relay's advisory lock is keyed by its outbox table, so the benchmark's relay never makes the
relays of other schemas (tests, a running `suuupra services up`) skip their rounds.

Events: the simulator's mix (24 event types; `suuupra.simulate.journeys`), valid against their Avro schemas, as the
services would write them. Generation is not timed. Then:

  enqueue   `enqueue(connection, event)` (Avro validation + INSERT) in transactions of `--per-transaction` events,
            committed one after the other on one connection
  relay     `OutboxRelay(dsn, EventPublisher(settings), batch_size).drain()` until every row is published: per batch,
            SELECT the oldest unpublished rows under the advisory lock, produce them (idempotent, acks=all, lz4,
            linger 20 ms), wait for every acknowledgement, mark them published, commit

`--warmup` events go through both steps first, untimed (connections, producer metadata, registry look-ups).
Reported: events/s of each step, and MB/s (outbox payload JSON for enqueue; Kafka record bytes, key + Avro value,
for the relay). Checked: every event published exactly once into the topics (end offsets), nothing left unpublished.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import psycopg
from confluent_kafka import Consumer, TopicPartition

from connectors.avro.values import to_wire
from schemas import Catalog, default_catalog
from services.outbox.relay import OutboxRelay, RelayReport
from services.outbox.store import create_outbox, enqueue
from suuupra.events import EventPublisher
from suuupra.isolation import isolated_environment
from suuupra.platform.manager import Platform, PlatformDownError
from suuupra.settings import Settings, load_settings
from suuupra.simulate.journeys import SimulationProfile, generate


@dataclass
class Sandbox:
    settings: Settings
    schema: str
    catalog: Catalog

    @property
    def dsn(self) -> str:
        return self.settings.postgres.dsn()  # with the search path of the sandbox's schema


@contextmanager
def sandbox() -> Iterator[Sandbox]:
    base = load_settings()
    if base.is_local:  # a production platform is operated elsewhere; connection errors will say what is missing
        Platform(base).require_healthy()
    with isolated_environment(base, f"bench-{uuid.uuid4().hex[:8]}") as settings:
        assert settings.postgres.services_schema is not None
        box = Sandbox(settings, settings.postgres.services_schema, default_catalog())
        with psycopg.connect(box.dsn, autocommit=True) as connection:
            create_outbox(connection)
        yield box


def line(label: str, events: int, size: int, seconds: float, note: str = "") -> None:
    print(f"{label:<8} {events:>9,} events in {seconds:>7.2f} s = {events / seconds:>9,.0f} events/s "
          f"{size / seconds / 1e6:>6.2f} MB/s  {note}")  # fmt: skip


def write_outbox(box: Sandbox, events: list[dict[str, Any]], per_transaction: int, label: str) -> float:
    """Enqueues every event in transactions of `per_transaction`; returns the seconds it took."""
    step = max(1, len(events) // 10)
    began = last_print = time.perf_counter()
    with psycopg.connect(box.dsn) as connection:
        for start in range(0, len(events), per_transaction):
            with connection.transaction():
                for event in events[start : start + per_transaction]:
                    enqueue(connection, event, box.catalog)
            done = min(start + per_transaction, len(events))
            if label and done // step != start // step and time.perf_counter() - last_print > 5:
                last_print = time.perf_counter()
                print(f"  {label}: {done:,}/{len(events):,} written", flush=True)
    return time.perf_counter() - began


def unpublished(dsn: str) -> int:
    with psycopg.connect(dsn) as connection:
        row = connection.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetchone()
    return int(row[0]) if row else 0


def drain(box: Sandbox, relay: OutboxRelay, total: int, label: str) -> tuple[RelayReport, float]:
    """Runs `relay.drain()`, printing progress every 5 s from a second connection; returns the report and seconds."""
    stop = threading.Event()

    def progress() -> None:
        while not stop.wait(5):
            with suppress(psycopg.Error):
                print(f"  {label}: {total - unpublished(box.dsn):,}/{total:,} published", flush=True)

    watcher = threading.Thread(target=progress, daemon=True)
    if label:
        watcher.start()
    began = time.perf_counter()
    try:
        report = relay.drain()
    finally:
        stop.set()
    return report, time.perf_counter() - began


def topic_records(settings: Settings) -> int:
    """Records in the domain topics (sum of the partitions' end offsets; the topics are new, so they start at 0)."""
    consumer = Consumer({**settings.kafka.client_config(), "group.id": f"bench-{uuid.uuid4()}"})
    try:
        metadata = consumer.list_topics(timeout=30)
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)[1]
            for topic in settings.topics.domain().values()
            for partition in metadata.topics[topic].partitions
        )
    finally:
        consumer.close()


def run(box: Sandbox, args: argparse.Namespace) -> int:
    began = time.perf_counter()
    profile = SimulationProfile(seed=args.seed, users=args.users)
    events = [event.value for event in generate(profile, args.warmup + args.events)]
    warm, timed = events[: args.warmup], events[args.warmup :]
    mix = len({e["event_type"] for e in timed})
    payload_bytes = sum(len(json.dumps(to_wire(e))) for e in timed)
    print(f"{len(events):,} simulated events ({mix} event types) generated in {time.perf_counter() - began:.2f} s "
          f"(not timed); mean outbox payload {payload_bytes / len(timed):.0f} bytes of JSON")  # fmt: skip

    publisher = EventPublisher(box.settings, box.catalog)
    relay = OutboxRelay(box.dsn, publisher, batch_size=args.batch_size)
    if warm:
        write_outbox(box, warm, args.per_transaction, "")
        drain(box, relay, len(warm), "")
        print(f"warm-up: {len(warm):,} events written and relayed (not timed)")

    print(f"enqueue: {len(timed):,} events in transactions of {args.per_transaction} ...")
    seconds = write_outbox(box, timed, args.per_transaction, "enqueue")
    line("enqueue", len(timed), payload_bytes, seconds, f"({math.ceil(len(timed) / args.per_transaction):,} commits)")

    print(f"relay: draining {len(timed):,} events, batches of {args.batch_size} ...")
    sent_before = publisher.producer.bytes_sent
    report, seconds = drain(box, relay, len(timed), "relay")
    sent = publisher.producer.bytes_sent - sent_before
    line("relay", report.published, sent, seconds, f"({report.batches:,} batches; Kafka record bytes)")

    waiting, in_kafka = unpublished(box.dsn), topic_records(box.settings)
    print(f"check: {waiting:,} rows unpublished; {in_kafka:,} records in the bench topics for {len(events):,} events "
          f"written (warm-up included); mean record {sent / max(1, report.published):.0f} bytes")  # fmt: skip
    if report.published != len(timed) or waiting or in_kafka != len(events):
        print("!!! FAILED: the relay did not publish every event exactly once (see the check above)")
        return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000, help="timed events")
    parser.add_argument("--warmup", type=int, default=2_000, help="untimed events written and relayed first")
    parser.add_argument("--per-transaction", type=int, default=20, help="events enqueued per transaction")
    parser.add_argument("--batch-size", type=int, default=500, help="the relay's batch (its default: 500)")
    parser.add_argument("--users", type=int, default=5000, help="simulated users (keys)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if min(args.events, args.per_transaction, args.batch_size, args.users) < 1 or args.warmup < 0:
        parser.error("--events, --per-transaction, --batch-size and --users must be >= 1, --warmup >= 0")

    load_average = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable), load average {load_average}")
    try:
        with sandbox() as box:
            print(f"PostgreSQL schema {box.schema}, topics {box.settings.topics.user.split('.')[0]}.*")
            return run(box, args)
    except PlatformDownError as error:
        print(f"error: the platform is not up ({error}): run `suuupra platform up`", file=sys.stderr)
    except psycopg.OperationalError as error:
        print(f"error: {error}\nis the platform up? run `suuupra platform up`", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
