"""The index and the graph in the real engine, written without Flink through the same guard script and upsert query
the job's sinks use: out-of-order and repeated events, the queries and their filters, against independent
computations."""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Iterator
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from suuupra.platform.manager import Platform
from suuupra.search.cowatch import CoWatchGraph
from suuupra.search.embedder import ModelStore, TfidfSvdEmbedder
from suuupra.search.engine import engine_client
from suuupra.search.index import STATES, ContentNotFoundError, Filters, SearchIndex, document_row
from suuupra.search.service import SearchService
from suuupra.search.workload import CatalogueProfile, ContentStream, ViewProfile, content_stream, view_stream
from suuupra.settings import Settings
from suuupra.verify.search import (
    compare_graph,
    compare_index,
    decayed_ranking,
    event_text,
    expected_cowatch,
    expected_documents,
    expected_rows,
    newest_states,
)


@cache
def stream() -> ContentStream:
    return content_stream(CatalogueProfile(seed=5, items=3000, duplicate_pairs=15))


@cache
def fitted() -> TfidfSvdEmbedder:
    return TfidfSvdEmbedder.fit([event_text(event) for event in expected_documents(stream().events).values()], 64)


@pytest.fixture
def search_settings(settings: Settings, platform: Platform, tmp_path: Path) -> Iterator[Settings]:
    name = f"test-{uuid.uuid4().hex[:8]}"
    search = settings.search.model_copy(update={"index": name, "graph": name, "models_dir": tmp_path / "models"})
    own = settings.model_copy(update={"search": search})
    yield own
    client = engine_client(own)
    try:
        for version in [info.version for info in ModelStore(own.embedder_models_dir).models()]:
            SearchIndex(client, own, version).drop()
        CoWatchGraph(client, own).drop()
    finally:
        client.close()


def _apply(settings: Settings, events: list[dict[str, Any]], embedder: TfidfSvdEmbedder) -> SearchIndex:
    published = [event for event in events if event["event_type"] == "content.published"]
    vectors = dict(zip((id(event) for event in published), embedder.embed([event_text(e) for e in published]),
                       strict=True))  # fmt: skip
    rows = [document_row(event, embedder.version, vectors[id(event)].tobytes() if id(event) in vectors else None)
            for event in events if event["event_type"] in STATES]  # fmt: skip
    index = SearchIndex(engine_client(settings), settings, embedder.version, embedder.dim)
    index.ensure()
    for start in range(0, len(rows), 500):
        index.apply(rows[start : start + 500])
    return index


def test_any_order_and_any_repeat_of_the_events_gives_the_newest_revision_of_each_item(
    search_settings: Settings,
) -> None:
    events = stream().events
    documents = expected_documents(events)
    embedder = fitted()
    ModelStore(search_settings.embedder_models_dir).save(embedder)
    expected = expected_rows(events, embedder)
    kinds = {event["event_type"] for event in events}
    assert {"content.unpublished", "content.deleted", "content.updated"} <= kinds
    assert len(documents) < len(newest_states(events))  # some items end withdrawn or deleted

    index = _apply(search_settings, events, embedder)
    check = compare_index(expected, index)
    assert check.equal and check.actual == len(documents) > 2000, check
    # Delivered again in another order, everything twice: nothing may change.
    shuffled = events * 2
    random.Random(3).shuffle(shuffled)
    _apply(search_settings, shuffled, embedder)
    assert compare_index(expected, index).equal
    states = {cid: (int(e["revision"]), STATES[e["event_type"]]) for cid, e in newest_states(events).items()}
    assert index.revisions() == states


def test_search_filters_similar_and_hostile_text(search_settings: Settings) -> None:
    events = stream().events
    documents = expected_documents(events)
    embedder = fitted()
    ModelStore(search_settings.embedder_models_dir).save(embedder)
    index = _apply(search_settings, events, embedder)
    service = SearchService(search_settings)

    # Every description ends in a number: searching one finds exactly the items whose text holds it (three digits or
    # more: lesson and revision numbers are smaller).
    numbers = sorted(
        {e["description"].split()[-1] for e in documents.values() if len(e["description"].split()[-1]) > 2}
    )
    numbers = numbers[:20]
    for number in numbers:
        expected = {cid for cid, event in documents.items() if re.search(rf"\b{number}\b", event_text(event))}
        answer = service.search(number, limit=100)
        assert {hit.content_id for hit in answer.results} == expected and answer.total == len(expected), number

    filters = Filters(category="data", level="BEGINNER", language="en", max_price_minor=400_000)
    expected = {
        cid for cid, e in documents.items()
        if (e["category"], e["level"], e["language"]) == ("data", "BEGINNER", "en") and e["price_minor"] <= 400_000
    }  # fmt: skip
    answer = service.search("", filters, limit=100)
    assert expected and {hit.content_id for hit in answer.results} == expected
    topic = next(iter(documents.values()))["tags"][0]
    tagged = {cid for cid, e in documents.items() if topic in e["tags"]}
    assert service.search("", replace(filters, category=None, level=None, language=None, max_price_minor=None,
                                      tag=topic), limit=1).total == len(tagged)  # fmt: skip

    for hostile in (
        '"',
        "-",
        "@title:{x}",
        "*",
        "\\",
        "a|b",
        "((",
        "'; DROP",
        "\u0416",
        "x" * 300,
        "  ",
        "$v",
        "_",
        "__",
    ):
        service.search(hostile, Filters(category=hostile, tag=hostile), limit=3)  # answers, whatever it finds

    for original, copy in stream().duplicate_pairs:
        assert service.similar(original, 1).results[0].content_id == copy
        assert service.similar(copy, 1).results[0].content_id == original
        assert original not in {hit.content_id for hit in service.similar(original, 20).results}
    gone = next(cid for cid, event in newest_states(events).items() if event["event_type"] == "content.deleted")
    with pytest.raises(ContentNotFoundError):
        service.similar(gone)
    with pytest.raises(ContentNotFoundError):
        service.also_watched(gone)
    assert index.count() == len(documents)


def test_also_watched_ranks_by_decayed_co_watchers(search_settings: Settings) -> None:
    events = stream().events
    documents = expected_documents(events)
    embedder = fitted()
    ModelStore(search_settings.embedder_models_dir).save(embedder)
    index = _apply(search_settings, events, embedder)
    views = view_stream(sorted(documents), ViewProfile(sessions=1500))
    window_ms = search_settings.search.cowatch_window_s * 1000
    edges = expected_cowatch(views.events, window_ms)
    client = engine_client(search_settings)
    graph = CoWatchGraph(client, search_settings)
    items = list(edges.items())
    for start in range(0, len(items), 1000):
        graph.upsert(dict(items[start : start + 1000]))
    assert compare_graph(edges, graph).equal

    service = SearchService(search_settings)
    for anchor, partners in views.planted.items():
        answer = service.also_watched(anchor, 2, views.at_ms)
        assert [hit.content_id for hit in answer.results] == partners
    half_life = search_settings.search.cowatch_half_life_days
    sample = sorted({low for low, _, _ in edges})[:25]
    for content_id in sample:
        expected = [cid for cid, _ in decayed_ranking(edges, content_id, views.at_ms, half_life) if cid in documents]
        answer = service.also_watched(content_id, 5, views.at_ms)
        assert [hit.content_id for hit in answer.results] == expected[:5]
    # Withdrawn items leave the answers: the anchor's first partner, once unpublished, is not shown.
    anchor, (first, second) = next(iter(views.planted.items()))
    revision = int(newest_states(events)[first]["revision"]) + 1
    index.apply([document_row({"event_type": "content.unpublished", "content_id": first, "revision": revision,
                               "event_time": views.at_ms}, embedder.version, None)])  # fmt: skip
    assert [hit.content_id for hit in service.also_watched(anchor, 1, views.at_ms).results] == [second]
