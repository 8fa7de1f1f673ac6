"""Deterministic content and viewing streams for the indexing tests and benchmark, with what they must come to.

`content_stream`: a catalogue's lifecycle (created, updated, published, unpublished, deleted) with revisions edited
several times, items withdrawn (some published again) and deleted, events delivered out of order and some twice,
and planted near-duplicate pairs (one item re-uploaded with a slightly changed title and description).

`view_stream`: `clickstream.content_viewed` events of users watching a few items per session among their favourite
topics, out of order and some twice, plus planted co-watch patterns: anchors whose partners were watched with them by
many users, and an anchor whose old partner (many users, months ago) must rank below its recent one (few users).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MINUTE_MS = 60_000
DAY_MS = 86_400_000
PRODUCER = "suuupra-workload"

_TOPICS = (
    "python", "java", "rust", "golang", "kubernetes", "docker", "terraform", "postgres", "kafka", "flink", "spark",
    "react", "angular", "svelte", "typescript", "graphql", "linux", "networking", "security", "cryptography",
    "statistics", "probability", "calculus", "algebra", "geometry", "physics", "chemistry", "biology", "genetics",
    "astronomy", "economics", "accounting", "marketing", "negotiation", "leadership", "photography", "guitar",
    "piano", "drawing", "painting", "cooking", "baking", "yoga", "running", "chess", "poker", "spanish", "french",
    "japanese", "hindi", "tamil", "sanskrit", "history", "philosophy", "psychology", "sociology", "law", "design",
    "typography", "animation",
)  # fmt: skip
_WORDS = (
    "basics", "advanced", "patterns", "practice", "theory", "project", "workshop", "masterclass", "fundamentals",
    "deep", "dive", "hands", "on", "guide", "tips", "tricks", "mistakes", "interview", "exam", "revision", "quiz",
    "case", "study", "lab", "exercises", "beginners", "experts", "professional", "certification", "roadmap",
    "performance", "debugging", "testing", "architecture", "tooling", "workflow", "production", "scaling",
    "intuition", "examples", "history", "modern", "classic", "complete", "essential", "quick", "crash", "course",
)  # fmt: skip
_LEVELS = ("BEGINNER", "INTERMEDIATE", "ADVANCED", "ALL_LEVELS")
_LANGUAGES = ("en", "en", "en", "hi", "ta")
_CATEGORIES = ("programming", "data", "science", "business", "arts", "lifestyle", "languages", "humanities")


@dataclass
class _Item:
    content_id: str
    course_id: str
    instructor_id: str
    topic: str
    title: str
    course_title: str
    description: str
    tags: list[str]
    category: str
    language: str
    level: str
    price_minor: int
    duration_seconds: int
    lesson_number: int
    revision: int = 0


@dataclass(frozen=True)
class CatalogueProfile:
    seed: int = 1
    items: int = 2000
    start_time_ms: int = START_MS
    duplicate_pairs: int = 20
    max_edits: int = 3
    withdraw_share: float = 0.15  # of the items: withdrawn (content.unpublished), half of them published again
    delete_share: float = 0.08
    disorder_share: float = 0.3  # of the events: delivered after later ones (up to `max_delay_ms`)
    max_delay_ms: int = 6 * 3_600_000
    replay_share: float = 0.05  # of the events: delivered twice
    instructors: int = 50


@dataclass
class ContentStream:
    events: list[dict[str, Any]]  # in delivery order
    duplicate_pairs: list[tuple[str, str]]
    items: dict[str, _Item] = field(default_factory=dict)


def _envelope(rng: random.Random, event_type: str, time_ms: int, user_id: str) -> dict[str, Any]:
    return {
        "event_id": _uuid(rng), "event_type": event_type, "event_time": time_ms, "producer": PRODUCER,
        "correlation_id": _uuid(rng), "user_id": user_id,
    }  # fmt: skip


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _snapshot(item: _Item) -> dict[str, Any]:
    return {
        "content_id": item.content_id, "course_id": item.course_id, "instructor_id": item.instructor_id,
        "title": item.title, "description": item.description, "tags": list(item.tags), "category": item.category,
        "language": item.language, "level": item.level, "duration_seconds": item.duration_seconds,
        "lesson_number": item.lesson_number, "is_free_preview": item.lesson_number == 1,
        "price_minor": item.price_minor, "currency": "INR", "course_title": item.course_title,
    }  # fmt: skip


def _description(rng: random.Random, topic: str) -> str:
    words = [rng.choice((topic, *rng.sample(_WORDS, 3))) for _ in range(rng.randint(10, 18))]
    others = rng.sample(_TOPICS, 2)
    return f"{' '.join(words)} with {others[0]} and {others[1]} {rng.randint(1, 9999)}"


def _new_item(rng: random.Random, instructors: Sequence[str]) -> _Item:
    topic = rng.choice(_TOPICS)
    course_title = f"{topic.title()} {rng.choice(_WORDS).title()} {rng.choice(_WORDS).title()}"
    lesson = rng.randint(1, 12)
    return _Item(
        content_id=_uuid(rng), course_id=_uuid(rng), instructor_id=rng.choice(instructors), topic=topic,
        title=f"{course_title} - Lesson {lesson}: {rng.choice(_WORDS).title()} {rng.choice(_WORDS)}",
        course_title=course_title, description=_description(rng, topic),
        tags=sorted({topic, rng.choice(_WORDS), rng.choice(_WORDS)}), category=rng.choice(_CATEGORIES),
        language=rng.choice(_LANGUAGES), level=rng.choice(_LEVELS), price_minor=rng.randint(0, 200) * 5_000,
        duration_seconds=rng.randint(120, 3_600), lesson_number=lesson,
    )  # fmt: skip


def content_stream(profile: CatalogueProfile = CatalogueProfile()) -> ContentStream:
    rng = random.Random(profile.seed)
    instructors = [_uuid(rng) for _ in range(profile.instructors)]
    timed: list[tuple[int, int, dict[str, Any]]] = []  # (delivery time, sequence, event)

    def emit(event_type: str, time_ms: int, item: _Item, payload: dict[str, Any]) -> None:
        event = {**_envelope(rng, event_type, time_ms, item.instructor_id), **payload}
        delivered = time_ms
        if rng.random() < profile.disorder_share:
            delivered += rng.randint(1, profile.max_delay_ms)
        timed.append((delivered, len(timed), event))
        if rng.random() < profile.replay_share:
            timed.append((delivered + rng.randint(1, profile.max_delay_ms), len(timed), event))

    items: dict[str, _Item] = {}
    span_ms = 7 * DAY_MS
    originals: list[_Item] = []
    for index in range(profile.items):
        item = _new_item(rng, instructors)
        items[item.content_id] = item
        time_ms = profile.start_time_ms + rng.randint(0, span_ms)
        item.revision = 1
        emit("content.created", time_ms, item, _snapshot(item))
        emit("content.published", time_ms + MINUTE_MS, item, {"revision": 1, **_snapshot(item)})
        time_ms += 2 * MINUTE_MS
        planted = index < profile.duplicate_pairs
        for _ in range(rng.randint(0, profile.max_edits)):
            time_ms += rng.randint(1, 120) * MINUTE_MS
            item.revision += 1
            change = rng.choice(("title", "description", "tags", "level"))
            if change == "title":
                item.title = f"{item.title.split(' (rev')[0]} (rev {item.revision})"
            elif change == "description":
                item.description = _description(rng, item.topic)
            elif change == "tags":
                item.tags = sorted({item.topic, rng.choice(_WORDS)})
            else:
                item.level = rng.choice([level for level in _LEVELS if level != item.level])
            snapshot = _snapshot(item)
            update = {key: snapshot[key] for key in ("content_id", "course_id", "instructor_id")}
            nulls = ("title", "description", "tags", "category", "language", "level", "duration_seconds",
                     "price_minor", "currency")  # fmt: skip
            update |= {"revision": item.revision, "changed_fields": [change], **dict.fromkeys(nulls)}
            update[change] = snapshot[change]
            emit("content.updated", time_ms, item, update)
            emit("content.published", time_ms + MINUTE_MS, item, {"revision": item.revision, **snapshot})
            time_ms += MINUTE_MS
        if planted:
            originals.append(item)
            continue
        ids = {"content_id": item.content_id, "course_id": item.course_id, "instructor_id": item.instructor_id}
        if rng.random() < profile.withdraw_share:
            time_ms += rng.randint(1, 60) * MINUTE_MS
            item.revision += 1
            emit("content.unpublished", time_ms, item, {**ids, "revision": item.revision, "reason": None})
            if rng.random() < 0.5:
                item.revision += 1
                emit("content.published", time_ms + MINUTE_MS, item, {"revision": item.revision, **_snapshot(item)})
        if rng.random() < profile.delete_share:
            item.revision += 1
            emit("content.deleted", time_ms + 2 * MINUTE_MS, item, {**ids, "revision": item.revision})

    pairs: list[tuple[str, str]] = []
    for original in originals:
        # A re-upload: the same lesson under another course, its title marked and one word of its text changed.
        words = original.description.split()
        words[rng.randrange(len(words))] = rng.choice(_WORDS)
        changes = {"content_id": _uuid(rng), "course_id": _uuid(rng), "title": f"{original.title} (re-upload)",
                   "description": " ".join(words), "revision": 1}  # fmt: skip
        copy = _Item(**{**original.__dict__, **changes})
        items[copy.content_id] = copy
        time_ms = profile.start_time_ms + span_ms + rng.randint(0, DAY_MS)
        emit("content.created", time_ms, copy, _snapshot(copy))
        emit("content.published", time_ms + MINUTE_MS, copy, {"revision": 1, **_snapshot(copy)})
        pairs.append((original.content_id, copy.content_id))
    timed.sort(key=lambda entry: (entry[0], entry[1]))
    return ContentStream([event for _, _, event in timed], pairs, items)


@dataclass(frozen=True)
class ViewProfile:
    seed: int = 2
    users: int = 300
    sessions: int = 4000
    start_time_ms: int = START_MS
    days: int = 120
    anchors: int = 8
    disorder_share: float = 0.1
    max_delay_ms: int = 2 * 3_600_000
    replay_share: float = 0.03


@dataclass
class ViewStream:
    events: list[dict[str, Any]]  # in delivery order
    planted: dict[str, list[str]]  # anchor -> partners, in the order "also watched" must give them
    at_ms: int  # the moment the planted decay pattern is meant to be asked about


def view_stream(content_ids: Sequence[str], profile: ViewProfile = ViewProfile()) -> ViewStream:
    """Views of the given (published) items; anchors and partners are drawn from them and kept out of the background
    traffic, so that what "also watched" must answer for them is known by construction."""
    rng = random.Random(profile.seed)
    ids = sorted(content_ids)
    rng.shuffle(ids)
    planted_count = profile.anchors * 3 + 3
    special, background = ids[:planted_count], ids[planted_count:]
    users = [_uuid(rng) for _ in range(profile.users)]
    favourites = {user: rng.sample(background, min(len(background), 12)) for user in users}
    end_ms = profile.start_time_ms + profile.days * DAY_MS
    timed: list[tuple[int, int, dict[str, Any]]] = []

    def view(user: str, content_id: str, time_ms: int) -> None:
        duration = 600
        watched = rng.randint(30, duration)
        event = {
            **_envelope(rng, "clickstream.content_viewed", time_ms, user), "session_id": _uuid(rng),
            "content_id": content_id, "course_id": _uuid(rng), "watch_seconds": watched,
            "content_duration_seconds": duration, "position_seconds": watched, "completed": watched >= 540,
        }  # fmt: skip
        delivered = time_ms
        if rng.random() < profile.disorder_share:
            delivered += rng.randint(1, profile.max_delay_ms)
        timed.append((delivered, len(timed), event))
        if rng.random() < profile.replay_share:
            timed.append((delivered + rng.randint(1, profile.max_delay_ms), len(timed), event))

    for _ in range(profile.sessions):
        user = rng.choice(users)
        time_ms = rng.randint(profile.start_time_ms, end_ms - DAY_MS)
        for _ in range(rng.randint(2, 5)):
            view(user, rng.choice(favourites[user][:6] if rng.random() < 0.7 else favourites[user]), time_ms)
            time_ms += rng.randint(2, 40) * MINUTE_MS

    planted: dict[str, list[str]] = {}
    recent = end_ms - 3 * DAY_MS
    for k in range(profile.anchors):
        anchor, first, second = special[3 * k : 3 * k + 3]
        for partner, count in ((first, 30), (second, 18)):
            for _ in range(count):
                user = _uuid(rng)
                time_ms = rng.randint(recent, end_ms - 3 * 3_600_000)
                view(user, anchor, time_ms)
                view(user, partner, time_ms + rng.randint(5, 90) * MINUTE_MS)
                view(user, rng.choice(background), time_ms + rng.randint(5, 90) * MINUTE_MS)  # noise
        planted[anchor] = [first, second]
    # Decay: 60 users co-watched the old partner 100 days ago, 12 the new one in the last days.
    anchor, old, new = special[-3:]
    for partner, count, around in ((old, 60, end_ms - 100 * DAY_MS), (new, 12, recent)):
        for _ in range(count):
            user = _uuid(rng)
            time_ms = around + rng.randint(0, 2 * DAY_MS)
            view(user, anchor, time_ms)
            view(user, partner, time_ms + rng.randint(5, 60) * MINUTE_MS)
    planted[anchor] = [new, old]
    timed.sort(key=lambda entry: (entry[0], entry[1]))
    return ViewStream([event for _, _, event in timed], planted, end_ms)
