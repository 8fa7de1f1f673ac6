"""The analytics job on the real platform: exact aggregates for a deterministic input with out-of-order, late and
malformed records; and the same numbers after a kill and a restore from the last checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from jobs.runtime import completed_checkpoints
from suuupra.clickhouse.migrate import server_backend
from suuupra.clickhouse.panels import load_panels
from suuupra.dashboard.server import create_app
from suuupra.platform.base import wait_until
from suuupra.settings import Settings
from tests.browser import chromium, read_dom, serving
from tests.jobs.analytics_support import (
    SUUUPRA,
    _assert_matches_oracle,
    _dead_letter_offsets,
    _differences,
    _environment,
    _publish,
    raw_rows,
)

CONTENT_MINUTE_COLUMNS = (
    "window_start", "content_id", "course_id", "views", "unique_viewers", "watch_seconds", "completed_views",
)  # fmt: skip


def test_bounded_run_gives_exactly_the_independently_computed_aggregates(
    job_settings: Settings, tmp_path: Path
) -> None:
    malformed = _publish(job_settings, 3000, seed=21)
    result = subprocess.run([SUUUPRA, "jobs", "run", "analytics", "--bounded"], env=_environment(job_settings),
                            capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    _assert_matches_oracle(job_settings, malformed)

    # What a user runs to check it: equal now, and a difference once a window holds a wrong count.
    verify = [SUUUPRA, "verify", "analytics"]
    checked = subprocess.run(verify, env=_environment(job_settings), capture_output=True, text=True, check=False)
    assert checked.returncode == 0 and "every table equals" in checked.stdout, checked.stdout + checked.stderr
    backend = server_backend(job_settings)
    database = job_settings.clickhouse.database
    row = backend.query(f"SELECT * FROM {database}.content_minute FINAL LIMIT 1").rows[0]
    backend.insert(f"{database}.content_minute", list(CONTENT_MINUTE_COLUMNS), [(*row[:3], row[3] + 1, *row[4:])])
    backend.close()
    tampered = subprocess.run(verify, env=_environment(job_settings), capture_output=True, text=True, check=False)
    assert tampered.returncode == 1 and "content_minute" in tampered.stdout, tampered.stdout

    # What a person sees after the simulation: every dashboard chart draws the job's data.
    with serving(create_app(job_settings)) as url:
        dom = read_dom(chromium(url, tmp_path / "chromium", "--dump-dom"))
    # The fraud panels chart the fraud job's decisions (tests/services/test_fraud_job.py), not this job's tables.
    analytics_panels = [name for name in load_panels() if not name.startswith("fraud_")]
    points = {name: int(dom.charts.get(name, {}).get("data-points", "0")) for name in analytics_panels}
    assert all(count > 0 for count in points.values()), points


def _start_job(settings: Settings, *extra: str, batch_delay_s: float = 0.5) -> subprocess.Popen[bytes]:
    environment = _environment(settings)
    environment["SUUUPRA_FLINK__SINK_BATCH_DELAY_S"] = str(batch_delay_s)
    return subprocess.Popen([SUUUPRA, "jobs", "run", "analytics", *extra], env=environment, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def _kill(job: subprocess.Popen[bytes]) -> None:
    os.killpg(job.pid, signal.SIGKILL)
    job.wait(30)


@pytest.mark.parametrize("state_backend", ["hashmap", "rocksdb"])
def test_kill_and_restore_from_checkpoint_gives_the_same_aggregates(job_settings: Settings, state_backend: str) -> None:
    # Unaligned checkpoints: an aligned one waits behind the buffered backlog and, on a slow machine, completes only
    # once everything was processed; these are taken mid-stream and hold records in flight, which the restore replays.
    job_settings = job_settings.model_copy(update={"flink": job_settings.flink.model_copy(update={
        "state_backend": state_backend, "aligned_checkpoint_timeout_s": 0,
    })})  # fmt: skip
    malformed = _publish(job_settings, 3000, seed=22)
    # Batches wait in checkpointed state for seconds, so the kill always leaves accepted but unwritten rows behind.
    job = _start_job(job_settings, batch_delay_s=3)
    try:
        assert wait_until(
            lambda: any(completed_checkpoints(job_settings, "analytics")) and raw_rows(job_settings) > 0,
            240, interval=0.5,
        )  # fmt: skip
    finally:
        _kill(job)
    written = raw_rows(job_settings)
    assert 0 < written < 3000, f"the kill must interrupt the job mid-stream: {written} raw rows written"

    restored = _start_job(job_settings, "--restore", "latest")
    try:
        assert wait_until(lambda: _differences(job_settings) == {}, 300, interval=3), _differences(job_settings)
    finally:
        _kill(restored)
    assert len(_dead_letter_offsets(job_settings)) == malformed
