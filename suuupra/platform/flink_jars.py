"""The jars a PyFlink job loads (`pipeline.jars`): connectors fetched from Maven Central and the project's own
JVM functions, built from `connectors/jvm` and stamped with a hash of their sources so a change rebuilds them."""

from __future__ import annotations

import hashlib
from pathlib import Path

from suuupra.settings import Settings

# Jar file name prefixes in <lib>/flink, and the artifact each comes from.
FETCHED_JARS = {
    "flink-sql-connector-kafka": "org.apache.flink:flink-sql-connector-kafka (infra/maven/pom.xml)",
    "flink-connector-jdbc-core": "org.apache.flink:flink-connector-jdbc-core (infra/maven/pom.xml)",
    "flink-connector-jdbc-postgres": "org.apache.flink:flink-connector-jdbc-postgres (infra/maven/pom.xml)",
    "postgresql": "org.postgresql:postgresql (infra/maven/pom.xml)",
}
PROJECT_JAR = "suuupra-flink-connectors.jar"


def flink_jars_installed(settings: Settings) -> bool:
    return all(any(settings.paths.flink_jars.glob(f"{prefix}-*.jar")) for prefix in FETCHED_JARS)


def jvm_connectors_stamp(settings: Settings) -> Path:
    sources = settings.paths.jvm_connectors
    digest = hashlib.sha256()
    for path in sorted([sources / "pom.xml", *(p for p in (sources / "src").rglob("*") if p.is_file())]):
        digest.update(str(path.relative_to(sources)).encode())
        digest.update(path.read_bytes())
    return settings.paths.lib_dir / ".markers" / f"jvm-connectors-{digest.hexdigest()[:16]}"


def jvm_connectors_built(settings: Settings) -> bool:
    return (settings.paths.flink_jars / PROJECT_JAR).is_file() and jvm_connectors_stamp(settings).is_file()


def flink_jars(settings: Settings) -> list[Path]:
    """The jars a job loads: one per fetched connector (the newest, should several versions lie there) and the
    project's own. Anything else in the folder (a connector an earlier version used) is left out."""
    folder = settings.paths.flink_jars
    fetched = [max(folder.glob(f"{prefix}-*.jar")) for prefix in FETCHED_JARS if any(folder.glob(f"{prefix}-*.jar"))]
    return [*fetched, folder / PROJECT_JAR]


def missing_flink_jars(settings: Settings) -> list[str]:
    missing = [source for prefix, source in FETCHED_JARS.items()
               if not any(settings.paths.flink_jars.glob(f"{prefix}-*.jar"))]  # fmt: skip
    if not jvm_connectors_built(settings):
        missing.append(f"{PROJECT_JAR} (connectors/jvm, built from its current sources)")
    return missing
