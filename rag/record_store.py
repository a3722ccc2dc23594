"""The record store: articles, chunks, sentence vectors, the embedding cache, library state.

Everything the library knows except the vectors (:mod:`rag.vectors`) and the BM25
postings (:mod:`rag.lexical`, in the same database). It is the source of truth for what
is searchable: an article is visible only once its status is ``complete``.

:class:`RecordStore` is the interface; :class:`SqlRecordStore` implements it on any
database of :mod:`rag.database` (SQLite file by default, Postgres for shared libraries).
Writes that must be atomic with the postings take the caller's transaction
(``con``), opened with :meth:`RecordStore.transaction`; :class:`rag.writer.LibraryWriter`
runs the protocol.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal, Protocol

import numpy as np
from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    Text,
    and_,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.sql.elements import ColumnElement

from rag.database import (
    ARTICLES,
    CHUNKS,
    EMBEDDING_CACHE,
    LIBRARY_STATE,
    STORIES,
    STORY_BANDS,
    InList,
    batches,
    dialect_insert,
    read_transaction,
    truncate_log,
    upsert,
    write_transaction,
)
from rag.layout import decode_vector, encode_vector
from rag.records import (
    UNKNOWN_DAY,
    Article,
    Chunk,
    RetrievedChunk,
    StoryMember,
    chunk_metadata,
    day_number,
    outlet_name,
    sha1_hex,
)

logger = logging.getLogger(__name__)


A = ARTICLES.c
C = CHUNKS.c
S = STORIES.c
B = STORY_BANDS.c
E = EMBEDDING_CACHE.c


@dataclass(frozen=True)
class ArticleRecord:
    """What the manifest knows about an indexed article."""

    article_id: str
    title: str
    source: str
    url: str | None
    published: date | None
    origin: str
    content_hash: str
    n_chunks: int
    status: str
    text_hash: str = ""
    author: str | None = None
    site_name: str | None = None

    @property
    def outlet(self) -> str:
        return outlet_name(self.site_name, self.url, self.source)


@dataclass(frozen=True)
class OutletGroup:
    """Complete articles that share a site name, a URL host and, without a host, a
    source: the rows one outlet count stands for (see :meth:`SqlRecordStore.outlet_groups`).

    ``host`` is as stored (case and ``www.`` kept); ``source`` is only set without a host.

    >>> OutletGroup(None, "www.CNN.com", None, 3).outlet
    'cnn.com'
    >>> OutletGroup("Reuters", "www.reuters.com", None, 2).outlet
    'Reuters'
    """

    site_name: str | None
    host: str | None
    source: str | None
    articles: int

    @property
    def outlet(self) -> str:
        """The outlet these articles show under, as :attr:`ArticleRecord.outlet` names it."""
        url = f"https://{self.host}/" if self.host else None
        return outlet_name(self.site_name, url, self.source or "")


@dataclass(frozen=True)
class StoryRow:
    """An article's story and the MinHash signature of its text (see :mod:`rag.stories`)."""

    article_id: str
    story_id: str
    signature: bytes
    # Its band keys (ingest.dedupe.StoryGrouper.stored_keys), stored with it.
    bands: tuple[int, ...] = ()


@dataclass(frozen=True)
class ListedArticle:
    """A row of the library's table: the manifest record and when it last entered or
    changed in the library (``time.time()``)."""

    record: ArticleRecord
    added: float


@dataclass(frozen=True)
class ArticleList:
    """One slice of the complete articles matching a search, and how many match in all."""

    items: tuple[ListedArticle, ...]
    total: int


# Orders of the library's table, by name: (expression, descending) keys. Undated articles
# go last both ways; the article id breaks ties, so paging never shows a row twice or
# skips one. (A title tie-break costs a lower() per row of the sort: only "title" has it.)
_UNDATED = A.published_day == UNKNOWN_DAY
ARTICLE_ORDERS: dict[str, tuple[tuple[Any, bool], ...]] = {
    "published": ((_UNDATED, False), (A.published_day, True), (A.article_id, False)),
    "published-asc": ((_UNDATED, False), (A.published_day, False), (A.article_id, False)),
    "added": ((A.updated_at, True), (A.article_id, False)),
    "title": ((func.lower(A.title), False), (A.article_id, False)),
    "chunks": ((A.n_chunks, True), (A.article_id, False)),
}


# A search's pages that start before this row are read with their count in one scan.
_ONE_PASS_OFFSET = 1000


def _order_by(order: str, reverse: bool = False) -> list[Any]:
    return [
        key.desc() if descending != reverse else key.asc()
        for key, descending in ARTICLE_ORDERS[order]
    ]


@dataclass(frozen=True)
class VectorCheck:
    """What the last check of the vectors found (by an ingest or ``newsrag check``)."""

    missing: int  # stored chunks whose vector could not be read back
    checked_chunks: int
    scope: str  # "ingest" (the chunks it stored or skipped) or "library" (all of them)
    at: float  # time.time() of the check


@dataclass(frozen=True)
class IndexStats:
    articles: int
    chunks: int
    pending: int
    newest: tuple[date, ...]
    sources: tuple[tuple[str, int], ...]
    vector_check: VectorCheck | None = None
    stories: int = 0  # stories the complete articles form (rag.stories)


@dataclass(frozen=True)
class Filters:
    """Optional retrieval filters.

    ``sources`` keeps articles whose source (outlet, URL host or path) is in the list;
    ``date_from``/``date_to`` keep articles published in that closed range (undated
    articles are then left out); ``as_of`` leaves out articles published after it.
    """

    sources: tuple[str, ...] = ()
    date_from: date | None = None
    date_to: date | None = None
    as_of: date | None = None
    exclude_ids: tuple[str, ...] = ()  # article ids left out (e.g. the no-answer eval)

    def day_bounds(self, exclude_future: bool) -> tuple[int | None, int | None]:
        low = day_number(self.date_from) if self.date_from else None
        highs = [day_number(d) for d in (self.date_to,) if d]
        if self.as_of and exclude_future:
            highs.append(day_number(self.as_of))
        return low, (min(highs) if highs else None)


@dataclass(frozen=True)
class ChunkRow:
    """A chunk as the writer stores it (``rowid`` is its BM25 id; ``embedding_key`` the
    embedding cache row holding its vector and sentence vectors, if any)."""

    rowid: int
    chunk: Chunk
    embedding_key: str | None
    lex_len: int
    lex_terms: int


class RecordStore(Protocol):
    """Articles, chunks, sentence vectors, embedding cache and library state.

    Every implementation passes tests/test_parts.py. Methods taking ``con`` run inside a
    transaction of :meth:`transaction` (shared with the lexical index's postings).
    """

    engine: Engine

    def transaction(self) -> AbstractContextManager[Connection]: ...
    def snapshot(self) -> AbstractContextManager[Connection]: ...
    def get_records(self, article_ids: Iterable[str] | None = None) -> dict[str, ArticleRecord]: ...
    def find_by_text_hash(self, text_hash: str) -> ArticleRecord | None: ...
    def is_empty(self) -> bool: ...
    def stats(self) -> IndexStats: ...
    def list_articles(
        self, query: str = "", order: str = "published", offset: int = 0, limit: int = 20
    ) -> ArticleList: ...
    def outlet_groups(self) -> list[OutletGroup]: ...
    def sources_in(self, groups: Sequence[OutletGroup]) -> list[str]: ...
    def newest_published(
        self, on_or_before: date, on_or_after: date | None = None
    ) -> date | None: ...
    def complete_chunks(self) -> int: ...
    def pending_ids(self) -> list[str]: ...
    def chunk_ids_of(self, article_ids: Iterable[str] | None = None) -> dict[str, str]: ...
    def chunks_by_id(self, chunk_ids: Sequence[str]) -> dict[str, RetrievedChunk]: ...
    def sentence_vectors(self, chunk_ids: Sequence[str]) -> dict[str, np.ndarray]: ...
    def article_chunks(self, article_id: str) -> list[tuple[int, str]]: ...
    def chunk_metadata_rows(self, chunk_ids: Sequence[str]) -> dict[str, dict[str, Any]]: ...
    def passing(
        self,
        column: Literal["chunk_id", "rowid"],
        values: Sequence[Any],
        filters: Filters,
        exclude_future: bool,
        con: Connection | None = None,
    ) -> dict[Any, str]: ...
    def generation(self) -> int: ...
    def bump_generation(self, con: Connection) -> None: ...
    def record_vector_check(self, check: VectorCheck) -> None: ...
    def last_vector_check(self) -> VectorCheck | None: ...
    def cached_vectors(
        self, keys: Sequence[str], split: str = ""
    ) -> tuple[dict[str, np.ndarray], dict[str, bytes]]: ...
    def cache_vectors(
        self,
        vectors: dict[str, np.ndarray],
        sentences: Mapping[str, bytes | None] | None = None,
        split: str = "",
    ) -> None: ...
    def embedding_keys(self, con: Connection, article_ids: Sequence[str]) -> set[str]: ...
    def release_cache(self, con: Connection, keys: Iterable[str] | None = None) -> int: ...
    def unused_cache_rows(self) -> int: ...
    def keep_cached(
        self,
        con: Connection,
        vectors: Mapping[str, np.ndarray],
        sentences: Mapping[str, bytes | None] | None = None,
        split: str = "",
    ) -> int: ...
    def mark(
        self, con: Connection, articles: Sequence[Article], status: str, version: str = ""
    ) -> None: ...
    def set_status(self, con: Connection, article_ids: Sequence[str], status: str) -> None: ...
    def delete_chunks(
        self, con: Connection, article_ids: Sequence[str]
    ) -> tuple[int, int, int]: ...
    def insert_chunks(self, con: Connection, article_id: str, rows: Sequence[ChunkRow]) -> None: ...
    def complete(
        self, con: Connection, article: Article, n_chunks: int, version: str = ""
    ) -> None: ...
    def delete_articles(self, con: Connection, article_ids: Sequence[str]) -> None: ...
    def clear(self, con: Connection) -> None: ...
    def find_by_url(self, urls: Iterable[str]) -> dict[str, ArticleRecord]: ...
    def story_rows(self, article_ids: Sequence[str] | None = None) -> list[StoryRow]: ...
    def set_stories(self, rows: Sequence[StoryRow]) -> None: ...
    def story_band_matches(self, keys: Iterable[int]) -> set[str]: ...
    def identical_stories(
        self, signatures: Iterable[bytes], key: Callable[[bytes], int]
    ) -> list[StoryRow]: ...
    def story_band_split(self) -> str | None: ...
    def rebuild_story_bands(
        self, keys: Callable[[bytes], Sequence[int]], split: str, batch: int = 2000
    ) -> int: ...
    def unstoried_ids(self) -> list[str]: ...
    def story_members(self, article_ids: Sequence[str]) -> dict[str, list[StoryMember]]: ...
    def article_texts(self, article_ids: Sequence[str]) -> dict[str, str]: ...
    def release_log(self) -> None: ...
    def close(self) -> None: ...


# A cache row no chunk names (any more): its article was deleted or changed.
_UNUSED_ROW = ~select(C.chunk_id).where(C.embedding_key == E.key).exists()


def _put_cache(
    con: Connection,
    vectors: Mapping[str, np.ndarray],
    sentences: Mapping[str, bytes | None],
    split: str,
) -> None:
    """Write cache rows: each chunk vector as float16 (:func:`rag.layout.encode_vector`),
    with its sentence vectors packed under the sentence split ``split``."""
    rows = [
        {
            "key": key,
            "vector": encode_vector(vector),
            "sentences": sentences.get(key),
            "split": split,
        }
        for key, vector in vectors.items()
    ]
    for batch in batches(rows):
        upsert(con, EMBEDDING_CACHE, batch, ["key"])


class SqlRecordStore:
    """The record store on a SQLAlchemy engine (SQLite or Postgres).

    Example:
        >>> from rag.database import create_schema, open_engine
        >>> engine = open_engine("sqlite://")
        >>> create_schema(engine)
        >>> store = SqlRecordStore(engine)
        >>> store.is_empty(), store.generation()
        (True, 0)
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- transactions ----------------------------------------------------------------

    def transaction(self) -> AbstractContextManager[Connection]:
        """A write transaction (committed when the block ends without an error)."""
        return write_transaction(self.engine)

    def snapshot(self) -> AbstractContextManager[Connection]:
        """A read transaction: every read in it sees the same writes."""
        return read_transaction(self.engine)

    def _rows(self, statement: Any, params: dict[str, Any] | None = None) -> list[Any]:
        with self.engine.connect() as con:
            return list(con.execute(statement, params).all())

    # -- manifest --------------------------------------------------------------------

    def get_records(self, article_ids: Iterable[str] | None = None) -> dict[str, ArticleRecord]:
        """Manifest rows, all or for the given ids."""
        query = select(*_RECORD_COLUMNS)
        if article_ids is None:
            rows = self._rows(query)
        else:
            rows = []
            for batch in batches(list(article_ids)):
                rows += self._rows(query.where(A.article_id.in_(batch)))
        return {r[0]: _record(r) for r in rows}

    def find_by_text_hash(self, text_hash: str) -> ArticleRecord | None:
        """A complete article with the same title and text (a duplicate), if any."""
        rows = self._rows(
            select(*_RECORD_COLUMNS)
            .where(A.text_hash == text_hash, A.status == "complete")
            .limit(1)
        )
        return _record(rows[0]) if rows else None

    def is_empty(self) -> bool:
        return not self._rows(select(A.article_id).limit(1))

    def stats(self) -> IndexStats:
        complete = A.status == "complete"
        with self.engine.connect() as con:
            articles, chunks = con.execute(
                select(func.count(), func.coalesce(func.sum(A.n_chunks), 0)).where(complete)
            ).one()
            pending = con.execute(select(func.count()).where(A.status != "complete")).scalar()
            newest = con.execute(
                select(A.published)
                .distinct()
                .where(complete, A.published.is_not(None))
                .order_by(A.published.desc())
                .limit(5)
            ).all()
            stories = con.execute(
                select(func.count(func.distinct(S.story_id)))
                .select_from(STORIES)
                .join(ARTICLES, A.article_id == S.article_id)
                .where(complete)
            ).scalar()
            sources = con.execute(
                select(A.source, func.count())
                .where(complete)
                .group_by(A.source)
                .order_by(func.count().desc(), A.source)
                .limit(20)
            ).all()
        return IndexStats(
            articles=int(articles),
            chunks=int(chunks),
            pending=int(pending or 0),
            newest=tuple(date.fromisoformat(r[0]) for r in newest),
            sources=tuple((str(s), int(n)) for s, n in sources),
            vector_check=self.last_vector_check(),
            stories=int(stories or 0),
        )

    def _outlet_keys(self) -> Any:
        """The complete articles as (site_name, host, source) rows, a subquery: ``host``
        is the URL's part between ``://`` and the next ``/`` (NULL without one) and
        ``source`` is kept only without a host, so a GROUP BY makes one row per outlet."""
        find = func.instr if self.engine.dialect.name == "sqlite" else func.strpos
        rest = func.substr(A.url, find(A.url, "://") + 3)
        host = case(
            (
                find(A.url, "://") > 0,
                case((find(rest, "/") > 0, func.substr(rest, 1, find(rest, "/") - 1)), else_=rest),
            ),
            else_=None,
        )
        return (
            select(
                A.site_name.label("site_name"),
                host.label("host"),
                case((host.is_(None), A.source), else_=None).label("source"),
                A.source.label("article_source"),
            )
            .where(A.status == "complete")
            .subquery()
        )

    def outlet_groups(self) -> list[OutletGroup]:
        """The complete articles counted by outlet, in the database (a GROUP BY over the
        site name, the URL host and, without a URL, the source): a page load of a
        100,000-article library reads one row per outlet, not the library.

        Several groups can name one outlet (``www.cnn.com`` and ``CNN.com``): merge them
        by :attr:`OutletGroup.outlet`.

        Example:
            >>> from rag.database import create_schema, open_engine
            >>> engine = open_engine("sqlite://")
            >>> create_schema(engine)
            >>> SqlRecordStore(engine).outlet_groups()
            []
        """
        keys = self._outlet_keys()
        columns = (keys.c.site_name, keys.c.host, keys.c.source)
        rows = self._rows(select(*columns, func.count()).group_by(*columns))
        return [OutletGroup(site, host, source, int(n)) for site, host, source, n in rows]

    def sources_in(self, groups: Sequence[OutletGroup]) -> list[str]:
        """The sources of the complete articles in ``groups`` (for :class:`Filters`),
        read from those groups' rows only."""
        if not groups:
            return []
        keys = self._outlet_keys()

        def same(column: Any, value: str | None) -> Any:
            return column.is_(None) if value is None else column == value

        matches = [
            and_(
                same(keys.c.site_name, g.site_name),
                same(keys.c.host, g.host),
                same(keys.c.source, g.source),
            )
            for g in groups
        ]
        rows = self._rows(select(keys.c.article_source).distinct().where(or_(*matches)))
        return sorted(str(r[0]) for r in rows)

    def list_articles(
        self, query: str = "", order: str = "published", offset: int = 0, limit: int = 20
    ) -> ArticleList:
        """``limit`` complete articles from ``offset`` in the order named ``order`` (see
        :data:`ARTICLE_ORDERS`), of those that contain every word of ``query`` in their
        title, source, URL, outlet name or byline (case-insensitive, ``%`` and ``_``
        literal); and how many match.

        The database sorts, filters and slices: a page of a 100,000-article library
        reads its 20 rows, not the library (see bench/library.py).

        Example:
            >>> from rag.database import create_schema, open_engine
            >>> engine = open_engine("sqlite://")
            >>> create_schema(engine)
            >>> SqlRecordStore(engine).list_articles("harbor")
            ArticleList(items=(), total=0)
        """
        if order not in ARTICLE_ORDERS:
            msg = f"unknown order {order!r}; choose one of {', '.join(ARTICLE_ORDERS)}"
            raise ValueError(msg)
        # SQLite's LIKE ignores ASCII case by itself: lower() on every row would double
        # the scan's cost. Postgres has ILIKE.
        postgres = self.engine.dialect.name == "postgresql"
        conditions: list[ColumnElement[bool]] = [A.status == "complete"]
        for word in query.split():
            conditions.append(
                or_(
                    *(
                        column.icontains(word, autoescape=True)
                        if postgres
                        else column.contains(word, autoescape=True)
                        for column in (A.title, A.source, A.url, A.site_name, A.author)
                    )
                )
            )
        offset, limit = max(0, offset), max(0, limit)
        columns = (*_RECORD_COLUMNS, A.updated_at)
        with self.engine.connect() as con:
            if len(conditions) > 1 and offset < _ONE_PASS_OFFSET:
                # A search's first pages: its rows and their count in one scan. (Without
                # a search, counting apart is cheaper: the database can then sort for the
                # first rows only.)
                rows = con.execute(
                    select(*columns, func.count().over())
                    .where(*conditions)
                    .order_by(*_order_by(order))
                    .offset(offset)
                    .limit(limit)
                ).all()
                if rows or offset == 0:
                    found = tuple(ListedArticle(_record(r), float(r[-2])) for r in rows)
                    return ArticleList(found, int(rows[0][-1]) if rows else 0)
            total = int(con.execute(select(func.count()).where(*conditions)).scalar() or 0)
            # A page past the middle is read from the other end: the database then sorts
            # (total - offset) rows to find it, not offset + limit.
            reverse = offset + limit > total - offset and offset < total
            start = max(0, total - offset - limit) if reverse else offset
            size = min(limit, total - offset) if reverse else limit
            page = list(
                con.execute(
                    select(*columns)
                    .where(*conditions)
                    .order_by(*_order_by(order, reverse))
                    .offset(start)
                    .limit(size)
                ).all()
            )
        items = tuple(ListedArticle(_record(r), float(r[-1])) for r in page)
        return ArticleList(items[::-1] if reverse else items, total)

    def newest_published(self, on_or_before: date, on_or_after: date | None = None) -> date | None:
        """The newest publication date of an article in the closed range, if any."""
        low = day_number(on_or_after) if on_or_after else UNKNOWN_DAY + 1
        rows = self._rows(
            select(func.max(A.published_day)).where(
                A.status == "complete", A.published_day.between(low, day_number(on_or_before))
            )
        )
        if not rows or rows[0][0] is None:
            return None
        return date(1970, 1, 1) + timedelta(days=int(rows[0][0]))

    def complete_chunks(self) -> int:
        rows = self._rows(
            select(func.coalesce(func.sum(A.n_chunks), 0)).where(A.status == "complete")
        )
        return int(rows[0][0])

    def pending_ids(self) -> list[str]:
        return [r[0] for r in self._rows(select(A.article_id).where(A.status != "complete"))]

    # -- chunks ----------------------------------------------------------------------

    def chunk_ids_of(self, article_ids: Iterable[str] | None = None) -> dict[str, str]:
        """Chunk ids of complete articles (all, or of ``article_ids``) -> their article."""
        query = (
            select(C.chunk_id, C.article_id)
            .join(ARTICLES, A.article_id == C.article_id)
            .where(A.status == "complete")
        )
        if article_ids is None:
            return {r[0]: r[1] for r in self._rows(query)}
        found: dict[str, str] = {}
        for batch in batches(list(article_ids)):
            found.update({r[0]: r[1] for r in self._rows(query.where(C.article_id.in_(batch)))})
        return found

    def chunks_by_id(self, chunk_ids: Sequence[str]) -> dict[str, RetrievedChunk]:
        """Complete chunks with their article metadata (unknown or pending ids are dropped)."""
        found: dict[str, RetrievedChunk] = {}
        for batch in batches(list(chunk_ids)):
            for r in self._rows(*_CHUNKS_BY_ID(batch)):
                found[r[0]] = RetrievedChunk(
                    chunk_id=r[0],
                    article_id=r[1],
                    text=r[2],
                    title=r[3],
                    source=r[4],
                    url=r[5],
                    published=date.fromisoformat(r[6]) if r[6] else None,
                    chunk_index=r[7],
                    start=r[8],
                    end=r[9],
                    score=0.0,
                )
        return found

    def sentence_vectors(self, chunk_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored sentence vectors of chunks, by chunk id (chunks without are left out):
        those of the chunk's embedding cache row (or, in a library upgraded from layout
        1, the chunk's own copy when no cache row matched it)."""
        found: dict[str, np.ndarray] = {}
        for batch in batches(list(chunk_ids)):
            for chunk_id, blob in self._rows(*_SENTENCES_OF(batch)):
                found[chunk_id] = unpack_rows(bytes(blob))
        return found

    def article_chunks(self, article_id: str) -> list[tuple[int, str]]:
        rows = self._rows(
            select(C.chunk_index, C.text).where(C.article_id == article_id).order_by(C.chunk_index)
        )
        return [(int(i), str(t)) for i, t in rows]

    def chunk_metadata_rows(self, chunk_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The vector index's metadata of stored chunks, rebuilt from their records (to
        write lost vectors again)."""
        found: dict[str, dict[str, Any]] = {}
        query = select(
            C.chunk_id,
            C.article_id,
            C.chunk_index,
            C.start,
            C.end,
            C.text,
            A.title,
            A.source,
            A.url,
            A.published,
            A.content_hash,
        ).join(ARTICLES, A.article_id == C.article_id)
        for batch in batches(list(chunk_ids)):
            for row in self._rows(query.where(C.chunk_id.in_(batch))):
                found[row[0]] = restored_metadata(row)
        return found

    def passing(
        self,
        column: Literal["chunk_id", "rowid"],
        values: Sequence[Any],
        filters: Filters,
        exclude_future: bool,
        con: Connection | None = None,
    ) -> dict[Any, str]:
        """Chunk ids of the chunks whose ``column`` is one of ``values``, that are complete
        and pass ``filters``, by that value."""
        conditions = _filter_conditions(filters, exclude_future)
        passing: dict[Any, str] = {}
        for batch in batches(list(values)):
            statement, params = _PASSING[column](batch)
            if conditions:
                statement = statement.where(*conditions)
            if con is not None:
                rows = con.execute(statement, params).all()
            else:
                with self.engine.connect() as own:
                    rows = own.execute(statement, params).all()
            passing.update({r[0]: r[1] for r in rows})
        return passing

    # -- library state ---------------------------------------------------------------

    def _state(self, key: str) -> str | None:
        rows = self._rows(select(LIBRARY_STATE.c.value).where(LIBRARY_STATE.c.key == key))
        return str(rows[0][0]) if rows else None

    def generation(self) -> int:
        """The library's write generation: bumped by every write that changes vectors."""
        value = self._state("generation")
        return int(value) if value else 0

    def bump_generation(self, con: Connection) -> None:
        statement = dialect_insert(con, LIBRARY_STATE).values(key="generation", value="1")
        con.execute(
            statement.on_conflict_do_update(
                index_elements=["key"],
                set_={"value": cast(cast(LIBRARY_STATE.c.value, Integer) + 1, Text)},
            )
        )

    def record_vector_check(self, check: VectorCheck) -> None:
        """Remember what a check found, for ``stats`` (no scan on every refresh)."""
        value = f"{check.missing}|{check.checked_chunks}|{check.scope}|{check.at}"
        with self.transaction() as con:
            upsert(con, LIBRARY_STATE, [{"key": "vector_check", "value": value}], ["key"])

    def last_vector_check(self) -> VectorCheck | None:
        value = self._state("vector_check")
        if not value:
            return None
        missing, checked, scope, at = value.split("|")
        return VectorCheck(int(missing), int(checked), scope, float(at))

    # -- embedding cache -------------------------------------------------------------

    def cached_vectors(
        self, keys: Sequence[str], split: str = ""
    ) -> tuple[dict[str, np.ndarray], dict[str, bytes]]:
        """Cached chunk vectors, and the sentence vectors cached with them as
        :func:`pack_rows` packed them, read in one query.

        Sentence vectors follow a sentence split: only those cached under ``split`` (the
        splitter's version) are returned, so a new split pools them again, while the
        chunk vectors (which do not depend on it) are reused.
        """
        vectors: dict[str, np.ndarray] = {}
        sentences: dict[str, bytes] = {}
        for batch in batches(list(keys)):
            for key, blob, packed, cached_split in self._rows(
                select(E.key, E.vector, E.sentences, E.split).where(E.key.in_(batch))
            ):
                vectors[key] = decode_vector(bytes(blob))
                if packed is not None and (cached_split or "") == split:
                    sentences[key] = bytes(packed)
        return vectors, sentences

    def cache_vectors(
        self,
        vectors: dict[str, np.ndarray],
        sentences: Mapping[str, bytes | None] | None = None,
        split: str = "",
    ) -> None:
        """Cache chunk vectors by key (as float16, :func:`rag.layout.encode_vector`), with
        their sentence vectors packed by :func:`pack_rows` under the sentence split
        ``split``. Chunks name their row (:attr:`ChunkRow.embedding_key`): this is the
        record database's only copy of both."""
        with self.transaction() as con:
            _put_cache(con, vectors, sentences or {}, split)

    def embedding_keys(self, con: Connection, article_ids: Sequence[str]) -> set[str]:
        """The embedding cache rows the articles' chunks name."""
        keys: set[str] = set()
        for batch in batches(list(article_ids)):
            query = select(C.embedding_key).where(
                C.article_id.in_(batch), C.embedding_key.is_not(None)
            )
            keys.update(con.execute(query).scalars())
        return keys

    def release_cache(self, con: Connection, keys: Iterable[str] | None = None) -> int:
        """Delete the cache rows among ``keys`` (every row when None) that no chunk names
        any more: a deleted or changed article's vectors leave the disk with it. Returns
        how many rows were deleted."""
        if keys is None:
            return int(con.execute(delete(EMBEDDING_CACHE).where(_UNUSED_ROW)).rowcount or 0)
        deleted = 0
        for batch in batches(sorted(set(keys))):
            result = con.execute(delete(EMBEDDING_CACHE).where(E.key.in_(batch), _UNUSED_ROW))
            deleted += int(result.rowcount or 0)
        return deleted

    def unused_cache_rows(self) -> int:
        """How many cache rows no chunk names (left by versions before 2026-12-08, which
        never deleted them, or by a reset library)."""
        count = select(func.count()).select_from(EMBEDDING_CACHE).where(_UNUSED_ROW)
        return int(self._rows(count)[0][0])

    def keep_cached(
        self,
        con: Connection,
        vectors: Mapping[str, np.ndarray],
        sentences: Mapping[str, bytes | None] | None = None,
        split: str = "",
    ) -> int:
        """Write again the cache rows among ``vectors`` (by key) that are gone: another
        process may have released a row this one read before it wrote the chunks naming
        it. Returns how many rows were written."""
        present: set[str] = set()
        for batch in batches(list(vectors)):
            present.update(con.execute(select(E.key).where(E.key.in_(batch))).scalars())
        gone = {key: vector for key, vector in vectors.items() if key not in present}
        _put_cache(con, gone, sentences or {}, split)
        return len(gone)

    # -- writes (in the caller's transaction) -----------------------------------------

    def mark(
        self, con: Connection, articles: Sequence[Article], status: str, version: str = ""
    ) -> None:
        """Insert the articles with ``status`` (no chunks yet), or set the status and
        content hash of those already listed."""
        now = _now()
        rows = [{**article_row(a, now, version), "n_chunks": 0, "status": status} for a in articles]
        upsert(con, ARTICLES, rows, ["article_id"], ["status", "content_hash", "updated_at"])

    def set_status(self, con: Connection, article_ids: Sequence[str], status: str) -> None:
        for batch in batches(list(article_ids)):
            con.execute(update(ARTICLES).where(A.article_id.in_(batch)).values(status=status))

    def delete_chunks(self, con: Connection, article_ids: Sequence[str]) -> tuple[int, int, int]:
        """Delete the articles' chunks; returns their count, words and distinct terms
        (what the lexical index must forget)."""
        totals = [0, 0, 0]
        for batch in batches(list(article_ids)):
            chunks, length, terms = con.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(C.lex_len), 0),
                    func.coalesce(func.sum(C.lex_terms), 0),
                ).where(C.article_id.in_(batch))
            ).one()
            totals = [totals[0] + int(chunks), totals[1] + int(length), totals[2] + int(terms)]
            con.execute(delete(CHUNKS).where(C.article_id.in_(batch)))
        return totals[0], totals[1], totals[2]

    def insert_chunks(self, con: Connection, article_id: str, rows: Sequence[ChunkRow]) -> None:
        if not rows:
            return
        con.execute(
            insert(CHUNKS),
            [
                {
                    "rowid": r.rowid,
                    "chunk_id": r.chunk.chunk_id,
                    "article_id": article_id,
                    "chunk_index": r.chunk.index,
                    "start": r.chunk.start,
                    "end": r.chunk.end,
                    "text": r.chunk.text,
                    "embedding_key": r.embedding_key,
                    "lex_len": r.lex_len,
                    "lex_terms": r.lex_terms,
                }
                for r in rows
            ],
        )

    def complete(self, con: Connection, article: Article, n_chunks: int, version: str = "") -> None:
        """The article's metadata as given, its chunk count, and status ``complete``."""
        values = {f"b_{k}": v for k, v in article_row(article, _now(), version).items()}
        con.execute(_COMPLETE, {**values, "b_n_chunks": n_chunks})

    def delete_articles(self, con: Connection, article_ids: Sequence[str]) -> None:
        for batch in batches(list(article_ids)):
            con.execute(delete(ARTICLES).where(A.article_id.in_(batch)))
            con.execute(delete(STORIES).where(S.article_id.in_(batch)))
            con.execute(delete(STORY_BANDS).where(B.article_id.in_(batch)))

    def clear(self, con: Connection) -> None:
        """Forget every article and chunk (the embedding cache stays: a reset library is
        usually ingested again, and :meth:`release_cache` deletes what is not)."""
        con.execute(delete(CHUNKS))
        con.execute(delete(ARTICLES))
        con.execute(delete(STORIES))
        con.execute(delete(STORY_BANDS))
        con.execute(delete(LIBRARY_STATE).where(LIBRARY_STATE.c.key == "vector_check"))

    # -- stories -------------------------------------------------------------------------

    def find_by_url(self, urls: Iterable[str]) -> dict[str, ArticleRecord]:
        """Complete articles stored under one of ``urls``, by URL (one per URL)."""
        found: dict[str, ArticleRecord] = {}
        for batch in batches(list(dict.fromkeys(urls))):
            query = select(*_RECORD_COLUMNS).where(A.url.in_(batch), A.status == "complete")
            for row in self._rows(query.order_by(A.updated_at)):
                found[row[3]] = _record(row)
        return found

    def story_rows(self, article_ids: Sequence[str] | None = None) -> list[StoryRow]:
        """Story and signature of every complete article (or of those of
        ``article_ids``), oldest first (by publication date, then id): the order
        :mod:`rag.stories` placed them in."""
        query = (
            select(S.article_id, S.story_id, S.signature)
            .join(ARTICLES, A.article_id == S.article_id)
            .where(A.status == "complete")
            .order_by(A.published_day, A.article_id)
        )
        if article_ids is None:
            return [StoryRow(r[0], r[1], bytes(r[2])) for r in self._rows(query)]
        rows: list[StoryRow] = []
        for batch in batches(list(article_ids)):
            found = self._rows(query.where(S.article_id.in_(batch)))
            rows += [StoryRow(r[0], r[1], bytes(r[2])) for r in found]
        return rows

    def set_stories(self, rows: Sequence[StoryRow]) -> None:
        """Store (or replace) the story, signature and band keys of articles."""
        values = [
            {"article_id": r.article_id, "story_id": r.story_id, "signature": r.signature}
            for r in rows
        ]
        with self.transaction() as con:
            for batch in batches(values):
                upsert(con, STORIES, batch, ["article_id"])
            _write_bands(con, rows)

    def story_band_matches(self, keys: Iterable[int]) -> set[str]:
        """Articles stored with one of the band ``keys`` (any status: the caller reads
        the complete ones' rows with :meth:`story_rows`)."""
        found: set[str] = set()
        for batch in batches(sorted(set(keys))):
            query = select(B.article_id).distinct().where(B.key.in_(batch))
            found.update(r[0] for r in self._rows(query))
        return found

    def identical_stories(
        self, signatures: Iterable[bytes], key: Callable[[bytes], int]
    ) -> list[StoryRow]:
        """Complete articles whose signature is one of ``signatures``, found by the key
        ``key`` gives a whole signature (its band row) and compared in full."""
        query = (
            select(S.article_id, S.story_id)
            .select_from(STORY_BANDS)
            .join(STORIES, S.article_id == B.article_id)
            .join(ARTICLES, A.article_id == B.article_id)
            .where(
                B.key == bindparam("key"),
                S.signature == bindparam("signature"),
                A.status == "complete",
            )
        )
        rows: list[StoryRow] = []
        for blob in dict.fromkeys(signatures):
            found = self._rows(query, {"key": key(blob), "signature": blob})
            rows += [StoryRow(r[0], r[1], blob) for r in found]
        return rows

    def story_band_split(self) -> str | None:
        """The LSH split the stored band keys were made for (None: not made yet)."""
        return self._state(_BAND_SPLIT)

    def rebuild_story_bands(
        self, keys: Callable[[bytes], Sequence[int]], split: str, batch: int = 2000
    ) -> int:
        """Make every stored signature's band keys again with ``keys`` (from the
        signatures alone, ``batch`` articles per transaction: memory stays flat and
        writers wait for one batch at most), then remember ``split``; returns how many
        articles got theirs. Run it under the library's write lock."""
        done, after = 0, ""
        while True:
            page = select(S.article_id, S.story_id, S.signature).where(S.article_id > after)
            rows = self._rows(page.order_by(S.article_id).limit(batch))
            if not rows:
                break
            stories = [StoryRow(r[0], r[1], b"", tuple(keys(bytes(r[2])))) for r in rows]
            with self.transaction() as con:
                _write_bands(con, stories)
            done += len(rows)
            after = rows[-1][0]
        with self.transaction() as con:
            upsert(con, LIBRARY_STATE, [{"key": _BAND_SPLIT, "value": split}], ["key"])
        return done

    def unstoried_ids(self) -> list[str]:
        """Complete articles without a story yet (written by an older version), oldest
        first."""
        query = (
            select(A.article_id)
            .outerjoin(STORIES, S.article_id == A.article_id)
            .where(A.status == "complete", S.article_id.is_(None))
            .order_by(A.published_day, A.article_id)
        )
        return [r[0] for r in self._rows(query)]

    def article_texts(self, article_ids: Sequence[str]) -> dict[str, str]:
        """Articles' texts put back together from their stored chunks (which overlap and
        keep their offsets into the text)."""
        texts: dict[str, str] = {}
        for batch in batches(list(article_ids)):
            query = (
                select(C.article_id, C.start, C.text)
                .where(C.article_id.in_(batch))
                .order_by(C.article_id, C.chunk_index)
            )
            for article_id, start, text in self._rows(query):
                so_far = texts.get(article_id, "")
                texts[article_id] = (
                    so_far[:start] + text if start <= len(so_far) else f"{so_far} {text}"
                )
        return texts

    def story_members(self, article_ids: Sequence[str]) -> dict[str, list[StoryMember]]:
        """Every complete member of each article's story (the article itself included,
        oldest first); an article without a story is its own only member."""
        found: dict[str, list[StoryMember]] = {}
        for batch in batches(list(dict.fromkeys(article_ids))):
            for r in self._rows(*_STORY_MEMBERS(batch)):
                found.setdefault(r[0], []).append(_member(r[1:]))
            alone = [a for a in batch if a not in found]
            if alone:
                for r in self._rows(*_ARTICLE_MEMBER(alone)):
                    found[r[0]] = [_member(r)]
        return found

    def release_log(self) -> None:
        """Give back the disk space of the database's write-ahead log (SQLite; see
        :func:`rag.database.truncate_log`), after a batch of writes."""
        truncate_log(self.engine)

    def close(self) -> None:
        self.engine.dispose()


_BAND_SPLIT = "story_bands"


def _write_bands(con: Connection, rows: Sequence[StoryRow]) -> None:
    """Replace the band keys of the articles of ``rows`` by theirs."""
    for batch in batches([r.article_id for r in rows]):
        con.execute(delete(STORY_BANDS).where(B.article_id.in_(batch)))
    # In key order: the inserts walk the key index once instead of jumping around it.
    pairs = sorted({(k, r.article_id) for r in rows for k in r.bands})
    if con.dialect.name == "sqlite":  # a third of the time went into building parameters
        driver = con.connection.driver_connection
        driver.executemany("INSERT INTO story_bands (key, article_id) VALUES (?, ?)", pairs)  # type: ignore[union-attr]
        return
    for batch in batches(pairs, 5000):
        con.execute(insert(STORY_BANDS), [{"key": k, "article_id": a} for k, a in batch])


# Searches run these on every question: built once.
def _passing_statement(key: Any) -> InList:
    return InList(
        lambda values: (
            select(key, C.chunk_id)
            .join(ARTICLES, A.article_id == C.article_id)
            .where(A.status == "complete", key.in_(values))
        )
    )


_CHUNKS_BY_ID = InList(
    lambda ids: (
        select(
            C.chunk_id,
            C.article_id,
            C.text,
            A.title,
            A.source,
            A.url,
            A.published,
            C.chunk_index,
            C.start,
            C.end,
        )
        .join(ARTICLES, A.article_id == C.article_id)
        .where(A.status == "complete", C.chunk_id.in_(ids))
    )
)
_MEMBER_COLUMNS = (A.article_id, A.title, A.source, A.url, A.published, A.site_name, A.author)
_OWN = STORIES.alias("own")
_STORY_MEMBERS = InList(
    lambda ids: (
        select(_OWN.c.article_id, *_MEMBER_COLUMNS)
        .select_from(_OWN)
        .join(STORIES, S.story_id == _OWN.c.story_id)
        .join(ARTICLES, A.article_id == S.article_id)
        .where(A.status == "complete", _OWN.c.article_id.in_(ids))
        .order_by(A.published_day, A.article_id)
    )
)
_ARTICLE_MEMBER = InList(
    lambda ids: select(*_MEMBER_COLUMNS).where(A.status == "complete", A.article_id.in_(ids))
)
_SENTENCES_OF = InList(
    lambda ids: (
        select(C.chunk_id, func.coalesce(E.sentences, C.sentences))
        .select_from(CHUNKS.outerjoin(EMBEDDING_CACHE, E.key == C.embedding_key))
        .where(C.chunk_id.in_(ids), func.coalesce(E.sentences, C.sentences).is_not(None))
    )
)
_PASSING = {"rowid": _passing_statement(C.rowid), "chunk_id": _passing_statement(C.chunk_id)}

_COMPLETE = (
    update(ARTICLES)
    .where(A.article_id == bindparam("b_article_id"))
    .values(
        status="complete",
        **{
            column: bindparam(f"b_{column}")
            for column in (
                "title",
                "source",
                "url",
                "published",
                "published_day",
                "origin",
                "content_hash",
                "text_hash",
                "updated_at",
                "n_chunks",
                "author",
                "site_name",
            )
        },
    )
)

_RECORD_COLUMNS = (
    A.article_id,
    A.title,
    A.source,
    A.url,
    A.published,
    A.origin,
    A.content_hash,
    A.n_chunks,
    A.status,
    A.text_hash,
    A.author,
    A.site_name,
)


def _now() -> float:
    return time.time()


def _record(row: Sequence[Any]) -> ArticleRecord:
    return ArticleRecord(
        article_id=row[0],
        title=row[1],
        source=row[2],
        url=row[3],
        published=date.fromisoformat(row[4]) if row[4] else None,
        origin=row[5],
        content_hash=row[6],
        n_chunks=int(row[7]),
        status=row[8],
        text_hash=row[9],
        author=row[10],
        site_name=row[11],
    )


def _member(row: Sequence[Any]) -> StoryMember:
    """A story member from ``article_id, title, source, url, published, site_name, author``."""
    return StoryMember(
        article_id=row[0],
        title=row[1],
        outlet=outlet_name(row[5], row[3], row[2]),
        url=row[3],
        published=date.fromisoformat(row[4]) if row[4] else None,
        author=row[6],
        site_name=row[5],
    )


def stored_hash(article: Article, version: str = "") -> str:
    """The manifest's content hash: the article's, and how its chunks were made."""
    return sha1_hex(f"{article.content_hash}|{version}", 40) if version else article.content_hash


def article_row(a: Article, now: float, version: str = "") -> dict[str, Any]:
    return {
        "article_id": a.article_id,
        "title": a.title,
        "source": a.source,
        "url": a.url,
        "published": a.published.isoformat() if a.published else None,
        "published_day": day_number(a.published) if a.published else UNKNOWN_DAY,
        "origin": a.origin,
        "content_hash": stored_hash(a, version),
        "text_hash": a.text_hash,
        "updated_at": now,
        "author": a.author,
        "site_name": a.site_name,
    }


def restored_metadata(row: Sequence[Any]) -> dict[str, object]:
    """Vector metadata of a chunk rebuilt from its record row: ``chunk_id, article_id,
    chunk_index, start, end, text, title, source, url, published, content_hash``."""
    published = date.fromisoformat(row[9]) if row[9] else None
    article = Article(row[1], row[6], "", row[7], "", row[8], published)
    chunk = Chunk(row[0], row[1], int(row[2]), row[5], int(row[3]), int(row[4]))
    return chunk_metadata(article, chunk, content_hash=row[10])


def _filter_conditions(filters: Filters, exclude_future: bool) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.sources:
        conditions.append(A.source.in_(list(filters.sources)))
    if filters.exclude_ids:
        conditions.append(A.article_id.not_in(list(filters.exclude_ids)))
    low, high = filters.day_bounds(exclude_future)
    if low is not None:
        conditions.append(A.published_day >= low)
    if high is not None:
        conditions.append(A.published_day <= high)
    return conditions


def pack_rows(matrix: np.ndarray) -> bytes:
    """Unit vectors as int8 with one float32 scale per row (4x smaller than float32;
    dot products change by < 0.01). NaN rows stay NaN.

    >>> m = np.array([[0.6, 0.8], [np.nan, np.nan]], dtype=np.float32)
    >>> unpack_rows(pack_rows(m)).round(2)
    array([[0.6, 0.8],
           [nan, nan]], dtype=float32)
    """
    matrix = np.asarray(matrix, dtype=np.float32)
    n = matrix.shape[0]
    with np.errstate(invalid="ignore"):
        scales = np.abs(matrix).max(axis=1) / 127.0 if matrix.size else np.zeros(n, np.float32)
        safe = np.where(np.isnan(scales) | (scales == 0), 1.0, scales)
        quantized = np.nan_to_num(np.round(matrix / safe[:, None])).astype(np.int8)
    header = np.array([n], dtype=np.uint32).tobytes()
    return header + scales.astype(np.float32).tobytes() + quantized.tobytes()


def unpack_rows(blob: bytes) -> np.ndarray:
    """The float32 matrix of :func:`pack_rows`."""
    n = int(np.frombuffer(blob[:4], dtype=np.uint32)[0])
    if n == 0:
        return np.zeros((0, 0), dtype=np.float32)
    scales = np.frombuffer(blob[4 : 4 + 4 * n], dtype=np.float32)
    quantized = np.frombuffer(blob[4 + 4 * n :], dtype=np.int8).reshape(n, -1)
    return quantized.astype(np.float32) * scales[:, None]
