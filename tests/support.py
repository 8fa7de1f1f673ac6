"""Helpers shared by tests: sample events and the normalisation of values read back through fastavro."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from suuupra.simulate.journeys import SimulatedEvent, SimulationProfile, generate


def one_event_per_type(seed: int = 7, count: int = 20_000) -> dict[str, SimulatedEvent]:
    samples: dict[str, SimulatedEvent] = {}
    for event in generate(SimulationProfile(seed=seed, fraud_share=0.3), count):
        samples.setdefault(event.event_type, event)
    return samples


def wire_value(value: Any) -> Any:
    """fastavro reads logical types as Python objects; the producer may hand it their wire forms."""
    if isinstance(value, dt.datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {key: wire_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [wire_value(item) for item in value]
    return value
