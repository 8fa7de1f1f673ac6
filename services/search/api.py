"""Search HTTP API, beside the content service: `GET /search`, `GET /contents/{id}/similar`,
`GET /contents/{id}/also-watched`. Answers come from the search engine's index and co-watch graph, which the
indexing job keeps current (docs/search.md); nothing here writes."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status

from services.common import SettingsDep, StorableText
from services.content.api import MAX_PRICE_MINOR, Level
from suuupra.search.engine import SearchUnavailableError
from suuupra.search.index import ContentNotFoundError, Filters
from suuupra.search.service import RelatedAnswer, SearchAnswer, SearchService

router = APIRouter(tags=["search"])
# Epoch milliseconds up to the year 9999.
MAX_EPOCH_MS = 253_402_300_799_999
Limit = Annotated[int, Query(ge=1, le=100, description="How many results.")]


def _service(request: Request, settings: SettingsDep) -> SearchService:
    service: SearchService | None = getattr(request.app.state, "search", None)
    if service is None:
        service = request.app.state.search = SearchService(settings)
    return service


def _unavailable(error: SearchUnavailableError) -> HTTPException:
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(error))


def _not_indexed(content_id: uuid.UUID) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"content {content_id} is not published (or not indexed yet)")


@router.get("/search", response_model=SearchAnswer)
def search_content(
    request: Request, settings: SettingsDep,
    q: Annotated[StorableText, Query(max_length=200, description="Words to look for; all must match.")] = "",
    category: Annotated[StorableText | None, Query(max_length=80)] = None,
    level: Level | None = None,
    language: Annotated[str | None, Query(pattern=r"^[a-z]{2}(-[A-Z]{2})?$")] = None,
    tag: Annotated[StorableText | None, Query(max_length=80)] = None,
    max_price_minor: Annotated[int | None, Query(ge=0, le=MAX_PRICE_MINOR)] = None,
    min_price_minor: Annotated[int | None, Query(ge=0, le=MAX_PRICE_MINOR)] = None,
    free_preview: bool | None = None,
    limit: Limit = 10,
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
) -> SearchAnswer:  # fmt: skip
    """Full-text search (BM25 over title, course, description and tags) of the published content, with filters."""
    filters = Filters(category, level, language, max_price_minor, min_price_minor, free_preview, tag)
    try:
        return _service(request, settings).search(q, filters, limit, offset)
    except SearchUnavailableError as error:
        raise _unavailable(error) from error


@router.get("/contents/{content_id}/similar", response_model=RelatedAnswer)
def similar_content(content_id: uuid.UUID, request: Request, settings: SettingsDep, limit: Limit = 10) -> RelatedAnswer:
    """More like this: the published items nearest to this one by embedding (cosine similarity)."""
    try:
        return _service(request, settings).similar(str(content_id), limit)
    except ContentNotFoundError as error:
        raise _not_indexed(content_id) from error
    except SearchUnavailableError as error:
        raise _unavailable(error) from error


@router.get("/contents/{content_id}/also-watched", response_model=RelatedAnswer)
def also_watched(
    content_id: uuid.UUID, request: Request, settings: SettingsDep, limit: Limit = 10,
    at: Annotated[int | None, Query(ge=0, le=MAX_EPOCH_MS, description="Decay to epoch ms (default: now).")] = None,
) -> RelatedAnswer:  # fmt: skip
    """Users who watched this also watched: co-watched published items, recent co-watching weighing more."""
    try:
        return _service(request, settings).also_watched(str(content_id), limit, at)
    except ContentNotFoundError as error:
        raise _not_indexed(content_id) from error
    except SearchUnavailableError as error:
        raise _unavailable(error) from error
