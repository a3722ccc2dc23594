"""The writer: the crash-safe write protocol across the record store, the vector index
and the lexical index, under the library lock.

Write protocol for a batch of articles (:meth:`LibraryWriter.write`), all of it under
the library lock (:mod:`rag.locking`: ``flock`` on the embedded default, a Postgres
advisory lock when the records live on Postgres), so one process writes at a time:

0. if another process wrote since this one last loaded the vectors, reload them;
1. mark the articles ``pending`` in the record store (commit);
2. upsert their chunks into the vector index under deterministic ids
   ``<article_id>:<n>``, delete any older chunk ids of those articles, and read every
   vector back;
3. replace their chunks and BM25 postings, mark them ``complete`` and bump the library's
   write generation (one transaction).

Re-running after a crash at any point repeats idempotent steps: no duplicates, no orphans.
Readers compare the write generation (stored in the record database, so shared by every
process of a Postgres library) with the one their vectors were loaded at, and reload when
another process moved it (see :mod:`rag.vectors` for why).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from rag import lexical
from rag.errors import StoreError
from rag.record_store import ArticleRecord, ChunkRow, RecordStore, stored_hash
from rag.records import (
    META_ARTICLE_ID,
    Article,
    Chunk,
    chunk_metadata,
)

if TYPE_CHECKING:
    from rag.lexical import LexicalIndex
    from rag.locking import Lock
    from rag.vectors import VectorIndex

logger = logging.getLogger(__name__)


class LibraryWriter:
    """Runs every write of the library across its parts, under the library lock.

    Example:
        >>> writer = LibraryWriter(records, vectors, SqlLexicalIndex(), lock)  # doctest: +SKIP
        >>> writer.write([(article, chunks, vectors)])  # doctest: +SKIP
    """

    def __init__(
        self,
        records: RecordStore,
        vectors: VectorIndex,
        lexical_index: LexicalIndex,
        lock: Lock,
    ) -> None:
        self.records = records
        self.vectors = vectors
        self.lexical = lexical_index
        self.lock = lock
        # The vectors were just loaded from their store: they reflect this generation.
        self.seen_generation = records.generation()

    # -- generations: when another process wrote -----------------------------------

    def sync_vectors(self) -> None:
        """Reload this process's vectors if another process wrote since they were loaded.

        Called before every read of the vectors; costs one small query when nothing moved.
        """
        current = self.records.generation()
        if current == self.seen_generation:
            return
        with self.lock.shared("reload the vectors another process wrote"):
            current = self.records.generation()
            self.vectors.refresh()
            self.seen_generation = current
        logger.info("reloaded vectors written by another process (generation %d)", current)

    def _sync_for_write(self) -> None:
        """Under the exclusive lock: make sure the vectors about to be written over are
        the ones in their store, not a stale copy of this process's."""
        current = self.records.generation()
        if current != self.seen_generation:
            self.vectors.refresh()
            self.seen_generation = current

    def _bump(self) -> None:
        with self.records.transaction() as con:
            self.records.bump_generation(con)
        self.seen_generation = self.records.generation()

    # -- consistency probes: do the vectors match the records? ----------------------

    def vector_count(self) -> int:
        """How many vectors the vector index holds."""
        self.sync_vectors()
        return self.vectors.count()

    def vector_ids(self, article_id: str | None = None) -> list[str]:
        """Chunk ids stored in the vector index (for one article, or all)."""
        self.sync_vectors()
        return self.vectors.ids({META_ARTICLE_ID: article_id} if article_id else None)

    def missing_vectors(self, article_ids: Iterable[str] | None = None) -> list[str]:
        """Chunk ids of complete articles (all, or of ``article_ids``) whose vector cannot
        be read back from the vector index."""
        chunks = self.records.chunk_ids_of(article_ids)
        if not chunks:
            return []
        self.sync_vectors()
        return self.vectors.missing(sorted(chunks))

    def orphan_vectors(self) -> list[str]:
        """Ids in the vector index that no complete or unfinished chunk of the library owns."""
        self.sync_vectors()
        known = set(self.records.chunk_ids_of())
        unfinished = set(self.records.pending_ids())
        return [
            i for i in self.vectors.ids() if i not in known and i.split(":")[0] not in unfinished
        ]

    # -- writes ----------------------------------------------------------------------

    def write(
        self,
        batch: Sequence[tuple[Article, Sequence[Chunk], np.ndarray]],
        version: str = "",
        embedding_keys: Mapping[str, str] | None = None,
        sentences: Mapping[str, bytes | None] | None = None,
        split: str = "",
    ) -> None:
        """Store articles with their chunks and chunk vectors, replacing older versions
        (see the module docstring for the protocol). ``embedding_keys`` names, by chunk
        id, the embedding cache row that holds the chunk's vector and sentence vectors;
        ``sentences`` (by cache key, packed under the sentence split ``split``) are
        written with a row that another process released meanwhile."""
        if not batch:
            return
        with self.lock.exclusive("store articles"):
            self._write(batch, version, embedding_keys or {}, sentences or {}, split)

    def _write(
        self,
        batch: Sequence[tuple[Article, Sequence[Chunk], np.ndarray]],
        version: str,
        embedding_keys: Mapping[str, str],
        sentences: Mapping[str, bytes | None],
        split: str,
    ) -> None:
        self._sync_for_write()
        previous = self.records.get_records(a.article_id for a, _, _ in batch)
        # Another process may have stored the same version while this one embedded it
        # (ingest plans outside the lock): writing it again would only churn postings.
        fresh = [
            b for b in batch if not _already_stored(previous.get(b[0].article_id), b[0], version)
        ]
        if len(fresh) < len(batch):
            logger.info(
                "%d articles were stored meanwhile by another process", len(batch) - len(fresh)
            )
        batch = fresh
        if not batch:
            return
        ids = [a.article_id for a, _, _ in batch]
        with self.records.transaction() as con:
            self.records.mark(con, [a for a, _, _ in batch], "pending", version)
        all_ids: list[str] = []
        vectors: list[np.ndarray] = []
        metadatas: list[dict[str, Any]] = []
        for article, chunks, vecs in batch:
            for chunk, vec in zip(chunks, vecs, strict=True):
                all_ids.append(chunk.chunk_id)
                vectors.append(vec)
                metadatas.append(chunk_metadata(article, chunk))
        # The chunk text lives in the record store only: the vector index keeps vectors
        # and the metadata its filters need (a second copy of the text doubled the footprint).
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
        cached = {
            embedding_keys[chunk.chunk_id]: vec
            for _, chunks, vecs in batch
            for chunk, vec in zip(chunks, vecs, strict=True)
            if chunk.chunk_id in embedding_keys
        }
        with self.records.transaction() as con:
            freed = self._delete_chunks(con, ids)
            doc = self.lexical.next_doc(con)
            postings: list[tuple[int, lexical.Analyzed]] = []
            for (article, chunks, _), terms in zip(batch, analyzed, strict=True):
                rows: list[ChunkRow] = []
                for chunk, chunk_terms in zip(chunks, terms, strict=True):
                    rows.append(
                        ChunkRow(
                            rowid=doc,
                            chunk=chunk,
                            embedding_key=embedding_keys.get(chunk.chunk_id),
                            lex_len=chunk_terms.length,
                            lex_terms=len(chunk_terms.freqs),
                        )
                    )
                    postings.append((doc, chunk_terms))
                    doc += 1
                self.records.insert_chunks(con, article.article_id, rows)
                self.records.complete(con, article, len(chunks), version)
            self.lexical.add(con, postings)
            # The cache rows the new chunks name exist (another process may have released
            # one since this one read it), and those of replaced chunks go if unused.
            self.records.keep_cached(con, cached, sentences, split)
            self.records.release_cache(con, freed - cached.keys())
            self.records.bump_generation(con)
        self.seen_generation = self.records.generation()

    def _delete_chunks(self, con: Any, article_ids: Sequence[str]) -> set[str]:
        """Delete the articles' chunks and their postings; returns the embedding cache
        rows they named (to release once nothing names them)."""
        freed = self.records.embedding_keys(con, article_ids)
        chunks, length, terms = self.records.delete_chunks(con, article_ids)
        self.lexical.forget(con, chunks, length, terms)
        return freed

    def delete(self, article_ids: Sequence[str]) -> int:
        """Remove articles and all their chunks; returns how many articles were known."""
        ids = list(article_ids)
        if not ids:
            return 0
        with self.lock.exclusive("delete articles"):
            self._sync_for_write()
            known = self.records.get_records(ids)
            with self.records.transaction() as con:
                self.records.set_status(con, ids, "deleting")
            for article_id in ids:
                self.vectors.delete_where({META_ARTICLE_ID: article_id})
            with self.records.transaction() as con:
                freed = self._delete_chunks(con, ids)
                self.records.delete_articles(con, ids)
                # Their vectors leave the disk with them (the cache rows no other uses).
                self.records.release_cache(con, freed)
                self.records.bump_generation(con)
            self.seen_generation = self.records.generation()
        return len(known)

    def release_unused_cache(self) -> int:
        """Delete the embedding cache rows no stored chunk names; returns how many."""
        with (
            self.lock.exclusive("release unused cached vectors"),
            self.records.transaction() as con,
        ):
            return self.records.release_cache(con)

    def reset(self) -> None:
        """Empty the vector index, the records and the postings (the cache stays)."""
        with self.lock.exclusive("reset the library"):
            self._sync_for_write()
            self.vectors.reset()
            with self.records.transaction() as con:
                self.lexical.clear(con)
                self.records.clear(con)
                self.records.bump_generation(con)
            self.seen_generation = self.records.generation()

    def restore_vectors(self, vectors: Mapping[str, np.ndarray]) -> None:
        """Write again the vectors of chunks the library holds (by chunk id), with their
        metadata read from the records: repairs vectors lost or never stored."""
        if not vectors:
            return
        rows = self.records.chunk_metadata_rows(list(vectors))
        known = [i for i in vectors if i in rows]
        if not known:
            return
        with self.lock.exclusive("restore vectors"):
            self._sync_for_write()
            self.vectors.upsert(
                known, np.stack([vectors[i] for i in known]), [rows[i] for i in known]
            )
            still = self.vectors.missing(known)
            self._bump()
        if still:
            msg = f"the vector index did not keep the vectors of {len(still)} restored chunks"
            raise StoreError(msg)

    def delete_vectors(self, chunk_ids: Sequence[str]) -> None:
        """Remove vectors by id (those no stored chunk owns, found by a check)."""
        with self.lock.exclusive("delete orphan vectors"):
            self._sync_for_write()
            self.vectors.delete(chunk_ids)
            self._bump()


def _already_stored(record: ArticleRecord | None, article: Article, version: str) -> bool:
    return (
        record is not None
        and record.status == "complete"
        and record.content_hash == stored_hash(article, version)
    )
