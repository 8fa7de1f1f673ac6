"""A running job's metrics in Prometheus' text format, read from its REST API at each scrape: records in and out,
busy and back-pressured time of each task (operator chain), restarts and checkpoints.

`suuupra jobs run` serves them on 127.0.0.1 (`flink.metrics_port`, a free port when 0) for as long as the job runs:
Flink's own Prometheus reporter would do the same from inside the JVM, but in Flink 2.2 it binds every interface and
has no option for the host, and everything of the local platform listens on loopback only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from suuupra.flink_jobs import FlinkRest

TASK_LABEL_CHARS = 120  # a chain's name lists every operator in it; the start names it well enough


class JobMetricsCollector(Collector):
    def __init__(self, rest: FlinkRest, job_id: str, name: str) -> None:
        self.rest, self.job_id, self.name = rest, job_id, name

    def collect(self) -> Iterator[Metric]:
        try:
            detail: dict[str, Any] = self.rest.get(f"/jobs/{self.job_id}")
        except httpx.HTTPError:
            yield self._up(0)
            return
        yield self._up(1 if detail.get("state") == "RUNNING" else 0)
        task = ["job", "task"]
        records_in = CounterMetricFamily("suuupra_job_records_in", "Records the task received", labels=task)
        records_out = CounterMetricFamily("suuupra_job_records_out", "Records the task emitted", labels=task)
        busy = GaugeMetricFamily(
            "suuupra_job_busy_ratio", "Share of time the task's busiest subtask was working", labels=task
        )
        backpressured = GaugeMetricFamily(
            "suuupra_job_backpressured_ratio", "Share of time the task's most held-up subtask waited downstream",
            labels=task,
        )  # fmt: skip
        for vertex in detail.get("vertices", []):
            labels = [self.name, str(vertex.get("name", vertex.get("id")))[:TASK_LABEL_CHARS]]
            metrics = vertex.get("metrics", {})
            records_in.add_metric(labels, float(metrics.get("read-records", 0)))
            records_out.add_metric(labels, float(metrics.get("write-records", 0)))
            shares = self._subtask_maxima(str(vertex["id"]))
            if "busyTimeMsPerSecond" in shares:
                busy.add_metric(labels, shares["busyTimeMsPerSecond"] / 1000)
            if "backPressuredTimeMsPerSecond" in shares:
                backpressured.add_metric(labels, shares["backPressuredTimeMsPerSecond"] / 1000)
        yield from (records_in, records_out, busy, backpressured)
        restarts = GaugeMetricFamily("suuupra_job_restarts", "Restarts since the job started", labels=["job"])
        restarts.add_metric([self.name], self.rest.restarts(self.job_id))
        completed, age, state_bytes = self.rest.checkpoints(self.job_id)
        checkpoints = CounterMetricFamily("suuupra_job_checkpoints", "Checkpoints completed", labels=["job"])
        checkpoints.add_metric([self.name], completed)
        yield from (restarts, checkpoints)
        if age is not None:
            yield self._age(age)
        if state_bytes is not None:
            # The state an aggregate keeps until its TTL drops it grows with every event read (docs/analytics.md).
            size = GaugeMetricFamily(
                "suuupra_job_last_checkpoint_size_bytes", "State size of the last completed checkpoint", labels=["job"]
            )
            size.add_metric([self.name], state_bytes)
            yield size

    def _up(self, value: int) -> GaugeMetricFamily:
        up = GaugeMetricFamily("suuupra_job_up", "1 when the job is RUNNING", labels=["job"])
        up.add_metric([self.name], value)
        return up

    def _age(self, age: float) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "suuupra_job_last_checkpoint_age_seconds", "Age of the last completed checkpoint", labels=["job"]
        )
        family.add_metric([self.name], age)
        return family

    def _subtask_maxima(self, vertex_id: str) -> dict[str, float]:
        try:
            answer = self.rest.get(
                f"/jobs/{self.job_id}/vertices/{vertex_id}/subtasks/metrics",
                get="busyTimeMsPerSecond,backPressuredTimeMsPerSecond",
            )
        except httpx.HTTPError:
            return {}
        return {str(entry["id"]): float(entry["max"]) for entry in answer if "max" in entry}


def serve_job_metrics(rest: FlinkRest, job_id: str, name: str, port: int) -> str:
    """Serves the job's metrics on 127.0.0.1 (`port` 0: a free one) in a daemon thread; returns their URL."""
    registry = CollectorRegistry()
    registry.register(JobMetricsCollector(rest, job_id, name))
    server, _thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    return f"http://127.0.0.1:{server.server_port}/metrics"
