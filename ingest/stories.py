"""One story, many outlets, in a library: each stored article's story, kept up to date.

:class:`LibraryStories` is the near-duplicate index (:class:`ingest.dedupe.StoryGrouper`)
of one library, filled from the MinHash signatures stored beside the articles (the
``stories`` table), so a restart never re-reads or re-shingles the texts; and only with
the stored articles that share an LSH band with the ones being placed (the
``story_bands`` table), so an ingest's cost does not grow with the library. At ingest,
:meth:`LibraryStories.place` decides, for each new or changed article:

- its **story**: the story of its most similar stored article when the two share at least
  ``threshold`` of their word 5-shingles (0.5, measured in docs/BENCHMARKS.md), else a new
  one named after the article. Exact copies from another outlet join the same way: they
  are kept, as members of the story, instead of being dropped as duplicates;
- whether it **replaces** an older article: a new version from the same canonical URL, or
  from the same outlet with a near-identical text (:data:`UPDATE_SIMILARITY`) under a
  related headline (:data:`HEADLINE_OVERLAP`). A version older than the stored one is not
  stored. Copies from different outlets never replace each other; they group.

Libraries written before stories existed get theirs on open (:func:`backfill_stories`),
from the chunk texts already stored: nothing is embedded again; those written before the
band keys get them on open too (:func:`backfill_bands`), from the stored signatures.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from datasketch import LeanMinHash

from ingest.dedupe import (
    DEFAULT_THRESHOLD,
    StoryGrouper,
    exact_key,
    from_bytes,
    is_short,
    signature,
    signature_bytes,
)
from rag.record_store import ArticleRecord, StoryRow
from rag.records import Article

if TYPE_CHECKING:
    from rag.store import Library

logger = logging.getLogger(__name__)

# Same outlet and at least this similar: one article in two versions (an update, the same
# page under two URLs), not two stories. Stricter than the story threshold: two articles of
# one outlet at 0.5 are often a follow-up story, which must stay a source of its own.
UPDATE_SIMILARITY = 0.9
# ... and headlines sharing at least this share of their words. Without it, pages whose
# scraped text is the same page furniture replaced each other: on RealTime QA dev, 121 of
# the 124 same-outlet pairs at >= 0.9 were such theweek.co.uk pages (headline overlap
# <= 0.25); the 3 others (0.36 to 1.0) were CNN articles updated in place.
HEADLINE_OVERLAP = 0.3
_HEADLINE_STOPWORDS = frozenset(
    "a an and are as at be by for from how in is of on the to vs what who why will with".split()
)

_TRACKING = ("utm_", "fbclid", "gclid", "mc_cid", "mc_eid", "cid", "amp", "ref", "smid")


def canonical_url(url: str) -> str:
    """The URL one page is known by: https, lowercased host without ``www.``, no
    fragment, no trailing slash or ``/index.html``, no tracking parameters.

    >>> canonical_url("http://WWW.News.example/a/index.html?utm_source=x&id=3#top")
    'https://news.example/a?id=3'
    """
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower().removeprefix("www.")
    if parts.port and parts.port not in (80, 443):
        host += f":{parts.port}"
    path = parts.path.removesuffix("/index.html").rstrip("/")
    query = urlencode(
        [
            (k, v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if not k.lower().startswith(_TRACKING)
        ]
    )
    scheme = "https" if parts.scheme in ("http", "https") else parts.scheme
    return urlunsplit((scheme, host, path, query, ""))


def headline_overlap(a: str, b: str) -> float:
    """Jaccard overlap of two headlines' words (site suffixes after " | " or " - " and
    small words left out).

    >>> round(headline_overlap("Biden calls gas tax holiday - CNN", "Biden calls gas tax pause"), 2)
    0.67
    """

    def words(title: str) -> set[str]:
        head = re.split(r" [|\-–—] ", title)[0]
        return {w for w in re.findall(r"\w+", head.lower()) if w not in _HEADLINE_STOPWORDS}

    left, right = words(a), words(b)
    return len(left & right) / len(left | right) if left | right else 0.0


def names_outlet(article: Article | ArticleRecord) -> bool:
    """Whether the article says where it was published (a URL or a site name): only then
    can two exact copies be told apart as two outlets' (files without either are one
    article saved twice)."""
    return bool(article.url or article.site_name)


def outlet_key(article: Article | ArticleRecord) -> str:
    """What tells two outlets apart: the URL's host (a site name may be missing on one
    copy of a page), else the site name.

    >>> outlet_key(Article("a", "T", "x", "s", "o", "https://www.cnn.com/a", site_name="CNN"))
    'cnn.com'
    """
    if article.url:
        host = (urlsplit(article.url).hostname or "").lower().removeprefix("www.")
        if host:
            return host
    return (article.site_name or "").casefold()


def other_outlet_copy(article: Article, other: Article | ArticleRecord) -> bool:
    """Whether ``article`` is the same text as ``other`` published by another outlet (kept
    as a member of the story) rather than the same article again (a duplicate)."""
    if not (names_outlet(article) and names_outlet(other)):
        return False
    return outlet_key(article) != outlet_key(other)


@dataclass(frozen=True)
class Placement:
    """Where :meth:`LibraryStories.place` put an article."""

    story_id: str
    signature: bytes
    similar_to: str | None = None  # its closest stored article in the story, if any
    similarity: float = 0.0
    replaces: tuple[str, ...] = ()  # older versions it replaces (their article ids)
    superseded_by: str | None = None  # a newer stored version: the article is not stored


class LibraryStories:
    """The stories of one library's articles, and where new articles go.

    The near-duplicate index holds only what a batch of new articles needs: before
    placing them, :meth:`prepare` reads the stored articles sharing an LSH band with one
    of them (the ``story_bands`` table) and their exact copies, the same candidates the
    LSH of the whole library would give, so the placements are the same. (Loading every
    signature cost 16.5 s per ingest into a 100,000-article library.)

    Example:
        >>> stories = LibraryStories.load(index)  # doctest: +SKIP
        >>> stories.place(article).story_id  # doctest: +SKIP
        '79cf4a583ca47346'
    """

    def __init__(
        self,
        index: Library,
        grouper: StoryGrouper,
        update_similarity: float,
        *,
        from_database: bool = True,
    ) -> None:
        self.index = index
        self.grouper = grouper
        self.update_similarity = update_similarity
        # False: the grouper holds the whole library already (load_all).
        self.from_database = from_database
        self._prepared: dict[str, LeanMinHash] = {}
        # Replaced by an article placed here: never read back as a candidate.
        self._gone: set[str] = set()

    @classmethod
    def load(
        cls,
        index: Library,
        threshold: float = DEFAULT_THRESHOLD,
        update_similarity: float = UPDATE_SIMILARITY,
    ) -> LibraryStories:
        """The library's stories; stored signatures are read per batch (:meth:`prepare`)."""
        return cls(index, StoryGrouper(threshold), update_similarity)

    @classmethod
    def load_all(
        cls,
        index: Library,
        threshold: float = DEFAULT_THRESHOLD,
        update_similarity: float = UPDATE_SIMILARITY,
    ) -> LibraryStories:
        """The library's stories from every stored signature at once (no text is read):
        what :meth:`load` reads only candidates of, kept to check it against."""
        grouper = StoryGrouper(threshold)
        for row in index.records.story_rows():
            grouper.restore(row.article_id, row.story_id, from_bytes(row.signature))
        return cls(index, grouper, update_similarity, from_database=False)

    def prepare(self, articles: Sequence[Article]) -> int:
        """Read the stored articles that ``articles`` may join or replace, before placing
        them; returns how many stored articles were read."""
        signatures = {a.article_id: signature(a.text) for a in articles}
        self._prepared.update(signatures)
        return self.read_candidates(signature_bytes(m) for m in signatures.values())

    def read_candidates(self, blobs: Iterable[bytes]) -> int:
        """Put the stored articles that share an LSH band with one of the signatures
        ``blobs`` (:func:`ingest.dedupe.signature_bytes`) in the grouper; returns how many
        were read. Exact copies are found by one key and not read again: 100,000 copies of
        one text cost their ids, not 100,000 signatures."""
        if not self.from_database:
            return 0
        blobs = list(dict.fromkeys(blobs))
        identical = self.index.records.identical_stories(blobs, exact_key)
        known = {row.article_id for row in identical}
        keys = {k for blob in blobs for k in self.grouper.stored_keys(blob)[:-1]}
        others = sorted(self.index.records.story_band_matches(keys) - known - self._gone)
        others = [a for a in others if a not in self.grouper]
        read = 0
        shared: dict[bytes, LeanMinHash] = {}
        for row in [*identical, *self.index.records.story_rows(others)]:
            if row.article_id in self.grouper or row.article_id in self._gone:
                continue  # placed here, or already read: the grouper's is as new
            minhash = shared.get(row.signature)
            if minhash is None:
                minhash = shared[row.signature] = from_bytes(row.signature)
            self.grouper.restore(row.article_id, row.story_id, minhash)
            read += 1
        return read

    def place(self, article: Article) -> Placement:
        """Put ``article`` in its story; say which stored versions it replaces, or that a
        newer stored version supersedes it. Nothing is written (see :meth:`save`)."""
        minhash = self._prepared.pop(article.article_id, None)
        if minhash is None:
            self.prepare([article])
            minhash = self._prepared.pop(article.article_id)
        replaces: list[str] = []
        for older in self._versions(article, minhash):
            if _is_newer(older, article):
                story = self._story_of(older.article_id)
                return Placement(story, signature_bytes(minhash), superseded_by=older.article_id)
            replaces.append(older.article_id)
        match = self.grouper.add_signature(
            article.article_id, minhash, exact_only=is_short(article.text)
        )
        story = match.story
        if replaces and story == article.article_id:
            story = self._story_of(replaces[0])
        for old in replaces:
            self.grouper.remove(old)
        self._gone.update(replaces)
        if replaces:
            self.grouper.restore(article.article_id, story, minhash)
        return Placement(
            story_id=story,
            signature=signature_bytes(minhash),
            similar_to=match.similar_to,
            similarity=match.similarity,
            replaces=tuple(replaces),
        )

    def _story_of(self, article_id: str) -> str:
        try:
            return self.grouper.story_of(article_id)
        except KeyError:  # not a candidate (a version found by URL only), or stored since
            if not self.from_database or article_id in self._gone:
                return article_id
            rows = self.index.records.story_rows([article_id])
            return rows[0].story_id if rows else article_id

    def _versions(self, article: Article, minhash: LeanMinHash) -> list[ArticleRecord]:
        """Stored articles that ``article`` is a version of: same canonical URL, or same
        outlet and a near-identical text."""
        found: dict[str, ArticleRecord] = {}
        if article.url:
            canonical = canonical_url(article.url)
            by_url = self.index.records.find_by_url({article.url, canonical})
            for record in by_url.values():
                if record.url and canonical_url(record.url) == canonical:
                    found[record.article_id] = record
        if names_outlet(article):
            close = [
                other
                for other, _ in self.grouper.similar(minhash, self.update_similarity)
                if other != article.article_id and other not in found
            ]
            if close:
                for record in self.index.records.get_records(close).values():
                    if (
                        record.status == "complete"
                        and names_outlet(record)
                        and outlet_key(record) == outlet_key(article)
                        and headline_overlap(record.title, article.title) >= HEADLINE_OVERLAP
                    ):
                        found[record.article_id] = record
        found.pop(article.article_id, None)
        return sorted(found.values(), key=lambda r: r.article_id)

    def save(self, placements: dict[str, Placement]) -> None:
        """Store the stories and signatures of placed articles (by article id)."""
        rows = [
            StoryRow(a, p.story_id, p.signature, tuple(self.grouper.stored_keys(p.signature)))
            for a, p in placements.items()
        ]
        if rows:
            self.index.records.set_stories(rows)

    def count(self) -> int:
        """How many stories the library's articles form."""
        if self.from_database:
            return self.index.records.stats().stories
        return len(self.grouper.stories())


def _is_newer(stored: ArticleRecord, article: Article) -> bool:
    """Whether the stored version is newer than the incoming one (both dated)."""
    return bool(stored.published and article.published and stored.published > article.published)


@dataclass(frozen=True)
class Backfill:
    """What :func:`backfill_stories` did."""

    articles: int
    stories: int
    seconds: float


def backfill_stories(index: Library, threshold: float = DEFAULT_THRESHOLD) -> Backfill | None:
    """Give every stored article without a story one (a library from an older version),
    from its stored chunk texts, oldest first; no embedding. None when none lacked one.

    Runs under the library's write lock, so two processes opening an old library at once
    do the work once.
    """
    if not index.records.unstoried_ids():
        return None
    started = time.perf_counter()
    with index.lock.exclusive("group stored articles into stories"):
        missing = index.records.unstoried_ids()  # another process may have done it meanwhile
        if not missing:
            return None
        stories = LibraryStories.load(index, threshold)
        grouper = stories.grouper
        rows: list[StoryRow] = []
        for start in range(0, len(missing), 200):
            batch = missing[start : start + 200]
            texts = index.records.article_texts(batch)
            minhashes = {a: signature(texts.get(a, "")) for a in batch}
            stories.read_candidates(signature_bytes(m) for m in minhashes.values())
            for article_id in batch:
                text = texts.get(article_id, "")
                minhash = minhashes[article_id]
                match = grouper.add_signature(article_id, minhash, exact_only=is_short(text))
                blob = signature_bytes(minhash)
                rows.append(
                    StoryRow(article_id, match.story, blob, tuple(grouper.stored_keys(blob)))
                )
        index.records.set_stories(rows)
        seconds = time.perf_counter() - started
        count = stories.count()
    logger.info(
        "grouped %d stored articles into stories in %.1f s (%d stories in the library)",
        len(rows),
        seconds,
        count,
    )
    return Backfill(len(rows), count, seconds)


def backfill_bands(index: Library, threshold: float = DEFAULT_THRESHOLD) -> int | None:
    """Give every stored signature its LSH band keys, where they are missing (a library
    from before them) or were made for another split (another ``threshold``): from the
    stored signatures alone, in batches. None when they were there; else how many.

    One read of the library state on every open; the work runs once, under the library's
    write lock.

    >>> backfill_bands(index)  # doctest: +SKIP
    100000
    """
    grouper = StoryGrouper(threshold)
    if index.records.story_band_split() == grouper.band_split:
        return None
    started = time.perf_counter()
    with index.lock.exclusive("index stored stories by their LSH bands"):
        if index.records.story_band_split() == grouper.band_split:  # another process did it
            return None
        done = index.records.rebuild_story_bands(grouper.stored_keys, grouper.band_split)
    if done:
        index.records.release_log()  # 33 rows per article went through the write-ahead log
        logger.info(
            "indexed %d stored articles by their story bands in %.1f s",
            done,
            time.perf_counter() - started,
        )
    return done
