"""What newsrag remembers about the web: fetched pages, followed feeds, seen feed items.

Kept in its own tables of the library's SQLite record database (``settings.index_db_path``)
through its own connection (WAL, like the record store), so it survives restarts and moves
with the library. The record store's tables are not touched.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rag.database import use_wal
from rag.errors import StoreError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS web_pages (
    url TEXT PRIMARY KEY,
    article_id TEXT NOT NULL,
    etag TEXT,
    last_modified TEXT,
    content_hash TEXT,
    fetched_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS web_feeds (
    url TEXT PRIMARY KEY,
    title TEXT,
    added_at REAL NOT NULL,
    last_fetch REAL,
    last_error TEXT,
    etag TEXT,
    last_modified TEXT,
    last_new INTEGER NOT NULL DEFAULT 0,
    total_new INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS web_feed_items (
    feed_url TEXT NOT NULL,
    item_key TEXT NOT NULL,
    link TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    done INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    seen_at REAL NOT NULL,
    PRIMARY KEY (feed_url, item_key)
);
"""

# A feed item whose page failed this many polls in a row is given up (a robots.txt
# disallow or a dead link would otherwise be fetched again on every poll).
MAX_ITEM_ATTEMPTS = 3


@dataclass(frozen=True)
class PageState:
    """The validators and content hash of the last successful fetch of a URL."""

    url: str
    article_id: str
    etag: str | None
    last_modified: str | None
    content_hash: str | None
    fetched_at: float


@dataclass(frozen=True)
class FeedState:
    """A followed feed: its last fetch, the new articles it brought and its last error."""

    url: str
    title: str | None
    added_at: float
    last_fetch: float | None
    last_error: str | None
    etag: str | None
    last_modified: str | None
    last_new: int
    total_new: int


class WebState:
    """The web tables of one library database.

    Example:
        >>> state = WebState(Path("/tmp/newsrag-doc-web.sqlite3"))
        >>> state.add_feed("https://news.example/rss")
        True
        >>> [feed.url for feed in state.feeds()]
        ['https://news.example/rss']
    """

    def __init__(self, db_path: Path, busy_seconds: float = 30.0) -> None:
        self.db_path = db_path
        self.busy_seconds = busy_seconds
        self._local = threading.local()
        try:
            db_path.parent.mkdir(parents=True, exist_ok=True)
            with self._tx() as con:
                # One statement at a time: executescript would commit the transaction.
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        con.execute(statement)
        except (OSError, sqlite3.Error) as exc:
            msg = f"cannot open the web state in {db_path}: {exc}"
            raise StoreError(msg) from exc

    def _con(self) -> sqlite3.Connection:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.db_path, timeout=self.busy_seconds, isolation_level=None)
            use_wal(con, self.busy_seconds)
            con.execute("PRAGMA synchronous=NORMAL")
            self._local.con = con
        return con

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        con = self._con()
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def close(self) -> None:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

    # -- pages -----------------------------------------------------------------------

    def page(self, url: str) -> PageState | None:
        row = self._con().execute("SELECT * FROM web_pages WHERE url = ?", (url,)).fetchone()
        return None if row is None else PageState(*row)

    def save_page(self, state: PageState) -> None:
        with self._tx() as con:
            con.execute(
                "INSERT OR REPLACE INTO web_pages VALUES (?, ?, ?, ?, ?, ?)",
                (
                    state.url,
                    state.article_id,
                    state.etag,
                    state.last_modified,
                    state.content_hash,
                    state.fetched_at,
                ),
            )

    # -- feeds -----------------------------------------------------------------------

    def add_feed(self, url: str, title: str | None = None) -> bool:
        """Follow ``url``; False when it was followed already."""
        with self._tx() as con:
            cursor = con.execute(
                "INSERT OR IGNORE INTO web_feeds (url, title, added_at) VALUES (?, ?, ?)",
                (url, title, time.time()),
            )
            return cursor.rowcount == 1

    def remove_feed(self, url: str) -> bool:
        """Stop following ``url`` and forget its items; False when it was not followed."""
        with self._tx() as con:
            con.execute("DELETE FROM web_feed_items WHERE feed_url = ?", (url,))
            return con.execute("DELETE FROM web_feeds WHERE url = ?", (url,)).rowcount == 1

    def feeds(self) -> list[FeedState]:
        rows = self._con().execute(
            "SELECT url, title, added_at, last_fetch, last_error, etag, last_modified, "
            "last_new, total_new FROM web_feeds ORDER BY added_at, url"
        )
        return [FeedState(*row) for row in rows]

    def feed(self, url: str) -> FeedState | None:
        return next((f for f in self.feeds() if f.url == url), None)

    def record_poll(
        self,
        url: str,
        *,
        error: str | None,
        new: int = 0,
        title: str | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
    ) -> None:
        """Note one poll of a feed: its error (None when it worked) and new articles."""
        with self._tx() as con:
            if error is None:
                con.execute(
                    "UPDATE web_feeds SET last_fetch = ?, last_error = NULL, last_new = ?, "
                    "total_new = total_new + ?, title = COALESCE(?, title), "
                    "etag = COALESCE(?, etag), last_modified = COALESCE(?, last_modified) "
                    "WHERE url = ?",
                    (time.time(), new, new, title, etag, last_modified, url),
                )
            else:
                con.execute(
                    "UPDATE web_feeds SET last_fetch = ?, last_error = ?, last_new = ?, "
                    "total_new = total_new + ? WHERE url = ?",
                    (time.time(), error, new, new, url),
                )

    # -- feed items ------------------------------------------------------------------

    def item_done(self, feed_url: str, item_key: str) -> bool:
        """Whether the item was ingested, or given up after repeated failures."""
        row = (
            self._con()
            .execute(
                "SELECT done, attempts FROM web_feed_items WHERE feed_url = ? AND item_key = ?",
                (feed_url, item_key),
            )
            .fetchone()
        )
        return row is not None and (bool(row[0]) or row[1] >= MAX_ITEM_ATTEMPTS)

    def record_item(
        self, feed_url: str, item_key: str, link: str | None, *, error: str | None
    ) -> None:
        """Note one attempt at an item's page; ``error`` None when it was ingested."""
        with self._tx() as con:
            con.execute(
                "INSERT INTO web_feed_items (feed_url, item_key, link, attempts, done, error, "
                "seen_at) VALUES (?, ?, ?, 1, ?, ?, ?) "
                "ON CONFLICT (feed_url, item_key) DO UPDATE SET attempts = attempts + 1, "
                "done = excluded.done, error = excluded.error, link = excluded.link",
                (feed_url, item_key, link, int(error is None), error, time.time()),
            )
