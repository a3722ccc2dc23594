"""Small frozen records of the domain, and the metadata keys stored with every chunk."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from pathlib import PurePosixPath
from urllib.parse import urlsplit

# Metadata keys stored with every chunk in Chroma. One place, so a typo cannot split
# the index into two vocabularies.
META_ARTICLE_ID = "article_id"
META_TITLE = "title"
META_SOURCE = "source"
META_URL = "url"
META_PUBLISHED = "published"  # "YYYY-MM-DD" or absent
META_PUBLISHED_DAY = "published_day"  # days since 1970-01-01, for range filters
META_CHUNK_INDEX = "chunk_index"
META_START = "start"
META_END = "end"
META_CONTENT_HASH = "content_hash"  # hash of the whole article this chunk belongs to
META_CHUNK_HASH = "chunk_hash"


UNKNOWN_DAY = -1  # published_day of undated articles: passes "before as-of" filters


def sha1_hex(text: str, length: int = 16) -> str:
    """Return a short, stable hex digest of ``text``.

    >>> sha1_hex("abc")
    'a9993e364706816a'
    """
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:length]


def day_number(d: date) -> int:
    """Days since the Unix epoch: Chroma range filters only work on numbers."""
    return (d - date(1970, 1, 1)).days


@dataclass(frozen=True)
class Article:
    """One news article, as loaded from a file or a JSONL record.

    ``origin`` is the file it came from (used by ``--prune``); ``source`` is what a
    reader sees as its provenance: the URL when known, else the outlet or the path.
    """

    article_id: str
    title: str
    text: str
    source: str
    origin: str
    url: str | None = None
    published: date | None = None
    author: str | None = None  # the byline, when the page or record gives one
    site_name: str | None = None  # the outlet's name ("Reuters"), when given

    @property
    def content_hash(self) -> str:
        """Hash of everything that ends up in the index; a change re-ingests the article."""
        published = self.published.isoformat() if self.published else ""
        parts = [self.title, self.source, self.url or "", published, self.text]
        # Only when present: articles without them keep the hash they were stored under.
        if self.author or self.site_name:
            parts += [self.author or "", self.site_name or ""]
        return sha1_hex("\x1f".join(parts), 40)

    @property
    def outlet(self) -> str:
        """Who published it, for "also reported by": see :func:`outlet_name`."""
        return outlet_name(self.site_name, self.url, self.source)

    @property
    def text_hash(self) -> str:
        """Hash of the words alone: the same story saved under two names is one article."""
        return sha1_hex(" ".join(f"{self.title}\n{self.text}".split()), 40)


def outlet_name(site_name: str | None, url: str | None, source: str) -> str:
    """The outlet a reader knows: the site name, else the URL's host, else the source.

    >>> outlet_name(None, "https://www.cnn.com/2022/06/12/x", "cnn.com")
    'cnn.com'
    >>> outlet_name("Reuters", "https://reuters.com/a", "x")
    'Reuters'
    >>> outlet_name(None, None, "/srv/news/seeds/quake.txt")
    'quake.txt'
    """
    if site_name:
        return site_name
    for candidate in (url, source):
        if candidate and "://" in candidate:
            host = (urlsplit(candidate).hostname or "").lower()
            if host:
                return host.removeprefix("www.")
    if source.startswith("/"):  # a file: its name, never the server's directories
        return PurePosixPath(source).name
    return source


@dataclass(frozen=True)
class StoryMember:
    """One outlet's copy of a story: what "also reported by" lists under a source."""

    article_id: str
    title: str
    outlet: str
    url: str | None
    published: date | None
    author: str | None = None
    site_name: str | None = None

    @property
    def link(self) -> str:
        return self.url or self.outlet


def also_reported_by(members: Sequence[StoryMember]) -> str:
    """The plain-text "also reported by" line of a source: each other outlet's copy of the
    story with its date and link ("" when the story has no other member).

    One wording for every text surface (``newsrag ask``, the chat's copied answer, the
    Markdown export); the chat's card renders the same members as links.

    >>> quake = StoryMember("a2", "Quake", "AP", "https://ap.example/q", date(2022, 6, 1))
    >>> also_reported_by([quake, StoryMember("a3", "Quake", "notes.txt", None, None)])
    'also reported by: AP (2022-06-01) https://ap.example/q, notes.txt'
    >>> also_reported_by([])
    ''
    """
    items = []
    for m in members:
        item = m.outlet
        if m.published:
            item += f" ({m.published.isoformat()})"
        if m.url:
            item += f" {m.url}"
        items.append(item)
    return f"also reported by: {', '.join(items)}" if items else ""


@dataclass(frozen=True)
class Chunk:
    """A piece of an article, with character offsets into ``Article.text``."""

    chunk_id: str
    article_id: str
    index: int
    text: str
    start: int
    end: int

    @property
    def chunk_hash(self) -> str:
        return sha1_hex(self.text, 40)


def chunk_metadata(
    article: Article, chunk: Chunk, content_hash: str | None = None
) -> dict[str, object]:
    """The vector index's metadata of a chunk (what its filters need), written at ingest
    and rebuilt from the records when a lost vector is restored (``content_hash`` then
    comes from the manifest).

    >>> a = Article("a1", "Title", "text", "outlet", "/x.txt")
    >>> chunk_metadata(a, Chunk("a1:0", "a1", 0, "text", 0, 4))["published_day"]
    -1
    """
    meta: dict[str, object] = {
        META_ARTICLE_ID: article.article_id,
        META_TITLE: article.title,
        META_SOURCE: article.source,
        META_PUBLISHED_DAY: day_number(article.published) if article.published else UNKNOWN_DAY,
        META_CHUNK_INDEX: chunk.index,
        META_START: chunk.start,
        META_END: chunk.end,
        META_CONTENT_HASH: content_hash or article.content_hash,
        META_CHUNK_HASH: chunk.chunk_hash,
    }
    if article.url:
        meta[META_URL] = article.url
    if article.published:
        meta[META_PUBLISHED] = article.published.isoformat()
    return meta


@dataclass(frozen=True)
class RetrievedChunk:
    """A chunk returned by retrieval, with its article's metadata and fused score."""

    chunk_id: str
    article_id: str
    text: str
    title: str
    source: str
    url: str | None
    published: date | None
    chunk_index: int
    start: int
    end: int
    score: float
    dense_score: float | None = None
    lexical_rank: int | None = None
    dense_rank: int | None = None


@dataclass(frozen=True)
class Source:
    """A numbered source shown under an answer: ``[n]`` in the text maps to ``number``."""

    number: int
    article_id: str
    title: str
    source: str
    url: str | None
    published: date | None
    passage: str
    highlights: tuple[str, ...] = ()
    chunk_id: str = ""
    score: float = 0.0
    author: str | None = None
    site_name: str | None = None
    # Other outlets' copies of the same story (near-duplicates and exact copies), which
    # retrieval collapsed into this source: cited once, listed here.
    also: tuple[StoryMember, ...] = ()

    @property
    def link(self) -> str:
        """The URL when known, else the source (a file path or outlet)."""
        return self.url or self.source


@dataclass(frozen=True)
class DateWindow:
    """The publication dates an answer searched (see :func:`rag.dates.resolve_window`).

    ``strict``: only articles published from ``start`` (open when None) to ``end`` were
    searched; otherwise articles in it were preferred. ``phrase`` is the date expression
    of the question it came from ("" for the default window ending at the as-of).
    """

    start: date | None
    end: date
    label: str
    phrase: str = ""
    strict: bool = False


class AnswerMode(StrEnum):
    EXTRACTIVE = "extractive"
    LLM = "llm"


@dataclass(frozen=True)
class Answer:
    """The result of :meth:`rag.Assistant.ask`.

    ``text`` carries inline ``[n]`` markers; each ``n`` is the ``number`` of one of
    ``sources``. ``found`` is False when the articles did not support an answer.
    ``as_of`` is the date the question was taken to be asked on and ``window`` the
    publication dates searched (both None only for answers built outside the assistant).
    ``search_query`` is what retrieval searched for when that was not the question as
    typed (a follow-up given the conversation's topic, a long question focused).
    """

    question: str
    text: str
    sources: tuple[Source, ...] = ()
    found: bool = True
    confidence: float = 1.0  # extractive: how well the best quote covers the question
    mode: str = AnswerMode.EXTRACTIVE.value
    model: str = ""
    done: bool = True
    retrieved: tuple[RetrievedChunk, ...] = field(default=(), repr=False)
    as_of: date | None = None
    window: DateWindow | None = None
    search_query: str | None = None


NOT_FOUND_TEXT = (
    "Not found in the ingested articles: none of them supports an answer to this question."
)


def answer_to_dict(answer: Answer) -> dict[str, object]:
    """The answer as JSON-ready data (what ``newsrag ask --json`` prints and the chat
    saves): text, sources, as-of, window, search query; not the retrieved chunks.

    >>> answer_to_dict(Answer("q", "t [1]"))["text"]
    't [1]'
    """
    window = answer.window
    return {
        "question": answer.question,
        "text": answer.text,
        "found": answer.found,
        "confidence": answer.confidence,
        "mode": answer.mode,
        "model": answer.model,
        "as_of": answer.as_of.isoformat() if answer.as_of else None,
        "window": None
        if window is None
        else {
            "start": window.start.isoformat() if window.start else None,
            "end": window.end.isoformat(),
            "label": window.label,
            "phrase": window.phrase,
            "strict": window.strict,
        },
        "search_query": answer.search_query,
        "sources": [
            {
                "number": s.number,
                "article_id": s.article_id,
                "title": s.title,
                "source": s.source,
                "url": s.url,
                "published": s.published.isoformat() if s.published else None,
                "passage": s.passage,
                "highlights": list(s.highlights),
                "chunk_id": s.chunk_id,
                "score": s.score,
                "author": s.author,
                "site_name": s.site_name,
                "also_reported_by": [member_to_dict(m) for m in s.also],
            }
            for s in answer.sources
        ],
    }


def member_to_dict(member: StoryMember) -> dict[str, object]:
    """One "also reported by" entry as JSON-ready data (see :func:`member_from_dict`)."""
    return {
        "article_id": member.article_id,
        "title": member.title,
        "outlet": member.outlet,
        "url": member.url,
        "published": member.published.isoformat() if member.published else None,
        "author": member.author,
        "site_name": member.site_name,
    }


def member_from_dict(data: dict[str, object]) -> StoryMember:
    """The inverse of :func:`member_to_dict`.

    >>> m = StoryMember("a2", "T", "AP", "https://ap.example/x", date(2022, 6, 1))
    >>> member_from_dict(member_to_dict(m)) == m
    True
    """
    published = data.get("published")
    return StoryMember(
        article_id=str(data["article_id"]),
        title=str(data.get("title") or ""),
        outlet=str(data.get("outlet") or ""),
        url=str(data["url"]) if data.get("url") else None,
        published=date.fromisoformat(published) if isinstance(published, str) else None,
        author=str(data["author"]) if data.get("author") else None,
        site_name=str(data["site_name"]) if data.get("site_name") else None,
    )
