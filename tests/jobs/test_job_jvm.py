"""`flink.java_home` chooses the JDK a job's JVM runs on: the local mini-cluster a job's process starts, whatever
JAVA_HOME says, and the session cluster's JobManager and TaskManagers (`env.java.home` in the config they read)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from suuupra.flink_cluster import FlinkCluster
from suuupra.platform.registry import REGISTRY_MIN_JAVA, find_java
from suuupra.settings import PROJECT_ROOT, Settings

# What a job's process reports of the JVM it started (jobs/runtime.py's environment, as `suuupra jobs run` makes it).
REPORT_JVM = """
from pyflink.java_gateway import get_gateway
from jobs.runtime import execution_environment
from suuupra.settings import load_settings
execution_environment(load_settings(), "jvm-probe")
print(get_gateway().jvm.java.lang.System.getProperty("java.home"))
"""


def _jdk_home() -> Path:
    # The registry's JDK (21+): every installation has one, and it is not the default `java` here.
    return Path(find_java(REGISTRY_MIN_JAVA, None)).resolve().parent.parent


def test_a_jobs_local_mini_cluster_runs_on_the_configured_jdk_whatever_java_home_says() -> None:
    jdk = _jdk_home()
    environment = {**os.environ, "JAVA_HOME": "/nonexistent-jdk", "SUUUPRA_FLINK__JAVA_HOME": str(jdk)}
    result = subprocess.run([sys.executable, "-c", REPORT_JVM], env=environment, cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert Path(result.stdout.strip().splitlines()[-1]).resolve() == jdk


def test_the_session_cluster_is_configured_with_the_jdk(settings: Settings, tmp_path: Path) -> None:
    jdk = _jdk_home()
    configured = settings.model_copy(update={
        "flink": settings.flink.model_copy(update={"java_home": jdk}),
        "paths": settings.paths.model_copy(update={"data_dir": tmp_path}),
    })  # fmt: skip
    cluster = FlinkCluster(configured)
    cluster.write_config()
    assert f"env.java.home: {jdk}" in (cluster.conf_dir / "config.yaml").read_text().splitlines()
