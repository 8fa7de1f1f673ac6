"""The extension point of the local platform: one `Component` per server process we run."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from suuupra.private_file import write_private
from suuupra.settings import Settings


class PlatformError(RuntimeError):
    """A component that cannot be installed or started; the message says what to do next."""


@dataclass(frozen=True)
class PortSpec:
    port: int
    setting: str  # dotted settings path, e.g. "kafka.port"

    @property
    def env_var(self) -> str:
        return "SUUUPRA_" + self.setting.upper().replace(".", "__")


@dataclass(frozen=True)
class Health:
    ok: bool
    detail: str


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == 0


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie has exited and only waits to be reaped; but a JVM's main thread also shows "Z" while its other
    # threads still run the shutdown (and hold the ports), so a zombie leader with live threads is alive.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        threads = len(os.listdir(f"/proc/{pid}/task"))
    except (OSError, IndexError):
        return False
    return state != "Z" or threads > 1


def pid_start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot: with the pid, it names one process for good."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def redis_auth_file(data_dir: Path, password: SecretStr | None) -> list[str]:
    """A Redis-protocol server's password as a config file (readable by us only) to name first on its command line:
    given as `--requirepass` it would show in the process list. Nothing when there is no password."""
    if password is None:
        return []
    path = data_dir / "auth.conf"
    write_private(path, f'requirepass "{password.get_secret_value()}"\n')
    return [str(path)]


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


class Component(ABC):
    """A server of the local platform, started and stopped by us, its data under the platform folder.

    Each component runs in the foreground as a child in its own session, so the pid we record is the
    server itself; the pid file records its pid and start time, and `stop` signals only that very process.
    """

    name: str
    stop_signal: signal.Signals = signal.SIGTERM
    stop_timeout_s: float = 30.0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.data_dir = settings.paths.data_dir / self.name

    # --- what each component defines -------------------------------------------------------------
    @abstractmethod
    def ports(self) -> Sequence[PortSpec]: ...

    @abstractmethod
    def is_installed(self) -> bool: ...

    @abstractmethod
    def install_hint(self) -> str:
        """What installs this component (shown when it is missing and cannot be installed for the user)."""

    @abstractmethod
    def prepare(self) -> None:
        """Creates configuration and initialises the data folder; must be idempotent and keep data."""

    @abstractmethod
    def command(self) -> list[str]: ...

    @abstractmethod
    def health(self) -> Health:
        """A real request to the server (not a port probe)."""

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.ports()[0].port}"

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def run_as(self) -> str | None:
        """The user the server must run as, if not the caller."""
        return None

    def accepting(self) -> bool:
        """True once the server takes requests; `after_start` runs then, before the final health check."""
        return self.health().ok

    def after_start(self) -> None:  # noqa: B027 - optional hook, most components need nothing here
        """Runs once the component accepts requests, before the final health check."""

    # --- process management ----------------------------------------------------------------------
    @property
    def pid_file(self) -> Path:
        return self.settings.paths.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.settings.paths.log_dir / f"{self.name}.out"

    def pid(self) -> int | None:
        """The pid of the server we started, if it is still that very process (not a later one with its pid)."""
        try:
            recorded_pid, recorded_start = self.pid_file.read_text().split()
            pid = int(recorded_pid)
        except (OSError, ValueError):
            return None
        if pid_alive(pid) and pid_start_time(pid) == recorded_start:
            return pid
        return None

    def check_ports_free(self) -> None:
        for spec in self.ports():
            if port_open("127.0.0.1", spec.port):
                raise PlatformError(
                    f"{self.name}: port {spec.port} on 127.0.0.1 is already taken by another process. "
                    f"Stop that process, or choose another port with the setting '{spec.setting}' "
                    f"(environment variable {spec.env_var})."
                )

    def start(self) -> int:
        self.check_ports_free()
        self.settings.paths.run_dir.mkdir(parents=True, exist_ok=True)
        self.settings.paths.log_dir.mkdir(parents=True, exist_ok=True)
        user = self.run_as()
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                env=self.environment(),
                start_new_session=True,
                user=user,
                group=user,
                extra_groups=[] if user else None,
            )
        self.pid_file.write_text(f"{process.pid} {pid_start_time(process.pid)}")
        return process.pid

    def exited_early(self) -> str | None:
        """The tail of the log when the process we just started is gone already."""
        if self.pid() is not None:
            return None
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()[-15:]
        except OSError:
            lines = []
        return "\n".join(lines)

    def request_stop(self) -> None:
        """Signals the server to stop without waiting for it; `stop` waits."""
        if (pid := self.pid()) is not None:
            os.kill(pid, self.stop_signal)

    def stop(self) -> bool:
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, self.stop_signal)
        if not wait_until(lambda: not pid_alive(pid), self.stop_timeout_s):
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda: not pid_alive(pid), 10)
        self.pid_file.unlink(missing_ok=True)
        # Only return once the ports are free again, so an `up` right after `down` can bind them.
        wait_until(lambda: not any(port_open("127.0.0.1", spec.port) for spec in self.ports()), 10)
        return True
