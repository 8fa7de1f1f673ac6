"""Deterministic generator of realistic Suuupra user journeys, as Avro-ready dicts.

Every value matches its schema under ``schemas/`` (see ``schemas/catalog.yaml``): uuids are ``str``,
timestamps are epoch milliseconds, enums are symbol strings, money is ``*_minor`` INR paise.
No Kafka here: a producer (or a test) consumes :func:`generate`.
"""

from __future__ import annotations

import heapq
import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["EVENT_TYPES", "FRAUD_PATTERNS", "SimulatedEvent", "SimulationProfile", "generate"]

EVENT_TYPES: Final[tuple[str, ...]] = (
    "user.registered",
    "user.updated",
    "user.deleted",
    "content.created",
    "content.updated",
    "content.published",
    "content.unpublished",
    "content.deleted",
    "order.created",
    "order.paid",
    "order.fulfilled",
    "order.cancelled",
    "user.enrolled",
    "payment.initiated",
    "payment.upi_vpa_validated",
    "payment.card_tokenized",
    "payment.fraud_decided",
    "payment.approved",
    "payment.rejected",
    "payment.failed",
    "ledger.entry_posted",
    "clickstream.session_started",
    "clickstream.session_ended",
    "clickstream.content_viewed",
    "clickstream.content_clicked",
    "clickstream.search_performed",
)

FRAUD_PATTERNS: Final[tuple[str, ...]] = ("velocity_burst", "new_device", "unusual_amount", "failed_attempts")

TAG_LATE: Final = "late"
TAG_OUT_OF_ORDER: Final = "out_of_order"
TAG_CHARGEBACK: Final = "chargeback"


@dataclass(frozen=True)
class SimulationProfile:
    seed: int = 42
    start_time_ms: int = 1_767_225_600_000  # 2026-01-01T00:00:00Z; fixed so a seed alone decides the output
    users: int = 200  # size of the simulated user population
    out_of_order_share: float = 0.05  # events emitted after a later event, by up to `max_disorder_ms`
    max_disorder_ms: int = 20_000
    late_share: float = 0.01  # events emitted much later than their event time
    late_delay_ms: int = 15 * 60_000
    fraud_share: float = 0.05  # share of payment journeys that follow a fraud-like pattern
    producer: str = "suuupra-simulator"


@dataclass(frozen=True, slots=True)
class SimulatedEvent:
    event_type: str  # e.g. "payment.initiated"
    value: dict[str, Any]  # the Avro record (envelope + payload)
    emit_time_ms: int  # simulated wall-clock send time (>= event_time; later for out-of-order/late ones)
    tags: frozenset[str]  # e.g. {"late"}, {"out_of_order"}, {"fraud:velocity_burst"}, {"chargeback"}


def generate(profile: SimulationProfile, count: int) -> Iterator[SimulatedEvent]:
    """Yields exactly `count` events in emit order (sorted by emit_time_ms, stable), deterministic for a given profile.

    The output for `count` is a prefix of the output for any larger count.
    """
    _check_profile(profile, count)
    if count == 0:
        return
    yield from _Simulator(profile).run(count)


def _check_profile(profile: SimulationProfile, count: int) -> None:
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if profile.users < 1:
        raise ValueError("users must be >= 1")
    for name in ("out_of_order_share", "late_share", "fraud_share"):
        share = getattr(profile, name)
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"{name} must be within [0, 1], got {share}")
    if profile.out_of_order_share + profile.late_share > 1.0:
        raise ValueError("out_of_order_share + late_share must be <= 1")
    if profile.max_disorder_ms < 0 or profile.late_delay_ms < 0:
        raise ValueError("max_disorder_ms and late_delay_ms must be >= 0")


# --- tuning knobs (simulated milliseconds unless stated) ------------------------------------------------
SECOND: Final = 1_000
MINUTE: Final = 60 * SECOND
HOUR: Final = 60 * MINUTE
# Content events are dated up to this far before the journey that first needs them; events are only released
# from the reorder heap once no future journey can produce an earlier one.
CONTENT_LEAD_MS: Final = 10 * MINUTE
# A user starts a journey about every 30 simulated minutes, so the population size sets the event rate.
USER_JOURNEY_GAP_MS: Final = 30 * MINUTE
CURRENCY: Final = "INR"
GST_PERCENT: Final = 18
CARD_MDR_PERCENT: Final = 2
BUY_PROBABILITY: Final = 0.3
UPDATE_PROBABILITY: Final = 0.06
DELETE_PROBABILITY: Final = 0.004
# Users silently stop coming back and new ones sign up in their place, which keeps registrations and
# purchases flowing in long runs instead of everyone ending up owning the whole catalogue.
CHURN_PROBABILITY: Final = 0.025
CONTENT_EDIT_PROBABILITY: Final = 0.01
# Of the content edits: a lesson withdrawn (content.unpublished) and published again a little later, and a
# duplicate lesson published by mistake and deleted (it is never in a course's lesson list, so never watched).
WITHDRAW_SHARE: Final = 0.15
DUPLICATE_SHARE: Final = 0.1
UPI_PREFERENCE: Final = 0.625  # with a 90% stick-to-preference rate this gives ~60% UPI payments
COMPLETION_NUMERATOR, COMPLETION_DENOMINATOR = 9, 10  # completed <=> watched >= 90%
APPROVE_BELOW: Final = 0.7
REJECT_FROM: Final = 0.85
MODEL_VERSION: Final = "fraud-gbt-2026.01.1"

ACC_CLEARING: Final = "assets:psp_clearing"
ACC_REVENUE: Final = "revenue:course_sales"
ACC_GST: Final = "liabilities:gst_output_payable"
ACC_FEES: Final = "expenses:payment_processing_fees"

# (topic, category, tags, search queries)
_TOPICS: Final[tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...]] = (
    ("Python", "programming", ("python", "coding", "backend"), ("python", "python for beginners", "learn python")),
    ("Data Structures", "programming", ("dsa", "algorithms", "interview"), ("dsa", "data structures", "leetcode")),
    ("Machine Learning", "data-science", ("ml", "ai", "python"), ("machine learning", "ml course", "deep learning")),
    ("System Design", "programming", ("architecture", "interview", "scalability"), ("system design", "hld")),
    ("React", "web-development", ("react", "javascript", "frontend"), ("react", "react hooks", "frontend")),
    ("JEE Physics", "exam-prep", ("jee", "physics", "iit"), ("jee physics", "jee mains", "mechanics")),
    ("UPSC GS", "exam-prep", ("upsc", "polity", "history"), ("upsc", "upsc prelims", "indian polity")),
    ("Spoken English", "language", ("english", "communication"), ("spoken english", "english speaking")),
    ("Excel", "business", ("excel", "spreadsheets", "analytics"), ("excel", "advanced excel", "vlookup")),
    ("Digital Marketing", "business", ("marketing", "seo", "social-media"), ("digital marketing", "seo")),
    ("Guitar", "music", ("guitar", "music", "chords"), ("guitar", "guitar chords", "learn guitar")),
    ("Stock Market", "finance", ("investing", "stocks", "trading"), ("stock market", "trading", "investing")),
)
_COURSE_TEMPLATES: Final = ("Complete {} Bootcamp", "{} for Beginners", "Mastering {}", "{} in 30 Days")
_LESSON_TOPICS: Final = (
    "Introduction",
    "Setting Up",
    "Core Concepts",
    "Hands-on Practice",
    "Common Mistakes",
    "Deep Dive",
    "Case Study",
    "Problem Solving",
    "Revision",
    "Mock Test",
    "Project Walkthrough",
    "Next Steps",
)
_LEVELS: Final = ("BEGINNER", "INTERMEDIATE", "ADVANCED", "ALL_LEVELS")
_COURSES: Final = 24
_INSTRUCTORS: Final = 10

_FIRST_NAMES: Final = (
    "Aarav",
    "Vivaan",
    "Aditya",
    "Ananya",
    "Diya",
    "Ishaan",
    "Kavya",
    "Meera",
    "Rohan",
    "Saanvi",
    "Arjun",
    "Priya",
    "Rahul",
    "Sneha",
    "Karthik",
    "Lakshmi",
    "Farhan",
    "Zoya",
    "Harpreet",
    "Nikhil",
)
_LAST_NAMES: Final = (
    "Sharma",
    "Verma",
    "Iyer",
    "Reddy",
    "Nair",
    "Gupta",
    "Khan",
    "Singh",
    "Patel",
    "Das",
    "Banerjee",
    "Menon",
    "Joshi",
    "Kulkarni",
    "Rao",
    "Chatterjee",
)
_COUNTRIES: Final = ("IN",) * 46 + ("AE", "US", "GB", "SG")
_LANGUAGES: Final = ("en",) * 11 + ("hi",) * 6 + ("ta", "te", "bn")
_PLATFORMS: Final = ("ANDROID",) * 6 + ("WEB",) * 3 + ("IOS",)
_USER_AGENTS: Final[dict[str, tuple[str, ...]]] = {
    "ANDROID": (
        "SuuupraApp/5.2.0 (Android 14; Pixel 7)",
        "SuuupraApp/5.2.0 (Android 13; SM-A546E)",
        "SuuupraApp/5.1.3 (Android 12; Redmi Note 11)",
    ),
    "IOS": ("SuuupraApp/5.2.0 (iOS 17.2; iPhone14,5)", "SuuupraApp/5.1.9 (iOS 16.7; iPhone12,1)"),
    "WEB": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2",
        "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    ),
}
_REFERRERS: Final = (
    "https://www.google.com/",
    "https://www.youtube.com/",
    "https://www.instagram.com/",
    "utm_source=whatsapp&utm_campaign=referral",
    "https://t.co/",
)
_HOME_IP_PREFIXES: Final = ("49.36.", "106.51.", "117.99.", "223.186.", "152.58.", "27.7.")
_RISKY_IP_PREFIXES: Final = ("185.220.", "45.133.", "102.89.", "194.26.")
# (handle suffix, PSP / bank)
_UPI_PSPS: Final = (
    ("okaxis", "Axis Bank"),
    ("okhdfcbank", "HDFC Bank"),
    ("okicici", "ICICI Bank"),
    ("oksbi", "State Bank of India"),
    ("ybl", "Yes Bank"),
    ("paytm", "Paytm Payments Bank"),
)
# (network, BIN prefixes)
_CARD_NETWORKS: Final = (
    ("VISA", ("4",)),
    ("VISA", ("4",)),
    ("MASTERCARD", ("51", "53", "55")),
    ("RUPAY", ("60", "65", "81")),
    ("RUPAY", ("60", "65", "81")),
    ("AMEX", ("34", "37")),
)
_CARD_TYPES: Final = ("DEBIT", "DEBIT", "CREDIT", "CREDIT", "PREPAID")
_FOREIGN_ISSUERS: Final = ("US", "GB", "NG", "BR", "RU")
_COUPONS: Final = ("NEWYEAR20", "LEARN20", "SUUUPRA20")
_CANCEL_PAYMENT_REJECTED: Final = "PAYMENT_REJECTED"
_CANCEL_PAYMENT_FAILED: Final = "PAYMENT_FAILED"
_CANCEL_ABANDONED: Final = "USER_ABANDONED"
# (failure_code, reason, retryable)
_Failure = tuple[str, str, bool]
_UPI_FAILURES: Final[tuple[_Failure, ...]] = (
    ("U30", "Debit failed at remitter bank", True),
    ("U69", "Collect request expired", True),
    ("Z9", "Insufficient funds in account", True),
    ("U16", "Risk threshold exceeded at remitter bank", False),
    ("ZM", "Invalid UPI credential entered", True),
)
_CARD_FAILURES: Final[tuple[_Failure, ...]] = (
    ("05", "Do not honour", False),
    ("51", "Insufficient funds", True),
    ("54", "Card no longer valid", False),
    ("91", "Issuer unavailable", True),
    ("3DS_FAILED", "3-D Secure authentication failed", True),
)
_INVALID_VPA: Final[_Failure] = ("VPA_INVALID", "VPA does not exist at the PSP", False)
_BENIGN_RISK_REASONS: Final = ("ip_reputation", "new_card", "night_time_activity", "rare_course_category")
_EMPTY_TAGS: Final[frozenset[str]] = frozenset()


@dataclass(slots=True)
class _Content:
    content_id: str
    course: _Course
    lesson_number: int
    title: str
    description: str
    tags: list[str]
    duration_seconds: int
    level: str
    revision: int = 0
    last_time: int = 0


@dataclass(slots=True)
class _Course:
    course_id: str
    instructor_id: str
    topic_index: int
    title: str
    category: str
    language: str
    level: str
    price_minor: int
    lessons: list[_Content] = field(default_factory=list)
    published: bool = False


@dataclass(slots=True)
class _Device:
    device_id: str
    platform: str
    user_agent: str
    ip_address: str


@dataclass(slots=True)
class _Card:
    token: str
    network: str
    card_type: str
    last4: str
    bin: str
    issuer_country: str


@dataclass(slots=True)
class _User:
    user_id: str
    first_name: str
    last_name: str
    email: str
    country: str
    language: str
    favourite_topics: tuple[int, int]
    devices: list[_Device]
    vpa: str
    psp: str
    card: _Card
    prefers_upi: bool
    marketing_opt_in: bool
    registered: bool = False
    available_at: int = 0
    last_event_time: int = 0
    enrolled: dict[str, int] = field(default_factory=dict)  # course_id -> next lesson index
    legit_orders: int = 0
    legit_order_total_minor: int = 0  # sum over legit orders: their mean is the user's usual amount


@dataclass(slots=True)
class _Journey:
    """What every event of one journey shares."""

    correlation_id: str
    user_id: str
    tags: frozenset[str]
    session_id: str = ""


@dataclass(slots=True)
class _Order:
    order_id: str
    course: _Course
    subtotal_minor: int
    tax_minor: int
    total_minor: int


class _Simulator:
    def __init__(self, profile: SimulationProfile) -> None:
        self.p = profile
        self.rng = random.Random(profile.seed)
        self.heap: list[tuple[int, int, SimulatedEvent]] = []
        self.seq = 0
        self.clock = profile.start_time_ms
        self.tag_cache: dict[tuple[frozenset[str], str], frozenset[str]] = {}
        self.fraud_tags = {name: frozenset({f"fraud:{name}"}) for name in FRAUD_PATTERNS}
        self.instructors = [self.uuid() for _ in range(_INSTRUCTORS)]
        self.courses = self._build_catalogue()
        self.courses_by_topic: dict[int, list[_Course]] = {}
        for course in self.courses:
            self.courses_by_topic.setdefault(course.topic_index, []).append(course)
        self.users = [self._new_user() for _ in range(profile.users)]
        self.mean_gap = max(1.0, USER_JOURNEY_GAP_MS / profile.users)

    # --- primitives --------------------------------------------------------------------------------------
    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def between(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)

    def emit(
        self,
        event_type: str,
        time_ms: int,
        journey: _Journey,
        payload: dict[str, Any],
        tags: frozenset[str] | None = None,
    ) -> None:
        p = self.p
        value: dict[str, Any] = {
            "event_id": self.uuid(),
            "event_type": event_type,
            "event_time": time_ms,
            "producer": p.producer,
            "correlation_id": journey.correlation_id,
            "user_id": journey.user_id,
        }
        value.update(payload)
        event_tags = journey.tags if tags is None else tags
        emit_time = time_ms
        draw = self.rng.random()
        if draw < p.late_share:
            emit_time += self.between(p.late_delay_ms, 2 * p.late_delay_ms)
            event_tags = self._with_tag(event_tags, TAG_LATE)
        elif draw < p.late_share + p.out_of_order_share:
            emit_time += self.between(1, max(1, p.max_disorder_ms))
            event_tags = self._with_tag(event_tags, TAG_OUT_OF_ORDER)
        self.seq += 1
        heapq.heappush(self.heap, (emit_time, self.seq, SimulatedEvent(event_type, value, emit_time, event_tags)))

    def _with_tag(self, tags: frozenset[str], tag: str) -> frozenset[str]:
        key = (tags, tag)
        cached = self.tag_cache.get(key)
        if cached is None:
            cached = self.tag_cache[key] = tags | {tag}
        return cached

    # --- main loop ---------------------------------------------------------------------------------------
    def run(self, count: int) -> Iterator[SimulatedEvent]:
        heap = self.heap
        produced = 0
        while True:
            self.clock += max(1, round(self.rng.expovariate(1.0 / self.mean_gap)))
            if self.rng.random() < CONTENT_EDIT_PROBABILITY:
                self._edit_content()
            self._user_journey()
            # Every later journey dates its events at or after its own clock - CONTENT_LEAD_MS, and the clock
            # only grows, so whatever is at or below this watermark is final.
            watermark = self.clock - CONTENT_LEAD_MS
            while heap and heap[0][0] <= watermark:
                yield heapq.heappop(heap)[2]
                produced += 1
                if produced == count:
                    return

    # --- catalogue ---------------------------------------------------------------------------------------
    def _build_catalogue(self) -> list[_Course]:
        rng = self.rng
        courses: list[_Course] = []
        for index in range(_COURSES):
            topic_index = index % len(_TOPICS)
            topic, category, topic_tags, _ = _TOPICS[topic_index]
            course = _Course(
                course_id=self.uuid(),
                instructor_id=rng.choice(self.instructors),
                topic_index=topic_index,
                title=rng.choice(_COURSE_TEMPLATES).format(topic),
                category=category,
                language=rng.choice(("en", "en", "en", "hi", "hi", "ta")),
                level=rng.choice(_LEVELS),
                price_minor=self.between(4, 99) * 10_000 + 9_900,  # 49900..999900 paise, "x99" price points
            )
            for number in range(1, self.between(4, 10) + 1):
                lesson_topic = _LESSON_TOPICS[(number - 1) % len(_LESSON_TOPICS)]
                course.lessons.append(
                    _Content(
                        content_id=self.uuid(),
                        course=course,
                        lesson_number=number,
                        title=f"{course.title} - Lesson {number}: {lesson_topic}",
                        description=f"{lesson_topic} of {topic}, lesson {number} of {course.title}.",
                        tags=list(topic_tags),
                        duration_seconds=self.between(180, 1_800),
                        level=course.level,
                    )
                )
            courses.append(course)
        return courses

    def _snapshot(self, content: _Content) -> dict[str, Any]:
        """content.created / content.published payload: the full metadata of the current revision."""
        course = content.course
        return {
            "content_id": content.content_id,
            "course_id": course.course_id,
            "instructor_id": course.instructor_id,
            "title": content.title,
            "description": content.description,
            "tags": list(content.tags),
            "category": course.category,
            "language": course.language,
            "level": content.level,
            "duration_seconds": content.duration_seconds,
            "lesson_number": content.lesson_number,
            "is_free_preview": content.lesson_number == 1,
            "price_minor": course.price_minor,
            "currency": CURRENCY,
            "course_title": course.title,
        }

    def _content_window(self) -> tuple[int, int]:
        """Interval [low, high) in which content events of the current step may be dated."""
        return max(self.p.start_time_ms, self.clock - CONTENT_LEAD_MS), self.clock

    def _ensure_published(self, course: _Course) -> None:
        """Creates and publishes a course's lessons just before the first journey that references it.

        Lazily, so that a short run is not all catalogue events, while a content id never shows up in
        clickstream or commerce events before its content.published.
        """
        if course.published:
            return
        course.published = True
        low, high = self._content_window()
        journey = _Journey(self.uuid(), course.instructor_id, _EMPTY_TAGS)
        lessons = len(course.lessons)
        middle = low + (high - low) // 2
        time_ms = self.between(low, max(low, middle - lessons))
        for content in course.lessons:
            content.revision = 1
            self.emit("content.created", time_ms, journey, self._snapshot(content))
            time_ms += 1
        # The clock starts right at start_time_ms, so the window can be narrower than the lessons.
        time_ms = max(time_ms, self.between(middle, max(middle, high - lessons)))
        for content in course.lessons:
            self.emit("content.published", time_ms, journey, {"revision": 1, **self._snapshot(content)})
            content.last_time = time_ms
            time_ms += 1

    def _edit_content(self) -> None:
        published = [course for course in self.courses if course.published]
        if not published:
            return
        content = self.rng.choice(self.rng.choice(published).lessons)
        low, high = self._content_window()
        low = max(low, content.last_time + 1)
        if high - low < 2:
            return
        kind = self.rng.random()
        if kind < WITHDRAW_SHARE:
            self._withdraw_and_republish(content, low, high)
            return
        if kind < WITHDRAW_SHARE + DUPLICATE_SHARE:
            self._publish_and_delete_duplicate(content, low, high)
            return
        updated_at = self.between(low, high - 2)
        content.revision += 1
        change = self.rng.choice(("title", "description", "tags", "level"))
        if change == "title":
            content.title = f"{content.title.split(' (rev')[0]} (rev {content.revision})"
        elif change == "description":
            content.description = f"{content.description.split(' Updated')[0]} Updated in revision {content.revision}."
        elif change == "tags":
            content.tags = [*content.tags[:3], f"rev{content.revision}"]
        else:
            content.level = self.rng.choice([level for level in _LEVELS if level != content.level])
        course = content.course
        journey = _Journey(self.uuid(), course.instructor_id, _EMPTY_TAGS)
        snapshot = self._snapshot(content)
        update: dict[str, Any] = {
            "content_id": content.content_id,
            "course_id": course.course_id,
            "instructor_id": course.instructor_id,
            "revision": content.revision,
            "changed_fields": [change],
            "title": None,
            "description": None,
            "tags": None,
            "category": None,
            "language": None,
            "level": None,
            "duration_seconds": None,
            "price_minor": None,
            "currency": None,
        }
        update[change] = snapshot[change]
        self.emit("content.updated", updated_at, journey, update)
        published_at = self.between(updated_at + 1, high - 1)
        self.emit("content.published", published_at, journey, {"revision": content.revision, **snapshot})
        content.last_time = published_at

    def _lifecycle(self, content: _Content) -> dict[str, Any]:
        """content.unpublished / content.deleted payload; every change takes the next revision."""
        content.revision += 1
        course = content.course
        ids = {"content_id": content.content_id, "course_id": course.course_id, "instructor_id": course.instructor_id}
        return {**ids, "revision": content.revision}

    def _withdraw_and_republish(self, content: _Content, low: int, high: int) -> None:
        journey = _Journey(self.uuid(), content.course.instructor_id, _EMPTY_TAGS)
        withdrawn_at = self.between(low, high - 2)
        reason = self.rng.choice((None, "fixing the audio", "outdated"))
        self.emit("content.unpublished", withdrawn_at, journey, {**self._lifecycle(content), "reason": reason})
        content.revision += 1
        published_at = self.between(withdrawn_at + 1, high - 1)
        self.emit("content.published", published_at, journey, {"revision": content.revision, **self._snapshot(content)})
        content.last_time = published_at

    def _publish_and_delete_duplicate(self, original: _Content, low: int, high: int) -> None:
        duplicate = _Content(
            content_id=self.uuid(), course=original.course, lesson_number=original.lesson_number,
            title=original.title, description=original.description, tags=list(original.tags),
            duration_seconds=original.duration_seconds, level=original.level, revision=1,
        )  # fmt: skip
        journey = _Journey(self.uuid(), original.course.instructor_id, _EMPTY_TAGS)
        created_at = self.between(low, high - 2)
        self.emit("content.created", created_at, journey, self._snapshot(duplicate))
        self.emit("content.published", created_at + 1, journey, {"revision": 1, **self._snapshot(duplicate)})
        deleted_at = self.between(created_at + 2, max(created_at + 2, high - 1))
        self.emit("content.deleted", deleted_at, journey, self._lifecycle(duplicate))

    # --- population --------------------------------------------------------------------------------------
    def _new_user(self) -> _User:
        rng = self.rng
        first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        user_id = self.uuid()
        psp_handle, psp = rng.choice(_UPI_PSPS)
        topics = rng.sample(range(len(_TOPICS)), 2)
        devices = [self._new_device(rng.choice(_PLATFORMS), _HOME_IP_PREFIXES) for _ in range(self.between(1, 2))]
        return _User(
            user_id=user_id,
            first_name=first,
            last_name=last,
            email=f"{first.lower()}.{last.lower()}.{user_id[:6]}@example.com",
            country=rng.choice(_COUNTRIES),
            language=rng.choice(_LANGUAGES),
            favourite_topics=(topics[0], topics[1]),
            devices=devices,
            vpa=f"{first.lower()}.{last.lower()}{self.between(1, 999)}@{psp_handle}",
            psp=psp,
            card=self._new_card("IN"),
            prefers_upi=rng.random() < UPI_PREFERENCE,
            marketing_opt_in=rng.random() < 0.4,
        )

    def _new_device(self, platform: str, ip_prefixes: tuple[str, ...]) -> _Device:
        rng = self.rng
        return _Device(
            device_id=f"dev-{rng.getrandbits(64):016x}",
            platform=platform,
            user_agent=rng.choice(_USER_AGENTS[platform]),
            ip_address=f"{rng.choice(ip_prefixes)}{self.between(0, 255)}.{self.between(1, 254)}",
        )

    def _new_card(self, issuer_country: str) -> _Card:
        rng = self.rng
        network, prefixes = rng.choice(_CARD_NETWORKS)
        prefix = rng.choice(prefixes)
        rest = 6 - len(prefix)
        return _Card(
            token=f"tok_{rng.getrandbits(96):024x}",
            network=network,
            card_type=rng.choice(_CARD_TYPES),
            last4=f"{self.between(0, 9_999):04d}",
            bin=f"{prefix}{self.between(0, 10**rest - 1):0{rest}d}",
            issuer_country=issuer_country,
        )

    def _pick_course(self, user: _User) -> _Course:
        if self.rng.random() < 0.7:
            return self.rng.choice(self.courses_by_topic[self.rng.choice(user.favourite_topics)])
        return self.rng.choice(self.courses)

    def _pick_unowned(self, user: _User) -> _Course | None:
        unowned = [course for course in self.courses if course.course_id not in user.enrolled]
        if not unowned:
            return None
        favourites = [course for course in unowned if course.topic_index in user.favourite_topics]
        if favourites and self.rng.random() < 0.7:
            return self.rng.choice(favourites)
        return self.rng.choice(unowned)

    # --- one user journey --------------------------------------------------------------------------------
    def _user_journey(self) -> None:
        rng = self.rng
        slot = rng.randrange(len(self.users))
        user = self.users[slot]
        # A user's journeys never overlap, so each user's events stay in causal order.
        t = max(self.clock, user.available_at)
        first = not user.registered
        # The more of the catalogue a user owns, the less there is left that they want.
        buy = rng.random() < BUY_PROBABILITY * (1 - len(user.enrolled) / len(self.courses))
        target = self._pick_unowned(user) if buy else None
        fraud: str | None = None
        if target is not None and rng.random() < self.p.fraud_share:
            # A brand-new account has no device history, and a user without orders no usual amount.
            patterns = ["velocity_burst", "failed_attempts"]
            if not first:
                patterns.append("new_device")
            if user.legit_orders:
                patterns.append("unusual_amount")
            fraud = rng.choice(patterns)
        journey = _Journey(self.uuid(), user.user_id, self.fraud_tags[fraud] if fraud else _EMPTY_TAGS)
        if first:
            user.registered = True
            self._register(journey, user, t)
            t += self.between(SECOND, 20 * SECOND)
        device = self._session_device(user, fraud, first)
        journey.session_id = self.uuid()
        session_start = t
        self.emit(
            "clickstream.session_started",
            t,
            journey,
            {
                "session_id": journey.session_id,
                "device_id": device.device_id,
                "platform": device.platform,
                "user_agent": device.user_agent,
                "referrer": rng.choice(_REFERRERS) if rng.random() < 0.4 else None,
            },
        )
        steps = self.between(1, 4)
        for step in range(steps):
            t += self.between(2 * SECOND, 40 * SECOND)
            t = self._browse(journey, user, t, target if step == steps - 1 else None)
        if not first and rng.random() < UPDATE_PROBABILITY:
            t = self._update_profile(journey, user, t + self.between(5 * SECOND, 60 * SECOND))
        abandoned: _Order | None = None
        if target is not None:
            t, abandoned = self._purchase(
                journey, user, device, target, fraud, t + self.between(5 * SECOND, 2 * MINUTE)
            )
        t += self.between(10 * SECOND, 5 * MINUTE)
        self.emit(
            "clickstream.session_ended",
            t,
            journey,
            {"session_id": journey.session_id, "duration_ms": t - session_start},
        )
        if abandoned is not None:
            t += self.between(15 * MINUTE, 30 * MINUTE)  # checkout timeout
            self._cancel(journey, abandoned, None, _CANCEL_ABANDONED, "checkout timed out", t)
        user.last_event_time = max(user.last_event_time, t)
        leaving = rng.random() if not first else 1.0
        if leaving < DELETE_PROBABILITY:
            self._delete(journey, user, slot)
        elif leaving < DELETE_PROBABILITY + CHURN_PROBABILITY:
            self.users[slot] = self._new_user()
        else:
            user.available_at = t + self.between(MINUTE, 30 * MINUTE)

    def _register(self, journey: _Journey, user: _User, t: int) -> None:
        rng = self.rng
        self.emit(
            "user.registered",
            t,
            journey,
            {
                "email": user.email,
                "display_name": f"{user.first_name} {user.last_name}",
                "country": user.country,
                "preferred_language": user.language,
                "signup_platform": user.devices[0].platform,
                "referral_code": f"REF{rng.getrandbits(24):06X}" if rng.random() < 0.15 else None,
                "marketing_opt_in": user.marketing_opt_in,
            },
        )

    def _update_profile(self, journey: _Journey, user: _User, t: int) -> int:
        rng = self.rng
        change = rng.choice(("display_name", "preferred_language", "country", "marketing_opt_in", "email"))
        payload: dict[str, Any] = {
            "changed_fields": [change],
            "email": None,
            "display_name": None,
            "country": None,
            "preferred_language": None,
            "marketing_opt_in": None,
        }
        if change == "display_name":
            user.last_name = rng.choice(_LAST_NAMES)
            payload[change] = f"{user.first_name} {user.last_name}"
        elif change == "preferred_language":
            user.language = rng.choice(_LANGUAGES)
            payload[change] = user.language
        elif change == "country":
            user.country = rng.choice(_COUNTRIES)
            payload[change] = user.country
        elif change == "marketing_opt_in":
            user.marketing_opt_in = not user.marketing_opt_in
            payload[change] = user.marketing_opt_in
        else:
            user.email = f"{user.first_name.lower()}.{rng.getrandbits(20):05x}@example.com"
            payload[change] = user.email
        self.emit("user.updated", t, journey, payload)
        return t

    def _delete(self, journey: _Journey, user: _User, slot: int) -> None:
        rng = self.rng
        reason = rng.choice(("USER_REQUEST",) * 7 + ("INACTIVITY",) * 2 + ("POLICY_VIOLATION",))
        # After any chargeback still pending for the user, so user.deleted is the user's last event.
        t = user.last_event_time + self.between(SECOND, MINUTE)
        self.emit(
            "user.deleted",
            t,
            journey,
            {"reason": reason, "erasure_requested": reason == "USER_REQUEST" and rng.random() < 0.6},
        )
        self.users[slot] = self._new_user()

    def _session_device(self, user: _User, fraud: str | None, first: bool) -> _Device:
        rng = self.rng
        if fraud == "new_device":
            # Deliberately not remembered: it is the fraudster's device, not the user's.
            return self._new_device(rng.choice(_PLATFORMS), _RISKY_IP_PREFIXES)
        if not first and rng.random() < 0.03 and len(user.devices) < 4:
            user.devices.append(self._new_device(rng.choice(_PLATFORMS), _HOME_IP_PREFIXES))
            return user.devices[-1]
        return user.devices[0] if rng.random() < 0.7 else rng.choice(user.devices)

    # --- browsing ----------------------------------------------------------------------------------------
    def _browse(self, journey: _Journey, user: _User, t: int, target: _Course | None) -> int:
        rng = self.rng
        draw = rng.random()
        if target is None and user.enrolled and draw < 0.35:
            course = rng.choice([c for c in self.courses if c.course_id in user.enrolled])
            return self._click_and_view(journey, user, course, "COURSE_PAGE", self.between(1, 5), t)
        course = target if target is not None else self._pick_course(user)
        if draw < 0.6:
            topic = _TOPICS[course.topic_index]
            results = self.between(1, 120) if target is not None or rng.random() >= 0.05 else 0
            filters: dict[str, str] = {}
            if rng.random() < 0.3:
                filters["language"] = course.language
            if rng.random() < 0.15:
                filters["level"] = course.level
            self.emit(
                "clickstream.search_performed",
                t,
                journey,
                {
                    "session_id": journey.session_id,
                    "query": rng.choice(topic[3]),
                    "results_count": results,
                    "filters": filters,
                },
            )
            if results == 0 or (target is None and rng.random() < 0.25):
                return t
            t += self.between(SECOND, 15 * SECOND)
            return self._click_and_view(journey, user, course, "SEARCH", self.between(1, min(10, results)), t)
        source = "HOME" if draw < 0.8 else "RECOMMENDATION"
        return self._click_and_view(journey, user, course, source, self.between(1, 12), t)

    def _click_and_view(
        self, journey: _Journey, user: _User, course: _Course, source: str, position: int, t: int
    ) -> int:
        rng = self.rng
        self._ensure_published(course)
        progress = user.enrolled.get(course.course_id)
        # Without an enrollment only the free preview (lesson 1) can be played.
        content = course.lessons[progress if progress is not None else 0]
        self.emit(
            "clickstream.content_clicked",
            t,
            journey,
            {
                "session_id": journey.session_id,
                "content_id": content.content_id,
                "course_id": course.course_id,
                "source": source,
                "position": position,
            },
        )
        if rng.random() < 0.1 and source != "COURSE_PAGE":
            return t  # bounced before playback
        duration = content.duration_seconds
        threshold = (duration * COMPLETION_NUMERATOR + COMPLETION_DENOMINATOR - 1) // COMPLETION_DENOMINATOR
        completes = rng.random() < 0.35
        watched = self.between(threshold, duration) if completes else self.between(5, threshold - 1)
        start = self.between(0, duration - watched) if progress is not None and rng.random() < 0.5 else 0
        completed = watched * COMPLETION_DENOMINATOR >= duration * COMPLETION_NUMERATOR
        t += watched * SECOND + self.between(1, 5 * SECOND)
        self.emit(
            "clickstream.content_viewed",
            t,
            journey,
            {
                "session_id": journey.session_id,
                "content_id": content.content_id,
                "course_id": course.course_id,
                "watch_seconds": watched,
                "content_duration_seconds": duration,
                "position_seconds": start + watched,
                "completed": completed,
            },
        )
        if progress is not None and completed:
            user.enrolled[course.course_id] = min(progress + 1, len(course.lessons) - 1)
        return t

    # --- commerce and payments ---------------------------------------------------------------------------
    def _purchase(
        self, journey: _Journey, user: _User, device: _Device, course: _Course, fraud: str | None, t: int
    ) -> tuple[int, _Order | None]:
        """Returns the time of the last event and the order left unpaid (cancelled after the session)."""
        rng = self.rng
        if fraud == "velocity_burst":
            return self._velocity_burst(journey, user, device, course, t), None
        quantity = 1
        if fraud == "unusual_amount":
            # Bulk seats of the dearest course left, at least 10x the user's mean legit order.
            course = max((c for c in self.courses if c.course_id not in user.enrolled), key=lambda c: c.price_minor)
            usual = user.legit_order_total_minor // user.legit_orders
            quantity = max(10, -(-10 * usual // course.price_minor))
        elif rng.random() < 0.03:
            quantity = 2
        order = self._create_order(journey, course, quantity, t, allow_coupon=fraud is None)
        if fraud is None:
            user.legit_orders += 1
            user.legit_order_total_minor += order.total_minor
        t += self.between(3 * SECOND, 40 * SECOND)
        if fraud == "failed_attempts":
            return self._failed_attempts(journey, user, device, order, t), None
        if fraud is None and rng.random() < 0.05:
            return t, order
        return self._pay_order(journey, user, device, order, fraud, t), None

    def _create_order(
        self, journey: _Journey, course: _Course, quantity: int, t: int, *, allow_coupon: bool = True
    ) -> _Order:
        rng = self.rng
        self._ensure_published(course)
        gross = course.price_minor * quantity
        coupon = rng.choice(_COUPONS) if allow_coupon and rng.random() < 0.2 else None
        discount = gross * 20 // 100 if coupon else 0
        subtotal = gross - discount
        tax = (subtotal * GST_PERCENT + 50) // 100  # GST rounded half up to the paisa
        order = _Order(self.uuid(), course, subtotal, tax, subtotal + tax)
        self.emit(
            "order.created",
            t,
            journey,
            {
                "order_id": order.order_id,
                "course_id": course.course_id,
                "session_id": journey.session_id,
                "quantity": quantity,
                "unit_price_minor": course.price_minor,
                "discount_minor": discount,
                "subtotal_minor": subtotal,
                "tax_minor": tax,
                "total_minor": order.total_minor,
                "currency": CURRENCY,
                "coupon_code": coupon,
            },
        )
        return order

    def _cancel(
        self, journey: _Journey, order: _Order, payment_id: str | None, reason: str, detail: str | None, t: int
    ) -> None:
        self.emit(
            "order.cancelled",
            t,
            journey,
            {
                "order_id": order.order_id,
                "course_id": order.course.course_id,
                "payment_id": payment_id,
                "reason": reason,
                "reason_detail": detail,
            },
        )

    def _method(self, user: _User) -> str:
        upi = user.prefers_upi if self.rng.random() < 0.9 else not user.prefers_upi
        return "UPI" if upi else "CARD"

    def _legit_score(self) -> float:
        return round(self.rng.random() ** 8 * 0.95, 4)

    def _fraud_score(self) -> float:
        return round(0.35 + 0.65 * math.sqrt(self.rng.random()), 4)

    def _reasons(self, score: float, signals: tuple[str, ...]) -> list[str]:
        rng = self.rng
        # The engine notices each real signal most of the time, never all of the time.
        reasons = [signal for signal in signals if rng.random() < 0.8]
        if score >= 0.3 and not reasons:
            reasons.append(rng.choice(_BENIGN_RISK_REASONS))
        return reasons

    def _psp_failure(self, method: str) -> _Failure:
        return self.rng.choice(_UPI_FAILURES if method == "UPI" else _CARD_FAILURES)

    def _attempt(
        self,
        journey: _Journey,
        user: _User,
        device: _Device,
        order: _Order,
        attempt: int,
        method: str,
        card: _Card,
        t: int,
        score: float,
        reasons: list[str],
        psp_failure: _Failure | None,
        *,
        invalid_vpa: bool = False,
        scripted: bool = False,
        review_approval: float = 0.85,
    ) -> tuple[int, str, str, str | None]:
        """One payment attempt; returns (time of its last event, outcome, payment_id, failure detail).

        `scripted` compresses every delay the way a bot's requests are, not a human's.
        """
        rng = self.rng
        payment_id = self.uuid()
        ids = {"payment_id": payment_id, "order_id": order.order_id}
        self.emit(
            "payment.initiated",
            t,
            journey,
            {
                **ids,
                "attempt": attempt,
                "method": method,
                "amount_minor": order.total_minor,
                "currency": CURRENCY,
                "device_id": device.device_id,
                "ip_address": device.ip_address,
                "idempotency_key": f"{order.order_id}:{attempt}",
            },
        )
        money = {"method": method, "amount_minor": order.total_minor, "currency": CURRENCY}
        t += self.between(100, 400) if scripted else self.between(300, 2 * SECOND)
        if method == "UPI":
            self.emit(
                "payment.upi_vpa_validated",
                t,
                journey,
                {**ids, "vpa": user.vpa, "psp": user.psp, "valid": not invalid_vpa},
            )
            if invalid_vpa:
                t += self.between(50, 300)
                code, reason, retryable = _INVALID_VPA
                self.emit(
                    "payment.failed",
                    t,
                    journey,
                    {**ids, **money, "failure_code": code, "reason": reason, "retryable": retryable},
                )
                return t, "failed", payment_id, reason
        else:
            self.emit(
                "payment.card_tokenized",
                t,
                journey,
                {
                    **ids,
                    "token": card.token,
                    "network": card.network,
                    "card_type": card.card_type,
                    "last4": card.last4,
                    "bin": card.bin,
                    "issuer_country": card.issuer_country,
                },
            )
        t += self.between(40, 150) if scripted else self.between(40, 250)
        decision = "APPROVE" if score < APPROVE_BELOW else "REVIEW" if score < REJECT_FROM else "REJECT"
        self.emit(
            "payment.fraud_decided",
            t,
            journey,
            {
                **ids,
                "decision": decision,
                "score": score,
                "model_version": MODEL_VERSION,
                "reasons": reasons,
            },
        )
        if decision == "REJECT":
            t += self.between(20, 200)
            self.emit(
                "payment.rejected",
                t,
                journey,
                {**ids, **money, "reason": "fraud_score_above_threshold", "reviewed": False},
            )
            return t, "rejected", payment_id, "fraud_score_above_threshold"
        reviewed = decision == "REVIEW"
        if reviewed:
            t += self.between(300, 800) if scripted else self.between(MINUTE, 10 * MINUTE)
            if rng.random() >= review_approval:
                self.emit(
                    "payment.rejected",
                    t,
                    journey,
                    {**ids, **money, "reason": "manual_review_rejected", "reviewed": True},
                )
                return t, "rejected", payment_id, "manual_review_rejected"
        if scripted:
            t += self.between(300, 1_200)
        else:
            # UPI waits for the payer to approve in their UPI app; cards for 3-D Secure.
            t += self.between(4 * SECOND, 30 * SECOND) if method == "UPI" else self.between(2 * SECOND, 15 * SECOND)
        if psp_failure is not None:
            code, reason, retryable = psp_failure
            self.emit(
                "payment.failed",
                t,
                journey,
                {**ids, **money, "failure_code": code, "reason": reason, "retryable": retryable},
            )
            return t, "failed", payment_id, reason
        self.emit(
            "payment.approved",
            t,
            journey,
            {
                **ids,
                **money,
                "psp_reference": f"{rng.getrandbits(40) % 10**12:012d}",
                "reviewed": reviewed,
            },
        )
        return t, "approved", payment_id, None

    def _pay_order(
        self, journey: _Journey, user: _User, device: _Device, order: _Order, fraud: str | None, t: int
    ) -> int:
        """Legit, new-device and unusual-amount payments: up to three attempts on one order."""
        rng = self.rng
        method = self._method(user)
        card = user.card
        signals: tuple[str, ...] = ()
        failure_rate = 0.08
        if fraud == "new_device":
            # Account takeover: the attacker pays with a card of their own.
            method = "CARD" if rng.random() < 0.7 else method
            card = self._new_card(rng.choice(("IN", *_FOREIGN_ISSUERS)))
            signals = ("new_device", "ip_reputation")
            failure_rate = 0.25
        elif fraud == "unusual_amount":
            signals = ("amount_above_user_usual",)
            failure_rate = 0.15
        if method == "CARD" and card.issuer_country != user.country:
            signals = (*signals, "issuer_country_mismatch")
        attempt = 1
        while True:
            score = self._fraud_score() if fraud else self._legit_score()
            psp_failure = self._psp_failure(method) if rng.random() < failure_rate else None
            t, outcome, payment_id, detail = self._attempt(
                journey,
                user,
                device,
                order,
                attempt,
                method,
                card,
                t,
                score,
                self._reasons(score, signals),
                psp_failure,
                invalid_vpa=method == "UPI" and rng.random() < 0.02,
                review_approval=0.4 if fraud else 0.85,
            )
            if outcome == "approved":
                return self._settle(journey, user, order, payment_id, method, t)
            if outcome == "rejected":
                t += self.between(50, 300)
                self._cancel(journey, order, payment_id, _CANCEL_PAYMENT_REJECTED, detail, t)
                return t
            if attempt >= 3 or rng.random() >= 0.6:
                t += self.between(50, 300)
                self._cancel(journey, order, payment_id, _CANCEL_PAYMENT_FAILED, detail, t)
                return t
            attempt += 1
            t += self.between(10 * SECOND, 90 * SECOND)
            if rng.random() < 0.3 and fraud != "new_device":
                method = "CARD" if method == "UPI" else "UPI"

    def _failed_attempts(self, journey: _Journey, user: _User, device: _Device, order: _Order, t: int) -> int:
        """Several failed payments in a row on one order (credential guessing), rarely ending in a success."""
        rng = self.rng
        method = self._method(user)
        failures = self.between(3, 6)
        detail: str | None = None
        payment_id = ""
        for attempt in range(1, failures + 1):
            # Each attempt looks harmless alone, so the engine lets it through to the PSP.
            score = round(min(APPROVE_BELOW - 0.01, 0.1 + 0.1 * attempt + 0.1 * rng.random()), 4)
            reasons = self._reasons(score, ("recent_failed_attempts",) if attempt > 1 else ())
            t, _, payment_id, detail = self._attempt(
                journey, user, device, order, attempt, method, user.card, t, score, reasons, self._psp_failure(method)
            )
            t += self.between(5 * SECOND, 60 * SECOND)
        if rng.random() < 0.4:
            score = self._fraud_score()
            t, outcome, payment_id, detail = self._attempt(
                journey,
                user,
                device,
                order,
                failures + 1,
                method,
                user.card,
                t,
                score,
                self._reasons(score, ("recent_failed_attempts",)),
                None,
                review_approval=0.4,
            )
            if outcome == "approved":
                return self._settle(journey, user, order, payment_id, method, t)
            t += self.between(50, 300)
            self._cancel(journey, order, payment_id, _CANCEL_PAYMENT_REJECTED, detail, t)
            return t
        t += self.between(50, 300)
        self._cancel(journey, order, payment_id, _CANCEL_PAYMENT_FAILED, detail, t)
        return t

    def _velocity_burst(self, journey: _Journey, user: _User, device: _Device, course: _Course, t: int) -> int:
        """Card testing: 5-9 orders, each with a fresh card, all payment.initiated within one minute."""
        rng = self.rng
        method = "CARD" if rng.random() < 0.85 else "UPI"
        for index in range(self.between(5, 9)):
            if index:
                candidate = self._pick_unowned(user)
                if candidate is None:
                    break
                course = candidate
            order = self._create_order(journey, course, 1, t)
            t += self.between(200, 800)
            card = self._new_card(rng.choice(("IN", "IN", *_FOREIGN_ISSUERS)))
            score = round(min(0.99, 0.3 + 0.09 * index + 0.15 * rng.random()), 4)
            psp_failure = self._psp_failure(method) if rng.random() < 0.6 else None
            t, outcome, payment_id, detail = self._attempt(
                journey,
                user,
                device,
                order,
                1,
                method,
                card,
                t,
                score,
                self._reasons(score, ("payment_velocity_1m",) if index else ()),
                psp_failure,
                scripted=True,
                review_approval=0.3,
            )
            if outcome == "approved":
                t = self._settle(journey, user, order, payment_id, method, t)
            else:
                t += self.between(50, 300)
                reason = _CANCEL_PAYMENT_REJECTED if outcome == "rejected" else _CANCEL_PAYMENT_FAILED
                self._cancel(journey, order, payment_id, reason, detail, t)
            t += self.between(300, 1_500)
        return t

    def _settle(self, journey: _Journey, user: _User, order: _Order, payment_id: str, method: str, t: int) -> int:
        """After payment.approved: order.paid, the ledger posting, the enrollment and fulfilment."""
        rng = self.rng
        course_id = order.course.course_id
        t += self.between(50, 300)
        self.emit(
            "order.paid",
            t,
            journey,
            {
                "order_id": order.order_id,
                "payment_id": payment_id,
                "course_id": course_id,
                "total_minor": order.total_minor,
                "currency": CURRENCY,
            },
        )
        t += self.between(100, 900)
        lines = [
            _line(ACC_CLEARING, "DEBIT", order.total_minor),
            _line(ACC_REVENUE, "CREDIT", order.subtotal_minor),
            _line(ACC_GST, "CREDIT", order.tax_minor),
        ]
        if method == "CARD":
            fee = (order.total_minor * CARD_MDR_PERCENT + 50) // 100  # UPI has zero MDR in India
            lines += [_line(ACC_FEES, "DEBIT", fee), _line(ACC_CLEARING, "CREDIT", fee)]
        transaction_id = self.uuid()
        self.emit(
            "ledger.entry_posted",
            t,
            journey,
            {
                "transaction_id": transaction_id,
                "reference": payment_id,
                "reference_type": "PAYMENT",
                "description": f"Course sale, order {order.order_id}",
                "lines": lines,
                "reverses_transaction_id": None,
            },
        )
        t += self.between(100, 500)
        enrollment_id = self.uuid()
        self.emit(
            "user.enrolled",
            t,
            journey,
            {"enrollment_id": enrollment_id, "order_id": order.order_id, "course_id": course_id},
        )
        user.enrolled[course_id] = 0
        t += self.between(50, 300)
        self.emit(
            "order.fulfilled",
            t,
            journey,
            {"order_id": order.order_id, "course_id": course_id, "enrollment_id": enrollment_id},
        )
        if journey.tags and rng.random() < 0.5:
            self._chargeback(journey, user, payment_id, transaction_id, lines, t + self.between(HOUR, 6 * HOUR))
        return t

    def _chargeback(
        self, journey: _Journey, user: _User, payment_id: str, transaction_id: str, lines: list[dict[str, Any]], t: int
    ) -> None:
        """The card holder disputes a fraudulent payment: a compensating posting mirrors the sale."""
        chargeback = _Journey(self.uuid(), user.user_id, self._with_tag(journey.tags, TAG_CHARGEBACK))
        self.emit(
            "ledger.entry_posted",
            t,
            chargeback,
            {
                "transaction_id": self.uuid(),
                "reference": payment_id,
                "reference_type": "CHARGEBACK",
                "description": f"Chargeback of payment {payment_id}",
                "lines": [
                    _line(line["account"], "CREDIT" if line["direction"] == "DEBIT" else "DEBIT", line["amount_minor"])
                    for line in lines
                ],
                "reverses_transaction_id": transaction_id,
            },
        )
        user.last_event_time = max(user.last_event_time, t)


def _line(account: str, direction: str, amount_minor: int) -> dict[str, Any]:
    return {"account": account, "direction": direction, "amount_minor": amount_minor, "currency": CURRENCY}
