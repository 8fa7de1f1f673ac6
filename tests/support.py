"""Helpers shared by tests: sample events and the normalisation of values read back through fastavro."""

from __future__ import annotations

from connectors.avro.values import to_wire
from suuupra.simulate.journeys import SimulatedEvent, SimulationProfile, generate


def one_event_per_type(seed: int = 7, count: int = 20_000) -> dict[str, SimulatedEvent]:
    samples: dict[str, SimulatedEvent] = {}
    for event in generate(SimulationProfile(seed=seed, fraud_share=0.3), count):
        samples.setdefault(event.event_type, event)
    return samples


wire_value = to_wire
