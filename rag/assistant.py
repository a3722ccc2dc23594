"""The Python API of newsrag: ingest articles, ask questions, get cited answers."""

from __future__ import annotations

import functools
import logging
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.components import build_chat_model, build_embeddings, build_index
from rag.conversation import (
    ConversationResolver,
    QuestionRewriter,
    Resolution,
    focus_question,
    rule_query,
    trim_history,
)
from rag.embeddings import LocalEmbeddings
from rag.errors import QuestionError
from rag.extractive import ExtractiveAnswerer, ExtractiveConfig, bm25_idf
from rag.records import Answer, Article, sha1_hex
from rag.retrieval import ArticleHit, HybridSearcher, SearchConfig
from rag.settings import Settings
from rag.store import ArticleRecord, ChunkIndex, Filters, IndexStats

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from ingest.pipeline import Ingestor, IngestReport, ProgressCallback
    from rag.llm import LLMAnswerer

logger = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 2000  # longer input is cut: the embedding model reads 256 pieces
History = Sequence[tuple[str, str]]


def clean_question(question: str) -> str:
    """Strip control characters and surrounding space; reject questions with no words.

    >>> clean_question("  what did\\x00 Meloni propose?\\n")
    'what did Meloni propose?'
    """
    text = "".join(
        ch if unicodedata.category(ch)[0] != "C" or ch in "\n\t" else " " for ch in question
    )
    text = " ".join(text.split())
    if not text:
        msg = "the question is empty: type a question about the ingested articles"
        raise QuestionError(msg)
    if not any(ch.isalnum() for ch in text):
        msg = "the question has no words: type a question about the ingested articles"
        raise QuestionError(msg)
    return text[:MAX_QUESTION_CHARS]


def retrieval_query(question: str, history: History = ()) -> str:
    """The text used for retrieval, by the no-LLM rule (see :mod:`rag.conversation`).

    >>> retrieval_query("and what did Zelenskyy say?", [("what did Meloni propose?", "...")])
    'what did Meloni propose? and what did Zelenskyy say?'
    >>> retrieval_query("what did Meloni propose?", [("Why is Internet Explorer retired?", "")])
    'what did Meloni propose?'
    """
    return rule_query(question, history).query


class Assistant:
    """Ask questions about your news articles; every answer cites its sources.

    Example:
        >>> from rag import Assistant
        >>> a = Assistant.from_settings()  # doctest: +SKIP
        >>> a.ingest([Path("seeds")]).summary()  # doctest: +SKIP
        'added 1, updated 0, skipped 0, deleted 0, failed 0 (6 chunks written, 0.9s)'
        >>> ans = a.ask("what did Meloni propose?")  # doctest: +SKIP
        >>> ans.text, [s.title for s in ans.sources]  # doctest: +SKIP
    """

    def __init__(
        self,
        settings: Settings,
        index: ChunkIndex,
        embeddings: LocalEmbeddings,
        chat_model: BaseChatModel | None = None,
    ) -> None:
        self.settings = settings
        self.index = index
        self.embeddings = embeddings
        self.searcher = HybridSearcher(
            index,
            embeddings,
            SearchConfig(
                top_k=settings.top_k,
                candidates=settings.candidates,
                rrf_k=settings.rrf_k,
                recency_days=settings.recency_days,
                recency_weight=settings.recency_boost,
                exclude_future=settings.exclude_future,
            ),
        )
        self.extractive = ExtractiveAnswerer(
            self._idf,
            self._encode,
            ExtractiveConfig(
                sentences=settings.answer_sentences,
                min_evidence=settings.min_evidence,
                fresh_days=settings.fresh_days,
            ),
            sentence_vectors=self.index.sentence_vectors,
        )
        self.llm: LLMAnswerer | None = None
        self.conversation = ConversationResolver()
        if chat_model is not None:
            from rag.llm import LLMAnswerer

            self.llm = LLMAnswerer(chat_model, settings.llm_model or type(chat_model).__name__)
            # With an LLM, the LLM writes the standalone question of a follow-up.
            self.conversation = ConversationResolver(QuestionRewriter(chat_model))

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Assistant:
        """Build the assistant and its components from settings (``.env`` by default)."""
        settings = settings or Settings()
        embeddings = build_embeddings(settings)
        index = build_index(settings, embeddings)
        chat_model = None
        if settings.answer_mode_resolved == "llm":
            chat_model = build_chat_model(settings)
        return cls(settings, index, embeddings, chat_model)

    # -- answering -----------------------------------------------------------------------

    @property
    def mode_label(self) -> str:
        """What produces the answers, e.g. ``extractive (no LLM)`` or ``LLM: gpt-4o-mini``."""
        if self.llm is not None:
            return f"LLM: {self.settings.llm_provider}/{self.llm.model_name}"
        return "extractive (quotes from the articles, no LLM)"

    def search(
        self,
        question: str,
        *,
        as_of: date | None = None,
        filters: Filters | None = None,
        history: History = (),
        top_k: int | None = None,
    ) -> list[ArticleHit]:
        """The articles retrieved for ``question`` (what :meth:`ask` answers from)."""
        query = self.resolve(question, history).query
        return self.searcher.search(query, _with_as_of(filters, as_of), top_k=top_k)

    def resolve(self, question: str, history: History = ()) -> Resolution:
        """How ``question`` is searched: alone, focused, or with the conversation's topic.

        >>> a.resolve("who won?", [("Which race was held in Monaco?", "…")]).query  # doctest: +SKIP
        'Which race was held in Monaco? who won?'
        """
        return self.conversation.resolve(clean_question(question), history)

    def ask(
        self,
        question: str,
        *,
        as_of: date | None = None,
        filters: Filters | None = None,
        history: History = (),
    ) -> Answer:
        """Answer ``question`` from the ingested articles, with ``[n]`` citations.

        ``as_of`` is the date the question is asked (news questions say "this week"):
        articles published after it are left out and recent ones are preferred.
        ``history`` holds earlier ``(question, answer)`` turns: a follow-up ("and what
        did Powell say about it?") is searched with the topic of the last turn (only the
        last two turns are used, each cut short). The query actually searched is on
        ``Answer.search_query`` when it differs from the question.
        """
        *_, final = self.stream(question, as_of=as_of, filters=filters, history=history)
        return final

    def stream(
        self,
        question: str,
        *,
        as_of: date | None = None,
        filters: Filters | None = None,
        history: History = (),
    ) -> Iterator[Answer]:
        """Yield partial answers as they are produced; the last one has ``done=True``."""
        question = clean_question(question)
        resolution = self.conversation.resolve(question, history)
        query = resolution.query
        hits = self.searcher.search(query, _with_as_of(filters, as_of))
        shown = query if query != question else None
        for answer in self.answer_from(question, hits, history=history, query=query, as_of=as_of):
            yield replace(answer, question=question, search_query=shown)

    def answer_from(
        self,
        question: str,
        hits: Sequence[ArticleHit],
        *,
        history: History = (),
        query: str | None = None,
        as_of: date | None = None,
    ) -> Iterator[Answer]:
        """Answer from already-retrieved articles (see :meth:`search`), streaming."""
        hits = list(hits)[: self.settings.top_k]
        history = trim_history(history)
        if self.llm is not None:
            yield from self.llm.stream(question, hits, history)
            return
        # A long, chatty question is scored by its question sentence, not its greetings.
        answer = self.extractive.answer(focus_question(question), hits, query=query, as_of=as_of)
        yield replace(answer, question=question)

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - the assistant lives as long as the app
    def _idf_cached(self, word: str, generation: int) -> float:
        total, freqs = self.index.document_frequencies([word])
        return bm25_idf(max(total, 1), freqs).get(word, 1.0)

    def _idf(self, terms: Sequence[str]) -> dict[str, float]:
        generation = self._generation
        return {t: self._idf_cached(t, generation) for t in terms}

    def _encode(self, texts: list[str]) -> np.ndarray:
        if len(texts) == 1:  # the question: usually embedded for retrieval already
            return np.asarray([self.embeddings.embed_query(texts[0])], dtype=np.float32)
        return np.asarray(self.embeddings.embed_documents(texts), dtype=np.float32)

    _generation = 0  # bumped after each ingest so IDF weights follow the index

    # -- library ---------------------------------------------------------------------------

    def ingestor(self) -> Ingestor:
        # Imported here: loaders pull in HTML and PDF parsers that answering never needs.
        from ingest.pipeline import Ingestor
        from ingest.splitter import SentenceSplitter

        counter = self.embeddings.token_counter()
        splitter = SentenceSplitter(
            counter,
            chunk_tokens=min(self.settings.chunk_tokens, self.embeddings.max_tokens - 2),
            overlap_tokens=self.settings.chunk_overlap_tokens,
        )
        return Ingestor(
            self.index,
            self.embeddings,
            splitter,
            model_key=self.settings.embedding_key,
            max_bytes=int(self.settings.max_file_mb * 1024 * 1024),
            max_article_chars=self.settings.max_article_chars,
        )

    def ingest(
        self,
        paths: Sequence[Path | str],
        *,
        prune: bool = False,
        reset: bool = False,
        progress: ProgressCallback | None = None,
        show_progress: bool = False,
    ) -> IngestReport:
        """Ingest files/directories incrementally; see :class:`ingest.IngestReport`."""
        report = self.ingestor().ingest(
            [Path(p) for p in paths],
            prune=prune,
            reset=reset,
            progress=progress,
            show_progress=show_progress,
        )
        self._generation += 1
        return report

    def add_text(
        self,
        title: str,
        text: str,
        *,
        source: str | None = None,
        published: date | None = None,
        progress: ProgressCallback | None = None,
    ) -> IngestReport:
        """Ingest one article given as text (e.g. pasted in the chat UI)."""
        title = " ".join(title.split())
        if not title or not text.strip():
            msg = "a pasted article needs a title and some text"
            raise QuestionError(msg)
        origin = f"pasted:{sha1_hex(title)}"
        article = Article(
            article_id=sha1_hex(origin),
            title=title,
            text=text.strip(),
            source=source or "pasted text",
            origin=origin,
            url=source if source and source.startswith(("http://", "https://")) else None,
            published=published,
        )
        report = self.ingestor().ingest_articles([article], progress=progress)
        self._generation += 1
        return report

    def ensure_seeded(
        self, progress: Callable[[int, int, str], None] | None = None
    ) -> IngestReport | None:
        """Ingest ``seeds_dir`` when the index is empty (first run); else do nothing."""
        if not self.index.is_empty() or not self.settings.seeds_dir.exists():
            return None
        logger.info("empty index: ingesting %s", self.settings.seeds_dir)
        return self.ingest([self.settings.seeds_dir], progress=progress)

    def articles(self) -> list[ArticleRecord]:
        """Indexed articles, newest first."""
        records = [r for r in self.index.get_records().values() if r.status == "complete"]
        records.sort(key=lambda r: (r.published or date.min, r.title), reverse=True)
        return records

    def delete_article(self, article_id: str) -> bool:
        """Remove an article and its chunks; False when it was not indexed."""
        deleted = self.index.delete([article_id]) > 0
        self._generation += 1
        return deleted

    def stats(self) -> IndexStats:
        return self.index.stats()


def _with_as_of(filters: Filters | None, as_of: date | None) -> Filters:
    filters = filters or Filters()
    if as_of is None:
        return filters
    return replace(filters, as_of=as_of)
