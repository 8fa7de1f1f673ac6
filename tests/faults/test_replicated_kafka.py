"""Replicated Kafka for real: a three-broker KRaft cluster as `platform up --brokers 3` makes it (replication 3,
min.insync.replicas 2, here on ports and a data folder of its own beside the shared platform), one broker killed -9
while events are being published and the analytics job reads them. The idempotent acks=all producers lose nothing,
and the job carries on: every table equals the independent computation."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from suuupra.events import event_consumer
from suuupra.platform.base import port_open, wait_until
from suuupra.platform.kafka import Kafka, kafka_nodes
from suuupra.settings import Settings, environment_overrides
from suuupra.simulate.journeys import generate
from suuupra.topics.apply import apply_topics
from suuupra.topics.spec import load_topic_specs
from tests.jobs.analytics_support import (
    START,
    SUUUPRA,
    _dead_letter_offsets,
    _differences,
    _environment,
    _publish,
    journeys,
    raw_rows,
)

HOUR_MS = 3_600_000
BASE_PORTS = (29092, 31092, 33092)  # each node N takes base + 2(N-1) and the next port for its controller


@pytest.fixture
def three_brokers(job_settings: Settings, tmp_path: Path) -> Iterator[tuple[Settings, list[Kafka]]]:
    """The test's settings pointed at a cluster of three brokers of its own, its topics created there."""
    base = next(port for port in BASE_PORTS if not any(port_open("127.0.0.1", port + i) for i in range(6)))
    data_dir = tmp_path / "platform"
    data_dir.mkdir()
    (data_dir / "lib").symlink_to(job_settings.paths.lib_dir)  # the jars the shared platform fetched
    settings = job_settings.model_copy(update={
        "paths": job_settings.paths.model_copy(update={"data_dir": data_dir}),
        "kafka": job_settings.kafka.model_copy(update=dict(
            port=base, controller_port=base + 1, brokers=3, replication_factor=3, min_insync_replicas=2,
        )),
        "flink": job_settings.flink.model_copy(update=dict(restart_initial_backoff_s=0.5, restart_max_backoff_s=4.0)),
    })  # fmt: skip
    nodes = kafka_nodes(settings)
    try:
        for node in nodes:
            node.prepare()
            node.start()
        assert wait_until(lambda: all(node.health().ok for node in nodes), 120, interval=0.5), [
            node.health() for node in nodes
        ]
        # Kept until deleted, as in every isolated environment: the events' times are in the past.
        specs = [replace(spec, retention_ms=-1) for spec in load_topic_specs(settings)]
        plan = apply_topics(AdminClient(settings.kafka.client_config()), specs)
        assert not plan.has_drift
        yield settings, nodes
    finally:
        # Killed, not stopped: the last node of a cluster waits in vain for a quorum to shut down cleanly, and these
        # data are thrown away.
        for node in nodes:
            if (pid := node.pid()) is not None:
                os.kill(pid, signal.SIGKILL)


def _stored_count(settings: Settings) -> int:
    """Records in the domain topics (their partitions' end offsets)."""
    consumer = Consumer({**settings.kafka.client_config(), "group.id": "offsets-only", "log_level": 0})
    try:
        metadata = consumer.list_topics(timeout=5)
        topics = [topic for name, topic in settings.topics.model_dump().items() if name != "dead_letter"]
        partitions = [TopicPartition(topic, partition) for topic in topics
                      for partition in metadata.topics[topic].partitions]  # fmt: skip
        return sum(consumer.get_watermark_offsets(partition, timeout=5)[1] for partition in partitions)
    finally:
        consumer.close()


def test_a_broker_killed_under_load_loses_nothing_and_the_job_carries_on(
    three_brokers: tuple[Settings, list[Kafka]], tmp_path: Path
) -> None:
    settings, nodes = three_brokers
    malformed = _publish(settings, 3000, seed=71)
    output = tmp_path / "job.out"
    environment = {**_environment(settings), **environment_overrides(settings, "kafka")}
    with output.open("wb") as sink:
        job = subprocess.Popen([SUUUPRA, "jobs", "run", "analytics"], env=environment,
                               start_new_session=True, stdout=sink, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        assert wait_until(lambda: raw_rows(settings) > 0, 240, interval=0.5), output.read_text()[-3000:]
        later: list[int] = []
        publishing = threading.Thread(
            target=lambda: later.append(_publish(settings, 6000, seed=72, start_ms=START + 10 * HOUR_MS))
        )
        before = _stored_count(settings)
        publishing.start()
        # Under load: once the second batch's first events are in Kafka, while the rest are still being sent.
        assert wait_until(lambda: _stored_count(settings) > before, 60, interval=0.05)
        assert publishing.is_alive(), "the batch was published before the kill: not under load"
        # Node 1: the one on `kafka.port`, first in every client's bootstrap list.
        os.kill(nodes[0].pid() or 0, signal.SIGKILL)
        killed = time.monotonic()
        publishing.join(120)
        assert later, "publishing with a broker down failed"
        malformed += later[0]
        assert wait_until(lambda: _differences(settings) == {}, 300, interval=2), _differences(settings)
        print(f"kafka, 1 of 3 brokers: every table exact {time.monotonic() - killed:.1f} s after the kill")
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(30)
    assert "analytics failed" not in output.read_text() or "running again" in output.read_text()
    # Nothing lost: every event published is in Kafka, once.
    published = [
        str(event.value["event_id"])
        for seed, start, count in ((71, START, 3000), (72, START + 10 * HOUR_MS, 6000))
        for event in generate(journeys(seed, start), count)
    ]
    topics = [topic for name, topic in settings.topics.model_dump().items() if name != "dead_letter"]
    with event_consumer(settings, topics, read_only=True) as consumer:
        stored = [str(record.value["event_id"]) for record in consumer.read_to_end()]
    copies = Counter(stored)
    assert [event for event in published if copies[event] != 1] == [], "lost, or stored twice by a retry"
    assert len(_dead_letter_offsets(settings)) == malformed
