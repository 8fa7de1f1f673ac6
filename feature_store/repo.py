"""What `feast apply` reads in this folder (with `feature_store.yaml`: the local platform's default ports).

    cd feature_store && ../.venv/bin/feast apply

`suuupra features apply` does the same from the settings (any ports, project and offline schema) and creates the
offline tables first. The offline schema follows the settings (`SUUUPRA_CONFIG`, `SUUUPRA_FEATURES__...`)."""

from feature_store.definitions import feast_objects
from suuupra.settings import load_settings

_objects = feast_objects(load_settings().features.offline_schema)
# Feast collects the objects it finds at module level.
(
    user, device,
    user_engagement_history, user_engagement_push, user_engagement,
    user_payments_history, user_payments_push, user_payments,
    user_account_history, user_account_push, user_account,
    device_activity_history, device_activity_push, device_activity,
) = _objects  # fmt: skip
