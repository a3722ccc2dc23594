"""The two searches over a library's parts: nearest vectors and BM25.

Each receives the parts it reads and nothing else:

- :class:`DenseSearch`: the vector index (Chroma) for the nearest chunks, the record store
  to apply filters, and the writer, which reloads this process's vectors when another
  process wrote and holds the library lock an embedded Chroma read needs;
- :class:`LexicalSearch`: the lexical index (BM25 postings) and the record store whose
  database holds them, read in one snapshot.

:class:`rag.retrieval.HybridSearcher` fuses the two. Both return chunk ids of complete
articles only: the record store decides what is searchable.

Example:
    >>> dense = DenseSearch(index.vectors, index.records, index.writer)  # doctest: +SKIP
    >>> dense.search(embeddings.embed_query("Meloni"), 5, Filters())  # doctest: +SKIP
    [('5c1f...:0', 0.61), ...]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rag import lexical
from rag.record_store import Filters, RecordStore
from rag.records import META_ARTICLE_ID, META_PUBLISHED_DAY, META_SOURCE

if TYPE_CHECKING:
    from rag.lexical import LexicalIndex
    from rag.store import Library
    from rag.vectors import VectorIndex
    from rag.writer import LibraryWriter

# Searches ask for WIDEN x k results without filters, then drop those the filters refuse.
WIDEN = 2


class DenseSearch:
    """The chunks nearest a vector, by cosine similarity, among those passing filters."""

    def __init__(self, vectors: VectorIndex, records: RecordStore, writer: LibraryWriter) -> None:
        self.vectors = vectors
        self.records = records
        self.writer = writer

    @classmethod
    def of(cls, index: Library) -> DenseSearch:
        """The dense search over the parts of ``index``."""
        return cls(index.vectors, index.records, index.writer)

    def search(
        self, vector: Sequence[float], k: int, filters: Filters, exclude_future: bool = True
    ) -> list[tuple[str, float]]:
        """Chunk ids and cosine similarities of the ``k`` nearest chunks passing ``filters``."""
        where = chroma_where(filters, exclude_future)
        if where is None:
            return self._nearest(vector, k, None)
        # Chroma applies a metadata filter by scanning the collection: the cost grows with
        # the index. An unfiltered HNSW query over more neighbours, filtered here against
        # the records, stays flat; the filtered query is the fallback when too few pass.
        kept: list[tuple[str, float]] = []
        for widen in (WIDEN, 4 * WIDEN):
            wide = self._nearest(vector, k * widen, None)
            allowed = self.records.passing(
                "chunk_id", [i for i, _ in wide], filters, exclude_future
            )
            kept = [(i, s) for i, s in wide if i in allowed]
            if len(kept) >= k:
                return kept[:k]
        if len(kept) >= k // 2:
            return kept
        return self._nearest(vector, k, where)

    def _nearest(
        self, vector: Sequence[float], k: int, where: dict[str, Any] | None
    ) -> list[tuple[str, float]]:
        if not self.vectors.embedded:
            self.writer.sync_vectors()
            return self.vectors.query(vector, k, where)
        # Embedded Chroma read while another process writes the same files fails ("Error
        # finding id"): a search waits for that write (a batch, about a second), then
        # reloads what it wrote.
        with self.writer.lock.shared("search the vectors"):
            self.writer.sync_vectors()
            return self.vectors.query(vector, k, where)


class LexicalSearch:
    """The chunks best matching a text by BM25, among those passing filters."""

    def __init__(self, lexical_index: LexicalIndex, records: RecordStore) -> None:
        self.lexical = lexical_index
        self.records = records

    @classmethod
    def of(cls, index: Library) -> LexicalSearch:
        """The BM25 search over the parts of ``index``."""
        return cls(index.lexical, index.records)

    def search(
        self, text: str, k: int, filters: Filters, exclude_future: bool = True
    ) -> list[tuple[str, float]]:
        """Chunk ids and BM25 scores (higher is better) of the best ``k`` chunks."""
        terms = lexical.query_terms(text)
        if not terms:
            return []
        # One snapshot: postings and statistics of the same writes.
        with self.records.snapshot() as con:
            # Filters are checked on the best ones only (joining every match to its article
            # would cost more than scoring); widen when too few of them pass.
            found: list[tuple[str, float]] = []
            wanted = k * WIDEN
            while True:
                ids, scores = self.lexical.best(con, terms, wanted, at_least=k * WIDEN)
                ranked = [(int(d), float(s)) for d, s in zip(ids, scores, strict=True)]
                names = self.records.passing(
                    "rowid", [d for d, _ in ranked], filters, exclude_future, con
                )
                found = [(names[d], score) for d, score in ranked if d in names]
                if len(found) >= k or len(ids) < wanted:
                    break
                wanted *= 10
        return found[:k]

    def frequencies(self, words: Sequence[str]) -> tuple[int, dict[str, int]]:
        """Number of chunks, and how many chunks contain each word (for IDF weights)."""
        with self.records.snapshot() as con:
            return self.lexical.frequencies(con, words)


def chroma_where(filters: Filters, exclude_future: bool) -> dict[str, Any] | None:
    """``filters`` as a Chroma metadata filter (None when nothing is filtered)."""
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
