"""`suuupra dashboard`: serve the web page that charts every ClickHouse panel and refreshes itself."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from suuupra.cli.context import console, fail, state
from suuupra.dashboard.server import DashboardError, bind, serve, url_of


def dashboard(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on; 127.0.0.1 keeps the dashboard on this machine.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port to listen on; 0 picks a free one.")
    ] = 8050,
    refresh: Annotated[
        float, typer.Option("--refresh", min=0.5, help="Seconds between refreshes of the page's charts.")
    ] = 5.0,
    hours: Annotated[
        int,
        typer.Option("--hours", min=0, help="Initial range: the last N hours of data (from the newest row); 0: all."),
    ] = 0,
) -> None:
    """Serve a web page charting every dashboard panel (`suuupra clickhouse panels`), refreshed in place."""
    settings = state(ctx).settings
    try:
        sock = bind(host, port)
    except DashboardError as error:
        raise fail(str(error)) from error
    clickhouse = settings.clickhouse
    source = f"database {clickhouse.database} on {clickhouse.host}:{clickhouse.port}"
    console.print(
        f"dashboard on [bold]{escape(url_of(sock))}[/] ({source}, refresh every {refresh:g} s); Ctrl+C stops it"
    )
    try:
        serve(settings, sock, refresh_s=refresh, hours=hours)
    except DashboardError as error:
        raise fail(str(error)) from error
    finally:
        sock.close()
