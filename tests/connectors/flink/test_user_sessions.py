"""`register_user_sessions` (connectors/jvm UserSessions) reads its input view's columns by name: a view without one
of them, or with one of another type, is refused when the job is declared, naming the view, the column and what it
must be. (The sessions themselves are proven against an independent computation in tests/jobs.)"""

from __future__ import annotations

import pytest
from py4j.protocol import Py4JJavaError
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment

from connectors.flink.tables import UserSessionsView, register_user_sessions
from jobs.runtime import flink_configuration
from suuupra.platform.manager import Platform
from suuupra.settings import Settings

pytestmark = pytest.mark.platform

COLUMNS = {
    "user_id": "'user-1'",  # a literal is a CHAR: any character string is taken
    "event_time": "CAST(1000 AS BIGINT)",
    "high_ms": "CAST(1000 AS BIGINT)",
    "event_type": "CAST('clickstream.content_viewed' AS STRING)",
    "content_id": "'content-1'",
}


@pytest.fixture
def t_env(settings: Settings, platform: Platform) -> StreamTableEnvironment:
    env = StreamExecutionEnvironment.get_execution_environment(flink_configuration(settings, "user-sessions-test"))
    return StreamTableEnvironment.create(env)


def _register(t_env: StreamTableEnvironment, columns: dict[str, str]) -> None:
    select = ", ".join(f"{value} AS {name}" for name, value in columns.items())
    t_env.execute_sql(f"CREATE TEMPORARY VIEW clicks AS SELECT {select}")
    register_user_sessions(t_env, UserSessionsView(
        name="sessions", input_view="clicks", watched_event_type="clickstream.content_viewed", gap_ms=60_000,
        bound_ms=30_000, flush_ms=1000, bundle_rows=100, state_ttl_ms=3_600_000, uid="user-sessions-test",
    ))  # fmt: skip


def test_a_view_with_every_column_is_taken(t_env: StreamTableEnvironment) -> None:
    _register(t_env, COLUMNS)
    assert t_env.from_path("sessions").get_schema().get_field_names() == [
        "user_id", "session_start", "session_end", "duration_seconds", "events", "contents_watched", "version",
        "deleted",
    ]  # fmt: skip


def test_a_view_without_a_column_is_refused_naming_it(t_env: StreamTableEnvironment) -> None:
    without_content = {name: value for name, value in COLUMNS.items() if name != "content_id"}
    with pytest.raises(Py4JJavaError, match=r"the sessions' input view 'clicks' has no column 'content_id' \(it has "):
        _register(t_env, without_content)


def test_a_column_of_another_type_is_refused_with_the_type_it_must_have(t_env: StreamTableEnvironment) -> None:
    with pytest.raises(Py4JJavaError, match=r"the sessions' input view 'clicks' has event_time .*; it must be BIGINT"):
        _register(t_env, {**COLUMNS, "event_time": "'1000'"})
