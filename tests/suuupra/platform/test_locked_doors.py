"""The local platform runs with passwords generated once into its data folder: PostgreSQL, ClickHouse, Redis and the
search engine refuse a client without them; the dashboards read through a ClickHouse user that cannot write; and
no secret shows in a log line, a process list or an error message (run late in the suite, this reads the logs of
everything the suite ran before)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import psycopg
import pyflink
import pytest
import redis
from clickhouse_driver import Client
from clickhouse_driver.errors import ServerException

from suuupra.platform.manager import Platform
from suuupra.settings import LOCAL_SECRETS, PLATFORM_STATE_FILE, Settings, load_settings

SUUUPRA = str(Path(sys.executable).parent / "suuupra")


def _secrets(settings: Settings) -> dict[str, str]:
    found = {}
    for section, keys in LOCAL_SECRETS.items():
        for key in keys:
            found[f"{section}.{key}"] = getattr(getattr(settings, section), key).get_secret_value()
    return found


def test_secrets_are_generated_once_private_and_distinct(settings: Settings, platform: Platform) -> None:
    state = settings.paths.data_dir / PLATFORM_STATE_FILE
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    secrets = _secrets(settings)
    assert len(set(secrets.values())) == len(secrets) and all(len(value) >= 24 for value in secrets.values())
    assert _secrets(load_settings(profile="local")) == secrets


def test_every_server_refuses_a_client_without_its_password(settings: Settings, platform: Platform) -> None:
    for port in (settings.redis.port, settings.search.port):
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host="127.0.0.1", port=port, socket_timeout=2).ping()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host="127.0.0.1", port=port, password="guess", socket_timeout=2).ping()
    with pytest.raises(ServerException, match=r"Code: 194"):
        Client("127.0.0.1", port=settings.clickhouse.port, connect_timeout=2).execute("SELECT 1")
    postgres = settings.postgres
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(host="127.0.0.1", port=postgres.port, user=postgres.user, password="suuupra-local",
                        dbname=postgres.database, connect_timeout=5)  # fmt: skip


def test_the_dashboards_reader_reads_and_cannot_write(settings: Settings, platform: Platform) -> None:
    reader = settings.clickhouse.as_reader()
    client = Client("127.0.0.1", port=reader.port, user=reader.user, password=reader.password.get_secret_value())
    assert client.execute("SELECT count() FROM system.tables WHERE database = 'system'")[0][0] > 0
    for statement in (
        "CREATE DATABASE reader_must_not",
        "CREATE TABLE default.reader_must_not (a UInt8) ENGINE = Memory",
        f"DROP DATABASE IF EXISTS {settings.clickhouse.database}",
    ):
        with pytest.raises(ServerException, match="Code: 164"):  # READONLY
            client.execute(statement)


def test_no_secret_in_logs_process_lists_or_error_messages(settings: Settings, platform: Platform) -> None:
    secrets = _secrets(settings)
    wrong = {
        "SUUUPRA_CLICKHOUSE__PASSWORD": "wrong-clickhouse-secret-0",
        "SUUUPRA_POSTGRES__PASSWORD": "wrong-postgres-secret-0",
        "SUUUPRA_REDIS__PASSWORD": "wrong-redis-secret-0",
    }
    outputs = []
    for command, environment in (
        ([SUUUPRA, "status", "--json"], {}),
        ([SUUUPRA, "platform", "status"], {}),
        ([SUUUPRA, "query", "engagement_per_minute"], wrong),
        ([SUUUPRA, "status"], wrong),
        ([SUUUPRA, "features", "get", "nobody"], wrong),
    ):
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False,
                              env={**os.environ, **environment})  # fmt: skip
        outputs.append(" ".join(command[1:]) + "\n" + done.stdout + done.stderr)
    listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    logs = [path for folder in _log_folders(settings) for path in folder.rglob("*") if path.is_file()]
    assert logs, "no logs to look at"
    leaks = [
        f"{name} in {where}"
        for name, secret in {**secrets, **{key.lower(): value for key, value in wrong.items()}}.items()
        for where, text in [
            ("the process list", listing),
            *((output.splitlines()[0], output) for output in outputs),
            *((str(path), path.read_text(errors="replace")) for path in logs),
        ]
        if secret in text
    ]
    assert leaks == []


def _log_folders(settings: Settings) -> list[Path]:
    """Where the platform, the session cluster and the local mini-clusters of `jobs run` write their logs."""
    folders = [
        settings.paths.log_dir,
        settings.paths.data_dir / "flink-cluster" / "log",
        Path(pyflink.__file__).resolve().parent / "log",
    ]
    return [folder for folder in folders if folder.is_dir()]
