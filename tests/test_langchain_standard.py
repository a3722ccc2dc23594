"""LangChain's own standard test suites (``langchain-tests``) run against newsrag's parts.

The retriever suite runs on a real library (real Chroma, the bundled MiniLM) holding four
short articles; the embeddings suite on each embedding backend of
:data:`rag.components.EMBEDDING_BACKENDS`, each loading the real bundled model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from langchain_tests.integration_tests import (
    EmbeddingsIntegrationTests,
    RetrieversIntegrationTests,
)

from rag.assistant import Assistant
from rag.components import EMBEDDING_BACKENDS
from rag.embeddings import SentenceTransformerEmbeddings
from rag.onnx_embeddings import OnnxEmbeddings
from rag.retriever import HybridRetriever
from rag.settings import BUNDLED_EMBEDDING_MODEL

pytestmark = pytest.mark.slow

# Four short articles written for these tests, each about the port strike, so that a
# question about it has at least three articles to return.
LIBRARY = [
    Document(
        "Dock workers in Rotterdam began a 48-hour strike on Monday over pay, halting "
        "container traffic at Europe's largest port.",
        id="strike-1",
        metadata={"title": "Rotterdam dock workers strike over pay", "date": "2024-03-04"},
    ),
    Document(
        "The Rotterdam port strike entered its second day as unions rejected a 4% pay "
        "offer; dozens of container ships waited offshore.",
        id="strike-2",
        metadata={"title": "Port strike enters second day", "date": "2024-03-05"},
    ),
    Document(
        "Port operators and unions reached a deal ending the Rotterdam strike: a 6% pay "
        "rise over two years, the union said.",
        id="strike-3",
        metadata={"title": "Deal ends Rotterdam port strike", "date": "2024-03-06"},
    ),
    Document(
        "Shipping lines said the backlog from the port strike in Rotterdam would take a "
        "week to clear, delaying deliveries across Europe.",
        id="strike-4",
        metadata={"title": "Strike backlog to take a week", "date": "2024-03-07"},
    ),
]


class TestHybridRetrieverStandard(RetrieversIntegrationTests):
    """``RetrieversIntegrationTests`` on :class:`rag.retriever.HybridRetriever`."""

    library: Assistant

    @pytest.fixture(autouse=True)
    def _library(self, assistant: Assistant) -> None:
        report = assistant.add_documents(LIBRARY)
        assert len(report.added) == len(LIBRARY), report.details()
        self.library = assistant

    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return HybridRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"assistant": self.library, "as_of": "2024-03-31"}

    @property
    def retriever_query_example(self) -> str:
        return "What happened in the Rotterdam port strike?"


def _backend_params(backend: str) -> dict[str, Any]:
    # The tests' autouse fixture points NEWSRAG_MODEL_CACHE_DIR at the session's model
    # cache, where the ONNX exports are made once.
    cache = Path(os.environ["NEWSRAG_MODEL_CACHE_DIR"])
    if backend == "torch":
        return {"model_name": BUNDLED_EMBEDDING_MODEL}
    return {
        "model_name": BUNDLED_EMBEDDING_MODEL,
        "quantize": backend == "onnx-int8",
        "cache_dir": cache,
    }


class TestOnnxInt8EmbeddingsStandard(EmbeddingsIntegrationTests):
    """``EmbeddingsIntegrationTests`` on the default backend (ONNX Runtime, int8)."""

    @property
    def embeddings_class(self) -> type[Embeddings]:
        return OnnxEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return _backend_params("onnx-int8")


class TestOnnxEmbeddingsStandard(EmbeddingsIntegrationTests):
    """``EmbeddingsIntegrationTests`` on the ONNX Runtime fp32 backend."""

    @property
    def embeddings_class(self) -> type[Embeddings]:
        return OnnxEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return _backend_params("onnx")


class TestTorchEmbeddingsStandard(EmbeddingsIntegrationTests):
    """``EmbeddingsIntegrationTests`` on the sentence-transformers (torch) backend."""

    @property
    def embeddings_class(self) -> type[Embeddings]:
        return SentenceTransformerEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return _backend_params("torch")


def test_every_embedding_backend_has_a_standard_suite() -> None:
    covered = {"onnx-int8", "onnx", "torch"}
    assert set(EMBEDDING_BACKENDS) == covered
