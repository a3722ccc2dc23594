"""Follow RSS and Atom feeds: parse them (feedparser) and ingest their new items' pages.

A poll fetches each followed feed conditionally (its ETag / Last-Modified), takes the items
not seen before (newest first, at most ``max_items``), and ingests each item's page through
:class:`~ingest.web.WebIngestor`. Seen items, validators, errors and counts are kept in
:class:`~ingest.webstate.WebState`, so a restart polls on where it stopped. A broken item
(no link, a page that fails) is reported and the others are ingested. Processes polling
the same feed (app hosts sharing a library) each fetch the feed, but each new item is
claimed in the database before its page is fetched, so one of them ingests it.
"""

from __future__ import annotations

import calendar
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser

from ingest.web import UrlOutcome, WebIngestor
from ingest.webstate import WebState
from rag.errors import FetchError

logger = logging.getLogger(__name__)

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)


@dataclass(frozen=True)
class FeedItem:
    """One entry of a feed: ``key`` (its id, else its link) identifies it across polls."""

    key: str
    link: str
    title: str
    published: date | None = None


@dataclass(frozen=True)
class ParsedFeed:
    """A feed's title, its usable items and one line per broken item."""

    title: str | None
    items: tuple[FeedItem, ...]
    problems: tuple[str, ...] = ()


def parse_feed(content: bytes, base_url: str) -> ParsedFeed:
    """Parse RSS 2.0, RSS 1.0 or Atom bytes; relative item links resolve against ``base_url``.

    Raises :class:`FetchError` when the bytes are not a feed at all.

    >>> rss = b'''<rss version="2.0"><channel><title>Wire</title><item><title>A</title>
    ... <link>/a</link><pubDate>Tue, 17 Sep 2024 08:00:00 GMT</pubDate></item></channel></rss>'''
    >>> feed = parse_feed(rss, "https://news.example/rss")
    >>> feed.title, feed.items[0].link, feed.items[0].published
    ('Wire', 'https://news.example/a', datetime.date(2024, 9, 17))
    """
    # Bytes, never a string: feedparser would take a string for a URL or a path to read.
    parsed: Any = feedparser.parse(content)
    version = parsed.get("version") or ""
    if not version and not parsed.entries:
        cause = parsed.get("bozo_exception")
        msg = f"not an RSS or Atom feed{f' ({cause})' if cause else ''}"
        raise FetchError(msg)
    items: list[FeedItem] = []
    problems: list[str] = []
    for number, entry in enumerate(parsed.entries, start=1):
        title = " ".join(str(entry.get("title") or "").split())
        link = urljoin(base_url, str(entry.get("link") or "").strip())
        if not entry.get("link") or urlsplit(link).scheme not in ("http", "https"):
            name = f" {title!r}" if title else ""
            problems.append(f"item {number}{name} has no web link")
            continue
        key = str(entry.get("id") or "").strip() or link
        items.append(FeedItem(key, link, title or link, _entry_date(entry)))
    feed_title = " ".join(str(parsed.feed.get("title") or "").split()) or None
    return ParsedFeed(feed_title, tuple(items), tuple(problems))


def _entry_date(entry: Any) -> date | None:
    for key in ("published_parsed", "updated_parsed"):
        value = entry.get(key)
        if value:
            try:
                return datetime.fromtimestamp(calendar.timegm(value), UTC).date()
            except (OverflowError, ValueError, TypeError):
                continue
    return None


@dataclass(frozen=True)
class FeedPoll:
    """One poll of one feed: the new items' outcomes, broken items, or the feed's error."""

    url: str
    title: str | None = None
    error: str | None = None
    outcomes: tuple[UrlOutcome, ...] = ()
    problems: tuple[str, ...] = field(default_factory=tuple)
    not_modified: bool = False

    @property
    def new_articles(self) -> int:
        return sum(o.status in ("added", "updated") for o in self.outcomes)

    def lines(self) -> list[str]:
        """Human lines: a header for the feed, then each item that was not plain."""
        name = f"{self.title} ({self.url})" if self.title else self.url
        if self.error:
            return [f"feed failed: {name}: {self.error}"]
        if self.not_modified:
            return [f"feed {name}: not modified"]
        lines = [f"feed {name}: {self.new_articles} new of {len(self.outcomes)} items fetched"]
        lines += [f"  {outcome}" for outcome in self.outcomes]
        lines += [f"  broken item: {problem}" for problem in self.problems]
        return lines


class FeedWatcher:
    """Polls the followed feeds of one library and ingests their new items.

    Example:
        >>> watcher = FeedWatcher(web, state, max_items=50)  # doctest: +SKIP
        >>> [poll.new_articles for poll in watcher.poll_all()]  # doctest: +SKIP
        [3, 0]
    """

    def __init__(self, web: WebIngestor, state: WebState, *, max_items: int = 50) -> None:
        self.web = web
        self.state = state
        self.max_items = max_items

    def add(self, url: str) -> ParsedFeed:
        """Check that ``url`` is a feed, then follow it; raises :class:`FetchError` if not."""
        fetched = self.web.fetcher.fetch(url, accept=FEED_ACCEPT)
        feed = parse_feed(fetched.content, fetched.final_url)
        self.state.add_feed(url, feed.title)
        return feed

    def poll_all(self) -> list[FeedPoll]:
        """Poll every followed feed once, in the order they were added."""
        return [self.poll(feed.url) for feed in self.state.feeds()]

    def poll(self, url: str) -> FeedPoll:
        """Poll one feed; its error is recorded and returned, never raised."""
        known = self.state.feed(url)
        try:
            fetched = self.web.fetcher.fetch(
                url,
                etag=known.etag if known else None,
                last_modified=known.last_modified if known else None,
                accept=FEED_ACCEPT,
            )
            if fetched.not_modified:
                self.state.record_poll(url, error=None)
                return FeedPoll(url, known.title if known else None, not_modified=True)
            feed = parse_feed(fetched.content, fetched.final_url)
        except FetchError as exc:
            self.state.record_poll(url, error=str(exc))
            return FeedPoll(url, known.title if known else None, error=str(exc))
        outcomes = self._ingest_new(url, feed.items)
        poll = FeedPoll(url, feed.title, None, tuple(outcomes), feed.problems)
        self.state.record_poll(
            url,
            error=None,
            new=poll.new_articles,
            title=feed.title,
            etag=fetched.etag,
            last_modified=fetched.last_modified,
        )
        return poll

    def _ingest_new(self, feed_url: str, items: Sequence[FeedItem]) -> list[UrlOutcome]:
        fresh = [item for item in items if not self.state.item_done(feed_url, item.key)]
        # Newest first, so a long backlog brings the recent news before the cap.
        fresh.sort(key=lambda item: item.published or date.min, reverse=True)
        outcomes: list[UrlOutcome] = []
        for item in fresh[: self.max_items]:
            if not self.state.claim_item(feed_url, item.key, item.link):
                continue  # another process (an app host sharing the library) has it
            outcome = self.web.try_url(item.link, published=item.published)
            error = outcome.reason if outcome.status == "failed" else None
            self.state.record_item(feed_url, item.key, item.link, error=error)
            outcomes.append(outcome)
        return outcomes
