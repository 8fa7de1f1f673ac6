"""Each job checkpoints into a folder of its own, so `suuupra jobs run NAME --restore latest` starts from NAME's newest
completed checkpoint, never from another job's that happens to be newer."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from jobs.runtime import completed_checkpoints, job_checkpoint_dir, latest_checkpoint
from suuupra.cli import jobs_cmd
from suuupra.cli.main import app
from suuupra.settings import Settings


def _settings_in(settings: Settings, folder: Path) -> Settings:
    return settings.model_copy(update={"flink": settings.flink.model_copy(update={"checkpoint_dir": folder})})


def _checkpoint(settings: Settings, job: str, run: str, number: int, age_s: float, complete: bool = True) -> Path:
    """A checkpoint folder as Flink lays it out under the job's folder, its `_metadata` `age_s` seconds old."""
    folder = job_checkpoint_dir(settings, job) / run / f"chk-{number}"
    folder.mkdir(parents=True)
    if complete:
        metadata = folder / "_metadata"
        metadata.write_bytes(b"metadata")
        then = time.time() - age_s
        os.utime(metadata, (then, then))
        os.utime(folder, (then, then))
    return folder


def test_the_latest_checkpoint_is_the_jobs_own_newest_complete_one(settings: Settings, tmp_path: Path) -> None:
    own = _settings_in(settings, tmp_path)
    older_run = _checkpoint(own, "analytics", "run-a", 7, age_s=300)
    newer_run = _checkpoint(own, "analytics", "run-b", 2, age_s=60)
    _checkpoint(own, "analytics", "run-b", 3, age_s=0, complete=False)  # still being written: no _metadata
    _checkpoint(own, "fraud", "run-c", 9, age_s=1)  # another job's, newer than any of the analytics job's

    assert latest_checkpoint(own, "analytics") == newer_run
    assert sorted(completed_checkpoints(own, "analytics")) == sorted([older_run, newer_run])
    assert len(completed_checkpoints(own)) == 3
    assert latest_checkpoint(own, "indexing") is None


def test_restore_latest_without_a_checkpoint_of_the_job_says_what_to_do(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = _settings_in(settings, tmp_path)
    _checkpoint(own, "fraud", "run-c", 9, age_s=1)

    def never_started() -> None:
        raise AssertionError("the job must not start without the checkpoint it was asked to restore from")

    monkeypatch.setattr(jobs_cmd, "job_module", lambda name: SimpleNamespace(main=lambda argv: never_started()))
    result = CliRunner().invoke(
        app, ["jobs", "run", "analytics", "--restore", "latest"], env={"SUUUPRA_FLINK__CHECKPOINT_DIR": str(tmp_path)}
    )
    assert result.exit_code == 1, result.output
    # The console wraps at its width, a long path too: compared without whitespace.
    said = "".join(result.output.split())
    expected = f"no completed checkpoint of analytics under {tmp_path / 'analytics'}; run it without --restore"
    assert "".join(expected.split()) in said, result.output
