"""Content indexing: keeps the search index and the co-watch graph of the search engine current (docs/search.md).

    suuupra index fit                                  # the embedder the job uses (once, and after catalogue drift)
    suuupra jobs run indexing [--bounded]              # local mini-cluster
    suuupra jobs submit indexing --jobmanager H:P      # a Flink session cluster

Two pipelines in one job, on the pattern of the analytics job (Kafka source with each record decoded once in the JVM,
bad records to the dead-letter topic, SQL, JVM sinks; no watermark, so nothing is dropped for being late):
- Content events -> the index. `content.published` rows are embedded (a vectorized Python function: scikit-learn is
  the one thing SQL cannot say) and written with all their fields; `content.unpublished` and `content.deleted` rows
  remove the item. Every write goes through the index's revision guard (a Lua script in the engine), so an older
  revision never wins over a newer one, whatever order events arrive in, and replays change nothing.
  `content.created` and `content.updated` are drafts, not visible to learners: read, and left out.
- Views -> the co-watch graph. Views of different items by one user within the co-watch window are paired (a regular
  join keyed by user: any arrival order pairs the same views), and distinct co-watchers are counted per pair and day
  and upserted as absolute counts, so a replay rewrites the same values. Decay is applied when the graph is asked.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pyflink.datastream import StreamExecutionEnvironment
from pyflink.table import DataTypes, StreamTableEnvironment
from pyflink.table.udf import FunctionContext, ScalarFunction, udf

from connectors.flink.events import EventsView, dead_letter_select, declare_dead_letter_sink, register_events_view
from connectors.flink.tables import (
    DecodedField,
    register_jvm_functions,
    sql_string,
    with_clause,
)
from jobs.decoding import topic_event_types
from suuupra.search.cowatch import DAY_MS, UPSERT_QUERY
from suuupra.search.index import DOC_COLUMNS, GUARD_SCRIPT, IndexNames
from suuupra.settings import Settings, load_settings

JOB_NAME = "indexing"

CONTENT_FIELDS = [
    DecodedField("event_type", "STRING"),
    DecodedField("event_time", "BIGINT"),
    DecodedField("content_id", "STRING"),
    DecodedField("course_id", "STRING"),
    DecodedField("revision", "INT"),
    DecodedField("title", "STRING"),
    DecodedField("course_title", "STRING"),
    DecodedField("description", "STRING"),
    DecodedField("category", "STRING"),
    DecodedField("level", "STRING"),
    DecodedField("language", "STRING"),
    DecodedField("price_minor", "BIGINT"),
    DecodedField("currency", "STRING"),
    DecodedField("duration_seconds", "INT"),
    DecodedField("lesson_number", "INT"),
    DecodedField("is_free_preview", "BOOLEAN"),
]
VIEW_FIELDS = [
    DecodedField("event_type", "STRING"),
    DecodedField("event_time", "BIGINT"),
    DecodedField("user_id", "STRING"),
    DecodedField("content_id", "STRING"),
]

DOC_TYPES = {
    "revision": "INT", "event_time": "BIGINT", "price_minor": "BIGINT", "duration_seconds": "INT",
    "lesson_number": "INT", "is_free_preview": "INT", "embedding": "BYTES",
}  # fmt: skip

# One document row per publication event, in DOC_COLUMNS order (the guard script reads them by position).
PUBLISHED = """
    SELECT content_id, revision, 'published', event_time, COALESCE(course_id, ''), COALESCE(title, ''),
           COALESCE(course_title, ''), COALESCE(description, ''), keywords, tags, COALESCE(category, ''),
           COALESCE(`level`, ''), COALESCE(`language`, ''), COALESCE(price_minor, 0), COALESCE(currency, ''),
           COALESCE(duration_seconds, 0), COALESCE(lesson_number, 0), CASE WHEN is_free_preview THEN 1 ELSE 0 END,
           {model}, embed_text(title, description, keywords, category, course_title)
    FROM content_events WHERE event_type = 'content.published'"""
REMOVED = """
    SELECT content_id, revision, CASE WHEN event_type = 'content.deleted' THEN 'deleted' ELSE 'unpublished' END,
           event_time, '', '', '', '', '', '', '', '', '', CAST(0 AS BIGINT), '', 0, 0, 0, '', CAST(X'' AS BYTES)
    FROM content_events WHERE event_type IN ('content.unpublished', 'content.deleted')"""
# Distinct co-watchers per pair of items (smaller id first) and day of the later view.
COWATCH = """
    SELECT lo, hi, `day`, COUNT(DISTINCT user_id) FROM (
        SELECT a.user_id, a.content_id AS lo, b.content_id AS hi,
               GREATEST(a.event_time, b.event_time) / {day_ms} AS `day`
        FROM watched a JOIN watched b ON a.user_id = b.user_id AND a.content_id < b.content_id
         AND a.event_time BETWEEN b.event_time - {window_ms} AND b.event_time + {window_ms})
    GROUP BY lo, hi, `day`"""


class EmbedText(ScalarFunction):  # type: ignore[misc]
    """Texts to embedding bytes (little-endian float32), one Arrow batch at a time, with the fitted model of the
    job's version loaded once per worker."""

    def __init__(self, models_dir: str, version: str) -> None:
        self.models_dir = models_dir
        self.version = version
        self.embedder: Any = None

    def open(self, function_context: FunctionContext) -> None:
        from suuupra.search.embedder import ModelStore

        self.embedder = ModelStore(Path(self.models_dir)).load(self.version)

    def eval(self, title: Any, description: Any, keywords: Any, category: Any, course_title: Any) -> Any:
        import pandas as pd

        from suuupra.search.embedder import document_text

        texts = [
            document_text(t, d, [k] if k else [], c, ct)
            for t, d, k, c, ct in zip(title, description, keywords, category, course_title, strict=True)
        ]
        vectors = self.embedder.embed(texts)
        return pd.Series([vector.astype("<f4").tobytes() for vector in vectors])


def _decoded(
    env: StreamExecutionEnvironment, t_env: StreamTableEnvironment, settings: Settings, name: str, topic: str,
    group: str, fields: list[DecodedField], bounded: bool, payload_json: bool,
) -> None:  # fmt: skip
    """`<name>_decoded` (every record, with ok / error; decoded once, in the JVM) and `<name>_events` (the readable
    ones). Out-of-order events are the revision guard's business, so no late rule."""
    register_events_view(env, t_env, EventsView(
        name=f"{name}_decoded", kafka=settings.kafka.client_config(), topics=[topic], group_id=group, bounded=bounded,
        registry_url=settings.registry.ccompat_url, fields=fields, event_time_field="event_time",
        event_time_range_ms=settings.flink.event_time_range_ms, payload_json=payload_json,
        event_types=topic_event_types(settings, [topic]), max_string_bytes=settings.flink.max_string_bytes,
    ))  # fmt: skip
    t_env.execute_sql(f"CREATE TEMPORARY VIEW {name}_events AS SELECT * FROM {name}_decoded WHERE ok")


def _declare_sinks(t_env: StreamTableEnvironment, settings: Settings, names: IndexNames) -> None:
    search = settings.search
    engine = {
        "connector": "redis-engine", "host": search.host, "port": str(search.port),
        "sink.buffer-flush.max-rows": str(search.sink_batch_rows),
        "sink.buffer-flush.interval": f"{int(search.sink_batch_delay_s * 1000)} ms",
        "sink.max-retries": str(search.sink_max_retries),
    }  # fmt: skip
    if search.password:
        engine["password"] = search.password.get_secret_value()
    columns = ", ".join(f"`{column}` {DOC_TYPES.get(column, 'STRING')}" for column in DOC_COLUMNS)
    script = {
        "mode": "script",
        "script": GUARD_SCRIPT,
        "script.key-prefixes": f"{names.doc_prefix};{names.state_prefix}",
    }
    t_env.execute_sql(f"CREATE TEMPORARY TABLE index_sink ({columns}) WITH ({with_clause(engine | script)})")
    graph = {"mode": "graph", "graph": search.graph, "query": UPSERT_QUERY}
    t_env.execute_sql(f"""
        CREATE TEMPORARY TABLE cowatch_sink (lo STRING, hi STRING, `day` BIGINT, users BIGINT,
                                             PRIMARY KEY (lo, hi, `day`) NOT ENFORCED)
        WITH ({with_clause(engine | graph)})""")
    declare_dead_letter_sink(t_env, settings.kafka.client_config(), settings.topics.dead_letter)


def build(env: StreamExecutionEnvironment, settings: Settings, version: str, bounded: bool = False) -> None:
    """Wires both pipelines for the embedder `version` (its index must exist: `prepare_engine`)."""
    t_env = StreamTableEnvironment.create(env)
    t_env.get_config().set("python.fn-execution.arrow.batch.size", str(settings.search.embed_batch_rows))
    t_env.get_config().set("python.fn-execution.bundle.time", str(settings.search.embed_max_delay_ms))
    register_jvm_functions(t_env)
    prefix = settings.flink.consumer_group_prefix
    # The content group is per model version: a new model's index is built from the start of the topic.
    _decoded(env, t_env, settings, "content", settings.topics.content, f"{prefix}-{JOB_NAME}-{version}",
             CONTENT_FIELDS, bounded, payload_json=True)  # fmt: skip
    _decoded(env, t_env, settings, "clicks", settings.topics.clickstream, f"{prefix}-{JOB_NAME}-cowatch",
             VIEW_FIELDS, bounded, payload_json=False)  # fmt: skip
    t_env.execute_sql("""
        CREATE TEMPORARY VIEW content_indexable AS
        SELECT *, COALESCE(ARRAY_JOIN(JSON_QUERY(payload_json, '$.tags' RETURNING ARRAY<STRING>), ','), '') AS tags,
               COALESCE(ARRAY_JOIN(JSON_QUERY(payload_json, '$.tags' RETURNING ARRAY<STRING>), ' '), '') AS keywords
        FROM content_events WHERE content_id IS NOT NULL AND revision IS NOT NULL""")
    t_env.execute_sql("""
        CREATE TEMPORARY VIEW watched AS SELECT user_id, content_id, event_time FROM clicks_events
        WHERE event_type = 'clickstream.content_viewed' AND user_id IS NOT NULL AND content_id IS NOT NULL""")
    models_dir = str(settings.embedder_models_dir.resolve())
    t_env.create_temporary_system_function(
        "embed_text", udf(EmbedText(models_dir, version), result_type=DataTypes.BYTES(), func_type="pandas")
    )
    _declare_sinks(t_env, settings, IndexNames.of(settings, version))

    statements = t_env.create_statement_set()
    statements.add_insert_sql(
        f"INSERT INTO dead_letter_sink {dead_letter_select('content_decoded', JOB_NAME)} UNION ALL "
        f"{dead_letter_select('clicks_decoded', JOB_NAME)}"
    )
    published = PUBLISHED.replace("content_events", "content_indexable").format(model=sql_string(version))
    statements.add_insert_sql(f"INSERT INTO index_sink {published}")
    statements.add_insert_sql(f"INSERT INTO index_sink {REMOVED.replace('content_events', 'content_indexable')}")
    window_ms = settings.search.cowatch_window_s * 1000
    statements.add_insert_sql(f"INSERT INTO cowatch_sink {COWATCH.format(day_ms=DAY_MS, window_ms=window_ms)}")
    statements.attach_as_datastream()


def prepare_engine(settings: Settings) -> str:
    """The embedder version to index with; creates its index and the graph if missing. Fails with what to run."""
    from suuupra.search.cowatch import CoWatchGraph
    from suuupra.search.embedder import ModelStore
    from suuupra.search.engine import engine_client
    from suuupra.search.index import SearchIndex

    store = ModelStore(settings.embedder_models_dir)
    embedder = store.load(settings.search.model_version)
    client = engine_client(settings)
    try:
        SearchIndex(client, settings, embedder.version, embedder.dim).ensure()
        CoWatchGraph(client, settings).ensure()
    finally:
        client.close()
    return embedder.version


def main(argv: list[str] | None = None) -> None:
    from jobs.runtime import run_job
    from suuupra.search.embedder import ModelError
    from suuupra.search.engine import SearchUnavailableError

    args = argv if argv is not None else sys.argv[1:]
    settings = load_settings()
    try:
        version = prepare_engine(settings)
    except (ModelError, SearchUnavailableError) as error:
        sys.exit(f"error: {error}")
    run_job(JOB_NAME, lambda env, own, bounded: build(env, own, version, bounded), args, settings)


if __name__ == "__main__":
    main()
