"""`platform up` is idempotent, `down` then `up` keeps the data, a taken port is named with its setting."""

from __future__ import annotations

import os
import socket
import time
import uuid
from pathlib import Path

import pytest

from suuupra.events import EventPublisher, event_consumer, make_registry
from suuupra.platform.base import PlatformError, pid_start_time, port_open
from suuupra.platform.kafka import kafka_nodes
from suuupra.platform.manager import Platform
from suuupra.platform.redis import Redis
from suuupra.settings import RedisSettings, Settings
from tests.support import one_event_per_type, wire_value


def test_up_twice_reuses_the_running_processes(platform: Platform) -> None:
    pids = {status.name: status.pid for status in platform.status()}
    began = time.monotonic()
    statuses = platform.up()
    assert time.monotonic() - began < 20
    assert {s.name: s.pid for s in statuses} == pids
    assert all(s.health.ok for s in statuses), [s.health for s in statuses if not s.health.ok]


def test_down_then_up_keeps_topics_events_and_schemas(platform: Platform, isolated: Settings) -> None:
    event = one_event_per_type()["user.registered"]
    publisher = EventPublisher(isolated)
    publisher.publish(event.value)
    publisher.flush()
    subjects_before = set(make_registry(isolated).get_subjects())

    stopped = platform.down()
    assert set(stopped) == {"postgres", "kafka", "clickhouse", "redis", "search", "registry"}
    assert not any(port_open("127.0.0.1", spec.port) for c in platform.components for spec in c.ports())
    assert not any(c.health().ok for c in platform.components)

    statuses = platform.up()
    assert all(s.health.ok for s in statuses)
    assert subjects_before <= set(make_registry(isolated).get_subjects())
    with event_consumer(isolated, [isolated.topics.user]) as consumer:
        values = [wire_value(record.value) for record in consumer.read_to_end()]
    assert values == [event.value]


def test_taken_port_is_reported_with_the_setting_that_changes_it(settings: Settings, tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        own = settings.model_copy(
            update={
                "redis": RedisSettings(port=port),
                "paths": settings.paths.model_copy(update={"data_dir": tmp_path}),
            }
        )
        with pytest.raises(PlatformError) as raised:
            Redis(own).start()
    message = str(raised.value)
    assert f"port {port}" in message
    assert "redis.port" in message
    assert "SUUUPRA_REDIS__PORT" in message


def test_down_leaves_foreign_processes_alone(settings: Settings, tmp_path: Path) -> None:
    """A pid file naming a live process that is not the one we started (a reused pid) must not get it killed."""
    paths = settings.paths.model_copy(update={"data_dir": tmp_path / uuid.uuid4().hex})
    redis = Redis(settings.model_copy(update={"paths": paths}))
    redis.pid_file.parent.mkdir(parents=True)
    redis.pid_file.write_text(f"{os.getpid()} 12345")  # this test's pid, another start time
    assert redis.pid() is None
    assert redis.stop() is False
    assert pid_start_time(os.getpid()) is not None


def test_a_command_that_holds_the_platform_lock_too_long_is_named_not_waited_for_forever(
    settings: Settings, tmp_path: Path
) -> None:
    own = settings.model_copy(update={
        "paths": settings.paths.model_copy(update={"data_dir": tmp_path}),
        "platform": settings.platform.model_copy(update={"lock_timeout_s": 1.0}),
    })  # fmt: skip
    holder, waiter = Platform(own), Platform(own)
    # A flock belongs to the open file, so a second opening in this very process waits as another process would.
    with holder._exclusive(), pytest.raises(PlatformError) as refused:
        waiter.down()
    assert f"pid {os.getpid()}:" in str(refused.value) and "over 1 s" in str(refused.value), refused.value
    assert waiter.down() == []  # released with the holder: it goes ahead at once


def test_kafka_data_of_another_cluster_shape_is_refused_with_what_to_do(settings: Settings, tmp_path: Path) -> None:
    """Data formatted for one node cannot join a quorum of three: `up --brokers 3` says so instead of starting a
    broker that never finds its controllers."""
    own = settings.model_copy(update={
        "paths": settings.paths.model_copy(update={"data_dir": tmp_path}),
        "kafka": settings.kafka.model_copy(update={"brokers": 3, "replication_factor": 3, "min_insync_replicas": 2}),
    })  # fmt: skip
    node = kafka_nodes(own)[0]
    node.log_dirs.mkdir(parents=True)
    (node.log_dirs / "meta.properties").write_text("node.id=1\n")  # what a single node formatted before
    with pytest.raises(PlatformError, match=r"cluster of 1 broker\(s\), not 3.*--brokers 1.*platform down"):
        node.prepare()
    assert [node.name for node in kafka_nodes(own)] == ["kafka", "kafka-2", "kafka-3"]
    assert [node.address for node in kafka_nodes(own)] == [f"127.0.0.1:{settings.kafka.port + 2 * i}" for i in range(3)]


def test_reset_deletes_every_components_data_and_keeps_models_and_jars(settings: Settings, tmp_path: Path) -> None:
    own = settings.model_copy(update={"paths": settings.paths.model_copy(update={"data_dir": tmp_path})})
    platform = Platform(own)
    doomed = [component.data_dir for component in platform.components]
    doomed += [own.checkpoint_dir, own.feature_repo_dir]
    kept = [own.fraud_models_dir, own.paths.lib_dir]
    for folder in doomed + kept:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "something").write_text("x")
    assert len(doomed) >= 8  # six components, checkpoints, the feature registry

    removed = platform.reset()

    assert sorted(removed) == sorted(doomed)
    assert not any(folder.exists() for folder in doomed)
    assert all((folder / "something").is_file() for folder in kept)
    assert platform.reset() == []
