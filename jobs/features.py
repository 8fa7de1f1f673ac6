"""Real-time features: user and device activity from Kafka into the feature store (Feast).

    suuupra jobs run features                         # local mini-cluster
    flink run -py jobs/features.py                    # plain Flink CLI (settings from SUUUPRA_* / --config)

Python only declares the job; every record is handled in the JVM: the Kafka source's records are decoded once, in
the same task (connectors/flink/events.py; unreadable records go to the dead-letter topic), SQL maps each event to
the activity of a user or a device, `sliding_features` (a JVM process table function keyed by the entity) keeps each
feature view's windows current, and two sinks write every result: the online store (Feast's Redis layout, newest row
per entity, batched; beside it each entity's newest rows by time, which the fraud job reads as of just before a
payment) and the offline store (the row history in PostgreSQL that training joins point in time).

Windows end at the entity's newest event and every event is folded in whenever it arrives: there is no watermark,
so out-of-order and late events give the same features as in-order ones, and nothing is dropped.
"""

from __future__ import annotations

from pyflink.datastream import StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment

from connectors.flink.tables import (
    DecodedField,
    FeastRedis,
    PostgresJdbc,
    register_jvm_functions,
    sql_string,
    with_clause,
)
from feature_store.catalog import AS_OF_FEATURE, DEVICE_ACTIVITY, USER_ACCOUNT, USER_ENGAGEMENT, USER_PAYMENTS, View
from jobs.decoding import dead_letter_insert, declare_decoded
from suuupra.settings import Settings

JOB_NAME = "features"

DECODED_FIELDS = [
    DecodedField("event_type", "STRING"),
    DecodedField("event_time", "BIGINT"),
    DecodedField("user_id", "STRING"),
    DecodedField("content_id", "STRING"),
    DecodedField("watch_seconds", "INT"),
    DecodedField("payment_id", "STRING"),
    DecodedField("amount_minor", "BIGINT"),
    DecodedField("device_id", "STRING"),
    DecodedField("token", "STRING"),
    DecodedField("vpa", "STRING"),
]

# Each view's activity: (entity key, kind, amount, item) per event type. The kinds are those of feature_store/catalog.
ACTIVITY: dict[str, list[tuple[str, str, str, str, str]]] = {
    USER_ENGAGEMENT.name: [
        ("clickstream.content_viewed", "user_id", "view", "CAST(watch_seconds AS BIGINT)", "content_id"),
    ],
    USER_PAYMENTS.name: [
        ("payment.initiated", "user_id", "payment", "amount_minor", "device_id"),
        ("payment.card_tokenized", "user_id", "instrument", "0", "CONCAT('card:', token)"),
        ("payment.upi_vpa_validated", "user_id", "instrument", "0", "CONCAT('upi:', vpa)"),
        ("payment.failed", "user_id", "failed", "0", "payment_id"),
    ],
    USER_ACCOUNT.name: [
        ("user.registered", "user_id", "registered", "0", "CAST(NULL AS STRING)"),
    ],
    DEVICE_ACTIVITY.name: [
        ("clickstream.session_started", "device_id", "session", "0", "user_id"),
        ("payment.initiated", "device_id", "payment", "amount_minor", "user_id"),
    ],
}
VIEWS = (USER_ENGAGEMENT, USER_PAYMENTS, USER_ACCOUNT, DEVICE_ACTIVITY)


def source_topics(settings: Settings) -> list[str]:
    topics = settings.topics
    return sorted({topics.clickstream, topics.payment, topics.user})


def _activity_query(view: View) -> str:
    """One SELECT with a CASE per column, not a UNION ALL of one SELECT per event type: each branch of a union reaches
    the keyed function over an exchange of its own, which interleaves them at random (a user's instrument events
    all before their payments, say), and each row of the history is what the key had seen so far."""
    event_types, keys, kinds, amounts, items = (list(column) for column in zip(*ACTIVITY[view.name], strict=True))

    def case(values: list[str]) -> str:
        branches = " ".join(
            f"WHEN '{event_type}' THEN {value}" for event_type, value in zip(event_types, values, strict=True)
        )
        return f"CASE event_type {branches} END"

    # The kinds as STRING: a CASE of literals would be a CHAR of the longest, padding the shorter ones with blanks.
    kind = case([f"CAST('{name}' AS STRING)" for name in kinds])
    wanted = " OR ".join(
        f"(event_type = '{event_type}' AND {key} IS NOT NULL)"
        for event_type, key in zip(event_types, keys, strict=True)
    )
    return f"""SELECT {case(keys)} AS `{view.join_key}`, event_time, {kind} AS kind,
                      CAST({case(amounts)} AS BIGINT) AS amount, {case(items)} AS item
               FROM events WHERE {wanted}"""


def _columns(view: View) -> str:
    return ", ".join(f"`{name}` BIGINT" for name in view.features if name != AS_OF_FEATURE)


def _declare_view(t_env: StreamTableEnvironment, settings: Settings, view: View) -> None:
    t_env.execute_sql(f"CREATE TEMPORARY VIEW activity_{view.name} AS {_activity_query(view)}")
    values = ", ".join(f"vals[{index}] AS `{aggregate.name}`" for index, aggregate in enumerate(view.aggregates, 1))
    t_env.execute_sql(f"""
        CREATE TEMPORARY VIEW computed_{view.name} AS
        SELECT `{view.join_key}`, as_of, version, {values}
        FROM sliding_features(input => TABLE activity_{view.name} PARTITION BY `{view.join_key}`,
                              spec => {sql_string(view.spec())}, uid => {sql_string(f"features-{view.name}")})""")
    features = settings.features
    redis = settings.redis
    online = FeastRedis(
        redis.host, redis.port, redis.password.get_secret_value() if redis.password else None, redis.db,
        features.project, features.online_flush_ms, features.online_batch_rows, features.serving_history_rows,
    )  # fmt: skip
    t_env.execute_sql(f"""
        CREATE TEMPORARY TABLE online_{view.name} (
            `{view.join_key}` STRING, as_of BIGINT, version BIGINT, {_columns(view)}, `{AS_OF_FEATURE}` BIGINT
        ) WITH ({with_clause(online.options(view.name, view.join_key, "as_of", "version"))})""")
    postgres = settings.postgres
    offline = PostgresJdbc(
        postgres.host, postgres.port, postgres.database, postgres.user, postgres.password.get_secret_value(),
        features.offline_batch_rows, features.offline_batch_delay_s, settings.flink.sink_max_retries,
    )  # fmt: skip
    t_env.execute_sql(f"""
        CREATE TEMPORARY TABLE offline_{view.name} (
            `{view.join_key}` STRING, `{AS_OF_FEATURE}` BIGINT, version BIGINT, {_columns(view)},
            PRIMARY KEY (`{view.join_key}`, `{AS_OF_FEATURE}`, version) NOT ENFORCED
        ) WITH ({with_clause(offline.options(f"{features.offline_schema}.{view.name}"))})""")


def build(env: StreamExecutionEnvironment, settings: Settings, bounded: bool = False) -> None:
    """Wires sources, transformations and sinks; `env.execute()` runs them as one job."""
    t_env = StreamTableEnvironment.create(env)
    # The offline rows go to PostgreSQL through a hash exchange, so their sink runs in a task of its own: chained to
    # the windows, its JDBC round trips stalled the thread that keeps the features current.
    t_env.get_config().set("table.exec.sink.keyed-shuffle", "FORCE")
    register_jvm_functions(t_env)
    declare_decoded(env, t_env, settings, JOB_NAME, source_topics(settings), DECODED_FIELDS, bounded)
    statements = t_env.create_statement_set()
    statements.add_insert_sql(dead_letter_insert(JOB_NAME))
    for view in VIEWS:
        _declare_view(t_env, settings, view)
        names = ", ".join(f"`{aggregate.name}`" for aggregate in view.aggregates)
        statements.add_insert_sql(
            f"INSERT INTO online_{view.name} SELECT `{view.join_key}`, as_of, version, {names}, as_of "
            f"FROM computed_{view.name}"
        )
        statements.add_insert_sql(
            f"INSERT INTO offline_{view.name} SELECT `{view.join_key}`, as_of, version, {names} "
            f"FROM computed_{view.name}"
        )
    statements.attach_as_datastream()


def main(argv: list[str] | None = None) -> None:
    from jobs.runtime import run_job

    run_job(JOB_NAME, build, argv)


if __name__ == "__main__":
    main()
