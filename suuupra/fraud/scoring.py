"""Scoring a batch of payments in Python: their features from the online store as of just before each payment (as
training reads them), the model's score, decision and reasons, and the `payment.fraud_decided` event ready for Kafka.

This is the reference the fraud job's JVM function (connectors/jvm `FraudScore`, which runs the job's hot path) is
held to: tests/jobs/test_fraud_scoring.py compares the two payment by payment."""

from __future__ import annotations

import time
import uuid
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from connectors.avro.serde import AvroSerializer
from schemas import default_catalog
from services.commerce.saga import DECISION_NAMESPACE
from suuupra.events import make_registry
from suuupra.features.as_of import AsOfReader, AsOfRequest
from suuupra.fraud.model import FEAST_COLUMNS, VIEWS, load_model, model_inputs
from suuupra.settings import Settings

PRODUCER = "fraud-job"
DECISION_EVENT = "payment.fraud_decided"
# Columns the job passes in (payment.initiated) and gets back, in order.
PAYMENT_COLUMNS = ["event_id", "event_time", "user_id", "correlation_id", "payment_id", "order_id", "attempt",
                   "method", "amount_minor", "device_id"]  # fmt: skip
DECISION_COLUMNS = ["decision_id", "decision", "score", "reasons", "model_version", "decided_at", "record"]


def decision_id(payment_event_id: str) -> str:
    """Derived from the payment's event id as the jobs read it, in lowercase (as the stand-in does): a replay after a
    crash yields the same id, so every consumer keeps one decision per payment."""
    return str(uuid.uuid5(DECISION_NAMESPACE, payment_event_id.lower()))


def payment_features(reader: AsOfReader, payments: pd.DataFrame) -> dict[str, NDArray[np.float64]]:
    """Every view's features (Feast's `view__feature` columns) of each payment's user and device as of 1 ms before
    the payment: the moment training reads them at (suuupra/fraud/train.py). Missing rows are NaN."""
    requests: list[AsOfRequest] = []
    positions: list[int] = []
    for position, (user, device, at) in enumerate(
        zip(payments["user_id"], payments["device_id"], payments["event_time"], strict=True)
    ):
        entities = {"user_id": str(user), "device_id": str(device or "")}
        for view in VIEWS:
            if entities[view.join_key]:
                requests.append(AsOfRequest(view, entities[view.join_key], int(at) - 1))
                positions.append(position)
    columns = {name: np.full(len(payments), np.nan) for name in FEAST_COLUMNS}
    for request, position, row in zip(requests, positions, reader.read(requests), strict=True):
        if row is not None:
            for name, value in row.items():
                if value is not None:
                    columns[f"{request.view.name}__{name}"][position] = value
    return columns


class Scorer:
    """Loaded once per Python worker: the model, the feature reader and the Avro serializer."""

    def __init__(self, settings: Settings, version: str) -> None:
        self.model = load_model(settings, version)
        self.features = AsOfReader(settings)
        self.serializer = AvroSerializer(make_registry(settings))
        self.schema = default_catalog().schema_for(DECISION_EVENT).schema
        self.topic = settings.topics.payment
        self.reason_count = settings.fraud.reasons

    def decide(self, payments: pd.DataFrame) -> pd.DataFrame:
        frame: dict[str, Any] = payment_features(self.features, payments)
        frame.update(
            payment_time_ms=payments["event_time"].to_numpy(dtype="float64"),
            amount_minor=payments["amount_minor"].to_numpy(dtype="float64"),
            attempt=payments["attempt"].to_numpy(dtype="float64"), method=payments["method"].to_numpy(),
        )  # fmt: skip
        scores, reasons = self.model.explain(model_inputs(frame), self.reason_count)
        decisions = self.model.thresholds.decide(scores)
        decided_at = int(time.time() * 1000)
        out: dict[str, list[Any]] = {name: [] for name in DECISION_COLUMNS}
        for position, (event_id, correlation_id, user_id, payment_id, order_id) in enumerate(zip(
            payments["event_id"], payments["correlation_id"], payments["user_id"], payments["payment_id"],
            payments["order_id"], strict=True,
        )):  # fmt: skip
            identifier = decision_id(str(event_id))
            event = {
                "event_id": identifier, "event_type": DECISION_EVENT, "event_time": decided_at,
                "producer": PRODUCER, "correlation_id": str(correlation_id), "user_id": str(user_id),
                "payment_id": str(payment_id), "order_id": str(order_id),
                "decision": decisions[position], "score": float(scores[position]),
                "model_version": self.model.version, "reasons": reasons[position],
            }  # fmt: skip
            out["decision_id"].append(identifier)
            out["decision"].append(decisions[position])
            out["score"].append(float(scores[position]))
            out["reasons"].append("; ".join(reasons[position]))
            out["model_version"].append(self.model.version)
            out["decided_at"].append(decided_at)
            out["record"].append(self.serializer.serialize(self.topic, self.schema, event))
        return pd.DataFrame(out, index=payments.index)
