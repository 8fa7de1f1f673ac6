"""A local job's JVM keeps its temporary files (the planner and RPC jars it unpacks, its mini-cluster's files) in a
folder of its own under the data folder, never in /tmp: removed when its process ends, and by the next job's start
when its process was killed."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from suuupra.settings import PROJECT_ROOT, load_settings

# A job's process as far as the temporary files go: the local JVM runs a query (mini-cluster and planner), and the
# process reports its JVM's temporary folder and what is in it, then exits or waits to be killed.
RUN_A_QUERY = """
import json, os, sys, time
from pyflink.java_gateway import get_gateway
from pyflink.table import StreamTableEnvironment
from jobs.runtime import execution_environment
from suuupra.settings import load_settings
t_env = StreamTableEnvironment.create(execution_environment(load_settings(), "temp-files-probe"))
with t_env.execute_sql("SELECT * FROM (VALUES (1), (2)) AS v(x)").collect() as rows:
    assert len(list(rows)) == 2
temp = str(get_gateway().jvm.java.lang.System.getProperty("java.io.tmpdir"))
print(json.dumps({"pid": os.getpid(), "temp": temp, "files": sorted(os.listdir(temp))}), flush=True)
if sys.argv[1:] == ["wait"]:
    time.sleep(600)
"""


# What a local JVM leaves in java.io.tmpdir when it is not shut down cleanly (a session cluster, which a test may
# start, makes other flink-* folders there).
LEFT_BY_A_LOCAL_JVM = ("flink-table-planner_", "flink-rpc-akka", "minicluster_")


def _flink_files_in_system_temp() -> set[str]:
    return {name for name in os.listdir(tempfile.gettempdir()) if name.startswith(LEFT_BY_A_LOCAL_JVM)}


def _run_query() -> dict[str, object]:
    result = subprocess.run([sys.executable, "-c", RUN_A_QUERY], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=180, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def test_a_jobs_jvm_keeps_its_temporary_files_in_a_folder_of_its_own_that_goes_with_it() -> None:
    in_system_temp = _flink_files_in_system_temp()
    with tempfile.TemporaryFile() as errors:
        killed = subprocess.Popen([sys.executable, "-c", RUN_A_QUERY, "wait"], cwd=PROJECT_ROOT,
                                  start_new_session=True, stdout=subprocess.PIPE, stderr=errors, text=True)  # fmt: skip
        try:
            assert killed.stdout is not None
            ready, _, _ = select.select([killed.stdout], [], [], 180)
            line = killed.stdout.readline() if ready else ""
            errors.seek(0)
            assert line, f"the probe reported nothing: {errors.read()[-3000:]!r}"
            killed_report = json.loads(line)
        finally:
            os.killpg(killed.pid, signal.SIGKILL)
            killed.wait(30)
    left = Path(str(killed_report["temp"]))
    assert left.is_dir() and any(left.iterdir()), "a killed process cannot clean up after itself"

    report = _run_query()
    own = load_settings().paths.jvm_temp_dir / f"jvm-{report['pid']}"
    assert Path(str(report["temp"])) == own
    files = [str(name) for name in report["files"]]  # type: ignore[attr-defined]
    assert any(name.startswith("flink-table-planner_") for name in files), files  # the 44 MB jar it unpacks
    assert not own.exists()
    assert not left.exists(), "the next job's start removes a killed one's folder"
    assert _flink_files_in_system_temp() <= in_system_temp
