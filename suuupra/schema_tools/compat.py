"""Avro schema compatibility checks, in pure Python.

Follows the schema resolution rules of the Avro specification
(https://avro.apache.org/docs/1.11.1/specification/#schema-resolution) the way the Confluent
and Apicurio registries apply them:

* BACKWARD: the new schema (reader) can read data written with the old schema (writer);
* FORWARD: the old schema (reader) can read data written with the new schema (writer);
* FULL: both.

Each check returns a list of :class:`Incompatibility`; an empty list means compatible.
Paths are JSON-pointer-like and follow the *reader* schema (the new schema for BACKWARD, the
old one for FORWARD), because resolution walks the reader; fields are named rather than
indexed so that a path stays meaningful when fields are reordered.

Logical types are resolved as their underlying type, as Confluent does by default: a change of
logical type alone is not reported.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

__all__ = [
    "LEVELS",
    "Incompatibility",
    "SchemaInput",
    "SchemaParseError",
    "check",
    "check_backward",
    "check_forward",
    "check_full",
]

#: A schema as JSON text, or as already-parsed JSON (object, union list or type name).
SchemaInput: TypeAlias = Mapping[str, Any] | Sequence[Any] | str


@dataclass(frozen=True)
class Incompatibility:
    """One reason why the reader schema cannot read data written with the writer schema."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class SchemaParseError(ValueError):
    """The input is not a valid Avro schema, so compatibility cannot be decided."""


_PRIMITIVES: Final = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})

# (writer type, reader type) pairs the specification lets a reader promote.
_PROMOTIONS: Final = frozenset(
    {
        ("int", "long"),
        ("int", "float"),
        ("int", "double"),
        ("long", "float"),
        ("long", "double"),
        ("float", "double"),
        ("string", "bytes"),
        ("bytes", "string"),
    }
)


# The normalised schema graph. Nodes compare and hash by identity (eq=False) so that named types,
# which may be recursive, can key the memo and cycle-detection tables without deep comparison.


@dataclass(eq=False)
class _Primitive:
    name: str
    # Kept only for messages: resolution ignores logical types.
    logical: str | None = None


@dataclass(eq=False)
class _Named:
    kind: str
    fullname: str
    aliases: frozenset[str]

    @property
    def name(self) -> str:
        return self.fullname.rpartition(".")[2]


@dataclass(eq=False)
class _Field:
    name: str
    type: _Node
    has_default: bool
    aliases: tuple[str, ...]


@dataclass(eq=False)
class _Record(_Named):
    # Filled after the record is registered, so fields can refer back to the record itself.
    fields: list[_Field] = field(default_factory=list)


@dataclass(eq=False)
class _Enum(_Named):
    symbols: tuple[str, ...] = ()
    default: str | None = None


@dataclass(eq=False)
class _Fixed(_Named):
    size: int = 0


@dataclass(eq=False)
class _Array:
    items: _Node


@dataclass(eq=False)
class _Map:
    values: _Node


@dataclass(eq=False)
class _Union:
    branches: tuple[_Node, ...]


_NamedNode: TypeAlias = _Record | _Enum | _Fixed
_Node: TypeAlias = _Primitive | _Record | _Enum | _Fixed | _Array | _Map | _Union


class _Parser:
    """Turns JSON into a node graph, resolving namespaces and named-type references."""

    def __init__(self) -> None:
        self._names: dict[str, _NamedNode] = {}

    def parse(self, obj: Any, namespace: str) -> _Node:
        if isinstance(obj, str):
            return self._reference(obj, namespace)
        if isinstance(obj, Mapping):
            return self._parse_object(obj, namespace)
        if isinstance(obj, Sequence):
            return self._parse_union(obj, namespace)
        raise SchemaParseError(f"not an Avro schema: {obj!r}")

    def _parse_object(self, obj: Mapping[str, Any], namespace: str) -> _Node:
        type_ = obj.get("type")
        if isinstance(type_, Mapping | list):
            # {"type": {...}} wraps a complete schema; parsers accept it, so we do too.
            return self.parse(type_, namespace)
        if not isinstance(type_, str):
            raise SchemaParseError(f"schema object without a string 'type': {dict(obj)!r}")
        if type_ in _PRIMITIVES:
            logical = obj.get("logicalType")
            return _Primitive(type_, logical if isinstance(logical, str) else None)
        if type_ in ("record", "error"):
            return self._parse_record(obj, type_, namespace)
        if type_ == "enum":
            return self._parse_enum(obj, namespace)
        if type_ == "fixed":
            return self._parse_fixed(obj, namespace)
        if type_ == "array":
            if "items" not in obj:
                raise SchemaParseError("array schema without 'items'")
            return _Array(self.parse(obj["items"], namespace))
        if type_ == "map":
            if "values" not in obj:
                raise SchemaParseError("map schema without 'values'")
            return _Map(self.parse(obj["values"], namespace))
        return self._reference(type_, namespace)

    def _parse_union(self, branches: Sequence[Any], namespace: str) -> _Union:
        parsed = tuple(self.parse(branch, namespace) for branch in branches)
        if any(isinstance(branch, _Union) for branch in parsed):
            raise SchemaParseError("a union may not immediately contain another union")
        return _Union(parsed)

    def _parse_record(self, obj: Mapping[str, Any], kind: str, namespace: str) -> _Record:
        fullname, own_namespace = _qualify(obj, namespace)
        record = _Record(kind, fullname, self._aliases(obj, own_namespace))
        # Register before parsing fields: a field may refer to the record being defined.
        self._register(record)
        raw_fields = obj.get("fields")
        if not isinstance(raw_fields, list):
            raise SchemaParseError(f"record {fullname!r} needs a 'fields' list")
        seen: set[str] = set()
        for raw in raw_fields:
            if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str) or "type" not in raw:
                raise SchemaParseError(f"record {fullname!r} has a malformed field: {raw!r}")
            name: str = raw["name"]
            if name in seen:
                raise SchemaParseError(f"record {fullname!r} defines field {name!r} twice")
            seen.add(name)
            aliases = raw.get("aliases", [])
            if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
                raise SchemaParseError(f"field {name!r} of {fullname!r} has malformed aliases")
            record.fields.append(_Field(name, self.parse(raw["type"], own_namespace), "default" in raw, tuple(aliases)))
        return record

    def _parse_enum(self, obj: Mapping[str, Any], namespace: str) -> _Enum:
        fullname, own_namespace = _qualify(obj, namespace)
        symbols = obj.get("symbols")
        if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
            raise SchemaParseError(f"enum {fullname!r} needs a 'symbols' list of strings")
        if len(set(symbols)) != len(symbols):
            raise SchemaParseError(f"enum {fullname!r} repeats a symbol")
        default = obj.get("default")
        if default is not None and default not in symbols:
            raise SchemaParseError(f"enum {fullname!r} default {default!r} is not one of its symbols")
        enum = _Enum("enum", fullname, self._aliases(obj, own_namespace), tuple(symbols), default)
        self._register(enum)
        return enum

    def _parse_fixed(self, obj: Mapping[str, Any], namespace: str) -> _Fixed:
        fullname, own_namespace = _qualify(obj, namespace)
        size = obj.get("size")
        # bool is an int subclass; True is not a size.
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise SchemaParseError(f"fixed {fullname!r} needs a non-negative integer 'size'")
        fixed = _Fixed("fixed", fullname, self._aliases(obj, own_namespace), size)
        self._register(fixed)
        return fixed

    def _aliases(self, obj: Mapping[str, Any], namespace: str) -> frozenset[str]:
        aliases = obj.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases):
            raise SchemaParseError(f"malformed aliases: {aliases!r}")
        # Unqualified aliases live in the namespace of the type that declares them.
        return frozenset(a if "." in a or not namespace else f"{namespace}.{a}" for a in aliases)

    def _register(self, named: _NamedNode) -> None:
        if named.name in _PRIMITIVES:
            raise SchemaParseError(f"named type {named.fullname!r} would shadow a primitive type")
        if named.fullname in self._names:
            raise SchemaParseError(f"named type {named.fullname!r} is defined twice")
        self._names[named.fullname] = named

    def _reference(self, name: str, namespace: str) -> _Node:
        if name in _PRIMITIVES:
            return _Primitive(name)
        # Like the Java parser: a short name is tried in the enclosing namespace, then in the null one.
        candidates = [name] if "." in name or not namespace else [f"{namespace}.{name}", name]
        for candidate in candidates:
            if candidate in self._names:
                return self._names[candidate]
        raise SchemaParseError(f"unknown type {name!r} (named types must be defined before use)")


def _qualify(obj: Mapping[str, Any], enclosing: str) -> tuple[str, str]:
    """Return (fullname, namespace) of a named type declaration."""
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise SchemaParseError(f"named type without a 'name': {dict(obj)!r}")
    if "." in name:
        # A dotted name is already full and overrides any 'namespace' attribute.
        return name, name.rpartition(".")[0]
    declared = obj.get("namespace")
    namespace = declared if isinstance(declared, str) else enclosing
    return (f"{namespace}.{name}" if namespace else name), namespace


def _load(schema: SchemaInput, which: str) -> _Node:
    obj: Any = schema
    if isinstance(schema, str):
        text = schema.strip()
        if text in _PRIMITIVES:
            # Checked first because json.loads("null") would yield None, not the type name.
            obj = text
        else:
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                if text[:1] in ("{", "[", '"'):
                    raise SchemaParseError(f"{which} schema is not valid JSON: {exc}") from exc
                # Not JSON text: take it as an already-parsed type name such as "com.acme.Money".
                obj = text
    try:
        return _Parser().parse(obj, "")
    except SchemaParseError as exc:
        raise SchemaParseError(f"{which} schema is invalid: {exc}") from exc


@dataclass(frozen=True)
class _Issue:
    """An incompatibility relative to the node pair where it was found.

    Relative paths let the resolver memoise results per pair of named types and re-anchor them
    wherever the pair occurs.
    """

    segments: tuple[str, ...]
    fields: tuple[str, ...]
    # A verb phrase completed by a subject ("field 'a.b'" or "the schema") when finalised.
    detail: str


def _prefix(issues: list[_Issue], segments: tuple[str, ...], field_name: str | None = None) -> list[_Issue]:
    head = (field_name,) if field_name is not None else ()
    return [_Issue(segments + i.segments, head + i.fields, i.detail) for i in issues]


def _describe(node: _Node, *, nested: bool = False) -> str:
    # Named types print by name only, which also keeps recursive types finite.
    if isinstance(node, _Primitive):
        return node.name if nested or node.logical is None else f"{node.name} ({node.logical})"
    if isinstance(node, _Record | _Enum | _Fixed):
        return node.fullname if nested else f"{node.kind} {node.fullname}"
    if isinstance(node, _Array):
        return f"array<{_describe(node.items, nested=True)}>"
    if isinstance(node, _Map):
        return f"map<{_describe(node.values, nested=True)}>"
    return "union[" + ", ".join(_describe(b, nested=True) for b in node.branches) + "]"


def _names_match(reader: _NamedNode, writer: _NamedNode) -> bool:
    # The specification compares unqualified names, so aliases are compared the same way: a
    # namespace move plus an alias must not be stricter than a namespace move alone.
    if reader.name == writer.name or writer.fullname in reader.aliases:
        return True
    return writer.name in {alias.rpartition(".")[2] for alias in reader.aliases}


def _same_kind(a: _Node, b: _Node) -> bool:
    # "error" is a record in every respect that matters for resolution.
    return type(a) is type(b)


def _exact_match(reader: _Node, writer: _Node) -> bool:
    if isinstance(reader, _Primitive) and isinstance(writer, _Primitive):
        return reader.name == writer.name
    if isinstance(reader, _Record | _Enum | _Fixed) and isinstance(writer, _Record | _Enum | _Fixed):
        return _same_kind(reader, writer) and reader.fullname == writer.fullname
    return isinstance(reader, _Array | _Map) and _same_kind(reader, writer)


def _shallow_match(reader: _Node, writer: _Node) -> bool:
    """Whether a reader union branch is a candidate for the writer type (spec: "matches")."""
    if isinstance(reader, _Primitive) and isinstance(writer, _Primitive):
        return reader.name == writer.name or (writer.name, reader.name) in _PROMOTIONS
    if isinstance(reader, _Record | _Enum | _Fixed) and isinstance(writer, _Record | _Enum | _Fixed):
        return _same_kind(reader, writer) and _names_match(reader, writer)
    return isinstance(reader, _Array | _Map) and _same_kind(reader, writer)


_RecordPair: TypeAlias = tuple[_Record, _Record]

# A named type used in several places is reported at every use, so a schema that nests shared
# types inside shared types has exponentially many incompatibilities. Capping every intermediate
# list keeps the work linear, and since each list keeps its head, the result is exactly the first
# _MAX_ISSUES of the full list.
_MAX_ISSUES: Final = 1000


class _Resolver:
    """Decides whether ``reader`` can read what ``writer`` wrote, and explains why not."""

    def __init__(self, *, backward: bool) -> None:
        # The reader is the new schema in BACKWARD checks and the old one in FORWARD checks;
        # messages speak of old/new, which is what the user edited.
        self._backward = backward
        self._reader_role = "new" if backward else "old"
        self._active: set[_RecordPair] = set()
        # One set per active record pair: which active pairs its result was assumed to satisfy.
        self._assumptions: list[set[_RecordPair]] = []
        self._memo: dict[_RecordPair, list[_Issue]] = {}
        self.truncated = False

    def _capped(self, issues: list[_Issue]) -> list[_Issue]:
        if len(issues) <= _MAX_ISSUES:
            return issues
        self.truncated = True
        return issues[:_MAX_ISSUES]

    def _old_new(self, reader: _Node, writer: _Node) -> tuple[_Node, _Node]:
        return (writer, reader) if self._backward else (reader, writer)

    def resolve(self, reader: _Node, writer: _Node) -> list[_Issue]:
        if isinstance(writer, _Union):
            # Any branch may occur in the data, so every one must be readable.
            issues: list[_Issue] = []
            for branch in writer.branches:
                issues.extend(self._resolve_branch(reader, branch, writer))
            return self._capped(issues)
        return self._resolve_branch(reader, writer, None)

    def _resolve_branch(self, reader: _Node, writer: _Node, writer_union: _Union | None) -> list[_Issue]:
        if isinstance(reader, _Union):
            return self._resolve_into_union(reader, writer, writer_union)
        if isinstance(reader, _Primitive) and isinstance(writer, _Primitive):
            if _shallow_match(reader, writer):
                return []
        elif isinstance(reader, _Array) and isinstance(writer, _Array):
            return _prefix(self.resolve(reader.items, writer.items), ("items",))
        elif isinstance(reader, _Map) and isinstance(writer, _Map):
            return _prefix(self.resolve(reader.values, writer.values), ("values",))
        elif isinstance(reader, _Record) and isinstance(writer, _Record):
            return self._resolve_record(reader, writer)
        elif isinstance(reader, _Enum) and isinstance(writer, _Enum):
            return self._resolve_enum(reader, writer)
        elif isinstance(reader, _Fixed) and isinstance(writer, _Fixed):
            return self._resolve_fixed(reader, writer)
        return [self._type_change(reader, writer, writer_union)]

    def _resolve_into_union(self, reader: _Union, writer: _Node, writer_union: _Union | None) -> list[_Issue]:
        # Exact matches first, as the Java resolver does, so a failure we report is the one for
        # the branch the user most likely meant.
        exact = [i for i, b in enumerate(reader.branches) if _exact_match(b, writer)]
        loose = [i for i, b in enumerate(reader.branches) if i not in exact and _shallow_match(b, writer)]
        first_failure: list[_Issue] | None = None
        for index in exact + loose:
            issues = self._resolve_branch(reader.branches[index], writer, None)
            if not issues:
                return []
            if first_failure is None:
                first_failure = _prefix(issues, (str(index),))
        if first_failure is not None:
            return first_failure
        # A single branch of the same named kind is almost certainly a renamed type: explaining
        # the rename beats a generic "no branch matches".
        same_kind = [
            i
            for i, b in enumerate(reader.branches)
            if isinstance(writer, _Record | _Enum | _Fixed) and _same_kind(b, writer)
        ]
        if len(same_kind) == 1:
            index = same_kind[0]
            return _prefix(self._resolve_branch(reader.branches[index], writer, None), (str(index),))
        return [self._type_change(reader, writer, writer_union)]

    def _resolve_record(self, reader: _Record, writer: _Record) -> list[_Issue]:
        if not _names_match(reader, writer):
            return [self._rename(reader, writer)]
        key = (reader, writer)
        cached = self._memo.get(key)
        if cached is not None:
            return cached
        if key in self._active:
            # A recursive reference back to a pair being checked: assume it is compatible (the
            # coinductive reading of recursive types). Any real problem is reported by the
            # outer check of the same pair, so nothing is lost and nothing loops.
            self._assumptions[-1].add(key)
            return []
        self._active.add(key)
        self._assumptions.append(set())
        try:
            issues = self._resolve_fields(reader, writer)
        finally:
            self._active.discard(key)
            assumed = self._assumptions.pop()
        assumed.discard(key)
        if assumed:
            # Depends on an outer pair still being checked, so not final: don't memoise it.
            self._assumptions[-1] |= assumed
        else:
            self._memo[key] = issues
        return issues

    def _resolve_fields(self, reader: _Record, writer: _Record) -> list[_Issue]:
        by_name = {f.name: f for f in writer.fields}
        issues: list[_Issue] = []
        for reader_field in reader.fields:
            writer_field = by_name.get(reader_field.name)
            if writer_field is None:
                writer_field = next((by_name[a] for a in reader_field.aliases if a in by_name), None)
            if writer_field is None:
                if not reader_field.has_default:
                    detail = (
                        "was added without a default"
                        if self._backward
                        else "was removed, and the old schema has no default for it"
                    )
                    issues.append(_Issue(("fields", reader_field.name), (reader_field.name,), detail))
                continue
            nested = self.resolve(reader_field.type, writer_field.type)
            issues.extend(_prefix(nested, ("fields", reader_field.name, "type"), reader_field.name))
        return self._capped(issues)

    def _resolve_enum(self, reader: _Enum, writer: _Enum) -> list[_Issue]:
        if not _names_match(reader, writer):
            return [self._rename(reader, writer)]
        unknown = [s for s in writer.symbols if s not in reader.symbols]
        if not unknown or reader.default is not None:
            return []
        verb = "removed" if self._backward else "added"
        noun = "symbol" if len(unknown) == 1 else "symbols"
        listed = ", ".join(repr(s) for s in unknown)
        detail = f"{verb} enum {noun} {listed} but the {self._reader_role} enum {reader.fullname} has no default"
        return [_Issue(("symbols",), (), detail)]

    def _resolve_fixed(self, reader: _Fixed, writer: _Fixed) -> list[_Issue]:
        if not _names_match(reader, writer):
            return [self._rename(reader, writer)]
        if reader.size == writer.size:
            return []
        old, new = (writer, reader) if self._backward else (reader, writer)
        return [_Issue(("size",), (), f"changed fixed {new.fullname} size from {old.size} to {new.size}")]

    def _rename(self, reader: _NamedNode, writer: _NamedNode) -> _Issue:
        old, new = (writer, reader) if self._backward else (reader, writer)
        detail = (
            f"changed {reader.kind} name from {old.fullname!r} to {new.fullname!r} and the "
            f"{self._reader_role} schema has no alias {writer.fullname!r}"
        )
        return _Issue(("name",), (), detail)

    def _type_change(self, reader: _Node, writer: _Node, writer_union: _Union | None) -> _Issue:
        if writer_union is None:
            old, new = self._old_new(reader, writer)
            return _Issue((), (), f"changed type from {_describe(old)} to {_describe(new)}")
        # Only one branch of the writer's union is unreadable: say which one.
        if self._backward:
            detail = (
                f"changed type from {_describe(writer_union)} to {_describe(reader)}, "
                f"which cannot read old values of type {_describe(writer, nested=True)}"
            )
        else:
            detail = (
                f"changed type from {_describe(reader)} to {_describe(writer_union)}, "
                f"and the old type cannot read new values of type {_describe(writer, nested=True)}"
            )
        return _Issue((), (), detail)


def _pointer(segments: tuple[str, ...]) -> str:
    if not segments:
        return "/"
    return "".join("/" + s.replace("~", "~0").replace("/", "~1") for s in segments)


def _run(reader: _Node, writer: _Node, *, backward: bool) -> list[Incompatibility]:
    consequence = "old data cannot be read" if backward else "new data cannot be read by the old schema"
    resolver = _Resolver(backward=backward)
    issues = resolver.resolve(reader, writer)
    found: list[Incompatibility] = []
    for issue in issues:
        subject = f"field {'.'.join(issue.fields)!r}" if issue.fields else "the schema"
        found.append(Incompatibility(_pointer(issue.segments), f"{subject} {issue.detail}: {consequence}"))
    # Different writer union branches can fail at the same place for the same reason.
    found = list(dict.fromkeys(found))
    # The length test skips truncations inside union branches that were tried and discarded.
    if resolver.truncated and len(issues) == _MAX_ISSUES:
        found.append(Incompatibility("/", f"more incompatibilities omitted after the first {_MAX_ISSUES}"))
    return found


def _backward(new: _Node, old: _Node) -> list[Incompatibility]:
    return _run(new, old, backward=True)


def _forward(new: _Node, old: _Node) -> list[Incompatibility]:
    return _run(old, new, backward=False)


def _full(new: _Node, old: _Node) -> list[Incompatibility]:
    return _backward(new, old) + _forward(new, old)


def _none(new: _Node, old: _Node) -> list[Incompatibility]:
    return []


_CHECKS: Final[dict[str, Callable[[_Node, _Node], list[Incompatibility]]]] = {
    "BACKWARD": _backward,
    "FORWARD": _forward,
    "FULL": _full,
    "NONE": _none,
}

#: Every level name :func:`check` accepts (case-insensitively).
LEVELS: Final = frozenset({*_CHECKS, *(f"{level}_TRANSITIVE" for level in _CHECKS if level != "NONE")})


def check_backward(new_schema: SchemaInput, old_schema: SchemaInput) -> list[Incompatibility]:
    """Problems preventing ``new_schema`` from reading data written with ``old_schema``."""
    return _backward(_load(new_schema, "new"), _load(old_schema, "old"))


def check_forward(new_schema: SchemaInput, old_schema: SchemaInput) -> list[Incompatibility]:
    """Problems preventing ``old_schema`` from reading data written with ``new_schema``."""
    return _forward(_load(new_schema, "new"), _load(old_schema, "old"))


def check_full(new_schema: SchemaInput, old_schema: SchemaInput) -> list[Incompatibility]:
    """BACKWARD problems followed by FORWARD problems."""
    return _full(_load(new_schema, "new"), _load(old_schema, "old"))


def check(new_schema: SchemaInput, old_schema: SchemaInput, level: str) -> list[Incompatibility]:
    """Check one pair at a registry compatibility ``level``.

    ``*_TRANSITIVE`` levels behave like their base level: with a single old schema there is no
    history to be transitive over. Schemas are parsed even for ``NONE`` so that an invalid schema
    never passes silently.

    Raises:
        ValueError: unknown level, or a schema that is not valid Avro (:class:`SchemaParseError`).
    """
    normalised = level.strip().upper()
    if normalised not in LEVELS:
        raise ValueError(f"unknown compatibility level {level!r}; expected one of {sorted(LEVELS)}")
    run = _CHECKS[normalised.removesuffix("_TRANSITIVE")]
    return run(_load(new_schema, "new"), _load(old_schema, "old"))
