"""The Python API of newsrag: ingest articles, ask questions, get cited answers."""

from __future__ import annotations

import functools
import logging
import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.components import build_chat_model, build_embeddings, build_index
from rag.embeddings import LocalEmbeddings
from rag.errors import QuestionError, disk_full_as_error
from rag.extractive import ExtractiveAnswerer, ExtractiveConfig, bm25_idf
from rag.records import Answer, Article, sha1_hex
from rag.retrieval import ArticleHit, HybridSearcher, SearchConfig
from rag.settings import Settings
from rag.store import ArticleRecord, ChunkIndex, Filters, IndexStats
from rag.text import content_terms

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from ingest.pipeline import Ingestor, IngestReport, ProgressCallback
    from rag.llm import LLMAnswerer

logger = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 2000  # the default of Settings.max_question_chars
History = Sequence[tuple[str, str]]
_FOLLOW_UP = re.compile(
    r"^(and|but|so|also|what about|how about)\b|\b(it|its|he|she|him|her|his|they|them|"
    r"their|this|that|these|those|there)\b",
    re.IGNORECASE,
)


def clean_question(question: str, max_chars: int = MAX_QUESTION_CHARS) -> str:
    """Strip control characters and surrounding space; reject empty or too long questions.

    A question over ``max_chars`` is refused before anything else is done with it: a
    20 MB "question" must cost no embedding, search or copy.

    >>> clean_question("  what did\\x00 Meloni propose?\\n")
    'what did Meloni propose?'
    >>> clean_question("why? " * 500)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    rag.errors.QuestionError: the question is too long (2,499 characters; at most 2,000): ...
    """
    if len(question) > max_chars:
        length = len(question.strip())
        if length > max_chars:
            msg = (
                f"the question is too long ({length:,} characters; at most {max_chars:,}): "
                "ask about one thing at a time"
            )
            raise QuestionError(msg)
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
    return text


def cap_history(history: History, turns: int, max_chars: int) -> list[tuple[str, str]]:
    """The last ``turns`` turns of a chat, each question and answer cut to ``max_chars``.

    Follow-ups borrow from earlier turns (retrieval and the LLM prompt), so what they
    carry along is bounded however long the chat or its messages are.

    >>> cap_history([("q1", "a1"), ("q2", "a" * 10)], turns=1, max_chars=4)
    [('q2', 'aaaa')]
    """
    if turns <= 0:
        return []
    return [(q[:max_chars], a[:max_chars]) for q, a in list(history)[-turns:]]


def retrieval_query(question: str, history: History = ()) -> str:
    """The text used for retrieval: a follow-up borrows the topic of the previous question.

    >>> retrieval_query("and what did Zelenskyy say?", [("what did Meloni propose?", "...")])
    'what did Meloni propose? and what did Zelenskyy say?'
    """
    if not history:
        return question
    is_follow_up = len(content_terms(question)) <= 3 or _FOLLOW_UP.search(question)
    if not is_follow_up:
        return question
    previous = history[-1][0]
    return f"{previous} {question}"


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
        if chat_model is not None:
            from rag.llm import LLMAnswerer

            self.llm = LLMAnswerer(chat_model, settings.llm_model or type(chat_model).__name__)

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

    def check_question(self, question: str) -> str:
        """The cleaned question, or :class:`QuestionError` (empty, no words, too long).

        >>> assistant.check_question("x" * 5_000_000)  # doctest: +SKIP
        QuestionError: the question is too long (5,000,000 characters; at most 2,000): ...
        """
        return clean_question(question, self.settings.max_question_chars)

    def _history(self, history: History) -> list[tuple[str, str]]:
        return cap_history(
            history, self.settings.max_history_turns, self.settings.max_question_chars
        )

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
        query = retrieval_query(self.check_question(question), self._history(history))
        return self.searcher.search(query, _with_as_of(filters, as_of), top_k=top_k)

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
        ``history`` holds earlier ``(question, answer)`` turns for follow-ups.
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
        question = self.check_question(question)
        history = self._history(history)
        query = retrieval_query(question, history)
        hits = self.searcher.search(query, _with_as_of(filters, as_of))
        yield from self.answer_from(question, hits, history=history, query=query, as_of=as_of)

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
        history = self._history(history)
        if self.llm is not None:
            yield from self.llm.stream(question, hits, history)
            return
        yield self.extractive.answer(question, hits, query=query, as_of=as_of)

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
        from ingest.loaders import LoadLimits
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
            limits=LoadLimits(
                max_seconds=self.settings.load_max_seconds,
                pdf_max_pages=self.settings.pdf_max_pages,
                pdf_max_content_bytes=int(self.settings.pdf_max_content_mb * 1_000_000),
            ),
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
        """Ingest files/directories incrementally; see :class:`ingest.IngestReport`.

        A full disk raises :class:`rag.errors.DiskFullError` (one line, no traceback).
        """
        with disk_full_as_error("ingesting", self._where):
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
        with disk_full_as_error("adding the article", self._where):
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
        with disk_full_as_error("deleting the article", self._where):
            deleted = self.index.delete([article_id]) > 0
        self._generation += 1
        return deleted

    @property
    def _where(self) -> str:
        """Where the index lives, for messages."""
        if self.settings.chroma_host:
            return (
                f"record database {self.settings.index_db_path}, Chroma server "
                f"{self.settings.chroma_host}:{self.settings.chroma_port}"
            )
        return f"index in {self.settings.data_dir}"

    def stats(self) -> IndexStats:
        return self.index.stats()


def _with_as_of(filters: Filters | None, as_of: date | None) -> Filters:
    filters = filters or Filters()
    if as_of is None:
        return filters
    return replace(filters, as_of=as_of)
