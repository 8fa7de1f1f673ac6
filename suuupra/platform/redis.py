"""Redis from Debian, with an append-only file so the online store survives a restart."""

from __future__ import annotations

import shutil
from collections.abc import Sequence

import redis

from suuupra.platform.base import Component, Health, PortSpec, redis_auth_file


class Redis(Component):
    name = "redis"

    def ports(self) -> Sequence[PortSpec]:
        return [PortSpec(self.settings.redis.port, "redis.port")]

    def is_installed(self) -> bool:
        return shutil.which("redis-server") is not None

    def install_hint(self) -> str:
        return "apt-get install -y redis-server"

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        return [
            "redis-server",
            *redis_auth_file(self.data_dir, self.settings.redis.password),
            "--port", str(self.settings.redis.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.settings.paths.log_dir / "redis.log"),
        ]  # fmt: skip

    def health(self) -> Health:
        password = self.settings.redis.password
        client = redis.Redis(host="127.0.0.1", port=self.settings.redis.port, socket_timeout=1,
                             password=password.get_secret_value() if password else None)  # fmt: skip
        try:
            client.ping()
            info: dict[str, object] = client.info("server")  # type: ignore[assignment]
            version = info.get("redis_version", "?")
        except redis.RedisError as error:
            return Health(False, str(error))
        finally:
            client.close()
        return Health(True, f"redis {version}")
