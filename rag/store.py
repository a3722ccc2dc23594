"""A library's parts, and opening its record database.

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
an article, and the next ingest repairs it. :class:`Library` holds the parts of one
library, nothing more: every caller talks to the part that does what it needs, and the
searches (:mod:`rag.search`, fused by :class:`rag.retrieval.HybridSearcher`) receive the
parts they read.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from sqlalchemy import func, select
from sqlalchemy.exc import DatabaseError, OperationalError

from rag import layout, lexical
from rag.database import advisory_key, create_schema, open_engine, redacted
from rag.errors import StoreError, StoreUnavailableError
from rag.lexical import LexicalIndex, SqlLexicalIndex
from rag.record_store import (
    UNKNOWN_DAY,
    ArticleRecord,
    Filters,
    IndexStats,
    OutletGroup,
    RecordStore,
    SqlRecordStore,
    VectorCheck,
    pack_rows,
    stored_hash,
    unpack_rows,
)
from rag.writer import LibraryWriter

if TYPE_CHECKING:
    from rag.locking import Lock
    from rag.vectors import VectorIndex

logger = logging.getLogger(__name__)

__all__ = [
    "UNKNOWN_DAY",
    "ArticleRecord",
    "Filters",
    "IndexStats",
    "Library",
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


class Library:
    """The parts of one library: its record store, vector index, lexical index, lock and
    writer. Callers talk to the part that does what they need (``library.records.stats()``,
    ``library.writer.write(...)``); the searches receive the parts they read
    (:class:`rag.retrieval.HybridSearcher`).

    Build one from settings with :func:`rag.components.build_index`, or from parts with
    :meth:`of`.

    Example:
        >>> library = build_index(settings)  # doctest: +SKIP
        >>> library.records.stats().articles  # doctest: +SKIP
        1
    """

    busy_seconds: ClassVar[float] = 30.0  # how long a write waits for another's transaction

    def __init__(
        self,
        records: RecordStore,
        vectors: VectorIndex,
        lexical_index: LexicalIndex,
        lock: Lock,
        writer: LibraryWriter,
    ) -> None:
        self.records = records
        self.vectors = vectors
        self.lexical = lexical_index
        self.lock = lock
        self.writer = writer

    @classmethod
    def of(
        cls,
        vectors: VectorIndex,
        records: RecordStore,
        lock: Lock,
        lexical_index: LexicalIndex | None = None,
    ) -> Library:
        """The library of these parts, with its writer (BM25 in the record database
        unless ``lexical_index`` is given)."""
        words = lexical_index or SqlLexicalIndex()
        library = cls(records, vectors, words, lock, LibraryWriter(records, vectors, words, lock))
        chunks = records.complete_chunks() if vectors.recreated else 0
        if chunks:
            logger.warning(
                "the vector collection %s is new but the library lists %d chunks: their "
                "vectors are missing; `newsrag ingest` or `newsrag check --repair` restores "
                "them",
                vectors.name,
                chunks,
            )
        return library

    @property
    def db_path(self) -> Path | None:
        """The SQLite file of the records (None when they live on a server)."""
        database = self.records.engine.url.database
        if self.records.engine.dialect.name != "sqlite" or not database:
            return None
        return Path(database)

    def close(self) -> None:
        self.records.close()


def _unreadable(where: str, exc: BaseException) -> str:
    return (
        f"the record database {where} is unreadable ({exc}); move it away and "
        "re-ingest with `newsrag ingest --reset PATH`"
    )
