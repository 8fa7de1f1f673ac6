"""`flink.java_home` chooses the JDK of the local mini-cluster a job's process starts, whatever JAVA_HOME says;
`flink.local_gc` its collector, and the job (or `flink.local_c2_threshold_scale`) when C2 compiles, unless the JVM's
options choose; the processes it starts later (a session cluster's scripts, `flink run`) still see its JAVA_HOME and
JVM_ARGS."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jobs import runtime
from jobs.analytics import C2_THRESHOLD_SCALE
from jobs.runtime import (
    C2_THRESHOLD_DEFAULTS,
    UNSAFE_MEMORY_ACCESS_CHECKED_SINCE,
    UNSAFE_MEMORY_ACCESS_OPTION,
    JobSetupError,
    local_jvm_options,
)
from suuupra.platform.registry import REGISTRY_MIN_JAVA, find_java
from suuupra.settings import (
    C2_THRESHOLD_SCALE_MAX,
    PROJECT_ROOT,
    FlinkSettings,
    installed_jdks,
    jdk_version,
    load_settings,
)

# What a job's process reports of the JVM it started (jobs/runtime.py's environment, as `suuupra jobs run` makes it).
REPORT_JVM = """
from pyflink.java_gateway import get_gateway
from jobs.runtime import execution_environment
from suuupra.settings import load_settings
import json, os
execution_environment(load_settings(), "jvm-probe", c2_threshold_scale=int(os.environ.get("PROBE_C2_SCALE", "1")))
jvm = get_gateway().jvm
management = jvm.java.lang.management.ManagementFactory
hotspot = management.getPlatformMXBean(jvm.java.lang.Class.forName("com.sun.management.HotSpotDiagnosticMXBean"))
print(json.dumps({"c2_thresholds": {name: int(hotspot.getVMOption(name).getValue())
                                    for name in ("Tier4InvocationThreshold", "Tier4MinInvocationThreshold",
                                                 "Tier4CompileThreshold")},
                  "java_home": jvm.java.lang.System.getProperty("java.home"),
                  "arguments": list(jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()),
                  "collectors": [gc.getName()
                                 for gc in jvm.java.lang.management.ManagementFactory.getGarbageCollectorMXBeans()],
                  "JAVA_HOME": os.environ.get("JAVA_HOME"), "JVM_ARGS": os.environ.get("JVM_ARGS")}))
"""


def _jdk_home() -> Path:
    # The registry's JDK (21+): every installation has one (`platform.registry_java`, else found on PATH or under
    # /usr/lib/jvm).
    java = find_java(REGISTRY_MIN_JAVA, load_settings().platform.registry_java)
    return Path(shutil.which(java) or java).resolve().parent.parent


def _report_jvm(jdk: Path, **environ: str) -> dict[str, object]:
    environment = {**os.environ, "JAVA_HOME": "/nonexistent-jdk", "SUUUPRA_FLINK__JAVA_HOME": str(jdk),
                   "JVM_ARGS": "-Dsuuupra.probe=yes", **environ}  # fmt: skip
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
    # The default collector (flink.local_gc) is the parallel one: its young and old generation collectors.
    assert "-XX:+UseParallelGC" in report["arguments"]  # type: ignore[operator]
    assert sorted(report["collectors"]) == ["PS MarkSweep", "PS Scavenge"]  # type: ignore[call-overload]
    # A job that does not choose when C2 compiles gets HotSpot's thresholds.
    assert report["c2_thresholds"] == C2_THRESHOLD_DEFAULTS


def test_c2_compiles_after_the_jobs_choice_of_calls() -> None:
    # The analytics job's choice (jobs/analytics.py), made the way its main() makes it.
    report = _report_jvm(_jdk_home(), PROBE_C2_SCALE=str(C2_THRESHOLD_SCALE))
    assert report["c2_thresholds"] == {
        name: C2_THRESHOLD_SCALE * default for name, default in C2_THRESHOLD_DEFAULTS.items()
    }


@pytest.mark.parametrize(("job", "scale"), [("analytics", C2_THRESHOLD_SCALE), ("fraud", 1), ("features", 1)])
def test_each_jobs_main_makes_its_choice_of_when_c2_compiles(
    job: str, scale: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A backlog's drain is the analytics job's hardest moment; the fraud job decides a few hundred payments a second,
    # whose per-payment methods would reach C2 only after minutes at ten times (docs/benchmarks.md, "C2 thresholds").
    chosen: dict[str, int] = {}

    def run_job(
        job_name: str, build: object, argv: object, settings: object = None, c2_threshold_scale: int = 1
    ) -> None:
        chosen[job_name] = c2_threshold_scale

    monkeypatch.setattr(runtime, "run_job", run_job)
    importlib.import_module(f"jobs.{job}").main([])
    assert chosen == {job: scale}


def test_the_analytics_job_delays_c2() -> None:
    # How much is measured (docs/benchmarks.md, "C2 thresholds"), not pinned here.
    assert 1 < C2_THRESHOLD_SCALE <= C2_THRESHOLD_SCALE_MAX


def test_jvm_args_that_set_a_c2_threshold_keep_hotspots_others() -> None:
    report = _report_jvm(_jdk_home(), PROBE_C2_SCALE="10", JVM_ARGS="-XX:Tier4InvocationThreshold=7000")
    assert report["c2_thresholds"] == {**C2_THRESHOLD_DEFAULTS, "Tier4InvocationThreshold": 7000}


def test_the_setting_overrides_the_jobs_choice() -> None:
    report = _report_jvm(_jdk_home(), PROBE_C2_SCALE="10", SUUUPRA_FLINK__LOCAL_C2_THRESHOLD_SCALE="3")
    assert report["c2_thresholds"] == {name: 3 * default for name, default in C2_THRESHOLD_DEFAULTS.items()}


def test_a_c2_threshold_scale_of_one_keeps_hotspots_thresholds() -> None:
    report = _report_jvm(_jdk_home(), PROBE_C2_SCALE="10", SUUUPRA_FLINK__LOCAL_C2_THRESHOLD_SCALE="1")
    assert report["c2_thresholds"] == C2_THRESHOLD_DEFAULTS
    arguments: list[str] = report["arguments"]  # type: ignore[assignment]
    assert not [option for option in arguments if option.startswith("-XX:Tier4")]


def test_jvm_args_that_choose_a_collector_keep_it() -> None:
    # Two collectors and the JVM would not start at all (the launch is part of the test).
    report = _report_jvm(_jdk_home(), JVM_ARGS="-XX:+UseSerialGC -Dsuuupra.probe=yes")
    assert "-XX:+UseParallelGC" not in report["arguments"]  # type: ignore[operator]
    assert sorted(report["collectors"]) == ["Copy", "MarkSweepCompact"]  # type: ignore[call-overload]
    assert report["JVM_ARGS"] == "-XX:+UseSerialGC -Dsuuupra.probe=yes"


def test_an_empty_local_gc_leaves_the_collector_to_the_jvm() -> None:
    report = _report_jvm(_jdk_home(), SUUUPRA_FLINK__LOCAL_GC="")
    assert not [option for option in report["arguments"] if option.endswith("GC")]  # type: ignore[attr-defined]
    # The JVM's own choice depends on the machine (G1 on 2+ CPUs with 1792+ MB, else the serial collector).
    assert "PS Scavenge" not in report["collectors"]  # type: ignore[operator]


def test_the_local_jvm_options_put_the_callers_last() -> None:
    flink = FlinkSettings(java_home=None, local_gc="ZGC")
    assert local_jvm_options(flink, {"JVM_ARGS": "-Xmx2g"}) == "-XX:+UseZGC -Xmx2g"
    assert local_jvm_options(flink, {}) == "-XX:+UseZGC"
    assert local_jvm_options(flink.model_copy(update={"local_gc": None}), {}) == ""
    # Not a collector's choice: an option of the parallel collector's.
    assert local_jvm_options(flink, {"JVM_ARGS": "-XX:+UseAdaptiveSizePolicyWithSystemGC"}) == (
        "-XX:+UseZGC -XX:+UseAdaptiveSizePolicyWithSystemGC"
    )


@pytest.mark.parametrize("variable", ["JVM_ARGS", "FLINK_ENV_JAVA_OPTS", "JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS"])
def test_a_collector_chosen_in_any_of_the_jvms_option_variables_keeps_it(variable: str) -> None:
    flink = FlinkSettings(java_home=None, local_gc="ParallelGC")
    environ = {variable: "-Xss1m -XX:+UseShenandoahGC"}
    assert "-XX:+UseParallelGC" not in local_jvm_options(flink, environ)


@pytest.mark.parametrize("variable", ["JVM_ARGS", "FLINK_ENV_JAVA_OPTS", "JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS"])
@pytest.mark.parametrize(
    "option",
    ["-XX:Tier4CompileThreshold=20000", "-XX:Tier4MinInvocationThreshold=100", "-XX:CompileThresholdScaling=0.5"],
)
def test_when_c2_compiles_set_in_any_option_variable_keeps_hotspots_others(variable: str, option: str) -> None:
    # JAVA_TOOL_OPTIONS and JDK_JAVA_OPTIONS come before the command line, whose options would override theirs, and
    # CompileThresholdScaling would multiply ours.
    flink = FlinkSettings(java_home=None, local_gc=None)
    ours = "-XX:Tier4InvocationThreshold=50000 -XX:Tier4MinInvocationThreshold=6000 -XX:Tier4CompileThreshold=150000"
    assert local_jvm_options(flink, {}) == ""
    assert local_jvm_options(flink, {}, 10) == ours
    assert local_jvm_options(flink, {"JVM_ARGS": "-Xmx2g"}, 10) == f"{ours} -Xmx2g"
    assert local_jvm_options(flink.model_copy(update={"local_c2_threshold_scale": 1}), {}, 10) == ""
    assert local_jvm_options(flink, {variable: f"-Xss1m {option}"}, 10) == (
        f"-Xss1m {option}" if variable == "JVM_ARGS" else ""
    )


@pytest.mark.parametrize(("scale", "message"), [(0, "greater than or equal to 1"), (-10, "greater than or equal to 1"),
                                               (1001, "less than or equal to 1000")])  # fmt: skip
def test_a_c2_threshold_scale_outside_1_to_1000_is_refused(scale: int, message: str) -> None:
    # Much more and HotSpot's Tier4CompileThreshold overflows: the JVM would not start at all.
    with pytest.raises(ValueError, match=message):
        FlinkSettings(local_c2_threshold_scale=scale)
    # A job's own choice too, before any JVM is started with it.
    with pytest.raises(JobSetupError, match=f"c2_threshold_scale is {scale}: .* from 1 .* to 1000; fix the value"):
        local_jvm_options(FlinkSettings(), {}, scale)


@pytest.mark.parametrize("name", ["Parallel", "+UseParallelGC", "Parallel GC", "-XX:+UseZGC", "ConcMarkSweepGC"])
def test_a_local_gc_that_is_not_a_collectors_name_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="is not a collector's name"):
        FlinkSettings(local_gc=name)


@pytest.mark.parametrize("jdk", sorted(installed_jdks()), ids=lambda home: home.name)
def test_sun_misc_unsafe_memory_access_is_allowed_on_the_jdks_that_check_it(jdk: Path) -> None:
    # Java 24+ checks on every Unsafe memory access whether it has warned about it yet; older JVMs do not know the
    # option and would not start with it (the JVM starting at all is part of the test).
    version = jdk_version(jdk)
    assert version is not None, f"{jdk}/release names no JAVA_VERSION"
    report = _report_jvm(jdk)
    allowed = version >= UNSAFE_MEMORY_ACCESS_CHECKED_SINCE
    assert (UNSAFE_MEMORY_ACCESS_OPTION in report["arguments"]) is allowed  # type: ignore[operator]
