"""Keeps the outbox relay draining in the background of the services process."""

from __future__ import annotations

import logging
import threading

from services.outbox.relay import OutboxRelay
from suuupra.events import EventPublisher
from suuupra.settings import Settings

log = logging.getLogger(__name__)


class BackgroundRelay:
    def __init__(self, settings: Settings, interval_s: float = 0.2) -> None:
        self._relay = OutboxRelay(settings.postgres.dsn(), EventPublisher(settings))
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outbox-relay", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._relay.drain()
            except Exception:  # Kafka or PostgreSQL away: rows stay unpublished and are retried next round
                log.exception("outbox relay round failed; retrying")
            self._stop.wait(self._interval_s)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def __enter__(self) -> BackgroundRelay:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
