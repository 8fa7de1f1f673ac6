"""The co-watch graph in FalkorDB: "users who watched this also watched".

Model: a node `(:Content {id})` per item; an edge `[:CO_WATCHED {day, users}]` per pair of items (stored once, from
the smaller id to the larger) and day: how many distinct users watched both within the co-watch window, the later of
the two views on that day (UTC). The job upserts these counts (absolute values, so a replay rewrites the same ones).

Time decay is applied when asked, relative to the moment of the question: a day's co-watchers count
`2^(-(at - day) / half_life)`, so recent co-watching outweighs old and the answer follows current taste; exact
integer counts are stored, so no decayed float is ever summed twice or in another order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import redis

from suuupra.search.engine import command
from suuupra.settings import Settings

DAY_MS = 86_400_000

# The job's sink runs this for each batch, with the batch's rows (lo, hi, day, users, deleted) as $rows.
UPSERT_QUERY = (
    "UNWIND $rows AS r "
    "MERGE (a:Content {id: r.lo}) MERGE (b:Content {id: r.hi}) "
    "MERGE (a)-[e:CO_WATCHED {day: r.day}]->(b) SET e.users = r.users"
)

ALSO_WATCHED_QUERY = (
    "MATCH (a:Content {id: $id})-[e:CO_WATCHED]-(b:Content) WHERE e.day <= $at "
    "WITH b, sum(e.users * exp($rate * (e.day - $at))) AS score "
    "RETURN b.id, score ORDER BY score DESC, b.id ASC LIMIT $limit"
)


@dataclass(frozen=True)
class CoWatched:
    content_id: str
    score: float  # co-watchers, each weighted by the decay of its day


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return repr(value)


class CoWatchGraph:
    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.client = client
        self.name = settings.search.graph
        self.rate = math.log(2) / settings.search.cowatch_half_life_days  # per day

    def exists(self) -> bool:
        return self.name.encode() in command(self.client, "GRAPH.LIST")

    def ensure(self) -> None:
        """The graph and its index on content ids (idempotent)."""
        if self.exists():
            return
        try:
            command(self.client, "GRAPH.QUERY", self.name, "CREATE INDEX FOR (c:Content) ON (c.id)")
        except redis.ResponseError as error:
            if "already indexed" not in str(error).lower():
                raise

    def drop(self) -> None:
        if self.exists():
            command(self.client, "GRAPH.DELETE", self.name)

    def query(self, cypher: str, **parameters: Any) -> list[list[Any]]:
        prefix = " ".join(f"{name}={_literal(value)}" for name, value in parameters.items())
        reply = command(self.client, "GRAPH.QUERY", self.name, f"CYPHER {prefix} {cypher}" if prefix else cypher)
        return list(reply[1]) if len(reply) == 3 else []

    def upsert(self, edges: dict[tuple[str, str, int], int]) -> None:
        """Writes co-watch counts with the job's own query (for tools and tests; the job writes through its sink)."""
        rows = ", ".join(
            f"{{lo: {_literal(low)}, hi: {_literal(high)}, day: {day}, users: {users}, deleted: false}}"
            for (low, high, day), users in edges.items()
        )
        self.ensure()
        command(self.client, "GRAPH.QUERY", self.name, f"CYPHER rows=[{rows}] {UPSERT_QUERY}")

    def also_watched(self, content_id: str, at_ms: int, limit: int = 10) -> list[CoWatched]:
        """The items most co-watched with this one, decayed to `at_ms`; none when the graph does not exist yet."""
        if not self.exists():
            return []
        rows = self.query(ALSO_WATCHED_QUERY, id=content_id, at=at_ms / DAY_MS, rate=self.rate, limit=limit)
        return [CoWatched(row[0].decode(), float(row[1])) for row in rows]

    def edges(self) -> dict[tuple[str, str, int], int]:
        """Every edge: (smaller id, larger id, day) -> co-watchers (for checks and tests)."""
        if not self.exists():
            return {}
        rows = self.query("MATCH (a:Content)-[e:CO_WATCHED]->(b:Content) RETURN a.id, b.id, e.day, e.users")
        return {(a.decode(), b.decode(), int(day)): int(users) for a, b, day, users in rows}
