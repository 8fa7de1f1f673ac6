"""The analytics job submitted to a standalone Flink session cluster (started from the scripts inside the PyFlink
package) finishes its bounded input, and its results in ClickHouse are exactly the oracle's."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from suuupra.flink_cluster import FlinkCluster
from suuupra.settings import Settings
from tests.jobs.analytics_support import SUUUPRA, _assert_matches_oracle, _environment, _publish


@pytest.fixture
def session_cluster(settings: Settings) -> Iterator[FlinkCluster]:
    cluster = FlinkCluster(settings)
    cluster.start()
    yield cluster
    cluster.stop()


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
