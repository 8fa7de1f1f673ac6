"""Figures of the indexing job (issue 10): Kafka -> PyFlink (embeddings in a pandas UDF) -> RediSearch / FalkorDB.

    .venv/bin/python bench/indexing.py                                      # the full run (a few minutes)
    .venv/bin/python bench/indexing.py --items 2000 --views 20000 --fresh 50 --queries 200   # a quick one

Needs the platform (`suuupra platform up`). Everything is its own and removed at the end: topics (bench-<id>.*) and
their subjects (`suuupra.isolation`), the index and graph (bench-<id>), the fitted model and checkpoints (a temporary
folder), the consumer groups (bench-<id>-indexing-*). The job runs as `suuupra jobs run indexing` (unbounded) in its
own process group and is killed when the run is done.

(a) Indexing throughput: `--items` distinct items published (one `content.published` each: the embedder's work is
per item) are produced before the job starts, the embedder is fitted on them; then the job starts and the index's
document count is polled every 0.25 s. Reported: start-up (job start -> first document) and items/s from the first
document to the last, embeddings and the guarded writes included.
(b) Co-watch update throughput: with the job running and the index complete, `--views` views (the workload's users,
sessions and planted patterns) are produced; reported: views/s from the first view sent to the graph holding every
expected co-watch count (edge count and the sum of co-watchers equal to the independent computation).
(c) Freshness: `--fresh` more items published one at a time at `--fresh-rate` per second, each with a word of its
own; a poller asks the index every 20 ms for the pending words (one full-text query); latency = sent -> searchable.
(d) Query latency, `--queries` each, through `SearchService` (what the CLI and the HTTP API call; one Python client,
loopback): search (one or two words of the catalogue's vocabulary, a filter in half of them), similar (random
items), also-watched (random items with co-watchers). p50 / p99 in ms.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from suuupra.events import EventPublisher
from suuupra.isolation import isolated_environment
from suuupra.platform.manager import Platform
from suuupra.search.cowatch import CoWatchGraph
from suuupra.search.engine import command, engine_client
from suuupra.search.index import Filters, SearchIndex
from suuupra.search.service import SearchService, fit_embedder
from suuupra.search.workload import CatalogueProfile, ViewProfile, content_stream, view_stream
from suuupra.settings import FlinkSettings, Settings, environment_overrides, load_settings
from suuupra.verify.search import event_text, expected_cowatch, expected_documents

SUUUPRA = str(Path(sys.executable).parent / "suuupra")


def plain_catalogue(seed: int, items: int) -> CatalogueProfile:
    """Distinct items, one publication each: nothing withdrawn, deleted, edited, disordered or repeated."""
    return CatalogueProfile(seed=seed, items=items, duplicate_pairs=0, max_edits=0, withdraw_share=0,
                            delete_share=0, disorder_share=0, replay_share=0)  # fmt: skip


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def wait(condition: Any, timeout: float, interval: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        time.sleep(interval)
    raise TimeoutError("the job did not get there in time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--views", type=int, default=100_000, help="about this many views (the workload's sessions)")
    parser.add_argument("--fresh", type=int, default=200)
    parser.add_argument("--fresh-rate", type=float, default=10.0)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=256)
    args = parser.parse_args()

    base = load_settings()
    Platform(base).require_healthy()
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as folder, isolated_environment(base, prefix) as isolated:
        settings = isolated.model_copy(update={
            "search": isolated.search.model_copy(update={"index": prefix, "graph": prefix,
                                                         "models_dir": Path(folder) / "models"}),
            "flink": FlinkSettings(checkpoint_dir=Path(folder) / "checkpoints", consumer_group_prefix=prefix),
        })  # fmt: skip
        try:
            run(settings, args)
        finally:
            client = engine_client(settings)
            for version in os.listdir(settings.embedder_models_dir) if settings.embedder_models_dir.exists() else []:
                SearchIndex(client, settings, version).drop()
            CoWatchGraph(client, settings).drop()
            client.close()


def run(settings: Settings, args: argparse.Namespace) -> None:
    catalogue = content_stream(plain_catalogue(31, args.items))
    documents = expected_documents(catalogue.events)
    publisher = EventPublisher(settings)
    for event in catalogue.events:
        if event["event_type"] == "content.published":
            publisher.publish(event)
    publisher.flush()
    texts = [event_text(event) for event in documents.values()]
    began = time.monotonic()
    embedder = fit_embedder(settings, texts, args.dim)
    fit_s = time.monotonic() - began
    began = time.monotonic()
    embedder.embed(texts)
    offline = len(texts) / (time.monotonic() - began)
    print(f"embedder {embedder.version}: fitted on {len(texts)} items in {fit_s:.1f} s; "
          f"embeds {offline:,.0f} items/s on its own (one process, no job)")  # fmt: skip

    environment = {**os.environ, **environment_overrides(settings, "topics", "flink", "search")}
    job = subprocess.Popen([SUUUPRA, "jobs", "run", "indexing"], env=environment, start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    client = engine_client(settings)
    index = SearchIndex(client, settings, embedder.version)
    graph = CoWatchGraph(client, settings)
    try:
        started = time.monotonic()
        first = wait(lambda: index.exists() and index.count() > 0, 600, 0.25)
        last = wait(lambda: index.count() >= len(documents), 1800, 0.25)
        items_s = len(documents) / max(last - first, 1e-9)
        print(f"(a) indexing: start-up {first - started:.1f} s; {len(documents):,} items in {last - first:.1f} s = "
              f"{items_s:,.0f} items/s (embeddings and guarded writes included)")  # fmt: skip

        views = view_stream(sorted(documents), ViewProfile(seed=32, sessions=max(1, args.views // 3), anchors=8))
        expected = expected_cowatch(views.events, settings.search.cowatch_window_s * 1000)
        expected_users = sum(expected.values())
        sent = time.monotonic()
        for event in views.events:
            publisher.publish(event)
        publisher.flush()
        produced = time.monotonic() - sent

        def graph_complete() -> bool:
            if not graph.exists():
                return False
            rows = graph.query("MATCH ()-[e:CO_WATCHED]->() RETURN count(e), sum(e.users)")
            return bool(rows) and int(rows[0][0]) == len(expected) and int(rows[0][1]) == expected_users

        done = wait(graph_complete, 1800, 0.25)
        rate = len(views.events) / (done - sent)
        print(f"(b) co-watch: {len(views.events):,} views (produced in {produced:.1f} s) -> {len(expected):,} "
              f"pair-days exact after {done - sent:.1f} s = {rate:,.0f} views/s")  # fmt: skip

        fresh = freshness(settings, publisher, index, args.fresh, args.fresh_rate)
        print(f"(c) freshness, event sent -> searchable, {len(fresh)} items at {args.fresh_rate}/s: "
              f"p50 {percentile(fresh, 0.5) * 1000:.0f} ms, p99 {percentile(fresh, 0.99) * 1000:.0f} ms, "
              f"max {max(fresh) * 1000:.0f} ms")  # fmt: skip
        queries(settings, sorted(documents), expected, views.at_ms, args.queries)
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(30)
        client.close()
    print(f"load average at the end: {os.getloadavg()}")


def freshness(
    settings: Settings, publisher: EventPublisher, index: SearchIndex, count: int, rate: float
) -> list[float]:
    template = content_stream(plain_catalogue(33, count))
    items = [event for event in template.events if event["event_type"] == "content.published"]
    pending: dict[str, float] = {}
    latencies: list[float] = []
    lock = threading.Lock()
    stop = threading.Event()

    def poll() -> None:
        client = engine_client(settings)
        while not stop.is_set() or pending:
            with lock:
                words = list(pending)
            if words:
                reply = command(client, "FT.SEARCH", index.names.index, f"@title:({'|'.join(words)})",
                                "RETURN", "1", "title", "LIMIT", "0", str(len(words)), "DIALECT", "2")  # fmt: skip
                now = time.monotonic()
                for i in range(2, len(reply), 2):
                    word = dict(zip(reply[i][::2], reply[i][1::2], strict=True))[b"title"].decode().split()[-1]
                    with lock:
                        if word in pending:
                            latencies.append(now - pending.pop(word))
            time.sleep(0.02)
        client.close()

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    start = time.monotonic()
    for number, event in enumerate(items):
        word = f"fresh{uuid.uuid4().hex[:10]}"
        value = {**event, "event_id": str(uuid.uuid4()), "title": f"{event['title']} {word}",
                 "event_time": int(time.time() * 1000)}  # fmt: skip
        with lock:
            pending[word] = time.monotonic()
        publisher.publish(value)
        publisher.flush()
        time.sleep(max(0.0, start + (number + 1) / rate - time.monotonic()))
    deadline = time.monotonic() + 120
    while pending and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    poller.join(30)
    if pending:
        print(f"    {len(pending)} items never became searchable within 120 s")
    return latencies


def queries(settings: Settings, ids: list[str], edges: dict[tuple[str, str, int], int], at_ms: int, count: int) -> None:
    rng = random.Random(34)
    service = SearchService(settings)
    vocabulary = ["python", "kafka", "guitar", "basics", "advanced", "practice", "project", "history", "physics",
                  "marketing", "exam", "deep", "patterns", "testing", "chess", "yoga", "french", "design"]  # fmt: skip
    watched = sorted({low for low, _, _ in edges} | {high for _, high, _ in edges})
    timings: dict[str, list[float]] = {"search": [], "similar": [], "also-watched": []}
    for _ in range(count):
        text = " ".join(rng.sample(vocabulary, rng.randint(1, 2)))
        filters = Filters(language="en", max_price_minor=500_000) if rng.random() < 0.5 else Filters()
        began = time.perf_counter()
        service.search(text, filters, 10)
        timings["search"].append(time.perf_counter() - began)
        began = time.perf_counter()
        service.similar(rng.choice(ids), 10)
        timings["similar"].append(time.perf_counter() - began)
        began = time.perf_counter()
        service.also_watched(rng.choice(watched), 10, at_ms)
        timings["also-watched"].append(time.perf_counter() - began)
    service.close()
    for name, values in timings.items():
        p50, p99, mean = (percentile(values, 0.5), percentile(values, 0.99), statistics.mean(values))
        print(
            f"(d) {name:13} {count} queries: p50 {p50 * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms, "
            f"mean {mean * 1000:.2f} ms"
        )


if __name__ == "__main__":
    main()
