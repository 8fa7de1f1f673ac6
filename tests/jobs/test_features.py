"""The features job on the real platform: the online store holds exactly the features computed independently from
the same events (out-of-order, late and malformed ones among tens of thousands), and training reads the offline
store point in time: the features as of each payment, never later ones."""

from __future__ import annotations

import json
import os
import random
import subprocess
from collections import Counter
from typing import Any

import pandas as pd
import psycopg

from connectors.kafka.dead_letter import read_dead_letters
from feature_store.catalog import AS_OF_FEATURE, VIEWS, View
from schemas import load_catalog
from suuupra.events import EventPublisher
from suuupra.features.as_of import AsOfReader
from suuupra.features.store import feature_refs, feature_store, historical_features, online_features
from suuupra.fraud.model import FEAST_COLUMNS
from suuupra.fraud.scoring import payment_features
from suuupra.fraud.train import labelled_payments, point_in_time_features
from suuupra.settings import Settings, environment_overrides
from suuupra.simulate.journeys import SimulatedEvent, SimulationProfile, generate
from suuupra.simulate.runner import MALFORMED_KINDS, malformed_record
from tests.jobs.analytics_support import START, SUUUPRA
from tests.jobs.features_oracle import expected_features

EVENTS = 60_000


def job_environment(settings: Settings) -> dict[str, str]:
    return {**os.environ, **environment_overrides(settings, "topics", "flink", "features")}


def publish(settings: Settings, events: list[SimulatedEvent], malformed_every: int = 250) -> int:
    """Sends the events in their emit order (out-of-order and late ones included) with malformed records among
    them; returns how many malformed records went to the job's topics."""
    publisher = EventPublisher(settings)
    read_by_job = {settings.topics.clickstream, settings.topics.payment, settings.topics.user}
    malformed = 0
    for index, event in enumerate(events):
        topic = publisher.publish(event.value)
        if index % malformed_every == 3 and topic in read_by_job:
            schema = publisher.catalog.schema_for(event.event_type).schema
            valid = publisher.producer.serializer.serialize(topic, schema, event.value)
            bad = malformed_record(MALFORMED_KINDS[malformed % 3], valid, random.Random(index))
            publisher.producer.produce_raw(topic, event.value["user_id"].encode(), bad)
            malformed += 1
    publisher.flush()
    return malformed


def run_bounded(settings: Settings) -> None:
    result = subprocess.run([SUUUPRA, "jobs", "run", "features", "--bounded"], env=job_environment(settings),
                            capture_output=True, text=True, timeout=900, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def online(settings: Settings, expected: dict[str, dict[str, dict[str, int]]]) -> dict[str, dict[str, Any]]:
    """What Feast's online read returns for every entity the oracle knows, per view."""
    store = feature_store(settings)
    actual: dict[str, dict[str, Any]] = {}
    for view in VIEWS:
        entities = sorted(expected[view.name])
        refs = feature_refs((view,))
        actual[view.name] = {}
        for start in range(0, len(entities), 500):
            chunk = entities[start : start + 500]
            columns = online_features(store, [{view.join_key: entity} for entity in chunk], refs)
            for index, entity in enumerate(chunk):
                actual[view.name][entity] = {
                    name: columns[f"{view.name}__{name}"][index] for name in view.features
                }  # fmt: skip
    return actual


def test_online_features_equal_an_independent_computation_and_training_reads_point_in_time(
    feature_settings: Settings,
) -> None:
    # A short history per entity, so that serving reads both places: the kept rows and the offline store.
    feature_settings = feature_settings.model_copy(
        update={"features": feature_settings.features.model_copy(update={"serving_history_rows": 4})}
    )
    profile = SimulationProfile(seed=91, start_time_ms=START, users=150, out_of_order_share=0.1, late_share=0.03,
                                fraud_share=0.2)  # fmt: skip
    events = list(generate(profile, EVENTS))
    tags = Counter(tag for event in events for tag in event.tags)
    assert tags["out_of_order"] > 3000 and tags["late"] > 1000, tags
    malformed = publish(feature_settings, events)
    run_bounded(feature_settings)

    expected = expected_features(event.value for event in events)
    assert sum(len(entities) for entities in expected.values()) > 1000
    actual = online(feature_settings, expected)
    for view in VIEWS:
        wrong = {e: (expected[view.name][e], actual[view.name][e]) for e in expected[view.name]
                 if expected[view.name][e] != actual[view.name][e]}  # fmt: skip
        assert not wrong, (
            f"{view.name}: {len(wrong)} of {len(expected[view.name])} differ, e.g. {next(iter(wrong.items()))}"
        )

    # What `suuupra features get` prints for a user is what the online store holds for them.
    user = max(expected["user_payments"], key=lambda u: expected["user_payments"][u]["payments_1d"])
    shown = subprocess.run([SUUUPRA, "features", "get", user, "--json"], env=job_environment(feature_settings),
                           capture_output=True, text=True, check=True)  # fmt: skip
    printed = json.loads(shown.stdout)
    assert {k.removeprefix("user_payments__"): v for k, v in printed.items() if k.startswith("user_payments__")} == (
        expected["user_payments"][user]
    )

    letters = [x for x in read_dead_letters(feature_settings.kafka.client_config(), feature_settings.topics.dead_letter)
               if x.headers.get("failed.by") == "features"]  # fmt: skip
    originals = {
        (x.headers["original.topic"], x.headers["original.partition"], x.headers["original.offset"]) for x in letters
    }
    assert len(originals) == malformed

    _offline_history_has_a_row_per_event(feature_settings, events)
    _training_reads_each_payment_as_of_its_time(feature_settings, events)
    _serving_reads_each_payment_as_training_does(feature_settings, events)


def _offline_history_has_a_row_per_event(settings: Settings, events: list[SimulatedEvent]) -> None:
    """Every event of a view's entity leaves its row in the offline table (version 1, 2, ... n): none lost, none
    twice, whatever the batching of the JDBC sink."""
    from jobs.features import ACTIVITY

    catalog = load_catalog()
    with psycopg.connect(settings.postgres.dsn(settings.postgres.database)) as connection:
        for view in VIEWS:
            feeds = {event_type: key for event_type, key, *_ in ACTIVITY[view.name]}
            per_entity = Counter(
                event.value[feeds[event.event_type]] for event in events
                if event.event_type in feeds and event.value.get(feeds[event.event_type]) is not None
            )  # fmt: skip
            history = connection.execute(
                f"SELECT {view.join_key}, count(*), count(DISTINCT version), max(version) "
                f"FROM {settings.features.offline_schema}.{view.name} GROUP BY 1"
            ).fetchall()
            assert {entity: (rows, distinct, newest) for entity, rows, distinct, newest in history} == {
                entity: (count, count, count) for entity, count in per_entity.items()
            }, view.name
            if len({catalog.schema_for(event_type).topic for event_type in feeds}) == 1:
                _rows_follow_the_partition(connection, settings, view, feeds, events)


def _rows_follow_the_partition(
    connection: psycopg.Connection[Any],
    settings: Settings,
    view: View,
    feeds: dict[str, str],
    events: list[SimulatedEvent],
) -> None:
    """A view fed from one topic sees each entity's events in the order of its partition, whatever their types: row
    n is as of the newest event time among the entity's first n events as published. (The events of each type once
    reached the job's keyed function over an exchange of their own, interleaved at random: a user's instrument
    events all before their payments in one run, after them in the next.)"""
    newest: dict[str, int] = {}
    seen: Counter[str] = Counter()
    expected: dict[tuple[str, int], int] = {}
    for event in events:
        if event.event_type not in feeds or (entity := event.value.get(feeds[event.event_type])) is None:
            continue
        newest[entity] = max(newest.get(entity, event.value["event_time"]), event.value["event_time"])
        seen[entity] += 1
        expected[(entity, seen[entity])] = newest[entity]
    rows = connection.execute(
        f"SELECT {view.join_key}, version, {AS_OF_FEATURE} FROM {settings.features.offline_schema}.{view.name}"
    ).fetchall()
    wrong = {(entity, version): as_of for entity, version, as_of in rows if expected.get((entity, version)) != as_of}
    assert not wrong, (view.name, len(wrong), next(iter(wrong.items())))


def _training_reads_each_payment_as_of_its_time(settings: Settings, events: list[SimulatedEvent]) -> None:
    payments = [e.value for e in events if e.event_type == "payment.initiated"]
    entity_df = pd.DataFrame({
        "user_id": [p["user_id"] for p in payments],
        "device_id": [p["device_id"] for p in payments],
        # Just before the payment: its own event is not known when it is scored.
        "event_timestamp": pd.to_datetime([p["event_time"] - 1 for p in payments], unit="ms", utc=True),
        "payment_id": [p["payment_id"] for p in payments],
    })  # fmt: skip
    view = next(v for v in VIEWS if v.name == "user_payments")
    dataset = historical_features(feature_store(settings), entity_df, feature_refs((view,)))
    assert len(dataset) == len(payments)

    # The same rows chosen straight from the offline table: the newest at or before the moment (ties: version).
    schema, columns = settings.features.offline_schema, [f"{view.name}__{name}" for name in view.features]
    with psycopg.connect(settings.postgres.dsn(settings.postgres.database)) as connection:
        history = connection.execute(
            f"SELECT user_id, as_of_ms, version, {', '.join(n for n in view.features if n != 'as_of_ms')} "
            f"FROM {schema}.{view.name}"
        ).fetchall()
    rows: dict[str, list[tuple[Any, ...]]] = {}
    for row in history:
        rows.setdefault(row[0], []).append(row)
    later_rows_existed = 0
    for record in dataset.to_dict("records"):
        moment = int(record["event_timestamp"].timestamp() * 1000)
        candidates = [r for r in rows.get(record["user_id"], []) if r[1] <= moment]
        later_rows_existed += any(r[1] > moment for r in rows.get(record["user_id"], []))
        if not candidates:
            assert all(pd.isna(record[c]) for c in columns), record
            continue
        newest = max(candidates, key=lambda r: (r[1], r[2]))
        assert record[f"{view.name}__as_of_ms"] <= moment, "a feature from after the payment"
        expected = dict(zip([n for n in view.features if n != "as_of_ms"], newest[3:], strict=True))
        expected["as_of_ms"] = newest[1]
        assert {name: int(record[f"{view.name}__{name}"]) for name in view.features} == expected
    # The table holds later rows for most payments: reading them would have been the easy mistake.
    assert later_rows_existed > len(payments) * 0.8, (later_rows_existed, len(payments))


def _serving_reads_each_payment_as_training_does(settings: Settings, events: list[SimulatedEvent]) -> None:
    """The fraud job's features of a payment (the online history, or the offline store for older moments) equal
    training's point-in-time features of it, for every view, although the job has run past every payment."""
    payments = labelled_payments(events)
    trained = point_in_time_features(settings, payments).set_index("payment_id")
    reader = AsOfReader(settings)
    try:
        columns = payment_features(reader, payments.rename(columns={"payment_time_ms": "event_time"}))
    finally:
        reader.close()
    served = pd.DataFrame(columns, index=payments["payment_id"])
    differences = []
    for column in FEAST_COLUMNS:
        for payment_id, value in served[column].items():
            expected = trained.at[payment_id, column]
            if pd.isna(value) != pd.isna(expected) or (not pd.isna(value) and int(value) != int(expected)):
                differences.append((payment_id, column, value, expected))
    assert not differences, (
        f"{len(differences)} differ, e.g. {differences[:3]}; columns {Counter(c for _, c, _, _ in differences)}; "
        f"offline reads {reader.offline_reads}"
    )
    requests = len(payments) * len(VIEWS)
    # Both places were read: most moments are long behind the kept rows, the latest ones are among them.
    assert 0 < reader.offline_reads < requests, (reader.offline_reads, requests)
    assert served["user_payments__as_of_ms"].notna().sum() > len(payments) * 0.8
