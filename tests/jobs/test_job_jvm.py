"""`flink.java_home` chooses the JDK of the local mini-cluster a job's process starts, whatever JAVA_HOME says; the
processes it starts later (a session cluster's scripts, `flink run`) still see its JAVA_HOME."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from suuupra.platform.registry import REGISTRY_MIN_JAVA, find_java
from suuupra.settings import PROJECT_ROOT, load_settings

# What a job's process reports of the JVM it started (jobs/runtime.py's environment, as `suuupra jobs run` makes it).
REPORT_JVM = """
from pyflink.java_gateway import get_gateway
from jobs.runtime import execution_environment
from suuupra.settings import load_settings
execution_environment(load_settings(), "jvm-probe")
import os
print(get_gateway().jvm.java.lang.System.getProperty("java.home"), os.environ.get("JAVA_HOME"))
"""


def _jdk_home() -> Path:
    # The registry's JDK (21+): every installation has one (`platform.registry_java`, else found on PATH or under
    # /usr/lib/jvm).
    java = find_java(REGISTRY_MIN_JAVA, load_settings().platform.registry_java)
    return Path(shutil.which(java) or java).resolve().parent.parent


def test_a_jobs_local_mini_cluster_runs_on_the_configured_jdk_whatever_java_home_says() -> None:
    jdk = _jdk_home()
    environment = {**os.environ, "JAVA_HOME": "/nonexistent-jdk", "SUUUPRA_FLINK__JAVA_HOME": str(jdk)}
    result = subprocess.run([sys.executable, "-c", REPORT_JVM], env=environment, cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    java_home, environment_java_home = result.stdout.strip().splitlines()[-1].split()
    assert Path(java_home).resolve() == jdk
    assert environment_java_home == "/nonexistent-jdk"
