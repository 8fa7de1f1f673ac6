"""Subject naming strategies (how a topic and a record name map to a registry subject)."""

from __future__ import annotations

from collections.abc import Callable

SubjectNameStrategy = Callable[[str, str], str]


def topic_record_name(topic: str, record_fullname: str) -> str:
    """`<topic>-<record fullname>`: several event types share one topic, each evolving on its own."""
    return f"{topic}-{record_fullname}"


def topic_name(topic: str, _record_fullname: str) -> str:
    """`<topic>-value`: one schema per topic (Confluent's default)."""
    return f"{topic}-value"


def record_name(_topic: str, record_fullname: str) -> str:
    """`<record fullname>`: one schema per record type, whatever topic carries it."""
    return record_fullname
