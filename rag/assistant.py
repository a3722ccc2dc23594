"""The Python API of newsrag: ingest articles, ask questions, get cited answers."""

from __future__ import annotations

import functools
import logging
import unicodedata
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from rag.components import build_chat_model, build_embeddings, build_index
from rag.conversation import (
    ConversationResolver,
    QuestionRewriter,
    Resolution,
    focus_question,
    rule_query,
)
from rag.dates import format_day, format_range, month_without_year, resolve_window
from rag.embeddings import embeddings_key, max_tokens_for, token_counter_for
from rag.errors import ConfigError, QuestionError, disk_full_as_error
from rag.extractive import ExtractiveAnswerer, ExtractiveConfig, bm25_idf
from rag.records import Answer, Article, DateWindow, sha1_hex
from rag.retrieval import ArticleHit, HybridSearcher, SearchConfig
from rag.settings import Settings
from rag.store import ArticleRecord, Filters, IndexStats, Library
from rag.stories import with_story_members

if TYPE_CHECKING:
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.language_models import BaseChatModel

    from ingest.pipeline import Ingestor, IngestReport, LibraryCheck, ProgressCallback
    from rag.chains import AssistantAnswerer
    from rag.llm import LLMAnswerer
    from rag.retriever import FilterSpec, HybridRetriever

logger = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 2000  # the default of Settings.max_question_chars
History = Sequence[tuple[str, str]]
AnswerMode = Literal["extractive", "llm"]  # what answers one question (see Assistant.stream)
# A library whose newest article is older than this at the as-of is an archive: a
# question without a date is not taken to be about its last weeks' news.
ARCHIVE_DAYS = 30


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
    """The text used for retrieval, by the no-LLM rule (see :mod:`rag.conversation`).

    >>> retrieval_query("and what did Zelenskyy say?", [("what did Meloni propose?", "...")])
    'what did Meloni propose? and what did Zelenskyy say?'
    >>> retrieval_query("what did Meloni propose?", [("Why is Internet Explorer retired?", "")])
    'what did Meloni propose?'
    """
    return rule_query(question, history).query


@dataclass(frozen=True)
class TimeScope:
    """When a question is asked, and which publication dates its answer searches.

    ``filters`` are the retrieval filters with the as-of and any strict window applied;
    recency is judged from ``recent`` (the newest article on or before the window's end,
    so an archive asked about years later still has recent news), also counting the days
    after it when ``around`` (the question named a past day or week).
    """

    as_of: date
    window: DateWindow
    filters: Filters
    recent: date
    around: bool = False

    @property
    def fresh(self) -> date | None:
        """The date an answer's evidence should be fresh for, or None.

        A question about a window, or asked of a library that has news from around its
        as-of, is about that time's news: older evidence counts less. A question with no
        date asked of an archive (2022 news, asked today) says nothing about which of its
        months it means, so no month's evidence is discounted.

        >>> w = DateWindow(None, date(2026, 11, 27), "articles up to 27 November 2026")
        >>> TimeScope(date(2026, 11, 27), w, Filters(), date(2022, 9, 16)).fresh is None
        True
        >>> TimeScope(date(2022, 6, 24), w, Filters(), date(2022, 6, 23)).fresh
        datetime.date(2022, 6, 23)
        """
        if self.window.phrase or (self.as_of - self.recent).days <= ARCHIVE_DAYS:
            return self.recent
        return None


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
        index: Library,
        embeddings: Embeddings,
        chat_model: BaseChatModel | None = None,
        today: Callable[[], date] = date.today,
    ) -> None:
        self.settings = settings
        self.today = today  # the as-of of questions asked without one; tests fix it
        # The library's parts: the searcher and the answerer each receive those they read;
        # the library as a whole goes to ingest and the checks (see ingestor()).
        self.index = index
        self.records = index.records
        self.writer = index.writer
        self.embeddings = embeddings
        self.searcher = HybridSearcher.of(
            index,
            embeddings,
            SearchConfig(
                top_k=settings.top_k,
                candidates=settings.candidates,
                rrf_k=settings.rrf_k,
                recency_days=settings.recency_days,
                recency_weight=settings.recency_boost,
                exclude_future=settings.exclude_future,
                collapse_stories=settings.collapse_stories,
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
            sentence_vectors=self.records.sentence_vectors,
        )
        self.llm: LLMAnswerer | None = None
        self.conversation = ConversationResolver()
        if chat_model is not None:
            from rag.llm import LLMAnswerer

            self.llm = LLMAnswerer(chat_model, settings.llm_model or type(chat_model).__name__)
            # With an LLM, the LLM writes the standalone question of a follow-up.
            self.conversation = ConversationResolver(QuestionRewriter(chat_model))

    @classmethod
    def from_settings(
        cls, settings: Settings | None = None, *, today: Callable[[], date] = date.today
    ) -> Assistant:
        """Build the assistant and its components from settings (``.env`` by default)."""
        settings = settings or Settings()
        embeddings = build_embeddings(settings)
        index = build_index(settings, embeddings)
        chat_model = None
        if settings.answer_mode_resolved == "llm":
            chat_model = build_chat_model(settings)
        return cls(settings, index, embeddings, chat_model, today=today)

    # -- answering -----------------------------------------------------------------------

    @property
    def mode_label(self) -> str:
        """What produces the answers, e.g. ``extractive (no LLM)`` or ``LLM: gpt-4o-mini``."""
        if self.llm is not None:
            return f"LLM: {self.settings.llm_provider}/{self.llm.model_name}"
        return "extractive (quotes from the articles, no LLM)"

    @property
    def answer_modes(self) -> tuple[AnswerMode, ...]:
        """The answer modes a question may ask for: ``extractive`` always, ``llm`` when a
        chat model is configured."""
        return ("extractive", "llm") if self.llm is not None else ("extractive",)

    def _answerer_for(self, mode: AnswerMode | None) -> LLMAnswerer | None:
        """The LLM answerer for ``mode`` (None: the extractive one)."""
        if mode is None or (mode == "llm" and self.llm is not None):
            return self.llm
        if mode == "extractive":
            return None
        msg = f"answer mode {mode!r} is not available; choose one of {', '.join(self.answer_modes)}"
        raise ConfigError(msg)

    def time_scope(
        self,
        question: str,
        *,
        as_of: date | None = None,
        filters: Filters | None = None,
        query: str | None = None,
    ) -> TimeScope:
        """The as-of (today when None) and the date window searched for ``question``.

        A date expression in the question (:func:`rag.dates.resolve_window`) wins over
        the recency prior: "in June 2022" searches only June 2022, when the library has
        articles from then; "last week" prefers last week's articles.

        >>> a.time_scope("what did the Fed do in June 2022?").window.label  # doctest: +SKIP
        'articles from June 2022'
        """
        as_of = as_of or self.today()
        filters = _with_as_of(filters, as_of)
        cap = as_of if self.settings.exclude_future else date.max
        default = self._default_scope(as_of, filters, cap)
        found = resolve_window(question, as_of)
        if found is None and query and query != question:
            found = resolve_window(query, as_of)  # a follow-up keeps the turn's dates
        if found is None:
            return default
        newest = self.records.newest_published(min(found.end, cap), found.start)
        if (
            newest is None
            and (found.strict or month_without_year(found))
            and default.recent < as_of
        ):
            # "in June" or "the June rate hike" asked of an archive: the June the library
            # has, not this year's ("last week" stays this week: it says which one).
            again = resolve_window(question, default.recent)
            if again is not None:
                found = again
                newest = self.records.newest_published(min(found.end, cap), found.start)
        if newest is None:
            label = f"no {found.label.removesuffix(' first')}; {default.window.label}"
            return replace(default, window=replace(default.window, label=label))
        if not found.strict:
            around = found.end < default.recent
            recent = newest if around else default.recent
            return TimeScope(as_of, found, filters, recent, around)
        low, high = found.start, found.end
        if filters.date_from and (low is None or filters.date_from > low):
            low = filters.date_from
        if filters.date_to and filters.date_to < high:
            high = filters.date_to
        return TimeScope(as_of, found, replace(filters, date_from=low, date_to=high), newest)

    def _default_scope(self, as_of: date, filters: Filters, cap: date) -> TimeScope:
        """No date in the question: recency counts from the library's newest article."""
        newest = None
        if self.settings.recency_from == "library" and cap != date.max:
            newest = self.records.newest_published(cap)
        recent = newest or as_of
        upto = f"articles up to {format_day(as_of)}" if cap != date.max else "all articles"
        if recent != as_of:
            upto += f", the most recent ({format_day(recent)}) first"
        if filters.date_from or filters.date_to:
            upto = f"articles {format_range(filters.date_from, filters.date_to or cap)}"
        return TimeScope(as_of, DateWindow(None, min(as_of, cap), upto), filters, recent)

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
        question = self.check_question(question)
        return self._retrieve(question, as_of, filters, self._history(history), top_k)[2]

    def _retrieve(
        self,
        question: str,
        as_of: date | None,
        filters: Filters | None,
        history: History,
        top_k: int | None = None,
    ) -> tuple[str, TimeScope, list[ArticleHit]]:
        """The query searched (a follow-up resolved), the time scope and the hits of a
        checked question: the one retrieval path of search, stream and astream."""
        query = self.conversation.resolve(question, history).query
        scope = self.time_scope(question, as_of=as_of, filters=filters, query=query)
        return query, scope, self._search(query, scope, top_k)

    def _search(self, query: str, scope: TimeScope, top_k: int | None = None) -> list[ArticleHit]:
        # The date phrase is the scope's business: as words it matches every article
        # that mentions a date ("20 June 2022", "week"), daily round-ups first. The
        # embedding keeps it (it reads "this week" as news, not as a date to match).
        return self.searcher.search(
            query,
            scope.filters,
            top_k=top_k,
            recent=scope.recent,
            around=scope.around,
            since=scope.window.start if scope.around else None,
            words=_without(query, scope.window),
        )

    def resolve(self, question: str, history: History = ()) -> Resolution:
        """How ``question`` is searched: alone, focused, or with the conversation's topic.

        >>> a.resolve("who won?", [("Which race was held in Monaco?", "…")]).query  # doctest: +SKIP
        'Which race was held in Monaco? who won?'
        """
        return self.conversation.resolve(self.check_question(question), self._history(history))

    def ask(
        self,
        question: str,
        *,
        as_of: date | None = None,
        filters: Filters | None = None,
        history: History = (),
        top_k: int | None = None,
        mode: AnswerMode | None = None,
    ) -> Answer:
        """Answer ``question`` from the ingested articles, with ``[n]`` citations.

        ``as_of`` is the date the question is asked (today when None; news questions
        say "this week"): articles published after it are left out and recent ones are
        preferred; the answer records it and the window searched (``Answer.window``).
        ``history`` holds earlier ``(question, answer)`` turns: a follow-up ("and what
        did Powell say about it?") is searched with the topic of the last turn (only the
        last two turns are used, each cut short). The query actually searched is on
        ``Answer.search_query`` when it differs from the question. ``top_k`` and ``mode``
        override the settings for this question (see :meth:`stream`).
        """
        *_, final = self.stream(
            question, as_of=as_of, filters=filters, history=history, top_k=top_k, mode=mode
        )
        return final

    def stream(
        self,
        question: str,
        *,
        as_of: date | None = None,
        filters: Filters | None = None,
        history: History = (),
        top_k: int | None = None,
        mode: AnswerMode | None = None,
    ) -> Iterator[Answer]:
        """Yield partial answers as they are produced; the last one has ``done=True``.

        ``top_k`` (the number of articles the answer draws on) and ``mode``
        (``"extractive"``, or ``"llm"`` when a chat model is configured) override the
        settings for this question, e.g. from the chat's settings panel.

        >>> *_, a = assistant.stream("what did Meloni propose?", top_k=1)  # doctest: +SKIP
        >>> len(a.sources) <= 1  # doctest: +SKIP
        True
        """
        question = self.check_question(question)
        history = self._history(history)
        query, scope, hits = self._retrieve(question, as_of, filters, history, top_k)
        shown = query if query != question else None
        for answer in self.answer_from(
            question, hits, history=history, query=query, scope=scope, top_k=top_k, mode=mode
        ):
            yield replace(answer, question=question, search_query=shown)

    def answer_from(
        self,
        question: str,
        hits: Sequence[ArticleHit],
        *,
        history: History = (),
        query: str | None = None,
        as_of: date | None = None,
        scope: TimeScope | None = None,
        top_k: int | None = None,
        mode: AnswerMode | None = None,
    ) -> Iterator[Answer]:
        """Answer from already-retrieved articles (see :meth:`search`), streaming.

        ``top_k`` and ``mode`` override the settings as in :meth:`stream`.
        """
        llm = self._answerer_for(mode)
        hits = list(hits)[: top_k or self.settings.top_k]
        if scope is None:
            scope = self.time_scope(question, as_of=as_of, query=query)
        dated = functools.partial(replace, as_of=scope.as_of, window=scope.window)
        history = self._history(history)
        if llm is not None:
            for answer in llm.stream_answer(question, hits, history, as_of=scope.as_of):
                yield with_story_members(dated(answer), hits)
            return
        if query is None:  # as :meth:`search` read it (search + answer_from = ask)
            query = self.conversation.resolve(self.check_question(question), history).query
        # The window already holds the date ("in March 2022"): quotes need not repeat it.
        # A long, chatty question is scored by its question sentence, not its greetings.
        words = _without(focus_question(question), scope.window)
        answer = self.extractive.answer(
            words, hits, query=_without(query or question, scope.window), as_of=scope.fresh
        )
        yield with_story_members(dated(replace(answer, question=question)), hits)

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - the assistant lives as long as the app
    def _idf_cached(self, word: str, generation: int) -> float:
        total, freqs = self.searcher.lexical.frequencies([word])
        return bm25_idf(max(total, 1), freqs).get(word, 1.0)

    def _idf(self, terms: Sequence[str]) -> dict[str, float]:
        # The library's write generation: moves with writes of this and other processes.
        generation = self.records.generation()
        return {t: self._idf_cached(t, generation) for t in terms}

    def _encode(self, texts: list[str]) -> np.ndarray:
        if len(texts) == 1:  # the question: usually embedded for retrieval already
            return np.asarray([self.embeddings.embed_query(texts[0])], dtype=np.float32)
        return np.asarray(self.embeddings.embed_documents(texts), dtype=np.float32)

    # -- library ---------------------------------------------------------------------------

    def ingestor(self) -> Ingestor:
        # Imported here: loaders pull in HTML and PDF parsers that answering never needs.
        from ingest.loaders import LoadLimits
        from ingest.pipeline import Ingestor
        from ingest.splitter import SentenceSplitter

        # Any LangChain Embeddings: without a tokenizer, chunk sizes are estimated.
        counter = token_counter_for(self.embeddings)
        max_tokens = max_tokens_for(self.embeddings, self.settings.chunk_tokens + 2)
        splitter = SentenceSplitter(
            counter,
            chunk_tokens=min(self.settings.chunk_tokens, max_tokens - 2),
            overlap_tokens=self.settings.chunk_overlap_tokens,
        )
        return Ingestor(
            self.index,
            self.embeddings,
            splitter,
            model_key=embeddings_key(self.embeddings, self.settings.embedding_key),
            max_bytes=int(self.settings.max_file_mb * 1024 * 1024),
            max_article_chars=self.settings.max_article_chars,
            limits=LoadLimits(
                max_seconds=self.settings.load_max_seconds,
                pdf_max_pages=self.settings.pdf_max_pages,
                pdf_max_content_bytes=int(self.settings.pdf_max_content_mb * 1_000_000),
            ),
            story_threshold=self.settings.story_threshold,
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
        return report

    def ensure_seeded(
        self, progress: Callable[[int, int, str], None] | None = None
    ) -> IngestReport | None:
        """Ingest ``seeds_dir`` when the index is empty (first run); else do nothing."""
        if not self.records.is_empty() or not self.settings.seeds_dir.exists():
            return None
        logger.info("empty index: ingesting %s", self.settings.seeds_dir)
        return self.ingest([self.settings.seeds_dir], progress=progress)

    def articles(self) -> list[ArticleRecord]:
        """Indexed articles, newest first."""
        records = [r for r in self.records.get_records().values() if r.status == "complete"]
        records.sort(key=lambda r: (r.published or date.min, r.title), reverse=True)
        return records

    def delete_article(self, article_id: str) -> bool:
        """Remove an article and its chunks; False when it was not indexed."""
        with disk_full_as_error("deleting the article", self._where):
            deleted = self.writer.delete([article_id]) > 0
        return deleted

    @property
    def _where(self) -> str:
        """Where the index lives, for messages."""
        if self.settings.shared_database:
            from rag.database import redacted

            return f"record database {redacted(self.settings.resolved_database_url)}"
        if self.settings.chroma_host:
            return (
                f"record database {self.settings.index_db_path}, Chroma server "
                f"{self.settings.chroma_host}:{self.settings.chroma_port}"
            )
        return f"index in {self.settings.data_dir}"

    def stats(self) -> IndexStats:
        return self.records.stats()

    def check(self, *, repair: bool = False) -> LibraryCheck:
        """Read back every stored chunk's vector (``newsrag check``); with ``repair``,
        restore lost vectors, drop orphan ones and finish unfinished articles.

        Example:
            >>> assistant.check().lines()  # doctest: +SKIP
            ['articles: 1', 'vectors: 6 of 6 chunks readable']
        """
        return self.ingestor().check(repair=repair)

    # -- LangChain ---------------------------------------------------------------------

    def as_retriever(
        self,
        *,
        k: int | None = None,
        filters: FilterSpec = None,
        as_of: date | None = None,
    ) -> HybridRetriever:
        """This library as a LangChain retriever: ``k`` Documents (the best chunk of each
        of the ``k`` best articles; ``top_k`` when None), searched as :meth:`search` does.

        ``filters`` is a :class:`Filters` or a dict (``source``/``sources``,
        ``date_from``, ``date_to``, ``as_of``); ``as_of`` is the date questions are asked
        (today when None). See :class:`rag.retriever.HybridRetriever` for the metadata.

        Example:
            >>> r = assistant.as_retriever(k=2, filters={"source": "reuters.com"})  # doctest: +SKIP
            >>> [d.metadata["title"] for d in r.invoke("what did Meloni say?")]  # doctest: +SKIP
        """
        from rag.retriever import HybridRetriever

        return HybridRetriever(assistant=self, k=k, filters=filters, as_of=as_of)

    def as_answerer(self) -> AssistantAnswerer:
        """The answerer (extractive, or the LLM when configured) as a LangChain
        ``Runnable`` from the question and its Documents to an :class:`Answer`.

        Example:
            >>> chain = assistant.as_retriever(k=3) | assistant.as_answerer()  # doctest: +SKIP
            >>> chain.invoke("what did Meloni propose?").sources[0].title  # doctest: +SKIP
        """
        from rag.chains import AssistantAnswerer

        return AssistantAnswerer(self)

    def add_documents(
        self, documents: Iterable[Document], *, progress: ProgressCallback | None = None
    ) -> IngestReport:
        """Ingest LangChain Documents (any document loader's output) incrementally.

        Title, source, URL and publication date are read from the metadata keys loaders
        commonly use (:func:`rag.documents.article_from_document`). A Document's ``id``
        (or an ``id`` in its metadata), else a hash of its text, names the article:
        adding the same Documents again adds nothing, a changed text updates the article.
        Documents with no text are reported in ``failed``.

        Example:
            >>> from langchain_core.documents import Document  # doctest: +SKIP
            >>> doc = Document("The Fed raised rates.", id="fed-0615",
            ...                metadata={"title": "Fed", "date": "2022-06-15"})  # doctest: +SKIP
            >>> assistant.add_documents([doc]).summary()  # doctest: +SKIP
            'added 1, updated 0, skipped 0, deleted 0, failed 0 (1 chunks written, 0.1s)'
        """
        from ingest.loaders import LoadFailure
        from rag.documents import article_from_document, document_id
        from rag.errors import LoaderError

        articles: list[Article] = []
        failures: list[LoadFailure] = []
        for document in documents:
            try:
                articles.append(article_from_document(document))
            except LoaderError as exc:
                failures.append(LoadFailure(f"document:{document_id(document)}", str(exc)))
        with disk_full_as_error("adding the documents", self._where):
            report = self.ingestor().ingest_articles(articles, progress=progress)
        if failures:
            report = replace(report, failed=(*failures, *report.failed))
        return report

    async def aask(
        self,
        question: str,
        *,
        as_of: date | None = None,
        filters: Filters | None = None,
        history: History = (),
        top_k: int | None = None,
        mode: AnswerMode | None = None,
    ) -> Answer:
        """:meth:`ask` for async apps (see :meth:`astream`).

        Example:
            >>> answer = await assistant.aask("what did Meloni propose?")  # doctest: +SKIP
        """
        from rag.chains import collect

        return await collect(
            self.astream(
                question, as_of=as_of, filters=filters, history=history, top_k=top_k, mode=mode
            )
        )

    async def astream(
        self,
        question: str,
        *,
        as_of: date | None = None,
        filters: Filters | None = None,
        history: History = (),
        top_k: int | None = None,
        mode: AnswerMode | None = None,
    ) -> AsyncIterator[Answer]:
        """:meth:`stream` for async apps: partial answers, the last with ``done=True``.

        Retrieval runs in a worker thread (the embedding model is CPU-bound and the
        embedded stores have no async API), so the event loop stays free; an LLM answer
        streams through the chat model's own async API.

        Example:
            >>> async for answer in assistant.astream("what did Meloni propose?"):  # doctest: +SKIP
            ...     show(answer.text)
        """
        from langchain_core.runnables.config import run_in_executor

        question = self.check_question(question)
        turns = self._history(history)

        query, scope, hits = await run_in_executor(
            None, self._retrieve, question, as_of, filters, turns, top_k
        )
        shown = query if query != question else None
        async for answer in self.aanswer_from(
            question, hits, history=turns, query=query, scope=scope, top_k=top_k, mode=mode
        ):
            yield replace(answer, question=question, search_query=shown)

    async def aanswer_from(
        self,
        question: str,
        hits: Sequence[ArticleHit],
        *,
        history: History = (),
        query: str | None = None,
        as_of: date | None = None,
        scope: TimeScope | None = None,
        top_k: int | None = None,
        mode: AnswerMode | None = None,
    ) -> AsyncIterator[Answer]:
        """:meth:`answer_from` for async apps: the extractive answerer (CPU-bound) runs
        in a worker thread, an LLM streams through its async API."""
        from langchain_core.runnables.config import run_in_executor

        llm = self._answerer_for(mode)
        if llm is None:
            answers = await run_in_executor(
                None,
                lambda: list(
                    self.answer_from(
                        question,
                        hits,
                        history=history,
                        query=query,
                        as_of=as_of,
                        scope=scope,
                        top_k=top_k,
                        mode=mode,
                    )
                ),
            )
            for answer in answers:
                yield answer
            return
        hits = list(hits)[: top_k or self.settings.top_k]
        if scope is None:
            scope = await run_in_executor(
                None, lambda: self.time_scope(question, as_of=as_of, query=query)
            )
        turns = self._history(history)
        async for answer in llm.astream_answer(question, hits, turns, as_of=scope.as_of):
            yield with_story_members(replace(answer, as_of=scope.as_of, window=scope.window), hits)


def _without(text: str, window: DateWindow) -> str:
    """``text`` without the date phrase of its window (kept when it is all there is): the
    window or the recency prior already deals with the date, and an article seldom
    repeats it in words ("the June rate hike" is dated by its publication date).

    >>> w = DateWindow(None, date(2022, 6, 30), "", "in June 2022", True)
    >>> _without("How much did the Fed raise rates in June 2022?", w)
    'How much did the Fed raise rates ?'
    """
    if not window.phrase or window.phrase not in text:
        return text
    rest = " ".join(text.replace(window.phrase, " ").split())
    return rest if any(ch.isalnum() for ch in rest) else text


def _with_as_of(filters: Filters | None, as_of: date | None) -> Filters:
    filters = filters or Filters()
    if as_of is None:
        return filters
    return replace(filters, as_of=as_of)
