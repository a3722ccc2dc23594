"""Hybrid retrieval: dense (Chroma) + lexical (BM25) fused by reciprocal rank, per article.

The searcher receives the library's parts (:mod:`rag.store`): the record store, whose
complete chunks are the searchable ones, the vector index and the lexical index with the
writer that keeps this process's vectors current (see :mod:`rag.search`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import date
from typing import TYPE_CHECKING

from rag.record_store import Filters, RecordStore
from rag.records import RetrievedChunk, StoryMember
from rag.search import DenseSearch, LexicalSearch
from rag.stories import collapse_stories

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from rag.lexical import LexicalIndex
    from rag.store import Library
    from rag.vectors import VectorIndex
    from rag.writer import LibraryWriter

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArticleHit:
    """One retrieved article: its best chunks, best first, and its fused score."""

    article_id: str
    title: str
    source: str
    url: str | None
    published: date | None
    score: float
    chunks: tuple[RetrievedChunk, ...]
    author: str | None = None
    site_name: str | None = None
    # The other outlets' copies of its story (see rag.stories), best hit kept, these listed.
    also: tuple[StoryMember, ...] = ()

    @property
    def best_dense(self) -> float:
        scores = [c.dense_score for c in self.chunks if c.dense_score is not None]
        return max(scores) if scores else 0.0


@dataclass(frozen=True)
class SearchConfig:
    top_k: int = 5
    candidates: int = 50
    rrf_k: int = 60
    chunks_per_article: int = 3
    recency_days: int = 30
    recency_weight: float = 3.0
    exclude_future: bool = True
    # A window the question names ("the week of 11 July 2022"): its articles count as
    # fresh, and those outside fade over this many days from its nearest edge.
    window_days: int = 7
    collapse_stories: bool = True  # one hit per story (rag.stories)


class HybridSearcher:
    """Ranks articles for a question with dense + BM25 retrieval and rank fusion.

    Example:
        >>> searcher = HybridSearcher(
        ...     records, vectors, lexical_index, writer, embeddings)  # doctest: +SKIP
        >>> searcher = HybridSearcher.of(index, embeddings)  # doctest: +SKIP
        >>> [h.title for h in searcher.search("what did Meloni propose?")]  # doctest: +SKIP
        ["Italian PM proposes extending NATO's Article 5 security umbrella to Ukraine"]
    """

    def __init__(
        self,
        records: RecordStore,
        vectors: VectorIndex,
        lexical_index: LexicalIndex,
        writer: LibraryWriter,
        embeddings: Embeddings,
        config: SearchConfig | None = None,
    ) -> None:
        self.records = records
        self.dense = DenseSearch(vectors, records, writer)
        self.lexical = LexicalSearch(lexical_index, records)
        self.embeddings = embeddings
        self.config = config or SearchConfig()

    @classmethod
    def of(
        cls, index: Library, embeddings: Embeddings, config: SearchConfig | None = None
    ) -> HybridSearcher:
        """The searcher over the parts of ``index``."""
        return cls(index.records, index.vectors, index.lexical, index.writer, embeddings, config)

    def search(
        self,
        query: str,
        filters: Filters | None = None,
        *,
        top_k: int | None = None,
        recent: date | None = None,
        around: bool = False,
        since: date | None = None,
        words: str | None = None,
    ) -> list[ArticleHit]:
        """The ``top_k`` best articles for ``query``, each with its best chunks.

        Articles published shortly before ``recent`` (default: ``filters.as_of``) are
        preferred; with ``around``, also those shortly after it (the question named a
        day or week, whose news may be published the days after). With ``since`` too,
        ``since``..``recent`` is the window the question named: every article in it
        counts as fresh, and one outside fades with its distance to the window.
        ``words`` (default: ``query``) is the text the lexical search matches: the
        question without the date phrase its window already applies.
        """
        cfg = self.config
        filters = filters or Filters()
        recent = recent or filters.as_of
        vector = self.embeddings.embed_query(query)
        dense = self.dense.search(vector, cfg.candidates, filters, cfg.exclude_future)
        lexical = self.lexical.search(
            query if words is None else words, cfg.candidates, filters, cfg.exclude_future
        )
        fused: dict[str, float] = defaultdict(float)
        dense_rank: dict[str, int] = {}
        dense_score: dict[str, float] = {}
        lexical_rank: dict[str, int] = {}
        for rank, (chunk_id, score) in enumerate(dense):
            fused[chunk_id] += 1.0 / (cfg.rrf_k + rank + 1)
            dense_rank[chunk_id] = rank
            dense_score[chunk_id] = score
        for rank, (chunk_id, _) in enumerate(lexical):
            fused[chunk_id] += 1.0 / (cfg.rrf_k + rank + 1)
            lexical_rank[chunk_id] = rank
        chunks = self.records.chunks_by_id(list(fused))
        by_article: dict[str, list[RetrievedChunk]] = defaultdict(list)
        for chunk_id, chunk in chunks.items():
            score = fused[chunk_id] * recency_factor(cfg, chunk.published, recent, around, since)
            by_article[chunk.article_id].append(
                replace(
                    chunk,
                    score=score,
                    dense_score=dense_score.get(chunk_id),
                    dense_rank=dense_rank.get(chunk_id),
                    lexical_rank=lexical_rank.get(chunk_id),
                )
            )
        hits = []
        for group in by_article.values():
            group.sort(key=lambda c: c.score, reverse=True)
            best = group[: cfg.chunks_per_article]
            # An article matching in several places is a little more likely the one.
            score = best[0].score + 0.25 * sum(c.score for c in best[1:])
            first = best[0]
            hits.append(
                ArticleHit(
                    article_id=first.article_id,
                    title=first.title,
                    source=first.source,
                    url=first.url,
                    published=first.published,
                    score=score,
                    chunks=tuple(best),
                )
            )
        hits.sort(key=lambda h: h.score, reverse=True)
        k = top_k or cfg.top_k
        # A story rarely has more than a few copies: 4k hits are enough to fill k.
        hits = hits[: 4 * k] if cfg.collapse_stories else hits[:k]
        members = self.records.story_members([h.article_id for h in hits])
        hits = collapse_stories(hits, members, collapse=cfg.collapse_stories)
        return self._with_leads(hits[:k])

    def _with_leads(self, hits: list[ArticleHit]) -> list[ArticleHit]:
        """Add each article's first chunk: the lede of a news story holds its main facts."""
        missing = [f"{h.article_id}:0" for h in hits if all(c.chunk_index for c in h.chunks)]
        if not missing:
            return hits
        leads = self.records.chunks_by_id(missing)
        return [
            replace(h, chunks=(*h.chunks, leads[f"{h.article_id}:0"]))
            if f"{h.article_id}:0" in leads
            else h
            for h in hits
        ]


def recency_factor(
    cfg: SearchConfig,
    published: date | None,
    recent: date | None,
    around: bool,
    since: date | None = None,
) -> float:
    """A boost for articles published shortly before the ``recent`` date.

    >>> week = date(2022, 7, 11), date(2022, 7, 17)
    >>> [round(recency_factor(SearchConfig(), date(2022, 7, d), week[1], True, week[0]), 2)
    ...  for d in (10, 13, 25)]
    [3.57, 4.0, 1.0]
    """
    if recent is None or cfg.recency_days <= 0:
        return 1.0
    if published is None:
        return 1.0 + cfg.recency_weight * 0.25
    if around and since is not None and cfg.window_days > 0:
        # News of a named week: published in it, or reported the days around it.
        outside = max((since - published).days, (published - recent).days, 0)
        return 1.0 + cfg.recency_weight * max(0.0, 1.0 - outside / cfg.window_days)
    age = (recent - published).days
    if around:
        age = abs(age)
    if age < 0:
        return 1.0  # published after it: only when future articles are not excluded
    return 1.0 + cfg.recency_weight * max(0.0, 1.0 - age / cfg.recency_days)
