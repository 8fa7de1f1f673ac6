"""The TaskManager of a session cluster killed -9 under the analytics job while the stream goes on, and brought back
the way a user would (`suuupra flink up` starts a TaskManager for the JobManager that lost its own): the job restarts
there from its last checkpoint by its restart strategy, and every table equals the independent computation."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from suuupra.flink_cluster import FlinkCluster
from suuupra.flink_jobs import FlinkRest
from suuupra.platform.base import wait_until
from suuupra.settings import Settings
from tests.jobs.analytics_support import (
    START,
    SUUUPRA,
    _dead_letter_offsets,
    _differences,
    _environment,
    _publish,
    raw_rows,
)

HOUR_MS = 3_600_000


def test_the_job_restarts_on_the_taskmanager_flink_up_brings_back(
    job_settings: Settings, session_cluster: FlinkCluster
) -> None:
    settings = job_settings.model_copy(update={"flink": job_settings.flink.model_copy(update=dict(
        restart_initial_backoff_s=0.5, restart_max_backoff_s=4.0,
    ))})  # fmt: skip
    malformed = _publish(settings, 3000, seed=61)
    jobmanager = session_cluster.rest_url.removeprefix("http://")
    submitted = subprocess.run(
        [SUUUPRA, "jobs", "submit", "analytics", "--jobmanager", jobmanager, "--detached"],
        env=_environment(settings), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stdout[-3000:] + submitted.stderr[-3000:]
    rest = FlinkRest(session_cluster.rest_url)
    try:
        assert wait_until(lambda: raw_rows(settings) > 0, 180, interval=0.5)
        [job] = [job for job in rest.jobs() if job["name"] == "analytics" and job["state"] == "RUNNING"]
        [taskmanager] = session_cluster.taskmanager_pids()
        os.kill(taskmanager, signal.SIGKILL)
        killed = time.monotonic()
        # The stream goes on while no TaskManager runs.
        malformed += _publish(settings, 2000, seed=62, start_ms=START + 10 * HOUR_MS)
        assert wait_until(lambda: rest.restarts(job["jid"]) >= 1 or rest.state(job["jid"]) != "RUNNING", 60)
        assert rest.last_failure(job["jid"]), "the TaskManager's loss is not in the job's exception history"

        brought_back = subprocess.run([SUUUPRA, "flink", "up"], capture_output=True, text=True, timeout=300)
        assert brought_back.returncode == 0, brought_back.stdout + brought_back.stderr
        assert "started TaskManager" in brought_back.stdout
        assert wait_until(lambda: _differences(settings) == {}, 300, interval=2), _differences(settings)
        print(f"taskmanager: healed {time.monotonic() - killed:.1f} s after the kill")
        assert rest.state(job["jid"]) == "RUNNING"
    finally:
        session_cluster.cancel_all()
    assert len(_dead_letter_offsets(settings)) == malformed
