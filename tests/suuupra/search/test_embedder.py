"""The offline embedder: deterministic, versioned, stored and loaded byte for byte, and good enough that planted
near-duplicates are each other's nearest among thousands of items."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pytest

from suuupra.search.embedder import Embedder, ModelError, ModelStore, TfidfSvdEmbedder
from suuupra.search.workload import CatalogueProfile, ContentStream, content_stream
from suuupra.verify.search import event_text, expected_documents


@cache
def catalogue() -> tuple[ContentStream, list[str], list[str]]:
    stream = content_stream(CatalogueProfile(items=2500, duplicate_pairs=25))
    documents = expected_documents(stream.events)
    ids = sorted(documents)
    return stream, ids, [event_text(documents[cid]) for cid in ids]


@cache
def fitted() -> TfidfSvdEmbedder:
    return TfidfSvdEmbedder.fit(catalogue()[2], 128)


def test_planted_near_duplicates_are_each_others_nearest() -> None:
    stream, ids, texts = catalogue()
    vectors = fitted().embed(texts)
    assert vectors.dtype == np.float32 and vectors.shape == (len(ids), 128)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -2.0)
    position = {cid: i for i, cid in enumerate(ids)}
    assert len(stream.duplicate_pairs) == 25
    for original, copy in stream.duplicate_pairs:
        assert ids[int(similarity[position[original]].argmax())] == copy
        assert ids[int(similarity[position[copy]].argmax())] == original


def test_the_version_names_the_corpus_and_the_model_is_deterministic() -> None:
    texts = catalogue()[2][:400]
    first, again = TfidfSvdEmbedder.fit(texts, 32), TfidfSvdEmbedder.fit(list(reversed(texts)) + texts[:10], 32)
    assert first.version == again.version and first.version.startswith("tfidf-svd-32-")
    assert np.array_equal(first.embed(texts), again.embed(texts))
    assert TfidfSvdEmbedder.fit(texts[:-1], 32).version != first.version
    # One text alone gives the same bytes as inside a batch: a job's batches never change a vector.
    assert first.embed(texts[5:6]).tobytes() == first.embed(texts)[5:6].tobytes()


def test_stored_models_load_as_they_were_and_the_current_one_is_chosen(tmp_path: Path) -> None:
    texts = catalogue()[2][:300]
    store = ModelStore(tmp_path / "models")
    with pytest.raises(ModelError, match="suuupra index fit"):
        store.load()
    old, new = TfidfSvdEmbedder.fit(texts[:200], 16), TfidfSvdEmbedder.fit(texts, 24)
    store.save(old)
    store.save(new)
    assert store.current_version() == new.version
    assert {info.version for info in store.models()} == {old.version, new.version}
    loaded = store.load()
    assert isinstance(loaded, Embedder) and (loaded.version, loaded.dim) == (new.version, 24)
    assert loaded.embed(texts).tobytes() == new.embed(texts).tobytes()
    store.set_current(old.version)
    assert store.load().version == old.version
    with pytest.raises(ModelError, match="no model"):
        store.set_current("tfidf-svd-16-nonexistent")


def test_too_small_a_corpus_is_refused_and_unknown_words_give_no_vector() -> None:
    with pytest.raises(ModelError, match="too few"):
        TfidfSvdEmbedder.fit(["one text", "one text", "another"], 8)
    embedder = TfidfSvdEmbedder.fit(["python basics", "java basics", "rust patterns", "go patterns"], 8)
    assert embedder.dim == 3  # at most documents - 1 components
    assert not embedder.embed(["\u0416\u0416\u0416"]).any()
