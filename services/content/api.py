"""Content HTTP API: `POST /contents`, `GET|PATCH|DELETE /contents/{id}`, `POST /contents/{id}/publish|unpublish`.

Every change bumps the content's revision (a withdrawal and a deletion too), so the newest revision of a content
tells its state to any consumer, whatever order its events arrive in; `If-Match: <revision>` makes an update
conditional, so two editors cannot overwrite each other silently.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Header, HTTPException, Response, status
from pydantic import BaseModel, ConfigDict, Field

from services.common import CorrelationDep, SettingsDep, StorableText, UserDep, invalid, make_event
from services.outbox.store import enqueue

router = APIRouter(tags=["content"])
Level = Literal["BEGINNER", "INTERMEDIATE", "ADVANCED", "ALL_LEVELS"]
# What the columns (INT, BIGINT) and the events (Avro int, long) can hold: larger numbers get a 422, not a 500.
INT_MAX = 2**31 - 1
# 10,000,000,000.00 in major units: far above any course, and low enough that an order's total with tax cannot
# overflow the BIGINT columns of commerce.
MAX_PRICE_MINOR = 10**12
COLUMNS = (
    "content_id", "course_id", "instructor_id", "title", "description", "tags", "category", "language", "level",
    "duration_seconds", "lesson_number", "is_free_preview", "price_minor", "currency", "revision", "published_revision",
)  # fmt: skip


class ContentDraft(BaseModel):
    model_config = ConfigDict(extra="forbid")

    course_id: uuid.UUID
    title: StorableText = Field(min_length=1, max_length=200)
    description: StorableText = Field(max_length=10_000)
    tags: list[StorableText] = Field(default_factory=list, max_length=20)
    category: StorableText = Field(min_length=1, max_length=80)
    language: str = Field(pattern=r"^[a-z]{2}(-[A-Z]{2})?$")
    level: Level = "ALL_LEVELS"
    duration_seconds: int = Field(gt=0, le=INT_MAX)
    lesson_number: int = Field(gt=0, le=INT_MAX)
    is_free_preview: bool = False
    price_minor: int = Field(ge=0, le=MAX_PRICE_MINOR, description="Course list price in minor units (paise for INR).")
    currency: str = Field(pattern=r"^[A-Z]{3}$")


class ContentChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: StorableText | None = Field(default=None, min_length=1, max_length=200)
    description: StorableText | None = Field(default=None, max_length=10_000)
    tags: list[StorableText] | None = Field(default=None, max_length=20)
    category: StorableText | None = Field(default=None, min_length=1, max_length=80)
    language: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[A-Z]{2})?$")
    level: Level | None = None
    duration_seconds: int | None = Field(default=None, gt=0, le=INT_MAX)
    price_minor: int | None = Field(default=None, ge=0, le=MAX_PRICE_MINOR)
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")


class Withdrawal(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: StorableText | None = Field(default=None, max_length=500, description="Why, for the event's consumers.")


class Content(BaseModel):
    content_id: str
    course_id: str
    instructor_id: str
    title: str
    description: str
    tags: list[str]
    category: str
    language: str
    level: Level
    duration_seconds: int
    lesson_number: int
    is_free_preview: bool
    price_minor: int
    currency: str
    revision: int
    published_revision: int | None


def _load(connection: psycopg.Connection[Any], content_id: uuid.UUID, lock: bool = False) -> Content:
    row = connection.execute(
        f"SELECT {', '.join(COLUMNS)} FROM contents WHERE content_id = %s AND deleted_at IS NULL"
        f"{' FOR UPDATE' if lock else ''}",
        (content_id,),
    ).fetchone()
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no content {content_id}")
    values = dict(zip(COLUMNS, row, strict=True))
    for key in ("content_id", "course_id", "instructor_id"):
        values[key] = str(values[key])
    values["currency"] = values["currency"].strip()
    return Content(**values)


def _owned(content: Content, user_id: str) -> None:
    if content.instructor_id != user_id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only the content's instructor may change it")


@router.post("/contents", status_code=status.HTTP_201_CREATED, response_model=Content)
def create_content(
    body: ContentDraft, user_id: UserDep, settings: SettingsDep, correlation_id: CorrelationDep
) -> Content:
    """Create a draft (revision 1) owned by the calling instructor; emits `content.created`."""
    content_id = uuid.uuid4()
    values = body.model_dump()
    with psycopg.connect(settings.postgres.dsn()) as connection, connection.transaction():
        connection.execute(
            "INSERT INTO contents (content_id, instructor_id, " + ", ".join(values) + ") VALUES (%s, %s, "
            + ", ".join(["%s"] * len(values)) + ")",
            (content_id, user_id, *values.values()),
        )  # fmt: skip
        content = _load(connection, content_id)
        enqueue(connection, make_event(
            settings, "content.created", user_id, correlation_id,
            **content.model_dump(exclude={"revision", "published_revision"}),
        ))  # fmt: skip
    return content


@router.get("/contents/{content_id}", response_model=Content)
def read_content(content_id: uuid.UUID, settings: SettingsDep) -> Content:
    with psycopg.connect(settings.postgres.dsn()) as connection:
        return _load(connection, content_id)


@router.patch("/contents/{content_id}", response_model=Content)
def update_content(
    content_id: uuid.UUID, body: ContentChange, user_id: UserDep, settings: SettingsDep,
    correlation_id: CorrelationDep, if_match: Annotated[int | None, Header()] = None,
) -> Content:  # fmt: skip
    """Revise the content (revision + 1); emits `content.updated` with the changed fields."""
    changes = body.model_dump(exclude_none=True)
    if not changes:
        raise invalid("body", "nothing to change: give at least one field")
    with psycopg.connect(settings.postgres.dsn()) as connection, connection.transaction():
        current = _load(connection, content_id, lock=True)
        _owned(current, user_id)
        if if_match is not None and if_match != current.revision:
            raise HTTPException(
                status.HTTP_412_PRECONDITION_FAILED, f"content is at revision {current.revision}, not {if_match}"
            )
        assignments = ", ".join(f"{column} = %s" for column in changes)
        connection.execute(
            f"UPDATE contents SET {assignments}, revision = revision + 1, updated_at = now() WHERE content_id = %s",
            (*changes.values(), content_id),
        )
        content = _load(connection, content_id)
        enqueue(connection, make_event(
            settings, "content.updated", user_id, correlation_id, content_id=content.content_id,
            course_id=content.course_id, instructor_id=content.instructor_id, revision=content.revision,
            changed_fields=sorted(changes), **changes,
        ))  # fmt: skip
    return content


@router.post("/contents/{content_id}/publish", response_model=Content)
def publish_content(
    content_id: uuid.UUID, user_id: UserDep, settings: SettingsDep, correlation_id: CorrelationDep
) -> Content:
    """Publish the current revision; emits `content.published` with the full snapshot learners will see."""
    with psycopg.connect(settings.postgres.dsn()) as connection, connection.transaction():
        current = _load(connection, content_id, lock=True)
        _owned(current, user_id)
        if current.published_revision == current.revision:
            raise HTTPException(status.HTTP_409_CONFLICT, f"revision {current.revision} is already published")
        # The withdrawal took the current revision: publishing the same text again is a change of its own.
        connection.execute(
            "UPDATE contents SET revision = revision + 1, updated_at = now() "
            "WHERE content_id = %s AND revision = withdrawn_revision",
            (content_id,),
        )
        # The price sold is the published one: a later revision changes it only when it is published in turn.
        connection.execute(
            "UPDATE contents SET published_revision = revision, published_price_minor = price_minor, "
            "published_currency = currency WHERE content_id = %s",
            (content_id,),
        )
        content = _load(connection, content_id)
        enqueue(connection, make_event(
            settings, "content.published", user_id, correlation_id,
            **content.model_dump(exclude={"published_revision"}),
        ))  # fmt: skip
    return content


@router.post("/contents/{content_id}/unpublish", response_model=Content)
def unpublish_content(
    content_id: uuid.UUID, user_id: UserDep, settings: SettingsDep, correlation_id: CorrelationDep,
    body: Withdrawal | None = None,
) -> Content:  # fmt: skip
    """Withdraw the content from learners (revision + 1); emits `content.unpublished`. Publishing brings it back."""
    with psycopg.connect(settings.postgres.dsn()) as connection, connection.transaction():
        current = _load(connection, content_id, lock=True)
        _owned(current, user_id)
        if current.published_revision is None:
            raise HTTPException(status.HTTP_409_CONFLICT, "content is not published")
        connection.execute(
            "UPDATE contents SET published_revision = NULL, revision = revision + 1, "
            "withdrawn_revision = revision + 1, updated_at = now() WHERE content_id = %s",
            (content_id,),
        )
        content = _load(connection, content_id)
        enqueue(connection, make_event(
            settings, "content.unpublished", user_id, correlation_id, content_id=content.content_id,
            course_id=content.course_id, instructor_id=content.instructor_id, revision=content.revision,
            reason=body.reason if body else None,
        ))  # fmt: skip
    return content


@router.delete("/contents/{content_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def delete_content(
    content_id: uuid.UUID, user_id: UserDep, settings: SettingsDep, correlation_id: CorrelationDep
) -> Response:
    """Delete the content for good (revision + 1); emits `content.deleted`. It can no longer be read or bought."""
    with psycopg.connect(settings.postgres.dsn()) as connection, connection.transaction():
        current = _load(connection, content_id, lock=True)
        _owned(current, user_id)
        # Kept as a row (orders and the ledger refer to its course), out of every read.
        connection.execute(
            "UPDATE contents SET deleted_at = now(), published_revision = NULL, revision = revision + 1, "
            "updated_at = now() WHERE content_id = %s",
            (content_id,),
        )
        enqueue(connection, make_event(
            settings, "content.deleted", user_id, correlation_id, content_id=current.content_id,
            course_id=current.course_id, instructor_id=current.instructor_id, revision=current.revision + 1,
        ))  # fmt: skip
    return Response(status_code=status.HTTP_204_NO_CONTENT)
