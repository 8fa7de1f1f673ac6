"""`suuupra features`: the feature store (Feast) from the settings."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from feature_store.catalog import AS_OF_FEATURE, VIEWS
from suuupra.cli.context import console, fail, state

app = typer.Typer(help="The feature store (Feast): online store in Redis, offline store in PostgreSQL.",
                  no_args_is_help=True)  # fmt: skip


@app.command("apply")
def apply_command(ctx: typer.Context) -> None:
    """Create the offline tables and register entities, sources and feature views (like `feast apply`, from the
    settings: any ports, project and offline schema). Idempotent."""
    from suuupra.features.store import apply  # Feast takes seconds to import: only the commands using it pay

    settings = state(ctx).settings
    try:
        views = apply(settings)
    except Exception as error:
        raise fail(f"feast apply failed: {error}. Is the platform up (`suuupra platform up`)?") from error
    console.print(
        f"applied project '{settings.features.project}': feature views {', '.join(sorted(views))}; "
        f"offline tables in PostgreSQL schema '{settings.features.offline_schema}'"
    )


def _shown(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if name.endswith("_ms") and isinstance(value, int):
        return f"{datetime.fromtimestamp(value / 1000, UTC):%Y-%m-%d %H:%M:%S.%f}"[:-3] + " UTC"
    return f"{value:,}" if isinstance(value, int) else str(value)


@app.command("get")
def get_command(
    ctx: typer.Context,
    user_id: Annotated[str, typer.Argument(help="The user whose online features to print.")],
    device_id: Annotated[str | None, typer.Option(help="Also print this device's features.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object instead of a table.")] = False,
) -> None:
    """Print a user's online features (what the fraud job reads), per feature view, with the time they are as of."""
    from suuupra.features.store import FeatureStoreError, feature_refs, feature_store, online_features

    settings = state(ctx).settings
    user_id = user_id.lower()  # a UUID, which the jobs key in lowercase: found whatever case it is typed in
    try:
        store = feature_store(settings)
        values: dict[str, Any] = {}
        for view in VIEWS:
            if view.entity == "device" and device_id is None:
                continue
            row = {view.join_key: device_id if view.entity == "device" else user_id}
            values.update(online_features(store, [row], feature_refs((view,))))
    except FeatureStoreError as error:
        raise fail(str(error)) from error
    except Exception as error:
        raise fail(f"reading the online store failed: {error}. Is the platform up (`suuupra platform up`)?") from error
    flat = {name: column[0] for name, column in values.items() if "__" in name}
    if as_json:
        console.print_json(json.dumps({"user_id": user_id, "device_id": device_id, **flat}))
        return
    if all(value is None for value in flat.values()):
        raise fail(f"no online features for user {user_id}: unknown user, or the features job has not seen it "
                   "(`suuupra jobs run features`)")  # fmt: skip
    table = Table(title=f"online features of user {user_id}")
    for column in ("view", "feature", "value"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for view in VIEWS:
        for name in view.features:
            key = f"{view.name}__{name}"
            if key in flat and name != AS_OF_FEATURE:
                table.add_row(view.name, name, _shown(name, flat[key]))
        if f"{view.name}__{AS_OF_FEATURE}" in flat:
            table.add_row(view.name, "(as of)", _shown(AS_OF_FEATURE, flat[f"{view.name}__{AS_OF_FEATURE}"]))
    console.print(table)
