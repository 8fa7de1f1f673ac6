"""The .avsc files and catalog.yaml under schemas/: parseable, self-contained and following the house rules."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import fastavro
import pytest
import yaml

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
ENVELOPE_FILE = SCHEMAS / "envelope.avsc"
DOMAINS = ("user", "content", "commerce", "payment", "ledger", "clickstream")
FORBIDDEN = ("password", "secret", "cvv", "pin", "card_number", "pan", "expiry")
MONEY_WORDS = ("amount", "price", "total", "fee", "tax", "balance", "discount", "subtotal")
# Enums whose unknown future symbols cannot be mapped to a safe default.
ENUMS_WITHOUT_DEFAULT = {"com.suuupra.events.ledger.LedgerDirection"}


@cache
def catalog() -> dict[str, dict[str, str]]:
    entries: dict[str, dict[str, str]] = yaml.safe_load((SCHEMAS / "catalog.yaml").read_text())["events"]
    return entries


def event_files() -> list[Path]:
    return sorted(path for path in SCHEMAS.rglob("*.avsc") if path != ENVELOPE_FILE)


@cache
def document(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def ids(paths: list[Path]) -> list[str]:
    return [str(path.relative_to(SCHEMAS)) for path in paths]


def walk_named(schema: Any, namespace: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yields (fullname, definition) of every named type defined in `schema`, nested ones included."""
    if isinstance(schema, list):
        for branch in schema:
            yield from walk_named(branch, namespace)
        return
    if not isinstance(schema, dict):
        return
    kind = schema.get("type")
    if kind in ("record", "enum", "fixed"):
        namespace = schema.get("namespace", namespace)
        name = schema["name"]
        yield (name if "." in name else f"{namespace}.{name}"), schema
        for field in schema.get("fields", []):
            yield from walk_named(field["type"], namespace)
    elif kind == "array":
        yield from walk_named(schema["items"], namespace)
    elif kind == "map":
        yield from walk_named(schema["values"], namespace)
    elif isinstance(kind, (dict, list)):
        yield from walk_named(kind, namespace)


def all_fields(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yields (record fullname, field) for every field of every record in the file, nested records included."""
    root = document(path)
    for fullname, named in walk_named(root, root.get("namespace", "")):
        if named["type"] == "record":
            for field in named["fields"]:
                yield fullname, field


def branches(field_type: Any) -> list[Any]:
    return field_type if isinstance(field_type, list) else [field_type]


def base_type(branch: Any) -> Any:
    return branch["type"] if isinstance(branch, dict) and branch["type"] not in ("record", "enum") else branch


def test_there_is_one_file_per_event_and_nothing_else() -> None:
    assert len(event_files()) == 26
    for path in event_files():
        assert path.parent.name in DOMAINS, path
        assert path.parent.parent == SCHEMAS, path


@pytest.mark.parametrize("path", [*event_files(), ENVELOPE_FILE], ids=ids([*event_files(), ENVELOPE_FILE]))
def test_every_file_parses_on_its_own(path: Path) -> None:
    # An empty named_schemas proves the file needs no named type from another file.
    parsed = fastavro.parse_schema(document(path), named_schemas={})
    assert isinstance(parsed, dict)
    assert parsed["type"] == "record"


def test_named_types_are_unique_across_files() -> None:
    """Tools that load every schema into one namespace table (fastavro's named_schemas) must not clash."""
    shared: dict[str, Any] = {}
    for path in event_files():
        fastavro.parse_schema(document(path), named_schemas=shared)
    seen: dict[str, Path] = {}
    for path in event_files():
        root = document(path)
        for fullname, _ in walk_named(root, root["namespace"]):
            assert fullname not in seen, f"{fullname} defined in {seen.get(fullname)} and {path}"
            seen[fullname] = path


def test_catalog_and_files_match() -> None:
    listed = set()
    for event_type, entry in catalog().items():
        assert set(entry) == {"schema", "topic"}, event_type
        path = SCHEMAS / entry["schema"]
        assert path.is_file(), f"{event_type}: {path} does not exist"
        listed.add(path)
    assert listed == set(event_files()), "every .avsc except envelope.avsc is in catalog.yaml, once"
    assert len(listed) == len(catalog())


def expected_topic(event_type: str) -> str:
    if event_type.startswith("order.") or event_type == "user.enrolled":
        return "commerce"
    return event_type.split(".")[0]


@pytest.mark.parametrize("event_type", list(catalog()))
def test_catalog_entry_naming(event_type: str) -> None:
    entry = catalog()[event_type]
    path = SCHEMAS / entry["schema"]
    root = document(path)
    domain = path.parent.name
    assert entry["topic"] == expected_topic(event_type)
    assert entry["topic"] == domain, "the folder is the domain, and the domain is the topic"
    assert root["namespace"] == f"com.suuupra.events.{domain}"
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", root["name"]).lower()
    assert path.stem == snake, "file names are the snake_case record names"


def test_envelope() -> None:
    envelope = document(ENVELOPE_FILE)
    assert envelope["name"] == "Envelope"
    assert envelope["namespace"] == "com.suuupra.events"
    uuid = {"type": "string", "logicalType": "uuid"}
    expected = [
        ("event_id", uuid),
        ("event_type", "string"),
        ("event_time", {"type": "long", "logicalType": "timestamp-millis"}),
        ("producer", "string"),
        ("correlation_id", uuid),
        ("user_id", uuid),
    ]
    assert [(field["name"], field["type"]) for field in envelope["fields"]] == expected
    for field in envelope["fields"]:
        assert set(field) == {"name", "type", "doc"}


@pytest.mark.parametrize("path", event_files(), ids=ids(event_files()))
def test_every_record_starts_with_the_envelope(path: Path) -> None:
    envelope_fields = document(ENVELOPE_FILE)["fields"]
    assert document(path)["fields"][: len(envelope_fields)] == envelope_fields


@pytest.mark.parametrize("path", event_files(), ids=ids(event_files()))
def test_money_is_long_minor_units_with_a_currency(path: Path) -> None:
    for record, field in all_fields(path):
        words = field["name"].split("_")
        types = [base_type(branch) for branch in branches(field["type"]) if branch != "null"]
        money_named = any(word in MONEY_WORDS for word in words) or field["name"].endswith("_minor")
        if money_named:
            assert types == ["long"], f"{record}.{field['name']} is money: it must be a long"
            assert field["name"].endswith("_minor"), f"{record}.{field['name']} must be named *_minor"
        if "double" in types or "float" in types:
            assert field["name"] == "score", f"{record}.{field['name']}: floating point only for scores"
    by_record: dict[str, list[str]] = {}
    for record, field in all_fields(path):
        by_record.setdefault(record, []).append(field["name"])
    for record, names in by_record.items():
        if any(name.endswith("_minor") for name in names):
            assert "currency" in names, f"{record} has amounts but no currency field"


@pytest.mark.parametrize("path", [*event_files(), ENVELOPE_FILE], ids=ids([*event_files(), ENVELOPE_FILE]))
def test_no_secrets_or_card_data(path: Path) -> None:
    for record, field in all_fields(path):
        name = field["name"].lower()
        for word in FORBIDDEN:
            assert word not in name, f"{record}.{field['name']} contains '{word}'"


@pytest.mark.parametrize("path", [*event_files(), ENVELOPE_FILE], ids=ids([*event_files(), ENVELOPE_FILE]))
def test_everything_is_documented(path: Path) -> None:
    root = document(path)
    for fullname, named in walk_named(root, root["namespace"]):
        assert str(named.get("doc", "")).strip(), f"{fullname} has no doc"
    for record, field in all_fields(path):
        assert str(field.get("doc", "")).strip(), f"{record}.{field['name']} has no doc"


@pytest.mark.parametrize("path", event_files(), ids=ids(event_files()))
def test_optional_fields_are_null_first_with_null_default(path: Path) -> None:
    for record, field in all_fields(path):
        if isinstance(field["type"], list):
            assert field["type"][0] == "null", f"{record}.{field['name']}"
            assert len(field["type"]) == 2, f"{record}.{field['name']}"
            assert "default" in field, f"{record}.{field['name']}"
            assert field["default"] is None, f"{record}.{field['name']}"
        else:
            assert "default" not in field or field["default"] is not None, f"{record}.{field['name']}"


@pytest.mark.parametrize("path", event_files(), ids=ids(event_files()))
def test_enums_can_evolve(path: Path) -> None:
    root = document(path)
    for fullname, named in walk_named(root, root["namespace"]):
        if named["type"] != "enum":
            continue
        if fullname in ENUMS_WITHOUT_DEFAULT:
            assert "default" not in named
        else:
            assert named.get("default") in named["symbols"], f"{fullname} needs a default symbol"


def test_payment_enums_and_card_fields() -> None:
    def enum_symbols(path: Path, field_name: str) -> list[str]:
        field = next(field for _, field in all_fields(path) if field["name"] == field_name)
        symbols: list[str] = field["type"]["symbols"]
        return symbols

    payment = SCHEMAS / "payment"
    assert {"UPI", "CARD"} <= set(enum_symbols(payment / "payment_initiated.avsc", "method"))
    assert enum_symbols(payment / "fraud_decided.avsc", "decision") == ["APPROVE", "REVIEW", "REJECT"]
    card_fields = {field["name"] for _, field in all_fields(payment / "card_tokenized.avsc")}
    assert {"token", "network", "last4", "bin", "issuer_country"} <= card_fields
    line = next(field for _, field in all_fields(SCHEMAS / "ledger" / "ledger_entry_posted.avsc")
                if field["name"] == "direction")  # fmt: skip
    assert line["type"]["symbols"] == ["DEBIT", "CREDIT"]
