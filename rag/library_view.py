"""The library as a table: search, sort and paging over the indexed articles, the full
text of one article, and what is needed to undo a delete.

The chat's "Articles" view is a thin layer over these functions.

Example:
    >>> rows = [LibraryRow("a1", "Harbor reopens", "cnn.com", None, None, 3)]
    >>> library_page(rows, query="harbor").rows[0].title
    'Harbor reopens'
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from rag.records import Article
from rag.store import ArticleRecord, ChunkIndex

logger = logging.getLogger(__name__)

PAGE_SIZE = 20


@dataclass(frozen=True)
class LibraryRow:
    """One article of the table. ``added`` is when it last entered or changed in the
    library (None when the record database does not say)."""

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


def _newest_first(day: date | datetime | None) -> tuple[int, float]:
    if day is None:
        return (1, 0.0)  # undated rows go last in either direction
    if isinstance(day, datetime):
        return (0, -day.timestamp())
    return (0, -float(day.toordinal()))


def _oldest_first(day: date | None) -> tuple[int, float]:
    return (1, 0.0) if day is None else (0, float(day.toordinal()))


# Sort name -> (label shown, key of a row).
SORTS: dict[str, tuple[str, Callable[[LibraryRow], Any]]] = {
    "published": ("Newest published", lambda r: (_newest_first(r.published), r.title.lower())),
    "published-asc": ("Oldest published", lambda r: (_oldest_first(r.published), r.title.lower())),
    "added": ("Recently added", lambda r: (_newest_first(r.added), r.title.lower())),
    "title": ("Title A-Z", lambda r: (r.title.lower(), r.article_id)),
    "chunks": ("Most chunks", lambda r: (-r.chunks, r.title.lower())),
}


def library_page(
    rows: Sequence[LibraryRow],
    query: str = "",
    sort: str = "published",
    page: int = 1,
    page_size: int = PAGE_SIZE,
) -> LibraryPage:
    """The ``page`` (from 1, clamped) of rows whose title or outlet contains every word
    of ``query`` (case-insensitive), in the order ``sort`` names (see :data:`SORTS`).

    >>> rows = [LibraryRow(str(n), f"Story {n}", "x.com", None, None, n) for n in range(45)]
    >>> p = library_page(rows, sort="chunks", page=3)
    >>> (p.total, p.page, p.pages, [r.chunks for r in p.rows])
    (45, 3, 3, [4, 3, 2, 1, 0])
    """
    if sort not in SORTS:
        msg = f"unknown sort {sort!r}; choose one of {', '.join(SORTS)}"
        raise ValueError(msg)
    words = query.lower().split()
    matching = [r for r in rows if all(w in f"{r.title} {r.outlet}".lower() for w in words)]
    matching.sort(key=SORTS[sort][1])
    pages = max(1, -(-len(matching) // page_size))
    page = min(max(1, page), pages)
    start = (page - 1) * page_size
    return LibraryPage(tuple(matching[start : start + page_size]), len(matching), page, pages)


def added_times(db_path: Path) -> dict[str, datetime]:
    """When each article last entered the library, read from the record database's
    ``articles.updated_at``; empty when the database has no such column (another store).
    """
    if not db_path.exists():
        return {}
    try:
        uri = f"{db_path.resolve().as_uri()}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5)) as con:
            rows = con.execute("SELECT article_id, updated_at FROM articles").fetchall()
    except sqlite3.Error as exc:
        logger.info("no added times in %s: %s", db_path, exc)
        return {}
    return {str(a): datetime.fromtimestamp(float(t), UTC) for a, t in rows if t is not None}


def article_text(index: ChunkIndex, article_id: str) -> str | None:
    """An article's text rebuilt from its chunks (None when it is not in the library).

    Chunks carry their character offsets into the article, so overlapping chunks are laid
    over each other, not repeated.
    """
    chunk_ids = list(index.chunk_ids_of([article_id]))
    chunks = sorted(index.chunks_by_id(chunk_ids).values(), key=lambda c: c.start)
    if not chunks:
        return None
    text = ""
    for chunk in chunks:
        if chunk.start >= len(text):
            text += " " * (chunk.start - len(text)) + chunk.text
        elif chunk.start + len(chunk.text) > len(text):
            text = text[: chunk.start] + chunk.text
    return text.strip()


def snapshot(index: ChunkIndex, record: ArticleRecord) -> Article | None:
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
