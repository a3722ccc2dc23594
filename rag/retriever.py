"""newsrag's hybrid search behind LangChain's ``BaseRetriever`` interface.

A module of its own: importing LangChain's retriever stack costs about a second, which
the CLI and the app do not need to pay at start-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import date
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import run_in_executor
from pydantic import ConfigDict, Field, field_validator, model_validator

from rag.assistant import Assistant
from rag.documents import documents_from_hits, parse_date
from rag.errors import ConfigError
from rag.retrieval import ArticleHit, HybridSearcher
from rag.store import Filters

FilterSpec = Filters | Mapping[str, Any] | None
"""Retrieval filters: a :class:`Filters`, or a dict with the keys ``source``/``sources``,
``date_from``, ``date_to``, ``as_of`` and ``exclude_ids`` (dates as ``date`` or ISO text)."""

_FILTER_KEYS = {"source", "sources", "date_from", "date_to", "as_of", "exclude_ids"}


def to_filters(spec: FilterSpec) -> Filters | None:
    """:class:`Filters` from a dict (or a :class:`Filters`, returned as is).

    >>> to_filters({"source": "reuters.com", "date_from": "2022-06-01"})
    Filters(sources=('reuters.com',), date_from=datetime.date(2022, 6, 1), date_to=None, \
as_of=None, exclude_ids=())
    >>> to_filters({"outlet": "x"})
    Traceback (most recent call last):
    rag.errors.ConfigError: unknown filter key 'outlet': use as_of, date_from, date_to, \
exclude_ids, source, sources
    """
    if spec is None or isinstance(spec, Filters):
        return spec
    unknown = sorted(set(spec) - _FILTER_KEYS)
    if unknown:
        msg = f"unknown filter key {unknown[0]!r}: use {', '.join(sorted(_FILTER_KEYS))}"
        raise ConfigError(msg)
    sources: list[str] = []
    for key in ("source", "sources"):
        value = spec.get(key)
        if isinstance(value, str):
            sources.append(value)
        elif value is not None:
            sources.extend(str(v) for v in value)
    values: dict[str, Any] = {"sources": tuple(sources)}
    for key in ("date_from", "date_to", "as_of"):
        raw = spec.get(key)
        if raw is None:
            continue
        day = parse_date(raw)
        if day is None:
            msg = f"filter {key}={raw!r} is not a date (use a date or YYYY-MM-DD)"
            raise ConfigError(msg)
        values[key] = day
    if spec.get("exclude_ids"):
        values["exclude_ids"] = tuple(str(i) for i in spec["exclude_ids"])
    return Filters(**values)


class HybridRetriever(BaseRetriever):
    """newsrag's hybrid (dense + BM25, recency-aware) search as a LangChain retriever.

    Returns ``k`` Documents, the best chunk of each of the ``k`` best articles, ranked.
    A Document's ``id`` is the chunk id; its metadata holds the article fields
    (``article_id``, ``title``, ``source``, ``url``, ``published``), the chunk's place
    (``chunk_id``, ``chunk_index``, ``start``/``end`` character offsets into the article
    text) and the scores (``score``, ``chunk_score``, ``dense_score``, ``dense_rank``,
    ``lexical_rank``), plus the ``query`` searched and the ``as_of`` it was asked on. Build it with
    :meth:`rag.Assistant.as_retriever`; ``k``, ``filters`` and ``as_of`` can also be
    given per call::

        >>> retriever = assistant.as_retriever(k=3, filters={"source": "ansa.it"})  # doctest: +SKIP
        >>> docs = retriever.invoke("what did Meloni propose?")  # doctest: +SKIP
        >>> docs[0].metadata["title"], docs[0].metadata["start"]  # doctest: +SKIP
        ("Italian PM proposes extending NATO's Article 5 security umbrella to Ukraine", 0)
        >>> retriever.invoke("what did Meloni propose?", k=1)  # doctest: +SKIP

    With an ``assistant``, a question is searched as :meth:`rag.Assistant.search` does
    (date words such as "in June 2022" narrow the dates, articles after ``as_of`` are
    left out). A bare ``searcher`` (:class:`rag.retrieval.HybridSearcher`) is searched
    as is.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)
    assistant: Assistant | None = None
    searcher: HybridSearcher | None = None
    k: int | None = Field(default=None, ge=1)
    """Documents returned (one per article); the assistant's ``top_k`` when None."""
    filters: Filters | None = None
    as_of: date | None = None
    """The date the question is asked (today when None): later articles are left out."""

    @field_validator("filters", mode="before")
    @classmethod
    def _filters(cls, value: Any) -> Filters | None:
        return to_filters(value)

    @field_validator("as_of", mode="before")
    @classmethod
    def _as_of(cls, value: Any) -> date | None:
        return None if value is None else parse_date(value) or value

    @model_validator(mode="after")
    def _needs_a_search(self) -> HybridRetriever:
        if self.assistant is None and self.searcher is None:
            msg = "HybridRetriever needs an assistant (Assistant.as_retriever) or a searcher"
            raise ConfigError(msg)
        return self

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        filters: FilterSpec = None,
        as_of: date | str | None = None,
    ) -> list[Document]:
        return self._search(query, k, filters, as_of)

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
        filters: FilterSpec = None,
        as_of: date | str | None = None,
    ) -> list[Document]:
        # The search embeds the question (ONNX Runtime, CPU-bound) and reads embedded
        # Chroma and SQLite, none of which has an async API: it runs in a worker thread
        # so the event loop stays free. ONNX Runtime and SQLite release the GIL, so
        # concurrent searches do overlap.
        return await run_in_executor(None, self._search, query, k, filters, as_of)

    def _search(
        self, query: str, k: int | None, filters: FilterSpec, as_of: date | str | None
    ) -> list[Document]:
        top_k = k or self.k
        chosen = to_filters(filters) if filters is not None else self.filters
        day = parse_date(as_of) if as_of is not None else None
        day = day or (chosen.as_of if chosen else None) or self.as_of
        hits: list[ArticleHit]
        if self.assistant is not None:
            top_k = top_k or self.assistant.settings.top_k
            day = day or self.assistant.today()
            hits = self.assistant.search(query, as_of=day, filters=chosen, top_k=top_k)
        else:
            assert self.searcher is not None  # checked by _needs_a_search
            top_k = top_k or self.searcher.config.top_k
            if day is not None:
                chosen = replace(chosen or Filters(), as_of=day)
            hits = self.searcher.search(query, chosen, top_k=top_k)
        return documents_from_hits(hits[:top_k], query=query, as_of=day)
