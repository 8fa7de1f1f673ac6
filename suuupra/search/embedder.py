"""Content as vectors for "more like this": one small interface, an offline scikit-learn model behind it, and the
store that versions fitted models (`suuupra index fit`).

The model that runs here needs nothing beyond scikit-learn: TF-IDF over words (1-2 grams) and character 3-5 grams,
reduced by a truncated SVD (latent semantic analysis) to `dim` dimensions, rows scaled to unit length so that the
engine's cosine distance ranks them. Where a sentence-transformer is at hand, `SentenceTransformerEmbedder` takes its
place: the job, the index and the queries only see `Embedder`.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import joblib
import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

MODEL_FILE = "model.joblib"
META_FILE = "meta.json"
CURRENT_FILE = "CURRENT"
# Below this many distinct documents an SVD has nothing to reduce.
MIN_DOCUMENTS = 3
Vectors = npt.NDArray[np.float32]


class ModelError(RuntimeError):
    """No usable embedder; the message says what to run."""


@runtime_checkable
class Embedder(Protocol):
    """Texts to vectors: `(len(texts), dim)` float32, rows of unit length (or zero for a text with nothing known)."""

    @property
    def version(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Vectors: ...


def document_text(
    title: str | None, description: str | None, tags: Iterable[str] | None, category: str | None,
    course_title: str | None,
) -> str:  # fmt: skip
    """What is embedded of a content item: the same function for fitting, indexing and queries. The title twice,
    so that it weighs more than the description."""
    parts = [title or "", title or "", course_title or "", description or "", " ".join(tags or ()), category or ""]
    return " . ".join(part for part in parts if part)


def _as_float32_rows(matrix: Any) -> Vectors:
    vectors = np.asarray(matrix, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    # Rounded to float32 after normalising in float64: the same text gives the same bytes in any batch.
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0).astype(np.float32)


@dataclass(frozen=True)
class ModelInfo:
    version: str
    kind: str
    dim: int
    documents: int
    fitted_at: str
    sklearn_version: str


class TfidfSvdEmbedder:
    """TF-IDF (words and character n-grams) reduced by a truncated SVD; deterministic for a given corpus."""

    kind = "tfidf-svd"

    def __init__(self, pipeline: Pipeline, info: ModelInfo) -> None:
        self._pipeline = pipeline
        self.info = info

    @property
    def version(self) -> str:
        return self.info.version

    @property
    def dim(self) -> int:
        return self.info.dim

    @classmethod
    def fit(cls, texts: Sequence[str], dim: int) -> TfidfSvdEmbedder:
        # scikit-learn takes a second or two to import: the queries and the CLI's other commands never need it.
        import sklearn
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import FeatureUnion, Pipeline
        from sklearn.preprocessing import Normalizer

        corpus = sorted(set(texts))  # order and repeats of the input do not change the model
        if len(corpus) < MIN_DOCUMENTS:
            raise ModelError(
                f"{len(corpus)} distinct documents are too few to fit an embedder (at least {MIN_DOCUMENTS})"
            )
        features = FeatureUnion([
            ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, strip_accents="unicode", min_df=1)),
            ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, min_df=1)),
        ])  # fmt: skip
        matrix = features.fit_transform(corpus)
        # An SVD has at most min(documents, features) - 1 useful components.
        components = max(1, min(dim, matrix.shape[0] - 1, matrix.shape[1] - 1))
        svd = TruncatedSVD(n_components=components, algorithm="randomized", n_iter=7, random_state=0)
        svd.fit(matrix)
        pipeline = Pipeline([("features", features), ("svd", svd), ("unit", Normalizer())])
        digest = hashlib.sha256("\x1e".join(corpus).encode()).hexdigest()[:10]
        info = ModelInfo(
            version=f"{cls.kind}-{components}-{digest}", kind=cls.kind, dim=components, documents=len(corpus),
            fitted_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), sklearn_version=sklearn.__version__,
        )  # fmt: skip
        return cls(pipeline, info)

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return _as_float32_rows(self._pipeline.transform(list(texts)))


class SentenceTransformerEmbedder:
    """A sentence-transformer model from a folder on disk, where the `sentence-transformers` package is installed
    (it brings PyTorch, so the project does not depend on it). Not fitted: `suuupra index fit --sentence-transformer
    PATH` records it as a version like any other."""

    kind = "sentence-transformer"

    def __init__(self, model_path: Path) -> None:
        try:
            from sentence_transformers import SentenceTransformer  # type: ignore[import-not-found]
        except ImportError as error:
            raise ModelError("the sentence-transformers package is not installed in this environment") from error
        self._model = SentenceTransformer(str(model_path), device="cpu")
        dim = int(self._model.get_sentence_embedding_dimension())
        self.info = ModelInfo(
            version=f"{self.kind}-{dim}-{hashlib.sha256(str(model_path).encode()).hexdigest()[:10]}", kind=self.kind,
            dim=dim, documents=0, fitted_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            sklearn_version=_sklearn_version(),
        )  # fmt: skip
        self.model_path = model_path

    @property
    def version(self) -> str:
        return self.info.version

    @property
    def dim(self) -> int:
        return self.info.dim

    def embed(self, texts: Sequence[str]) -> Vectors:
        return _as_float32_rows(self._model.encode(list(texts), batch_size=64, convert_to_numpy=True))


_VERSION = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")


class ModelStore:
    """Fitted embedders under one folder, one sub-folder per version, and which one is current."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def save(self, embedder: TfidfSvdEmbedder | SentenceTransformerEmbedder, make_current: bool = True) -> Path:
        folder = self.directory / embedder.version
        folder.mkdir(parents=True, exist_ok=True)
        if isinstance(embedder, TfidfSvdEmbedder):
            joblib.dump(embedder._pipeline, folder / MODEL_FILE)
        meta: dict[str, Any] = asdict(embedder.info)
        if isinstance(embedder, SentenceTransformerEmbedder):
            meta["model_path"] = str(embedder.model_path)
        # Written last: a folder with its meta file holds a complete model.
        (folder / META_FILE).write_text(json.dumps(meta, indent=2))
        if make_current:
            self.set_current(embedder.version)
        return folder

    def set_current(self, version: str) -> None:
        if not (self.directory / version / META_FILE).is_file():
            raise ModelError(f"no model {version} in {self.directory}; `suuupra index models` lists them")
        temporary = self.directory / f".{CURRENT_FILE}.tmp"
        temporary.write_text(version)
        temporary.replace(self.directory / CURRENT_FILE)

    def current_version(self) -> str | None:
        try:
            version = (self.directory / CURRENT_FILE).read_text().strip()
        except OSError:
            return None
        return version if _VERSION.match(version) else None

    def models(self) -> list[ModelInfo]:
        infos = []
        for meta in sorted(self.directory.glob(f"*/{META_FILE}")):
            values = json.loads(meta.read_text())
            infos.append(ModelInfo(**{key: values[key] for key in ModelInfo.__dataclass_fields__}))
        return infos

    def load(self, version: str | None = None) -> Embedder:
        chosen = version or self.current_version()
        if chosen is None:
            raise ModelError(f"no fitted embedder in {self.directory}: run `suuupra index fit`")
        folder = self.directory / chosen
        try:
            meta = json.loads((folder / META_FILE).read_text())
        except OSError as error:
            raise ModelError(f"no model {chosen} in {self.directory}: run `suuupra index fit`") from error
        info = ModelInfo(**{key: meta[key] for key in ModelInfo.__dataclass_fields__})
        if info.kind == SentenceTransformerEmbedder.kind:
            return SentenceTransformerEmbedder(Path(meta["model_path"]))
        return TfidfSvdEmbedder(joblib.load(folder / MODEL_FILE), info)


def _sklearn_version() -> str:
    import sklearn

    return str(sklearn.__version__)
