"""Fixtures of the job tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from suuupra.clickhouse.migrate import migrate, server_backend
from suuupra.features.store import apply, remove
from suuupra.settings import Settings


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
