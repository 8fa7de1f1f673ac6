"""A typed Avro producer: idempotent, acks=all, every record keyed (by `user_id` for domain events)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from connectors.avro.schema import AvroSchema
from connectors.avro.serde import AvroSerializer
from connectors.kafka.config import ClientConfig

Headers = Sequence[tuple[str, bytes | None]]

# Ordering per key survives retries only with idempotence; acks=all makes a record durable on every in-sync replica.
RELIABLE_PRODUCER = {
    "enable.idempotence": "true",
    "acks": "all",
    "max.in.flight.requests.per.connection": "5",
    "compression.type": "lz4",
    "linger.ms": "20",
    "batch.size": str(512 * 1024),
}


class DeliveryError(RuntimeError):
    """Records the broker did not acknowledge."""

    def __init__(self, failures: list[tuple[str, KafkaError]]) -> None:
        first_topic, first_error = failures[0]
        super().__init__(f"{len(failures)} record(s) not delivered; first: topic {first_topic}: {first_error.str()}")
        self.failures = failures


class AvroProducer:
    def __init__(
        self, client_config: ClientConfig, serializer: AvroSerializer, overrides: ClientConfig | None = None
    ) -> None:
        self._producer = Producer({**client_config, **RELIABLE_PRODUCER, **(overrides or {})})
        self.serializer = serializer
        self._failures: list[tuple[str, KafkaError]] = []
        self.delivered = 0
        self.bytes_sent = 0

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._failures.append((message.topic() or "?", error))
        else:
            self.delivered += 1

    def produce_raw(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers = (),
        timestamp_ms: int | None = None,
    ) -> None:
        """Sends bytes as they are (the dead-letter writer and malformed-record tests need exactly that)."""
        # 0 lets librdkafka stamp the send time.
        timestamp = timestamp_ms if timestamp_ms is not None else 0
        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key, headers=list(headers), on_delivery=self._on_delivery,
                    timestamp=timestamp,
                )  # fmt: skip
                break
            except BufferError:
                # The local queue is full: serve delivery reports until there is room instead of failing.
                self._producer.poll(0.05)
        self.bytes_sent += len(value or b"") + len(key or b"")
        self._producer.poll(0)

    def produce(
        self,
        topic: str,
        key: str,
        schema: AvroSchema,
        value: Mapping[str, Any],
        headers: Headers = (),
        timestamp_ms: int | None = None,
    ) -> None:
        self.produce_raw(topic, key.encode(), self.serializer.serialize(topic, schema, value), headers, timestamp_ms)

    def flush(self, timeout: float = 30.0) -> None:
        """Waits for every acknowledgement; raises `DeliveryError` if any record was refused."""
        remaining = self._producer.flush(timeout)
        if remaining:
            raise TimeoutError(f"{remaining} record(s) still unacknowledged after {timeout:.0f} s: is Kafka up?")
        if self._failures:
            failures, self._failures = self._failures, []
            raise DeliveryError(failures)

    def __enter__(self) -> AvroProducer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.flush()
