"""What every job shares: the execution environment built from the settings, and how a job is launched."""

from __future__ import annotations

import sys
from pathlib import Path

from pyflink.common import Configuration
from pyflink.datastream import StreamExecutionEnvironment

from suuupra.settings import Settings


class JobSetupError(RuntimeError):
    """A job cannot start; the message says what to do."""


def connector_jars(settings: Settings) -> list[Path]:
    jars = sorted(settings.paths.flink_jars.glob("*.jar"))
    if not any(jar.name.startswith("flink-sql-connector-kafka") for jar in jars):
        raise JobSetupError(
            f"the Flink Kafka connector jar is missing from {settings.paths.flink_jars}: run `suuupra platform install`"
        )
    return jars


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
        "table.exec.source.idle-timeout": f"{flink.source_idle_timeout_s} s",
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


def execution_environment(settings: Settings, job_name: str) -> StreamExecutionEnvironment:
    env = StreamExecutionEnvironment.get_execution_environment(flink_configuration(settings, job_name))
    env.set_parallelism(settings.flink.parallelism)
    return env


def latest_checkpoint(settings: Settings) -> Path | None:
    """The newest completed checkpoint (a `chk-N` folder with its `_metadata`) of any job under the checkpoint dir."""
    completed = [meta.parent for meta in settings.checkpoint_dir.glob("*/chk-*/_metadata")]
    return max(completed, key=lambda path: path.stat().st_mtime, default=None)
