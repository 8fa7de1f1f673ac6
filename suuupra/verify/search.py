"""What the indexing job must produce, computed again in plain Python from the events: the index (each item at its
newest revision, present only if that revision is published) and the co-watch graph (distinct co-watchers per pair
of items and day); and the comparison with what the engine holds (`suuupra verify search`)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from suuupra.search.cowatch import DAY_MS, CoWatchGraph
from suuupra.search.embedder import Embedder, document_text
from suuupra.search.index import DOC_COLUMNS, STATES, SearchIndex, document_row

VIEWED = "clickstream.content_viewed"


def newest_states(events: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """Per content id, its publication event (published, unpublished, deleted) of the highest revision. Equal
    revisions are the same change delivered again: the first one delivered stands."""
    newest: dict[str, Mapping[str, Any]] = {}
    for event in events:
        if event.get("event_type") not in STATES:
            continue
        current = newest.get(str(event["content_id"]))
        if current is None or int(event["revision"]) > int(current["revision"]):
            newest[str(event["content_id"])] = event
    return newest


def expected_documents(events: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The items the index must hold: those whose newest publication event is `content.published`."""
    return {cid: event for cid, event in newest_states(events).items() if event["event_type"] == "content.published"}


def event_text(event: Mapping[str, Any]) -> str:
    return document_text(event.get("title"), event.get("description"), event.get("tags"), event.get("category"),
                         event.get("course_title"))  # fmt: skip


def expected_rows(events: Iterable[Mapping[str, Any]], embedder: Embedder) -> dict[str, dict[str, bytes]]:
    """The documents as the engine stores them (every field as bytes, the vector included)."""
    documents = expected_documents(events)
    ids = sorted(documents)
    vectors = embedder.embed([event_text(documents[cid]) for cid in ids])
    rows: dict[str, dict[str, bytes]] = {}
    for cid, vector in zip(ids, vectors, strict=True):
        row = document_row(documents[cid], embedder.version, np.asarray(vector, dtype="<f4").tobytes())
        rows[cid] = {
            name: value if isinstance(value, bytes) else str(value).encode()
            for name, value in zip(DOC_COLUMNS, row, strict=True)
            if name != "state"
        }
    return rows


def expected_cowatch(views: Iterable[Mapping[str, Any]], window_ms: int) -> dict[tuple[str, str, int], int]:
    """(smaller id, larger id, day of the later view) -> distinct users who viewed both items at most `window_ms`
    apart. A view delivered twice is one view."""
    per_user: dict[str, dict[str, tuple[int, str]]] = defaultdict(dict)
    for view in views:
        if view.get("event_type") == VIEWED:
            per_user[str(view["user_id"])][str(view["event_id"])] = (int(view["event_time"]), str(view["content_id"]))
    users: dict[tuple[str, str, int], set[str]] = defaultdict(set)
    for user, by_id in per_user.items():
        ordered = sorted(by_id.values())
        start = 0
        for i, (time_i, content_i) in enumerate(ordered):
            while time_i - ordered[start][0] > window_ms:
                start += 1
            for time_j, content_j in ordered[start:i]:
                if content_j != content_i:
                    low, high = sorted((content_i, content_j))
                    users[(low, high, max(time_i, time_j) // DAY_MS)].add(user)
    return {key: len(who) for key, who in users.items()}


def decayed_ranking(
    edges: Mapping[tuple[str, str, int], int], content_id: str, at_ms: int, half_life_days: float
) -> list[tuple[str, float]]:
    """ "Also watched" for one item as the graph query computes it: co-watchers weighted 2^(-(at - day)/half-life)."""
    at_day, rate = at_ms / DAY_MS, math.log(2) / half_life_days
    scores: dict[str, float] = defaultdict(float)
    for (low, high, day), users in edges.items():
        if content_id in (low, high) and day <= at_day:
            scores[high if low == content_id else low] += users * math.exp(rate * (day - at_day))
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


@dataclass(frozen=True)
class SearchCheck:
    name: str
    expected: int
    actual: int
    missing: list[str]
    extra: list[str]
    different: list[str]

    @property
    def equal(self) -> bool:
        return not (self.missing or self.extra or self.different)


def compare_index(expected: Mapping[str, Mapping[str, bytes]], index: SearchIndex) -> SearchCheck:
    actual = index.documents()
    different = sorted(cid for cid in set(expected) & set(actual) if dict(expected[cid]) != actual[cid])
    return SearchCheck("index", len(expected), len(actual), sorted(set(expected) - set(actual)),
                       sorted(set(actual) - set(expected)), different)  # fmt: skip


def compare_graph(expected: Mapping[tuple[str, str, int], int], graph: CoWatchGraph) -> SearchCheck:
    actual = graph.edges()
    different = sorted(str(key) for key in set(expected) & set(actual) if expected[key] != actual[key])
    return SearchCheck("cowatch", len(expected), len(actual), sorted(map(str, set(expected) - set(actual))),
                       sorted(map(str, set(actual) - set(expected))), different)  # fmt: skip
