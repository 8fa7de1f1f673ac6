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
from dataclasses import astuple, dataclass
from pathlib import Path

from suuupra.platform.manager import components
from suuupra.settings import Settings

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
        return CpuReading(*(now - then for now, then in zip(astuple(self), astuple(earlier), strict=True)))


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


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (all cores) since boot, from /proc/stat."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, (PROC / "stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / TICKS_PER_S


class CpuWatch:
    """Reads the CPU counters once a second in a thread of its own, from `start()` to `stop()`."""

    def __init__(
        self, settings: Settings, job_process_group: int, clock_origin: float, interval_s: float = 1.0
    ) -> None:
        self.job_process_group = job_process_group
        self.clock_origin = clock_origin
        self.interval_s = interval_s
        self.readings: list[CpuReading] = []
        self._threads: dict[tuple[str, str], tuple[bool, float]] = {}  # (pid, tid) -> (a JIT thread, CPU seconds)
        # The local platform's processes (none for a platform operated elsewhere: their figures read 0).
        platform = components(settings) if settings.is_local else []
        running = {c.name: pid for c in platform if (pid := c.pid()) is not None}
        self._clickhouse = [PROC / str(pid) for name, pid in running.items() if name == "clickhouse"]
        self._kafka = [PROC / str(pid) for name, pid in running.items() if name.startswith("kafka")]
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
        # The process's own counters include its exited threads; HotSpot ends idle compiler threads, so the JIT and
        # GC sums keep each thread's last reading once it is gone (a thread's last second may be missed).
        job = 0.0
        for entry in _pids():
            process = _stat(entry / "stat")
            if process is None or process[1] != self.job_process_group:
                continue
            job += process[2]
            try:
                threads = list((entry / "task").iterdir())
            except OSError:
                continue
            for thread in threads:
                stat = _stat(thread / "stat")
                if stat is not None and stat[0].startswith(JIT_THREADS + GC_THREADS):
                    self._threads[(entry.name, thread.name)] = (stat[0].startswith(JIT_THREADS), stat[2])
        jit = sum(seconds for is_jit, seconds in self._threads.values() if is_jit)
        gc = sum(seconds for is_jit, seconds in self._threads.values() if not is_jit)
        return CpuReading(
            time.perf_counter() - self.clock_origin,
            job,
            jit,
            gc,
            sum(stat[2] for stat in map(_stat, (p / "stat" for p in self._clickhouse)) if stat),
            sum(stat[2] for stat in map(_stat, (p / "stat" for p in self._kafka)) if stat),
            machine_busy_seconds(),
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
