"""What every job shares: the execution environment built from the settings, and how a job is launched."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from pyflink.common import Configuration
from pyflink.datastream import StreamExecutionEnvironment

from suuupra.platform.flink_jars import flink_jars, missing_flink_jars
from suuupra.settings import Settings, load_settings


class JobSetupError(RuntimeError):
    """A job cannot start; the message says what to do."""


def connector_jars(settings: Settings) -> list[Path]:
    missing = missing_flink_jars(settings)
    if missing:
        raise JobSetupError(
            f"jars missing from {settings.paths.flink_jars}: {'; '.join(missing)}; run `suuupra platform install`"
        )
    return flink_jars(settings)


def flink_configuration(settings: Settings, job_name: str) -> Configuration:
    flink = settings.flink
    checkpoints = settings.checkpoint_dir.resolve()
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
    if flink.restore_from is not None:
        values["execution.state-recovery.path"] = flink.restore_from.resolve().as_uri()
    configuration = Configuration()
    for key, value in values.items():
        configuration.set_string(key, value)
    return configuration


def run_job(
    job_name: str, build: Callable[[StreamExecutionEnvironment, Settings, bool], None], argv: list[str] | None
) -> None:
    """A job's `main()`: settings from the environment (and `SUUUPRA_CONFIG`), the job wired by its `build` and run;
    `--bounded` stops at the end the topics have when it starts."""
    args = argv if argv is not None else sys.argv[1:]
    settings = load_settings()
    env = execution_environment(settings, job_name)
    build(env, settings, "--bounded" in args)
    env.execute(job_name)


def execution_environment(settings: Settings, job_name: str) -> StreamExecutionEnvironment:
    env = StreamExecutionEnvironment.get_execution_environment(flink_configuration(settings, job_name))
    env.set_parallelism(settings.flink.parallelism)
    return env


def latest_checkpoint(settings: Settings) -> Path | None:
    """The newest completed checkpoint (a `chk-N` folder with its `_metadata`) of any job under the checkpoint dir."""
    completed = [meta.parent for meta in settings.checkpoint_dir.glob("*/chk-*/_metadata")]
    return max(completed, key=lambda path: path.stat().st_mtime, default=None)
