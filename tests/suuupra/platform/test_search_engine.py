"""The search engine of `platform up`: both modules answer, and what was written survives a restart (AOF)."""

from __future__ import annotations

import uuid

from suuupra.platform.manager import Platform
from suuupra.platform.search import SearchEngine
from suuupra.search.engine import command, engine_client


def test_both_modules_answer_and_data_survives_a_restart(platform: Platform) -> None:
    engine = next(c for c in platform.components if isinstance(c, SearchEngine))
    health = engine.health()
    assert health.ok and "search 2." in health.detail and "graph 4." in health.detail, health.detail
    name = f"probe-{uuid.uuid4().hex[:8]}"
    client = engine_client(platform.settings)
    try:
        command(client, "FT.CREATE", name, "ON", "HASH", "PREFIX", "1", f"{name}:", "SCHEMA", "title", "TEXT")
        client.hset(f"{name}:1", "title", "restart survivor")
        command(client, "GRAPH.QUERY", name, "CREATE (:Probe {id: 'kept'})")
    finally:
        client.close()

    assert engine.stop()
    platform.up()

    client = engine_client(platform.settings)
    try:
        assert command(client, "FT.SEARCH", name, "survivor", "NOCONTENT")[0] == 1
        assert command(client, "GRAPH.QUERY", name, "MATCH (p:Probe) RETURN p.id")[1] == [[b"kept"]]
    finally:
        command(client, "FT.DROPINDEX", name, "DD")
        command(client, "GRAPH.DELETE", name)
        client.close()
