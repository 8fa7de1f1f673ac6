"""A typed Avro consumer: at-least-once, and a record that cannot be read goes to the dead-letter topic."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from connectors.avro.errors import DeserializationError
from connectors.avro.serde import AvroDeserializer
from connectors.kafka.config import ClientConfig
from connectors.kafka.dead_letter import DeadLetterWriter


@dataclass(frozen=True)
class ConsumedRecord:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: str | None
    schema_id: int
    record_name: str
    value: dict[str, Any]
    size_bytes: int


class AvroConsumer:
    """Offsets are stored only after a record was handed out or dead-lettered: a crash re-reads, never skips.

    A record that cannot be read goes to `dead_letter`; without one it raises, unless `skip_unreadable` (read-only
    tools that count such records instead).
    """

    def __init__(
        self,
        client_config: ClientConfig,
        group_id: str,
        topics: Sequence[str],
        deserializer: AvroDeserializer,
        dead_letter: DeadLetterWriter | None,
        from_beginning: bool = True,
        skip_unreadable: bool = False,
        overrides: ClientConfig | None = None,
    ) -> None:
        self._consumer = Consumer(
            {
                **client_config,
                "group.id": group_id,
                "auto.offset.reset": "earliest" if from_beginning else "latest",
                "enable.auto.commit": "true",
                "enable.auto.offset.store": "false",
                "isolation.level": "read_committed",
                **(overrides or {}),
            }
        )
        self._topics = list(topics)
        self._consumer.subscribe(self._topics)
        self._deserializer = deserializer
        self._dead_letter = dead_letter
        self._pending: Message | None = None
        self._skip_unreadable = skip_unreadable
        self.dead_lettered = 0
        self.skipped = 0

    def _decode(self, message: Message) -> ConsumedRecord | None:
        try:
            decoded = self._deserializer.deserialize(message.value())
        except DeserializationError as error:
            if self._dead_letter is not None:
                self._dead_letter.send(message, str(error), error.reason_code)
                self.dead_lettered += 1
            elif self._skip_unreadable:
                self.skipped += 1
            else:
                raise
            self._consumer.store_offsets(message)
            return None
        key = message.key()
        return ConsumedRecord(
            topic=message.topic() or "",
            partition=message.partition() or 0,
            offset=message.offset() or 0,
            timestamp_ms=message.timestamp()[1],
            key=key.decode(errors="replace") if key is not None else None,
            schema_id=decoded.schema_id,
            record_name=decoded.record_name,
            value=decoded.value,
            size_bytes=len(message.value() or b"") + len(key or b""),
        )

    def _acknowledge_pending(self) -> None:
        if self._pending is not None:
            self._consumer.store_offsets(self._pending)
            self._pending = None

    def poll(self, timeout: float = 1.0) -> ConsumedRecord | None:
        """The next readable record; the previous one counts as processed once this is called again."""
        self._acknowledge_pending()
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            message = self._consumer.poll(remaining)
            if message is None:
                return None
            if (error := message.error()) is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(error)
            record = self._decode(message)
            if record is not None:
                self._pending = message
                return record
        return None

    def read_to_end(self, idle_timeout: float = 10.0) -> Iterator[ConsumedRecord]:
        """Every record up to the end offsets seen at the start, then stops (bounded reads, summaries, tests)."""
        targets = self.end_offsets()
        last_progress = time.monotonic()
        while True:
            record = self.poll(0.5)
            if record is not None:
                last_progress = time.monotonic()
                yield record
                continue
            if self._caught_up(targets):
                break
            if time.monotonic() - last_progress > idle_timeout:
                raise TimeoutError(
                    f"no progress for {idle_timeout:.0f} s with {self.lag(targets)} record(s) still to read"
                )
        self._acknowledge_pending()

    def end_offsets(self) -> dict[tuple[str, int], int]:
        metadata = self._consumer.list_topics(timeout=10)
        ends: dict[tuple[str, int], int] = {}
        for topic in self._topics:
            for partition in metadata.topics[topic].partitions:
                _low, high = self._consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
                ends[(topic, partition)] = high
        return ends

    def lag(self, targets: Mapping[tuple[str, int], int]) -> int:
        partitions = [TopicPartition(t, p) for (t, p) in targets]
        positions = self._consumer.position(partitions) if partitions else []
        total = 0
        for tp in positions:
            position = tp.offset if tp.offset >= 0 else 0
            total += max(0, targets[(tp.topic, tp.partition)] - position)
        return total

    def _caught_up(self, targets: Mapping[tuple[str, int], int]) -> bool:
        if not self._consumer.assignment():
            return all(end == 0 for end in targets.values())
        return self.lag(targets) == 0

    def seek_to_beginning(self) -> None:
        for tp in self._consumer.assignment():
            self._consumer.seek(TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING))

    def close(self) -> None:
        self._acknowledge_pending()
        self._consumer.close()

    def __enter__(self) -> AvroConsumer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
