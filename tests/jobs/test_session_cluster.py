"""The analytics job submitted to a standalone Flink session cluster (started from the scripts inside the PyFlink
package) finishes its bounded input, and its results in ClickHouse are exactly the oracle's."""

from __future__ import annotations

import subprocess
from pathlib import Path

from suuupra.flink_cluster import FlinkCluster
from suuupra.platform.base import wait_until
from suuupra.settings import Settings
from tests.jobs.analytics_support import (
    SUUUPRA,
    _assert_matches_oracle,
    _dead_letter_offsets,
    _differences,
    _environment,
    _publish,
    raw_rows,
)


def test_submitted_job_finishes_its_bounded_input_into_clickhouse(
    job_settings: Settings, session_cluster: FlinkCluster
) -> None:
    malformed = _publish(job_settings, 2000, seed=23)
    jobmanager = session_cluster.rest_url.removeprefix("http://")
    result = subprocess.run(
        [SUUUPRA, "jobs", "submit", "analytics", "--jobmanager", jobmanager, "--bounded"],
        env=_environment(job_settings), capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Job has been submitted with JobID" in result.stdout
    finished = session_cluster.finished_jobs()
    assert any(job["name"] == "analytics" and job["state"] == "FINISHED" for job in finished), finished
    _assert_matches_oracle(job_settings, malformed)
    # The cluster's JVMs unpack their RPC jar into its own folder, not /tmp.
    assert list(session_cluster.temp_dir.glob("flink-rpc-*.jar")), list(session_cluster.temp_dir.glob("*"))


def test_stop_with_savepoint_and_resume_from_it_gives_the_same_aggregates(
    job_settings: Settings, session_cluster: FlinkCluster, tmp_path: Path
) -> None:
    malformed = _publish(job_settings, 3000, seed=24)
    environment = _environment(job_settings)
    jobmanager = session_cluster.rest_url.removeprefix("http://")
    submit = [SUUUPRA, "jobs", "submit", "analytics", "--jobmanager", jobmanager, "--detached"]

    def run(*command: str) -> str:
        result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300, check=False)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return result.stdout

    run(*submit)
    assert wait_until(lambda: raw_rows(job_settings) > 0, 180, interval=0.5)
    stopped = run(SUUUPRA, "jobs", "stop", "analytics", "--jobmanager", jobmanager, "--savepoint-dir", str(tmp_path))
    savepoint = Path(stopped.replace("\n", "").split("savepoint: ")[1].strip())
    assert (savepoint / "_metadata").exists()

    run(*submit, "--restore", str(savepoint))
    try:
        assert wait_until(lambda: _differences(job_settings) == {}, 300, interval=3), _differences(job_settings)
        assert len(_dead_letter_offsets(job_settings)) == malformed
    finally:
        session_cluster.cancel_all()
