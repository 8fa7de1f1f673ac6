"""`suuupra services up`: the transactional services with their outbox relay and the enrolment saga's workers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import typer
import uvicorn
from fastapi import FastAPI

from services.app import create_app, ensure_schema
from services.relay_loop import BackgroundRelay
from services.saga_workers import SagaWorkers
from suuupra.cli.context import console, fail, state

app = typer.Typer(
    help="The transactional services (identity, content, commerce), their outbox relay and the saga's workers.",
    no_args_is_help=True,
)


@app.command()
def up(
    ctx: typer.Context,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default: setting services.port).")] = None,
    saga: Annotated[
        bool, typer.Option(help="Run the enrolment saga's consumers and payment timeouts in this process.")
    ] = True,
    fraud_standin: Annotated[
        bool | None,
        typer.Option(
            "--fraud-standin/--no-fraud-standin",
            help="Decide payments with the rule-based stand-in instead of the fraud job (`suuupra jobs run fraud`); "
            "default: setting services.fraud_standin (off).",
        ),
    ] = None,
) -> None:
    """Serve the HTTP APIs (OpenAPI at /docs and /openapi.json), relay committed events to Kafka, and run the saga."""
    settings = state(ctx).settings
    if fraud_standin is not None:
        settings = settings.model_copy(
            update={"services": settings.services.model_copy(update={"fraud_standin": fraud_standin})}
        )
    try:
        ensure_schema(settings)
    except Exception as error:
        raise fail(f"PostgreSQL at {settings.postgres.host}:{settings.postgres.port}: {error}. Platform up?") from error
    relay = BackgroundRelay(settings)
    workers = SagaWorkers(settings) if saga else None

    @asynccontextmanager
    async def background(_app: FastAPI) -> AsyncIterator[None]:
        # Stopped by the server's shutdown, not after it returns: uvicorn re-raises a SIGTERM once it has shut down,
        # which would end the process before the consumers leave their groups and the relay finishes its round.
        relay.start()
        if workers is not None:
            workers.start()
        try:
            yield
        finally:
            if workers is not None:
                await asyncio.to_thread(workers.stop)
            await asyncio.to_thread(relay.stop)

    listen = port or settings.services.port
    standin = (
        " with the rule-based fraud stand-in"
        if settings.services.fraud_standin
        else "; fraud decisions from the fraud job (`suuupra jobs run fraud`): payments wait for it"
    )
    console.print(
        f"services on http://{settings.services.host}:{listen}/docs; outbox relay running; "
        + (f"saga workers running{standin}" if workers else "saga workers not started (--no-saga)")
    )
    uvicorn.run(create_app(settings, background), host=settings.services.host, port=listen, log_level="warning")
