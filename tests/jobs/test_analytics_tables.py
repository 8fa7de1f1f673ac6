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


def _sinks(settings: Settings, tables: tuple[str, ...] | None = None) -> set[str]:
    """The sink tables the job's plan writes to."""
    env = execution_environment(settings, "test-analytics-tables")
    if tables is None:
        build(env, settings)
    else:
        build(env, settings, tables=tables)
    plan = json.loads(env.get_execution_plan())
    return {found.group(1) for node in plan["nodes"] if (found := SINK.search(node["contents"]))}


def test_the_job_writes_every_table_and_the_dead_letters_by_default(settings: Settings) -> None:
    assert _sinks(settings) == {f"sink_{table}" for table in QUERIES} | {"dead_letter_sink"}


def test_the_job_can_write_raw_events_alone(settings: Settings) -> None:
    assert _sinks(settings, ("raw_events",)) == {"sink_raw_events", "dead_letter_sink"}


def test_an_unknown_table_is_refused_with_the_tables_there_are(settings: Settings) -> None:
    with pytest.raises(ValueError, match=r"no such analytics table: revenue_hour; the tables are raw_events, "):
        build(execution_environment(settings, "test-analytics-tables"), settings, tables=("revenue_hour",))
