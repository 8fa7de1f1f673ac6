"""Apicurio Registry 3.x (Quarkus distribution from Maven Central), schemas stored in our PostgreSQL."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import httpx

from suuupra.platform.base import Component, Health, PlatformError, PortSpec
from suuupra.settings import JVM_DIR

REGISTRY_MIN_JAVA = 21


def java_major(java: str) -> int:
    try:
        result = subprocess.run([java, "-version"], capture_output=True, text=True, check=False, timeout=20)
    except OSError:
        return 0
    match = re.search(r'version "(\d+)', result.stderr)
    return int(match.group(1)) if match else 0


@cache
def find_java(minimum: int, preferred: str | None) -> str:
    candidates = [preferred] if preferred else ["java", *map(str, sorted(JVM_DIR.glob("*/bin/java"), reverse=True))]
    for java in candidates:
        if java_major(java) >= minimum:
            return java
    raise PlatformError(
        f"Apicurio Registry needs Java {minimum}+ and none was found (looked at: {', '.join(candidates)}). "
        "Install one, or point the setting 'platform.registry_java' (SUUUPRA_PLATFORM__REGISTRY_JAVA) at it."
    )


class SchemaRegistry(Component):
    name = "registry"

    @property
    def distribution(self) -> Path:
        return self.settings.paths.lib_dir / "apicurio"

    def ports(self) -> Sequence[PortSpec]:
        return [PortSpec(self.settings.registry.port, "registry.port")]

    def is_installed(self) -> bool:
        return (self.distribution / "quarkus-run.jar").exists()

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        find_java(REGISTRY_MIN_JAVA, self.settings.platform.registry_java)

    def install_hint(self) -> str:
        return f"{self.settings.platform.maven} -f {self.settings.paths.maven_pom} package"

    def command(self) -> list[str]:
        postgres = self.settings.postgres
        registry = self.settings.registry
        jdbc_url = f"jdbc:postgresql://127.0.0.1:{postgres.port}/{postgres.registry_database}"
        return [
            find_java(REGISTRY_MIN_JAVA, self.settings.platform.registry_java),
            f"-Xmx{registry.heap}",
            f"-Dsuuupra.data={self.data_dir}",  # marks the process as ours for `platform down`
            f"-Dquarkus.http.port={registry.port}",
            "-Dquarkus.http.host=127.0.0.1",
            # Its management interface (metrics, /q/health) would take 0.0.0.0:9000, so a second registry on the
            # machine (another deployment or worktree) could not start: a free port on loopback instead.
            "-Dquarkus.management.host=127.0.0.1",
            "-Dquarkus.management.port=0",
            "-Dquarkus.log.console.level=WARN",
            # The default in-memory storage forgets every schema on restart.
            "-Dapicurio.storage.kind=sql",
            "-Dapicurio.storage.sql.kind=postgresql",
            f"-Dapicurio.datasource.url={jdbc_url}",
            f"-Dapicurio.datasource.username={postgres.user}",
            "-jar",
            str(self.distribution / "quarkus-run.jar"),
        ]

    def environment(self) -> dict[str, str]:
        # Passed in the environment so the password does not show in the process list.
        password = self.settings.postgres.password.get_secret_value()
        return {**super().environment(), "APICURIO_DATASOURCE_PASSWORD": password}

    def health(self) -> Health:
        base = self.settings.registry.base_url.replace(self.settings.registry.host, "127.0.0.1")
        try:
            info = httpx.get(f"{base}/apis/registry/v3/system/info", timeout=2)
            subjects = httpx.get(f"{base}/apis/ccompat/v7/subjects", timeout=2)
        except httpx.HTTPError as error:
            return Health(False, f"{type(error).__name__}: {error}")
        if info.status_code != 200 or subjects.status_code != 200:
            return Health(False, f"system/info {info.status_code}, ccompat subjects {subjects.status_code}")
        about = info.json()
        return Health(
            True,
            f"{about.get('name', 'apicurio')} {about.get('version', '?')}, {len(subjects.json())} subjects",
        )
