"""Connections to the search engine (Redis 8.2 with RediSearch and FalkorDB), typed for the rest of the package."""

from __future__ import annotations

from typing import Any

import redis

from suuupra.settings import Settings


class SearchUnavailableError(RuntimeError):
    """The search engine cannot be reached or refused a request; the message says what to do."""


def engine_client(settings: Settings, timeout_s: float = 10.0) -> redis.Redis:
    search = settings.search
    return redis.Redis(
        host=search.host, port=search.port, socket_timeout=timeout_s, socket_connect_timeout=2,
        password=search.password.get_secret_value() if search.password else None,
    )  # fmt: skip


def pipelined(client: redis.Redis, commands: list[tuple[Any, ...]]) -> list[Any]:
    """Raw commands in one round trip; their replies in order."""
    pipeline = client.pipeline(transaction=False)
    for arguments in commands:
        pipeline.execute_command(*arguments)  # type: ignore[no-untyped-call]
    try:
        return list(pipeline.execute())
    except redis.ConnectionError as error:
        raise SearchUnavailableError(
            f"the search engine does not answer ({error}); run `suuupra platform up`"
        ) from error


def command(client: redis.Redis, *args: Any) -> Any:
    """One raw command (FT.*, GRAPH.*, EVALSHA ...), whose reply shape the caller knows."""
    try:
        return client.execute_command(*args)  # type: ignore[no-untyped-call]
    except redis.ConnectionError as error:
        raise SearchUnavailableError(
            f"the search engine at {client.connection_pool.connection_kwargs.get('host')}:"
            f"{client.connection_pool.connection_kwargs.get('port')} does not answer ({error}); "
            "run `suuupra platform up`"
        ) from error
