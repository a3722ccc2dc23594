"""LangChain ``Document`` <-> newsrag records: what loaders give in, what retrievers give out.

Two directions:

* :func:`article_from_document` turns the output of any LangChain document loader into an
  :class:`~rag.records.Article` for the ingest pipeline, reading the title, source, URL and
  publication date from the metadata keys loaders commonly use.
* :func:`documents_from_hits` / :func:`hits_from_documents` turn retrieved articles into
  Documents (metadata: the article fields, the chunk's offsets and its scores) and back,
  so that ``retriever | answerer`` works in LCEL.
"""

from __future__ import annotations

import email.utils
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import PurePath
from typing import Any

from langchain_core.documents import Document

from rag.errors import LoaderError
from rag.records import (
    META_ARTICLE_ID,
    META_CHUNK_INDEX,
    META_END,
    META_PUBLISHED,
    META_SOURCE,
    META_START,
    META_TITLE,
    META_URL,
    Article,
    RetrievedChunk,
    member_from_dict,
    member_to_dict,
    sha1_hex,
)
from rag.retrieval import ArticleHit

logger = logging.getLogger(__name__)

# Metadata keys read from loaders' Documents, first match wins. They cover LangChain's
# web, RSS/feed, news, Notion, Google Drive, email and file loaders.
TITLE_KEYS = ("title", "headline", "name", "subject", "file_name", "filename")
URL_KEYS = ("url", "link", "canonical_url", "loc", "webViewLink", "web_url")
SOURCE_KEYS = ("source", "publisher", "outlet", "site_name", "feed", "from", "author")
DATE_KEYS = (
    "published",
    "publish_date",
    "published_date",
    "published_at",
    "publication_date",
    "pubDate",
    "pub_date",
    "date",
    "datetime",
    "created",
    "created_at",
    "createdTime",
    "modified",
    "last_modified",
    "lastmod",
)
ID_KEYS = ("id", "doc_id", "document_id", "article_id", "guid")

# Metadata keys set on retrieved Documents besides the record keys of rag.records.
META_CHUNK_ID = "chunk_id"
META_SCORE = "score"  # the article's fused (dense + BM25, recency) score
META_CHUNK_SCORE = "chunk_score"
META_DENSE_SCORE = "dense_score"
META_DENSE_RANK = "dense_rank"
META_LEXICAL_RANK = "lexical_rank"
META_QUERY = "query"  # what was searched: lets ``retriever | answerer`` know the question
META_AS_OF = "as_of"  # the date the question was asked (ISO), for the answerer
META_AUTHOR = "author"
META_SITE_NAME = "site_name"
META_ALSO = "also_reported_by"  # the story's other outlets' copies (rag.stories), as dicts

_HTTP = re.compile(r"https?://\S+", re.IGNORECASE)


def document_id(document: Document) -> str:
    """The stable identity of a loaded Document: its ``id``, an id in its metadata, else
    a hash of its text (the same text added twice is the same article).

    >>> document_id(Document("x", id="a1")), document_id(Document("x", metadata={"guid": 7}))
    ('a1', '7')
    >>> document_id(Document("Rates rose.")) == document_id(Document("Rates rose."))
    True
    """
    if document.id:
        return str(document.id)
    for key in ID_KEYS:
        value = document.metadata.get(key)
        if value not in (None, ""):
            return str(value)
    return "sha1:" + sha1_hex(document.page_content, 40)


def article_from_document(document: Document) -> Article:
    """The :class:`Article` of a loader's Document (see the ``*_KEYS`` for what is read).

    The title falls back to a file name in ``source`` and then to the first line of the
    text; ``source`` is the URL when one is known (that is what a reader can open).

    >>> doc = Document("Rates rose by 0.75 points.", metadata={
    ...     "title": "Fed raises rates", "link": "https://news.example/fed",
    ...     "pubDate": "Wed, 15 Jun 2022 18:00:00 GMT"})
    >>> a = article_from_document(doc)
    >>> a.title, a.url, a.published
    ('Fed raises rates', 'https://news.example/fed', datetime.date(2022, 6, 15))
    """
    text = document.page_content.strip()
    if not text:
        msg = f"document {document_id(document)!r} has no text"
        raise LoaderError(msg)
    meta = document.metadata
    url = next((u for u in (_url(meta.get(k)) for k in URL_KEYS) if u), None)
    raw_source = _first_text(meta, SOURCE_KEYS)
    if url is None and raw_source and _HTTP.fullmatch(raw_source):
        url = raw_source
    title = _first_text(meta, TITLE_KEYS)
    if not title and raw_source and not _HTTP.fullmatch(raw_source):
        title = _title_from_path(raw_source)
    if not title:
        title = _first_line(text)
    published = next((d for d in (parse_date(meta.get(k)) for k in DATE_KEYS) if d), None)
    identity = document_id(document)
    origin = f"document:{identity}"
    return Article(
        article_id=sha1_hex(origin),
        title=" ".join(title.split())[:300],
        text=text,
        source=url or raw_source or "LangChain document",
        origin=origin,
        url=url,
        published=published,
        author=_first_text(meta, ("author", "byline")),
        site_name=_first_text(meta, ("site_name", "sitename")),
    )


def parse_date(value: object) -> date | None:
    """A publication date from a metadata value: ``date``/``datetime``, ISO 8601,
    RFC 2822 (RSS ``pubDate``), or epoch seconds/milliseconds. Anything else is None.

    >>> parse_date("2022-06-15T18:00:00Z"), parse_date(1655316000), parse_date("soon")
    (datetime.date(2022, 6, 15), datetime.date(2022, 6, 15), None)
    """
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if value > 1e11 else value
        try:
            return datetime.fromtimestamp(seconds, tz=UTC).date()
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except ValueError:
        pass
    try:
        return email.utils.parsedate_to_datetime(text).date()
    except (TypeError, ValueError, IndexError):
        return None


def documents_from_hits(
    hits: Sequence[ArticleHit],
    *,
    query: str | None = None,
    as_of: date | None = None,
    per_article: int = 1,
) -> list[Document]:
    """Retrieved articles as Documents: the ``per_article`` best chunks of each, in
    ranking order. Each Document's ``id`` is its chunk id; its metadata carries the
    article fields, the chunk's index and character offsets into the article text, and
    the scores (``score`` of the article, ``chunk_score``, ``dense_score``,
    ``dense_rank``, ``lexical_rank``), plus the ``query`` searched and its ``as_of``.

    >>> documents_from_hits([])
    []
    """
    documents = []
    for hit in hits:
        best = sorted(hit.chunks, key=lambda c: c.score, reverse=True)[:per_article]
        for chunk in best:
            metadata: dict[str, Any] = {
                META_ARTICLE_ID: hit.article_id,
                META_TITLE: hit.title,
                META_SOURCE: hit.source,
                META_URL: hit.url,
                META_PUBLISHED: hit.published.isoformat() if hit.published else None,
                META_CHUNK_ID: chunk.chunk_id,
                META_CHUNK_INDEX: chunk.chunk_index,
                META_START: chunk.start,
                META_END: chunk.end,
                META_SCORE: hit.score,
                META_CHUNK_SCORE: chunk.score,
                META_DENSE_SCORE: chunk.dense_score,
                META_DENSE_RANK: chunk.dense_rank,
                META_LEXICAL_RANK: chunk.lexical_rank,
            }
            if hit.author:
                metadata[META_AUTHOR] = hit.author
            if hit.site_name:
                metadata[META_SITE_NAME] = hit.site_name
            if hit.also:
                metadata[META_ALSO] = [member_to_dict(m) for m in hit.also]
            if query is not None:
                metadata[META_QUERY] = query
            if as_of is not None:
                metadata[META_AS_OF] = as_of.isoformat()
            documents.append(
                Document(id=chunk.chunk_id, page_content=chunk.text, metadata=metadata)
            )
    return documents


def hits_from_documents(documents: Iterable[Document]) -> list[ArticleHit]:
    """Documents (from :class:`rag.retriever.HybridRetriever` or any other retriever)
    grouped back into articles, in the order their first chunk came.

    Documents without newsrag's metadata each become an article of their own, named by
    their ``title``/``source`` metadata when they have one.

    >>> [h.title for h in hits_from_documents([Document("Rates rose.", metadata={"title": "Fed"})])]
    ['Fed']
    """
    grouped: dict[str, list[RetrievedChunk]] = {}
    scores: dict[str, float] = {}
    metas: dict[str, Mapping[str, Any]] = {}
    for position, document in enumerate(documents):
        chunk = _chunk(document, position)
        grouped.setdefault(chunk.article_id, []).append(chunk)
        scores.setdefault(chunk.article_id, float(document.metadata.get(META_SCORE) or 0.0))
        metas.setdefault(chunk.article_id, document.metadata)
    hits = []
    for article_id, chunks in grouped.items():
        first = chunks[0]
        hits.append(
            ArticleHit(
                article_id=article_id,
                title=first.title,
                source=first.source,
                url=first.url,
                published=first.published,
                score=scores[article_id],
                chunks=tuple(chunks),
                author=_first_text(metas[article_id], (META_AUTHOR,)),
                site_name=_first_text(metas[article_id], (META_SITE_NAME,)),
                also=tuple(
                    member_from_dict(m)
                    for m in metas[article_id].get(META_ALSO) or ()
                    if isinstance(m, dict) and m.get("article_id")
                ),
            )
        )
    return hits


def _chunk(document: Document, position: int) -> RetrievedChunk:
    meta = document.metadata
    article_id = meta.get(META_ARTICLE_ID)
    if not article_id:
        article = article_from_document(document) if document.page_content.strip() else None
        article_id = article.article_id if article else f"empty-{position}"
        title = article.title if article else ""
        source = article.source if article else ""
        url = article.url if article else None
        published = article.published if article else None
    else:
        title = str(meta.get(META_TITLE) or "")
        source = str(meta.get(META_SOURCE) or "")
        url = _url(meta.get(META_URL))
        published = parse_date(meta.get(META_PUBLISHED))
    index = int(meta.get(META_CHUNK_INDEX) or 0)
    return RetrievedChunk(
        chunk_id=str(meta.get(META_CHUNK_ID) or document.id or f"{article_id}:{index}"),
        article_id=str(article_id),
        text=document.page_content,
        title=title,
        source=source,
        url=url,
        published=published,
        chunk_index=index,
        start=int(meta.get(META_START) or 0),
        end=int(meta.get(META_END) or len(document.page_content)),
        score=float(meta.get(META_CHUNK_SCORE) or meta.get(META_SCORE) or 0.0),
        dense_score=_float(meta.get(META_DENSE_SCORE)),
        dense_rank=_int(meta.get(META_DENSE_RANK)),
        lexical_rank=_int(meta.get(META_LEXICAL_RANK)),
    )


def _first_text(meta: Mapping[str, Any], keys: Sequence[str]) -> str | None:
    for key in keys:
        value = meta.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _url(value: object) -> str | None:
    if isinstance(value, str) and _HTTP.fullmatch(value.strip()):
        return value.strip()
    return None


def _title_from_path(value: str) -> str | None:
    """``/news/fed-raises_rates.txt`` -> ``Fed raises rates`` (a loader's file source)."""
    name = PurePath(value).name
    if "." not in name and "/" not in value and "\\" not in value:
        return None  # an outlet name, not a file: no title in it
    words = " ".join(re.sub(r"[-_]+", " ", PurePath(name).stem).split())
    return words[:1].upper() + words[1:] if words else None


def _first_line(text: str) -> str:
    """The first sentence of the first line, cut at a word to at most 100 characters."""
    line = next((line for line in text.splitlines() if line.strip()), text)
    line = re.split(r"(?<=[.!?])\s", " ".join(line.split()), maxsplit=1)[0]
    return line if len(line) <= 100 else line[:99].rsplit(" ", 1)[0] + "…"


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) else None
