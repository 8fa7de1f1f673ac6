"""Unit tests for the pure-Python Avro compatibility checker."""

from __future__ import annotations

import dataclasses
import io
import json
from typing import Any

import fastavro
import pytest

from suuupra.schema_tools.compat import (
    LEVELS,
    Incompatibility,
    SchemaParseError,
    check,
    check_backward,
    check_forward,
    check_full,
)

NS = "com.suuupra.payments"


def fld(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


def record(*fields: dict[str, Any], name: str = "Payment", **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "record", "name": name, "fields": list(fields)}
    if "namespace" not in extra and "." not in name:
        schema["namespace"] = NS
    schema.update(extra)
    return schema


def enum(*symbols: str, name: str = "Status", **extra: Any) -> dict[str, Any]:
    return {"type": "enum", "name": name, "symbols": list(symbols), **extra}


def paths(issues: list[Incompatibility]) -> list[str]:
    return [issue.path for issue in issues]


BASE = record(fld("id", "string"), fld("amount_minor", "long"))


# --- fields -----------------------------------------------------------------------------------


def test_identical_schemas_are_compatible_at_every_level() -> None:
    for level in LEVELS:
        assert check(BASE, BASE, level) == []


def test_adding_a_field_with_default_is_backward_compatible() -> None:
    new = record(fld("id", "string"), fld("amount_minor", "long"), fld("currency", "string", default="INR"))
    assert check_backward(new, BASE) == []


def test_adding_a_field_with_null_default_is_backward_compatible() -> None:
    new = record(fld("id", "string"), fld("amount_minor", "long"), fld("note", ["null", "string"], default=None))
    assert check_backward(new, BASE) == []


def test_adding_a_field_without_default_breaks_backward() -> None:
    new = record(fld("id", "string"), fld("amount_minor", "long"), fld("currency", "string"))
    assert check_backward(new, BASE) == [
        Incompatibility("/fields/currency", "field 'currency' was added without a default: old data cannot be read")
    ]


def test_adding_a_field_without_default_is_forward_compatible() -> None:
    new = record(fld("id", "string"), fld("amount_minor", "long"), fld("currency", "string"))
    assert check_forward(new, BASE) == []


def test_removing_a_field_is_backward_compatible() -> None:
    assert check_backward(record(fld("id", "string")), BASE) == []


def test_removing_a_field_without_default_breaks_forward() -> None:
    issues = check_forward(record(fld("id", "string")), BASE)
    assert paths(issues) == ["/fields/amount_minor"]
    assert "'amount_minor'" in issues[0].message
    assert "removed" in issues[0].message
    assert issues[0].message.endswith("new data cannot be read by the old schema")


def test_removing_a_field_that_had_a_default_is_forward_compatible() -> None:
    old = record(fld("id", "string"), fld("amount_minor", "long", default=0))
    assert check_forward(record(fld("id", "string")), old) == []


def test_reordering_fields_is_fully_compatible() -> None:
    new = record(fld("amount_minor", "long"), fld("id", "string"))
    assert check_full(new, BASE) == []


# --- primitive types and promotions -----------------------------------------------------------


def test_long_to_string_breaks_with_precise_message() -> None:
    new = record(fld("id", "string"), fld("amount_minor", "string"))
    assert check_backward(new, BASE) == [
        Incompatibility(
            "/fields/amount_minor/type",
            "field 'amount_minor' changed type from long to string: old data cannot be read",
        )
    ]


def test_int_to_long_is_backward_but_not_forward_compatible() -> None:
    old = record(fld("qty", "int"))
    new = record(fld("qty", "long"))
    assert check_backward(new, old) == []
    forward = check_forward(new, old)
    assert paths(forward) == ["/fields/qty/type"]
    assert forward[0].message == (
        "field 'qty' changed type from int to long: new data cannot be read by the old schema"
    )


def test_long_to_int_breaks_backward() -> None:
    issues = check_backward(record(fld("qty", "int")), record(fld("qty", "long")))
    assert [i.message for i in issues] == ["field 'qty' changed type from long to int: old data cannot be read"]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("int", "long"),
        ("int", "float"),
        ("int", "double"),
        ("long", "float"),
        ("long", "double"),
        ("float", "double"),
        ("string", "bytes"),
        ("bytes", "string"),
    ],
)
def test_promotions_are_backward_compatible(old: str, new: str) -> None:
    assert check_backward(new, old) == []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("long", "int"),
        ("double", "float"),
        ("float", "long"),
        ("int", "string"),
        ("boolean", "int"),
        ("null", "string"),
        ("string", "boolean"),
    ],
)
def test_non_promotions_break_backward(old: str, new: str) -> None:
    assert check_backward(new, old) == [
        Incompatibility("/", f"the schema changed type from {old} to {new}: old data cannot be read")
    ]


def test_primitive_to_complex_type_breaks() -> None:
    issues = check_backward(record(fld("tags", {"type": "array", "items": "string"})), record(fld("tags", "string")))
    assert [i.message for i in issues] == [
        "field 'tags' changed type from string to array<string>: old data cannot be read"
    ]


# --- logical types ----------------------------------------------------------------------------


def test_logical_types_resolve_as_their_underlying_type() -> None:
    ts_millis = {"type": "long", "logicalType": "timestamp-millis"}
    ts_micros = {"type": "long", "logicalType": "timestamp-micros"}
    decimal = {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}
    assert check_full(record(fld("at", ts_millis)), record(fld("at", "long"))) == []
    assert check_full(record(fld("at", ts_micros)), record(fld("at", ts_millis))) == []
    assert check_full(record(fld("price", decimal)), record(fld("price", "bytes"))) == []
    # date (int) -> long is the ordinary int -> long promotion.
    assert check_backward(record(fld("d", "long")), record(fld("d", {"type": "int", "logicalType": "date"}))) == []


def test_logical_type_shows_in_the_message() -> None:
    old = record(fld("at", {"type": "long", "logicalType": "timestamp-millis"}))
    issues = check_backward(record(fld("at", "string")), old)
    assert "from long (timestamp-millis) to string" in issues[0].message


# --- enums ------------------------------------------------------------------------------------


def test_enum_symbol_added_is_backward_compatible() -> None:
    old = record(fld("status", enum("NEW", "PAID")))
    new = record(fld("status", enum("NEW", "PAID", "REFUNDED")))
    assert check_backward(new, old) == []


def test_enum_symbol_added_breaks_forward_unless_old_enum_has_default() -> None:
    new = record(fld("status", enum("NEW", "PAID", "REFUNDED")))
    issues = check_forward(new, record(fld("status", enum("NEW", "PAID"))))
    assert paths(issues) == ["/fields/status/type/symbols"]
    assert "added enum symbol 'REFUNDED'" in issues[0].message
    assert check_forward(new, record(fld("status", enum("NEW", "PAID", default="NEW")))) == []


def test_enum_symbol_removed_breaks_backward() -> None:
    old = record(fld("status", enum("NEW", "PAID", "REFUNDED")))
    new = record(fld("status", enum("NEW", "PAID")))
    assert check_backward(new, old) == [
        Incompatibility(
            "/fields/status/type/symbols",
            f"field 'status' removed enum symbol 'REFUNDED' but the new enum {NS}.Status has no default: "
            "old data cannot be read",
        )
    ]


def test_enum_symbol_removed_is_fine_when_new_enum_has_default() -> None:
    old = record(fld("status", enum("NEW", "PAID", "REFUNDED")))
    new = record(fld("status", enum("NEW", "PAID", "UNKNOWN", default="UNKNOWN")))
    assert check_backward(new, old) == []


def test_enum_rename_breaks_unless_aliased() -> None:
    old = record(fld("status", enum("NEW", name="Status")))
    renamed = record(fld("status", enum("NEW", name="State")))
    assert paths(check_backward(renamed, old)) == ["/fields/status/type/name"]
    aliased = record(fld("status", enum("NEW", name="State", aliases=["Status"])))
    assert check_backward(aliased, old) == []


def test_enum_default_must_be_a_symbol() -> None:
    with pytest.raises(SchemaParseError, match="default"):
        check_backward(enum("A", default="B"), enum("A"))


# --- fixed ------------------------------------------------------------------------------------


def test_fixed_size_change_breaks() -> None:
    old = record(fld("digest", {"type": "fixed", "name": "Md5", "size": 16}))
    new = record(fld("digest", {"type": "fixed", "name": "Md5", "size": 32}))
    assert check_backward(new, old) == [
        Incompatibility(
            "/fields/digest/type/size",
            f"field 'digest' changed fixed {NS}.Md5 size from 16 to 32: old data cannot be read",
        )
    ]
    assert check_backward(old, old) == []


def test_fixed_rename_breaks() -> None:
    old = {"type": "fixed", "name": "Md5", "size": 16}
    new = {"type": "fixed", "name": "Digest", "size": 16}
    assert paths(check_backward(new, old)) == ["/name"]


# --- unions -----------------------------------------------------------------------------------


def test_making_a_field_nullable_is_backward_compatible() -> None:
    assert check_backward(record(fld("note", ["null", "string"])), record(fld("note", "string"))) == []


def test_union_widening_is_backward_compatible() -> None:
    old = record(fld("ref", ["null", "string"]))
    new = record(fld("ref", ["null", "string", "long"]))
    assert check_backward(new, old) == []


def test_union_widening_breaks_forward_and_names_the_new_branch() -> None:
    old = record(fld("ref", ["null", "string"]))
    new = record(fld("ref", ["null", "string", "long"]))
    issues = check_forward(new, old)
    assert paths(issues) == ["/fields/ref/type"]
    assert "new values of type long" in issues[0].message


def test_union_narrowing_breaks_backward() -> None:
    old = record(fld("ref", ["null", "string", "long"]))
    new = record(fld("ref", ["null", "string"]))
    assert check_backward(new, old) == [
        Incompatibility(
            "/fields/ref/type",
            "field 'ref' changed type from union[null, string, long] to union[null, string], "
            "which cannot read old values of type long: old data cannot be read",
        )
    ]


def test_union_to_non_union_breaks_for_the_dropped_branch_only() -> None:
    issues = check_backward(record(fld("note", "string")), record(fld("note", ["null", "string"])))
    assert len(issues) == 1
    assert "old values of type null" in issues[0].message


def test_non_union_writer_must_match_some_reader_branch() -> None:
    assert check_backward(record(fld("n", ["null", "long"])), record(fld("n", "int"))) == []
    issues = check_backward(record(fld("n", ["null", "string"])), record(fld("n", "long")))
    assert [i.message for i in issues] == [
        "field 'n' changed type from long to union[null, string]: old data cannot be read"
    ]


def test_union_branch_order_change_is_fully_compatible() -> None:
    assert check_full(record(fld("x", ["string", "null"])), record(fld("x", ["null", "string"]))) == []


# --- nested types -----------------------------------------------------------------------------


def _customer(zip_type: str) -> dict[str, Any]:
    address = record(fld("city", "string"), fld("zip", zip_type), name="Address")
    customer = record(fld("name", "string"), fld("address", address), name="Customer")
    return record(fld("id", "string"), fld("customer", customer))


def test_nested_record_change_has_a_precise_path() -> None:
    assert check_backward(_customer("string"), _customer("int")) == [
        Incompatibility(
            "/fields/customer/type/fields/address/type/fields/zip/type",
            "field 'customer.address.zip' changed type from int to string: old data cannot be read",
        )
    ]


def test_nested_record_inside_nullable_union_points_at_the_branch() -> None:
    def schema(zip_type: str) -> dict[str, Any]:
        address = record(fld("zip", zip_type), name="Address")
        return record(fld("address", ["null", address], default=None))

    issues = check_backward(schema("string"), schema("int"))
    assert paths(issues) == ["/fields/address/type/1/fields/zip/type"]
    assert "field 'address.zip'" in issues[0].message


def test_nested_field_added_without_default_inside_array_items() -> None:
    old = record(fld("lines", {"type": "array", "items": record(fld("sku", "string"), name="Line")}))
    new_line = record(fld("sku", "string"), fld("qty", "int"), name="Line")
    new = record(fld("lines", {"type": "array", "items": new_line}))
    assert check_backward(new, old) == [
        Incompatibility(
            "/fields/lines/type/items/fields/qty",
            "field 'lines.qty' was added without a default: old data cannot be read",
        )
    ]


def test_map_values_change_is_detected() -> None:
    old = record(fld("attrs", {"type": "map", "values": "long"}))
    new = record(fld("attrs", {"type": "map", "values": "int"}))
    assert paths(check_backward(new, old)) == ["/fields/attrs/type/values"]
    assert check_forward(new, old) == []


def test_shared_named_type_is_reported_at_each_use() -> None:
    def schema(amount: str) -> dict[str, Any]:
        money = record(fld("amount", amount), name="Money")
        return record(fld("price", money), fld("tax", "Money"))

    assert paths(check_backward(schema("string"), schema("long"))) == [
        "/fields/price/type/fields/amount/type",
        "/fields/tax/type/fields/amount/type",
    ]


# --- renames and aliases ----------------------------------------------------------------------


def test_renamed_field_with_alias_is_backward_compatible() -> None:
    new = record(fld("id", "string"), fld("amount", "long", aliases=["amount_minor"]))
    assert check_backward(new, BASE) == []


def test_renamed_field_without_alias_breaks_backward_naming_the_new_field() -> None:
    issues = check_backward(record(fld("id", "string"), fld("amount", "long")), BASE)
    assert paths(issues) == ["/fields/amount"]
    assert "'amount'" in issues[0].message


def test_renamed_field_alias_does_not_help_old_readers() -> None:
    new = record(fld("id", "string"), fld("amount", "long", aliases=["amount_minor"]))
    assert paths(check_forward(new, BASE)) == ["/fields/amount_minor"]


def test_record_rename_breaks_unless_aliased() -> None:
    renamed = dict(BASE, name="Transaction")
    assert check_backward(renamed, BASE) == [
        Incompatibility(
            "/name",
            f"the schema changed record name from '{NS}.Payment' to '{NS}.Transaction' and the new "
            f"schema has no alias '{NS}.Payment': old data cannot be read",
        )
    ]
    assert check_backward(dict(renamed, aliases=["Payment"]), BASE) == []
    assert check_backward(dict(renamed, aliases=[f"{NS}.Payment"]), BASE) == []


def test_namespace_change_alone_is_compatible() -> None:
    # The specification matches record names unqualified.
    assert check_full(dict(BASE, namespace="com.suuupra.billing"), BASE) == []


def test_renamed_nested_record_in_union_reports_the_rename() -> None:
    old = record(fld("addr", ["null", record(fld("zip", "string"), name="Address")]))
    new = record(fld("addr", ["null", record(fld("zip", "string"), name="Location")]))
    issues = check_backward(new, old)
    assert paths(issues) == ["/fields/addr/type/1/name"]
    assert "changed record name" in issues[0].message


# --- named types, namespaces and recursion ----------------------------------------------------


LINKED_LIST = {
    "type": "record",
    "name": "Node",
    "namespace": "com.suuupra.graph",
    "fields": [fld("value", "int"), fld("next", ["null", "Node"], default=None)],
}


@pytest.mark.timeout(5)
def test_recursive_schema_does_not_loop() -> None:
    assert check_full(LINKED_LIST, LINKED_LIST) == []
    widened = dict(LINKED_LIST, fields=[fld("value", "long"), fld("next", ["null", "Node"], default=None)])
    assert check_backward(widened, LINKED_LIST) == []
    issues = check_forward(widened, LINKED_LIST)
    assert paths(issues) == ["/fields/value/type"]


@pytest.mark.timeout(5)
def test_recursive_schema_change_inside_the_cycle_is_reported_once() -> None:
    changed = dict(LINKED_LIST, fields=[fld("value", "string"), fld("next", ["null", "Node"], default=None)])
    assert paths(check_backward(changed, LINKED_LIST)) == ["/fields/value/type"]


@pytest.mark.timeout(5)
def test_mutually_recursive_types_by_fullname() -> None:
    def tree(leaf_type: str) -> dict[str, Any]:
        forest = {
            "type": "record",
            "name": "Forest",
            "fields": [fld("trees", {"type": "array", "items": "com.suuupra.graph.Tree"})],
        }
        return {
            "type": "record",
            "name": "com.suuupra.graph.Tree",
            "fields": [fld("leaf", leaf_type), fld("children", forest)],
        }

    assert check_full(tree("int"), tree("int")) == []
    assert check_backward(tree("long"), tree("int")) == []
    issues = check_backward(tree("int"), tree("long"))
    assert paths(issues) == ["/fields/leaf/type"]


def test_reference_by_short_name_and_fullname_in_the_same_schema() -> None:
    money = record(fld("amount", "long"), name="Money")
    by_short = record(fld("price", money), fld("tax", "Money"))
    by_full = record(fld("price", money), fld("tax", f"{NS}.Money"))
    inline_ref = record(fld("price", money), fld("tax", {"type": f"{NS}.Money"}))
    assert check_full(by_short, by_full) == []
    assert check_full(inline_ref, by_short) == []


def test_nested_type_inherits_the_enclosing_namespace() -> None:
    inner = {"type": "record", "name": "Inner", "fields": []}
    outer = record(fld("a", inner), fld("b", f"{NS}.Inner"))
    assert check_full(outer, outer) == []


def test_explicit_namespace_on_nested_type_overrides_the_enclosing_one() -> None:
    inner = {"type": "record", "name": "Inner", "namespace": "other", "fields": []}
    ok = record(fld("a", inner), fld("b", "other.Inner"))
    assert check_full(ok, ok) == []
    wrong = record(fld("a", inner), fld("b", "Inner"))
    with pytest.raises(SchemaParseError, match="unknown type 'Inner'"):
        check_backward(wrong, wrong)


def test_unknown_reference_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="new schema is invalid"):
        check_backward(record(fld("x", "Nope")), BASE)


def test_duplicate_named_type_is_rejected() -> None:
    inner = record(name="Inner")
    with pytest.raises(SchemaParseError, match="defined twice"):
        check_backward(record(fld("a", inner), fld("b", inner)), BASE)


# --- input forms ------------------------------------------------------------------------------


def test_json_text_and_parsed_json_are_equivalent() -> None:
    new = record(fld("id", "string"), fld("amount_minor", "string"))
    assert check_backward(json.dumps(new), json.dumps(BASE)) == check_backward(new, BASE)


@pytest.mark.parametrize("schema", ["long", '"long"', " long ", {"type": "long"}])
def test_primitive_schema_forms(schema: Any) -> None:
    assert check_full(schema, "long") == []


def test_null_type_name_is_not_json_null() -> None:
    assert check_full("null", ["null"]) == []


def test_union_given_as_list() -> None:
    assert check_backward(["null", "string"], "string") == []
    assert check_backward("string", ["null", "string"]) != []


def test_invalid_json_text_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not valid JSON"):
        check_backward('{"type": "record", ', BASE)


def test_nested_unions_are_rejected() -> None:
    with pytest.raises(SchemaParseError, match="another union"):
        check_backward(["null", ["int", "long"]], "null")


# --- levels -----------------------------------------------------------------------------------


def test_full_combines_backward_and_forward() -> None:
    added_no_default = record(fld("id", "string"), fld("amount_minor", "long"), fld("c", "string"))
    assert check_full(added_no_default, BASE) == check_backward(added_no_default, BASE)
    removed_no_default = record(fld("id", "string"))
    assert check_full(removed_no_default, BASE) == check_forward(removed_no_default, BASE)
    changed = record(fld("id", "string"), fld("amount_minor", "string"))
    full = check_full(changed, BASE)
    assert full == check_backward(changed, BASE) + check_forward(changed, BASE)
    assert len(full) == 2


def test_long_to_int_passes_forward_but_fails_full() -> None:
    new = record(fld("id", "string"), fld("amount_minor", "int"))
    assert check_forward(new, BASE) == []
    assert paths(check_full(new, BASE)) == ["/fields/amount_minor/type"]


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("BACKWARD", 1),
        ("backward", 1),
        ("Backward_Transitive", 1),
        ("FORWARD", 0),
        ("forward_transitive", 0),
        ("FULL", 1),
        ("full_transitive", 1),
        ("NONE", 0),
        ("none", 0),
    ],
)
def test_check_dispatches_on_level(level: str, expected: int) -> None:
    new = record(fld("id", "string"), fld("amount_minor", "long"), fld("c", "string"))
    assert len(check(new, BASE, level)) == expected


@pytest.mark.parametrize("level", ["", "STRICT", "NONE_TRANSITIVE", "BACKWARDS"])
def test_check_rejects_unknown_levels(level: str) -> None:
    with pytest.raises(ValueError, match="unknown compatibility level"):
        check(BASE, BASE, level)


def test_none_level_still_rejects_invalid_schemas() -> None:
    with pytest.raises(ValueError, match="old schema is invalid"):
        check(BASE, {"type": "record"}, "NONE")


def test_incompatibility_is_frozen_and_prints_path_first() -> None:
    issue = Incompatibility("/fields/x", "boom")
    with pytest.raises(dataclasses.FrozenInstanceError):
        issue.path = "/"  # type: ignore[misc]
    assert str(issue) == "/fields/x: boom"


# --- cross-check against a real Avro decoder --------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "datum"),
    [
        (
            BASE,
            record(fld("id", "string"), fld("amount_minor", "long"), fld("c", "string", default="INR")),
            {"id": "p1", "amount_minor": 5},
        ),
        (record(fld("qty", "int")), record(fld("qty", ["null", "double"])), {"qty": 3}),
        (record(fld("s", enum("A", "B"))), record(fld("s", enum("A", "B", "C"))), {"s": "B"}),
        (
            BASE,
            record(fld("id", "bytes"), fld("amount", "long", aliases=["amount_minor"])),
            {"id": "p1", "amount_minor": 5},
        ),
        (
            LINKED_LIST,
            dict(LINKED_LIST, fields=[fld("value", "long"), fld("next", ["null", "Node"])]),
            {"value": 1, "next": {"value": 2, "next": None}},
        ),
    ],
)
def test_backward_compatible_verdicts_are_readable_by_fastavro(
    old: dict[str, Any], new: dict[str, Any], datum: dict[str, Any]
) -> None:
    assert check_backward(new, old) == []
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(old), datum)
    buffer.seek(0)
    fastavro.schemaless_reader(buffer, fastavro.parse_schema(old), fastavro.parse_schema(new))


@pytest.mark.timeout(10)
def test_exponentially_shared_types_are_capped_not_exploded() -> None:
    # Each level uses the previous record twice: 2**39 paths reach the changed leaf.
    def schema(leaf: str) -> dict[str, Any]:
        root: dict[str, Any] = {"type": "record", "name": "T0", "fields": [fld("v", leaf)]}
        for i in range(1, 40):
            root = {"type": "record", "name": f"T{i}", "fields": [fld("a", root), fld("b", f"T{i - 1}")]}
        return root

    assert check_full(schema("int"), schema("int")) == []
    issues = check_backward(schema("int"), schema("long"))
    assert len(issues) == 1001
    assert issues[-1].message == "more incompatibilities omitted after the first 1000"
