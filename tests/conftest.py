"""Tests run against the real local platform; `platform up` is idempotent, so a running one is reused."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from suuupra.clickhouse.migrate import migrate, server_backend
from suuupra.features.store import apply, remove
from suuupra.flink_cluster import FlinkCluster
from suuupra.isolation import isolated_environment
from suuupra.platform.manager import Platform
from suuupra.settings import Settings, load_settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings(profile="local")


@pytest.fixture(scope="session")
def platform(settings: Settings) -> Iterator[Platform]:
    platform = Platform(settings)
    # Leave a platform the developer had running as it was; stop one this session brought up from nothing.
    already_running = any(component.pid() is not None for component in platform.components)
    platform.up()
    yield platform
    if not already_running:
        platform.down()


@pytest.fixture
def isolated(settings: Settings, platform: Platform) -> Iterator[Settings]:
    """Settings whose topics, services' PostgreSQL schema and consumer groups are this test's own (topics created,
    schemas registered), so tests never mix: a relay in one test cannot publish another test's outbox.

    The saga's fraud decisions come from the rule-based stand-in: these tests run no fraud job (the fraud job's own
    tests switch it off)."""
    with isolated_environment(settings, f"test-{uuid.uuid4().hex[:10]}") as own:
        yield own.model_copy(update={"services": own.services.model_copy(update={"fraud_standin": True})})


@pytest.fixture
def job_settings(isolated: Settings, tmp_path: Path) -> Iterator[Settings]:
    database = f"test_{uuid.uuid4().hex[:10]}"
    own = isolated.model_copy(
        update={
            # Copies, not new objects: the platform's hosts and ports stay those of the settings.
            "clickhouse": isolated.clickhouse.model_copy(update={"database": database}),
            "flink": isolated.flink.model_copy(update=dict(
                checkpoint_dir=tmp_path / "checkpoints", consumer_group_prefix=f"test-{uuid.uuid4().hex[:8]}",
                checkpoint_interval_s=2.0, sink_batch_rows=500, sink_batch_delay_s=0.5,
            )),
        }
    )  # fmt: skip
    backend = server_backend(own)
    migrate(backend, database)
    yield own
    backend.query(f"DROP DATABASE IF EXISTS {database}")
    backend.close()


@pytest.fixture
def feature_settings(job_settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    """`job_settings` with a Feast project, registry and offline schema of the test's own, applied; all removed
    afterwards (the online rows too)."""
    own = job_settings.model_copy(
        update={"features": job_settings.features.model_copy(update={"repo_dir": tmp_path / "feature_store"})}
    )
    apply(own)
    yield own
    remove(own)


@pytest.fixture
def session_cluster(settings: Settings) -> Iterator[FlinkCluster]:
    """A standalone Flink session cluster for the test, stopped afterwards."""
    cluster = FlinkCluster(settings)
    cluster.start()
    yield cluster
    cluster.stop()
