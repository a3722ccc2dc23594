"""The index: chunk vectors in Chroma, the article manifest and a BM25 index in SQLite.

Why two stores: Chroma holds the vectors (embedded or on a server); a small SQLite file
per collection holds what Chroma cannot do well: the record manager (which article is in
the index with which content hash) and a persistent BM25 index (:mod:`rag.lexical`) over
the very same chunks. SQLite is the source of truth for what is searchable:
an article is visible only once its state is ``complete``, so a crash between the two
writes can never surface half an article, and the next ingest repairs it.

Write protocol for a batch of articles (see :meth:`ChunkIndex.write`), all of it under
the library lock (:class:`rag.locking.LibraryLock`), so one process writes at a time:

0. if another process wrote since this one last loaded the vectors, reload them;
1. mark the articles ``pending`` in SQLite (commit);
2. upsert their chunks into Chroma under deterministic ids ``<article_id>:<n>``, delete
   any older chunk ids of those articles, and read every vector back;
3. replace their chunks and BM25 postings, mark them ``complete`` and bump the library's
   write generation (one transaction).

Re-running after a crash at any point repeats idempotent steps: no duplicates, no orphans.
Readers compare the write generation with the one their vectors were loaded at, and
reload when another process moved it (see :mod:`rag.vectors` for why).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from rag import lexical
from rag.errors import StoreError
from rag.locking import LibraryLock
from rag.records import (
    META_ARTICLE_ID,
    META_CHUNK_HASH,
    META_CHUNK_INDEX,
    META_CONTENT_HASH,
    META_END,
    META_PUBLISHED,
    META_PUBLISHED_DAY,
    META_SOURCE,
    META_START,
    META_TITLE,
    META_URL,
    Article,
    Chunk,
    RetrievedChunk,
    day_number,
    sha1_hex,
)

if TYPE_CHECKING:
    from rag.vectors import ChromaVectorIndex

logger = logging.getLogger(__name__)

UNKNOWN_DAY = -1  # published_day of undated articles: passes "before as-of" filters
# Searches ask for WIDEN x k results without filters, then drop those the filters refuse.
WIDEN = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS articles (
    article_id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    source TEXT NOT NULL,
    url TEXT,
    published TEXT,
    published_day INTEGER NOT NULL,
    origin TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    text_hash TEXT NOT NULL,
    n_chunks INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS articles_origin ON articles(origin);
CREATE INDEX IF NOT EXISTS articles_text_hash ON articles(text_hash);
CREATE INDEX IF NOT EXISTS articles_published ON articles(published_day);
CREATE TABLE IF NOT EXISTS chunks (
    rowid INTEGER PRIMARY KEY,
    chunk_id TEXT NOT NULL UNIQUE,
    article_id TEXT NOT NULL,
    chunk_index INTEGER NOT NULL,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    text TEXT NOT NULL,
    sentences BLOB,
    lex_len INTEGER NOT NULL DEFAULT 0,
    lex_terms INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS chunks_article ON chunks(article_id);
CREATE TABLE IF NOT EXISTS embedding_cache (
    key TEXT PRIMARY KEY,
    vector BLOB NOT NULL,
    sentences BLOB,
    split TEXT
);
CREATE TABLE IF NOT EXISTS library_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


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


class ChunkIndex:
    """Chunks of articles, searchable by vector (Chroma) and by BM25 (:mod:`rag.lexical`).

    The index *receives* its vector index and its library lock; build all three with
    :func:`rag.components.build_index`.

    Example:
        >>> index = build_index(settings)  # doctest: +SKIP
        >>> index.stats().articles  # doctest: +SKIP
        1
    """

    busy_seconds = 30.0  # how long a write waits for another process's transaction

    def __init__(
        self, vectors: ChromaVectorIndex, db_path: Path, lock: LibraryLock | None = None
    ) -> None:
        self.vectors = vectors
        self.db_path = db_path
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = lock or LibraryLock(db_path.with_suffix(".lock"))
        self._local = threading.local()
        self._write_lock = threading.RLock()
        try:
            with self._write_lock:
                con = self._con()
                con.executescript(_SCHEMA + lexical.SCHEMA)
                _add_missing_columns(con)
            if lexical.needs_build(con):
                with self._tx() as tx:
                    if lexical.needs_build(tx):  # another process may have just built it
                        lexical.build(tx)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise StoreError(_unreadable(db_path, exc)) from exc
            msg = (
                f"the record database {db_path} stayed locked for {self.busy_seconds:g} s: "
                "another newsrag process is writing it (an ingest, or a first open "
                "upgrading its BM25 index); try again when it is done"
            )
            raise StoreError(msg) from exc
        except sqlite3.DatabaseError as exc:
            raise StoreError(_unreadable(db_path, exc)) from exc
        # The vectors were just loaded from their store: they reflect this generation.
        self._seen_generation = self.generation()
        if vectors.recreated and self.complete_chunks() > 0:
            logger.warning(
                "the vector collection %s is new but the library lists %d chunks: their "
                "vectors are missing; `newsrag ingest` or `newsrag check --repair` restores "
                "them",
                vectors.name,
                self.complete_chunks(),
            )

    # -- connections -----------------------------------------------------------------

    def _con(self) -> sqlite3.Connection:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.db_path, timeout=self.busy_seconds, isolation_level=None)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            self._local.con = con
        return con

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        con = self._con()
        with self._write_lock:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    # -- manifest --------------------------------------------------------------------

    def get_records(self, article_ids: Iterable[str] | None = None) -> dict[str, ArticleRecord]:
        """Manifest rows, all or for the given ids."""
        con = self._con()
        sql = (
            "SELECT article_id, title, source, url, published, origin, content_hash, "
            "n_chunks, status FROM articles"
        )
        if article_ids is None:
            rows = con.execute(sql).fetchall()
        else:
            ids = list(article_ids)
            rows = []
            for batch in _batches(ids, 500):
                marks = ",".join("?" * len(batch))
                rows += con.execute(f"{sql} WHERE article_id IN ({marks})", batch).fetchall()
        return {r[0]: _record(r) for r in rows}

    def find_by_text_hash(self, text_hash: str) -> ArticleRecord | None:
        """A complete article with the same title and text (a duplicate), if any."""
        row = (
            self._con()
            .execute(
                "SELECT article_id, title, source, url, published, origin, content_hash, "
                "n_chunks, status FROM articles WHERE text_hash = ? AND status='complete'",
                (text_hash,),
            )
            .fetchone()
        )
        return _record(row) if row else None

    def is_empty(self) -> bool:
        return self._con().execute("SELECT 1 FROM articles LIMIT 1").fetchone() is None

    def stats(self) -> IndexStats:
        con = self._con()
        articles, chunks = con.execute(
            "SELECT count(*), coalesce(sum(n_chunks), 0) FROM articles WHERE status='complete'"
        ).fetchone()
        pending = con.execute("SELECT count(*) FROM articles WHERE status!='complete'").fetchone()
        newest = con.execute(
            "SELECT DISTINCT published FROM articles WHERE status='complete' AND published "
            "IS NOT NULL ORDER BY published DESC LIMIT 5"
        ).fetchall()
        sources = con.execute(
            "SELECT source, count(*) FROM articles WHERE status='complete' GROUP BY source "
            "ORDER BY count(*) DESC, source LIMIT 20"
        ).fetchall()
        return IndexStats(
            articles=int(articles),
            chunks=int(chunks),
            pending=int(pending[0]),
            newest=tuple(date.fromisoformat(r[0]) for r in newest),
            sources=tuple((str(s), int(n)) for s, n in sources),
            vector_check=self.last_vector_check(),
        )

    def newest_published(self, on_or_before: date, on_or_after: date | None = None) -> date | None:
        """The newest publication date of an article in the closed range, if any.

        Recency is judged from it, so an archive asked about years later still has a
        "recent"; None says the library holds no article from those dates.
        """
        low = day_number(on_or_after) if on_or_after else UNKNOWN_DAY + 1
        row = (
            self._con()
            .execute(
                "SELECT max(published_day) FROM articles WHERE status='complete' "
                "AND published_day BETWEEN ? AND ?",
                (low, day_number(on_or_before)),
            )
            .fetchone()
        )
        if row is None or row[0] is None:
            return None
        return date(1970, 1, 1) + timedelta(days=int(row[0]))

    def chroma_count(self) -> int:
        self.sync_vectors()
        return self.vectors.count()

    def chroma_ids(self, article_id: str | None = None) -> list[str]:
        """Chunk ids stored in Chroma (for one article, or all): a consistency probe."""
        self.sync_vectors()
        return self.vectors.ids({META_ARTICLE_ID: article_id} if article_id else None)

    # -- generations: when another process wrote -----------------------------------

    def generation(self) -> int:
        """The library's write generation: bumped by every write that changes vectors."""
        row = (
            self._con().execute("SELECT value FROM library_state WHERE key='generation'").fetchone()
        )
        return int(row[0]) if row else 0

    def sync_vectors(self) -> None:
        """Reload this process's vectors if another process wrote since they were loaded.

        Called before every read of the vectors; costs one small query when nothing moved.
        """
        current = self.generation()
        if current == self._seen_generation:
            return
        with self.lock.shared("reload the vectors another process wrote"):
            current = self.generation()
            self.vectors.refresh()
            self._seen_generation = current
        logger.info("reloaded vectors written by another process (generation %d)", current)

    def _sync_for_write(self) -> None:
        """Under the exclusive lock: make sure the vectors about to be written over are
        the ones on disk, not a stale copy of this process's."""
        current = self.generation()
        if current != self._seen_generation:
            self.vectors.refresh()
            self._seen_generation = current

    def _bump_generation(self, con: sqlite3.Connection) -> None:
        con.execute(
            "INSERT INTO library_state(key, value) VALUES ('generation', '1') "
            "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
        )

    def complete_chunks(self) -> int:
        row = (
            self._con()
            .execute("SELECT coalesce(sum(n_chunks), 0) FROM articles WHERE status='complete'")
            .fetchone()
        )
        return int(row[0])

    # -- vector checks ---------------------------------------------------------------

    def chunk_ids_of(self, article_ids: Iterable[str] | None = None) -> dict[str, str]:
        """Chunk ids of complete articles (all, or of ``article_ids``) -> their article."""
        con = self._con()
        sql = (
            "SELECT c.chunk_id, c.article_id FROM chunks c JOIN articles a "
            "ON a.article_id = c.article_id WHERE a.status='complete'"
        )
        if article_ids is None:
            return dict(con.execute(sql).fetchall())
        found: dict[str, str] = {}
        for batch in _batches(list(article_ids), 500):
            marks = ",".join("?" * len(batch))
            found.update(con.execute(f"{sql} AND c.article_id IN ({marks})", batch).fetchall())
        return found

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

    def restore_vectors(self, vectors: Mapping[str, np.ndarray]) -> None:
        """Write again the vectors of chunks the library holds (by chunk id), with their
        metadata read from the records: repairs vectors lost or never stored."""
        if not vectors:
            return
        ids = list(vectors)
        rows: dict[str, Sequence[Any]] = {}
        con = self._con()
        for batch in _batches(ids, 500):
            marks = ",".join("?" * len(batch))
            for row in con.execute(
                'SELECT c.chunk_id, c.article_id, c.chunk_index, c.start, c."end", c.text, '
                "a.title, a.source, a.url, a.published, a.content_hash FROM chunks c JOIN "
                f"articles a ON a.article_id = c.article_id WHERE c.chunk_id IN ({marks})",
                batch,
            ):
                rows[row[0]] = row
        known = [i for i in ids if i in rows]
        metadatas = [_restored_metadata(rows[i]) for i in known]
        with self.lock.exclusive("restore vectors"):
            self._sync_for_write()
            self.vectors.upsert(known, np.stack([vectors[i] for i in known]), metadatas)
            still = self.vectors.missing(known)
            with self._tx() as tx:
                self._bump_generation(tx)
            self._seen_generation = self.generation()
        if still:
            msg = f"Chroma did not keep the vectors of {len(still)} restored chunks"
            raise StoreError(msg)

    def delete_vectors(self, chunk_ids: Sequence[str]) -> None:
        """Remove vectors by id (those no stored chunk owns, found by a check)."""
        with self.lock.exclusive("delete orphan vectors"):
            self._sync_for_write()
            self.vectors.delete(chunk_ids)
            with self._tx() as tx:
                self._bump_generation(tx)
            self._seen_generation = self.generation()

    def record_vector_check(self, check: VectorCheck) -> None:
        """Remember what a check found, for ``stats`` (no scan on every refresh)."""
        value = f"{check.missing}|{check.checked_chunks}|{check.scope}|{check.at}"
        with self._tx() as con:
            con.execute(
                "INSERT INTO library_state(key, value) VALUES ('vector_check', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (value,),
            )

    def last_vector_check(self) -> VectorCheck | None:
        row = (
            self._con()
            .execute("SELECT value FROM library_state WHERE key='vector_check'")
            .fetchone()
        )
        if not row:
            return None
        missing, checked, scope, at = row[0].split("|")
        return VectorCheck(int(missing), int(checked), scope, float(at))

    # -- embedding cache -------------------------------------------------------------

    def cached_vectors(
        self, keys: Sequence[str], split: str = ""
    ) -> tuple[dict[str, np.ndarray], dict[str, bytes]]:
        """Cached chunk vectors, and the sentence vectors cached with them as
        :func:`pack_rows` packed them, read in one query. They stay packed: ingest only
        stores them again beside the chunk.

        Sentence vectors follow a sentence split: only those cached under ``split`` (the
        splitter's version) are returned, so a new split pools them again, while the
        chunk vectors (which do not depend on it) are reused.
        """
        con = self._con()
        vectors: dict[str, np.ndarray] = {}
        sentences: dict[str, bytes] = {}
        for batch in _batches(list(keys), 500):
            marks = ",".join("?" * len(batch))
            for key, blob, packed, cached_split in con.execute(
                f"SELECT key, vector, sentences, split FROM embedding_cache WHERE key IN ({marks})",
                batch,
            ):
                vectors[key] = np.frombuffer(blob, dtype=np.float32)
                if packed is not None and (cached_split or "") == split:
                    sentences[key] = packed
        return vectors, sentences

    def cache_vectors(
        self,
        vectors: dict[str, np.ndarray],
        sentences: Mapping[str, bytes | None] | None = None,
        split: str = "",
    ) -> None:
        """Cache chunk vectors by key, with their sentence vectors packed by
        :func:`pack_rows` under the sentence split ``split``."""
        sentences = sentences or {}
        rows = [
            (key, np.asarray(vector, dtype=np.float32).tobytes(), sentences.get(key), split)
            for key, vector in vectors.items()
        ]
        with self._tx() as con:
            con.executemany(
                "INSERT OR REPLACE INTO embedding_cache(key, vector, sentences, split) "
                "VALUES (?,?,?,?)",
                rows,
            )

    # -- writes ----------------------------------------------------------------------

    def write(
        self,
        batch: Sequence[tuple[Article, Sequence[Chunk], np.ndarray]],
        version: str = "",
        sentence_vectors: Mapping[str, bytes | None] | None = None,
    ) -> None:
        """Store articles with their chunks and chunk vectors, replacing older versions.

        ``sentence_vectors`` (by chunk id, packed by :func:`pack_rows`) are kept beside
        each chunk for the extractive answerer: row 0 the title, then one row per
        sentence of the chunk text.

        ``version`` names how the chunks were made (model, chunk sizes); it is folded into
        the manifest's content hash (see :func:`stored_hash`) so that changing it makes
        the next ingest redo every article.
        """
        if not batch:
            return
        with self.lock.exclusive("store articles"):
            self._write(batch, version, sentence_vectors)

    def _write(
        self,
        batch: Sequence[tuple[Article, Sequence[Chunk], np.ndarray]],
        version: str,
        sentence_vectors: Mapping[str, bytes | None] | None,
    ) -> None:
        self._sync_for_write()
        now = time.time()
        ids = [a.article_id for a, _, _ in batch]
        previous = self.get_records(ids)
        with self._tx() as con:
            con.executemany(
                "INSERT INTO articles(article_id, title, source, url, published, "
                "published_day, origin, content_hash, text_hash, n_chunks, status, "
                "updated_at) VALUES (?,?,?,?,?,?,?,?,?,0,'pending',?) "
                "ON CONFLICT(article_id) DO UPDATE "
                "SET status='pending', content_hash=excluded.content_hash, "
                "updated_at=excluded.updated_at",
                [_article_row(a, now, version) for a, _, _ in batch],
            )
        all_ids: list[str] = []
        vectors: list[np.ndarray] = []
        metadatas: list[dict[str, Any]] = []
        for article, chunks, vecs in batch:
            for chunk, vec in zip(chunks, vecs, strict=True):
                all_ids.append(chunk.chunk_id)
                vectors.append(vec)
                metadatas.append(_chunk_metadata(article, chunk))
        # The chunk text lives in the record database only: Chroma keeps vectors and the
        # metadata its filters need (a second copy of the text doubled the footprint).
        if all_ids:
            self.vectors.upsert(all_ids, np.stack(vectors), metadatas)
        keep = set(all_ids)
        for article_id in ids:
            if article_id in previous:  # older or interrupted version may exist
                stored = self.vectors.ids({META_ARTICLE_ID: article_id})
                stale = [c for c in stored if c not in keep]
                if stale:
                    self.vectors.delete(stale)
        # Read every vector back before the articles become visible: a lost one stays
        # "pending", and the next ingest writes it again.
        lost = self.vectors.missing(all_ids)
        if lost:
            where = {i: n for n, i in enumerate(all_ids)}
            self.vectors.upsert(
                lost,
                np.stack([vectors[where[i]] for i in lost]),
                [metadatas[where[i]] for i in lost],
            )
            lost = self.vectors.missing(lost)
            if lost:
                msg = (
                    f"the vector index did not keep {len(lost)} of {len(all_ids)} chunks "
                    f"(e.g. {lost[0]}); the articles stay unfinished and the next ingest "
                    "retries them"
                )
                raise StoreError(msg)
        analyzed = [
            [lexical.analyze(article.title, chunk.text) for chunk in chunks]
            for article, chunks, _ in batch
        ]
        with self._tx() as con:
            self._delete_rows(con, ids)
            doc = lexical.next_doc(con)
            postings: list[tuple[int, lexical.Analyzed]] = []
            for (article, chunks, _), terms in zip(batch, analyzed, strict=True):
                for chunk, chunk_terms in zip(chunks, terms, strict=True):
                    con.execute(
                        "INSERT INTO chunks(rowid, chunk_id, article_id, chunk_index, start, "
                        '"end", text, sentences, lex_len, lex_terms) VALUES (?,?,?,?,?,?,?,?,?,?)',
                        (
                            doc,
                            chunk.chunk_id,
                            article.article_id,
                            chunk.index,
                            chunk.start,
                            chunk.end,
                            chunk.text,
                            (sentence_vectors or {}).get(chunk.chunk_id),
                            chunk_terms.length,
                            len(chunk_terms.freqs),
                        ),
                    )
                    postings.append((doc, chunk_terms))
                    doc += 1
                con.execute(
                    "UPDATE articles SET title=?, source=?, url=?, published=?, "
                    "published_day=?, origin=?, content_hash=?, text_hash=?, n_chunks=?, "
                    "status='complete', updated_at=? WHERE article_id=?",
                    (
                        *_article_row(article, now, version)[1:9],
                        len(chunks),
                        now,
                        article.article_id,
                    ),
                )
            lexical.add(con, postings)
            self._bump_generation(con)
        self._seen_generation = self.generation()

    def delete(self, article_ids: Sequence[str]) -> int:
        """Remove articles and all their chunks; returns how many articles were known."""
        ids = list(article_ids)
        if not ids:
            return 0
        with self.lock.exclusive("delete articles"):
            self._sync_for_write()
            known = self.get_records(ids)
            with self._tx() as con:
                con.executemany(
                    "UPDATE articles SET status='deleting' WHERE article_id=?",
                    [(i,) for i in ids],
                )
            for article_id in ids:
                self.vectors.delete_where({META_ARTICLE_ID: article_id})
            with self._tx() as con:
                self._delete_rows(con, ids)
                con.executemany("DELETE FROM articles WHERE article_id=?", [(i,) for i in ids])
                self._bump_generation(con)
            self._seen_generation = self.generation()
        return len(known)

    def _delete_rows(self, con: sqlite3.Connection, article_ids: Sequence[str]) -> None:
        for batch in _batches(list(article_ids), 500):
            marks = ",".join("?" * len(batch))
            chunks, length, terms = con.execute(
                "SELECT count(*), coalesce(sum(lex_len), 0), coalesce(sum(lex_terms), 0) "
                f"FROM chunks WHERE article_id IN ({marks})",
                batch,
            ).fetchone()
            lexical.forget(con, int(chunks), int(length), int(terms))
            con.execute(f"DELETE FROM chunks WHERE article_id IN ({marks})", batch)

    def reset(self) -> None:
        """Empty the collection and the manifest."""
        with self.lock.exclusive("reset the library"):
            self._sync_for_write()
            self.vectors.reset()
            with self._tx() as con:
                lexical.clear(con)
                for table in ("chunks", "articles"):
                    con.execute(f"DELETE FROM {table}")
                con.execute("DELETE FROM library_state WHERE key='vector_check'")
                self._bump_generation(con)
            self._seen_generation = self.generation()

    def pending_ids(self) -> list[str]:
        rows = self._con().execute("SELECT article_id FROM articles WHERE status!='complete'")
        return [r[0] for r in rows]

    # -- search ----------------------------------------------------------------------

    def dense_search(
        self, vector: Sequence[float], k: int, filters: Filters, exclude_future: bool = True
    ) -> list[tuple[str, float]]:
        """Chunk ids and cosine similarities of the ``k`` nearest chunks passing ``filters``."""
        where = _chroma_where(filters, exclude_future)
        if where is None:
            return self._nearest(vector, k, None)
        # Chroma applies a metadata filter by scanning the collection: the cost grows with
        # the index. An unfiltered HNSW query over more neighbours, filtered here against
        # the manifest, stays flat; the filtered query is the fallback when too few pass.
        kept: list[tuple[str, float]] = []
        for widen in (WIDEN, 4 * WIDEN):
            wide = self._nearest(vector, k * widen, None)
            allowed = self._passing("chunk_id", [i for i, _ in wide], filters, exclude_future)
            kept = [(i, s) for i, s in wide if i in allowed]
            if len(kept) >= k:
                return kept[:k]
        if len(kept) >= k // 2:
            return kept
        return self._nearest(vector, k, where)

    def _nearest(
        self, vector: Sequence[float], k: int, where: dict[str, Any] | None
    ) -> list[tuple[str, float]]:
        self.sync_vectors()
        return self.vectors.query(vector, k, where)

    def _passing(
        self,
        column: Literal["chunk_id", "rowid"],
        values: Sequence[Any],
        filters: Filters,
        exclude_future: bool,
    ) -> dict[Any, str]:
        """Chunk ids of the chunks whose ``column`` (``chunk_id`` or ``rowid``) is one of
        ``values``, that are complete and pass ``filters``, by that value."""
        clauses, params = _sql_filters(filters, exclude_future)
        passing: dict[Any, str] = {}
        for batch in _batches(list(values), 500):
            marks = ",".join("?" * len(batch))
            rows = self._con().execute(
                f"SELECT c.{column}, c.chunk_id FROM chunks c JOIN articles a "
                "ON a.article_id = c.article_id "
                f"WHERE a.status = 'complete' AND c.{column} IN ({marks}) {clauses}",
                [*batch, *params],
            )
            passing.update(rows.fetchall())
        return passing

    def lexical_search(
        self, text: str, k: int, filters: Filters, exclude_future: bool = True
    ) -> list[tuple[str, float]]:
        """Chunk ids and BM25 scores (higher is better) of the best ``k`` chunks."""
        terms = lexical.query_terms(text)
        if not terms:
            return []
        con = self._con()
        con.execute("BEGIN")  # one snapshot: postings and statistics of the same writes
        try:
            ids, scores = lexical.score(con, terms, at_least=k * WIDEN)
            # Filters are checked on the best ones only (joining every match to its article
            # would cost more than scoring); widen when too few of them pass.
            found: list[tuple[str, float]] = []
            wanted = k * WIDEN
            while True:
                ranked = lexical.top(ids, scores, wanted)
                names = self._passing("rowid", [d for d, _ in ranked], filters, exclude_future)
                found = [(names[d], score) for d, score in ranked if d in names]
                if len(found) >= k or wanted >= len(ids):
                    break
                wanted *= 10
        finally:
            con.execute("COMMIT")
        return found[:k]

    def chunks_by_id(self, chunk_ids: Sequence[str]) -> dict[str, RetrievedChunk]:
        """Complete chunks with their article metadata (unknown or pending ids are dropped)."""
        found: dict[str, RetrievedChunk] = {}
        con = self._con()
        for batch in _batches(list(chunk_ids), 500):
            marks = ",".join("?" * len(batch))
            rows = con.execute(
                "SELECT c.chunk_id, c.article_id, c.text, a.title, a.source, a.url, "
                'a.published, c.chunk_index, c.start, c."end" FROM chunks c JOIN articles a '
                f"ON a.article_id = c.article_id WHERE a.status='complete' AND c.chunk_id "
                f"IN ({marks})",
                batch,
            ).fetchall()
            for r in rows:
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
        """Stored sentence vectors of complete chunks, by chunk id (chunks without are left out)."""
        found: dict[str, np.ndarray] = {}
        con = self._con()
        for batch in _batches(list(chunk_ids), 500):
            marks = ",".join("?" * len(batch))
            rows = con.execute(
                f"SELECT chunk_id, sentences FROM chunks WHERE chunk_id IN ({marks}) "
                "AND sentences IS NOT NULL",
                batch,
            )
            for chunk_id, blob in rows:
                found[chunk_id] = unpack_rows(blob)
        return found

    def article_chunks(self, article_id: str) -> list[tuple[int, str]]:
        rows = self._con().execute(
            "SELECT chunk_index, text FROM chunks WHERE article_id=? ORDER BY chunk_index",
            (article_id,),
        )
        return [(int(i), str(t)) for i, t in rows]

    def document_frequencies(self, words: Sequence[str]) -> tuple[int, dict[str, int]]:
        """Number of chunks, and how many chunks contain each word (for IDF weights)."""
        return lexical.frequencies(self._con(), words)

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None


def _unreadable(db_path: Path, exc: Exception) -> str:
    return (
        f"the record database {db_path} is unreadable ({exc}); move it away and "
        "re-ingest with `newsrag ingest --reset PATH`"
    )


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
    )


def stored_hash(article: Article, version: str = "") -> str:
    """The manifest's content hash: the article's, and how its chunks were made."""
    return sha1_hex(f"{article.content_hash}|{version}", 40) if version else article.content_hash


def _article_row(a: Article, now: float, version: str = "") -> tuple[Any, ...]:
    return (
        a.article_id,
        a.title,
        a.source,
        a.url,
        a.published.isoformat() if a.published else None,
        day_number(a.published) if a.published else UNKNOWN_DAY,
        a.origin,
        stored_hash(a, version),
        a.text_hash,
        now,
    )


def _chunk_metadata(article: Article, chunk: Chunk) -> dict[str, Any]:
    meta: dict[str, Any] = {
        META_ARTICLE_ID: article.article_id,
        META_TITLE: article.title,
        META_SOURCE: article.source,
        META_PUBLISHED_DAY: day_number(article.published) if article.published else UNKNOWN_DAY,
        META_CHUNK_INDEX: chunk.index,
        META_START: chunk.start,
        META_END: chunk.end,
        META_CONTENT_HASH: article.content_hash,
        META_CHUNK_HASH: chunk.chunk_hash,
    }
    if article.url:
        meta[META_URL] = article.url
    if article.published:
        meta[META_PUBLISHED] = article.published.isoformat()
    return meta


def _restored_metadata(row: Sequence[Any]) -> dict[str, Any]:
    """Chroma metadata of a chunk rebuilt from its record row (see ``restore_vectors``):
    ``chunk_id, article_id, chunk_index, start, end, text, title, source, url,
    published, content_hash``."""
    published = date.fromisoformat(row[9]) if row[9] else None
    meta: dict[str, Any] = {
        META_ARTICLE_ID: row[1],
        META_TITLE: row[6],
        META_SOURCE: row[7],
        META_PUBLISHED_DAY: day_number(published) if published else UNKNOWN_DAY,
        META_CHUNK_INDEX: int(row[2]),
        META_START: int(row[3]),
        META_END: int(row[4]),
        META_CONTENT_HASH: row[10],
        META_CHUNK_HASH: sha1_hex(row[5], 40),
    }
    if row[8]:
        meta[META_URL] = row[8]
    if published:
        meta[META_PUBLISHED] = published.isoformat()
    return meta


def _chroma_where(filters: Filters, exclude_future: bool) -> dict[str, Any] | None:
    parts: list[dict[str, Any]] = []
    if filters.sources:
        parts.append({META_SOURCE: {"$in": list(filters.sources)}})
    if filters.exclude_ids:
        parts.append({META_ARTICLE_ID: {"$nin": list(filters.exclude_ids)}})
    low, high = filters.day_bounds(exclude_future)
    if low is not None:
        parts.append({META_PUBLISHED_DAY: {"$gte": low}})
    if high is not None:
        parts.append({META_PUBLISHED_DAY: {"$lte": high}})
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {"$and": parts}


def _sql_filters(filters: Filters, exclude_future: bool) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if filters.sources:
        clauses.append(f"a.source IN ({','.join('?' * len(filters.sources))})")
        params += list(filters.sources)
    if filters.exclude_ids:
        clauses.append(f"a.article_id NOT IN ({','.join('?' * len(filters.exclude_ids))})")
        params += list(filters.exclude_ids)
    low, high = filters.day_bounds(exclude_future)
    if low is not None:
        clauses.append("a.published_day >= ?")
        params.append(low)
    if high is not None:
        clauses.append("a.published_day <= ?")
        params.append(high)
    return "".join(f" AND {c}" for c in clauses), params


def _add_missing_columns(con: sqlite3.Connection) -> None:
    """Bring a record database written by an older version up to the current columns."""
    wanted = {
        "chunks": {
            "sentences": "BLOB",
            "lex_len": "INTEGER NOT NULL DEFAULT 0",
            "lex_terms": "INTEGER NOT NULL DEFAULT 0",
        },
        "embedding_cache": {"sentences": "BLOB", "split": "TEXT"},
    }
    for table, columns in wanted.items():
        present = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
        for column, kind in columns.items():
            if column not in present:
                con.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


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


def _batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
