"""ONNX Runtime embeddings for a local sentence-transformers model, exported once and cached.

Why: on a CPU the embedding model is what ingest waits for. The same MiniLM weights run
by ONNX Runtime are faster than torch, and with dynamic int8 quantization (per-channel
weights, MatMuls only) about 2.5-3x faster, with vectors at cosine ~0.99 to torch's.

The ONNX file is exported *here* from the model's own weights (``torch.onnx.export``, no
download) the first time it is needed and cached under ``cache_dir`` in a directory keyed
by the model path, the weights' size and mtime, and the export recipe. Only that first
export needs torch; afterwards this module imports only ``onnxruntime``, ``tokenizers``
and ``numpy``, so ``newsrag ask`` starts without loading torch.

Vectors are computed like sentence-transformers' ``Transformer -> Pooling(mean) ->
Normalize``: the model's ``tokenizer.json``, truncation at ``max_seq_length``, mean over
the attention mask, L2 normalization.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.embeddings import (
    LocalEmbeddings,
    Span,
    _quiet_transformers,
    pool_spans,
    resolve_model_path,
)
from rag.errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:
    from onnxruntime import InferenceSession
    from tokenizers import Tokenizer

logger = logging.getLogger(__name__)

# Bump when the export or quantization recipe changes: cached files are keyed by it.
EXPORT_RECIPE = "v1-opset17-eager-fused|int8-dynamic-perchannel-reducerange-matmul"
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/newsrag/models`` (``~/.cache/newsrag/models`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "newsrag" / "models"


def model_cache_key(model_dir: Path) -> str:
    """A directory name that changes when the model's weights or the recipe change.

    >>> model_cache_key(Path("/nonexistent/all-MiniLM-L6-v2"))[:17]
    'all-MiniLM-L6-v2-'
    """
    digest = hashlib.sha1(f"{model_dir.resolve()}|{EXPORT_RECIPE}".encode())
    for name in ("model.safetensors", "pytorch_model.bin", "config.json"):
        path = model_dir / name
        if path.is_file():
            stat = path.stat()
            digest.update(f"|{name}:{stat.st_size}:{int(stat.st_mtime)}".encode())
    return f"{model_dir.name}-{digest.hexdigest()[:12]}"


def ensure_onnx_model(model_dir: Path, cache_dir: Path, *, quantize: bool) -> Path:
    """The cached ONNX file of ``model_dir`` (fp32 or int8), exporting it on first use.

    Files are written under a temporary name and renamed, so a crash or a concurrent
    export never leaves a truncated model behind.

    Example:
        >>> ensure_onnx_model(model_dir, Path("/tmp/models"), quantize=True)  # doctest: +SKIP
        PosixPath('/tmp/models/model-0123456789ab/model-int8.onnx')
    """
    folder = cache_dir / model_cache_key(model_dir)
    raw = folder / "model-export.onnx"
    target = folder / ("model-int8.onnx" if quantize else "model-fp32.onnx")
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    if not raw.is_file():
        # Expected on a first run, not a problem: one plain INFO line (the CLI shows it).
        logger.info(
            "Preparing the bundled embedding model for this machine (once, under a minute; "
            "cached in %s)",
            folder,
            extra={"user_facing": True},
        )
        _atomic(raw, lambda tmp: _export(model_dir, tmp))
    if quantize:
        _atomic(target, lambda tmp: _quantize(raw, tmp))
    else:
        _atomic(target, lambda tmp: _optimize(raw, tmp, model_dir))
    return target


def _atomic(target: Path, write: Callable[[Path], None]) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _export(model_dir: Path, target: Path) -> None:
    try:
        import torch
        from transformers import AutoModel
    except ImportError as exc:  # pragma: no cover - both are dependencies
        msg = "exporting the ONNX model needs torch and transformers (pip install them)"
        raise MissingDependencyError(msg) from exc

    # Eager attention traces into plain MatMul/Softmax that ONNX Runtime fuses; the
    # example batch has padding so the traced graph keeps the attention mask.
    _quiet_transformers()
    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager")
    model.eval()

    class _Encoder(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return out.last_hidden_state

    ids = torch.full((2, 16), 1000, dtype=torch.long)
    mask = torch.ones((2, 16), dtype=torch.long)
    mask[1, 9:] = 0
    dynamic = {name: {0: "batch", 1: "tokens"} for name in (*_INPUTS, "last_hidden_state")}
    # The tracer warns about shape checks that are constant for BERT encoders.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Encoder(model),
            (ids, mask, torch.zeros_like(ids)),
            str(target),
            input_names=list(_INPUTS),
            output_names=["last_hidden_state"],
            dynamic_axes=dynamic,
            opset_version=17,
            dynamo=False,
        )


def _optimize(raw: Path, target: Path, model_dir: Path) -> None:
    """Fuse attention, LayerNorm and GELU (ONNX Runtime's BERT optimizer): ~1.4x on fp32."""
    from onnxruntime.transformers.optimizer import optimize_model

    config = json.loads((model_dir / "config.json").read_text())
    model = optimize_model(
        str(raw),
        model_type="bert",
        num_heads=int(config.get("num_attention_heads", 0)),
        hidden_size=int(config.get("hidden_size", 0)),
        opt_level=1,
    )
    model.save_model_to_file(str(target))


def _quantize(raw: Path, target: Path) -> None:
    """Dynamic int8: per-channel weights (cos ~0.99 to fp32; per-tensor gave ~0.94),
    reduced range because CPUs without VNNI saturate full-range u8 x s8 products."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:  # pragma: no cover
        msg = "int8 quantization needs the package onnx: pip install onnx"
        raise MissingDependencyError(msg) from exc
    # onnxruntime logs advice for model authors ("consider pre-processing") on the root
    # logger as a WARNING; it needs no action from a newsrag user.
    root = logging.getLogger()
    root.addFilter(_drop_quantizer_advice)
    # quantize_dynamic writes a shape-inferred copy beside its input under a fixed name:
    # processes starting together (several app processes on a fresh host) would delete
    # each other's copy. Each quantizes from a link in a directory of its own.
    try:
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".quantize-") as private:
            source = Path(private) / raw.name
            try:
                os.link(raw, source)
            except OSError:
                shutil.copyfile(raw, source)
            quantize_dynamic(
                str(source),
                str(target),
                weight_type=QuantType.QInt8,
                per_channel=True,
                reduce_range=True,
                op_types_to_quantize=["MatMul"],
            )
    finally:
        root.removeFilter(_drop_quantizer_advice)


def _drop_quantizer_advice(record: logging.LogRecord) -> bool:
    return "pre-processing before quantization" not in record.getMessage()


class OnnxEmbeddings(LocalEmbeddings):
    """A local sentence-transformers model (mean pooling) run by ONNX Runtime.

    Drop-in for :class:`rag.embeddings.SentenceTransformerEmbeddings`: same vectors up to
    float error (``quantize=False``) or cosine ~0.99 (``quantize=True``), same
    ``token_counter()`` and ``max_tokens``. Texts are sorted by token length and batched
    so that little time is spent on padding.

    Example:
        >>> emb = OnnxEmbeddings("bundled:all-MiniLM-L6-v2", quantize=True)
        >>> len(emb.embed_query("what did Meloni propose?"))  # doctest: +SKIP
        384
    """

    def __init__(
        self,
        model_name: str,
        *,
        quantize: bool = True,
        cache_dir: Path | None = None,
        batch_size: int = 32,
        threads: int | None = None,
    ) -> None:
        self.model_name = model_name
        self.quantize = quantize
        self.cache_dir = cache_dir or default_cache_dir()
        self.batch_size = batch_size
        self.threads = threads
        self._lock = threading.Lock()
        self._session: InferenceSession | None = None
        self._input_names: list[str] = []
        self._tokenizer: Tokenizer | None = None
        self._counter: Tokenizer | None = None
        self._max_tokens = 0

    @property
    def backend(self) -> str:
        return "onnx-int8" if self.quantize else "onnx"

    # -- loading -----------------------------------------------------------------------

    def _model_dir(self) -> Path:
        path = Path(resolve_model_path(self.model_name))
        if not (path / "tokenizer.json").is_file() or not (path / "config.json").is_file():
            msg = (
                f"embedding_backend={self.backend} needs a local model directory with "
                f"config.json and tokenizer.json, and {self.model_name!r} is not one: use "
                f"embedding_backend=torch, or a local path"
            )
            raise ConfigError(msg)
        pooling = path / "1_Pooling" / "config.json"
        if pooling.is_file() and not json.loads(pooling.read_text()).get(
            "pooling_mode_mean_tokens", False
        ):
            msg = f"{self.model_name!r} does not use mean pooling: use embedding_backend=torch"
            raise ConfigError(msg)
        return path

    def _load_tokenizers(self) -> None:
        with self._lock:
            if self._tokenizer is not None:
                return
            try:
                from tokenizers import Tokenizer
            except ImportError as exc:  # pragma: no cover - a transformers dependency
                msg = "the ONNX backend needs the package tokenizers: pip install tokenizers"
                raise MissingDependencyError(msg) from exc
            path = self._model_dir()
            max_tokens = 256
            st_config = path / "sentence_bert_config.json"
            if st_config.is_file():
                max_tokens = int(json.loads(st_config.read_text()).get("max_seq_length") or 256)
            positions = json.loads((path / "config.json").read_text())
            max_tokens = min(max_tokens, int(positions.get("max_position_embeddings", 512)))
            # tokenizer.json carries its own padding/truncation (128 for MiniLM), which
            # sentence-transformers overrides with max_seq_length: do the same.
            counter = Tokenizer.from_file(str(path / "tokenizer.json"))
            counter.no_padding()
            counter.no_truncation()
            tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
            tokenizer.no_padding()
            tokenizer.enable_truncation(max_tokens)
            self._counter, self._max_tokens = counter, max_tokens
            self._tokenizer = tokenizer

    def _load_session(self) -> InferenceSession:
        with self._lock:
            if self._session is not None:
                return self._session
            try:
                import onnxruntime as ort
            except ImportError as exc:  # pragma: no cover - a chromadb dependency
                msg = "the ONNX backend needs onnxruntime: pip install onnxruntime"
                raise MissingDependencyError(msg) from exc
            path = ensure_onnx_model(self._model_dir(), self.cache_dir, quantize=self.quantize)
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            if self.threads:
                options.intra_op_num_threads = self.threads
            logger.info("loading ONNX embedding model %s", path)
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            self._input_names = [i.name for i in session.get_inputs()]
            self._session = session
            return session

    # -- the Embeddings interface --------------------------------------------------------

    @property
    def max_tokens(self) -> int:
        self._load_tokenizers()
        return self._max_tokens

    def token_counter(self) -> Callable[[Sequence[str]], list[int]]:
        """A function giving the word-piece count of each text (special tokens excluded)."""
        self._load_tokenizers()
        counter = self._counter
        assert counter is not None

        def count(texts: Sequence[str]) -> list[int]:
            if not texts:
                return []
            encodings = counter.encode_batch(list(texts), add_special_tokens=False)
            return [len(e.ids) for e in encodings]

        return count

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = self.encode(texts).tolist()
        return vectors

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalized float32 vectors, one row per text (``(0, 0)`` for no text)."""
        vectors, _ = self._run(texts, None)
        return vectors

    @property
    def gives_span_vectors(self) -> bool:
        return True  # _model_dir() refuses models that do not mean-pool

    def embed_with_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[Span]]
    ) -> tuple[np.ndarray, list[np.ndarray | None]]:
        vectors, pooled = self._run(texts, spans)
        return vectors, list(pooled)

    def _run(
        self, texts: Sequence[str], spans: Sequence[Sequence[Span]] | None
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Text vectors, and span vectors pooled from the same pass when ``spans`` is given."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32), []
        self._load_tokenizers()
        session = self._load_session()
        tokenizer = self._tokenizer
        assert tokenizer is not None
        encodings = tokenizer.encode_batch(list(texts))
        lengths = np.array([len(e.ids) for e in encodings])
        order = np.argsort(-lengths, kind="stable")  # longest first: padding stays small
        out: np.ndarray | None = None
        pooled: list[np.ndarray] = [np.zeros((0, 0), dtype=np.float32)] * len(texts)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            width = int(lengths[rows].max())
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                n = int(lengths[i])
                ids[r, :n] = encodings[i].ids
                mask[r, :n] = 1
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = session.run(None, {k: feed[k] for k in self._input_names})[0]
            weights = mask[:, :, None].astype(np.float32)
            summed = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            norms = np.linalg.norm(summed, axis=1, keepdims=True)
            if out is None:
                out = np.empty((len(texts), summed.shape[1]), dtype=np.float32)
            out[rows] = summed / np.clip(norms, 1e-12, None)
            if spans is not None:
                for r, i in enumerate(rows):
                    enc = encodings[i]
                    n = int(lengths[i])
                    pooled[i] = pool_spans(
                        hidden[r, :n], enc.offsets, enc.special_tokens_mask, spans[i]
                    )
        assert out is not None
        return out, pooled
