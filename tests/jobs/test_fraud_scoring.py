"""The fraud job scores in the JVM (connectors/jvm `FraudScore`): the same features, score, decision, reasons and
decision record as the Python reference (`suuupra.fraud.scoring.Scorer`: Feast columns read by `AsOfReader`, the
scikit-learn pipeline's `predict_proba`, `model_inputs` shared with training), on payments whose users and devices
have no rows, rows only after the moment, rows with empty values, huge and zero counts, and moments older than every
row the online history keeps (read from the offline table)."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import subprocess
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import redis
from confluent_kafka import Consumer, TopicPartition
from psycopg import sql
from pyflink.table import StreamTableEnvironment

from connectors.avro.schema import AvroSchema
from connectors.avro.serde import AvroDeserializer, AvroSerializer
from connectors.kafka.dead_letter import read_dead_letters
from feature_store.catalog import AS_OF_FEATURE, View
from jobs.fraud import register_scoring
from jobs.runtime import execution_environment
from suuupra.clickhouse.migrate import server_backend
from suuupra.events import EVENT_TYPE_HEADER, EventPublisher, make_registry
from suuupra.features.as_of import history_key
from suuupra.fraud.model import FEAST_COLUMNS, VIEWS, FraudModel, ModelCard, model_inputs
from suuupra.fraud.scoring import PAYMENT_COLUMNS, Scorer
from suuupra.settings import Settings, environment_overrides
from tests.jobs.analytics_support import SUUUPRA

PAYMENTS = 400
BASE_MS = 1_780_000_000_000


def _values(view: View, rng: random.Random, as_of: int) -> list[int | None]:
    values: list[int | None] = []
    for name in view.features:
        if name == AS_OF_FEATURE:
            values.append(as_of)
        elif name.endswith("_ms"):  # registration / first sighting: a moment before the row
            values.append(as_of - rng.choice([0, 1, 999, 86_400_000, 3 * 10**10]))
        else:
            values.append(rng.choice([None, 0, 1, 2, 7, 40, 1_000, 99_900, 10**9, 10**15]))
    named = dict(zip(view.features, values, strict=True))
    for name in view.features:  # a window's amount is that of its payments (a positive amount each)
        if name.startswith("amount_minor_"):
            count = named[name.replace("amount_minor", "payments")]
            values[view.features.index(name)] = None if count is None else count * rng.choice([0, 1, 4_900])
    return values


def _seed(settings: Settings, rng: random.Random) -> pd.DataFrame:
    """Payments, and their entities' rows in the online history and the offline table (kept rows: the 4 newest)."""
    password = settings.redis.password.get_secret_value() if settings.redis.password else None
    online = redis.Redis(host=settings.redis.host, port=settings.redis.port, db=settings.redis.db, password=password)
    offline_rows: dict[str, list[tuple[Any, ...]]] = {view.name: [] for view in VIEWS}
    payments = []
    for index in range(PAYMENTS):
        user, moment = str(uuid.uuid4()), BASE_MS + index * 10_000
        device = "" if index % 9 == 0 else f"dev-{uuid.uuid4().hex[:12]}"
        entities = {"user_id": user, "device_id": device}
        for view in VIEWS:
            entity = entities[view.join_key]
            case = rng.choice(["none", "kept", "kept", "after-first", "offline", "offline-none"])
            if not entity or case == "none":
                continue
            first_kept = 1 if case in ("kept", "after-first") else rng.randint(3, 9)
            # Every kept row after the moment (the payment's own time included: training reads 1 ms before it).
            times = sorted(moment + rng.randint(0, 5_000) for _ in range(4))
            if case == "kept":  # some kept rows at or before the moment (the moment itself included)
                times = sorted([moment - 1 - rng.randint(0, 1) * rng.randint(0, 60_000) for _ in range(2)] + times[:2])
            for offset, at in enumerate(times):
                member = f"{first_kept + offset:019d}:" + ",".join(
                    "" if v is None else str(v) for v in _values(view, rng, at)
                )
                online.zadd(history_key(view, entity, settings.features.project), {member: at})
            for version in range(1, first_kept):
                at = moment - 1 - rng.randint(0, 3_600_000) if case == "offline" else moment + rng.randint(0, 9)
                values = _values(view, rng, at)
                offline_rows[view.name].append((entity, at, version, *values[:-1]))
        payments.append({
            "event_id": str(uuid.uuid4()), "event_time": moment, "user_id": user, "correlation_id": str(uuid.uuid4()),
            "payment_id": str(uuid.uuid4()), "order_id": str(uuid.uuid4()), "attempt": rng.choice([1, 1, 2, 5]),
            "method": rng.choice(["UPI", "CARD"]), "amount_minor": rng.choice([1, 4_900, 99_900, 10**11]),
            "device_id": device,
        })  # fmt: skip
    online.close()
    with psycopg.connect(settings.postgres.dsn(settings.postgres.database), autocommit=True) as connection:
        for view in VIEWS:
            names = [view.join_key, AS_OF_FEATURE, "version"] + [n for n in view.features if n != AS_OF_FEATURE]
            insert = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                sql.Identifier(settings.features.offline_schema, view.name),
                sql.SQL(", ").join(map(sql.Identifier, names)), sql.SQL(", ").join(sql.Placeholder() * len(names)),
            )  # fmt: skip
            with connection.cursor() as cursor:
                cursor.executemany(insert, offline_rows[view.name])
    return pd.DataFrame(payments, columns=PAYMENT_COLUMNS)


def _model(settings: Settings, rng: random.Random, folder: Path) -> Settings:
    """A model fitted by the training code path on random features, saved where the job and the reference load it."""
    generator = np.random.default_rng(rng.randint(0, 2**31))
    rows = 2_000
    frame: dict[str, Any] = {
        column: np.where(generator.random(rows) < 0.2, np.nan, generator.integers(0, 500, rows).astype("float64"))
        for column in FEAST_COLUMNS
    }
    frame |= {"payment_time_ms": np.full(rows, float(BASE_MS)), "amount_minor": generator.integers(1, 10**6, rows),
              "attempt": generator.integers(1, 4, rows), "method": generator.choice(["UPI", "CARD"], rows)}  # fmt: skip
    frame["user_payments__amount_minor_1d"] = frame["user_payments__payments_1d"] * 1_000
    inputs = model_inputs(frame)
    labels = (inputs["amount_log"] + generator.normal(0, 2, rows) > 12).to_numpy().astype(int)
    card = ModelCard(
        version=f"fraud-test-{uuid.uuid4().hex[:8]}", inputs=list(inputs.columns), feast_features=FEAST_COLUMNS,
        thresholds={"review": 0.4, "reject": 0.8}, training_window={}, test_window={}, metrics={},
    )  # fmt: skip
    FraudModel(FraudModel.fit(inputs, labels), card).save(folder)
    return settings.model_copy(update={"fraud": settings.fraud.model_copy(
        update={"models_dir": folder, "model_version": card.version})})  # fmt: skip


def _initiated(at_ms: int) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()), "event_type": "payment.initiated", "event_time": at_ms, "producer": "test",
        "correlation_id": str(uuid.uuid4()), "user_id": str(uuid.uuid4()), "payment_id": str(uuid.uuid4()),
        "order_id": str(uuid.uuid4()), "attempt": 1, "method": "UPI", "amount_minor": 99_900, "currency": "INR",
        "device_id": "dev-1", "ip_address": "10.0.0.1", "idempotency_key": str(uuid.uuid4()),
    }  # fmt: skip


def _millis(moment: dt.datetime) -> int:
    return round(moment.timestamp() * 1000)


def _jvm_decisions(settings: Settings, payments: pd.DataFrame) -> pd.DataFrame:
    t_env = StreamTableEnvironment.create(execution_environment(settings, "test-fraud-scoring"))
    register_scoring(t_env, settings)
    t_env.create_temporary_view("payments", t_env.from_pandas(payments))
    table = t_env.sql_query("""
        SELECT payment_id, s.decision_id, s.decision, s.score, s.reasons, s.model_version, s.decided_at, s.record
        FROM (
            SELECT payment_id, score_payment(event_id, event_time, user_id, correlation_id, payment_id, order_id,
                                             CAST(attempt AS INT), `method`, amount_minor, device_id) AS s
            FROM payments)""")
    with table.execute().collect() as results:
        rows = [list(row) for row in results]
    columns = ["payment_id", "decision_id", "decision", "score", "reasons", "model_version", "decided_at", "record"]
    return pd.DataFrame(rows, columns=columns).set_index("payment_id")


def _differences(settings: Settings, payments: pd.DataFrame) -> tuple[list[Any], pd.DataFrame, int]:
    """Per payment where the JVM and the reference differ: both decisions; the reference's, its offline reads."""
    scorer = Scorer(settings, settings.fraud.model_version)
    expected = scorer.decide(payments).set_index(payments["payment_id"])
    offline_reads = scorer.features.offline_reads
    scorer.features.close()
    served = _jvm_decisions(settings, payments)
    assert len(served) == len(payments)
    decoder = AvroDeserializer(make_registry(settings))
    differences = []
    for payment_id, want in expected.iterrows():
        got = served.loc[payment_id]
        same = (
            got["decision_id"] == want["decision_id"] and got["decision"] == want["decision"]
            and abs(got["score"] - want["score"]) < 1e-9 and got["reasons"] == want["reasons"]
            and got["model_version"] == want["model_version"]
        )  # fmt: skip
        ours, theirs = decoder.deserialize(bytes(got["record"])).value, decoder.deserialize(want["record"]).value
        assert abs(ours.pop("score") - theirs.pop("score")) < 1e-9
        # Each stamps the moment it decided.
        assert _millis(ours.pop("event_time")) == got["decided_at"]
        assert _millis(theirs.pop("event_time")) == want["decided_at"]
        if not same or ours != theirs:
            differences.append((payment_id, dict(got), dict(want)))
    return differences, expected, offline_reads


def test_the_jvm_scores_as_the_python_model_does(feature_settings: Settings, tmp_path: Path) -> None:
    rng = random.Random(23)
    settings = _model(feature_settings, rng, tmp_path / "models")
    payments = _seed(settings, rng)
    inputs = len(model_inputs({"method": []}).columns)
    # The default number of reasons, then more than there are inputs: every input that raised the score, no other.
    for reasons in (settings.fraud.reasons, inputs + 1):
        own = settings.model_copy(update={"fraud": settings.fraud.model_copy(update={"reasons": reasons})})
        differences, expected, offline_reads = _differences(own, payments)
        assert not differences, f"{len(differences)} of {len(expected)} differ, e.g. {differences[:2]}"
        counts = expected["reasons"].map(lambda text: 0 if not text else text.count(";") + 1)
        if reasons < inputs:  # cut at the number asked for
            assert counts.max() == reasons, counts.value_counts()
        else:  # only the inputs that raised the score, a different number for each payment
            assert counts.max() < inputs and counts.nunique() > 2, counts.value_counts()
    # The inputs reached every branch: all three decisions, and both stores were read.
    assert set(expected["decision"]) == {"APPROVE", "REVIEW", "REJECT"}, expected["decision"].value_counts()
    assert offline_reads > PAYMENTS // 4, offline_reads


def test_a_payment_without_a_field_its_decision_needs_is_dead_lettered_and_the_others_decided(
    feature_settings: Settings, tmp_path: Path
) -> None:
    """A writer version of payment.initiated without `correlation_id` (the decoder reads it as NULL): no decision can
    carry it, so the record goes to the dead-letter topic with its reason; the payments around it are decided."""
    settings = _model(feature_settings, random.Random(3), tmp_path / "models")
    publisher = EventPublisher(settings)
    topic = settings.topics.payment
    catalog_schema = publisher.catalog.schema_for("payment.initiated").schema
    parsed = json.loads(catalog_schema.text)
    parsed["fields"] = [f for f in parsed["fields"] if f["name"] != "correlation_id"]
    without = AvroSchema.from_text(json.dumps(parsed))
    valid = [_initiated(BASE_MS + i) for i in range(3)]
    lacking = _initiated(BASE_MS + 10)
    publisher.publish(valid[0])
    # The registry refuses this version under the topic's subject (incompatible); a producer registering it under a
    # subject of its own still gets an id, and readers resolve writers by id.
    writer = AvroSerializer(make_registry(settings), lambda topic, name: f"{topic}-legacy-{name}", auto_register=True)
    body = writer.serialize(topic, without, {k: v for k, v in lacking.items() if k != "correlation_id"})
    publisher.producer.produce_raw(topic, lacking["user_id"].encode(), body,
                                   ((EVENT_TYPE_HEADER, b"payment.initiated"),))  # fmt: skip
    for event in valid[1:]:
        publisher.publish(event)
    publisher.flush()

    environment = {
        **os.environ,
        **environment_overrides(settings, "topics", "flink", "features", "fraud", "clickhouse"),
    }
    result = subprocess.run([SUUUPRA, "jobs", "run", "fraud", "--bounded"], env=environment, capture_output=True,
                            text=True, timeout=600, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    letters = read_dead_letters(settings.kafka.client_config(), settings.topics.dead_letter)
    assert [letter.headers["reason.code"] for letter in letters] == ["missing_field"], letters
    letter = letters[0]
    assert "correlation_id" in letter.headers["reason"]
    # The decoder keeps no bytes of a readable record: the letter points at it, and the record is there.
    assert letter.headers["original.topic"] == topic
    consumer = Consumer({**settings.kafka.client_config(), "group.id": f"test-{uuid.uuid4()}"})
    try:
        consumer.assign([TopicPartition(topic, int(letter.headers["original.partition"]),
                                        int(letter.headers["original.offset"]))])  # fmt: skip
        record = consumer.poll(10)
        assert record is not None and record.value() == body
    finally:
        consumer.close()
    backend = server_backend(settings)
    try:
        decided = {row[0] for row in backend.query(
            f"SELECT payment_id FROM {settings.clickhouse.database}.fraud_decisions").rows}  # fmt: skip
    finally:
        backend.close()
    assert decided == {event["payment_id"] for event in valid}
