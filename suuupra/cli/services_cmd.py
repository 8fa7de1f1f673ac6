"""`suuupra services up`: the transactional services with their outbox relay."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from services.app import create_app, ensure_schema
from services.relay_loop import BackgroundRelay
from suuupra.cli.context import console, fail, state

app = typer.Typer(help="The transactional services (identity, content) and their outbox relay.", no_args_is_help=True)


@app.command()
def up(
    ctx: typer.Context,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default: setting services.port).")] = None,
) -> None:
    """Serve the HTTP APIs (OpenAPI at /docs and /openapi.json) and relay committed events to Kafka."""
    settings = state(ctx).settings
    try:
        ensure_schema(settings)
    except Exception as error:
        raise fail(f"PostgreSQL at {settings.postgres.host}:{settings.postgres.port}: {error}. Platform up?") from error
    relay = BackgroundRelay(settings)
    relay.start()
    listen = port or settings.services.port
    console.print(f"services on http://{settings.services.host}:{listen}/docs; outbox relay running")
    try:
        uvicorn.run(create_app(settings), host=settings.services.host, port=listen, log_level="warning")
    finally:
        relay.stop()
