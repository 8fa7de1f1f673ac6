"""PostgreSQL from Debian: our own cluster in the platform folder, run as the `postgres` user when we are root."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import psycopg

from suuupra.platform.base import Component, Health, PlatformError, PortSpec, pid_alive

POSTGRES_LIB = Path("/usr/lib/postgresql")
SUPERUSER = "postgres"
# How long a start waits for a killed server's postmaster to be gone before its lock file is judged.
DEAD_LOCK_WAIT_S = 10.0


def _postmaster_alive(pid: int) -> bool:
    """Alive and a PostgreSQL process: after a machine restart the lock's pid may name something else."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return pid_alive(pid) and b"postgres" in command


def _postgres_bin() -> Path | None:
    versions = sorted((p for p in POSTGRES_LIB.glob("*/bin") if (p / "postgres").exists()), key=lambda p: p.parent.name)
    return versions[-1] if versions else None


class Postgres(Component):
    name = "postgres"
    # SIGTERM would wait for every client to disconnect; SIGINT is PostgreSQL's "fast" shutdown.
    stop_signal = signal.SIGINT

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.data_dir / "socket"

    def ports(self) -> Sequence[PortSpec]:
        return [PortSpec(self.settings.postgres.port, "postgres.port")]

    def is_installed(self) -> bool:
        return _postgres_bin() is not None

    def install_hint(self) -> str:
        return "apt-get install -y postgresql"

    def run_as(self) -> str | None:
        # PostgreSQL refuses to run as root.
        return SUPERUSER if os.geteuid() == 0 else None

    def _bin(self, tool: str) -> str:
        folder = _postgres_bin()
        if folder is None:
            raise PlatformError(f"PostgreSQL server binaries not found under {POSTGRES_LIB}: {self.install_hint()}")
        return str(folder / tool)

    def _as_owner(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        user = self.run_as()
        timeout = self.settings.platform.startup_timeout_s
        try:
            return subprocess.run(args, capture_output=True, text=True, check=False, user=user, group=user,
                                  extra_groups=[] if user else None, cwd=self.data_dir, timeout=timeout)  # fmt: skip
        except subprocess.TimeoutExpired as error:
            # A server that takes the connection and never answers must not hang `platform up` with it.
            raise PlatformError(
                f"{Path(args[0]).name} got no answer from PostgreSQL within {timeout:.0f} s; see {self.log_file}"
            ) from error

    def prepare(self) -> None:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if (user := self.run_as()) is not None:
            owner = pwd.getpwnam(user)
            for path in (self.data_dir, self.socket_dir):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        if (self.pgdata / "PG_VERSION").exists():
            self._clear_dead_lock()
            return
        result = self._as_owner([
            self._bin("initdb"), "-D", str(self.pgdata), "-U", SUPERUSER, "-E", "UTF8", "--locale=C.UTF-8",
            "--auth-local=trust", "--auth-host=scram-sha-256",
        ])  # fmt: skip
        if result.returncode != 0:
            raise PlatformError(f"initdb failed: {result.stderr.strip()[-800:]}")

    def _clear_dead_lock(self) -> None:
        """A server killed with -9 leaves `postmaster.pid`; until its parent reaps it, the dead postmaster is a
        zombie, which PostgreSQL's own check takes for a running server ("lock file already exists"). Wait for the
        process to end, then remove the locks of a dead one."""
        lock = self.pgdata / "postmaster.pid"
        try:
            old = int(lock.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        deadline = time.monotonic() + DEAD_LOCK_WAIT_S
        while _postmaster_alive(old) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not _postmaster_alive(old):
            # The socket's lock names the same process.
            for stale in (lock, self.socket_dir / f".s.PGSQL.{self.settings.postgres.port}.lock"):
                stale.unlink(missing_ok=True)

    def command(self) -> list[str]:
        return [
            self._bin("postgres"), "-D", str(self.pgdata), "-p", str(self.settings.postgres.port),
            "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.socket_dir}",
            "-c", "max_connections=200", "-c", "shared_buffers=128MB",
        ]  # fmt: skip

    def _psql(self, sql: str, database: str = "postgres") -> str:
        result = self._as_owner([
            self._bin("psql"), "-h", str(self.socket_dir), "-p", str(self.settings.postgres.port), "-U", SUPERUSER,
            "-d", database, "-v", "ON_ERROR_STOP=1", "-tAc", sql,
        ])  # fmt: skip
        if result.returncode != 0:
            raise PlatformError(f"psql failed: {result.stderr.strip()[-800:]}")
        return result.stdout.strip()

    def accepting(self) -> bool:
        result = self._as_owner(
            [
                self._bin("pg_isready"),
                "-q",
                "-h",
                str(self.socket_dir),
                "-p",
                str(self.settings.postgres.port),
            ]
        )
        return result.returncode == 0

    def after_start(self) -> None:
        """Creates the application role and databases (the registry's among them) if they are missing."""
        settings = self.settings.postgres
        password = settings.password.get_secret_value().replace("'", "''")
        role_exists = self._psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{settings.user}'")
        verb = "ALTER" if role_exists else "CREATE"
        self._psql(f"{verb} ROLE \"{settings.user}\" LOGIN PASSWORD '{password}'")
        for database in (settings.database, settings.registry_database):
            if not self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}'"):
                self._psql(f'CREATE DATABASE "{database}" OWNER "{settings.user}"')

    def health(self) -> Health:
        settings = self.settings.postgres
        dsn = settings.dsn().replace(f"host={settings.host}", "host=127.0.0.1")
        try:
            with psycopg.connect(dsn, connect_timeout=2, options="-c statement_timeout=5000") as connection:
                row = connection.execute("SHOW server_version").fetchone()
        except psycopg.Error as error:
            return Health(False, str(error).strip().splitlines()[0])
        return Health(True, f"postgresql {row[0] if row else '?'}")
