"""What a running Flink job is doing, read from its REST API: state, restarts and why, checkpoint age; and the
records that let `suuupra status` find the jobs running on local mini-clusters."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import httpx

from suuupra.platform.base import pid_alive
from suuupra.settings import Settings

Report = Callable[[str], None]
REST_TIMEOUT_S = 5.0


class CheckpointStats(NamedTuple):
    completed: int
    age_s: float | None
    state_bytes: int | None  # the whole state, as the heap backend writes it every time


@dataclass(frozen=True)
class JobHealth:
    name: str
    job_id: str
    where: str  # "local mini-cluster (pid N)" or the session cluster's REST address
    state: str
    restarts: int
    last_checkpoint_age_s: float | None
    checkpoints_completed: int
    last_failure: str | None
    metrics_url: str | None = None  # where `jobs run` serves the job's metrics (a local run's only)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def failure_summary(entry: dict[str, Any]) -> str:
    """One line for a failure of the exception history: its innermost cause that says something (what an operator
    can act on), and the bare exception under it if there is one: a `ClosedChannelException` alone names no server."""
    trace = str(entry.get("stacktrace") or entry.get("exceptionName") or "unknown failure")
    lines = trace.splitlines() or ["unknown failure"]
    causes = [lines[0].strip()]
    causes += [line.strip().removeprefix("Caused by: ") for line in lines if line.startswith("Caused by:")]
    telling = [index for index, cause in enumerate(causes) if ": " in cause]
    chosen = telling[-1] if telling else len(causes) - 1
    line = causes[chosen] if chosen == len(causes) - 1 else f"{causes[chosen]} (from {causes[-1]})"
    task = entry.get("taskName")
    return f"{line[:400]} (in {task})" if task else line[:400]


class FlinkRest:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def get(self, path: str, **params: Any) -> Any:
        """The JSON answer of a GET of the REST API (`path` from `/jobs`, `/overview`...)."""
        response = httpx.get(f"{self.base_url}{path}", params=params or None, timeout=REST_TIMEOUT_S)
        response.raise_for_status()
        return response.json()

    def jobs(self) -> list[dict[str, Any]]:
        return list(self.get("/jobs/overview").get("jobs", []))

    def state(self, job_id: str) -> str:
        return str(self.get(f"/jobs/{job_id}")["state"])

    def restarts(self, job_id: str) -> int:
        metrics = self.get(f"/jobs/{job_id}/metrics", get="numRestarts")
        return int(float(metrics[0]["value"])) if metrics else 0

    def last_failure(self, job_id: str) -> str | None:
        entries = self.get(f"/jobs/{job_id}/exceptions", maxExceptions=1).get("exceptionHistory", {}).get("entries")
        return failure_summary(entries[0]) if entries else None

    def failures_since(self, job_id: str, timestamp_ms: int) -> list[dict[str, Any]]:
        """The failures recorded after `timestamp_ms`, oldest first."""
        history = self.get(f"/jobs/{job_id}/exceptions", maxExceptions=100).get("exceptionHistory", {})
        entries = [entry for entry in history.get("entries", []) if int(entry.get("timestamp", 0)) > timestamp_ms]
        return sorted(entries, key=lambda entry: int(entry.get("timestamp", 0)))

    def checkpoints(self, job_id: str) -> CheckpointStats:
        """Completed checkpoints, and the age (seconds) and full state size (bytes) of the newest one."""
        stats = self.get(f"/jobs/{job_id}/checkpoints")
        completed = int(stats.get("counts", {}).get("completed", 0))
        latest = (stats.get("latest") or {}).get("completed") or {}
        acknowledged = latest.get("latest_ack_timestamp")
        age = max(0.0, time.time() - int(acknowledged) / 1000) if acknowledged else None
        size = latest.get("state_size")
        return CheckpointStats(completed, age, int(size) if size is not None else None)

    def health(self, job_id: str, name: str, where: str) -> JobHealth:
        state = self.state(job_id)
        restarts = self.restarts(job_id) if state not in {"FINISHED", "CANCELED", "FAILED"} else 0
        # Flink counts a restart once it happened; one waiting out its back-off counts here already.
        restarts += 1 if state == "RESTARTING" else 0
        completed, age, _ = self.checkpoints(job_id)
        return JobHealth(name, job_id, where, state, restarts, age, completed, self.last_failure(job_id))


class RestartReporter:
    """Polls a job's REST API in a background thread and reports each restart with its cause, and the recovery."""

    def __init__(self, rest: FlinkRest, job_id: str, name: str, report: Report, interval_s: float = 1.0) -> None:
        self.rest, self.job_id, self.name, self.report, self.interval_s = rest, job_id, name, report, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"restart-reporter-{name}", daemon=True)

    def start(self) -> RestartReporter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        # Each failure is an entry of the job's exception history: every one is reported, in order, even when
        # several happen between two polls (a short back-off restarts a job faster than it is polled).
        reported, newest, recovering = 0, -1, False
        while not self._stop.wait(self.interval_s):
            try:
                for entry in self.rest.failures_since(self.job_id, newest):
                    newest = max(newest, int(entry.get("timestamp", 0)))
                    reported, recovering = reported + 1, True
                    self.report(
                        f"{self.name} failed: {failure_summary(entry)}; restart {reported} from its last checkpoint"
                    )
                if recovering and self.rest.state(self.job_id) == "RUNNING":
                    recovering = False
                    self.report(f"{self.name} running again after restart {reported}")
            except (httpx.HTTPError, KeyError, ValueError, IndexError):
                continue  # the job is starting or ending; the next poll tells


def free_local_port() -> int:
    """A port free on 127.0.0.1 now, for a mini-cluster's REST endpoint (so this process knows where it is)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def local_runs_dir(settings: Settings) -> Path:
    return settings.paths.run_dir / "jobs"


def record_local_run(settings: Settings, name: str, rest_url: str, job_id: str, metrics_url: str | None = None) -> Path:
    """Where `suuupra status` finds a job running on this process's mini-cluster (and its metrics); the caller removes
    the record when the job ends."""
    folder = local_runs_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{os.getpid()}.json"
    record = {"name": name, "pid": os.getpid(), "rest_url": rest_url, "job_id": job_id, "metrics_url": metrics_url}
    path.write_text(json.dumps(record))
    return path


def local_runs(settings: Settings) -> list[dict[str, Any]]:
    """The recorded local runs whose process is alive (records of dead ones are removed)."""
    runs = []
    for path in sorted(local_runs_dir(settings).glob("*.json")):
        try:
            run = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if pid_alive(int(run["pid"])):
            runs.append(run)
        else:
            path.unlink(missing_ok=True)
    return runs


def job_healths(settings: Settings) -> tuple[list[JobHealth], list[str]]:
    """Every job of the local mini-clusters and of the session cluster; and what could not be asked (why)."""
    healths: list[JobHealth] = []
    problems: list[str] = []
    for run in local_runs(settings):
        try:
            health = FlinkRest(run["rest_url"]).health(run["job_id"], run["name"], f"local (pid {run['pid']})")
            healths.append(replace(health, metrics_url=run.get("metrics_url")))
        except httpx.HTTPError as error:
            problems.append(f"{run['name']} (pid {run['pid']}): its REST API at {run['rest_url']} does not answer "
                            f"({type(error).__name__}); it may be starting or stopping")  # fmt: skip
    session = FlinkRest(f"http://{settings.flink.jobmanager}")
    try:
        overview = session.jobs()
    except httpx.HTTPError:
        return healths, problems  # no session cluster: nothing to report
    for job in overview:
        try:
            healths.append(session.health(job["jid"], job["name"], settings.flink.jobmanager))
        except httpx.HTTPError as error:
            problems.append(f"{job['name']} on {settings.flink.jobmanager}: {type(error).__name__}")
    return healths, problems
