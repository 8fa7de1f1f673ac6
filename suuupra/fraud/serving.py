"""What the fraud job's JVM scoring function (connectors/jvm `com.suuupra.flink.fraud.FraudScore`) is built with: the
saved model's linear parameters, the feature views it reads as of each payment, where the online history and the
offline table are, and how a decision record is written. One JSON document, carried in the job graph."""

from __future__ import annotations

import json
from typing import Any

from connectors.avro.serde import AvroSerializer
from feature_store.catalog import AS_OF_FEATURE
from schemas import default_catalog
from services.commerce.saga import DECISION_NAMESPACE
from suuupra.events import make_registry
from suuupra.fraud.model import LOG_COUNTS, VIEWS, FraudModel, log_count_input
from suuupra.fraud.scoring import DECISION_EVENT, PRODUCER
from suuupra.settings import Settings


def decision_schema_id(settings: Settings) -> int:
    """The registry id of the decision schema under the payment topic's subject (registered when missing)."""
    schema = default_catalog().schema_for(DECISION_EVENT).schema
    return AvroSerializer(make_registry(settings)).schema_id(settings.topics.payment, schema)


def scoring_configuration(settings: Settings, model: FraudModel) -> str:
    """The JSON `FraudScore` parses in `open()`; it holds the Redis and PostgreSQL passwords."""
    redis, postgres = settings.redis, settings.postgres
    configuration: dict[str, Any] = {
        "model": {
            **model.linear_parameters(), "reasons": settings.fraud.reasons,
            "log_counts": {column: log_count_input(column) for column in LOG_COUNTS},
        },
        "views": [{"name": v.name, "join_key": v.join_key, "features": v.features} for v in VIEWS],
        "as_of_feature": AS_OF_FEATURE,
        "project": settings.features.project,
        "redis": {
            "host": redis.host, "port": redis.port, "db": redis.db,
            "password": redis.password.get_secret_value() if redis.password else "",
            "timeout_ms": settings.fraud.feature_read_timeout_ms,
        },
        "postgres": {
            "url": f"jdbc:postgresql://{postgres.host}:{postgres.port}/{postgres.database}",
            "user": postgres.user, "password": postgres.password.get_secret_value(),
            "schema": settings.features.offline_schema,
            "timeout_s": settings.fraud.offline_read_timeout_s,
        },
        "offline_catch_up_ms": int(settings.features.offline_catch_up_s * 1000),
        "decision": {"namespace": str(DECISION_NAMESPACE), "schema_id": decision_schema_id(settings),
                     "producer": PRODUCER},
    }  # fmt: skip
    return json.dumps(configuration)
