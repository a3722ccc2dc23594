"""The library's index: a facade over its parts, and the searcher.

The parts, each behind one interface with a test suite every implementation passes
(tests/test_parts.py):

- the record store (:mod:`rag.record_store`): articles, chunks, sentence vectors, the
  embedding cache and the library state, in the SQL database named by
  ``NEWSRAG_DATABASE_URL`` (a SQLite file in the data dir by default, or Postgres);
- the vector index (:mod:`rag.vectors`): chunk vectors in Chroma, embedded or a server;
- the lexical index (:mod:`rag.lexical`): BM25 postings, in the same SQL database;
- the writer (:mod:`rag.writer`): the crash-safe write protocol across them, under the
  library lock (:mod:`rag.locking`).

The record store is the source of truth for what is searchable: an article is visible
only once its state is ``complete``, so a crash between two writes can never surface half
an article, and the next ingest repairs it. :class:`ChunkIndex` holds the parts of one
library and keeps the calls ingest and the CLI make (``index.write``, ``index.stats``,
the consistency probes ...) in one place. It does not search: the searches
(:mod:`rag.search`, fused by :class:`rag.retrieval.HybridSearcher`) receive the parts
they read.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import Connection, func, select
from sqlalchemy.exc import DatabaseError, OperationalError

from rag import layout, lexical
from rag.database import advisory_key, create_schema, open_engine, redacted
from rag.errors import StoreError, StoreUnavailableError
from rag.lexical import LexicalIndex, SqlLexicalIndex
from rag.record_store import (
    UNKNOWN_DAY,
    ArticleList,
    ArticleRecord,
    Filters,
    IndexStats,
    OutletGroup,
    RecordStore,
    SqlRecordStore,
    StoryRow,
    VectorCheck,
    pack_rows,
    stored_hash,
    unpack_rows,
)
from rag.records import (
    META_ARTICLE_ID,
    Article,
    Chunk,
    RetrievedChunk,
    StoryMember,
)
from rag.writer import LibraryWriter

if TYPE_CHECKING:
    from rag.locking import Lock
    from rag.vectors import VectorIndex

logger = logging.getLogger(__name__)

__all__ = [
    "UNKNOWN_DAY",
    "ArticleRecord",
    "ChunkIndex",
    "Filters",
    "IndexStats",
    "OutletGroup",
    "VectorCheck",
    "open_record_store",
    "pack_rows",
    "stored_hash",
    "unpack_rows",
]


def open_record_store(url: str, busy_seconds: float = 30.0) -> SqlRecordStore:
    """The record store at ``url``, its tables created or upgraded (and the BM25
    postings built, once, after an upgrade).

    >>> open_record_store("sqlite://").is_empty()
    True
    """
    engine = open_engine(url, busy_seconds)
    where = _where(url)
    try:
        create_schema(engine)
        with engine.connect() as con:
            old_layout = layout.needs_upgrade(con)
            stale = lexical.needs_build(con)
        if old_layout:
            with SqlRecordStore(engine).transaction() as tx:
                if engine.dialect.name == "postgresql":  # SQLite's BEGIN IMMEDIATE already
                    tx.execute(select(func.pg_advisory_xact_lock(advisory_key("schema"))))
                # Another process may have just upgraded it.
                done = layout.upgrade(tx) if layout.needs_upgrade(tx) else None
            if done is not None and (done.vectors or done.linked):
                layout.reclaim(engine)
        if stale:
            with SqlRecordStore(engine).transaction() as tx:
                if engine.dialect.name == "postgresql":  # SQLite's BEGIN IMMEDIATE already
                    tx.execute(select(func.pg_advisory_xact_lock(advisory_key("schema"))))
                SqlLexicalIndex().ensure_built(tx)  # another process may have just built it
    except (OperationalError, sqlite3.OperationalError) as exc:
        if "locked" not in str(exc):
            orig = getattr(exc, "orig", None) or exc
            if engine.dialect.name == "sqlite":
                raise StoreError(_unreadable(where, orig)) from exc
            reason = " ".join(str(orig).split())  # psycopg's is several lines
            msg = f"cannot reach the record database {where}: {reason}"
            raise StoreUnavailableError(msg) from exc
        msg = (
            f"the record database {where} stayed locked for {busy_seconds:g} s: "
            "another newsrag process is writing it (an ingest, or a first open "
            "upgrading its BM25 index); try again when it is done"
        )
        raise StoreError(msg) from exc
    except DatabaseError as exc:
        raise StoreError(_unreadable(where, exc.orig or exc)) from exc
    except sqlite3.DatabaseError as exc:  # from the schema script, run on the driver
        raise StoreError(_unreadable(where, exc)) from exc
    return SqlRecordStore(engine)


def _where(url: str) -> str:
    if url.startswith("sqlite:///"):
        return url[len("sqlite:///") :]
    return redacted(url)


class ChunkIndex:
    """The parts of one library (record store, vector index, lexical index, writer), and
    the record and write calls ingest and the CLI make on them.

    The index *receives* its parts; build them all with :func:`rag.components.build_index`.

    Example:
        >>> index = build_index(settings)  # doctest: +SKIP
        >>> index.stats().articles  # doctest: +SKIP
        1
    """

    busy_seconds = 30.0  # how long a write waits for another process's transaction

    def __init__(
        self,
        vectors: VectorIndex,
        records: RecordStore,
        lock: Lock,
        lexical_index: LexicalIndex | None = None,
    ) -> None:
        self.vectors = vectors
        self.records = records
        self.lexical = lexical_index or SqlLexicalIndex()
        self.lock = lock
        self.writer = LibraryWriter(records, vectors, self.lexical, lock)
        if vectors.recreated and self.complete_chunks() > 0:
            logger.warning(
                "the vector collection %s is new but the library lists %d chunks: their "
                "vectors are missing; `newsrag ingest` or `newsrag check --repair` restores "
                "them",
                vectors.name,
                self.complete_chunks(),
            )

    @property
    def db_path(self) -> Path | None:
        """The SQLite file of the records (None when they live on a server)."""
        database = self.records.engine.url.database
        if self.records.engine.dialect.name != "sqlite" or not database:
            return None
        return Path(database)

    def _tx(self) -> AbstractContextManager[Connection]:
        return self.records.transaction()

    # -- records ---------------------------------------------------------------------

    def get_records(self, article_ids: Iterable[str] | None = None) -> dict[str, ArticleRecord]:
        """Manifest rows, all or for the given ids."""
        return self.records.get_records(article_ids)

    def find_by_text_hash(self, text_hash: str) -> ArticleRecord | None:
        """A complete article with the same title and text (a duplicate), if any."""
        return self.records.find_by_text_hash(text_hash)

    def is_empty(self) -> bool:
        return self.records.is_empty()

    def stats(self) -> IndexStats:
        return self.records.stats()

    def list_articles(
        self, query: str = "", order: str = "published", offset: int = 0, limit: int = 20
    ) -> ArticleList:
        """A page of the complete articles matching ``query`` (see
        :meth:`rag.record_store.SqlRecordStore.list_articles`)."""
        return self.records.list_articles(query, order, offset, limit)

    def outlet_groups(self) -> list[OutletGroup]:
        """The complete articles counted by outlet in the database (see
        :meth:`rag.record_store.SqlRecordStore.outlet_groups`)."""
        return self.records.outlet_groups()

    def sources_in(self, groups: Sequence[OutletGroup]) -> list[str]:
        """The sources of the complete articles in ``groups``."""
        return self.records.sources_in(groups)

    def newest_published(self, on_or_before: date, on_or_after: date | None = None) -> date | None:
        """The newest publication date of an article in the closed range, if any.

        Recency is judged from it, so an archive asked about years later still has a
        "recent"; None says the library holds no article from those dates.
        """
        return self.records.newest_published(on_or_before, on_or_after)

    def complete_chunks(self) -> int:
        return self.records.complete_chunks()

    def pending_ids(self) -> list[str]:
        return self.records.pending_ids()

    def chunk_ids_of(self, article_ids: Iterable[str] | None = None) -> dict[str, str]:
        """Chunk ids of complete articles (all, or of ``article_ids``) -> their article."""
        return self.records.chunk_ids_of(article_ids)

    def chunks_by_id(self, chunk_ids: Sequence[str]) -> dict[str, RetrievedChunk]:
        """Complete chunks with their article metadata (unknown or pending ids are dropped)."""
        return self.records.chunks_by_id(chunk_ids)

    def sentence_vectors(self, chunk_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored sentence vectors of chunks, by chunk id (chunks without are left out)."""
        return self.records.sentence_vectors(chunk_ids)

    def article_chunks(self, article_id: str) -> list[tuple[int, str]]:
        return self.records.article_chunks(article_id)

    def generation(self) -> int:
        """The library's write generation: bumped by every write that changes vectors."""
        return self.records.generation()

    # -- stories (see ingest.stories and rag.stories) ---------------------------------

    def find_by_url(self, urls: Iterable[str]) -> dict[str, ArticleRecord]:
        """Complete articles stored under one of ``urls``, by URL."""
        return self.records.find_by_url(urls)

    def story_rows(self, article_ids: Sequence[str] | None = None) -> list[StoryRow]:
        """Story and MinHash signature of every complete article (or of those of
        ``article_ids``), oldest first."""
        return self.records.story_rows(article_ids)

    def set_stories(self, rows: Sequence[StoryRow]) -> None:
        self.records.set_stories(rows)

    def story_band_matches(self, keys: Iterable[int]) -> set[str]:
        """Articles stored with one of the LSH band ``keys``: the candidates to compare."""
        return self.records.story_band_matches(keys)

    def identical_stories(
        self, signatures: Iterable[bytes], key: Callable[[bytes], int]
    ) -> list[StoryRow]:
        """Complete articles stored with one of ``signatures`` exactly."""
        return self.records.identical_stories(signatures, key)

    def story_band_split(self) -> str | None:
        """The LSH split of the stored band keys (None before the first are made)."""
        return self.records.story_band_split()

    def rebuild_story_bands(self, keys: Callable[[bytes], Sequence[int]], split: str) -> int:
        """Make every stored signature's band keys again (see :mod:`ingest.stories`)."""
        return self.records.rebuild_story_bands(keys, split)

    def unstoried_ids(self) -> list[str]:
        """Complete articles without a story yet (a library from an older version)."""
        return self.records.unstoried_ids()

    def story_members(self, article_ids: Sequence[str]) -> dict[str, list[StoryMember]]:
        """Every member of each article's story, itself included, oldest first."""
        return self.records.story_members(article_ids)

    def article_texts(self, article_ids: Sequence[str]) -> dict[str, str]:
        """Stored articles' texts, put back together from their chunks."""
        return self.records.article_texts(article_ids)

    def record_vector_check(self, check: VectorCheck) -> None:
        """Remember what a check found, for ``stats`` (no scan on every refresh)."""
        self.records.record_vector_check(check)

    def last_vector_check(self) -> VectorCheck | None:
        return self.records.last_vector_check()

    def cached_vectors(
        self, keys: Sequence[str], split: str = ""
    ) -> tuple[dict[str, np.ndarray], dict[str, bytes]]:
        """Cached chunk vectors and their packed sentence vectors (see
        :meth:`rag.record_store.SqlRecordStore.cached_vectors`)."""
        return self.records.cached_vectors(keys, split)

    def cache_vectors(
        self,
        vectors: dict[str, np.ndarray],
        sentences: Mapping[str, bytes | None] | None = None,
        split: str = "",
    ) -> None:
        """Cache chunk vectors by key, with their packed sentence vectors."""
        self.records.cache_vectors(vectors, sentences, split)

    # -- vectors ---------------------------------------------------------------------

    def sync_vectors(self) -> None:
        """Reload this process's vectors if another process wrote since they were loaded."""
        self.writer.sync_vectors()

    def chroma_count(self) -> int:
        self.sync_vectors()
        return self.vectors.count()

    def chroma_ids(self, article_id: str | None = None) -> list[str]:
        """Chunk ids stored in Chroma (for one article, or all): a consistency probe."""
        self.sync_vectors()
        return self.vectors.ids({META_ARTICLE_ID: article_id} if article_id else None)

    def missing_vectors(self, article_ids: Iterable[str] | None = None) -> list[str]:
        """Chunk ids of complete articles (all, or of ``article_ids``) whose vector cannot
        be read back from the vector index."""
        chunks = self.chunk_ids_of(article_ids)
        if not chunks:
            return []
        self.sync_vectors()
        return self.vectors.missing(sorted(chunks))

    def orphan_vectors(self) -> list[str]:
        """Ids in the vector index that no complete or unfinished chunk of the library owns."""
        self.sync_vectors()
        known = set(self.chunk_ids_of())
        unfinished = set(self.pending_ids())
        return [
            i for i in self.vectors.ids() if i not in known and i.split(":")[0] not in unfinished
        ]

    # -- writes (the writer's protocol) -----------------------------------------------

    def write(
        self,
        batch: Sequence[tuple[Article, Sequence[Chunk], np.ndarray]],
        version: str = "",
        embedding_keys: Mapping[str, str] | None = None,
    ) -> None:
        """Store articles with their chunks and chunk vectors, replacing older versions.

        ``embedding_keys`` (by chunk id) name the embedding cache rows
        (:meth:`cache_vectors`) holding each chunk's sentence vectors for the extractive
        answerer (row 0 the title, then one row per sentence of the chunk text): the
        chunk refers to them rather than keeping a second copy.

        ``version`` names how the chunks were made (model, chunk sizes); it is folded into
        the manifest's content hash (see :func:`stored_hash`) so that changing it makes
        the next ingest redo every article.
        """
        self.writer.write(batch, version, embedding_keys)

    def release_log(self) -> None:
        """Give back the disk space of the record database's write-ahead log (after an
        ingest: see :func:`rag.database.truncate_log`)."""
        self.records.release_log()

    def delete(self, article_ids: Sequence[str]) -> int:
        """Remove articles and all their chunks; returns how many articles were known."""
        return self.writer.delete(article_ids)

    def reset(self) -> None:
        """Empty the collection and the manifest."""
        self.writer.reset()

    def restore_vectors(self, vectors: Mapping[str, np.ndarray]) -> None:
        """Write again the vectors of chunks the library holds (by chunk id)."""
        self.writer.restore_vectors(vectors)

    def delete_vectors(self, chunk_ids: Sequence[str]) -> None:
        """Remove vectors by id (those no stored chunk owns, found by a check)."""
        self.writer.delete_vectors(chunk_ids)

    def close(self) -> None:
        self.records.close()


def _unreadable(where: str, exc: BaseException) -> str:
    return (
        f"the record database {where} is unreadable ({exc}); move it away and "
        "re-ingest with `newsrag ingest --reset PATH`"
    )
