"""`suuupra platform up | down | status`: install what is missing, start, wait for health, stop what we started."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from suuupra.platform.base import Component, Health, PlatformError, wait_until
from suuupra.platform.clickhouse import ClickHouse
from suuupra.platform.flink_jars import flink_jars_installed, jvm_connectors_built, jvm_connectors_stamp
from suuupra.platform.kafka import Kafka, kafka_nodes
from suuupra.platform.postgres import Postgres
from suuupra.platform.redis import Redis
from suuupra.platform.registry import SchemaRegistry
from suuupra.platform.search import SearchEngine
from suuupra.settings import Settings

Report = Callable[[str], None]


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int | None
    address: str
    health: Health


def components(settings: Settings) -> list[Component]:
    """In start order: the registry keeps its schemas in PostgreSQL, so it comes after it."""
    return [
        Postgres(settings),
        *kafka_nodes(settings),
        ClickHouse(settings),
        Redis(settings),
        SearchEngine(settings),
        SchemaRegistry(settings),
    ]


class Platform:
    def __init__(self, settings: Settings, report: Report = lambda _message: None) -> None:
        if not settings.is_local:
            raise PlatformError(
                f"the local platform runs only with profile 'local' (this is '{settings.profile}'): "
                "a production platform is operated elsewhere"
            )
        self.settings = settings
        self.report = report
        self.components = components(settings)

    # --- install ---------------------------------------------------------------------------------
    def install(self) -> None:
        missing_apt = [
            c for c in self.components if isinstance(c, (ClickHouse, Redis, Postgres)) and not c.is_installed()
        ]
        if missing_apt:
            self._apt_install(missing_apt)
        if not all(c.is_installed() for c in self.components) or not flink_jars_installed(self.settings):
            self._maven_fetch()
        if not jvm_connectors_built(self.settings):
            self._build_jvm_connectors()
        still_missing = [c for c in self.components if not c.is_installed()]
        if still_missing:
            hints = "; ".join(f"{c.name}: {c.install_hint()}" for c in still_missing)
            raise PlatformError(f"still missing after install: {hints}")

    def _apt_install(self, missing: Iterable[Component]) -> None:
        names = ", ".join(c.name for c in missing)
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            hints = " && ".join(c.install_hint() for c in missing)
            raise PlatformError(f"{names} not installed; as root run: {hints}")
        self.report(f"installing {names} from Debian packages")
        environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for args in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", *self.settings.platform.apt_packages],
        ):
            result = subprocess.run(args, capture_output=True, text=True, env=environment, check=False)
            if result.returncode != 0:
                raise PlatformError(f"{' '.join(args)} failed: {result.stderr.strip()[-800:]}")

    def _maven_fetch(self) -> None:
        if shutil.which(self.settings.platform.maven) is None:
            raise PlatformError(
                "Maven is needed to fetch Kafka and Apicurio from Maven Central: apt-get install -y maven"
            )
        self.report("fetching Kafka and Apicurio Registry from Maven Central")
        lib = self.settings.paths.lib_dir
        args = [self.settings.platform.maven, "-q", "-B", "-f", str(self.settings.paths.maven_pom),
                f"-Dplatform.lib={lib}", "package"]  # fmt: skip
        result = subprocess.run(args, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise PlatformError(f"maven fetch failed: {(result.stdout + result.stderr).strip()[-1500:]}")

    def _build_jvm_connectors(self) -> None:
        self.report("building the jobs' JVM functions and ClickHouse sink (connectors/jvm)")
        # `clean` too: classes and resources of deleted sources would otherwise stay in target/ and in the jar.
        args = [self.settings.platform.maven, "-q", "-B", "-f", str(self.settings.paths.jvm_connectors / "pom.xml"),
                f"-Dplatform.lib={self.settings.paths.lib_dir}", "clean", "package"]  # fmt: skip
        result = subprocess.run(args, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise PlatformError(f"building connectors/jvm failed: {(result.stdout + result.stderr).strip()[-1500:]}")
        stamp = jvm_connectors_stamp(self.settings)
        for old in stamp.parent.glob("jvm-connectors-*"):
            old.unlink()
        stamp.touch()

    # --- up / down / status ----------------------------------------------------------------------
    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Two `up`/`down` at once (a test session and the CLI) would both start a server and orphan one. The holder
        writes its pid and command into the lock file, so one that waits too long can say whom it waited for."""
        self.settings.paths.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.settings.paths.run_dir / "platform.lock"
        timeout = self.settings.platform.lock_timeout_s
        with path.open("a+") as lock:
            if not wait_until(lambda: _try_lock(lock), timeout, interval=0.2):
                lock.seek(0)
                holder = lock.read().strip() or "a process that did not say which"
                raise PlatformError(
                    f"another `suuupra platform` command has held {path} for over {timeout:.0f} s ({holder}). "
                    "Wait for it to end, or stop it if it hangs, then run this again."
                )
            lock.seek(0)
            lock.truncate()
            lock.write(f"pid {os.getpid()}: {' '.join(sys.argv)}\n")
            lock.flush()
            yield

    def up(self) -> list[ComponentStatus]:
        self.install()
        with self._exclusive():
            return self._up()

    def _up(self) -> list[ComponentStatus]:
        self.settings.paths.data_dir.mkdir(parents=True, exist_ok=True)
        started: list[Component] = []
        # Everything but the registry starts at once; the registry needs PostgreSQL ready first.
        registry = [c for c in self.components if isinstance(c, SchemaRegistry)]
        for component in [c for c in self.components if c not in registry]:
            if self._start_if_needed(component):
                started.append(component)
        for component in [c for c in self.components if c not in registry]:
            self._await(component, component in started)
        for component in registry:
            if self._start_if_needed(component):
                started.append(component)
            self._await(component, component in started)
        return self.status()

    def _start_if_needed(self, component: Component) -> bool:
        if component.pid() is not None:
            self.report(f"{component.name}: already running (pid {component.pid()})")
            return False
        component.prepare()
        pid = component.start()
        self.report(f"{component.name}: started (pid {pid}), waiting for it to answer")
        return True

    def _await(self, component: Component, just_started: bool) -> None:
        timeout = self.settings.platform.startup_timeout_s
        began = time.monotonic()

        def ready() -> bool:
            if (log_tail := component.exited_early()) is not None:
                raise PlatformError(
                    f"{component.name} exited during start-up; last lines of {component.log_file}:\n{log_tail}"
                )
            return component.accepting()

        if not wait_until(ready, timeout, interval=0.25):
            raise PlatformError(f"{component.name} did not answer within {timeout:.0f} s; see {component.log_file}")
        component.after_start()  # idempotent: also repairs a role or database removed by hand
        if not wait_until(lambda: component.health().ok, timeout):
            raise PlatformError(f"{component.name} is up but unhealthy: {component.health().detail}")
        if just_started:
            self.report(f"{component.name}: healthy after {time.monotonic() - began:.1f} s")

    def down(self) -> list[str]:
        with self._exclusive():
            return self._down()

    def _down(self) -> list[str]:
        stopped = []
        # The nodes of a Kafka cluster all at once: stopped one by one, the last waits for a quorum that is gone
        # (the stop timeout) before it shuts down.
        signalled = [c for c in self.components if isinstance(c, Kafka) and c.pid() is not None]
        for node in signalled:
            node.request_stop()
        # Reverse order: the registry goes before the database it writes to.
        for component in reversed(self.components):
            if component.stop() or component in signalled:
                self.report(f"{component.name}: stopped")
                stopped.append(component.name)
        return stopped

    def reset(self) -> list[Path]:
        """Stops the platform and removes what its components keep (topics, tables, databases, keys, indexes), the
        jobs' checkpoints and the feature registry; installed jars and trained models stay. Returns what it
        removed."""
        with self._exclusive():
            self._down()
            removed = []
            kept = [self.settings.checkpoint_dir, self.settings.feature_repo_dir]
            for path in [component.data_dir for component in self.components] + kept:
                if path.exists():
                    shutil.rmtree(path)
                    removed.append(path)
            return removed

    def status(self) -> list[ComponentStatus]:
        statuses = []
        for component in self.components:
            pid = component.pid()
            health = component.health() if pid is not None else Health(False, "not running")
            statuses.append(ComponentStatus(component.name, pid, component.address, health))
        return statuses

    def require_healthy(self) -> None:
        """Raises PlatformDownError naming every component that is not running or not healthy."""
        if down := [f"{s.name} ({s.health.detail})" for s in self.status() if not s.health.ok]:
            raise PlatformDownError(f"not healthy: {', '.join(down)}; run `suuupra platform up`")


def _try_lock(lock: IO[str]) -> bool:
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class PlatformDownError(PlatformError):
    """The platform (or part of it) is not reachable."""
