"""`suuupra fraud`: train and inspect the fraud model the fraud job scores with."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from suuupra.cli.context import console, fail, state

app = typer.Typer(help="The fraud model: train it on simulated history, list and show saved versions.",
                  no_args_is_help=True)  # fmt: skip


def _print_card(version: str, ctx: typer.Context) -> None:
    # scikit-learn and Feast take seconds to import: only the commands using them pay.
    from suuupra.fraud.model import load_model
    from suuupra.fraud.train import summary

    card = load_model(state(ctx).settings, version).card
    table = Table(title=f"held-out payments {card.test_window['from']} .. {card.test_window['to']}")
    for column in ("metric", "model", "rules stand-in"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for name, model, rules in summary(card):
        shown = (
            (f"{model:,.0f}", f"{rules:,.0f}") if name in ("payments", "fraud") else (f"{model:.3f}", f"{rules:.3f}")
        )
        table.add_row(name, *shown)
    console.print(table)
    console.print(
        f"model {card.version}: trained on {card.training_window['from']} .. {card.training_window['to']}; "
        f"{len(card.inputs)} inputs from {len(card.feast_features)} Feast features; thresholds review "
        f"{card.thresholds['review']:.3f}, reject {card.thresholds['reject']:.3f}"
    )


@app.command("train")
def train_command(
    ctx: typer.Context,
    events: Annotated[int, typer.Option(min=10_000, help="Simulated events in the labelled history.")] = 150_000,
    seed: Annotated[int, typer.Option(help="Simulator seed: same seed, same history.")] = 7,
    users: Annotated[int, typer.Option(min=10, help="Simulated users.")] = 300,
    fraud_share: Annotated[
        float, typer.Option(min=0.01, max=0.9, help="Share of payment journeys with a planted fraud pattern.")
    ] = 0.1,
    test_share: Annotated[
        float, typer.Option(min=0.1, max=0.9, help="The latest payments held out for testing, as a share.")
    ] = 0.3,
    version: Annotated[str | None, typer.Option(help="Version name (default: fraud-lr-<UTC time>).")] = None,
) -> None:
    """Train the model on a simulated history (labels: the fraud patterns the simulator planted) with features read
    point in time from the offline store, test it and the rule-based stand-in on the latest payments, save it."""
    from suuupra.fraud.model import saved_versions
    from suuupra.fraud.train import TrainingOptions, train

    settings = state(ctx).settings
    if version is not None and version in saved_versions(settings):
        raise fail(f"model version '{version}' exists already in {settings.fraud_models_dir}: choose another name")
    options = TrainingOptions(events=events, seed=seed, users=users, fraud_share=fraud_share, test_share=test_share,
                              version=version)  # fmt: skip
    try:
        model, folder = train(settings, options, progress=lambda step: console.print(f"  {step}"))
    except ValueError as error:
        raise fail(str(error)) from error
    _print_card(model.version, ctx)
    metrics = model.card.metrics
    console.print(f"saved in {folder}; the fraud job runs it with fraud.model_version = latest (the default) or "
                  f"SUUUPRA_FRAUD__MODEL_VERSION={model.version}")  # fmt: skip
    if metrics["model"]["pr_auc"] <= metrics["rules"]["pr_auc"]:
        raise fail("the model does not beat the rule-based stand-in (PR-AUC) on the held-out payments")


@app.command("decisions")
def decisions_command(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, help="How many of the newest decisions.")] = 5,
    decision: Annotated[str | None, typer.Option(help="Only APPROVE, REVIEW or REJECT.")] = None,
) -> None:
    """The fraud job's newest decisions (from ClickHouse), with their scores and reasons."""
    from suuupra.clickhouse.migrate import server_backend

    settings = state(ctx).settings
    where = ""
    if decision is not None:
        if decision not in ("APPROVE", "REVIEW", "REJECT"):
            raise fail("--decision must be APPROVE, REVIEW or REJECT")
        where = f"WHERE decision = '{decision}'"
    try:
        backend = server_backend(settings)
        rows = backend.query(
            f"SELECT decided_at, payment_id, decision, score, reasons, model_version "
            f"FROM {settings.clickhouse.database}.fraud_decisions FINAL {where} "
            f"ORDER BY decided_at_ms DESC, decision_id LIMIT {limit}"
        ).rows
        backend.close()
    except Exception as error:
        hint = "Platform up, `suuupra clickhouse migrate` run?"
        raise fail(f"reading fraud_decisions failed: {error}. {hint}") from error
    if not rows:
        raise fail("no fraud decisions yet: run the fraud job (`suuupra jobs run fraud`)")
    models = ", ".join(sorted({str(row[5]) for row in rows}))
    table = Table(title=f"newest fraud decisions (model {models})")
    table.add_column("decided at (UTC)", no_wrap=True)
    table.add_column("payment", no_wrap=True)
    table.add_column("decision", no_wrap=True)
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("reasons (input=value, +contribution to the log-odds)", min_width=36, overflow="fold")
    for decided_at, payment_id, verdict, score, reasons, _model in rows:
        table.add_row(f"{decided_at:%H:%M:%S}", str(payment_id)[:8], verdict, f"{score:.3f}",
                      reasons.replace("; ", "\n") or "-")  # fmt: skip
    console.print(table)


@app.command("models")
def models_command(ctx: typer.Context) -> None:
    """The saved model versions, oldest first."""
    from suuupra.fraud.model import saved_versions

    settings = state(ctx).settings
    versions = saved_versions(settings)
    if not versions:
        raise fail(f"no model saved in {settings.fraud_models_dir}: run `suuupra fraud train`")
    for name in versions:
        console.print(name)


@app.command("show")
def show_command(
    ctx: typer.Context, version: Annotated[str, typer.Argument(help="A saved version, or 'latest'.")] = "latest"
) -> None:
    """A saved model's training window, thresholds and held-out metrics next to the rule-based stand-in's."""
    from suuupra.fraud.model import ModelNotFoundError

    try:
        _print_card(version, ctx)
    except ModelNotFoundError as error:
        raise fail(str(error)) from error
