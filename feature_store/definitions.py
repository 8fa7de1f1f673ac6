"""The Feast objects of the repository: entities, a push source per view (over its offline table in PostgreSQL)
and the feature views. `repo.py` (what `feast apply` reads) and `suuupra features apply` build them from here."""

from __future__ import annotations

from typing import Any

from feast import Entity, FeatureView, Field, PushSource, ValueType
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource
from feast.types import Int64

from feature_store.catalog import AS_OF_FEATURE, ENTITIES, TTL, VIEWS, View

# Columns of every offline table besides the join key and the features (see suuupra/features/store.py).
TIMESTAMP_COLUMN = "event_timestamp"
CREATED_COLUMN = "created"


def offline_table(schema: str, view: View) -> str:
    return f"{schema}.{view.name}"


def feast_objects(offline_schema: str) -> list[Any]:
    entities = {
        name: Entity(name=name, join_keys=[key], value_type=ValueType.STRING, description=f"a {name}, by {key}")
        for name, key in ENTITIES.items()
    }
    objects: list[Any] = list(entities.values())
    for view in VIEWS:
        history = PostgreSQLSource(
            name=f"{view.name}_history",
            table=offline_table(offline_schema, view),
            timestamp_field=TIMESTAMP_COLUMN,
            created_timestamp_column=CREATED_COLUMN,
            description=f"every row the features job computed for {view.name}",
        )
        push = PushSource(name=f"{view.name}_push", batch_source=history)
        objects += [
            history,
            push,
            FeatureView(
                name=view.name,
                entities=[entities[view.entity]],
                ttl=TTL,
                schema=[Field(name=name, dtype=Int64) for name in view.features if name != AS_OF_FEATURE]
                + [Field(name=AS_OF_FEATURE, dtype=Int64)],
                source=push,
                online=True,
                description=view.description,
            ),
        ]
    return objects
