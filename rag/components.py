"""The one small factory that turns :class:`Settings` into components.

Each component sits behind a langchain-core interface (``Embeddings``, ``VectorStore``,
``BaseChatModel``); heavy libraries are imported only when the component is built.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.embeddings import LocalEmbeddings, SentenceTransformerEmbeddings
from rag.errors import ConfigError, MissingDependencyError, StoreError, StoreUnavailableError
from rag.locking import LibraryLock, Lock, PostgresLibraryLock
from rag.settings import Settings
from rag.store import Library, SqlRecordStore, open_record_store
from rag.vectors import ChromaVectorIndex

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings
    from langchain_core.language_models import BaseChatModel

logger = logging.getLogger(__name__)

# Providers whose packages we name in the error when they are missing.
LLM_PACKAGES = {
    "openai": "langchain-openai",
    "ollama": "langchain-ollama",
    "anthropic": "langchain-anthropic",
    "groq": "langchain-groq",
    "mistralai": "langchain-mistralai",
    "google_genai": "langchain-google-genai",
    "huggingface": "langchain-huggingface",
}


EMBEDDING_BACKENDS = ("torch", "onnx", "onnx-int8")


def build_embeddings(settings: Settings) -> LocalEmbeddings:
    """The embedding model named by ``settings.embedding_model``, run by
    ``settings.embedding_backend`` (loaded lazily; ONNX never imports torch once exported).
    """
    settings.apply_privacy_defaults()
    backend = settings.embedding_backend
    if backend == "torch":
        return SentenceTransformerEmbeddings(
            settings.embedding_model,
            device=settings.embedding_device,
            batch_size=settings.embedding_batch_size,
        )
    if backend in ("onnx", "onnx-int8"):
        from rag.onnx_embeddings import OnnxEmbeddings

        return OnnxEmbeddings(
            settings.embedding_model,
            quantize=backend == "onnx-int8",
            cache_dir=settings.model_cache_dir,
            batch_size=settings.embedding_batch_size,
        )
    msg = f"unknown embedding_backend {backend!r}: use one of {', '.join(EMBEDDING_BACKENDS)}"
    raise ConfigError(msg)


def build_vector_index(settings: Settings) -> ChromaVectorIndex:
    """The Chroma collection of ``settings.collection``: on a server when ``chroma_host``
    is set, else persisted under ``data_dir``.

    The index talks to the collection directly rather than through
    ``langchain_chroma.Chroma``: it stores precomputed (cached, de-duplicated) vectors, and
    importing the LangChain vector-store stack costs over a second at every cold start.
    LangChain users get retrieval through :class:`rag.retriever.HybridRetriever`.
    """
    settings.apply_privacy_defaults()
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=settings.chroma_telemetry)
    factory: Callable[[], Any]
    if settings.chroma_host:
        location = f"{settings.chroma_host}:{settings.chroma_port}"

        def factory() -> Any:
            return chromadb.HttpClient(
                host=settings.chroma_host or "",
                port=settings.chroma_port,
                ssl=settings.chroma_ssl,
                settings=chroma_settings,
            )

    else:
        path = (settings.data_dir / "chroma").resolve()
        location = str(path)

        def factory() -> Any:
            path.mkdir(parents=True, exist_ok=True)
            return chromadb.PersistentClient(path=str(path), settings=chroma_settings)

    try:
        return ChromaVectorIndex(
            factory, location, settings.collection, embedded=not settings.chroma_host
        )
    except StoreError as exc:
        if settings.chroma_host:
            msg = f"cannot reach the Chroma server at {location}: {exc}"
            raise StoreUnavailableError(msg) from exc
        msg = (
            f"cannot open the Chroma index in {location}: {exc}. If it is corrupt, move the "
            f"directory {settings.data_dir} away and re-ingest."
        )
        raise StoreError(msg) from exc


def open_library_database(settings: Settings) -> SqlRecordStore:
    """The record store of ``settings`` (``NEWSRAG_DATABASE_URL``), holding the library's
    records, saved conversations, feedback and web state for every process that opens it.

    Conversations, feedback and feeds that an earlier version kept in the data dir's
    ``<collection>.sqlite3`` while the records lived elsewhere (Postgres) are moved in on
    the first open (:func:`rag.migrate.adopt_local_tables`).
    """
    from sqlalchemy.exc import SQLAlchemyError

    from rag.migrate import adopt_local_tables

    records = open_record_store(settings.resolved_database_url, Library.busy_seconds)
    try:
        adopt_local_tables(records.engine, settings.index_db_path, Library.busy_seconds)
    except SQLAlchemyError as exc:
        records.close()
        msg = (
            f"cannot move the conversations and feeds of {settings.index_db_path} into the "
            f"library's database: {exc}"
        )
        raise StoreError(msg) from exc
    except BaseException:
        records.close()
        raise
    return records


def build_index(settings: Settings, embeddings: Embeddings | None = None) -> Library:
    """The chunk index of ``settings.collection``: its vector index (Chroma), its record
    store and BM25 postings (the database of ``settings.database_url``), and the library
    lock that serialises writes across processes (a lock file, or a Postgres advisory
    lock when the records live on Postgres).

    ``embeddings`` is accepted for symmetry with the other builders; the index stores
    vectors computed by the ingest pipeline and never embeds by itself.
    """
    records = open_library_database(settings)
    lock: Lock
    if records.engine.dialect.name == "postgresql":
        # Processes on other hosts share the library: the lock lives in the database.
        lock = PostgresLibraryLock(records.engine, settings.collection, settings.lock_timeout)
    else:
        # Beside the database file: every process that opens that file takes this lock.
        database = Path(records.engine.url.database or settings.index_db_path)
        lock = LibraryLock(database.with_suffix(".lock"), settings.lock_timeout)
    try:
        vectors = build_vector_index(settings)
    except BaseException:
        records.close()
        raise
    index = Library.of(vectors, records, lock)
    from ingest.stories import backfill_bands

    # Before the stories: placing an article reads its candidates by their band keys.
    backfill_bands(index, settings.story_threshold)
    if index.records.unstoried_ids():
        # A library from before stories: group its articles once, from their stored text.
        from ingest.stories import backfill_stories

        backfill_stories(index, settings.story_threshold)
    return index


def build_chat_model(settings: Settings) -> BaseChatModel:
    """The chat model configured by ``LLM_PROVIDER``/``LLM_MODEL``/``LLM_BASE_URL``.

    Any provider ``langchain.chat_models.init_chat_model`` knows works; OpenAI-compatible
    servers (llama.cpp, vLLM, LM Studio) use ``LLM_PROVIDER=openai`` with a base URL.
    """
    provider = settings.llm_provider.strip().lower()
    if not provider:
        msg = "no LLM configured: set LLM_PROVIDER and LLM_MODEL in .env"
        raise ConfigError(msg)
    if not settings.llm_model:
        msg = f"LLM_PROVIDER={provider} needs LLM_MODEL (e.g. gpt-4o-mini, llama3.1)"
        raise ConfigError(msg)
    from langchain.chat_models import init_chat_model

    kwargs: dict[str, Any] = {"temperature": settings.llm_temperature}
    if settings.llm_base_url:
        kwargs["base_url"] = settings.llm_base_url
    if settings.llm_api_key is not None:
        kwargs["api_key"] = settings.llm_api_key.get_secret_value()
    if provider != "ollama":
        kwargs["timeout"] = settings.llm_timeout
    elif settings.llm_api_key is not None:
        kwargs.pop("api_key")
    try:
        return init_chat_model(settings.llm_model, model_provider=provider, **kwargs)
    except ImportError as exc:
        package = LLM_PACKAGES.get(provider, f"langchain-{provider}")
        msg = f"LLM_PROVIDER={provider} needs the package {package}: pip install {package}"
        raise MissingDependencyError(msg) from exc
    except ValueError as exc:
        msg = f"cannot configure LLM_PROVIDER={provider}: {exc}"
        raise ConfigError(msg) from exc
