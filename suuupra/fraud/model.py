"""The fraud model: what it reads, how it scores and explains, and how it is saved and found again.

Training (`suuupra fraud train`) and scoring (jobs/fraud.py) build the model's input with the same function,
`model_inputs`, from the same Feast features plus what the payment itself says, so they cannot drift apart.
The model is a logistic regression over standardized inputs: its score is calibrated enough for thresholds, and each
input's contribution to a score is exact (coefficient x standardized value), which gives every decision its reasons.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

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
LOG_COUNTS = [
    f"user_payments__{name}_{window}"
    for name in ("payments", "amount_minor", "instruments", "devices", "failed")
    for window in ("5m", "1h", "1d")
] + [f"user_engagement__{name}_{window}" for name in ("views", "watch_seconds", "contents") for window in ("1h", "1d")]
LOG_COUNTS += ["device_activity__users_1d", "device_activity__sessions_1d", "device_activity__payments_1d"]


def log_count_input(column: str) -> str:
    """The input holding the logarithm of a Feast count column (`view__feature` -> `feature_log`)."""
    return column.split("__", 1)[1] + "_log"


Columns: TypeAlias = "pd.DataFrame | Mapping[str, Any]"


def _rows(frame: Columns) -> int:
    return len(frame) if isinstance(frame, pd.DataFrame) else len(next(iter(frame.values())))


def _floats(frame: Columns, column: str) -> NDArray[np.float64]:
    """A column as float64 (missing column or value, or not a number: NaN)."""
    if column not in frame:
        return np.full(_rows(frame), np.nan)
    values = frame[column]
    if isinstance(values, np.ndarray) and values.dtype == np.float64:
        return values
    converted: NDArray[np.float64] = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(
        dtype="float64", na_value=np.nan
    )
    return converted


def model_inputs(frame: Columns) -> pd.DataFrame:
    """The model's inputs from the Feast columns and the request columns (missing features: no history), given as a
    DataFrame (training) or as numpy columns (the fraud job).

    Computed on numpy arrays and assembled once: the fraud job calls this for every bundle of a few payments, where
    pandas' per-column operations cost ~15 ms a call whatever the rows."""
    now = _floats(frame, "payment_time_ms")
    amount = np.nan_to_num(_floats(frame, "amount_minor"), nan=0.0)
    method = np.asarray(frame["method"]) if "method" in frame else np.full(_rows(frame), None)
    inputs: dict[str, NDArray[np.float64]] = {
        "amount_log": np.log1p(np.clip(amount, 0, None)),
        "attempt": np.nan_to_num(_floats(frame, "attempt"), nan=1.0),
        "card": (method == "CARD").astype("float64"),
    }
    for column in LOG_COUNTS:
        counts = np.nan_to_num(_floats(frame, column), nan=0.0)
        inputs[log_count_input(column)] = np.log1p(np.clip(counts, 0, None))
    payments_1d = np.nan_to_num(_floats(frame, "user_payments__payments_1d"), nan=0.0)
    amount_1d = np.nan_to_num(_floats(frame, "user_payments__amount_minor_1d"), nan=0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        usual = amount_1d / np.where((payments_1d > 0) & (amount_1d > 0), payments_1d, np.nan)
        # How many times the user's usual payment of the day this one is (0: no payment, or only free ones, that
        # day: an infinite input would stop the model).
        inputs["amount_vs_usual_log"] = np.log1p(np.nan_to_num(np.clip(amount / usual, 0, None), nan=0.0))

    def age_log(epoch_ms: NDArray[np.float64]) -> NDArray[np.float64]:
        with np.errstate(invalid="ignore"):
            return np.nan_to_num(np.log1p(np.clip((now - epoch_ms) / 1000, 0, None)), nan=0.0, posinf=np.inf)

    registered = _floats(frame, "user_account__registered_at_ms")
    inputs["account_unknown"] = np.isnan(registered).astype("float64")
    inputs["account_age_log"] = age_log(registered)
    first_seen = _floats(frame, "device_activity__first_seen_ms")
    inputs["device_unknown"] = np.isnan(first_seen).astype("float64")
    inputs["device_age_log"] = age_log(first_seen)
    # A device much younger than its account: the account is being used from somewhere new.
    inputs["device_younger_than_account"] = np.clip(inputs["account_age_log"] - inputs["device_age_log"], 0, None)
    inputs["since_last_payment_activity_log"] = age_log(_floats(frame, "user_payments__as_of_ms"))
    inputs["since_last_engagement_log"] = age_log(_floats(frame, "user_engagement__as_of_ms"))
    return pd.DataFrame(inputs, index=frame.index if isinstance(frame, pd.DataFrame) else None)


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
        return self.explain(inputs, count)[1]

    def explain(self, inputs: pd.DataFrame, count: int) -> tuple[NDArray[Any], list[list[str]]]:
        """The scores and the reasons at once: the inputs are scaled once for both (the fraud job's path)."""
        values = inputs[self.card.inputs].to_numpy()
        scaled = self.pipeline.named_steps["scale"].transform(values)
        scores: NDArray[Any] = self.pipeline.named_steps["regression"].predict_proba(scaled)[:, 1]
        return scores, self._reasons(values, scaled * self._weights, count)

    def _reasons(self, values: NDArray[Any], contributions: NDArray[Any], count: int) -> list[list[str]]:
        reasons: list[list[str]] = []
        for row, row_contributions in zip(values, contributions, strict=True):
            order = np.argsort(-row_contributions)[:count]
            reasons.append([f"{self.card.inputs[i]}={row[i]:.3g} (+{row_contributions[i]:.2f})"
                            for i in order if row_contributions[i] > 0])  # fmt: skip
        return reasons

    def linear_parameters(self) -> dict[str, Any]:
        """What scoring needs outside Python (the fraud job's JVM function): inputs in order, the scaler's mean and
        scale, the regression's weights and intercept, and the thresholds."""
        scaler: StandardScaler = self.pipeline.named_steps["scale"]
        regression: LogisticRegression = self.pipeline.named_steps["regression"]
        return {
            "version": self.version, "inputs": list(self.card.inputs),
            "mean": [float(v) for v in scaler.mean_], "scale": [float(v) for v in scaler.scale_],
            "weights": [float(v) for v in regression.coef_[0]], "intercept": float(regression.intercept_[0]),
            "review": self.thresholds.review, "reject": self.thresholds.reject,
        }  # fmt: skip

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
