"""ClickHouse server from Debian (18.16 here), on its own ports and folder."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from string import Template

from clickhouse_driver import Client
from clickhouse_driver.errors import Error as ClickHouseError

from suuupra.platform.base import Component, Health, PortSpec
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
        shutil.copyfile(TEMPLATES / "clickhouse-users.xml", self.data_dir / "users.xml")

    def command(self) -> list[str]:
        return ["clickhouse-server", f"--config-file={self.config_file}"]

    def health(self) -> Health:
        client = Client(host="127.0.0.1", port=self.settings.clickhouse.port, connect_timeout=1, send_receive_timeout=3)
        try:
            version = client.execute("SELECT version()")[0][0]
        except (ClickHouseError, OSError, EOFError) as error:
            return Health(False, str(error).splitlines()[0] if str(error) else type(error).__name__)
        finally:
            client.disconnect()
        return Health(True, f"clickhouse {version}")
