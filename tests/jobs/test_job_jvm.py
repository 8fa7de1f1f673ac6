"""`flink.java_home` chooses the JDK of the local mini-cluster a job's process starts, whatever JAVA_HOME says; the
processes it starts later (a session cluster's scripts, `flink run`) still see its JAVA_HOME."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jobs.runtime import UNSAFE_MEMORY_ACCESS_CHECKED_SINCE, UNSAFE_MEMORY_ACCESS_OPTION
from suuupra.platform.registry import REGISTRY_MIN_JAVA, find_java
from suuupra.settings import PROJECT_ROOT, installed_jdks, jdk_version, load_settings

# What a job's process reports of the JVM it started (jobs/runtime.py's environment, as `suuupra jobs run` makes it).
REPORT_JVM = """
from pyflink.java_gateway import get_gateway
from jobs.runtime import execution_environment
from suuupra.settings import load_settings
execution_environment(load_settings(), "jvm-probe")
import json, os
jvm = get_gateway().jvm
print(json.dumps({"java_home": jvm.java.lang.System.getProperty("java.home"),
                  "arguments": list(jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()),
                  "JAVA_HOME": os.environ.get("JAVA_HOME"), "JVM_ARGS": os.environ.get("JVM_ARGS")}))
"""


def _jdk_home() -> Path:
    # The registry's JDK (21+): every installation has one (`platform.registry_java`, else found on PATH or under
    # /usr/lib/jvm).
    java = find_java(REGISTRY_MIN_JAVA, load_settings().platform.registry_java)
    return Path(shutil.which(java) or java).resolve().parent.parent


def _report_jvm(jdk: Path) -> dict[str, object]:
    environment = {**os.environ, "JAVA_HOME": "/nonexistent-jdk", "SUUUPRA_FLINK__JAVA_HOME": str(jdk),
                   "JVM_ARGS": "-Dsuuupra.probe=yes"}  # fmt: skip
    result = subprocess.run([sys.executable, "-c", REPORT_JVM], env=environment, cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def test_a_jobs_local_mini_cluster_runs_on_the_configured_jdk_whatever_java_home_says() -> None:
    jdk = _jdk_home()
    report = _report_jvm(jdk)
    assert Path(str(report["java_home"])).resolve() == jdk
    # The job's own environment is as it was: only the launch saw the JDK and the JVM options.
    assert report["JAVA_HOME"] == "/nonexistent-jdk"
    assert report["JVM_ARGS"] == "-Dsuuupra.probe=yes"
    assert "-Dsuuupra.probe=yes" in report["arguments"]  # type: ignore[operator]


@pytest.mark.parametrize("jdk", sorted(installed_jdks()), ids=lambda home: home.name)
def test_sun_misc_unsafe_memory_access_is_allowed_on_the_jdks_that_check_it(jdk: Path) -> None:
    # Java 24+ checks on every Unsafe memory access whether it has warned about it yet; older JVMs do not know the
    # option and would not start with it (the JVM starting at all is part of the test).
    version = jdk_version(jdk)
    assert version is not None, f"{jdk}/release names no JAVA_VERSION"
    report = _report_jvm(jdk)
    allowed = version >= UNSAFE_MEMORY_ACCESS_CHECKED_SINCE
    assert (UNSAFE_MEMORY_ACCESS_OPTION in report["arguments"]) is allowed  # type: ignore[operator]
