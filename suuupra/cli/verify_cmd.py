"""`suuupra verify analytics`: the analytics job's ClickHouse tables against an independent computation."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from connectors.clickhouse.backend import ClickHouseError
from suuupra.cli.context import console, fail, state
from suuupra.clickhouse.migrate import server_backend
from suuupra.verify.analytics import actual_tables, compare, expected_tables, kafka_events

app = typer.Typer(help="Check what the jobs wrote against an independent computation.", no_args_is_help=True)


@app.command("analytics")
def analytics(ctx: typer.Context) -> None:
    """Read the analytics job's topics to their end, compute every table again in plain Python, and compare it
    with ClickHouse (FINAL). Exit 1 on any difference. Run it once the job has caught up (e.g. after
    `suuupra jobs run analytics --bounded`)."""
    settings = state(ctx).settings
    with console.status("reading the job's topics from Kafka ..."):
        try:
            events = kafka_events(settings)
        except Exception as error:
            raise fail(f"{error}\nIs the platform up (`suuupra platform up`)?") from error
    expected = expected_tables(events, settings.flink.max_out_of_orderness_s * 1000)
    backend = server_backend(settings)
    try:
        actual = actual_tables(backend, settings.clickhouse.database)
    except ClickHouseError as error:
        raise fail(f"{error}\nHas `suuupra clickhouse migrate` run?") from error
    finally:
        backend.close()
    checks = compare(expected, actual)
    table = Table("table", "expected rows", "in ClickHouse", "verdict", title=f"{len(events)} events in Kafka")
    for check in checks:
        verdict = "equal" if check.equal else f"[red]missing {len(check.missing)}+, extra {len(check.extra)}+[/]"
        table.add_row(check.table, str(check.expected), str(check.actual), verdict)
    console.print(table)
    different = [check for check in checks if not check.equal]
    for check in different:
        # Rows hold producers' text: printed as it is, never read as markup.
        console.print(f"[red]{check.table}[/]: e.g. missing {escape(str(check.missing[:2]))}, "
                      f"extra {escape(str(check.extra[:2]))}")  # fmt: skip
    if different:
        raise typer.Exit(1)
    console.print("every table equals the independent computation")


@app.command("search")
def search(ctx: typer.Context) -> None:
    """Read the content and clickstream topics to their end, compute the index (every item at its newest published
    revision, embedded by the current model) and the co-watch counts again in plain Python, and compare them with the
    search engine. Exit 1 on any difference. Run it once the indexing job has caught up."""
    from suuupra.search.cowatch import CoWatchGraph
    from suuupra.search.embedder import ModelError, ModelStore
    from suuupra.search.engine import SearchUnavailableError, engine_client
    from suuupra.search.index import SearchIndex
    from suuupra.verify.acceptance import accepted_events
    from suuupra.verify.search import compare_graph, compare_index, expected_cowatch, expected_rows

    settings = state(ctx).settings
    try:
        embedder = ModelStore(settings.embedder_models_dir).load(settings.search.model_version)
        with console.status("reading the content and clickstream topics from Kafka ..."):
            topics = [settings.topics.content, settings.topics.clickstream]
            # Only the events the job takes in (what it dead-letters is in no result).
            events = [value for _, value in accepted_events(settings, topics)]
        content = [event for event in events if str(event["event_type"]).startswith("content.")]
        expected_index = expected_rows(content, embedder)
        expected_graph = expected_cowatch(events, settings.search.cowatch_window_s * 1000)
        client = engine_client(settings)
        try:
            checks = [compare_index(expected_index, SearchIndex(client, settings, embedder.version)),
                      compare_graph(expected_graph, CoWatchGraph(client, settings))]  # fmt: skip
        finally:
            client.close()
    except (ModelError, SearchUnavailableError) as error:
        raise fail(str(error)) from error
    table = Table("", "expected", "in the engine", "verdict", title=f"{len(events)} events in Kafka")
    for check in checks:
        verdict = (
            "equal"
            if check.equal
            else (f"[red]missing {len(check.missing)}, extra {len(check.extra)}, different {len(check.different)}[/]")
        )
        table.add_row(check.name, str(check.expected), str(check.actual), verdict)
    console.print(table)
    if not all(check.equal for check in checks):
        for check in checks:
            if not check.equal:
                console.print(f"[red]{check.name}[/]: e.g. missing {check.missing[:2]}, extra {check.extra[:2]}, "
                              f"different {check.different[:2]}")  # fmt: skip
        raise typer.Exit(1)
    console.print(f"the index ({embedder.version}) and the co-watch graph equal the independent computation")
