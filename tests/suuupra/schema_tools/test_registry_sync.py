"""`schemas check` rejects breaking changes, against the registry and against the last committed version."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry.error import SchemaRegistryError

from connectors.avro.schema import AvroSchema
from schemas import Catalog, default_catalog
from suuupra.events import make_registry, subject_for
from suuupra.schema_tools.registry_sync import check_against_git, check_against_registry, git_has_revision
from suuupra.settings import Settings

EVENT = "payment.initiated"


def _catalog_with(change: Any) -> Catalog:
    """The real catalogue with one schema changed (the file on disk stays as it is)."""
    catalog = default_catalog()
    event = catalog.schema_for(EVENT)
    document = json.loads(event.schema.text)
    change(document)
    changed = replace(event, schema=AvroSchema.from_text(json.dumps(document)))
    return Catalog({**catalog.events, EVENT: changed}, catalog.envelope_fields)


def _remove_required_field(document: dict[str, Any]) -> None:
    document["fields"] = [f for f in document["fields"] if f["name"] != "amount_minor"]


def _change_field_type(document: dict[str, Any]) -> None:
    for field in document["fields"]:
        if field["name"] == "amount_minor":
            field["type"] = "string"


def _add_optional_field(document: dict[str, Any]) -> None:
    document["fields"].append({"name": "merchant_note", "type": ["null", "string"], "default": None, "doc": "x"})


@pytest.mark.parametrize(
    ("change", "expected"),
    [(_remove_required_field, "amount_minor"), (_change_field_type, "amount_minor")],
    ids=["removed-field-without-default", "changed-type"],
)
def test_registry_check_rejects_breaking_changes(isolated: Settings, change: Any, expected: str) -> None:
    catalog = _catalog_with(change)
    findings = {f.event_type: f for f in check_against_registry(isolated, catalog, make_registry(isolated))}
    assert not findings[EVENT].compatible
    assert any(expected in message for message in findings[EVENT].messages)
    assert all(f.compatible for t, f in findings.items() if t != EVENT)

    subject = subject_for(isolated, catalog.schema_for(EVENT))
    with pytest.raises(SchemaRegistryError) as refused:
        make_registry(isolated).register_schema(subject, Schema(catalog.schema_for(EVENT).schema.text, "AVRO"))
    assert refused.value.http_status_code == 409


def test_registry_check_accepts_an_optional_field(isolated: Settings) -> None:
    findings = check_against_registry(isolated, _catalog_with(_add_optional_field), make_registry(isolated))
    assert all(f.compatible for f in findings)


@pytest.mark.skipif(not git_has_revision("HEAD"), reason="needs a git checkout with a commit")
def test_git_check_rejects_breaking_changes_against_the_committed_file(settings: Settings) -> None:
    broken = check_against_git(settings, _catalog_with(_change_field_type), "HEAD")
    assert [f.event_type for f in broken if not f.compatible] == [EVENT]
    assert all(f.compatible for f in check_against_git(settings, _catalog_with(_add_optional_field), "HEAD"))
