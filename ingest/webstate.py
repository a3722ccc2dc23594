"""What newsrag remembers about the web: fetched pages, followed feeds, seen feed items.

Kept in its own tables of the library's database (``NEWSRAG_DATABASE_URL``: the SQLite file
in the data dir by default, Postgres for a shared library), through the record store's
engine, so it survives restarts, moves with the library, and is one state for every
process: a feed followed through one app host is polled by the others, and a feed item is
fetched and ingested by the one process that claimed it (:meth:`WebState.claim_item`).
The record store's tables are not touched.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, delete, func, or_, select, update

from rag.database import (
    WEB_FEED_ITEMS,
    WEB_FEEDS,
    WEB_PAGES,
    connection,
    dialect_insert,
    upsert,
)

# A feed item whose page failed this many polls in a row is given up (a robots.txt
# disallow or a dead link would otherwise be fetched again on every poll).
MAX_ITEM_ATTEMPTS = 3
# A claimed item not recorded within this long is free again: its process died mid-ingest.
CLAIM_SECONDS = 900.0


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

    ``engine`` is the record store's (``index.records.engine``), whose tables
    :func:`rag.database.create_schema` made.

    Example:
        >>> from rag.store import open_record_store
        >>> state = WebState(open_record_store("sqlite://").engine)
        >>> state.add_feed("https://news.example/rss")
        True
        >>> [feed.url for feed in state.feeds()]
        ['https://news.example/rss']
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _connect(self, write: bool = False) -> AbstractContextManager[Connection]:
        return connection(self.engine, "the web state", write=write)

    # -- pages -----------------------------------------------------------------------

    def page(self, url: str) -> PageState | None:
        with self._connect() as con:
            row = con.execute(select(WEB_PAGES).where(WEB_PAGES.c.url == url)).first()
        return None if row is None else PageState(*row)

    def save_page(self, state: PageState) -> None:
        row = {
            "url": state.url,
            "article_id": state.article_id,
            "etag": state.etag,
            "last_modified": state.last_modified,
            "content_hash": state.content_hash,
            "fetched_at": state.fetched_at,
        }
        with self._connect(write=True) as con:
            upsert(con, WEB_PAGES, [row], ("url",))

    # -- feeds -----------------------------------------------------------------------

    def add_feed(self, url: str, title: str | None = None) -> bool:
        """Follow ``url``; False when it was followed already."""
        with self._connect(write=True) as con:
            insert = dialect_insert(con, WEB_FEEDS).values(
                url=url, title=title, added_at=time.time()
            )
            # RETURNING, not rowcount: drivers need not count the rows of an INSERT.
            added = insert.on_conflict_do_nothing().returning(WEB_FEEDS.c.url)
            return con.execute(added).first() is not None

    def remove_feed(self, url: str) -> bool:
        """Stop following ``url`` and forget its items; False when it was not followed."""
        with self._connect(write=True) as con:
            con.execute(delete(WEB_FEED_ITEMS).where(WEB_FEED_ITEMS.c.feed_url == url))
            return con.execute(delete(WEB_FEEDS).where(WEB_FEEDS.c.url == url)).rowcount == 1

    def feeds(self) -> list[FeedState]:
        f = WEB_FEEDS.c
        with self._connect() as con:
            rows = con.execute(
                select(
                    f.url,
                    f.title,
                    f.added_at,
                    f.last_fetch,
                    f.last_error,
                    f.etag,
                    f.last_modified,
                    f.last_new,
                    f.total_new,
                ).order_by(f.added_at, f.url)
            ).all()
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
        f = WEB_FEEDS.c
        values: dict[str, object] = {
            "last_fetch": time.time(),
            "last_error": error,
            "last_new": new,
            # Added in the database: two processes polling at once both count.
            "total_new": f.total_new + new,
        }
        if error is None:
            values |= {
                "title": func.coalesce(title, f.title),
                "etag": func.coalesce(etag, f.etag),
                "last_modified": func.coalesce(last_modified, f.last_modified),
            }
        with self._connect(write=True) as con:
            con.execute(update(WEB_FEEDS).where(f.url == url).values(values))

    # -- feed items ------------------------------------------------------------------

    def item_done(self, feed_url: str, item_key: str) -> bool:
        """Whether the item was ingested, or given up after repeated failures."""
        i = WEB_FEED_ITEMS.c
        with self._connect() as con:
            row = con.execute(
                select(i.done, i.attempts).where(i.feed_url == feed_url, i.item_key == item_key)
            ).first()
        return row is not None and (bool(row[0]) or row[1] >= MAX_ITEM_ATTEMPTS)

    def claim_item(self, feed_url: str, item_key: str, link: str | None) -> bool:
        """Take the item to fetch and ingest it; False when another process has it, or it
        is done or given up.

        Atomic in the database: of processes claiming one item at once (the watchers of
        several app hosts), exactly one gets True. The claim ends with
        :meth:`record_item`, or after :data:`CLAIM_SECONDS` when its process died.
        """
        i = WEB_FEED_ITEMS.c
        now = time.time()
        with self._connect(write=True) as con:
            first = dialect_insert(con, WEB_FEED_ITEMS).values(
                feed_url=feed_url, item_key=item_key, link=link, seen_at=now, claimed_at=now
            )
            first = first.on_conflict_do_nothing().returning(WEB_FEED_ITEMS.c.item_key)
            if con.execute(first).first() is not None:  # the item is new: ours
                return True
            # Seen before: a retry of a failed item, unless another process holds it.
            retry = (
                update(WEB_FEED_ITEMS)
                .where(
                    i.feed_url == feed_url,
                    i.item_key == item_key,
                    i.done == 0,
                    i.attempts < MAX_ITEM_ATTEMPTS,
                    or_(i.claimed_at.is_(None), i.claimed_at < now - CLAIM_SECONDS),
                )
                .values(claimed_at=now)
            )
            return con.execute(retry).rowcount == 1

    def record_item(
        self, feed_url: str, item_key: str, link: str | None, *, error: str | None
    ) -> None:
        """Note one attempt at an item's page (and end its claim); ``error`` None when it
        was ingested."""
        with self._connect(write=True) as con:
            insert = dialect_insert(con, WEB_FEED_ITEMS).values(
                feed_url=feed_url,
                item_key=item_key,
                link=link,
                attempts=1,
                done=int(error is None),
                error=error,
                seen_at=time.time(),
            )
            con.execute(
                insert.on_conflict_do_update(
                    index_elements=["feed_url", "item_key"],
                    set_={
                        "attempts": WEB_FEED_ITEMS.c.attempts + 1,
                        "done": insert.excluded.done,
                        "error": insert.excluded.error,
                        "link": insert.excluded.link,
                        "claimed_at": None,
                    },
                )
            )
