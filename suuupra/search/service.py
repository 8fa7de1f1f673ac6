"""The queries users run, for the command line and the HTTP API alike: search, "more like this", "also watched";
and fitting the embedder from the content events."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel, Field

from suuupra.events import event_consumer
from suuupra.search.cowatch import CoWatchGraph
from suuupra.search.embedder import ModelStore, TfidfSvdEmbedder
from suuupra.search.engine import engine_client
from suuupra.search.index import NO_FILTERS, ContentNotFoundError, Filters, Hit, SearchIndex
from suuupra.settings import Settings

# "Also watched" asks the graph for more than it shows: some co-watched items may since have left the index.
CANDIDATES_FACTOR = 3


class ContentHit(BaseModel):
    content_id: str
    title: str
    course_title: str = ""
    course_id: str = ""
    score: float = Field(
        description="search: BM25 relevance; similar: cosine similarity; also-watched: decayed co-watchers"
    )
    category: str | None = None
    level: str | None = None
    language: str | None = None
    price_minor: int | None = None
    currency: str | None = None


class SearchAnswer(BaseModel):
    query: str
    total: int = Field(description="How many items match, of which `results` is one page.")
    model: str | None = Field(description="The embedder version whose index answered; null when none is built yet.")
    results: list[ContentHit]


class RelatedAnswer(BaseModel):
    content_id: str
    model: str | None
    results: list[ContentHit]


def _hit(hit: Hit) -> ContentHit:
    fields = hit.fields
    price = fields.get("price_minor")
    return ContentHit(
        content_id=hit.content_id, title=fields.get("title", ""), course_title=fields.get("course_title", ""),
        course_id=fields.get("course_id", ""), score=hit.score, category=fields.get("category"),
        level=fields.get("level"), language=fields.get("language"), price_minor=int(price) if price else None,
        currency=fields.get("currency"),
    )  # fmt: skip


class SearchService:
    """One connection to the engine; the index is the current model's, looked up on every question (a new fit or
    `suuupra index use` switches a running service over)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = engine_client(settings)
        self.store = ModelStore(settings.embedder_models_dir)
        self.graph = CoWatchGraph(self.client, settings)

    def close(self) -> None:
        self.client.close()

    @property
    def version(self) -> str | None:
        return self.settings.search.model_version or self.store.current_version()

    def index(self) -> SearchIndex | None:
        version = self.version
        return SearchIndex(self.client, self.settings, version) if version else None

    def search(self, text: str, filters: Filters = NO_FILTERS, limit: int = 10, offset: int = 0) -> SearchAnswer:
        index = self.index()
        if index is None or not index.exists():
            return SearchAnswer(query=text, total=0, model=None, results=[])
        total, hits = index.search(text, filters, limit, offset)
        return SearchAnswer(query=text, total=total, model=index.version, results=[_hit(hit) for hit in hits])

    def similar(self, content_id: str, limit: int = 10, filters: Filters = NO_FILTERS) -> RelatedAnswer:
        """Raises ContentNotFoundError when the item is not in the index."""
        index = self.index()
        if index is None:
            raise ContentNotFoundError(content_id)
        hits = index.similar(content_id, limit, filters)
        return RelatedAnswer(content_id=content_id, model=index.version, results=[_hit(hit) for hit in hits])

    def also_watched(self, content_id: str, limit: int = 10, at_ms: int | None = None) -> RelatedAnswer:
        """Co-watched items still published, decayed to `at_ms` (now by default). Raises ContentNotFoundError when the
        item is not in the index."""
        index = self.index()
        if index is None or not index.published([content_id]):
            raise ContentNotFoundError(content_id)
        at = at_ms if at_ms is not None else int(time.time() * 1000)
        candidates = self.graph.also_watched(content_id, at, limit * CANDIDATES_FACTOR + 10)
        published = index.published([candidate.content_id for candidate in candidates])
        results = [
            ContentHit(
                content_id=candidate.content_id,
                score=candidate.score,
                title=published[candidate.content_id]["title"],
                course_title=published[candidate.content_id]["course_title"],
                course_id=published[candidate.content_id]["course_id"],
            )
            for candidate in candidates
            if candidate.content_id in published
        ][:limit]
        return RelatedAnswer(content_id=content_id, model=index.version, results=results)


@contextmanager
def search_service(settings: Settings) -> Iterator[SearchService]:
    service = SearchService(settings)
    try:
        yield service
    finally:
        service.close()


def published_texts(settings: Settings) -> list[str]:
    """The text of every item's newest published revision on the content topic (read to its end)."""
    from connectors.avro.values import to_wire
    from suuupra.verify.search import event_text, expected_documents

    with event_consumer(settings, [settings.topics.content], read_only=True) as consumer:
        events: list[dict[str, Any]] = [to_wire(record.value) for record in consumer.read_to_end()]
    return [event_text(event) for event in expected_documents(events).values()]


def fit_embedder(settings: Settings, texts: list[str], dim: int | None = None) -> TfidfSvdEmbedder:
    """Fits the embedder on these texts, stores it and makes it current."""
    embedder = TfidfSvdEmbedder.fit(texts, dim or settings.search.embedding_dim)
    ModelStore(settings.embedder_models_dir).save(embedder)
    return embedder
