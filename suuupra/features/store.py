"""The feature store from the settings: Feast with the platform's Redis as online store and the platform's
PostgreSQL as offline store (docs/features.md says why), its registry under the data folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import redis
from feast import FeatureStore, RepoConfig
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres import PostgreSQLOfflineStoreConfig
from feast.infra.online_stores.redis import RedisOnlineStoreConfig
from psycopg import sql

from feature_store.catalog import AS_OF_FEATURE, VIEWS, View
from feature_store.definitions import CREATED_COLUMN, TIMESTAMP_COLUMN, feast_objects
from suuupra.settings import Settings


class FeatureStoreError(RuntimeError):
    """The feature store cannot answer; the message says what to do."""


def registry_path(settings: Settings) -> Path:
    return settings.feature_repo_dir / settings.features.project / "registry.db"


def redis_connection_string(settings: Settings) -> str:
    connection = f"{settings.redis.host}:{settings.redis.port},db={settings.redis.db}"
    if settings.redis.password is not None:
        connection += f",password={settings.redis.password.get_secret_value()}"
    return connection


def repo_config(settings: Settings) -> RepoConfig:
    postgres = settings.postgres
    return RepoConfig(
        project=settings.features.project,
        provider="local",
        registry=str(registry_path(settings)),
        online_store=RedisOnlineStoreConfig(connection_string=redis_connection_string(settings)),
        offline_store=PostgreSQLOfflineStoreConfig(
            host=postgres.host,
            port=postgres.port,
            database=postgres.database,
            db_schema=settings.features.offline_schema,
            user=postgres.user,
            password=postgres.password.get_secret_value(),
            sslmode="disable",
        ),
        entity_key_serialization_version=3,
    )


def feature_store(settings: Settings) -> FeatureStore:
    if not registry_path(settings).is_file():
        raise FeatureStoreError(f"no feature registry at {registry_path(settings)}: run `suuupra features apply` first")
    return FeatureStore(config=repo_config(settings))


def offline_table_ddl(schema: str, view: View) -> sql.Composed:
    """One row per value the features job computed: the history that training joins point in time.

    `event_timestamp` is generated from `as_of_ms` (no client time zone can shift it); `created` orders rows of the
    same event time by `version` (how many events the entity had), which is what Feast breaks such ties on."""
    features = sql.SQL(", ").join(
        sql.SQL("{} bigint").format(sql.Identifier(name)) for name in view.features if name != AS_OF_FEATURE
    )
    return sql.SQL("""
        CREATE TABLE IF NOT EXISTS {table} (
            {key} text NOT NULL,
            {as_of} bigint NOT NULL,
            version bigint NOT NULL,
            {features},
            {timestamp} timestamptz GENERATED ALWAYS AS (to_timestamp({as_of} / 1000.0)) STORED,
            {created} timestamptz GENERATED ALWAYS AS (to_timestamp(version / 1000.0)) STORED,
            PRIMARY KEY ({key}, {as_of}, version))""").format(
        table=sql.Identifier(schema, view.name), key=sql.Identifier(view.join_key),
        as_of=sql.Identifier(AS_OF_FEATURE), features=features, timestamp=sql.Identifier(TIMESTAMP_COLUMN),
        created=sql.Identifier(CREATED_COLUMN),
    )  # fmt: skip


def ensure_offline_tables(settings: Settings) -> None:
    schema = settings.features.offline_schema
    with psycopg.connect(settings.postgres.dsn(settings.postgres.database), autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        for view in VIEWS:
            connection.execute(offline_table_ddl(schema, view))


def apply(settings: Settings) -> list[str]:
    """Creates the offline tables and registers entities, sources and views (idempotent, like `feast apply`);
    returns the names of the feature views."""
    ensure_offline_tables(settings)
    registry_path(settings).parent.mkdir(parents=True, exist_ok=True)
    store = FeatureStore(config=repo_config(settings))
    store.apply(feast_objects(settings.features.offline_schema))
    return [view.name for view in store.list_feature_views()]


def feature_refs(views: tuple[View, ...] = VIEWS) -> list[str]:
    return [f"{view.name}:{name}" for view in views for name in view.features]


def online_features(store: FeatureStore, entity_rows: list[dict[str, Any]], refs: list[str]) -> dict[str, list[Any]]:
    """Feast's online read: one list per feature (`view__feature`) and per join key, in the order of the rows."""
    response = store.get_online_features(features=refs, entity_rows=entity_rows, full_feature_names=True)
    result: dict[str, list[Any]] = response.to_dict()
    return result


def remove(settings: Settings) -> None:
    """Drops a project's offline tables, online rows and registry (for isolated tests and benchmarks)."""
    schema = settings.features.offline_schema
    with psycopg.connect(settings.postgres.dsn(settings.postgres.database), autocommit=True) as connection:
        connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    client = redis.Redis(
        host=settings.redis.host, port=settings.redis.port, db=settings.redis.db,
        password=settings.redis.password.get_secret_value() if settings.redis.password else None,
    )  # fmt: skip
    # Feast's keys end with the project's name.
    pattern = b"*" + settings.features.project.encode()
    keys = list(client.scan_iter(match=pattern, count=10_000))
    for start in range(0, len(keys), 10_000):
        client.delete(*keys[start : start + 10_000])
    registry = registry_path(settings)
    registry.unlink(missing_ok=True)
    if registry.parent.is_dir() and not any(registry.parent.iterdir()):
        registry.parent.rmdir()


def historical_features(store: FeatureStore, entity_df: Any, refs: list[str]) -> Any:
    """Feast's point-in-time join over the offline store: for each row of `entity_df` (join keys and
    `event_timestamp`), every view's newest row at or before that timestamp (ties: the higher version)."""
    return store.get_historical_features(entity_df=entity_df, features=refs, full_feature_names=True).to_df()
