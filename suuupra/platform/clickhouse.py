"""ClickHouse server from Debian (18.16 here), on its own ports and folder."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Sequence
from pathlib import Path
from string import Template

from clickhouse_driver import Client
from clickhouse_driver.errors import Error as ClickHouseError
from pydantic import SecretStr

from suuupra.platform.base import Component, Health, PlatformError, PortSpec
from suuupra.private_file import write_private
from suuupra.settings import PROJECT_ROOT

TEMPLATES = PROJECT_ROOT / "infra" / "templates"


class ClickHouse(Component):
    name = "clickhouse"

    @property
    def config_file(self) -> Path:
        return self.data_dir / "config.xml"

    def ports(self) -> Sequence[PortSpec]:
        clickhouse = self.settings.clickhouse
        return [
            PortSpec(clickhouse.port, "clickhouse.port"),
            PortSpec(clickhouse.http_port, "clickhouse.http_port"),
        ]

    def is_installed(self) -> bool:
        return shutil.which("clickhouse-server") is not None

    def install_hint(self) -> str:
        return "apt-get install -y clickhouse-server"

    def prepare(self) -> None:
        for folder in ("data", "tmp", "user_files", "format_schemas"):
            (self.data_dir / folder).mkdir(parents=True, exist_ok=True)
        values = {
            "data_dir": str(self.data_dir),
            "log_dir": str(self.settings.paths.log_dir),
            "tcp_port": str(self.settings.clickhouse.port),
            "http_port": str(self.settings.clickhouse.http_port),
        }
        config = Template((TEMPLATES / "clickhouse-config.xml").read_text()).substitute(values)
        self.config_file.write_text(config)
        clickhouse = self.settings.clickhouse
        if clickhouse.user != "default":
            raise PlatformError(
                f"the local ClickHouse has the user 'default', not '{clickhouse.user}' (setting clickhouse.user)"
            )
        users = Template((TEMPLATES / "clickhouse-users.xml").read_text()).substitute(
            default_password_sha256=_sha256(clickhouse.password),
            reader_user=clickhouse.reader_user,
            reader_password_sha256=_sha256(clickhouse.reader_password),
        )
        write_private(self.data_dir / "users.xml", users)

    def command(self) -> list[str]:
        return ["clickhouse-server", f"--config-file={self.config_file}"]

    def health(self) -> Health:
        clickhouse = self.settings.clickhouse
        client = Client(host="127.0.0.1", port=clickhouse.port, user=clickhouse.user,
                        password=clickhouse.password.get_secret_value(), connect_timeout=1,
                        send_receive_timeout=3)  # fmt: skip
        try:
            version = client.execute("SELECT version()")[0][0]
        except (ClickHouseError, OSError, EOFError) as error:
            return Health(False, str(error).splitlines()[0] if str(error) else type(error).__name__)
        finally:
            client.disconnect()
        return Health(True, f"clickhouse {version}")


def _sha256(secret: SecretStr) -> str:
    return hashlib.sha256(secret.get_secret_value().encode()).hexdigest()
