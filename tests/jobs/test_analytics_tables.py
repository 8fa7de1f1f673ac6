"""`jobs.analytics.build` wires the tables it is asked for and no others (bench/analytics_ceiling_job.py runs the job
writing raw_events alone, to show what the aggregates cost)."""

from __future__ import annotations

import json
import re

import pytest

from jobs.analytics import QUERIES, build
from jobs.runtime import execution_environment
from suuupra.settings import Settings

SINK = re.compile(r"(sink_\w+|dead_letter_sink)")
SESSIONS = "gap sessions"  # the name of the sessions operator (connectors/jvm UserSessions)
AGGREGATING = (SESSIONS, "GroupWindowAggregate", "IntervalJoin")


def _plan(settings: Settings, tables: tuple[str, ...] | None = None) -> list[str]:
    """What each node of the job's plan does."""
    env = execution_environment(settings, "test-analytics-tables")
    if tables is None:
        build(env, settings)
    else:
        build(env, settings, tables=tables)
    return [node["contents"] for node in json.loads(env.get_execution_plan())["nodes"]]


def _sinks(plan: list[str]) -> set[str]:
    return {found.group(1) for contents in plan if (found := SINK.search(contents))}


def test_the_job_writes_every_table_and_the_dead_letters_by_default(settings: Settings) -> None:
    plan = _plan(settings)
    assert _sinks(plan) == {f"sink_{table}" for table in QUERIES} | {"dead_letter_sink"}
    assert any(SESSIONS in contents for contents in plan)


def test_the_job_can_write_raw_events_alone(settings: Settings) -> None:
    plan = _plan(settings, ("raw_events",))
    assert _sinks(plan) == {"sink_raw_events", "dead_letter_sink"}
    # Nothing of an aggregate runs: no window, join or sessions operator, not even one whose output goes nowhere.
    assert not [contents for contents in plan if any(word in contents for word in AGGREGATING)]


def test_an_unknown_table_is_refused_with_the_tables_there_are(settings: Settings) -> None:
    with pytest.raises(ValueError, match=r"no such analytics table: revenue_hour; the tables are raw_events, "):
        build(execution_environment(settings, "test-analytics-tables"), settings, tables=("revenue_hour",))
