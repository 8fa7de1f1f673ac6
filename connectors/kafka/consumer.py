"""A typed Avro consumer: at-least-once, and a record that cannot be read goes to the dead-letter topic."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

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
    headers: dict[str, bytes] = field(default_factory=dict)


def _headers(message: Message) -> dict[str, bytes]:
    # confluent-kafka's stubs say list[str]; it gives (name, bytes or None) pairs.
    pairs: list[tuple[str, bytes | str | None]] = list(message.headers() or [])  # type: ignore[arg-type]
    return {name: value.encode() if isinstance(value, str) else value for name, value in pairs if value is not None}


class AvroConsumer:
    """At-least-once: a record's offset is stored (and later committed) only once the next `poll` shows the caller
    is done with it, or once it is safely in the dead-letter topic. A crash or an exception re-reads, never skips.

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
                # End-of-partition events tell `read_to_end` a partition is drained, whatever its offsets look like.
                "enable.partition.eof": True,
                **(overrides or {}),
            }
        )
        self._topics = list(topics)
        self._consumer.subscribe(self._topics)
        self._deserializer = deserializer
        self._dead_letter = dead_letter
        self._pending: Message | None = None
        self._drained: set[tuple[str, int]] = set()
        self._progress = 0
        self._skip_unreadable = skip_unreadable
        self.dead_lettered = 0
        self.skipped = 0

    def _store(self, message: Message) -> None:
        try:
            self._consumer.store_offsets(message)
        except KafkaException as error:
            # The partition was revoked in a rebalance: its new owner reads the record again.
            if error.args[0].code() != KafkaError._STATE:
                raise

    def _rewind(self, message: Message) -> None:
        """librdkafka has moved past the message already: go back so a caller that retries gets it again."""
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        assert topic is not None and partition is not None and offset is not None
        self._consumer.seek(TopicPartition(topic, partition, offset))

    def _decode(self, message: Message) -> ConsumedRecord | None:
        try:
            decoded = self._deserializer.deserialize(message.value())
        except DeserializationError as error:
            try:
                if self._dead_letter is not None:
                    self._dead_letter.send(message, str(error), error.reason_code)
                    self.dead_lettered += 1
                elif self._skip_unreadable:
                    self.skipped += 1
                else:
                    raise
            except Exception:
                self._rewind(message)
                raise
            self._store(message)
            return None
        except Exception:
            # The registry is down, or similar: not the record's fault, so it must not be skipped.
            self._rewind(message)
            raise
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
            headers=_headers(message),
        )

    def _acknowledge_pending(self) -> None:
        if self._pending is not None:
            self._store(self._pending)
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
                    self._drained.add((message.topic() or "", message.partition() or 0))
                    continue
                raise KafkaException(error)
            self._drained.discard((message.topic() or "", message.partition() or 0))
            self._progress += 1
            record = self._decode(message)
            if record is not None:
                self._pending = message
                return record
        return None

    def dead_letter_last(self, reason: str, reason_code: str) -> None:
        """The record last handed out cannot be processed (not a passing outage: the record itself): keep it in the
        dead-letter topic with the reason, and count it as done so one record never stalls the consumer."""
        if self._pending is None:
            raise RuntimeError("no record handed out to dead-letter")
        if self._dead_letter is None:
            raise RuntimeError("this consumer has no dead-letter topic")
        self._dead_letter.send(self._pending, reason, reason_code)
        self.dead_lettered += 1
        self._acknowledge_pending()

    def read_to_end(self, idle_timeout: float = 10.0) -> Iterator[ConsumedRecord]:
        """Every record up to the end of each partition, then stops (bounded reads, summaries, tests).

        Meant for a consumer that is alone in its group (the default: a fresh group), so that it owns every
        partition; a partition counts as drained when librdkafka reports its end.
        """
        partitions = self.partitions()
        last_progress, seen = time.monotonic(), self._progress
        while not partitions <= self._drained:
            record = self.poll(0.5)
            if record is not None:
                yield record
            if self._progress != seen:
                last_progress, seen = time.monotonic(), self._progress
            elif time.monotonic() - last_progress > idle_timeout:
                left = sorted(partitions - self._drained)
                raise TimeoutError(f"no progress for {idle_timeout:.0f} s; partitions not drained: {left[:5]}")
        self._acknowledge_pending()

    def partitions(self) -> set[tuple[str, int]]:
        metadata = self._consumer.list_topics(timeout=10)
        return {(topic, partition) for topic in self._topics for partition in metadata.topics[topic].partitions}

    def close(self) -> None:
        """Commits the last record handed out as processed; leave by an exception to have it read again."""
        self._acknowledge_pending()
        self._consumer.close()

    def __enter__(self) -> AvroConsumer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_exc: object) -> None:
        if exc_type is not None:
            # The caller failed while processing the last record: it must be read again.
            self._pending = None
        self.close()
