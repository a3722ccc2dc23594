"""Ingest news pages by URL: fetch, extract, and store only what changed.

A URL fetched before is asked for again with its validators (``If-None-Match`` /
``If-Modified-Since``): a 304 costs nothing more. A 200 whose extracted article has the same
content hash as the last ingest is not ingested again either. Every URL gets one
:class:`UrlOutcome`; a failure (refused address, robots.txt, timeout, not a page) is
reported with its reason and the rest of the batch goes on.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Literal

from ingest.fetch import Fetched, Fetcher
from ingest.loaders import LoadLimits, decode_html, extract_html
from ingest.webstate import PageState, WebState
from rag.errors import FetchError, LoaderError, NewsragError
from rag.records import Article, sha1_hex

if TYPE_CHECKING:
    from ingest.pipeline import Ingestor

logger = logging.getLogger(__name__)

Status = Literal["added", "updated", "unchanged", "duplicate", "failed"]

_PAGE_TYPES = ("text/html", "application/xhtml+xml", "text/plain", "")


@dataclass(frozen=True)
class UrlOutcome:
    """What happened to one URL; ``reason`` says why it failed or was not ingested."""

    url: str
    status: Status
    reason: str = ""
    title: str | None = None
    article_id: str | None = None

    def __str__(self) -> str:
        what = f"{self.status}: {self.url}"
        if self.title:
            what += f" ({self.title})"
        return f"{what}: {self.reason}" if self.reason else what


@dataclass(frozen=True)
class UrlReport:
    """The outcomes of a batch of URLs, in the order given."""

    outcomes: tuple[UrlOutcome, ...] = ()

    @property
    def failed(self) -> tuple[UrlOutcome, ...]:
        return tuple(o for o in self.outcomes if o.status == "failed")

    @property
    def ingested(self) -> tuple[UrlOutcome, ...]:
        return tuple(o for o in self.outcomes if o.status in ("added", "updated"))

    def summary(self) -> str:
        """One line, e.g. ``added 1, updated 0, unchanged 2, duplicate 0, failed 1``."""
        counts = Counter(o.status for o in self.outcomes)
        statuses: tuple[Status, ...] = ("added", "updated", "unchanged", "duplicate", "failed")
        return ", ".join(f"{s} {counts[s]}" for s in statuses)


def article_id_for_url(url: str) -> str:
    """The article id of a page ingested from ``url`` (stable across fetches).

    >>> article_id_for_url("https://news.example/a") == article_id_for_url("https://news.example/a")
    True
    """
    return sha1_hex("url:" + url)


class WebIngestor:
    """Fetches pages and hands their articles to an :class:`~ingest.pipeline.Ingestor`.

    Example:
        >>> web = WebIngestor(ingestor, Fetcher(), WebState(db))  # doctest: +SKIP
        >>> web.ingest_urls(["https://news.example/story"]).summary()  # doctest: +SKIP
        'added 1, updated 0, unchanged 0, duplicate 0, failed 0'
    """

    def __init__(
        self,
        ingestor: Ingestor,
        fetcher: Fetcher,
        state: WebState,
        *,
        limits: LoadLimits | None = None,
    ) -> None:
        self.ingestor = ingestor
        self.fetcher = fetcher
        self.state = state
        self.limits = limits or LoadLimits()

    def ingest_urls(self, urls: Sequence[str]) -> UrlReport:
        """Ingest each URL in turn; one failing never stops the others."""
        outcomes: list[UrlOutcome] = []
        for url in dict.fromkeys(u.strip() for u in urls if u.strip()):
            outcomes.append(self.try_url(url))
        return UrlReport(tuple(outcomes))

    def try_url(self, url: str, *, published: date | None = None) -> UrlOutcome:
        """:meth:`ingest_url`, with a library error (store busy, disk full) as the outcome."""
        try:
            return self.ingest_url(url, published=published)
        except NewsragError as exc:
            logger.warning("ingesting %s failed: %s", url, exc)
            return UrlOutcome(url, "failed", str(exc))

    def ingest_url(self, url: str, *, published: date | None = None) -> UrlOutcome:
        """Fetch ``url`` (conditionally when fetched before) and ingest its article.

        ``published`` (a feed item's date) is used when the page itself gives none.
        """
        previous = self.state.page(url)
        try:
            fetched = self.fetcher.fetch(
                url,
                etag=previous.etag if previous else None,
                last_modified=previous.last_modified if previous else None,
            )
        except FetchError as exc:
            return UrlOutcome(url, "failed", str(exc))
        if fetched.not_modified and previous is not None:
            return UrlOutcome(
                url, "unchanged", "not modified (HTTP 304)", None, previous.article_id
            )
        try:
            article = self._article(url, fetched, published)
        except LoaderError as exc:
            return UrlOutcome(url, "failed", str(exc))
        if previous is not None and previous.content_hash == article.content_hash:
            self._remember(url, article, fetched)
            return UrlOutcome(url, "unchanged", "same content", article.title, article.article_id)
        report = self.ingestor.ingest_articles([article])
        if report.failed:
            return UrlOutcome(url, "failed", report.failed[0].reason, article.title)
        self._remember(url, article, fetched)
        if report.duplicates:
            twin = report.duplicates[0][1]
            return UrlOutcome(
                url, "duplicate", f"same text as {twin}", article.title, article.article_id
            )
        status: Status = "added" if report.added else "updated" if report.updated else "unchanged"
        return UrlOutcome(url, status, "", article.title, article.article_id)

    def _article(self, url: str, fetched: Fetched, published: date | None) -> Article:
        if fetched.content_type not in _PAGE_TYPES:
            msg = f"not a web page ({fetched.content_type})"
            raise LoaderError(msg)
        html = decode_html(fetched.content, fetched.charset)
        if not html.strip():
            msg = "empty page"
            raise LoaderError(msg)
        page = extract_html(html, url=fetched.final_url, max_seconds=self.limits.max_seconds)
        link = page.url or fetched.final_url
        return Article(
            article_id=article_id_for_url(url),
            title=page.title or link,
            text=page.text,
            source=link,
            origin=url,
            url=link,
            published=page.published or published,
            author=page.author,
            site_name=page.site_name,
        )

    def _remember(self, url: str, article: Article, fetched: Fetched) -> None:
        self.state.save_page(
            PageState(
                url=url,
                article_id=article.article_id,
                etag=fetched.etag,
                last_modified=fetched.last_modified,
                content_hash=article.content_hash,
                fetched_at=time.time(),
            )
        )
