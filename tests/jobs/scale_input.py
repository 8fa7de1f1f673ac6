"""Input for the analytics job at the scale users run it: tens of thousands of events on every topic it reads, hours
of event time read as one backlog, out-of-order, late and malformed records.

The simulator's journeys give the clickstream, commerce and payment topics their volume; profile updates and
catalogue revisions (copies of the simulator's own `user.updated` and `content.published` records with new ids,
times and revisions) give the user and content topics theirs. Records are published in emit order: each is sent a
little after its event time (out of order), some of them minutes after (late), and malformed ones are interleaved.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from schemas import default_catalog
from suuupra.events import EventPublisher
from suuupra.settings import Settings
from suuupra.simulate.journeys import SimulationProfile, generate
from suuupra.simulate.runner import MALFORMED_KINDS, malformed_record

START = 1_767_225_600_000  # 2026-01-01T00:00:00Z


@dataclass(frozen=True)
class PublishedInput:
    per_topic: dict[str, int]  # valid events per Kafka topic
    malformed: int
    event_time_span_h: float


def _copy(template: dict[str, Any], rng: random.Random, time_ms: int, **changes: Any) -> dict[str, Any]:
    return {**template, **changes, "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "event_time": time_ms}  # fmt: skip


def scale_events(seed: int, journeys: int, per_topic_floor: int) -> list[tuple[int, dict[str, Any]]]:
    """(emit time, event) pairs in emit order: the simulator's journeys plus profile updates and catalogue revisions
    until the user and content topics each hold `per_topic_floor` events."""
    rng = random.Random(seed)
    profile = SimulationProfile(seed=seed, start_time_ms=START, users=3000, out_of_order_share=0.06, late_share=0.02)
    simulated = [(event.emit_time_ms, event.value) for event in generate(profile, journeys)]
    values = [value for _, value in simulated]
    low, high = min(v["event_time"] for v in values), max(v["event_time"] for v in values)
    catalog = default_catalog()
    counts = Counter(catalog.schema_for(value["event_type"]).topic for value in values)

    extra: list[tuple[int, dict[str, Any]]] = []
    updates = [v for v in values if v["event_type"] == "user.updated"]
    users_needed = per_topic_floor - counts["user"]
    for _ in range(max(0, users_needed)):
        time_ms = rng.randrange(low, high)
        extra.append((time_ms, _copy(rng.choice(updates), rng, time_ms)))

    published = [v for v in values if v["event_type"] == "content.published"]
    revisions = {v["content_id"]: v["revision"] for v in published}
    for _ in range(max(0, per_topic_floor - counts["content"])):
        template = rng.choice(published)
        content_id = template["content_id"]
        revisions[content_id] += 1
        revision = revisions[content_id]
        # Dated at random, so later revisions are often older in event time and arrive in any order.
        time_ms = rng.randrange(low, high)
        title = f"{template['title'].split(' (rev')[0]} (rev {revision})"
        extra.append((time_ms, _copy(template, rng, time_ms, revision=revision, title=title)))

    delayed: list[tuple[int, dict[str, Any]]] = []
    for time_ms, value in extra:
        lateness = rng.random()
        # Most within the late rule's bound, some beyond it by minutes.
        delay = rng.randrange(0, 20_000) if lateness < 0.95 else rng.randrange(60_000, 600_000)
        delayed.append((time_ms + delay, value))
    return sorted([*simulated, *delayed], key=lambda pair: pair[0])


def publish_scale_input(
    settings: Settings, seed: int, journeys: int, per_topic_floor: int, malformed_into: set[str]
) -> PublishedInput:
    """Publishes the input; malformed records go only to the topics of `malformed_into` (those the job reads)."""
    publisher = EventPublisher(settings)
    rng = random.Random(seed + 1)
    per_topic: Counter[str] = Counter()
    malformed = 0
    events = scale_events(seed, journeys, per_topic_floor)
    for index, (_, value) in enumerate(events):
        topic = publisher.publish(value)
        per_topic[topic] += 1
        if index % 97 == 13 and topic in malformed_into:
            schema = publisher.catalog.schema_for(value["event_type"]).schema
            valid = publisher.producer.serializer.serialize(topic, schema, value)
            bad = malformed_record(MALFORMED_KINDS[malformed % len(MALFORMED_KINDS)], valid, rng)
            publisher.producer.produce_raw(topic, value["user_id"].encode(), bad, timestamp_ms=value["event_time"])
            malformed += 1
    publisher.flush(timeout=120)
    times = [value["event_time"] for _, value in events]
    return PublishedInput(dict(per_topic), malformed, (max(times) - min(times)) / 3_600_000)
