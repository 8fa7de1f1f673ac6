"""A standalone Flink session cluster from the scripts inside the PyFlink package, and `flink run` against it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pyflink
import yaml

from suuupra.flink_jobs import FlinkRest, RestartReporter
from suuupra.platform.base import PlatformError, pid_alive, wait_until
from suuupra.settings import Settings

PYFLINK_HOME = Path(pyflink.__file__).resolve().parent
HEARTBEAT_INTERVAL_MS = 2000
PLAIN_PATH = re.compile(r"[A-Za-z0-9_./+-]+")
# Flink's scripts write the pid of each TaskManager they start to a file of this name in the cluster's run folder.
TASKMANAGER_PID_FILES = "flink-*-taskexecutor.pid"


class FlinkCluster:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.paths.data_dir / "flink-cluster"
        self.conf_dir = self.home / "conf"
        self.flink_home = self.home / "dist"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.flink.rest_port}"

    def environment(self) -> dict[str, str]:
        # The interpreter running this (the project's venv) has pyflink and the project installed.
        python = sys.executable
        return {
            **os.environ,
            "FLINK_HOME": str(self.flink_home),
            "FLINK_CONF_DIR": str(self.conf_dir),
            "FLINK_LOG_DIR": str(self.home / "log"),
            "FLINK_PID_DIR": str(self.home / "run"),
            "PYFLINK_CLIENT_EXECUTABLE": python,
        }

    def assemble_distribution(self) -> None:
        """The wheel's own scripts and jars, arranged as a cluster needs them: the wheel keeps `flink-python` in
        `opt/`, but a JobManager must load the Python operators from `lib/`."""
        dist = self.flink_home
        if dist.exists():
            shutil.rmtree(dist)
        shutil.copytree(PYFLINK_HOME / "bin", dist / "bin")
        # Real folders of links: the scripts look for jars with `find`, which does not enter a linked folder.
        for folder in ("lib", "opt", "plugins"):
            (dist / folder).mkdir(parents=True)
            for entry in (PYFLINK_HOME / folder).glob("*") if (PYFLINK_HOME / folder).exists() else []:
                (dist / folder / entry.name).symlink_to(entry)
        for jar in (PYFLINK_HOME / "opt").glob("flink-python*.jar"):
            (dist / "lib" / jar.name).symlink_to(jar)

    @property
    def temp_dir(self) -> Path:
        """java.io.tmpdir and io.tmp.dirs of the cluster's JVMs and of the `flink run` client: the RPC jar each
        unpacks (21 MB), blobs, spill files. In /tmp, where Flink puts them by default, every cluster that was killed
        left them."""
        return self.home / "tmp"

    def running_pids(self) -> list[int]:
        """The JobManager and TaskManager processes of this cluster that still run (by its pid files)."""
        return [pid for pids in self._live_pids("flink-*.pid").values() for pid in pids]

    def write_config(self) -> None:
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        for folder in ("log", "run"):
            (self.home / folder).mkdir(parents=True, exist_ok=True)
        # What a killed cluster left behind goes, unless a JVM of it still runs (its REST API may only be slow).
        if not self.running_pids():
            shutil.rmtree(self.temp_dir, ignore_errors=True)
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        # The shipped file's settings (among them the --add-opens options Java 17 needs), flattened so each key is
        # written once: beside a nested key, an override of it would depend on which of the two Flink reads last.
        shipped = _flatten(yaml.safe_load((PYFLINK_HOME / "conf" / "config.yaml").read_text()) or {})
        java_options = str(shipped.get("env.java.opts.all", ""))
        temp_dir = str(self.temp_dir)
        # Flink's daemon script evaluates the JVM options as shell words and io.tmp.dirs splits at ',' and ':': a
        # folder whose path has other characters than these keeps Flink's default, /tmp.
        temp_options: dict[str, str] = {}
        if PLAIN_PATH.fullmatch(temp_dir):
            java_options = f"{java_options} -Djava.io.tmpdir={temp_dir}".strip()
            temp_options["io.tmp.dirs"] = temp_dir
        overrides = {
            "env.java.opts.all": java_options,
            **temp_options,
            "rest.port": self.settings.flink.rest_port,
            "rest.address": "127.0.0.1",
            "rest.bind-address": "127.0.0.1",
            "jobmanager.rpc.address": "127.0.0.1",
            "jobmanager.bind-host": "127.0.0.1",
            "taskmanager.bind-host": "127.0.0.1",
            "taskmanager.host": "127.0.0.1",
            "taskmanager.numberOfTaskSlots": 4,
            "taskmanager.memory.process.size": "2048m",
            "jobmanager.memory.process.size": "1024m",
            # A TaskManager that died is noticed within seconds (Flink's default waits 50 s), so its jobs restart on
            # the one `suuupra flink up` starts instead of waiting.
            "heartbeat.interval": HEARTBEAT_INTERVAL_MS,
            "heartbeat.timeout": HEARTBEAT_INTERVAL_MS * 5,
        }
        config = yaml.safe_dump({**shipped, **overrides}, sort_keys=False, width=1 << 20)
        (self.conf_dir / "config.yaml").write_text(config)
        for name in ("log4j.properties", "log4j-console.properties", "log4j-cli.properties"):
            if (PYFLINK_HOME / "conf" / name).exists():
                shutil.copyfile(PYFLINK_HOME / "conf" / name, self.conf_dir / name)

    def is_up(self) -> bool:
        try:
            return httpx.get(f"{self.rest_url}/overview", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def finished_jobs(self) -> list[dict[str, str]]:
        overview = httpx.get(f"{self.rest_url}/jobs/overview", timeout=5).json()
        return [{"name": job["name"], "state": job["state"]} for job in overview.get("jobs", [])]

    def cancel_all(self) -> None:
        overview = httpx.get(f"{self.rest_url}/jobs/overview", timeout=5).json()
        for job in overview.get("jobs", []):
            if job["state"] == "RUNNING":
                httpx.patch(f"{self.rest_url}/jobs/{job['jid']}", params={"mode": "cancel"}, timeout=10)

    def _live_pids(self, pattern: str) -> dict[Path, list[int]]:
        """Each of this cluster's pid files matching `pattern` with the pids in it that still run (a file keeps the
        pid of a process killed -9)."""
        return {
            pid_file: [int(word) for word in pid_file.read_text().split() if word.isdigit() and pid_alive(int(word))]
            for pid_file in (self.home / "run").glob(pattern)
        }

    def taskmanager_pids(self) -> list[int]:
        """The TaskManager processes this cluster started that still run."""
        return [pid for pids in self._live_pids(TASKMANAGER_PID_FILES).values() for pid in pids]

    def _forget_dead_taskmanagers(self) -> None:
        # So the file names only TaskManagers that run: `taskmanager.sh stop` signals what it lists.
        for pid_file, alive in self._live_pids(TASKMANAGER_PID_FILES).items():
            pid_file.write_text("".join(f"{pid}\n" for pid in alive))

    def _run_script(self, script: str, action: str) -> None:
        result = subprocess.run(
            ["bash", str(self.flink_home / "bin" / script), action], env=self.environment(), capture_output=True,
            text=True, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise PlatformError(f"{script} {action} failed: {result.stderr.strip()[-800:]}")

    def start(self, timeout_s: float = 90) -> list[str]:
        """Starts what is missing: the whole cluster, or a TaskManager for a JobManager whose TaskManager died (its
        jobs then restart on the new one from their last checkpoints). Returns what was started."""
        if self.is_up():
            if self.taskmanager_pids():
                return []
            self._forget_dead_taskmanagers()
            self._run_script("taskmanager.sh", "start")
            started = ["TaskManager"]
        else:
            self.assemble_distribution()
            self.write_config()
            for script in ("jobmanager.sh", "taskmanager.sh"):
                self._run_script(script, "start")
            started = ["JobManager", "TaskManager"]

        def taskmanager_registered() -> bool:
            try:
                registered = httpx.get(f"{self.rest_url}/taskmanagers", timeout=2).json().get("taskmanagers", [])
            except (httpx.HTTPError, ValueError):
                return False
            # A TaskManager killed -9 stays listed until its heartbeats time out: count only ones heard from lately
            # (despite its name, the field is the time of the last heartbeat; 0 before the first).
            now_ms = time.time() * 1000
            return any(now_ms - int(manager.get("timeSinceLastHeartbeat", 0)) < HEARTBEAT_INTERVAL_MS * 2
                       or not manager.get("timeSinceLastHeartbeat") for manager in registered)  # fmt: skip

        if not wait_until(taskmanager_registered, timeout_s, interval=0.5):
            raise PlatformError(
                f"the Flink session cluster did not come up in {timeout_s:.0f} s; see {self.home / 'log'}"
            )
        return started

    def stop(self) -> None:
        for script in ("taskmanager.sh", "jobmanager.sh"):
            subprocess.run(["bash", str(self.flink_home / "bin" / script), "stop"], env=self.environment(),
                           capture_output=True, check=False)  # fmt: skip


def running_job_id(jobmanager: str, name: str) -> str:
    overview = httpx.get(f"http://{jobmanager}/jobs/overview", timeout=5).json()
    running = [job["jid"] for job in overview.get("jobs", []) if job["name"] == name and job["state"] == "RUNNING"]
    if len(running) != 1:
        raise PlatformError(f"expected one running job named '{name}' on {jobmanager}, found {len(running)}")
    return str(running[0])


def stop_with_savepoint(jobmanager: str, name: str, directory: Path, timeout_s: float = 120) -> Path:
    """Stops the running job after a savepoint into `directory`; returns the savepoint's folder."""
    job_id = running_job_id(jobmanager, name)
    base = f"http://{jobmanager}/jobs/{job_id}"
    trigger = httpx.post(f"{base}/stop", json={"targetDirectory": directory.resolve().as_uri(), "drain": False},
                         timeout=10).json()["request-id"]  # fmt: skip
    location: list[str] = []

    def completed() -> bool:
        status = httpx.get(f"{base}/savepoints/{trigger}", timeout=5).json()
        if status["status"]["id"] != "COMPLETED":
            return False
        operation = status.get("operation", {})
        if "failure-cause" in operation:
            raise PlatformError(f"savepoint of {name} failed: {operation['failure-cause'].get('class')}")
        location.append(operation["location"])
        return True

    if not wait_until(completed, timeout_s, interval=0.5):
        raise PlatformError(f"the savepoint of {name} did not complete within {timeout_s:.0f} s")
    return Path(location[0].removeprefix("file:"))


SUBMITTED = re.compile(r"Job has been submitted with JobID ([0-9a-f]{32})")


def submit(
    settings: Settings,
    job_file: Path,
    jobmanager: str,
    args: list[str],
    detached: bool = False,
    restore: Path | None = None,
    report: Callable[[str], None] = lambda _line: None,
) -> str:
    """Runs `flink run -py` against a session cluster; returns the client's output. Each line of it goes to `report`
    as it comes, and while an attached run waits for its job, so does each restart of the job with its cause."""
    cluster = FlinkCluster(settings)
    python = cluster.environment()["PYFLINK_CLIENT_EXECUTABLE"]
    if not cluster.flink_home.exists():
        cluster.assemble_distribution()
        cluster.write_config()
    command = [
        "bash", str(cluster.flink_home / "bin" / "flink"), "run", "-m", jobmanager,
        *(["-s", str(restore)] if restore else []),
        "-pyclientexec", python, "-pyexec", python, "-py", str(job_file), *(["-d"] if detached else []), *args,
    ]  # fmt: skip
    lines: list[str] = []
    reporter: RestartReporter | None = None
    with subprocess.Popen(
        command, env=cluster.environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as client:
        assert client.stdout is not None
        for line in client.stdout:
            lines.append(line)
            report(line.rstrip())
            submitted = SUBMITTED.search(line)
            if submitted and not detached and reporter is None:
                name = job_file.stem
                reporter = RestartReporter(FlinkRest(f"http://{jobmanager}"), submitted.group(1), name, report).start()
        returncode = client.wait()
    if reporter is not None:
        reporter.stop()
    output = "".join(lines)
    if returncode != 0:
        raise PlatformError(f"flink run failed ({returncode}): {output.strip()[-2000:]}")
    return output


def _flatten(config: dict[str, object], prefix: str = "") -> dict[str, object]:
    """Flink's nested YAML keys as its dotted ones: {"rest": {"port": 1}} -> {"rest.port": 1}."""
    flat: dict[str, object] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
