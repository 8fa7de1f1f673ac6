"""`suuupra schemas register | check`: the catalogue against the registry and against git history."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from schemas import Catalog, EventSchema
from suuupra.events import subject_for
from suuupra.schema_tools.compat import check
from suuupra.settings import PROJECT_ROOT, Settings


@dataclass(frozen=True)
class Registration:
    event_type: str
    subject: str
    schema_id: int
    version: int


@dataclass(frozen=True)
class Finding:
    event_type: str
    against: str  # "registry" or "git:<rev>"
    compatible: bool
    messages: tuple[str, ...]


def register_all(settings: Settings, catalog: Catalog, registry: SchemaRegistryClient) -> list[Registration]:
    registrations = []
    for event in catalog.events.values():
        subject = subject_for(settings, event)
        schema_id = registry.register_schema(subject, Schema(event.schema.text, "AVRO"))
        # After the first version exists, every later one must pass this level.
        registry.set_compatibility(subject, settings.registry.compatibility)
        version = registry.lookup_schema(subject, Schema(event.schema.text, "AVRO")).version
        registrations.append(Registration(event.event_type, subject, int(schema_id), int(version or 0)))
    return registrations


def check_against_registry(settings: Settings, catalog: Catalog, registry: SchemaRegistryClient) -> list[Finding]:
    findings = []
    level = settings.registry.compatibility
    for event in catalog.events.values():
        subject = subject_for(settings, event)
        try:
            latest = registry.get_latest_version(subject)
        except SchemaRegistryError as error:
            if error.http_status_code == 404:
                findings.append(Finding(event.event_type, "registry", True, (f"{subject}: new subject",)))
                continue
            raise
        registry_verdict = registry.test_compatibility(subject, Schema(event.schema.text, "AVRO"))
        problems = check(event.schema.text, latest.schema.schema_str or "null", level)
        messages = tuple(f"{subject}{p.path}: {p.message}" for p in problems)
        if not registry_verdict and not messages:
            messages = (f"{subject}: the registry refuses this schema under {level}",)
        findings.append(Finding(event.event_type, "registry", registry_verdict and not problems, messages))
    return findings


def _git_show(rev: str, path: Path) -> str | None:
    relative = path.resolve().relative_to(PROJECT_ROOT)
    result = subprocess.run(
        ["git", "show", f"{rev}:{relative.as_posix()}"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False
    )
    return result.stdout if result.returncode == 0 else None


def git_has_revision(rev: str) -> bool:
    result = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=PROJECT_ROOT, capture_output=True,
        check=False,
    )  # fmt: skip
    return result.returncode == 0


def check_against_git(settings: Settings, catalog: Catalog, rev: str) -> list[Finding]:
    findings = []
    for event in catalog.events.values():
        findings.append(_check_file_against_git(settings, event, rev))
    return findings


def _check_file_against_git(settings: Settings, event: EventSchema, rev: str) -> Finding:
    against = f"git:{rev}"
    old = _git_show(rev, event.path)
    if old is None:
        return Finding(event.event_type, against, True, (f"{event.path.name}: new in the working tree",))
    problems = check(event.schema.text, old, settings.registry.compatibility)
    messages = tuple(f"{event.path.name}{p.path}: {p.message}" for p in problems)
    return Finding(event.event_type, against, not problems, messages)
