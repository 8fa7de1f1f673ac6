"""The indexing job on the real platform and search engine: thousands of items whose updates, withdrawals and
deletions arrive out of order and twice, tens of thousands of views, malformed records among them. The index must
hold exactly the newest published revision of each item and the graph exactly the co-watch counts, both computed
independently; planted near-duplicates and co-watch patterns must come first; and a run killed, restored from its
checkpoint, with the engine restarted twice, must end identical to the uninterrupted run."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from connectors.kafka.dead_letter import read_dead_letters
from jobs.runtime import completed_checkpoints
from suuupra.events import EventPublisher
from suuupra.isolation import isolated_environment
from suuupra.platform.base import wait_until
from suuupra.platform.manager import Platform
from suuupra.platform.search import SearchEngine
from suuupra.search.cowatch import CoWatchGraph
from suuupra.search.embedder import Embedder, ModelStore
from suuupra.search.engine import engine_client
from suuupra.search.index import SearchIndex
from suuupra.search.service import SearchService
from suuupra.search.workload import (
    CatalogueProfile,
    ContentStream,
    ViewProfile,
    ViewStream,
    content_stream,
    view_stream,
)
from suuupra.settings import Settings, environment_overrides
from suuupra.simulate.runner import MALFORMED_KINDS, malformed_record
from suuupra.verify.search import expected_cowatch, expected_documents, expected_rows
from tests.jobs.analytics_support import SUUUPRA

ITEMS = 1500
SESSIONS = 6000


@dataclass
class World:
    settings: Settings
    content: ContentStream
    views: ViewStream
    malformed: int
    embedder: Embedder
    expected_index: dict[str, dict[str, bytes]]
    expected_edges: dict[tuple[str, str, int], int]
    uninterrupted: tuple[dict[str, dict[str, bytes]], dict[tuple[str, str, int], int]] | None = None


def _environment(settings: Settings) -> dict[str, str]:
    return {**os.environ, **environment_overrides(settings, "topics", "flink", "search")}


def _publish(settings: Settings, events: list[dict[str, Any]], every: int, seed: int) -> int:
    """Publishes the events, a malformed record after every `every`-th; returns how many malformed."""
    publisher = EventPublisher(settings)
    malformed = 0
    for index, event in enumerate(events):
        topic = publisher.publish(event)
        if index % every == 7:
            schema = publisher.catalog.schema_for(event["event_type"]).schema
            valid = publisher.producer.serializer.serialize(topic, schema, event)
            bad = malformed_record(
                MALFORMED_KINDS[malformed % len(MALFORMED_KINDS)], valid, random.Random(seed + index)
            )
            publisher.producer.produce_raw(topic, event["user_id"].encode(), bad, timestamp_ms=event["event_time"])
            malformed += 1
    publisher.flush()
    return malformed


def _with_search(settings: Settings, name: str, group: str, checkpoints: Path, **search: Any) -> Settings:
    return settings.model_copy(update={
        "search": settings.search.model_copy(update={"index": name, "graph": name, **search}),
        "flink": settings.flink.model_copy(update={
            "checkpoint_dir": checkpoints, "consumer_group_prefix": group, "checkpoint_interval_s": 2.0,
        }),
    })  # fmt: skip


@pytest.fixture(scope="module")
def world(settings: Settings, platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("indexing")
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    with isolated_environment(settings, prefix) as isolated:
        own = _with_search(isolated, f"{prefix}-a", f"{prefix}-a", folder / "a", models_dir=folder / "models")
        content = content_stream(CatalogueProfile(seed=11, items=ITEMS, duplicate_pairs=20))
        documents = expected_documents(content.events)
        views = view_stream(sorted(documents), ViewProfile(seed=12, sessions=SESSIONS))
        malformed = _publish(own, content.events, 150, 1) + _publish(own, views.events, 400, 2)
        # The embedder is fitted from what the content topic holds, as a user does it.
        fit = subprocess.run([SUUUPRA, "index", "fit", "--dim", "64"], env=_environment(own), capture_output=True,
                             text=True, timeout=300, check=False)  # fmt: skip
        assert fit.returncode == 0 and "current" in fit.stdout, fit.stdout + fit.stderr
        embedder = ModelStore(own.embedder_models_dir).load()
        world = World(own, content, views, malformed, embedder, expected_rows(content.events, embedder),
                      expected_cowatch(views.events, own.search.cowatch_window_s * 1000))  # fmt: skip
        try:
            yield world
        finally:
            client = engine_client(own)
            for name in (f"{prefix}-a", f"{prefix}-b"):
                named = _with_search(own, name, name, folder)
                SearchIndex(client, named, embedder.version).drop()
                CoWatchGraph(client, named).drop()
            client.close()


def _state(settings: Settings, version: str) -> tuple[dict[str, dict[str, bytes]], dict[tuple[str, str, int], int]]:
    client = engine_client(settings)
    try:
        return SearchIndex(client, settings, version).documents(), CoWatchGraph(client, settings).edges()
    finally:
        client.close()


def _cli(settings: Settings, *args: str) -> list[str]:
    result = subprocess.run([SUUUPRA, *args], env=_environment(settings), capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.split()


def test_bounded_run_holds_the_newest_published_revisions_and_the_co_watch_counts(world: World) -> None:
    settings = world.settings
    kinds = {event["event_type"] for event in world.content.events}
    assert {"content.updated", "content.unpublished", "content.deleted"} <= kinds
    assert len(world.views.events) > 20_000 and len(world.expected_index) > 1200
    result = subprocess.run([SUUUPRA, "jobs", "run", "indexing", "--bounded"], env=_environment(settings),
                            capture_output=True, text=True, timeout=900, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    documents, edges = _state(settings, world.embedder.version)
    assert documents == world.expected_index  # every field, the vector byte for byte
    assert edges == world.expected_edges
    letters = read_dead_letters(settings.kafka.client_config(), settings.topics.dead_letter)
    assert len(letters) == world.malformed and {letter.headers["failed.by"] for letter in letters} == {"indexing"}
    world.uninterrupted = (documents, edges)

    service = SearchService(settings)
    for original, copy in world.content.duplicate_pairs:
        assert [hit.content_id for hit in service.similar(original, 1).results] == [copy]
        assert [hit.content_id for hit in service.similar(copy, 1).results] == [original]
    for anchor, partners in world.views.planted.items():
        assert [hit.content_id for hit in service.also_watched(anchor, 2, world.views.at_ms).results] == partners
    service.close()

    # The same answers on the command line.
    original, copy = world.content.duplicate_pairs[0]
    assert _cli(settings, "similar", original, "--ids", "-n", "1") == [copy]
    anchor, partners = next(iter(world.views.planted.items()))
    assert _cli(settings, "also-watched", anchor, "--at", str(world.views.at_ms), "--ids", "-n", "2") == partners
    number = world.expected_index[original]["description"].split()[-1].decode()
    assert set(_cli(settings, "search", number, "--ids", "-n", "100")) >= {original, copy}


def _start(settings: Settings, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([SUUUPRA, "jobs", "run", "indexing", *extra], env=_environment(settings),
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def _kill(job: subprocess.Popen[bytes]) -> None:
    os.killpg(job.pid, signal.SIGKILL)
    job.wait(30)


def _restart_engine(platform: Platform) -> None:
    engine = next(component for component in platform.components if isinstance(component, SearchEngine))
    assert engine.stop()
    platform.up()


def test_kill_restore_and_engine_restarts_end_identical_to_the_uninterrupted_run(
    world: World, platform: Platform
) -> None:
    if world.uninterrupted is None:
        pytest.skip("compares with the bounded run of the test before it")
    name = f"{world.settings.search.index.removesuffix('-a')}-b"
    # Sink batches wait seconds before they are written: the kill leaves accepted but unwritten rows behind. The
    # backlog fits in the network buffers, so an aligned checkpoint would complete only once all of it was processed
    # (on a slow machine, after everything was written): unaligned ones are taken mid-stream. The documents reach
    # the embedding one per Python bundle, so the backlog takes longer than the first checkpoint (a checkpoint
    # flushes the sinks: one taken after the whole backlog writes everything, and CI once saw exactly that).
    folder = world.settings.checkpoint_dir.parent / "b"
    settings = _with_search(world.settings, name, name, folder, models_dir=world.settings.embedder_models_dir,
                            sink_batch_delay_s=3.0, embed_batch_rows=1)  # fmt: skip
    settings = settings.model_copy(update={"flink": settings.flink.model_copy(update={
        "aligned_checkpoint_timeout_s": 0, "python_bundle_size": 1, "checkpoint_interval_s": 1.0,
    })})  # fmt: skip
    version = world.embedder.version

    def written() -> tuple[int, int]:
        client = engine_client(settings)
        try:
            graph = CoWatchGraph(client, settings)
            edges = graph.query("MATCH ()-[e:CO_WATCHED]->() RETURN count(e)") if graph.exists() else [[0]]
            return SearchIndex(client, settings, version).count(), int(edges[0][0])
        finally:
            client.close()

    job = _start(settings)
    try:
        assert wait_until(lambda: any(completed_checkpoints(settings, "indexing")) and written()[0] > 0, 300,
                          interval=0.5)  # fmt: skip
    finally:
        _kill(job)
    documents, edges = written()
    print(f"killed at {documents} of {len(world.expected_index)} documents, {edges} of {len(world.expected_edges)}")
    assert documents < len(world.expected_index) or edges < len(world.expected_edges), (
        f"the kill must come mid-stream: {documents} documents, {edges} edges written"
    )

    _restart_engine(platform)  # with the job down
    restored = _start(settings, "--restore", "latest")
    try:
        assert wait_until(lambda: written() != (documents, edges), 300, interval=1)
        _restart_engine(platform)  # with the job writing: its sink reconnects and loads its script again
        complete = (len(world.expected_index), len(world.expected_edges))
        assert wait_until(lambda: written() == complete, 400, interval=2), written()
        assert wait_until(lambda: _state(settings, version) == world.uninterrupted, 60, interval=3)
    finally:
        _kill(restored)
    _restart_engine(platform)
    assert _state(settings, version) == world.uninterrupted


def test_hostile_records_are_dead_lettered_and_the_index_and_graph_stay_exact(
    isolated: Settings, tmp_path: Path
) -> None:
    """The hostile corpus (tests/faults/test_hostile_input.py) against the indexing job: every hostile record on the
    content and clickstream topics dead-lettered with a reason of its kind, the job RUNNING without a restart, and
    the index and the co-watch graph exactly those of the valid events, those published after the corpus too."""
    from tests.faults.test_hostile_input import JobCase, run_case

    group = f"test-{uuid.uuid4().hex[:8]}"
    settings = _with_search(isolated, isolated.search.index, group, tmp_path / "checkpoints",
                            models_dir=tmp_path / "models")  # fmt: skip
    content = content_stream(CatalogueProfile(seed=31, items=200, duplicate_pairs=5))
    views = view_stream(sorted(expected_documents(content.events)), ViewProfile(seed=32, sessions=400))

    def fit(settings: Settings) -> None:
        fitted = subprocess.run([SUUUPRA, "index", "fit", "--dim", "32"], env=_environment(settings),
                                capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
        assert fitted.returncode == 0, fitted.stdout + fitted.stderr

    def differences(settings: Settings, valid: list[dict[str, Any]]) -> dict[str, int]:
        embedder = ModelStore(settings.embedder_models_dir).load()
        documents, edges = _state(settings, embedder.version)
        expected = expected_rows([e for e in valid if str(e["event_type"]).startswith("content.")], embedder)
        cowatch = expected_cowatch([e for e in valid if str(e["event_type"]).startswith("clickstream.")],
                                   settings.search.cowatch_window_s * 1000)  # fmt: skip
        wrong_documents = sum(documents.get(key) != row for key, row in expected.items())
        wrong_edges = sum(edges.get(key) != count for key, count in cowatch.items())
        wrong = {
            "documents": wrong_documents + len(documents.keys() - expected.keys()),
            "edges": wrong_edges + len(edges.keys() - cowatch.keys()),
        }
        return {name: count for name, count in wrong.items() if count}

    case = JobCase(
        "indexing",
        lambda settings: [settings.topics.content, settings.topics.clickstream],
        _environment,
        lambda _settings: [*content.events, *views.events],
        differences,
        prepare=fit,
    )
    try:
        run_case(case, settings, tmp_path)
    finally:
        client = engine_client(settings)
        with contextlib.suppress(Exception):
            SearchIndex(client, settings, ModelStore(settings.embedder_models_dir).load().version).drop()
        CoWatchGraph(client, settings).drop()
        client.close()
