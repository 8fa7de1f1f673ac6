"""Fraud scoring: every `payment.initiated` scored by the trained model, decided and explained.

    suuupra jobs run fraud                          # local mini-cluster
    flink run -py jobs/fraud.py                     # plain Flink CLI (settings from SUUUPRA_* / --config)

The JVM reads the payment topic and decodes each record once (connectors/flink/events.py; unreadable records go to
the dead-letter topic), filters the payments and decides each with `score_payment` (connectors/jvm `FraudScore`): the
user's and device's features from the online store as of just before the payment (what training reads), the trained
scikit-learn model's linear parameters (exported by suuupra/fraud/serving.py when the job is built), the decision,
its reasons and the `payment.fraud_decided` record. No Python runs per payment: the JVM writes the events to Kafka and
the decisions to ClickHouse (`fraud_decisions`, the dashboard's fraud panels).

Exactly one effective decision per payment: the decision's id derives from the payment's event id, the Kafka sink is
at-least-once (no transaction waits for a checkpoint, so a decision leaves within milliseconds), and a decision
replayed after a restore carries the same id: the saga applies the first and recognises repeats; ClickHouse keeps
the first (ReplacingMergeTree on the id, ranked by decision time).
"""

from __future__ import annotations

import logging

from pyflink.datastream import StreamExecutionEnvironment
from pyflink.table import Schema, StreamTableEnvironment

from connectors.flink.events import dead_letter_select
from connectors.flink.tables import (
    ClickHouseSinkOptions,
    DecodedField,
    kafka_raw_options,
    register_jvm_functions,
    register_jvm_instance,
    with_clause,
)
from jobs.decoding import dead_letter_insert, declare_decoded
from suuupra.events import EVENT_TYPE_HEADER
from suuupra.settings import Settings

JOB_NAME = "fraud"
log = logging.getLogger(__name__)

DECODED_FIELDS = [
    DecodedField("event_id", "STRING"),
    DecodedField("event_type", "STRING"),
    DecodedField("event_time", "BIGINT"),
    DecodedField("user_id", "STRING"),
    DecodedField("correlation_id", "STRING"),
    DecodedField("payment_id", "STRING"),
    DecodedField("order_id", "STRING"),
    DecodedField("attempt", "INT"),
    DecodedField("method", "STRING"),
    DecodedField("amount_minor", "BIGINT"),
    DecodedField("device_id", "STRING"),
]
# ReplacingMergeTree keeps the highest rank: the earliest decision of a payment (see the module's docstring).
FIRST_RANK = "4611686018427387904 - decided_at"
CLICKHOUSE_COLUMNS = (
    "decision_id STRING, payment_id STRING, order_id STRING, user_id STRING, payment_time TIMESTAMP(3), "
    "decided_at TIMESTAMP(3), decided_at_ms BIGINT, decision STRING, score DOUBLE, reasons STRING, "
    "model_version STRING, first_rank BIGINT"
)
SCORING_FUNCTION = "com.suuupra.flink.fraud.FraudScore"
# What a decision record needs of its payment (the device and the payment's details may be missing).
DECISION_NEEDS = ("event_id", "event_time", "user_id", "correlation_id", "payment_id", "order_id")


def _complete() -> str:
    return " AND ".join(f"{name} IS NOT NULL" for name in DECISION_NEEDS)


def register_scoring(t_env: StreamTableEnvironment, settings: Settings) -> str:
    """Registers `score_payment` (the JVM function `FraudScore`) with the model the settings name ("latest" resolved
    now, so every parallel instance scores with the same one); returns the model's version."""
    from suuupra.fraud.model import load_model
    from suuupra.fraud.serving import scoring_configuration

    model = load_model(settings)
    register_jvm_instance(t_env, "score_payment", SCORING_FUNCTION, scoring_configuration(settings, model))
    return model.version


def _at(epoch_ms: str) -> str:
    return f"CAST(TO_TIMESTAMP_LTZ({epoch_ms}, 3) AS TIMESTAMP(3))"


def build(env: StreamExecutionEnvironment, settings: Settings, bounded: bool = False) -> None:
    """Wires sources, scoring and sinks; `env.execute()` runs them as one job."""
    # Records leave a task when its buffer fills or after this long: the default 100 ms would dominate latency.
    env.set_buffer_timeout(settings.fraud.buffer_timeout_ms)
    t_env = StreamTableEnvironment.create(env)
    register_jvm_functions(t_env)
    version = register_scoring(t_env, settings)
    print(f"fraud job: scoring with model {version}", flush=True)
    declare_decoded(env, t_env, settings, JOB_NAME, [settings.topics.payment], DECODED_FIELDS, bounded)
    scored = t_env.sql_query(f"""
        SELECT event_time, user_id, payment_id, order_id,
               score_payment(event_id, event_time, user_id, correlation_id, payment_id, order_id, attempt, `method`,
                             amount_minor, COALESCE(device_id, '')) AS s
        FROM events WHERE event_type = 'payment.initiated' AND {_complete()}""")
    # Through a DataStream and back: the planner then scores each payment once, not once per sink.
    t_env.create_temporary_view(
        "scored", t_env.from_data_stream(t_env.to_data_stream(scored), Schema.new_builder().build())
    )

    decisions = kafka_raw_options(settings.kafka.client_config(), [settings.topics.payment], None, bounded=False)
    t_env.execute_sql(f"""
        CREATE TEMPORARY TABLE decision_sink (
            record_key BYTES,
            payload BYTES,
            headers MAP<STRING, BYTES> METADATA,
            `timestamp` TIMESTAMP_LTZ(3) METADATA
        ) WITH ({with_clause(decisions)}, 'sink.delivery-guarantee' = 'at-least-once')""")
    clickhouse, flink = settings.clickhouse, settings.flink
    sink = ClickHouseSinkOptions(
        clickhouse.host, clickhouse.http_port, clickhouse.database, clickhouse.user,
        clickhouse.password.get_secret_value(), flink.sink_batch_rows, flink.sink_batch_delay_s,
        flink.sink_max_retries, flink.sink_parallelism, own_task=True,
    )  # fmt: skip
    quoted = ", ".join(f"`{name}` {kind}" for name, kind in (c.split() for c in CLICKHOUSE_COLUMNS.split(", ")))
    t_env.execute_sql(
        f"CREATE TEMPORARY TABLE sink_fraud_decisions ({quoted}) WITH ({with_clause(sink.options('fraud_decisions'))})"
    )
    statements = t_env.create_statement_set()
    statements.add_insert_sql(dead_letter_insert(JOB_NAME))
    # A payment whose writer schema lacked a field a decision needs (the decoder reads it as NULL) cannot be decided.
    t_env.execute_sql(f"""
        CREATE TEMPORARY VIEW undecidable AS
        SELECT record_key, payload, kafka_topic, kafka_partition, kafka_offset, FALSE AS ok,
               'payment.initiated without one of {", ".join(DECISION_NEEDS)}: it cannot be decided' AS error,
               'missing_field' AS error_code
        FROM events WHERE event_type = 'payment.initiated' AND NOT ({_complete()})""")
    statements.add_insert_sql(f"INSERT INTO dead_letter_sink {dead_letter_select('undecidable', JOB_NAME)}")
    statements.add_insert_sql(f"""
        INSERT INTO decision_sink
        SELECT ENCODE(user_id, 'UTF-8'), s.record, MAP['{EVENT_TYPE_HEADER}', ENCODE('payment.fraud_decided', 'UTF-8')],
               TO_TIMESTAMP_LTZ(s.decided_at, 3)
        FROM scored""")
    statements.add_insert_sql(f"""
        INSERT INTO sink_fraud_decisions
        SELECT s.decision_id, payment_id, order_id, user_id, {_at("event_time")}, {_at("s.decided_at")}, s.decided_at,
               s.decision, s.score, s.reasons, s.model_version, {FIRST_RANK.replace("decided_at", "s.decided_at")}
        FROM scored""")
    statements.attach_as_datastream()


def main(argv: list[str] | None = None) -> None:
    from jobs.runtime import run_job

    run_job(JOB_NAME, build, argv)


if __name__ == "__main__":
    main()
