"""The schema registry client (Confluent-compatible API; Apicurio serves it at /apis/ccompat/v7)."""

from __future__ import annotations

from confluent_kafka.schema_registry import SchemaRegistryClient


def registry_client(url: str, basic_auth_user_info: str | None = None, timeout_s: int = 10) -> SchemaRegistryClient:
    """A client that caches ids and schemas, so each schema costs one round trip per process."""
    # Without a timeout a hung registry blocks every producer and consumer forever.
    config: dict[str, str | int] = {"url": url, "timeout": timeout_s}
    if basic_auth_user_info:
        config["basic.auth.user.info"] = basic_auth_user_info
    return SchemaRegistryClient(config)
