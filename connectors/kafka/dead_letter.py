"""The dead-letter writer: a record we cannot use is kept, byte for byte, with where it came from and why."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from connectors.kafka.config import ClientConfig
from connectors.kafka.producer import AvroProducer

HEADER_PREFIX = "dlq."


RawHeaders = list[tuple[str, str | bytes | None]] | dict[str, str | bytes | None] | None


def _as_bytes(value: str | bytes | None) -> bytes:
    return value.encode() if isinstance(value, str) else (value or b"")


def _pairs(headers: RawHeaders) -> list[tuple[str, bytes]]:
    items = headers.items() if isinstance(headers, dict) else (headers or [])
    return [(name, _as_bytes(value)) for name, value in items]


def dead_letter_headers(message: Message, reason: str, reason_code: str) -> list[tuple[str, bytes]]:
    original = _pairs(message.headers())
    return [
        *original,
        (f"{HEADER_PREFIX}original.topic", (message.topic() or "").encode()),
        (f"{HEADER_PREFIX}original.partition", str(message.partition()).encode()),
        (f"{HEADER_PREFIX}original.offset", str(message.offset()).encode()),
        (f"{HEADER_PREFIX}original.timestamp", str(message.timestamp()[1]).encode()),
        (f"{HEADER_PREFIX}reason", reason.encode()),
        (f"{HEADER_PREFIX}reason.code", reason_code.encode()),
        (f"{HEADER_PREFIX}failed.at", str(int(time.time() * 1000)).encode()),
    ]


def parse_dead_letter_headers(headers: RawHeaders) -> Mapping[str, str]:
    """The `dlq.*` headers of a dead-lettered record, without the prefix."""
    return {
        name.removeprefix(HEADER_PREFIX): value.decode(errors="replace")
        for name, value in _pairs(headers)
        if name.startswith(HEADER_PREFIX)
    }


class DeadLetterWriter:
    def __init__(self, producer: AvroProducer, topic: str) -> None:
        self._producer = producer
        self.topic = topic

    def send(self, message: Message, reason: str, reason_code: str) -> None:
        """Returns once the broker has the record, so the caller may then commit past the original offset."""
        headers = dead_letter_headers(message, reason, reason_code)
        self._producer.produce_raw(self.topic, message.key(), message.value(), headers)
        self._producer.flush()


@dataclass(frozen=True)
class DeadLetter:
    key: bytes | None
    value: bytes | None
    headers: Mapping[str, str]  # the dlq.* headers, without the prefix


def read_dead_letters(client_config: ClientConfig, topic: str, timeout_s: float = 10.0) -> list[DeadLetter]:
    """Every record of a dead-letter topic as it is now (assigned partitions, nothing committed)."""
    consumer = Consumer(
        {**client_config, "group.id": f"dead-letter-reader-{uuid.uuid4()}", "enable.auto.commit": False,
         "enable.partition.eof": True}
    )  # fmt: skip
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s)
        partitions = [TopicPartition(topic, p, 0) for p in metadata.topics[topic].partitions]
        consumer.assign(partitions)
        pending = {tp.partition for tp in partitions}
        letters: list[DeadLetter] = []
        while pending:
            message = consumer.poll(timeout_s)
            if message is None:
                raise TimeoutError(
                    f"{topic}: partitions {sorted(pending)} did not reach their end in {timeout_s:.0f} s"
                )
            if (error := message.error()) is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    raise KafkaException(error)
                pending.discard(message.partition() or 0)
                continue
            letters.append(DeadLetter(message.key(), message.value(), parse_dead_letter_headers(message.headers())))
        return letters
    finally:
        consumer.close()
