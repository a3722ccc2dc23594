"""The library as a table: search, sort and paging over the indexed articles, the full
text of one article, and what is needed to undo a delete.

The chat's "Articles" view is a thin layer over these functions. The database does the
searching, sorting and slicing (:meth:`rag.record_store.SqlRecordStore.list_articles`), so a page
costs the same in a library of 100 or 100,000 articles (bench/library.py).

Example:
    >>> from rag.components import build_index  # doctest: +SKIP
    >>> page = library_page(build_index(settings), query="harbor")  # doctest: +SKIP
    >>> page.rows[0].title, page.total  # doctest: +SKIP
    ('Harbor reopens', 1)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from rag.records import Article
from rag.store import ArticleRecord, Library

logger = logging.getLogger(__name__)

PAGE_SIZE = 20


@dataclass(frozen=True)
class LibraryRow:
    """One article of the table. ``added`` is when it last entered or changed in the
    library."""

    article_id: str
    title: str
    outlet: str
    published: date | None
    added: datetime | None
    chunks: int


@dataclass(frozen=True)
class LibraryPage:
    """The rows of one page, and where it lies among all matching rows."""

    rows: tuple[LibraryRow, ...]
    total: int
    page: int
    pages: int


# Sort name (an order of :data:`rag.record_store.ARTICLE_ORDERS`) -> label shown.
SORTS: dict[str, str] = {
    "published": "Newest published",
    "published-asc": "Oldest published",
    "added": "Recently added",
    "title": "Title A-Z",
    "chunks": "Most chunks",
}


def library_page(
    index: Library,
    query: str = "",
    sort: str = "published",
    page: int = 1,
    page_size: int = PAGE_SIZE,
    outlet: Callable[[ArticleRecord], str] = lambda record: record.source,
) -> LibraryPage:
    """The ``page`` (from 1, clamped to the last) of the complete articles whose title,
    source or URL contains every word of ``query`` (case-insensitive), in the order
    ``sort`` names (see :data:`SORTS`); ``outlet`` names a row's outlet.

    A page past the end shows the last one (a delete may have shortened the list).
    """
    if sort not in SORTS:
        msg = f"unknown sort {sort!r}; choose one of {', '.join(SORTS)}"
        raise ValueError(msg)
    page = max(1, page)
    listed = index.records.list_articles(query, sort, (page - 1) * page_size, page_size)
    pages = max(1, -(-listed.total // page_size))
    if page > pages:
        page = pages
        listed = index.records.list_articles(query, sort, (page - 1) * page_size, page_size)
    rows = tuple(
        LibraryRow(
            item.record.article_id,
            item.record.title,
            outlet(item.record),
            item.record.published,
            datetime.fromtimestamp(item.added, UTC),
            item.record.n_chunks,
        )
        for item in listed.items
    )
    return LibraryPage(rows, listed.total, page, pages)


def article_text(index: Library, article_id: str) -> str | None:
    """An article's text rebuilt from its chunks (None when it is not in the library).

    Chunks carry their character offsets into the article, so overlapping chunks are laid
    over each other, not repeated.
    """
    chunk_ids = list(index.records.chunk_ids_of([article_id]))
    chunks = sorted(index.records.chunks_by_id(chunk_ids).values(), key=lambda c: c.start)
    if not chunks:
        return None
    text = ""
    for chunk in chunks:
        if chunk.start >= len(text):
            text += " " * (chunk.start - len(text)) + chunk.text
        elif chunk.start + len(chunk.text) > len(text):
            text = text[: chunk.start] + chunk.text
    return text.strip()


def snapshot(index: Library, record: ArticleRecord) -> Article | None:
    """The article as it is indexed, to put it back after a delete (see ``undo``)."""
    text = article_text(index, record.article_id)
    if text is None:
        return None
    return Article(
        article_id=record.article_id,
        title=record.title,
        text=text,
        source=record.source,
        origin=record.origin,
        url=record.url,
        published=record.published,
    )
