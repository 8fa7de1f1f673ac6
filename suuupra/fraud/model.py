"""The fraud model: what it reads, how it scores and explains, and how it is saved and found again.

Training (`suuupra fraud train`) and scoring (jobs/fraud.py) build the model's input with the same function,
`model_inputs`, from the same Feast features plus what the payment itself says, so they cannot drift apart.
The model is a logistic regression over standardized inputs: its score is calibrated enough for thresholds, and each
input's contribution to a score is exact (coefficient x standardized value), which gives every decision its reasons.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from feature_store.catalog import DEVICE_ACTIVITY, USER_ACCOUNT, USER_ENGAGEMENT, USER_PAYMENTS
from suuupra.features.store import feature_refs
from suuupra.settings import Settings

VIEWS = (USER_ENGAGEMENT, USER_PAYMENTS, USER_ACCOUNT, DEVICE_ACTIVITY)
# Feast's full names (`view__feature`), as `get_online_features` and `get_historical_features` return them.
FEAST_REFS = feature_refs(VIEWS)
FEAST_COLUMNS = [ref.replace(":", "__") for ref in FEAST_REFS]
# What the payment itself says (payment.initiated).
REQUEST_COLUMNS = ["payment_time_ms", "amount_minor", "attempt", "method"]
DECISIONS = ("APPROVE", "REVIEW", "REJECT")
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")

# Counts, sums and ages span orders of magnitude: their logarithm is what a linear model can weigh.
_LOG_COUNTS = [
    f"user_payments__{name}_{window}"
    for name in ("payments", "amount_minor", "instruments", "devices", "failed")
    for window in ("5m", "1h", "1d")
] + [f"user_engagement__{name}_{window}" for name in ("views", "watch_seconds", "contents") for window in ("1h", "1d")]
_LOG_COUNTS += ["device_activity__users_1d", "device_activity__sessions_1d", "device_activity__payments_1d"]


def model_inputs(frame: pd.DataFrame) -> pd.DataFrame:
    """The model's inputs from the Feast columns and the request columns (missing features: no history)."""
    data = frame.reindex(columns=FEAST_COLUMNS + REQUEST_COLUMNS)
    numeric = data[FEAST_COLUMNS].apply(pd.to_numeric, errors="coerce").astype("float64")
    now = pd.to_numeric(data["payment_time_ms"], errors="coerce").astype("float64")
    amount = pd.to_numeric(data["amount_minor"], errors="coerce").fillna(0).astype("float64")
    inputs = pd.DataFrame(index=frame.index)
    inputs["amount_log"] = np.log1p(amount.clip(lower=0))
    inputs["attempt"] = pd.to_numeric(data["attempt"], errors="coerce").fillna(1).astype("float64")
    inputs["card"] = (data["method"] == "CARD").astype("float64")
    for column in _LOG_COUNTS:
        inputs[column.split("__", 1)[1] + "_log"] = np.log1p(numeric[column].fillna(0).clip(lower=0))
    payments_1d = numeric["user_payments__payments_1d"].fillna(0)
    usual = numeric["user_payments__amount_minor_1d"].fillna(0) / payments_1d.where(payments_1d > 0)
    # How many times the user's usual payment of the day this one is (0: no payment that day).
    inputs["amount_vs_usual_log"] = np.log1p((amount / usual).fillna(0))

    def age_log(epoch_ms: pd.Series) -> pd.Series:
        return np.log1p(((now - epoch_ms) / 1000).clip(lower=0)).fillna(0)

    registered = numeric["user_account__registered_at_ms"]
    inputs["account_unknown"] = registered.isna().astype("float64")
    inputs["account_age_log"] = age_log(registered)
    first_seen = numeric["device_activity__first_seen_ms"]
    inputs["device_unknown"] = first_seen.isna().astype("float64")
    inputs["device_age_log"] = age_log(first_seen)
    # A device much younger than its account: the account is being used from somewhere new.
    inputs["device_younger_than_account"] = (inputs["account_age_log"] - inputs["device_age_log"]).clip(lower=0)
    inputs["since_last_payment_activity_log"] = age_log(numeric["user_payments__as_of_ms"])
    inputs["since_last_engagement_log"] = age_log(numeric["user_engagement__as_of_ms"])
    return inputs


@dataclass(frozen=True)
class Thresholds:
    review: float
    reject: float

    def decide(self, scores: NDArray[Any]) -> list[str]:
        return ["REJECT" if s >= self.reject else "REVIEW" if s >= self.review else "APPROVE" for s in scores]


@dataclass
class ModelCard:
    """What is saved beside the model (metadata.json)."""

    version: str
    inputs: list[str]
    feast_features: list[str]
    thresholds: dict[str, float]
    training_window: dict[str, str]
    test_window: dict[str, str]
    metrics: dict[str, dict[str, float]]
    data: dict[str, Any] = field(default_factory=dict)


class FraudModel:
    def __init__(self, pipeline: Pipeline, card: ModelCard) -> None:
        self.pipeline = pipeline
        self.card = card
        self.thresholds = Thresholds(card.thresholds["review"], card.thresholds["reject"])
        regression: LogisticRegression = pipeline.named_steps["regression"]
        self._weights = regression.coef_[0]

    @property
    def version(self) -> str:
        return self.card.version

    @staticmethod
    def fit(inputs: pd.DataFrame, labels: NDArray[Any]) -> Pipeline:
        pipeline = Pipeline([
            ("scale", StandardScaler()),
            ("regression", LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced")),
        ])  # fmt: skip
        pipeline.fit(inputs.to_numpy(), labels)
        return pipeline

    def scores(self, inputs: pd.DataFrame) -> NDArray[Any]:
        result: NDArray[Any] = self.pipeline.predict_proba(inputs[self.card.inputs].to_numpy())[:, 1]
        return result

    def reasons(self, inputs: pd.DataFrame, count: int) -> list[list[str]]:
        """Per row, the inputs that raised the score most: `name=value (+contribution to the log-odds)`."""
        values = inputs[self.card.inputs].to_numpy()
        scaled = self.pipeline.named_steps["scale"].transform(values)
        contributions = scaled * self._weights
        reasons: list[list[str]] = []
        for row, row_contributions in zip(values, contributions, strict=True):
            order = np.argsort(-row_contributions)[:count]
            reasons.append([f"{self.card.inputs[i]}={row[i]:.3g} (+{row_contributions[i]:.2f})"
                            for i in order if row_contributions[i] > 0])  # fmt: skip
        return reasons

    def save(self, folder: Path) -> Path:
        target = folder / self.version
        target.mkdir(parents=True, exist_ok=False)
        joblib.dump(self.pipeline, target / "model.joblib")
        (target / "metadata.json").write_text(json.dumps(asdict(self.card), indent=2) + "\n", encoding="utf-8")
        return target


class ModelNotFoundError(LookupError):
    """No saved model matches; the message says how to get one."""


def saved_versions(settings: Settings) -> list[str]:
    folder = settings.fraud_models_dir
    if not folder.is_dir():
        return []
    return sorted(
        p.name for p in folder.iterdir() if (p / "metadata.json").is_file() and (p / "model.joblib").is_file()
    )


def load_model(settings: Settings, version: str | None = None) -> FraudModel:
    """The saved model of that version (default: the setting fraud.model_version; "latest": the newest saved)."""
    wanted = version or settings.fraud.model_version
    versions = saved_versions(settings)
    if wanted == "latest":
        if not versions:
            raise ModelNotFoundError(
                f"no fraud model saved in {settings.fraud_models_dir}: run `suuupra fraud train` first"
            )
        wanted = versions[-1]  # versions are named by their UTC training time, so the newest sorts last
    if wanted not in versions:
        raise ModelNotFoundError(
            f"no fraud model '{wanted}' in {settings.fraud_models_dir}; saved: {', '.join(versions) or 'none'}"
        )
    target = settings.fraud_models_dir / wanted
    card = ModelCard(**json.loads((target / "metadata.json").read_text(encoding="utf-8")))
    return FraudModel(joblib.load(target / "model.joblib"), card)
