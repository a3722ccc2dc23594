"""Web pages and followed feeds of one library, for an app that stays open (the chat).

:class:`WebLibrary` keeps one polite :class:`~ingest.fetch.Fetcher` and the library's
:class:`~ingest.webstate.WebState` for as long as the app runs, and offers what the chat's
library panel does: add a page by URL, follow a feed (its current items are ingested at
once), stop following one, list the feeds with their last fetch, new articles and error,
and fetch them all now. ``newsrag ingest URL``, ``newsrag feeds`` and ``newsrag watch`` do
the same from the command line.

Every user mistake (not a URL, not a feed, a page that fails) comes back as a result with
its reason, never as an exception.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ingest.feeds import FeedPoll, FeedWatcher
from ingest.fetch import Fetcher, FetchPolicy
from ingest.web import UrlOutcome, WebIngestor
from ingest.webstate import FeedState, WebState
from rag.errors import FetchError, NewsragError

if TYPE_CHECKING:
    from ingest.pipeline import Ingestor
    from rag.settings import Settings

logger = logging.getLogger(__name__)


def check_url(text: str) -> str | None:
    """Why ``text`` is not a web address to fetch (None when it is one).

    >>> check_url("https://news.example/a"), check_url("news.example/a")
    (None, 'not a web address: write it with http:// or https://')
    """
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "not a web address: write it with http:// or https://"
    return None


@dataclass(frozen=True)
class FollowResult:
    """Following a feed: the first poll of its items, or why it is not followed."""

    url: str
    poll: FeedPoll | None = None
    error: str | None = None
    already: bool = False


class WebLibrary:
    """Pages and feeds of one library, through one fetcher and its web state.

    Example:
        >>> web = WebLibrary.open(assistant.ingestor(), settings)  # doctest: +SKIP
        >>> web.add_page("https://news.example/story").status  # doctest: +SKIP
        'added'
        >>> web.follow("https://news.example/rss").poll.new_articles  # doctest: +SKIP
        12
    """

    def __init__(self, web: WebIngestor, state: WebState, *, max_items: int = 50) -> None:
        self.web = web
        self.state = state
        self.watcher = FeedWatcher(web, state, max_items=max_items)
        # One fetch-and-ingest at a time: two polls of one feed would ingest its items twice.
        self._lock = threading.Lock()

    @classmethod
    def open(cls, ingestor: Ingestor, settings: Settings) -> WebLibrary:
        """The web side of the library of ``settings`` (its database, its fetch policy)."""
        fetcher = Fetcher(FetchPolicy.from_settings(settings))
        state = WebState(ingestor.index.records.engine)
        web = WebIngestor(ingestor, fetcher, state, limits=ingestor.limits)
        return cls(web, state, max_items=settings.feed_max_items)

    def add_page(self, url: str) -> UrlOutcome:
        """Fetch the page at ``url`` and ingest its article (unchanged pages cost nothing)."""
        url = url.strip()
        problem = check_url(url)
        if problem:
            return UrlOutcome(url, "failed", problem)
        with self._lock:
            return self.web.try_url(url)

    def follow(self, url: str) -> FollowResult:
        """Follow the feed at ``url`` and ingest its current items at once."""
        url = url.strip()
        problem = check_url(url)
        if problem:
            return FollowResult(url, error=problem)
        with self._lock:
            if self.state.feed(url) is not None:
                return FollowResult(url, already=True)
            try:
                self.watcher.add(url)
            except FetchError as exc:
                return FollowResult(url, error=str(exc))
            try:
                return FollowResult(url, poll=self.watcher.poll(url))
            except NewsragError as exc:  # followed; its items come with the next poll
                logger.warning("first poll of %s failed: %s", url, exc)
                return FollowResult(url, error=f"followed, but its articles failed: {exc}")

    def unfollow(self, url: str) -> bool:
        """Stop following ``url`` (its articles stay in the library); False if not followed."""
        return self.state.remove_feed(url)

    def feeds(self) -> list[FeedState]:
        """The followed feeds, in the order they were added."""
        return self.state.feeds()

    def poll_all(self) -> list[FeedPoll]:
        """Fetch every followed feed now and ingest its new items."""
        with self._lock:
            return self.watcher.poll_all()

    def close(self) -> None:
        self.web.fetcher.close()
