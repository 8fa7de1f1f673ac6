"""Training and the fraud job with the services: a model trained on simulated history (labels from the planted
fraud patterns, features point in time from the offline store, held-out split by time) beats the rule stand-in; the
fraud job decides every payment of the services exactly once, also across a SIGKILL and a restore from its last
checkpoint, and the saga approves or rejects each order by that decision."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
import pytest
from fastapi.testclient import TestClient

from services.relay_loop import BackgroundRelay
from services.saga_workers import SagaWorkers
from suuupra.clickhouse.migrate import migrate, server_backend
from suuupra.events import event_consumer
from suuupra.features.store import apply, remove
from suuupra.fraud.model import FEAST_COLUMNS, FraudModel, load_model, model_inputs
from suuupra.fraud.scoring import decision_id
from suuupra.fraud.train import TrainingOptions, train
from suuupra.platform.manager import Platform
from suuupra.settings import Settings, environment_overrides
from tests.jobs.analytics_support import SUUUPRA
from tests.services.test_saga import _order_status, _paid_order

SETTLE_S = 90.0
# Without any history (the services' buyers are new to the feature store) the amount decides: small is approved.
SMALL, HUGE = 4_900, 900_000_000


@pytest.fixture(scope="module")
def trained(
    settings: Settings, platform: Platform, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Settings, FraudModel]:
    own = settings.model_copy(
        update={"fraud": settings.fraud.model_copy(update={"models_dir": tmp_path_factory.mktemp("models")})}
    )
    model, _folder = train(own, TrainingOptions(events=30_000, seed=11, users=150, fraud_share=0.2))
    return own, model


def test_training_reads_history_point_in_time_and_the_model_beats_the_rules(
    trained: tuple[Settings, FraudModel],
) -> None:
    settings, model = trained
    card = model.card
    assert load_model(settings, "latest").version == card.version == load_model(settings, card.version).version
    assert card.training_window["to"] < card.test_window["from"], "held out by time: the test payments come after"
    assert card.data["fraud_payments"] > 100 and set(card.data["patterns"]) >= {"velocity_burst", "failed_attempts"}
    assert len(card.feast_features) == 30 and "account_age_log" in card.inputs
    ours, rules = card.metrics["model"], card.metrics["rules"]
    assert ours["payments"] == rules["payments"] > 200, "both judged on the same held-out payments"
    assert ours["pr_auc"] > rules["pr_auc"] + 0.1 and ours["roc_auc"] > rules["roc_auc"] + 0.1, card.metrics
    # The review threshold maximises F1 on the training payments, so the model flags fewer, surer payments than the
    # rules: better precision and F1; its recall lands near the rules' (above or below, with the interleaving of the
    # topics when the offline history was built), so recall alone is not the criterion.
    assert ours["precision"] > rules["precision"] + 0.1 and ours["f1"] > rules["f1"], card.metrics
    assert 0 < card.thresholds["review"] <= card.thresholds["reject"] <= 1


def _without_history(amount: int, method: str) -> dict[str, Any]:
    """A payment as the job sees it when the online store knows nothing of its user or device."""
    return {**dict.fromkeys(FEAST_COLUMNS), "payment_time_ms": int(time.time() * 1000), "amount_minor": amount,
            "attempt": 1, "method": method}  # fmt: skip


@pytest.fixture(scope="module")
def split_model(trained: tuple[Settings, FraudModel]) -> str:
    """The trained model with its REVIEW threshold between the scores of SMALL and HUGE payments without history, so
    the job's decisions take both of the saga's paths whichever way training fell (the services' buyers are new to
    the feature store; where exactly their amounts land depends on the simulated history). Which of the two scores
    higher is the model's to learn, not this fixture's: without a history the amount is judged against nothing usual,
    and the amount alone weighs either way with the training payments."""
    settings, model = trained
    # The test pays by UPI (tests/services/test_saga.py).
    small, huge = model.scores(model_inputs(pd.DataFrame([_without_history(a, "UPI") for a in (SMALL, HUGE)])))
    assert abs(huge - small) > 1e-6, f"the amount moves the score of a payment from nobody known: {small}, {huge}"
    review = float(small + huge) / 2
    thresholds = {"review": review, "reject": max(review, model.card.thresholds["reject"])}
    card = dataclasses.replace(model.card, version=f"{model.version}-split", thresholds=thresholds)
    FraudModel(model.pipeline, card).save(settings.fraud_models_dir)
    return card.version


@pytest.fixture
def job_world(
    isolated: Settings, trained: tuple[Settings, FraudModel], split_model: str, tmp_path: Path
) -> Iterator[Settings]:
    """The test's own topics, services schema, feature project, ClickHouse database and checkpoints; the saga takes
    its decisions from the fraud job (no stand-in)."""
    database = f"test_{uuid.uuid4().hex[:10]}"
    own = isolated.model_copy(update={
        "services": isolated.services.model_copy(update={"fraud_standin": False, "payment_timeout_s": 600.0}),
        "fraud": trained[0].fraud.model_copy(update={"model_version": split_model}),
        "features": isolated.features.model_copy(update={"repo_dir": tmp_path / "feature_store"}),
        "clickhouse": isolated.clickhouse.model_copy(update={"database": database}),
        "flink": isolated.flink.model_copy(update={
            "checkpoint_dir": tmp_path / "checkpoints", "checkpoint_interval_s": 1.0,
            "consumer_group_prefix": f"test-{uuid.uuid4().hex[:8]}",
        }),
    })  # fmt: skip
    backend = server_backend(own)
    migrate(backend, database)
    apply(own)
    yield own
    remove(own)
    backend.query(f"DROP DATABASE IF EXISTS {database}")
    backend.close()


def _start_fraud_job(settings: Settings, *extra: str) -> subprocess.Popen[bytes]:
    environment = {
        **os.environ,
        **environment_overrides(settings, "topics", "flink", "features", "fraud", "clickhouse"),
    }
    return subprocess.Popen([SUUUPRA, "jobs", "run", "fraud", *extra], env=environment, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def _decisions(settings: Settings) -> tuple[dict[str, str], dict[str, list[dict[str, Any]]]]:
    """The services' payments (payment id -> initiated event id) and the job's decisions per payment, in Kafka
    order."""
    initiated: dict[str, str] = {}
    decided: dict[str, list[dict[str, Any]]] = defaultdict(list)
    with event_consumer(settings, [settings.topics.payment], read_only=True) as consumer:
        for record in consumer.read_to_end():
            event = record.value
            if event["event_type"] == "payment.initiated":
                initiated[str(event["payment_id"])] = str(event["event_id"])
            elif event["event_type"] == "payment.fraud_decided" and event["producer"] == "fraud-job":
                decided[str(event["payment_id"])].append(event)
    return initiated, decided


def _wait_decided(settings: Settings, count: int, timeout_s: float = SETTLE_S) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        initiated, decided = _decisions(settings)
        if len(initiated) >= count and all(p in decided for p in initiated):
            return
        assert time.monotonic() < deadline, f"{len(decided)} of {len(initiated)} payments decided"
        time.sleep(1.0)


def _kill(job: subprocess.Popen[bytes]) -> None:
    os.killpg(job.pid, signal.SIGKILL)
    job.wait(30)


def test_every_payment_gets_one_effective_decision_across_a_kill_and_the_saga_follows_it(
    client: TestClient, job_world: Settings
) -> None:
    settings = job_world
    orders: list[str] = []
    with BackgroundRelay(settings, interval_s=0.1), SagaWorkers(settings):
        job = _start_fraud_job(settings)
        try:
            for amount in (SMALL, HUGE, SMALL, HUGE, SMALL, SMALL):
                orders.append(_paid_order(client, amount)[1])
            _wait_decided(settings, len(orders))
            time.sleep(1.5)  # a checkpoint or two, then more payments the killed job has not seen yet
            for amount in (SMALL, HUGE, SMALL):
                orders.append(_paid_order(client, amount)[1])
            _kill(job)
            for amount in (HUGE, SMALL, SMALL):
                orders.append(_paid_order(client, amount)[1])
            job = _start_fraud_job(settings, "--restore", "latest")
            _wait_decided(settings, len(orders))
            deadline = time.monotonic() + SETTLE_S
            while any(_order_status(settings, order) == "PAID" for order in orders):
                assert time.monotonic() < deadline
                time.sleep(0.5)
        finally:
            _kill(job)

    initiated, decided = _decisions(settings)
    assert len(initiated) == len(orders)
    first: dict[str, dict[str, Any]] = {}
    for payment_id, event_id in initiated.items():
        ids = {str(decision["event_id"]) for decision in decided[payment_id]}
        assert ids == {decision_id(event_id)}, "one decision id per payment, derived from the payment"
        first[payment_id] = decided[payment_id][0]
    outcomes = {decision["decision"] for decision in first.values()}
    assert "APPROVE" in outcomes and outcomes & {"REVIEW", "REJECT"}, outcomes

    with psycopg.connect(settings.postgres.dsn()) as connection:
        applied = connection.execute(
            "SELECT p.payment_id::text, o.order_id::text, o.status, count(e.*), min(e.payload->>'decision') "
            "FROM payments p JOIN orders o USING (order_id) LEFT JOIN payment_events e "
            "ON e.payment_id = p.payment_id AND e.event_type = 'payment.fraud_decided' GROUP BY 1, 2, 3"
        ).fetchall()
    expected_status = {"APPROVE": "FULFILLED", "REJECT": "CANCELLED", "REVIEW": "CREATED"}
    for payment_id, order_id, status, decisions_applied, decision in applied:
        assert decisions_applied == 1, f"payment {payment_id}: {decisions_applied} decisions applied"
        assert decision == first[payment_id]["decision"], "the saga applied the first decision"
        assert status == expected_status[decision], (order_id, decision, status)

    backend = server_backend(settings)
    rows = backend.query(
        f"SELECT payment_id, decision, model_version FROM {settings.clickhouse.database}.fraud_decisions FINAL"
    ).rows
    backend.close()
    assert sorted((p, d) for p, d, _ in rows) == sorted((p, e["decision"]) for p, e in first.items())
    running = load_model(settings).version
    assert {version for *_, version in rows} == {e["model_version"] for e in first.values()} == {running}


def test_hostile_records_are_dead_lettered_and_every_valid_payment_is_decided(
    job_world: Settings, tmp_path: Path
) -> None:
    """The hostile corpus (tests/faults/test_hostile_input.py) against the fraud job: every hostile record on the
    payment topic dead-lettered with a reason of its kind, the job RUNNING without a restart, and every valid
    payment.initiated decided, those published after the corpus too."""
    from suuupra.simulate.journeys import generate
    from tests.faults.test_hostile_input import JobCase, run_case
    from tests.jobs.analytics_support import journeys

    def undecided(settings: Settings, valid: list[dict[str, Any]]) -> list[str]:
        _initiated, decided = _decisions(settings)
        return [str(event["payment_id"]) for event in valid
                if event["event_type"] == "payment.initiated" and str(event["payment_id"]) not in decided]  # fmt: skip

    case = JobCase(
        "fraud",
        lambda settings: [settings.topics.payment],
        lambda settings: {
            **os.environ,
            **environment_overrides(settings, "topics", "flink", "features", "fraud", "clickhouse"),
        },
        lambda _settings: [event.value for event in generate(journeys(seed=93), 1500)],
        undecided,
    )
    run_case(case, job_world, tmp_path)
