"""Drives Suuupra user journeys through the services' HTTP APIs (the ones `suuupra services up` serves).

Two parts, kept apart so each can be tested on its own:

- :func:`build_plan` decides everything random up front from the seed: who registers, what instructors publish,
  which learner buys which course, how and whether they repeat a payment, which requests are deliberately invalid.
  Same seed, same plan; only `run_id` (which keeps e-mail addresses unique across runs) differs between runs.
- :func:`run_plan` carries a plan out over HTTP with asyncio and httpx, at most `concurrency` requests in flight,
  and returns an :class:`ApiRunSummary`: requests by endpoint and status, latencies, journeys by outcome, errors.

Every request states the statuses it expects. A 5xx, an unexpected status, a transport failure or an inconsistent
answer (e.g. a repeated payment that created a second payment) is an error; a deliberately invalid request must get
a 4xx. Orders are watched until the enrolment saga settles them (FULFILLED or CANCELLED) or the settle timeout
passes; an order still pending then is reported as such, not as an error: whether the saga runs is the server's
business.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import math
import random
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, Literal

import httpx

from suuupra.settings import Settings

__all__ = [
    "ENDPOINTS",
    "INVALID_KINDS",
    "REQUIRED_PATHS",
    "ApiPlan",
    "ApiProfile",
    "ApiRunSummary",
    "InstructorPlan",
    "LearnerPlan",
    "Outcome",
    "RequestError",
    "RunOptions",
    "ServicesUnreachableError",
    "build_plan",
    "default_services_url",
    "luhn_check_digit",
    "percentile",
    "run_plan",
]

# Endpoint labels as they appear in the summary (path templates, so ids do not split the counts).
REGISTER: Final = "POST /auth/register"
LOGIN: Final = "POST /auth/login"
READ_PROFILE: Final = "GET /users/me"
UPDATE_PROFILE: Final = "PATCH /users/me"
DELETE_ACCOUNT: Final = "DELETE /users/me"
CREATE_CONTENT: Final = "POST /contents"
READ_CONTENT: Final = "GET /contents/{id}"
PUBLISH_CONTENT: Final = "POST /contents/{id}/publish"
CREATE_ORDER: Final = "POST /orders"
READ_ORDER: Final = "GET /orders/{id}"
START_PAYMENT: Final = "POST /payments"
ENDPOINTS: Final[tuple[str, ...]] = (
    REGISTER, LOGIN, READ_PROFILE, UPDATE_PROFILE, DELETE_ACCOUNT, CREATE_CONTENT, READ_CONTENT, PUBLISH_CONTENT,
    CREATE_ORDER, READ_ORDER, START_PAYMENT,
)  # fmt: skip

InvalidKind = Literal["bad_email", "weak_password", "bad_vpa", "bad_card"]
INVALID_KINDS: Final[tuple[InvalidKind, ...]] = ("bad_email", "weak_password", "bad_vpa", "bad_card")
TERMINAL_ORDER_STATES: Final = frozenset({"FULFILLED", "CANCELLED"})
CURRENCY: Final = "INR"
USER_AGENT: Final = "suuupra-simulator (via api)"
# Paths the services' OpenAPI document must list: a different server on the URL is reported as such.
REQUIRED_PATHS: Final = ("/auth/register", "/contents", "/orders", "/payments")
MAX_ERRORS_KEPT: Final = 200
DETAIL_CHARS: Final = 300


class Outcome(StrEnum):
    PUBLISHED = "published"  # an instructor published every lesson of their courses
    FULFILLED = "fulfilled"
    CANCELLED = "cancelled"
    PENDING = "pending at timeout"  # paid, but the order was neither fulfilled nor cancelled in time
    NO_PURCHASE = "no purchase"  # a learner who only registered, read and maybe left
    FAILED = "failed"  # an error ended the journey early


class ServicesUnreachableError(RuntimeError):
    """The services' HTTP API does not answer at the given URL (or something else does)."""


# --- the plan ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiProfile:
    """What to simulate; every share is a probability in [0, 1]."""

    seed: int = 42
    instructors: int = 3
    learners: int = 50
    courses_per_instructor: tuple[int, int] = (1, 2)  # inclusive range
    lessons_per_course: tuple[int, int] = (2, 4)
    # Premium courses are priced (over 20,000 INR with GST) so that the fraud rules reject their payments; the
    # others stay under the review threshold. Together they make both saga outcomes, fulfilment and cancellation.
    premium_course_share: float = 0.2
    purchase_share: float = 0.75  # learners who order a course and pay
    card_share: float = 0.4  # payments by card (the rest by UPI)
    repeat_payment_share: float = 0.3  # payments sent again with the same Idempotency-Key
    profile_update_share: float = 0.3
    delete_share: float = 0.1  # learners who delete their account at the end
    invalid_share: float = 0.1  # learners who also send one deliberately invalid request


@dataclass(frozen=True)
class Account:
    email: str
    password: str
    display_name: str
    country: str
    preferred_language: str
    signup_platform: str
    marketing_opt_in: bool

    def registration(self) -> dict[str, Any]:
        return {
            "email": self.email, "password": self.password, "display_name": self.display_name,
            "country": self.country, "preferred_language": self.preferred_language,
            "signup_platform": self.signup_platform, "marketing_opt_in": self.marketing_opt_in,
        }  # fmt: skip


@dataclass(frozen=True)
class Lesson:
    title: str
    description: str
    tags: tuple[str, ...]
    category: str
    language: str
    level: str
    duration_seconds: int
    lesson_number: int
    price_minor: int

    def draft(self, course_id: str) -> dict[str, Any]:
        return {
            "course_id": course_id, "title": self.title, "description": self.description, "tags": list(self.tags),
            "category": self.category, "language": self.language, "level": self.level,
            "duration_seconds": self.duration_seconds, "lesson_number": self.lesson_number,
            "is_free_preview": self.lesson_number == 1, "price_minor": self.price_minor, "currency": CURRENCY,
        }  # fmt: skip


@dataclass(frozen=True)
class Course:
    course_id: str  # chosen by the instructor's client: lessons of one course share it
    premium: bool
    lessons: tuple[Lesson, ...]


@dataclass(frozen=True)
class InstructorPlan:
    label: str
    correlation_id: str
    account: Account
    courses: tuple[Course, ...]


@dataclass(frozen=True)
class Card:
    number: str
    expiry_month: int
    expiry_year: int
    cvv: str

    def body(self) -> dict[str, Any]:
        return {"number": self.number, "expiry_month": self.expiry_month, "expiry_year": self.expiry_year,
                "cvv": self.cvv}  # fmt: skip


@dataclass(frozen=True)
class PaymentPlan:
    idempotency_key: str
    device_id: str
    vpa: str | None = None  # UPI when set
    card: Card | None = None  # card when set
    repeat: Literal["no", "after", "concurrently"] = "no"  # the same request again, with the same key

    def body(self, order_id: str) -> dict[str, Any]:
        if self.card is not None:
            return {"order_id": order_id, "method": "CARD", "card": self.card.body(), "device_id": self.device_id}
        return {"order_id": order_id, "method": "UPI", "vpa": self.vpa, "device_id": self.device_id}


@dataclass(frozen=True)
class InvalidRequest:
    kind: InvalidKind
    # bad_email / weak_password: the whole registration body; bad_vpa / bad_card: the instrument part of a payment.
    body: Mapping[str, Any]
    idempotency_key: str = ""  # a payment's own key: an invalid attempt must not burn the real payment's key


@dataclass(frozen=True)
class LearnerPlan:
    label: str
    correlation_id: str
    account: Account
    browse: tuple[int, int]  # (course index, lesson index) read before deciding
    payment: PaymentPlan | None  # set for a learner who orders the course it read about, and pays
    profile_change: Mapping[str, Any] | None
    invalid: InvalidRequest | None
    delete_account: bool

    @property
    def buys(self) -> bool:
        return self.payment is not None


@dataclass(frozen=True)
class ApiPlan:
    profile: ApiProfile
    run_id: str
    instructors: tuple[InstructorPlan, ...]
    learners: tuple[LearnerPlan, ...]

    @property
    def courses(self) -> tuple[Course, ...]:
        return tuple(course for instructor in self.instructors for course in instructor.courses)

    @property
    def journeys(self) -> int:
        return len(self.instructors) + len(self.learners)

    @property
    def emails(self) -> tuple[str, ...]:
        return tuple(i.account.email for i in self.instructors) + tuple(le.account.email for le in self.learners)


_FIRST_NAMES: Final = ("Aarav", "Ananya", "Diya", "Ishaan", "Kavya", "Meera", "Rohan", "Saanvi", "Arjun", "Priya",
                       "Rahul", "Sneha", "Karthik", "Lakshmi", "Farhan", "Zoya", "Harpreet", "Nikhil")  # fmt: skip
_LAST_NAMES: Final = ("Sharma", "Verma", "Iyer", "Reddy", "Nair", "Gupta", "Khan", "Singh", "Patel", "Das", "Menon",
                      "Joshi", "Rao", "Chatterjee")  # fmt: skip
_PASSWORD_WORDS: Final = ("Lotus", "River", "Monsoon", "Tiger", "Mango", "Comet", "Banyan", "Harbor", "Saffron",
                          "Falcon", "Neem", "Peacock")  # fmt: skip
_COUNTRIES: Final = ("IN",) * 9 + ("AE", "SG")
_LANGUAGES: Final = ("en", "en", "en", "hi", "hi-IN", "ta", "te")
_PLATFORMS: Final = ("ANDROID", "ANDROID", "ANDROID", "WEB", "WEB", "IOS")
# (subject, category, tags)
_SUBJECTS: Final = (
    ("Python", "programming", ("python", "backend")),
    ("Data Structures", "programming", ("dsa", "interview")),
    ("Machine Learning", "data-science", ("ml", "python")),
    ("System Design", "programming", ("architecture", "interview")),
    ("JEE Physics", "exam-prep", ("jee", "physics")),
    ("UPSC GS", "exam-prep", ("upsc", "polity")),
    ("Spoken English", "language", ("english", "communication")),
    ("Excel", "business", ("excel", "analytics")),
    ("Guitar", "music", ("guitar", "chords")),
)
_COURSE_TITLES: Final = ("Complete {} Bootcamp", "{} for Beginners", "Mastering {}", "{} in 30 Days")
_LESSON_TITLES: Final = ("Introduction", "Core Concepts", "Hands-on Practice", "Case Study", "Revision", "Mock Test")
_LEVELS: Final = ("BEGINNER", "INTERMEDIATE", "ADVANCED", "ALL_LEVELS")
_UPI_HANDLES: Final = ("okaxis", "okhdfcbank", "okicici", "oksbi", "ybl", "paytm")
# (BIN prefix, length): Visa, Mastercard, RuPay and Amex shapes; the check digit is computed (Luhn).
_CARD_SHAPES: Final = (("4", 16), ("4", 16), ("51", 16), ("55", 16), ("60", 16), ("65", 16), ("37", 15))


def build_plan(profile: ApiProfile, run_id: str, today: dt.date | None = None) -> ApiPlan:
    """Everything the run will do, decided from `profile.seed` alone (`run_id` only makes addresses unique).

    Each journey draws from its own random stream, so adding learners leaves the earlier ones' plans unchanged.
    """
    _check_profile(profile)
    if not run_id or not run_id.replace("-", "").isalnum():
        raise ValueError(f"run_id must be letters, digits and '-', got {run_id!r}")
    year = (today or dt.date.today()).year
    instructors = tuple(
        _plan_instructor(profile, index, run_id, random.Random(f"{profile.seed}:instructor:{index}"))
        for index in range(profile.instructors)
    )
    courses = sum(len(instructor.courses) for instructor in instructors)
    learners = tuple(
        _plan_learner(profile, index, run_id, courses, year, random.Random(f"{profile.seed}:learner:{index}"))
        for index in range(profile.learners)
    )
    return ApiPlan(profile, run_id, instructors, learners)


def _check_profile(profile: ApiProfile) -> None:
    if profile.instructors < 1:
        raise ValueError(f"instructors must be >= 1 (learners need a course to buy), got {profile.instructors}")
    if profile.learners < 0:
        raise ValueError(f"learners must be >= 0, got {profile.learners}")
    for name in ("courses_per_instructor", "lessons_per_course"):
        low, high = getattr(profile, name)
        if not 1 <= low <= high:
            raise ValueError(f"{name} must be a range 1 <= low <= high, got {(low, high)}")
    for name in ("premium_course_share", "purchase_share", "card_share", "repeat_payment_share",
                 "profile_update_share", "delete_share", "invalid_share"):  # fmt: skip
        share = getattr(profile, name)
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"{name} must be within [0, 1], got {share}")


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _account(rng: random.Random, role: str, index: int, run_id: str) -> Account:
    first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
    words = rng.sample(_PASSWORD_WORDS, 2)
    return Account(
        # The run id keeps addresses unique across runs of the same seed (a live address can be registered once).
        email=f"{first.lower()}.{last.lower()}.{role}{index}.{run_id}@example.com",
        password=f"{words[0]}-{words[1].lower()}-{rng.randint(1000, 9999)}",
        display_name=f"{first} {last}",
        country=rng.choice(_COUNTRIES),
        preferred_language=rng.choice(_LANGUAGES),
        signup_platform=rng.choice(_PLATFORMS),
        marketing_opt_in=rng.random() < 0.4,
    )


def _plan_instructor(profile: ApiProfile, index: int, run_id: str, rng: random.Random) -> InstructorPlan:
    account = _account(rng, "instructor", index, run_id)
    courses = []
    for _ in range(rng.randint(*profile.courses_per_instructor)):
        subject, category, tags = rng.choice(_SUBJECTS)
        title = rng.choice(_COURSE_TITLES).format(subject)
        premium = rng.random() < profile.premium_course_share
        price = (rng.randint(170, 190) if premium else rng.randint(4, 39)) * 10_000 + 9_900  # "x99" price points
        language, level = rng.choice(("en", "en", "hi", "ta")), rng.choice(_LEVELS)
        lessons = tuple(
            Lesson(
                title=f"{title} - Lesson {number}: {_LESSON_TITLES[(number - 1) % len(_LESSON_TITLES)]}",
                description=f"Lesson {number} of {title}, by {account.display_name}.",
                tags=tags,
                category=category,
                language=language,
                level=level,
                duration_seconds=rng.randint(180, 1_800),
                lesson_number=number,
                price_minor=price,
            )
            for number in range(1, rng.randint(*profile.lessons_per_course) + 1)
        )
        courses.append(Course(_uuid(rng), premium, lessons))
    return InstructorPlan(f"instructor {index}", _uuid(rng), account, tuple(courses))


def luhn_check_digit(partial: str) -> str:
    """The digit that makes `partial + digit` pass the Luhn checksum."""
    total = 0
    for position, char in enumerate(reversed(partial)):
        value = int(char)
        if position % 2 == 0:  # these positions are doubled once the check digit is appended
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return str(-total % 10)


def _card(rng: random.Random, year: int) -> Card:
    prefix, length = rng.choice(_CARD_SHAPES)
    partial = prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix) - 1))
    cvv_digits = 4 if prefix in ("34", "37") else 3
    return Card(
        number=partial + luhn_check_digit(partial),
        expiry_month=rng.randint(1, 12),
        expiry_year=year + rng.randint(1, 5),  # after this year, so never expired on the day of the run
        cvv="".join(str(rng.randrange(10)) for _ in range(cvv_digits)),
    )


def _invalid(rng: random.Random, account: Account, payment: PaymentPlan | None, year: int) -> InvalidRequest:
    kinds: tuple[InvalidKind, ...] = INVALID_KINDS if payment else ("bad_email", "weak_password")
    kind = rng.choice(kinds)
    local, domain = account.email.split("@")
    if kind == "bad_email":
        email = rng.choice((f"{local}.{domain}", f"{local}@", f"{local}@@{domain}", f"{local} x@{domain}"))
        return InvalidRequest(kind, {**account.registration(), "email": email})
    if kind == "weak_password":
        password = rng.choice((
            "Short-1a",  # too short
            "no-capitals-here-2026",
            "NO-LOWER-CASE-2026",
            "No-digits-at-all-here",
            f"{local.title()}-2026",  # contains the address's local part
        ))  # fmt: skip
        return InvalidRequest(kind, {**account.registration(), "password": password})
    key = _uuid(rng)
    if kind == "bad_vpa":
        name = local.split(".")[0]
        vpa = rng.choice((f"{name}.upi", f"{name}@1{rng.choice(_UPI_HANDLES)}", f"x@{rng.choice(_UPI_HANDLES)}",
                          f"{name}@"))  # fmt: skip
        return InvalidRequest(kind, {"method": "UPI", "vpa": vpa}, key)
    card = _card(rng, year)
    wrong_check_digit = card.number[:-1] + str((int(card.number[-1]) + rng.randint(1, 9)) % 10)
    number = rng.choice((wrong_check_digit, card.number[:8], card.number[:-4] + "12ab"))
    return InvalidRequest(kind, {"method": "CARD", "card": {**card.body(), "number": number}}, key)


def _plan_learner(
    profile: ApiProfile, index: int, run_id: str, courses: int, year: int, rng: random.Random
) -> LearnerPlan:
    account = _account(rng, "learner", index, run_id)
    course = rng.randrange(courses)
    payment = None
    if rng.random() < profile.purchase_share:
        repeat_draw = rng.random()
        repeat: Literal["no", "after", "concurrently"] = "no"
        if repeat_draw < profile.repeat_payment_share:
            repeat = "concurrently" if repeat_draw < profile.repeat_payment_share / 2 else "after"
        device_id = f"device-{_uuid(rng)[:12]}"
        if rng.random() < profile.card_share:
            payment = PaymentPlan(_uuid(rng), device_id, card=_card(rng, year), repeat=repeat)
        else:
            first, last = account.display_name.lower().split()
            vpa = f"{first}.{last}{rng.randint(1, 999)}@{rng.choice(_UPI_HANDLES)}"
            payment = PaymentPlan(_uuid(rng), device_id, vpa=vpa, repeat=repeat)
    change: dict[str, Any] | None = None
    if rng.random() < profile.profile_update_share:
        field_name = rng.choice(("display_name", "preferred_language", "marketing_opt_in", "country"))
        value: Any = {
            "display_name": f"{account.display_name.split()[0]} {rng.choice(_LAST_NAMES)}",
            "preferred_language": rng.choice([lang for lang in _LANGUAGES if lang != account.preferred_language]),
            "marketing_opt_in": not account.marketing_opt_in,
            "country": rng.choice(sorted(set(_COUNTRIES) - {account.country})),
        }[field_name]
        change = {field_name: value}
    invalid = _invalid(rng, account, payment, year) if rng.random() < profile.invalid_share else None
    return LearnerPlan(
        label=f"learner {index}",
        correlation_id=_uuid(rng),
        account=account,
        browse=(course, rng.randrange(8)),  # the lesson index is taken modulo the course's lessons
        payment=payment,
        profile_change=change,
        invalid=invalid,
        delete_account=rng.random() < profile.delete_share,
    )


# --- running it ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunOptions:
    concurrency: int = 8  # HTTP requests in flight at once
    settle_timeout_s: float = 30.0  # how long a journey waits for its paid order to be fulfilled or cancelled
    poll_interval_s: float = 0.5
    request_timeout_s: float = 30.0
    connect_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        for name in ("settle_timeout_s", "request_timeout_s", "connect_timeout_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.poll_interval_s <= 0:
            raise ValueError(f"poll_interval_s must be > 0, got {self.poll_interval_s}")


@dataclass(frozen=True)
class RequestError:
    journey: str  # e.g. "learner 7 <aarav.sharma...@example.com>"
    endpoint: str
    status: int | None  # None: no answer (connection refused, timeout, ...)
    detail: str

    def __str__(self) -> str:
        answer = f"HTTP {self.status}" if self.status is not None else "no answer"
        return f"{self.endpoint} ({self.journey}): {answer}: {self.detail}"


@dataclass
class ApiRunSummary:
    run_id: str
    base_url: str
    elapsed_s: float = 0.0
    requests: Counter[tuple[str, int]] = field(default_factory=Counter)  # (endpoint, status) -> requests
    latencies_ms: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    journeys: Counter[tuple[str, Outcome]] = field(default_factory=Counter)  # (role, outcome) -> journeys
    pending_statuses: Counter[str] = field(default_factory=Counter)  # order status of orders pending at timeout
    invalid_sent: Counter[str] = field(default_factory=Counter)  # by kind
    invalid_rejected: Counter[str] = field(default_factory=Counter)  # by kind: got the 4xx they should
    payment_repeats: int = 0  # repeats with the same Idempotency-Key that answered with the first payment
    errors: list[RequestError] = field(default_factory=list)  # the first MAX_ERRORS_KEPT
    error_count: int = 0
    server_errors: int = 0  # 5xx answers
    no_answer: int = 0  # transport failures and timeouts
    # What the run created, for checks against the databases and the events.
    user_ids: list[str] = field(default_factory=list)
    updated_user_ids: list[str] = field(default_factory=list)
    deleted_user_ids: list[str] = field(default_factory=list)
    content_ids: list[str] = field(default_factory=list)
    published_content_ids: list[str] = field(default_factory=list)
    order_ids: list[str] = field(default_factory=list)
    payment_ids: list[str] = field(default_factory=list)

    @property
    def request_count(self) -> int:
        return sum(self.requests.values())

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    @property
    def pending(self) -> int:
        return sum(n for (_, outcome), n in self.journeys.items() if outcome is Outcome.PENDING)

    def latency_ms(self, share: float, endpoint: str | None = None) -> float:
        values = self.latencies_ms[endpoint] if endpoint else [v for vs in self.latencies_ms.values() for v in vs]
        return percentile(values, share) if values else math.nan


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (share in [0, 1]) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(share * len(ordered))))
    return ordered[rank - 1]


Progress = Callable[[int, int], None]  # (journeys done, requests answered)


def default_services_url(settings: Settings) -> str:
    return f"http://{settings.services.host}:{settings.services.port}"


def run_plan(
    plan: ApiPlan,
    base_url: str,
    options: RunOptions | None = None,
    progress: Progress | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ApiRunSummary:
    """Carries the plan out against the services at `base_url`: instructors first, then every learner at once.

    Raises :class:`ServicesUnreachableError` before any journey starts if the services do not answer there.
    """
    return asyncio.run(_Run(plan, base_url.rstrip("/"), options or RunOptions(), progress, transport).run())


class _JourneyFailedError(Exception):
    """A step did not get the answer the rest of the journey needs; the error is already recorded."""


@dataclass
class _Session:
    who: str
    correlation_id: str
    token: str | None = None

    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"X-Correlation-ID": self.correlation_id}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update(extra or {})
        return headers


class _Run:
    def __init__(
        self,
        plan: ApiPlan,
        base_url: str,
        options: RunOptions,
        progress: Progress | None,
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        self.plan = plan
        self.base_url = base_url
        self.options = options
        self.progress = progress
        self.summary = ApiRunSummary(plan.run_id, base_url)
        self.journeys_done = 0
        self.client = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(options.request_timeout_s, connect=options.connect_timeout_s),
            limits=httpx.Limits(max_connections=options.concurrency, max_keepalive_connections=options.concurrency),
            transport=transport,
            headers={"User-Agent": USER_AGENT},
        )
        # Requests in flight, not journeys: a journey waiting for its order to settle holds no slot.
        self.slots = asyncio.Semaphore(options.concurrency)
        # plan.courses position -> (course id, content ids) of the courses whose every lesson was published
        self.catalogue: dict[int, tuple[str, list[str]]] = {}

    async def run(self) -> ApiRunSummary:
        began = time.monotonic()
        async with self.client:
            await self._check_reachable()
            published = await asyncio.gather(*(self._instructor(plan) for plan in self.plan.instructors))
            self.catalogue = {
                position: (course.course_id, lessons)
                for position, (course, lessons) in enumerate(
                    zip(self.plan.courses, itertools.chain.from_iterable(published), strict=True)
                )
                if lessons is not None
            }
            await asyncio.gather(*(self._learner(plan) for plan in self.plan.learners))
        self.summary.elapsed_s = time.monotonic() - began
        return self.summary

    async def _check_reachable(self) -> None:
        hint = "start them with `suuupra services up`, or give the URL they listen on with --services-url"
        try:
            response = await self.client.get("/openapi.json")
        except httpx.HTTPError as error:
            raise ServicesUnreachableError(
                f"services not reachable at {self.base_url} ({type(error).__name__}: {error}); {hint}"
            ) from None
        paths: Mapping[str, Any] = {}
        if response.status_code == 200:
            with contextlib.suppress(ValueError, AttributeError):
                paths = response.json().get("paths", {})
        missing = [path for path in REQUIRED_PATHS if path not in paths]
        if missing:
            raise ServicesUnreachableError(
                f"{self.base_url} answers (HTTP {response.status_code} on /openapi.json) but is not the Suuupra "
                f"services (no {', '.join(missing)} in its OpenAPI); {hint}"
            )

    # --- one request -----------------------------------------------------------------------------------------

    def _error(self, who: str, endpoint: str, status: int | None, detail: str) -> None:
        summary = self.summary
        summary.error_count += 1
        if len(summary.errors) < MAX_ERRORS_KEPT:
            summary.errors.append(RequestError(who, endpoint, status, detail[:DETAIL_CHARS]))

    async def _send(
        self, session: _Session, method: str, endpoint: str, path: str, *, json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response | None:  # fmt: skip
        """One request, counted and timed; None (and an error recorded) if there was no answer."""
        async with self.slots:
            began = time.perf_counter()
            try:
                response = await self.client.request(method, path, json=json, headers=session.headers(headers))
            except httpx.HTTPError as error:
                self.summary.no_answer += 1
                self._error(session.who, endpoint, None, f"{type(error).__name__}: {error}")
                return None
            elapsed_ms = (time.perf_counter() - began) * 1000
        self.summary.requests[(endpoint, response.status_code)] += 1
        self.summary.latencies_ms[endpoint].append(elapsed_ms)
        if response.status_code >= 500:
            self.summary.server_errors += 1
        self._report_progress()
        return response

    async def _expect(
        self, session: _Session, method: str, endpoint: str, path: str, expected: int, *, json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """A request of a valid step and its JSON object; any other status ends the journey (and is an error)."""
        response = await self._send(session, method, endpoint, path, json=json, headers=headers)
        if response is None:
            raise _JourneyFailedError
        if response.status_code != expected:
            kind = "server error" if response.status_code >= 500 else f"expected HTTP {expected}"
            self._error(session.who, endpoint, response.status_code, f"{kind}: {response.text}")
            raise _JourneyFailedError
        if not response.content:
            return {}
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._error(session.who, endpoint, response.status_code, f"not a JSON object: {response.text}")
            raise _JourneyFailedError
        return body

    async def _expect_rejected(
        self, session: _Session, kind: str, method: str, endpoint: str, path: str, *, json: Any,
        headers: Mapping[str, str] | None = None,
    ) -> None:  # fmt: skip
        """A deliberately invalid request: it must get a 4xx; the journey goes on either way."""
        self.summary.invalid_sent[kind] += 1
        response = await self._send(session, method, endpoint, path, json=json, headers=headers)
        if response is None:
            return
        if 400 <= response.status_code < 500:
            self.summary.invalid_rejected[kind] += 1
        else:
            self._error(session.who, endpoint, response.status_code,
                        f"invalid request ({kind}) not refused with a 4xx: {response.text}")  # fmt: skip

    def _field(self, session: _Session, endpoint: str, body: Mapping[str, Any], name: str) -> str:
        value = body.get(name)
        if value is None:
            self._error(session.who, endpoint, None, f"answer without '{name}': {body}")
            raise _JourneyFailedError
        return str(value)

    def _report_progress(self) -> None:
        if self.progress:
            self.progress(self.journeys_done, self.summary.request_count)

    def _finish(self, role: str, outcome: Outcome) -> None:
        self.summary.journeys[(role, outcome)] += 1
        self.journeys_done += 1
        self._report_progress()

    # --- journeys --------------------------------------------------------------------------------------------

    async def _register(self, session: _Session, account: Account) -> str:
        body = await self._expect(session, "POST", REGISTER, "/auth/register", 201, json=account.registration())
        self.summary.user_ids.append(self._field(session, REGISTER, body, "user_id"))
        return self._field(session, REGISTER, body, "access_token")

    async def _instructor(self, plan: InstructorPlan) -> list[list[str] | None]:
        """Registers, then creates and publishes every lesson; per course its content ids, None if it failed."""
        session = _Session(f"{plan.label} <{plan.account.email}>", plan.correlation_id)
        published: list[list[str] | None] = [None] * len(plan.courses)
        try:
            session.token = await self._register(session, plan.account)
            for position, course in enumerate(plan.courses):
                drafts = []
                for lesson in course.lessons:
                    body = await self._expect(session, "POST", CREATE_CONTENT, "/contents", 201,
                                              json=lesson.draft(course.course_id))  # fmt: skip
                    drafts.append(self._field(session, CREATE_CONTENT, body, "content_id"))
                    self.summary.content_ids.append(drafts[-1])
                for content_id in drafts:
                    path = f"/contents/{content_id}/publish"
                    body = await self._expect(session, "POST", PUBLISH_CONTENT, path, 200)
                    if body.get("published_revision") != 1:
                        self._error(session.who, PUBLISH_CONTENT, 200,
                                    f"published_revision is {body.get('published_revision')}, not 1")  # fmt: skip
                        raise _JourneyFailedError
                    self.summary.published_content_ids.append(content_id)
                published[position] = drafts
        except _JourneyFailedError:
            self._finish("instructor", Outcome.FAILED)
        else:
            self._finish("instructor", Outcome.PUBLISHED)
        return published

    def _course_for(self, planned: int) -> tuple[str, list[str]] | None:
        """The planned course, or (if its instructor failed) another published one; None if none was published."""
        if planned in self.catalogue:
            return self.catalogue[planned]
        available = sorted(self.catalogue)
        return self.catalogue[available[planned % len(available)]] if available else None

    async def _learner(self, plan: LearnerPlan) -> None:
        session = _Session(f"{plan.label} <{plan.account.email}>", plan.correlation_id)
        try:
            outcome = await self._learner_steps(session, plan)
        except _JourneyFailedError:
            outcome = Outcome.FAILED
        self._finish("learner", outcome)

    async def _learner_steps(self, session: _Session, plan: LearnerPlan) -> Outcome:
        account, invalid = plan.account, plan.invalid
        if invalid is not None and invalid.kind in ("bad_email", "weak_password"):
            await self._expect_rejected(session, invalid.kind, "POST", REGISTER, "/auth/register", json=invalid.body)
        await self._register(session, account)
        credentials = {"email": account.email, "password": account.password}
        body = await self._expect(session, "POST", LOGIN, "/auth/login", 200, json=credentials)
        session.token = self._field(session, LOGIN, body, "access_token")
        user_id = self._field(session, LOGIN, body, "user_id")
        profile = await self._expect(session, "GET", READ_PROFILE, "/users/me", 200)
        if profile.get("email") != account.email:
            self._error(session.who, READ_PROFILE, 200, f"profile shows {profile.get('email')!r}")
            raise _JourneyFailedError
        if plan.profile_change:
            change = dict(plan.profile_change)
            updated = await self._expect(session, "PATCH", UPDATE_PROFILE, "/users/me", 200, json=change)
            if any(updated.get(key) != value for key, value in change.items()):
                self._error(session.who, UPDATE_PROFILE, 200, f"change {change} not in the answer {updated}")
                raise _JourneyFailedError
            self.summary.updated_user_ids.append(user_id)

        outcome = Outcome.NO_PURCHASE
        course = self._course_for(plan.browse[0])
        if course is not None:
            course_id, lessons = course
            await self._expect(session, "GET", READ_CONTENT, f"/contents/{lessons[plan.browse[1] % len(lessons)]}", 200)
            if plan.payment is not None:
                outcome = await self._buy(session, plan, course_id, plan.payment)

        if plan.delete_account:
            await self._expect(session, "DELETE", DELETE_ACCOUNT, "/users/me", 204)
            self.summary.deleted_user_ids.append(user_id)
            # Deleting ends every session: the token the learner still holds must no longer work.
            await self._expect(session, "GET", READ_PROFILE, "/users/me", 401)
        return outcome

    async def _buy(self, session: _Session, plan: LearnerPlan, course_id: str, payment: PaymentPlan) -> Outcome:
        order = await self._expect(session, "POST", CREATE_ORDER, "/orders", 201, json={"course_id": course_id})
        order_id = self._field(session, CREATE_ORDER, order, "order_id")
        self.summary.order_ids.append(order_id)
        invalid = plan.invalid
        if invalid is not None and invalid.kind in ("bad_vpa", "bad_card"):
            body = {"order_id": order_id, "device_id": payment.device_id, **invalid.body}
            await self._expect_rejected(session, invalid.kind, "POST", START_PAYMENT, "/payments", json=body,
                                        headers={"Idempotency-Key": invalid.idempotency_key})  # fmt: skip

        def pay() -> Coroutine[Any, Any, dict[str, Any]]:
            return self._expect(session, "POST", START_PAYMENT, "/payments", 201, json=payment.body(order_id),
                                headers={"Idempotency-Key": payment.idempotency_key})  # fmt: skip

        if payment.repeat == "concurrently":
            answers = await asyncio.gather(pay(), pay(), return_exceptions=True)
            for answer in answers:
                if isinstance(answer, BaseException):
                    raise answer
            payments = [answer for answer in answers if isinstance(answer, dict)]
        else:
            payments = [await pay()]
            if payment.repeat == "after":
                payments.append(await pay())
        payment_ids = {self._field(session, START_PAYMENT, answer, "payment_id") for answer in payments}
        if len(payment_ids) != 1:
            detail = f"the same Idempotency-Key answered with different payments: {sorted(payment_ids)}"
            self._error(session.who, START_PAYMENT, 201, detail)
            raise _JourneyFailedError
        self.summary.payment_ids.append(payment_ids.pop())
        self.summary.payment_repeats += len(payments) - 1
        return await self._settle(session, order_id)

    async def _settle(self, session: _Session, order_id: str) -> Outcome:
        """Polls the order until the saga fulfils or cancels it, or the settle timeout passes."""
        deadline = time.monotonic() + self.options.settle_timeout_s
        while True:
            order = await self._expect(session, "GET", READ_ORDER, f"/orders/{order_id}", 200)
            status = self._field(session, READ_ORDER, order, "status")
            if status in TERMINAL_ORDER_STATES:
                return Outcome.FULFILLED if status == "FULFILLED" else Outcome.CANCELLED
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.summary.pending_statuses[status] += 1
                return Outcome.PENDING
            await asyncio.sleep(min(self.options.poll_interval_s, remaining))
