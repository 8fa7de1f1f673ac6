"""Where a benchmark's CPU goes, read from /proc (Linux): the job's process group (with its JIT compiler and garbage
collector threads apart), ClickHouse, the Kafka broker and the whole machine.

On a shared two-core machine events/s move by 20 % from run to run with the neighbours' load; CPU seconds per event
of each process move much less, and they say which process a change made cheaper. A drain of a few million events
also lasts about as long as the JVM takes to compile the job's hot code: the JIT threads' share shows how far from
steady a figure is.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TICKS_PER_S = os.sysconf("SC_CLK_TCK")
JIT_THREADS = ("C1 CompilerThre", "C2 CompilerThre")  # thread names as /proc shows them (15 characters)
GC_THREADS = ("GC Thread", "G1 ")


@dataclass(frozen=True)
class CpuReading:
    """Cumulative CPU seconds at `t` (seconds on the caller's clock)."""

    t: float
    job: float
    jit: float
    gc: float
    clickhouse: float
    kafka: float
    machine: float

    def __sub__(self, earlier: CpuReading) -> CpuReading:
        return CpuReading(
            self.t - earlier.t,
            self.job - earlier.job,
            self.jit - earlier.jit,
            self.gc - earlier.gc,
            self.clickhouse - earlier.clickhouse,
            self.kafka - earlier.kafka,
            self.machine - earlier.machine,
        )


def _stat(path: Path) -> tuple[str, int, float] | None:
    """(name, process group, user + system CPU seconds) of a /proc/<pid>[/task/<tid>]/stat, None once it is gone."""
    try:
        raw = path.read_text()
    except OSError:
        return None
    name = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    return name, int(fields[2]), (int(fields[11]) + int(fields[12])) / TICKS_PER_S


def _pids() -> list[Path]:
    return [entry for entry in PROC.iterdir() if entry.name.isdigit()]


def _pids_running(command_part: str) -> list[Path]:
    found = []
    for entry in _pids():
        try:
            if command_part in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(entry)
        except OSError:
            continue
    return found


def _machine_busy_s() -> float:
    values = [int(v) for v in (PROC / "stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / TICKS_PER_S  # all but idle and iowait


class CpuWatch:
    """Reads the CPU counters once a second in a thread of its own, from `start()` to `stop()`."""

    def __init__(self, job_process_group: int, clock_origin: float, interval_s: float = 1.0) -> None:
        self.job_process_group = job_process_group
        self.clock_origin = clock_origin
        self.interval_s = interval_s
        self.readings: list[CpuReading] = []
        self._clickhouse = _pids_running("clickhouse-server")
        self._kafka = _pids_running("kafka.Kafka")
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-watch", daemon=True)

    def start(self) -> CpuWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stopped.is_set():
            self.readings.append(self.read())
            self._stopped.wait(self.interval_s)

    def read(self) -> CpuReading:
        job = jit = gc = 0.0
        for entry in _pids():
            process = _stat(entry / "stat")
            if process is None or process[1] != self.job_process_group:
                continue
            try:
                threads = list((entry / "task").iterdir())
            except OSError:
                continue
            for thread in threads:
                stat = _stat(thread / "stat")
                if stat is None:
                    continue
                name, _, seconds = stat
                job += seconds
                if name.startswith(JIT_THREADS):
                    jit += seconds
                elif name.startswith(GC_THREADS):
                    gc += seconds
        return CpuReading(
            time.perf_counter() - self.clock_origin,
            job,
            jit,
            gc,
            sum(stat[2] for stat in map(_stat, (p / "stat" for p in self._clickhouse)) if stat),
            sum(stat[2] for stat in map(_stat, (p / "stat" for p in self._kafka)) if stat),
            _machine_busy_s(),
        )

    def at(self, t: float) -> CpuReading | None:
        """The reading nearest to `t`."""
        return min(self.readings, key=lambda reading: abs(reading.t - t), default=None)

    def between(self, start: float, end: float) -> CpuReading | None:
        """CPU seconds used from `start` to `end` (nearest readings), with their elapsed time as `t`."""
        first, last = self.at(start), self.at(end)
        if first is None or last is None or last.t <= first.t:
            return None
        return last - first
