"""The analytics oracle (suuupra/verify/analytics.py) on hand-made events, where it must agree with a JVM rule."""

from __future__ import annotations

from typing import Any

from suuupra.simulate.journeys import SimulationProfile, generate
from suuupra.verify.analytics import KafkaEvent, expected_tables

VIEW = "clickstream.content_viewed"


def _view() -> dict[str, Any]:
    return next(dict(e.value) for e in generate(SimulationProfile(seed=5, users=3), 500) if e.event_type == VIEW)


def test_a_session_counts_a_watched_uuid_once_in_either_case_and_other_ids_by_their_text() -> None:
    """connectors/jvm ContentIds: a UUID's text is its 128 bits, so its two spellings are one content (a writer that
    does not mark content_id uuid keeps the case it sent); any other id counts by its text."""
    first = _view()
    content = first["content_id"]
    views = [
        {**first, "event_id": "00000000-0000-4000-8000-000000000001"},
        {**first, "event_id": "00000000-0000-4000-8000-000000000002", "event_time": first["event_time"] + 1_000,
         "content_id": content.upper()},
        {**first, "event_id": "00000000-0000-4000-8000-000000000003", "event_time": first["event_time"] + 2_000,
         "content_id": "lesson-7"},
        {**first, "event_id": "00000000-0000-4000-8000-000000000004", "event_time": first["event_time"] + 3_000,
         "content_id": "LESSON-7"},
    ]  # fmt: skip
    events = [KafkaEvent("clickstream", 0, offset, view) for offset, view in enumerate(views)]
    [session] = expected_tables(events, 30_000)["user_sessions"]
    assert session[4:] == (4, 3)  # four events; the UUID once, lesson-7 and LESSON-7 apart
