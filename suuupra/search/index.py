"""The content index in RediSearch: one hash per published content item, kept by a revision guard.

Layout, for index name I and model version V (a new model builds a new index beside the old one):
- `I:V:doc:<content_id>`: the item's fields and its embedding (a hash under the index's prefix: searchable);
- `I:V:rev:<content_id>`: the newest revision applied and its state (published, unpublished, deleted); kept after a
  removal, so that an older event arriving later cannot bring the item back.

Every write goes through `GUARD_SCRIPT` (the Flink job's sink and `apply` below run the same Lua): it applies an
event only if its revision is newer than the one recorded, atomically. Out-of-order events, duplicates and replays
after a restore therefore leave each item at its newest revision, whatever order they come in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import redis

from suuupra.search.engine import command, pipelined
from suuupra.settings import Settings

State = Literal["published", "unpublished", "deleted"]
STATES: dict[str, State] = {
    "content.published": "published",
    "content.unpublished": "unpublished",
    "content.deleted": "deleted",
}

# The columns of a document write, in the order the sink passes them as ARGV (content_id first: it makes the keys).
DOC_COLUMNS = (
    "content_id", "revision", "state", "event_time", "course_id", "title", "course_title", "description",
    "keywords", "tags", "category", "level", "language", "price_minor", "currency", "duration_seconds",
    "lesson_number", "is_free_preview", "model", "embedding",
)  # fmt: skip
# What a query returns of a document (everything but the vector).
RETURNED = tuple(column for column in DOC_COLUMNS if column not in ("state", "embedding", "model"))


def _guard_script() -> str:
    names = ", ".join(f"'{name}'" for name in DOC_COLUMNS)
    return f"""
local names = {{{names}}}
local revision = tonumber(ARGV[2])
local applied = tonumber(redis.call('HGET', KEYS[2], 'revision') or '-1')
if revision <= applied then return 0 end
redis.call('HSET', KEYS[2], 'revision', ARGV[2], 'state', ARGV[3], 'event_time', ARGV[4])
if ARGV[3] == 'published' then
  local pairs = {{}}
  for i = 1, #names do
    if names[i] ~= 'state' then
      pairs[#pairs + 1] = names[i]
      pairs[#pairs + 1] = ARGV[i]
    end
  end
  redis.call('HSET', KEYS[1], unpack(pairs))
else
  redis.call('DEL', KEYS[1])
end
return 1
""".strip()


GUARD_SCRIPT = _guard_script()


class ContentNotFoundError(LookupError):
    """The content is not in the index (never published, withdrawn or deleted)."""


@dataclass(frozen=True)
class IndexNames:
    index: str
    doc_prefix: str
    state_prefix: str

    @classmethod
    def of(cls, settings: Settings, version: str) -> IndexNames:
        base = f"{settings.search.index}:{version}"
        return cls(f"{settings.search.index}-{version}", f"{base}:doc:", f"{base}:rev:")


@dataclass(frozen=True)
class Filters:
    category: str | None = None
    level: str | None = None
    language: str | None = None
    max_price_minor: int | None = None
    min_price_minor: int | None = None
    free_preview: bool | None = None
    tag: str | None = None


NO_FILTERS = Filters()


@dataclass(frozen=True)
class Hit:
    content_id: str
    score: float  # search: BM25; similar: cosine similarity; also-watched: decayed co-watchers
    fields: dict[str, str]


# Underscore too: RediSearch refuses a lone `_` in a tag query (`@tags:{_}` is a syntax error), `\_` is fine.
_SPECIAL = re.compile(r"([^\w]|_)", re.UNICODE)
_WORD = re.compile(r"\w+", re.UNICODE)
MAX_QUERY_WORDS = 32


def _escape(value: str) -> str:
    """Backslash before every character RediSearch's query syntax could read as an operator (anything not a letter
    or digit, spaces and underscores included)."""
    return _SPECIAL.sub(r"\\\1", value)


def text_query(text: str, filters: Filters) -> str:
    """The user's words (each one escaped; all must match, RediSearch stems them) and the filters, as a query."""
    words = [_escape(word) for word in _WORD.findall(text)][:MAX_QUERY_WORDS]
    parts = [" ".join(words)] if words else []
    for field, value in (("category", filters.category), ("level", filters.level),
                         ("language", filters.language), ("tags", filters.tag)):  # fmt: skip
        if value:
            parts.append(f"@{field}:{{{_escape(value)}}}")
    if filters.free_preview is not None:
        parts.append(f"@is_free_preview:[{int(filters.free_preview)} {int(filters.free_preview)}]")
    if filters.min_price_minor is not None or filters.max_price_minor is not None:
        low = filters.min_price_minor if filters.min_price_minor is not None else "-inf"
        high = filters.max_price_minor if filters.max_price_minor is not None else "+inf"
        parts.append(f"@price_minor:[{low} {high}]")
    return " ".join(parts) or "*"


def _decode(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class SearchIndex:
    """The index of one model version: created on demand, written through the guard, queried."""

    def __init__(self, client: redis.Redis, settings: Settings, version: str, dim: int | None = None) -> None:
        self.client = client
        self.settings = settings
        self.version = version
        self.dim = dim
        self.names = IndexNames.of(settings, version)
        self._sha: str | None = None

    # --- schema ----------------------------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.names.index.encode() in command(self.client, "FT._LIST")

    def ensure(self) -> None:
        """Creates the index if missing (idempotent); needs the model's dimension."""
        if self.exists():
            return
        if self.dim is None:
            raise ValueError("creating an index needs the embedding dimension")
        schema = [
            "title", "TEXT", "WEIGHT", "3",
            "course_title", "TEXT", "WEIGHT", "2",
            "description", "TEXT",
            "keywords", "TEXT",
            "tags", "TAG", "SEPARATOR", ",",
            "category", "TAG", "level", "TAG", "language", "TAG", "currency", "TAG", "course_id", "TAG",
            "price_minor", "NUMERIC", "SORTABLE",
            "duration_seconds", "NUMERIC", "lesson_number", "NUMERIC", "is_free_preview", "NUMERIC",
            "revision", "NUMERIC", "event_time", "NUMERIC",
            "embedding", "VECTOR", "HNSW", "6", "TYPE", "FLOAT32", "DIM", str(self.dim), "DISTANCE_METRIC", "COSINE",
        ]  # fmt: skip
        try:
            command(self.client, "FT.CREATE", self.names.index, "ON", "HASH", "PREFIX", "1", self.names.doc_prefix,
                    "SCHEMA", *schema)  # fmt: skip
        except redis.ResponseError as error:
            if "already exists" not in str(error).lower():
                raise

    def drop(self) -> None:
        """Removes the index, its documents and its revision records."""
        if self.exists():
            command(self.client, "FT.DROPINDEX", self.names.index, "DD")
        for key in self.client.scan_iter(match=f"{self.names.state_prefix}*", count=1000):
            self.client.delete(key)

    # --- writes (the same guard as the job's sink) ------------------------------------------------------------
    def apply(self, rows: Iterable[Sequence[str | int | bytes | None]]) -> int:
        """Applies event rows (values in DOC_COLUMNS order); returns how many changed the index."""
        if self._sha is None:
            self._sha = _decode(command(self.client, "SCRIPT", "LOAD", GUARD_SCRIPT))
        commands = []
        for row in rows:
            values = [b"" if value is None else value for value in row]
            content_id = str(values[0])
            commands.append(("EVALSHA", self._sha, 2, f"{self.names.doc_prefix}{content_id}",
                             f"{self.names.state_prefix}{content_id}", *values))  # fmt: skip
        return sum(int(result) for result in pipelined(self.client, commands))

    # --- reads ------------------------------------------------------------------------------------------------
    def count(self) -> int:
        if not self.exists():
            return 0
        return int(command(self.client, "FT.SEARCH", self.names.index, "*", "LIMIT", "0", "0")[0])

    def document(self, content_id: str) -> dict[str, bytes]:
        fields = command(self.client, "HGETALL", f"{self.names.doc_prefix}{content_id}")
        if not fields:
            raise ContentNotFoundError(content_id)
        return {_decode(key): value for key, value in fields.items()}

    def documents(self) -> dict[str, dict[str, bytes]]:
        """Every document, by content id (for checks and tests: a scan of the key space)."""
        found: dict[str, dict[str, bytes]] = {}
        for key in self.client.scan_iter(match=f"{self.names.doc_prefix}*", count=1000):
            fields = command(self.client, "HGETALL", key)
            if fields:
                found[_decode(key)[len(self.names.doc_prefix) :]] = {_decode(k): v for k, v in fields.items()}
        return found

    def revisions(self) -> dict[str, tuple[int, str]]:
        """Every item's applied revision and state, by content id."""
        found: dict[str, tuple[int, str]] = {}
        for key in self.client.scan_iter(match=f"{self.names.state_prefix}*", count=1000):
            fields = command(self.client, "HGETALL", key)
            found[_decode(key)[len(self.names.state_prefix) :]] = (int(fields[b"revision"]), _decode(fields[b"state"]))
        return found

    def search(
        self, text: str, filters: Filters = NO_FILTERS, limit: int = 10, offset: int = 0
    ) -> tuple[int, list[Hit]]:
        """Full text (BM25) with filters; returns the number of matches and one page of hits."""
        if not self.exists():
            return 0, []
        reply = command(
            self.client, "FT.SEARCH", self.names.index, text_query(text, filters), "SCORER", "BM25", "WITHSCORES",
            "RETURN", str(len(RETURNED)), *RETURNED, "LIMIT", str(offset), str(limit), "DIALECT", "2",
        )  # fmt: skip
        hits = [
            Hit(_decode(reply[i])[len(self.names.doc_prefix) :], float(reply[i + 1]), _pairs(reply[i + 2]))
            for i in range(1, len(reply), 3)
        ]
        return int(reply[0]), hits

    def similar(self, content_id: str, limit: int = 10, filters: Filters = NO_FILTERS) -> list[Hit]:
        """The nearest items by embedding (cosine), the item itself left out."""
        vector = command(self.client, "HGET", f"{self.names.doc_prefix}{content_id}", "embedding")
        if not vector:
            raise ContentNotFoundError(content_id)
        return [hit for hit in self.nearest(bytes(vector), limit + 1, filters) if hit.content_id != content_id][:limit]

    def nearest(self, vector: bytes, limit: int, filters: Filters = NO_FILTERS) -> list[Hit]:
        prefilter = text_query("", filters)
        reply = command(
            self.client, "FT.SEARCH", self.names.index, f"({prefilter})=>[KNN {limit} @embedding $vector AS distance]",
            "PARAMS", "2", "vector", vector, "SORTBY", "distance", "ASC",
            "RETURN", str(len(RETURNED) + 1), *RETURNED, "distance", "LIMIT", "0", str(limit), "DIALECT", "2",
        )  # fmt: skip
        hits = []
        for i in range(1, len(reply), 2):
            fields = _pairs(reply[i + 1])
            distance = float(fields.pop("distance"))
            hits.append(Hit(_decode(reply[i])[len(self.names.doc_prefix) :], 1.0 - distance, fields))
        # Equal distances in a stable order (KNN breaks ties by internal id, which depends on write order).
        return sorted(hits, key=lambda hit: (-round(hit.score, 6), hit.content_id))

    def published(self, content_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """Title and course of those of the ids that are in the index."""
        replies = pipelined(self.client, [("HMGET", f"{self.names.doc_prefix}{content_id}", "title", "course_title",
                                           "course_id") for content_id in content_ids])  # fmt: skip
        found = {}
        for content_id, (title, course_title, course_id) in zip(content_ids, replies, strict=True):
            if title is not None:
                found[content_id] = {"title": _decode(title), "course_title": _decode(course_title or b""),
                                     "course_id": _decode(course_id or b"")}  # fmt: skip
        return found


def _pairs(flat: Sequence[Any]) -> dict[str, str]:
    return {_decode(flat[i]): _decode(flat[i + 1]) for i in range(0, len(flat), 2)}


def document_row(event: Mapping[str, Any], model: str, embedding: bytes | None) -> list[str | int | bytes | None]:
    """An event's row in DOC_COLUMNS order (the job builds the same in SQL), for `SearchIndex.apply`."""
    state = STATES[event["event_type"]]
    published = state == "published"
    tags = list(event.get("tags") or ()) if published else []
    values: dict[str, Any] = {
        "content_id": str(event["content_id"]), "revision": int(event["revision"]), "state": state,
        "event_time": int(event["event_time"]), "course_id": str(event.get("course_id") or ""),
        "keywords": " ".join(tags), "tags": ",".join(tags), "model": model if published else "",
        "embedding": embedding if published else b"",
    }  # fmt: skip
    for name in ("title", "course_title", "description", "category", "level", "language", "currency"):
        values[name] = str(event.get(name) or "") if published else ""
    for name in ("price_minor", "duration_seconds", "lesson_number"):
        values[name] = int(event.get(name) or 0) if published else 0
    values["is_free_preview"] = int(bool(event.get("is_free_preview"))) if published else 0
    return [values[column] for column in DOC_COLUMNS]
