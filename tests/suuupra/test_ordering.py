"""Events are keyed by user_id: each user's events arrive in the order they were sent."""

from __future__ import annotations

from collections import defaultdict

from suuupra.events import EventPublisher, event_consumer
from suuupra.settings import Settings
from suuupra.simulate.journeys import SimulationProfile, generate


def test_per_user_order_is_preserved_across_partitions(isolated: Settings) -> None:
    publisher = EventPublisher(isolated)
    sent: dict[str, list[str]] = defaultdict(list)
    for event in generate(SimulationProfile(seed=11, users=60), 6000):
        topic = publisher.publish(event.value)
        if topic == isolated.topics.clickstream:
            sent[event.value["user_id"]].append(event.value["event_id"])
    publisher.flush()

    received: dict[str, list[str]] = defaultdict(list)
    partitions_of_user: dict[str, set[int]] = defaultdict(set)
    with event_consumer(isolated, [isolated.topics.clickstream]) as consumer:
        for record in consumer.read_to_end():
            received[str(record.value["user_id"])].append(str(record.value["event_id"]))
            partitions_of_user[str(record.value["user_id"])].add(record.partition)

    assert received == sent
    assert all(len(p) == 1 for p in partitions_of_user.values()), "one user, one partition"
    assert len({p for ps in partitions_of_user.values() for p in ps}) > 1, "users spread over partitions"
