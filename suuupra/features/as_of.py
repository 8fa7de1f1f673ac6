"""Features as of a moment, read the way training reads them, for serving.

Training takes each payment's features from Feast's point-in-time join over the offline store: per view, the entity's
newest row at or before the moment (ties: the higher version). The online store's newest row is not that row once the
features job has folded in the payment itself or anything later (a replayed backlog, or simply the features job
winning the race), so serving reads the same rule from two places the features job writes:

1. the entity's recent rows in Redis (the `feast-redis` sink's history: a sorted set per entity and view, score the
   row's time, member `<version>:<values>`), one pipelined round trip for a whole bundle;
2. when the moment is before every row still kept there and the oldest kept row is not the entity's first
   (version 1), the offline table in PostgreSQL, after waiting until the offline sink has written every version
   below the oldest kept one.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
import redis
from psycopg import sql

from feature_store.catalog import AS_OF_FEATURE, View
from suuupra.settings import Settings

log = logging.getLogger(__name__)

FeatureRow = dict[str, int | None]
_STRING = 2  # feast.types.ValueType.STRING
_RETRY_S = 0.05


def entity_key(join_key: str, value: str, project: str) -> bytes:
    """Feast's Redis key of a string entity (`serialize_entity_key`, version 3) followed by the project, as the
    `feast-redis` sink writes it (connectors/jvm FeastLayout)."""
    name, data = join_key.encode(), value.encode()
    return (
        struct.pack("<iii", 1, _STRING, len(name)) + name + struct.pack("<ii", _STRING, len(data)) + data
        + project.encode()
    )  # fmt: skip


def history_key(view: View, entity: str, project: str) -> bytes:
    return f"asof:{view.name}:".encode() + entity_key(view.join_key, entity, project)


@dataclass(frozen=True)
class AsOfRequest:
    view: View
    entity: str
    moment_ms: int  # the row wanted is the newest with as_of <= moment_ms (ties: the higher version)


def _parse(view: View, member: bytes) -> tuple[int, FeatureRow]:
    version, _, values = member.partition(b":")
    row = {name: (int(text) if text else None) for name, text in zip(view.features, values.split(b","), strict=True)}
    return int(version), row


class AsOfReader:
    """One per scoring worker: a Redis client and, when a moment is older than the kept rows, a PostgreSQL
    connection."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        password = settings.redis.password.get_secret_value() if settings.redis.password else None
        self.redis = redis.Redis(
            host=settings.redis.host, port=settings.redis.port, db=settings.redis.db, password=password
        )
        self.project = settings.features.project
        self.offline_reads = 0
        self._postgres: psycopg.Connection[Any] | None = None

    def read(self, requests: Sequence[AsOfRequest]) -> list[FeatureRow | None]:
        """Each request's row (None: the entity had no row at or before the moment)."""
        keys = [history_key(r.view, r.entity, self.project) for r in requests]
        pipeline = self.redis.pipeline(transaction=False)
        for key, request in zip(keys, requests, strict=True):
            pipeline.zrevrangebyscore(key, request.moment_ms, "-inf", start=0, num=1)
        rows: list[FeatureRow | None] = [None] * len(requests)
        before_kept: list[int] = []
        for index, reply in enumerate(pipeline.execute()):
            if reply:
                rows[index] = _parse(requests[index].view, reply[0])[1]
            else:
                before_kept.append(index)
        if before_kept:
            # The moment is before every kept row: the oldest kept one says whether older rows ever existed.
            pipeline = self.redis.pipeline(transaction=False)
            for index in before_kept:
                pipeline.zrange(keys[index], 0, 0)
            by_view: dict[str, list[tuple[int, int]]] = {}
            for index, reply in zip(before_kept, pipeline.execute(), strict=True):
                oldest_kept = _parse(requests[index].view, reply[0])[0] if reply else 1
                if oldest_kept > 1:
                    by_view.setdefault(requests[index].view.name, []).append((index, oldest_kept))
            deadline = time.monotonic() + self.settings.features.offline_catch_up_s
            for pending in by_view.values():
                self._from_offline(requests, pending, rows, deadline)
        return rows

    def _from_offline(
        self,
        requests: Sequence[AsOfRequest],
        pending: list[tuple[int, int]],
        rows: list[FeatureRow | None],
        deadline: float,
    ) -> None:
        view = requests[pending[0][0]].view
        below = dict(pending)
        while True:
            found = self._query(view, [(requests[i].entity, requests[i].moment_ms, below[i], i) for i in below])
            complete = all(written >= below[index] - 1 for index, written, _ in found)
            if complete or time.monotonic() >= deadline:
                break
            time.sleep(_RETRY_S)
        if not complete:
            log.warning("%s: the offline store is still behind the online history after %.1f s; serving its newest "
                        "rows as of each moment", view.name, self.settings.features.offline_catch_up_s)  # fmt: skip
        self.offline_reads += len(pending)
        for index, _, row in found:
            rows[index] = row

    def _query(self, view: View, wanted: list[tuple[str, int, int, int]]) -> list[tuple[int, int, FeatureRow | None]]:
        """Per wanted (entity, moment, oldest kept version, index): the index, how many versions below that one the
        offline table has (a version written twice, by a replay that interleaved the topics otherwise, counts
        once), and its newest row at or before the moment among them."""
        names = [n for n in view.features if n != AS_OF_FEATURE]
        table = sql.Identifier(self.settings.features.offline_schema, view.name)
        key, as_of = sql.Identifier(view.join_key), sql.Identifier(AS_OF_FEATURE)
        query = sql.SQL("""
            SELECT w.i,
                   (SELECT count(DISTINCT version) FROM {table} t WHERE t.{key} = w.entity AND t.version < w.below),
                   h.{as_of}, {columns}
            FROM unnest(%s::text[], %s::bigint[], %s::bigint[], %s::int[]) AS w(entity, moment, below, i)
            LEFT JOIN LATERAL (
                SELECT * FROM {table} t
                WHERE t.{key} = w.entity AND t.{as_of} <= w.moment AND t.version < w.below
                ORDER BY t.{as_of} DESC, t.version DESC LIMIT 1) h ON true""").format(
            table=table, key=key, as_of=as_of,
            columns=sql.SQL(", ").join(sql.SQL("h.{}").format(sql.Identifier(n)) for n in names),
        )  # fmt: skip
        arguments = [list(column) for column in zip(*wanted, strict=True)]
        try:
            records = self._connection().execute(query, arguments).fetchall()
        except psycopg.OperationalError:
            self.close_offline()  # a restarted server: one new connection, then the error is the job's
            records = self._connection().execute(query, arguments).fetchall()
        result: list[tuple[int, int, FeatureRow | None]] = []
        for record in records:
            index, written, as_of_ms, *values = record
            row = None if as_of_ms is None else {**dict(zip(names, values, strict=True)), AS_OF_FEATURE: as_of_ms}
            result.append((index, written, row))
        return result

    def _connection(self) -> psycopg.Connection[Any]:
        if self._postgres is None or self._postgres.closed:
            postgres = self.settings.postgres
            self._postgres = psycopg.connect(postgres.dsn(postgres.database), autocommit=True)
        return self._postgres

    def close_offline(self) -> None:
        if self._postgres is not None:
            self._postgres.close()
            self._postgres = None

    def close(self) -> None:
        self.redis.close()
        self.close_offline()
