"""`suuupra index ...`, `suuupra search`, `suuupra similar`, `suuupra also-watched`: the embedder and the queries."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from suuupra.cli.context import console, fail, parse_moment, state
from suuupra.search.embedder import ModelError, ModelStore
from suuupra.search.engine import SearchUnavailableError
from suuupra.search.index import ContentNotFoundError, Filters
from suuupra.search.service import ContentHit, fit_embedder, published_texts, search_service

app = typer.Typer(help="The embedder of the content index: fit, list, choose.", no_args_is_help=True)

Limit = Annotated[int, typer.Option("--limit", "-n", min=1, max=100, help="How many results.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")]
IdsOnly = Annotated[bool, typer.Option("--ids", help="Print only the content ids, one a line (for scripts).")]


@app.command("fit")
def fit(
    ctx: typer.Context,
    dim: Annotated[int | None, typer.Option(help="Dimensions (default: search.embedding_dim).")] = None,
    corpus: Annotated[
        Path | None, typer.Option(help="Fit on this file's lines instead of the published content on Kafka.")
    ] = None,
) -> None:
    """Fit the embedder (TF-IDF + truncated SVD) on the newest published revision of every item on the content
    topic, store it as a new version and make it current. Then (re)start `suuupra jobs run indexing`: it builds the
    new version's index from the start of the topic."""
    settings = state(ctx).settings
    try:
        if corpus is not None:
            texts = [line for line in corpus.read_text().splitlines() if line.strip()]
        else:
            with console.status("reading the content topic ..."):
                texts = published_texts(settings)
        with console.status(f"fitting on {len(texts)} documents ..."):
            embedder = fit_embedder(settings, texts, dim)
    except (ModelError, OSError) as error:
        raise fail(str(error)) from error
    except Exception as error:
        raise fail(f"{error}\nIs the platform up (`suuupra platform up`)?") from error
    console.print(
        f"fitted {embedder.version} ({embedder.dim} dimensions, {embedder.info.documents} documents); current"
    )


@app.command("models")
def models(ctx: typer.Context) -> None:
    """The fitted embedders, the current one marked."""
    store = ModelStore(state(ctx).settings.embedder_models_dir)
    current = store.current_version()
    table = Table("version", "dimensions", "documents", "fitted at", "current")
    for info in store.models():
        table.add_row(
            info.version, str(info.dim), str(info.documents), info.fitted_at, "*" if info.version == current else ""
        )
    console.print(table)


@app.command("use")
def use(
    ctx: typer.Context, version: Annotated[str, typer.Argument(help="A version from `suuupra index models`.")]
) -> None:
    """Make a fitted embedder current (queries use its index; restart the job to index with it)."""
    try:
        ModelStore(state(ctx).settings.embedder_models_dir).set_current(version)
    except ModelError as error:
        raise fail(str(error)) from error
    console.print(f"{version} is current")


def _print(hits: list[ContentHit], title: str, as_json: bool, ids_only: bool, payload: str) -> None:
    if ids_only:
        for hit in hits:
            console.print(hit.content_id)
        return
    if as_json:
        console.print_json(payload)
        return
    table = Table("#", title=title)
    table.add_column("content", no_wrap=True)  # whole, to be copied into the next command
    table.add_column("title")
    table.add_column("score", justify="right")
    for rank, hit in enumerate(hits, 1):
        table.add_row(str(rank), hit.content_id, hit.title, f"{hit.score:.3f}")
    if not hits:
        console.print(f"{title}: nothing")
        return
    console.print(table)


def search(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(help="Words to look for (all must match; '' for filters only).")],
    category: Annotated[str | None, typer.Option(help="Only this category.")] = None,
    level: Annotated[str | None, typer.Option(help="BEGINNER, INTERMEDIATE, ADVANCED or ALL_LEVELS.")] = None,
    language: Annotated[str | None, typer.Option(help="ISO 639-1 code, e.g. en.")] = None,
    max_price: Annotated[int | None, typer.Option(help="Highest price in minor units (paise).")] = None,
    min_price: Annotated[int | None, typer.Option(help="Lowest price in minor units (paise).")] = None,
    tag: Annotated[str | None, typer.Option(help="Only items with this tag.")] = None,
    free_preview: Annotated[
        bool | None, typer.Option("--free-preview/--no-free-preview", help="Free previews only, or none.")
    ] = None,
    limit: Limit = 10,
    as_json: AsJson = False,
    ids_only: IdsOnly = False,
) -> None:
    """Full-text search (BM25 over title, course, description and tags) of the published content, with filters."""
    filters = Filters(category, level, language, max_price, min_price, free_preview, tag)
    try:
        with search_service(state(ctx).settings) as service:
            answer = service.search(text, filters, limit)
    except SearchUnavailableError as error:
        raise fail(str(error)) from error
    if answer.model is None and not ids_only:
        console.print("no index yet: run `suuupra index fit`, then `suuupra jobs run indexing`")
    _print(answer.results, f"{answer.total} matches for {text!r}", as_json, ids_only, answer.model_dump_json())


def similar(
    ctx: typer.Context,
    content_id: Annotated[str, typer.Argument(help="A published content id.")],
    limit: Limit = 10,
    as_json: AsJson = False,
    ids_only: IdsOnly = False,
) -> None:
    """More like this: the published items nearest to this one by embedding (cosine similarity)."""
    try:
        with search_service(state(ctx).settings) as service:
            answer = service.similar(content_id, limit)
    except SearchUnavailableError as error:
        raise fail(str(error)) from error
    except ContentNotFoundError as error:
        raise fail(f"content {content_id} is not in the index (not published, or not indexed yet)") from error
    _print(answer.results, f"more like {content_id}", as_json, ids_only, answer.model_dump_json())


def also_watched(
    ctx: typer.Context,
    content_id: Annotated[str, typer.Argument(help="A published content id.")],
    at: Annotated[str, typer.Option(help="Decay relative to this moment: 'now', ISO time or epoch ms.")] = "now",
    limit: Limit = 10,
    as_json: AsJson = False,
    ids_only: IdsOnly = False,
) -> None:
    """Users who watched this also watched: co-watched published items, recent co-watching weighing more."""
    at_ms = int(parse_moment(at).timestamp() * 1000)
    try:
        with search_service(state(ctx).settings) as service:
            answer = service.also_watched(content_id, limit, at_ms)
    except SearchUnavailableError as error:
        raise fail(str(error)) from error
    except ContentNotFoundError as error:
        raise fail(f"content {content_id} is not in the index (not published, or not indexed yet)") from error
    _print(answer.results, f"watched with {content_id}", as_json, ids_only, answer.model_dump_json())
