"""What every job shares: the execution environment built from the settings, and how a job is launched."""

from __future__ import annotations

import atexit
import os
import re
import shutil
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from py4j.protocol import Py4JJavaError  # type: ignore[import-untyped]
from pyflink.common import Configuration
from pyflink.datastream import StreamExecutionEnvironment

from suuupra.flink_jobs import FlinkRest, RestartReporter, free_local_port, record_local_run
from suuupra.job_metrics import serve_job_metrics
from suuupra.platform.base import pid_alive
from suuupra.platform.flink_jars import flink_jars, missing_flink_jars
from suuupra.settings import (
    C2_THRESHOLD_SCALE_MAX,
    JVM_COLLECTORS,
    FlinkSettings,
    Settings,
    jdk_version,
    load_settings,
)


class JobSetupError(RuntimeError):
    """A job cannot start; the message says what to do."""


def connector_jars(settings: Settings) -> list[Path]:
    missing = missing_flink_jars(settings)
    if missing:
        raise JobSetupError(
            f"jars missing from {settings.paths.flink_jars}: {'; '.join(missing)}; run `suuupra platform install`"
        )
    return flink_jars(settings)


# Flink reads and writes its memory segments through sun.misc.Unsafe. From Java 24 on, every such access first checks
# whether the JVM has warned about it yet (JEP 498), a volatile read that took 3 % of the analytics job's CPU;
# allowing the access outright removes the check (and the warning). Older JVMs refuse the option.
UNSAFE_MEMORY_ACCESS_OPTION = "--sun-misc-unsafe-memory-access=allow"
UNSAFE_MEMORY_ACCESS_CHECKED_SINCE = 24


# A JVM refuses to start with two collectors: options that choose one, wherever the JVM takes them from (PyFlink's
# launcher adds JVM_ARGS and FLINK_ENV_JAVA_OPTS, the JVM itself reads the other two), keep theirs.
CHOOSES_A_COLLECTOR = re.compile(rf"-XX:\+Use(?:{'|'.join(JVM_COLLECTORS)})\b")
JVM_OPTION_VARIABLES = ("JVM_ARGS", "FLINK_ENV_JAVA_OPTS", "JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS")

# HotSpot's defaults (the same on Java 17 to 25) of the thresholds flink.local_c2_threshold_scale multiplies: calls
# before C2 compiles a method, calls if its loops also ran long, and calls plus loop iterations. These rather than
# -XX:CompileThresholdScaling, which also keeps methods interpreted longer before C1 (no faster drain when tried).
C2_THRESHOLD_DEFAULTS = {"Tier4InvocationThreshold": 5000, "Tier4MinInvocationThreshold": 600,
                         "Tier4CompileThreshold": 15000}  # fmt: skip
# Options that set when C2 compiles, wherever the JVM takes them from: the JVM reads JAVA_TOOL_OPTIONS and
# JDK_JAVA_OPTIONS before the command line, whose options would override theirs, and CompileThresholdScaling
# multiplies whatever thresholds are set. Any one of them, and the caller's choice stands alone, not mixed with ours.
SETS_A_C2_THRESHOLD = re.compile(rf"-XX:(?:{'|'.join([*C2_THRESHOLD_DEFAULTS, 'CompileThresholdScaling'])})=")


# Flink's local JVM unpacks its planner and RPC jars (65 MB) into java.io.tmpdir and keeps its mini-cluster's files
# there (blobs, spill files, RocksDB's working copies, native libraries), and deletes them only when it shuts down
# cleanly: a job stopped with Ctrl-C left 78 MB in /tmp, a killed one 125 MB, and a few hundred test and benchmark runs
# filled the disk. Each local JVM gets a folder of its own under the data folder instead (local_temp_dir).
JVM_TEMP_PREFIX = "jvm-"
SETS_THE_TEMP_DIR = re.compile(r"-Djava\.io\.tmpdir=")
# The folders this process made (and will remove at exit).
_TEMP_DIRS_MADE: set[Path] = set()


def local_temp_dir(settings: Settings) -> Path:
    """This process's local JVM's temporary folder, <data_dir>/tmp/jvm-<pid>, removed when the process exits. The
    folders of processes no longer running (killed ones) are removed first, and so is one a dead process with this
    process's pid left (a container's processes often get the same pids run after run)."""
    root = settings.paths.jvm_temp_dir
    root.mkdir(parents=True, exist_ok=True)
    for folder in root.glob(f"{JVM_TEMP_PREFIX}*"):
        pid = folder.name.removeprefix(JVM_TEMP_PREFIX)
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
    own = root / f"{JVM_TEMP_PREFIX}{os.getpid()}"
    if own not in _TEMP_DIRS_MADE:
        shutil.rmtree(own, ignore_errors=True)
        own.mkdir()
        _TEMP_DIRS_MADE.add(own)
        atexit.register(shutil.rmtree, own, ignore_errors=True)
    return own


def local_jvm_options(
    flink: FlinkSettings, environ: Mapping[str, str], c2_threshold_scale: int = 1, temp_dir: Path | None = None
) -> str:
    """JVM_ARGS for the local mini-cluster's JVM: the project's options, then the caller's JVM_ARGS (which win).
    `c2_threshold_scale`: the job's choice, unless `flink.local_c2_threshold_scale` is set. `temp_dir`: its
    java.io.tmpdir, unless the caller's JVM options choose one."""
    options = []
    temp_dir_chosen = any(SETS_THE_TEMP_DIR.search(environ.get(name, "")) for name in JVM_OPTION_VARIABLES)
    # PyFlink's launcher splits JVM_ARGS at whitespace: a path with a space would break the command line (the
    # mini-cluster's own files still go there, by io.tmp.dirs).
    if temp_dir is not None and not temp_dir_chosen and not any(char.isspace() for char in str(temp_dir)):
        options.append(f"-Djava.io.tmpdir={temp_dir}")
    version = jdk_version(flink.java_home) if flink.java_home is not None else None
    if version is not None and version >= UNSAFE_MEMORY_ACCESS_CHECKED_SINCE:
        options.append(UNSAFE_MEMORY_ACCESS_OPTION)
    chosen = any(CHOOSES_A_COLLECTOR.search(environ.get(variable, "")) for variable in JVM_OPTION_VARIABLES)
    if flink.local_gc is not None and not chosen:
        options.append(f"-XX:+Use{flink.local_gc}")
    thresholds_set = any(SETS_A_C2_THRESHOLD.search(environ.get(variable, "")) for variable in JVM_OPTION_VARIABLES)
    if not 1 <= c2_threshold_scale <= C2_THRESHOLD_SCALE_MAX:
        raise JobSetupError(
            f"the job's c2_threshold_scale is {c2_threshold_scale}: it multiplies HotSpot's C2 thresholds, from 1 "
            f"(theirs) to {C2_THRESHOLD_SCALE_MAX}; fix the value the job's main() passes to run_job"
        )
    scale = c2_threshold_scale if flink.local_c2_threshold_scale is None else flink.local_c2_threshold_scale
    if scale != 1 and not thresholds_set:
        options.extend(f"-XX:{name}={default * scale}" for name, default in C2_THRESHOLD_DEFAULTS.items())
    return " ".join([*options, environ.get("JVM_ARGS", "")]).strip()


def start_local_jvm(flink: FlinkSettings, c2_threshold_scale: int = 1, temp_dir: Path | None = None) -> None:
    """Starts this process's JVM (PyFlink's gateway, the local mini-cluster) on `flink.java_home`'s java, if set, with
    `local_jvm_options`, unless it runs already. JAVA_HOME and JVM_ARGS are set for the launch only: the processes
    this one starts later (a session cluster's scripts, `flink run`) keep their own."""
    from pyflink.java_gateway import get_gateway

    launch_environment = {"JVM_ARGS": local_jvm_options(flink, os.environ, c2_threshold_scale, temp_dir)}
    if flink.java_home is not None:
        launch_environment["JAVA_HOME"] = str(flink.java_home)
    before = {name: os.environ.get(name) for name in launch_environment}
    os.environ.update(launch_environment)
    try:
        get_gateway()
    finally:
        for name, value in before.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value


def flink_configuration(settings: Settings, job_name: str, c2_threshold_scale: int = 1) -> Configuration:
    flink = settings.flink
    temp_dir = None
    if runs_locally():
        temp_dir = local_temp_dir(settings)
        start_local_jvm(flink, c2_threshold_scale, temp_dir)
    checkpoints = job_checkpoint_dir(settings, job_name).resolve()
    values = {
        "pipeline.name": job_name,
        "pipeline.jars": ";".join(jar.resolve().as_uri() for jar in connector_jars(settings)),
        "execution.checkpointing.interval": f"{int(flink.checkpoint_interval_s * 1000)} ms",
        "execution.checkpointing.dir": checkpoints.as_uri(),
        "state.checkpoints.dir": checkpoints.as_uri(),
        # A killed or cancelled job keeps its last checkpoint, so it can be restarted from it.
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "execution.checkpointing.num-retained": "3",
        "state.backend.type": flink.state_backend,
        "restart-strategy.type": "exponential-delay",
        "restart-strategy.exponential-delay.initial-backoff": f"{int(flink.restart_initial_backoff_s * 1000)} ms",
        "restart-strategy.exponential-delay.max-backoff": f"{int(flink.restart_max_backoff_s * 1000)} ms",
        "restart-strategy.exponential-delay.backoff-multiplier": str(flink.restart_backoff_multiplier),
        "restart-strategy.exponential-delay.reset-backoff-threshold": f"{int(flink.restart_reset_after_s * 1000)} ms",
        "restart-strategy.exponential-delay.jitter-factor": str(flink.restart_jitter),
        "table.local-time-zone": "UTC",
        # Flink's SQL operators never hold on to a record they passed on; without reuse every chained operator gets
        # a deep copy of every row (most of a source task's time in this project's jobs).
        "pipeline.object-reuse": "true",
        # Aggregates update continuously: fold a mini-batch of updates into one per key (local-global aggregation).
        "table.exec.mini-batch.enabled": "true",
        "table.exec.mini-batch.allow-latency": f"{flink.mini_batch_latency_ms} ms",
        "table.exec.mini-batch.size": str(flink.mini_batch_rows),
        "table.exec.state.ttl": f"{flink.state_ttl_h} h",
        # The sinks' primary keys are the queries' upsert keys: no materializer needed in front of them.
        "table.exec.sink.upsert-materialize": "NONE",
        "python.fn-execution.bundle.size": str(flink.python_bundle_size),
        "python.executable": sys.executable,
        "python.client.executable": sys.executable,
    }
    if flink.aligned_checkpoint_timeout_s is not None:
        values["execution.checkpointing.unaligned.enabled"] = "true"
        values["execution.checkpointing.aligned-checkpoint-timeout"] = (
            f"{int(flink.aligned_checkpoint_timeout_s * 1000)} ms"
        )
    if temp_dir is not None:
        values["io.tmp.dirs"] = str(temp_dir)
    if flink.restore_from is not None:
        values["execution.state-recovery.path"] = flink.restore_from.resolve().as_uri()
    configuration = Configuration()
    for key, value in values.items():
        configuration.set_string(key, value)
    return configuration


def run_job(
    job_name: str,
    build: Callable[[StreamExecutionEnvironment, Settings, bool], None],
    argv: list[str] | None,
    settings: Settings | None = None,
    c2_threshold_scale: int = 1,
) -> None:
    """A job's `main()`: settings from the environment (and `SUUUPRA_CONFIG`), the job wired by its `build` and run;
    `--bounded` stops at the end the topics have when it starts. `c2_threshold_scale`: the job's choice of when its
    local JVM's C2 compiles (`flink.local_c2_threshold_scale`). On a local mini-cluster the job's REST API is on a
    port of its own: restarts are reported here with their cause, and `suuupra status` finds the job."""
    args = argv if argv is not None else sys.argv[1:]
    settings = settings or load_settings()
    if not runs_locally():
        env = execution_environment(settings, job_name)
        build(env, settings, "--bounded" in args)
        env.execute(job_name)
        return
    rest_port = free_local_port()
    env = execution_environment(settings, job_name, rest_port, c2_threshold_scale)
    build(env, settings, "--bounded" in args)
    client = env.execute_async(job_name)
    job_id = str(client.get_job_id())
    rest = FlinkRest(f"http://127.0.0.1:{rest_port}")
    metrics_url = serve_job_metrics(rest, job_id, job_name, settings.flink.metrics_port)
    print(f"{job_name} metrics (Prometheus) on {metrics_url}", flush=True)
    record = record_local_run(settings, job_name, rest.base_url, job_id, metrics_url)
    reporter = RestartReporter(rest, job_id, job_name, lambda line: print(line, flush=True)).start()
    try:
        client.get_job_execution_result().result()
    except Py4JJavaError as error:
        raise SystemExit(
            f"error: job {job_name} failed and gives up ({innermost_cause(error)}); once the cause is fixed, "
            f"`suuupra jobs run {job_name} --restore latest` continues from its last checkpoint"
        ) from error
    finally:
        reporter.stop()
        record.unlink(missing_ok=True)


def innermost_cause(error: Py4JJavaError) -> str:
    """The deepest cause of a Java exception, the one an operator can act on."""
    cause = error.java_exception
    while cause.getCause() is not None and cause.getCause() != cause:
        cause = cause.getCause()
    return str(cause.toString())[:800]


def runs_locally() -> bool:
    """False under `flink run`, whose driver hands this process its gateway (and the job goes to a cluster)."""
    return "PYFLINK_GATEWAY_PORT" not in os.environ


def execution_environment(
    settings: Settings, job_name: str, local_rest_port: int | None = None, c2_threshold_scale: int = 1
) -> StreamExecutionEnvironment:
    configuration = flink_configuration(settings, job_name, c2_threshold_scale)
    if local_rest_port is not None:
        for key in ("rest.address", "rest.bind-address"):
            configuration.set_string(key, "127.0.0.1")
        configuration.set_string("rest.port", str(local_rest_port))
        configuration.set_string("rest.bind-port", str(local_rest_port))
    env = StreamExecutionEnvironment.get_execution_environment(configuration)
    env.set_parallelism(settings.flink.parallelism)
    return env


def job_checkpoint_dir(settings: Settings, job_name: str) -> Path:
    """Where a job's checkpoints go: a folder per job, in it Flink's folder per run (its job id) with `chk-N` in it, so
    that `--restore latest` finds the job's own."""
    return settings.checkpoint_dir / job_name


def completed_checkpoints(settings: Settings, job_name: str | None = None) -> list[Path]:
    """The completed checkpoints (`chk-N` folders with their `_metadata`) of one job, or of every job."""
    pattern = f"{job_name if job_name is not None else '*'}/*/chk-*/_metadata"  # as job_checkpoint_dir lays them out
    return [meta.parent for meta in settings.checkpoint_dir.glob(pattern)]


def latest_checkpoint(settings: Settings, job_name: str) -> Path | None:
    """The job's newest completed checkpoint, of whichever of its runs wrote it last."""
    return max(completed_checkpoints(settings, job_name), key=lambda path: path.stat().st_mtime, default=None)
