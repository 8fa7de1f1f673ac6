"""Fixtures of the job tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from suuupra.features.store import apply, remove
from suuupra.settings import Settings


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
