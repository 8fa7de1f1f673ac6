"""`suuupra fraud train`: a labelled history from the simulator, its features from the offline store point in time,
a held-out split by time, the model against the rule-based stand-in on the same held-out payments.

1. The simulator generates a seeded history; a payment is fraud when the simulator planted a fraud pattern in its
   journey (the `fraud:*` tags), never because a rule says so.
2. The history goes to Kafka topics of its own and the features job runs over it, bounded, into a feature project
   of its own: the offline store then holds every row the job computed, exactly as it does in production.
3. Feast's point-in-time join reads each payment's features as of 1 ms before the payment (its own event is not
   known when it is scored), never later ones.
4. The earliest payments train the model, the latest (`test_share`) test it and the stand-in.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score, roc_auc_score

from services.commerce.saga import fraud_decision
from suuupra.events import EventPublisher
from suuupra.features.store import apply, feature_store, historical_features, remove
from suuupra.fraud.model import FEAST_REFS, FraudModel, ModelCard, Thresholds, model_inputs
from suuupra.isolation import isolated_environment
from suuupra.settings import Settings
from suuupra.simulate.journeys import SimulatedEvent, SimulationProfile, generate

Progress = Callable[[str], None]
# The reject threshold is the lowest score whose payments were at least this often fraud in training.
REJECT_PRECISION = 0.9


@dataclass(frozen=True)
class TrainingOptions:
    events: int = 150_000
    seed: int = 7
    users: int = 300
    fraud_share: float = 0.1
    test_share: float = 0.3
    start_time_ms: int = 1_767_225_600_000
    version: str | None = None


def labelled_payments(events: list[SimulatedEvent]) -> pd.DataFrame:
    """One row per `payment.initiated`, labelled by what the simulator planted in its journey."""
    rows = []
    for event in events:
        if event.event_type != "payment.initiated":
            continue
        value = event.value
        patterns = sorted(tag.removeprefix("fraud:") for tag in event.tags if tag.startswith("fraud:"))
        rows.append({
            "payment_id": value["payment_id"], "event_id": value["event_id"], "user_id": value["user_id"],
            "device_id": value["device_id"], "payment_time_ms": value["event_time"],
            "amount_minor": value["amount_minor"], "attempt": value["attempt"], "method": value["method"],
            "label": int(bool(patterns)), "pattern": patterns[0] if patterns else "",
            "rules_decision": fraud_decision(value)["decision"], "rules_score": fraud_decision(value)["score"],
        })  # fmt: skip
    return pd.DataFrame(rows)


def point_in_time_features(settings: Settings, payments: pd.DataFrame) -> pd.DataFrame:
    entity_df = payments.assign(event_timestamp=pd.to_datetime(payments["payment_time_ms"] - 1, unit="ms", utc=True))
    return historical_features(feature_store(settings), entity_df, FEAST_REFS)


def _build_offline_history(settings: Settings, events: list[SimulatedEvent], progress: Progress) -> pd.DataFrame:
    """Publishes the history to topics of its own, runs the features job over it and returns the payments with
    their point-in-time features; the topics, feature project and offline tables are removed afterwards."""
    from jobs import features as features_job
    from jobs.runtime import execution_environment

    prefix = f"train-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="suuupra-train-") as work, isolated_environment(settings, prefix) as own:
        own = own.model_copy(update={
            "features": own.features.model_copy(update={"repo_dir": Path(work) / "feature_store"}),
            "flink": own.flink.model_copy(update={
                "checkpoint_dir": Path(work) / "checkpoints", "consumer_group_prefix": f"{prefix}-services",
                "restore_from": None,
            }),
        })  # fmt: skip
        try:
            apply(own)
            progress(f"publishing {len(events):,} simulated events to topics {prefix}.*")
            publisher = EventPublisher(own)
            for event in events:
                publisher.publish(event.value)
            publisher.flush(120)
            progress("running the features job over them (bounded) into the offline store")
            env = execution_environment(own, "features-training")
            features_job.build(env, own, bounded=True)
            env.execute("features-training")
            progress("reading each payment's features as of just before it (Feast point-in-time join)")
            return point_in_time_features(own, labelled_payments(events))
        finally:
            remove(own)


def _rules_metrics(test: pd.DataFrame) -> dict[str, float]:
    flagged = test["rules_decision"] != "APPROVE"
    return _metrics(test["label"].to_numpy(), test["rules_score"].to_numpy(), flagged.to_numpy(),
                    (test["rules_decision"] == "REJECT").to_numpy())  # fmt: skip


def _metrics(
    labels: NDArray[Any], scores: NDArray[Any], flagged: NDArray[Any], rejected: NDArray[Any]
) -> dict[str, float]:
    return {
        "precision": float(precision_score(labels, flagged, zero_division=0)),
        "recall": float(recall_score(labels, flagged, zero_division=0)),
        "f1": float(f1_score(labels, flagged, zero_division=0)),
        "reject_precision": float(precision_score(labels, rejected, zero_division=0)),
        "reject_recall": float(recall_score(labels, rejected, zero_division=0)),
        "roc_auc": float(roc_auc_score(labels, scores)),
        "pr_auc": float(average_precision_score(labels, scores)),
        "payments": float(len(labels)),
        "fraud": float(labels.sum()),
    }


def choose_thresholds(labels: NDArray[Any], scores: NDArray[Any]) -> Thresholds:
    """REVIEW from the score with the best F1 on the training payments; REJECT from the lowest score above which
    at least `REJECT_PRECISION` of them were fraud."""
    order = np.argsort(-scores)
    sorted_scores, sorted_labels = scores[order], labels[order]
    true_positives = np.cumsum(sorted_labels)
    precision = true_positives / np.arange(1, len(labels) + 1)
    recall = true_positives / max(1, labels.sum())
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0)
    review = float(sorted_scores[int(np.argmax(f1))])
    precise = np.nonzero(precision >= REJECT_PRECISION)[0]
    reject = float(sorted_scores[precise.max()]) if len(precise) else 1.0
    return Thresholds(review=min(review, reject), reject=max(review, reject))


def _window(frame: pd.DataFrame) -> dict[str, str]:
    def moment(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")

    return {"from": moment(int(frame["payment_time_ms"].min())), "to": moment(int(frame["payment_time_ms"].max()))}


def train(settings: Settings, options: TrainingOptions, progress: Progress = lambda _: None) -> tuple[FraudModel, Path]:
    profile = SimulationProfile(seed=options.seed, start_time_ms=options.start_time_ms, users=options.users,
                                fraud_share=options.fraud_share)  # fmt: skip
    progress(f"simulating {options.events:,} events (seed {options.seed}, fraud share {options.fraud_share})")
    events = list(generate(profile, options.events))
    dataset = _build_offline_history(settings, events, progress).sort_values("payment_time_ms", kind="stable")
    if dataset["label"].nunique() < 2:
        raise ValueError("the simulated history holds no fraud or only fraud: raise --events or --fraud-share")
    inputs = model_inputs(dataset)
    cut = int(len(dataset) * (1 - options.test_share))
    train_rows, test_rows = dataset.iloc[:cut], dataset.iloc[cut:]
    labels = dataset["label"].to_numpy()
    progress(f"training on {cut:,} payments, testing on the {len(test_rows):,} after them")
    pipeline = FraudModel.fit(inputs.iloc[:cut], labels[:cut])
    version = options.version or f"fraud-lr-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    card = ModelCard(
        version=version, inputs=list(inputs.columns), feast_features=FEAST_REFS,
        thresholds={"review": 0.0, "reject": 1.0}, training_window=_window(train_rows), test_window=_window(test_rows),
        metrics={}, data={"events": options.events, "seed": options.seed, "users": options.users,
                          "fraud_share": options.fraud_share, "payments": len(dataset),
                          "fraud_payments": int(labels.sum()),
                          "patterns": dataset.loc[dataset["label"] == 1, "pattern"].value_counts().to_dict()},
    )  # fmt: skip
    model = FraudModel(pipeline, card)
    thresholds = choose_thresholds(labels[:cut], model.scores(inputs.iloc[:cut]))
    card.thresholds = {"review": thresholds.review, "reject": thresholds.reject}
    model = FraudModel(pipeline, card)
    scores = model.scores(inputs.iloc[cut:])
    test_labels = labels[cut:]
    card.metrics = {
        "model": _metrics(test_labels, scores, scores >= thresholds.review, scores >= thresholds.reject),
        "rules": _rules_metrics(test_rows),
    }
    return model, model.save(settings.fraud_models_dir)


def summary(card: ModelCard) -> list[tuple[str, Any, Any]]:
    """(metric, model, rules) rows for printing."""
    model, rules = card.metrics["model"], card.metrics["rules"]
    return [(name, model[name], rules[name]) for name in model]
