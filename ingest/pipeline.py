"""Incremental ingest: load files, split, embed what changed, store, report.

Why not LangChain's ``index()`` with a ``SQLRecordManager``: it keys its records by chunk
hash, so it cannot tell "updated" from "added", cannot skip an unchanged article before
splitting and embedding it, and keeps its records in a database separate from the
lexical index. Here the manifest, the BM25 index and the embedding cache live in one
SQLite file next to Chroma, written with the crash-safe protocol in :mod:`rag.store`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings

from ingest.dedupe import DEFAULT_THRESHOLD
from ingest.loaders import LoadFailure, LoadLimits, discover, load_file
from ingest.splitter import SentenceSplitter
from ingest.stories import LibraryStories, other_outlet_copy
from rag.embeddings import LocalEmbeddings
from rag.records import Article, Chunk, sha1_hex
from rag.store import Library, VectorCheck, pack_rows, stored_hash
from rag.text import split_sentences

logger = logging.getLogger(__name__)

# The sentence split (rag.text.split_sentences) that stored sentence vectors follow: part
# of the ingest version, and of the embedding cache's sentence vectors, so a new split
# re-pools them (chunk vectors do not depend on it and stay cached).
SENTENCE_SPLIT = "sv2"
EMBED_SLICE = 128  # chunks per embedding call: the progress bar moves every slice

ProgressCallback = Callable[[int, int, str], None]
"""Called as ``progress(done, total, message)`` while chunks are embedded."""


@dataclass(frozen=True)
class IngestedArticle:
    article_id: str
    title: str
    origin: str
    chunks: int = 0


@dataclass(frozen=True)
class IngestReport:
    """What one ingest did. ``failed`` lists every file (or JSONL line) that was skipped."""

    added: tuple[IngestedArticle, ...] = ()
    updated: tuple[IngestedArticle, ...] = ()
    skipped: tuple[IngestedArticle, ...] = ()
    deleted: tuple[IngestedArticle, ...] = ()
    duplicates: tuple[tuple[IngestedArticle, str], ...] = ()
    failed: tuple[LoadFailure, ...] = ()
    warnings: tuple[str, ...] = ()
    chunks_written: int = 0
    chunks_embedded: int = 0
    seconds: float = 0.0
    repaired: tuple[IngestedArticle, ...] = ()  # stored articles whose lost vectors were restored
    vectors_restored: int = 0
    unfinished_repaired: tuple[IngestedArticle, ...] = ()  # left unfinished by an earlier run
    # Joined the story of a stored or earlier article (another outlet's copy, a near-copy):
    # the article and the closest member it joined.
    grouped: tuple[tuple[IngestedArticle, str], ...] = ()
    # Newer versions (same canonical URL, or same outlet and near-identical text) and the
    # older article each replaced (deleted once the new version was stored).
    replaced: tuple[tuple[IngestedArticle, str], ...] = ()
    # Older versions of a stored article: not stored, the newer one stays.
    superseded: tuple[tuple[IngestedArticle, str], ...] = ()

    def summary(self) -> str:
        """One line, e.g. ``added 2, updated 0, skipped 5, deleted 0, failed 1``."""
        line = (
            f"added {len(self.added)}, updated {len(self.updated)}, "
            f"skipped {len(self.skipped) + len(self.duplicates)}, "
            f"deleted {len(self.deleted)}, failed {len(self.failed)}"
        )
        if self.repaired:
            line += f", repaired {len(self.repaired)}"
        if self.replaced:
            line += f", replaced {len(self.replaced)}"
        return f"{line} ({self.chunks_written} chunks written, {self.seconds:.1f}s)"

    def details(self) -> list[str]:
        """Human lines for everything that was not a plain add/update/skip."""
        lines = [
            f"repaired: {a.title} ({a.origin}): {a.chunks} lost vectors written again"
            for a in self.repaired
        ]
        lines += [
            f"repaired: {a.title} ({a.origin}), left unfinished by an earlier ingest"
            for a in self.unfinished_repaired
        ]
        lines += [f"failed: {f.path}: {f.reason}" for f in self.failed]
        lines += [f"duplicate: {a.origin} has the same text as {d}" for a, d in self.duplicates]
        lines += [f"same story: {a.title!r} ({a.origin}) joins {d}" for a, d in self.grouped]
        lines += [f"replaced: {d} by its newer version {a.title!r}" for a, d in self.replaced]
        lines += [
            f"older version: {a.title!r} ({a.origin}) not stored, {d} is newer"
            for a, d in self.superseded
        ]
        lines += [f"deleted: {a.title} ({a.origin})" for a in self.deleted]
        lines += [f"warning: {w}" for w in self.warnings]
        return lines


@dataclass(frozen=True)
class LibraryCheck:
    """What ``newsrag check`` found: every stored chunk's vector read back."""

    articles: int
    chunks: int
    missing: tuple[str, ...]  # chunk ids whose vector cannot be read
    orphans: tuple[str, ...]  # vector ids no stored chunk owns
    unfinished: tuple[str, ...]  # titles of articles an ingest left unfinished
    unused_cache: int = 0  # cached vectors of no stored chunk (disk only, nothing lost)
    repaired: bool = False
    repair_report: IngestReport | None = None

    @property
    def ok(self) -> bool:
        return not (self.missing or self.orphans or self.unfinished)

    def lines(self) -> list[str]:
        """Human lines, e.g. ``vectors: 3,506 of 3,506 readable``."""
        readable = self.chunks - len(self.missing)
        lines = [
            f"articles: {self.articles:,}",
            f"vectors: {readable:,} of {self.chunks:,} chunks readable",
        ]
        verb = "repaired" if self.repaired else "found"
        if self.missing:
            lines.append(f"{verb}: {len(self.missing):,} chunks without a readable vector")
        if self.orphans:
            lines.append(f"{verb}: {len(self.orphans):,} vectors of no stored chunk")
        for title in self.unfinished:
            lines.append(f"{verb}: unfinished article {title}")
        if self.unused_cache:
            done = "released" if self.repaired else "found"
            lines.append(
                f"{done}: {self.unused_cache:,} cached vectors of no stored chunk (disk space only)"
            )
        if (not self.ok or self.unused_cache) and not self.repaired:
            lines.append("run `newsrag check --repair` to fix them")
        return lines


@dataclass
class _Plan:
    added: list[Article] = field(default_factory=list)
    updated: list[Article] = field(default_factory=list)
    skipped: list[IngestedArticle] = field(default_factory=list)
    duplicates: list[tuple[IngestedArticle, str]] = field(default_factory=list)
    failed: list[LoadFailure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seen_ids: set[str] = field(default_factory=set)
    failed_origins: set[str] = field(default_factory=set)
    unfinished: set[str] = field(default_factory=set)  # article ids an earlier run left
    grouped: list[tuple[IngestedArticle, str]] = field(default_factory=list)
    superseded: list[tuple[IngestedArticle, str]] = field(default_factory=list)
    replaces: dict[str, tuple[str, ...]] = field(default_factory=dict)  # new id -> old ids


class Ingestor:
    """Turns files into searchable chunks, re-embedding only what changed.

    Example:
        >>> ingestor = Ingestor(index, embeddings, splitter, model_key="minilm")  # doctest: +SKIP
        >>> ingestor.ingest([Path("seeds")]).summary()  # doctest: +SKIP
        'added 1, updated 0, skipped 0, deleted 0, failed 0 (6 chunks written, 0.4s)'
    """

    def __init__(
        self,
        index: Library,
        embeddings: Embeddings,
        splitter: SentenceSplitter,
        *,
        model_key: str,
        max_bytes: int | None = None,
        max_article_chars: int | None = None,
        limits: LoadLimits | None = None,
        flush_chunks: int = 256,
        version: str | None = None,
        story_threshold: float = DEFAULT_THRESHOLD,
    ) -> None:
        self.index = index
        self.embeddings = embeddings
        self.splitter = splitter
        self.model_key = model_key
        self.max_bytes = max_bytes
        self.max_article_chars = max_article_chars
        self.limits = limits
        self.flush_chunks = flush_chunks
        self.story_threshold = story_threshold
        # The library's stories as of a write generation: reused while no other process
        # wrote (the stored articles it read as candidates stay valid until then).
        self._stories: LibraryStories | None = None
        self._stories_at = -1
        # Re-split and re-embed everything when the model or the chunk sizes change.
        # "sv1": chunks carry sentence vectors (an index from before them is redone).
        # "sv2": sentences split with abbreviations, initials and "!"/"?" inside names
        # and quotes; stored sentence vectors follow the split, so older ones are redone.
        self.version = version or (
            f"{model_key}|{splitter.chunk_tokens}|{splitter.overlap_tokens}|{SENTENCE_SPLIT}"
        )

    def ingest(
        self,
        paths: Sequence[Path],
        *,
        prune: bool = False,
        reset: bool = False,
        progress: ProgressCallback | None = None,
        show_progress: bool = False,
    ) -> IngestReport:
        """Ingest files and directories (walked recursively); see :class:`IngestReport`."""
        started = time.perf_counter()
        if reset:
            self.index.writer.reset()
        plan = _Plan()
        files, failures = discover(paths)
        plan.failed += failures
        plan.failed_origins.update(os.path.realpath(f.path) for f in failures)
        files += self._unfinished_files(files, plan)
        articles: list[Article] = []
        for path in files:
            loaded = load_file(path, max_bytes=self.max_bytes, limits=self.limits)
            articles += loaded.articles
            plan.failed += loaded.failures
            plan.warnings += loaded.warnings
            if loaded.failures:
                plan.failed_origins.add(str(path.resolve()))
        self._plan(articles, plan)
        report = self._stored(plan, lambda: self._execute(plan, progress, show_progress))
        replaced = self._replace_older(plan, report)
        repaired, restored = self._repair_vectors(plan, report)
        deleted: list[IngestedArticle] = []
        if prune:
            deleted = self._prune(paths, plan)
            if deleted:
                self._stories = None  # they are still in its index
        self.index.records.release_log()
        return IngestReport(
            added=report.added,
            updated=report.updated,
            skipped=tuple(plan.skipped),
            deleted=tuple(deleted),
            duplicates=tuple(plan.duplicates),
            failed=tuple(plan.failed),
            warnings=tuple(plan.warnings),
            chunks_written=report.chunks_written,
            chunks_embedded=report.chunks_embedded,
            seconds=time.perf_counter() - started,
            repaired=repaired,
            vectors_restored=restored,
            unfinished_repaired=tuple(
                a for a in (*report.added, *report.updated) if a.article_id in plan.unfinished
            ),
            grouped=tuple(plan.grouped),
            replaced=replaced,
            superseded=tuple(plan.superseded),
        )

    def ingest_articles(
        self, articles: Sequence[Article], *, progress: ProgressCallback | None = None
    ) -> IngestReport:
        """Ingest already-built articles (e.g. text pasted in the UI)."""
        started = time.perf_counter()
        plan = _Plan()
        extra: list[Article] = []
        for path in self._unfinished_files([], plan):
            loaded = load_file(path, max_bytes=self.max_bytes)
            extra += loaded.articles
            plan.failed += loaded.failures
        self._plan([*articles, *extra], plan)
        report = self._stored(plan, lambda: self._execute(plan, progress, show_progress=False))
        replaced = self._replace_older(plan, report)
        repaired, restored = self._repair_vectors(plan, report)
        self.index.records.release_log()
        return IngestReport(
            added=report.added,
            updated=report.updated,
            skipped=tuple(plan.skipped),
            duplicates=tuple(plan.duplicates),
            failed=tuple(plan.failed),
            warnings=tuple(plan.warnings),
            chunks_written=report.chunks_written,
            chunks_embedded=report.chunks_embedded,
            seconds=time.perf_counter() - started,
            repaired=repaired,
            vectors_restored=restored,
            unfinished_repaired=tuple(
                a for a in (*report.added, *report.updated) if a.article_id in plan.unfinished
            ),
            grouped=tuple(plan.grouped),
            replaced=replaced,
            superseded=tuple(plan.superseded),
        )

    # -- repairs ---------------------------------------------------------------------

    def check(self, *, repair: bool = False) -> LibraryCheck:
        """Read back every stored chunk's vector; with ``repair``, write lost vectors
        again, drop vectors no chunk owns and finish unfinished articles."""
        chunks = self.index.records.chunk_ids_of()
        missing = self.index.writer.missing_vectors() if chunks else []
        orphans = self.index.writer.orphan_vectors()
        unfinished = self.index.records.get_records(self.index.records.pending_ids())
        found = LibraryCheck(
            articles=self.index.records.stats().articles,
            chunks=len(chunks),
            missing=tuple(missing),
            orphans=tuple(orphans),
            unfinished=tuple(f"{r.title} ({r.origin})" for r in unfinished.values()),
            unused_cache=self.index.records.unused_cache_rows(),
        )
        report = None
        if repair and found.unused_cache:
            released = self.index.writer.release_unused_cache()
            found = replace(found, unused_cache=released, repaired=True)
        if repair and not found.ok:
            if missing:
                self.index.writer.restore_vectors(self._vectors_for(missing))
            if orphans:
                self.index.writer.delete_vectors(orphans)
            if unfinished:
                report = self.ingest([])
            missing = self.index.writer.missing_vectors()
            found = replace(found, repaired=True, repair_report=report)
        self.index.records.record_vector_check(
            VectorCheck(
                missing=len(missing), checked_chunks=len(chunks), scope="library", at=time.time()
            )
        )
        return found

    def _unfinished_files(self, files: Sequence[Path], plan: _Plan) -> list[Path]:
        """Files of articles an earlier ingest left unfinished (a crash, a full disk, a
        lost vector), so that any ingest finishes them; deletions left half-done are
        completed. Articles whose file is gone are reported."""
        pending = self.index.records.get_records(self.index.records.pending_ids())
        if not pending:
            return []
        have = {os.path.realpath(p) for p in files}
        extra: list[Path] = []
        doomed: list[str] = []
        for record in pending.values():
            plan.unfinished.add(record.article_id)
            if record.status == "deleting":
                doomed.append(record.article_id)
                continue
            origin = record.origin.split("#", 1)[0]
            if os.path.isfile(origin):
                if os.path.realpath(origin) not in have:
                    have.add(os.path.realpath(origin))
                    extra.append(Path(origin))
            else:
                plan.warnings.append(
                    f"unfinished: {record.title} ({record.origin}) was interrupted and its "
                    "source is gone: add it again"
                )
        if doomed:
            self.index.writer.delete(doomed)
        return extra

    def _repair_vectors(
        self, plan: _Plan, report: IngestReport
    ) -> tuple[tuple[IngestedArticle, ...], int]:
        """Read back the vectors of the articles this run skipped (all of the library's
        when the vector index holds fewer vectors than the records list chunks, e.g. a
        Chroma server restarted empty) and write the lost ones again, from the embedding
        cache (the model runs only for chunks the cache lacks).

        Returns the repaired articles and how many vectors were restored.
        """
        whole = self.index.writer.vector_count() < self.index.records.complete_chunks()
        scope: list[str] | None = None if whole else [s.article_id for s in plan.skipped]
        checked = self.index.records.chunk_ids_of(scope)
        lost = self.index.writer.missing_vectors(scope) if checked else []
        repaired: tuple[IngestedArticle, ...] = ()
        if lost:
            logger.warning("%d stored chunks had lost their vectors: writing them again", len(lost))
            self.index.writer.restore_vectors(self._vectors_for(lost))
            by_article: dict[str, int] = {}
            for chunk_id in lost:
                by_article[checked[chunk_id]] = by_article.get(checked[chunk_id], 0) + 1
            records = self.index.records.get_records(by_article)
            repaired = tuple(
                IngestedArticle(a, records[a].title, records[a].origin, n)
                for a, n in by_article.items()
                if a in records
            )
        self.index.records.record_vector_check(
            VectorCheck(
                missing=0,
                checked_chunks=len(checked) + report.chunks_written,
                scope="library" if whole else "ingest",
                at=time.time(),
            )
        )
        return repaired, len(lost)

    def _vectors_for(self, chunk_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Vectors of stored chunks, from the embedding cache or the model."""
        chunks = self.index.records.chunks_by_id(chunk_ids)
        keys = {
            cid: sha1_hex(f"{self.model_key}\x1f{embedding_text(c.title, c.text)}", 40)
            for cid, c in chunks.items()
        }
        cached, _ = self.index.records.cached_vectors(list(set(keys.values())))
        todo = [cid for cid, key in keys.items() if key not in cached]
        for start in range(0, len(todo), EMBED_SLICE):
            part = todo[start : start + EMBED_SLICE]
            texts = [embedding_text(chunks[c].title, chunks[c].text) for c in part]
            fresh = self.embeddings.embed_documents(texts)
            for cid, vector in zip(part, fresh, strict=True):
                cached[keys[cid]] = np.asarray(vector, dtype=np.float32)
        return {cid: cached[key] for cid, key in keys.items()}

    # -- planning --------------------------------------------------------------------

    def _plan(self, articles: Iterable[Article], plan: _Plan) -> None:
        articles = list(articles)
        records = self.index.records.get_records(a.article_id for a in articles)
        hashes_in_run: dict[str, Article] = {}
        for article in articles:
            entry = IngestedArticle(article.article_id, article.title, article.origin)
            if article.article_id in plan.seen_ids:
                reason = f"duplicate article id {article.article_id} in this batch"
                plan.failed.append(LoadFailure(article.origin, reason))
                continue
            plan.seen_ids.add(article.article_id)
            if self.max_article_chars and len(article.text) > self.max_article_chars:
                reason = (
                    f"article too long ({len(article.text):,} characters > "
                    f"{self.max_article_chars:,}); split it into articles"
                )
                plan.failed.append(LoadFailure(article.origin, reason))
                plan.failed_origins.add(article.origin)
                continue
            digest = stored_hash(article, self.version)
            record = records.get(article.article_id)
            if record and record.content_hash == digest and record.status == "complete":
                plan.skipped.append(entry)
                continue
            # The same text again is a duplicate, unless another outlet published it: then
            # it is kept, as a member of the story (its outlet, link and date are shown).
            twin = hashes_in_run.get(article.text_hash)
            if twin is None:
                existing = self.index.records.find_by_text_hash(article.text_hash)
                if (
                    existing
                    and existing.article_id != article.article_id
                    and not other_outlet_copy(article, existing)
                ):
                    plan.duplicates.append((entry, f"{existing.title!r} ({existing.origin})"))
                    continue
            elif not other_outlet_copy(article, twin):
                plan.duplicates.append((entry, f"{twin.title!r} ({twin.origin})"))
                continue
            hashes_in_run.setdefault(article.text_hash, article)
            (plan.updated if record else plan.added).append(article)
        self._place_stories(plan)

    def _place_stories(self, plan: _Plan) -> None:
        """Give each article to store its story (:mod:`ingest.stories`); an older version
        of a stored article is left out, a newer one will replace the stored one."""
        todo = [*plan.added, *plan.updated]
        if not todo:
            return
        stories = self._library_stories()
        stories.prepare(todo)
        placements = {}
        titles = {a.article_id: a for a in todo}
        older: set[str] = set()
        for article in todo:
            entry = IngestedArticle(article.article_id, article.title, article.origin)
            placed = stories.place(article)
            if placed.superseded_by is not None:
                newer = self.index.records.get_records([placed.superseded_by])[placed.superseded_by]
                plan.superseded.append((entry, _described(newer.title, newer.url or newer.origin)))
                older.add(article.article_id)
                continue
            placements[article.article_id] = placed
            if placed.replaces:
                plan.replaces[article.article_id] = placed.replaces
            elif placed.similar_to is not None:
                other = titles.get(placed.similar_to)
                if other is not None:
                    where = _described(other.title, other.url or other.origin)
                else:
                    record = self.index.records.get_records([placed.similar_to]).get(
                        placed.similar_to
                    )
                    where = _described(record.title, record.url or record.origin) if record else ""
                plan.grouped.append((entry, f"{where} ({placed.similarity:.0%} similar)"))
        if older:
            plan.added = [a for a in plan.added if a.article_id not in older]
            plan.updated = [a for a in plan.updated if a.article_id not in older]
        stories.save(placements)

    def _library_stories(self) -> LibraryStories:
        generation = self.index.records.generation()
        if self._stories is None or self._stories_at != generation:
            self._stories = LibraryStories.load(self.index, self.story_threshold)
            self._stories_at = generation
        return self._stories

    def _stored(self, plan: _Plan, execute: Callable[[], IngestReport]) -> IngestReport:
        """Run the writes of ``plan``; the stories placed for it stay loaded only when
        they all landed."""
        try:
            report = execute()
        except BaseException:
            self._stories = None
            raise
        self._stories_at = self.index.records.generation()
        return report

    def _replace_older(
        self, plan: _Plan, report: IngestReport
    ) -> tuple[tuple[IngestedArticle, str], ...]:
        """Delete the older versions of the articles just stored (never before the new
        version is safely in)."""
        stored = {a.article_id: a for a in (*report.added, *report.updated)}
        doomed: dict[str, IngestedArticle] = {}
        for article_id, old_ids in plan.replaces.items():
            if article_id in stored:
                for old in old_ids:
                    doomed[old] = stored[article_id]
        if not doomed:
            return ()
        records = self.index.records.get_records(doomed)
        self.index.writer.delete(list(doomed))
        if self._stories is not None:  # placing the new versions already dropped the old
            self._stories_at = self.index.records.generation()
        return tuple(
            (new, _described(records[old].title, records[old].url or records[old].origin))
            for old, new in doomed.items()
            if old in records
        )

    # -- execution -------------------------------------------------------------------

    def _execute(
        self, plan: _Plan, progress: ProgressCallback | None, show_progress: bool
    ) -> IngestReport:
        work = [(a, False) for a in plan.added] + [(a, True) for a in plan.updated]
        split = [(a, is_update, self.splitter.split(a)) for a, is_update in work]
        total = sum(len(chunks) for _, _, chunks in split)
        bar = _progress_bar(total, show_progress)
        done = 0

        def tick(step: int) -> None:
            nonlocal done
            done += step
            _report(progress, bar, done, total, step)

        added: list[IngestedArticle] = []
        updated: list[IngestedArticle] = []
        embedded = 0
        pending: list[tuple[Article, list[Chunk]]] = []
        pending_chunks = 0
        try:
            for article, is_update, chunks in split:
                pending.append((article, chunks))
                pending_chunks += len(chunks)
                entry = IngestedArticle(
                    article.article_id, article.title, article.origin, len(chunks)
                )
                (updated if is_update else added).append(entry)
                if pending_chunks >= self.flush_chunks:
                    embedded += self._store(pending, tick)
                    pending, pending_chunks = [], 0
            if pending:
                embedded += self._store(pending, tick)
        finally:
            if bar is not None:
                bar.close()  # type: ignore[attr-defined]
        return IngestReport(
            added=tuple(added),
            updated=tuple(updated),
            chunks_written=total,
            chunks_embedded=embedded,
        )

    def _store(self, batch: list[tuple[Article, list[Chunk]]], tick: Callable[[int], None]) -> int:
        """Embed (through the cache) and write one batch; returns how many were embedded.

        Each chunk's sentences get vectors from the same pass (see
        :meth:`rag.embeddings.LocalEmbeddings.embed_with_spans`) when the model gives them.
        """
        keys: list[str] = []
        texts: dict[str, str] = {}
        spans: dict[str, list[tuple[int, int]]] = {}
        for article, chunks in batch:
            for chunk in chunks:
                text = embedding_text(article.title, chunk.text)
                key = sha1_hex(f"{self.model_key}\x1f{text}", 40)
                keys.append(key)
                texts[key] = text
                spans[key] = sentence_spans(article.title, chunk.text)
        cached, cached_sentences = self.index.records.cached_vectors(list(texts), SENTENCE_SPLIT)
        embeddings = self.embeddings
        pooling = (
            embeddings
            if isinstance(embeddings, LocalEmbeddings) and embeddings.gives_span_vectors
            else None
        )
        # Sentence vectors stay packed (pack_rows) from the model to the cache, which is
        # their only copy: each chunk names its cache row.
        sentences: dict[str, bytes | None] = dict(cached_sentences)
        missing = [
            k for k in texts if k not in cached or (pooling is not None and k not in sentences)
        ]
        tick(len(keys) - len(missing))
        # Longest first: batches of similar length waste less padding.
        missing.sort(key=lambda k: len(texts[k]), reverse=True)
        for start in range(0, len(missing), EMBED_SLICE):
            part = missing[start : start + EMBED_SLICE]
            if pooling is not None:
                matrix, pooled = pooling.embed_with_spans(
                    [texts[k] for k in part], [spans[k] for k in part]
                )
                vectors = list(matrix)
            else:
                vectors = embeddings.embed_documents([texts[k] for k in part])
                pooled = [None] * len(part)
            fresh = {k: np.asarray(v, dtype=np.float32) for k, v in zip(part, vectors, strict=True)}
            fresh_sentences = {
                k: None if m is None else pack_rows(m) for k, m in zip(part, pooled, strict=True)
            }
            self.index.records.cache_vectors(fresh, fresh_sentences, SENTENCE_SPLIT)
            cached.update(fresh)
            sentences.update(fresh_sentences)
            tick(len(part))
        rows = []
        by_chunk: dict[str, str] = {}
        position = 0
        for article, chunks in batch:
            chunk_keys = keys[position : position + len(chunks)]
            position += len(chunks)
            rows.append((article, chunks, np.stack([cached[k] for k in chunk_keys])))
            for chunk, key in zip(chunks, chunk_keys, strict=True):
                by_chunk[chunk.chunk_id] = key
        self.index.writer.write(
            rows, self.version, embedding_keys=by_chunk, sentences=sentences, split=SENTENCE_SPLIT
        )
        return len(missing)

    def _prune(self, paths: Sequence[Path], plan: _Plan) -> list[IngestedArticle]:
        roots = [str(p.resolve()) for p in paths]
        doomed: list[IngestedArticle] = []
        for record in self.index.records.get_records().values():
            if record.article_id in plan.seen_ids or record.origin in plan.failed_origins:
                continue
            if any(_is_under(record.origin, root) for root in roots):
                doomed.append(IngestedArticle(record.article_id, record.title, record.origin))
        self.index.writer.delete([d.article_id for d in doomed])
        return doomed


def _described(title: str, where: str) -> str:
    return f"{title!r} ({where})"


def _is_under(origin: str, root: str) -> bool:
    return origin == root or origin.startswith(root.rstrip("/") + "/")


def embedding_text(title: str, text: str) -> str:
    """What is embedded for a chunk: its article's title gives it context."""
    return f"{title}\n{text}" if title else text


def sentence_spans(title: str, text: str) -> list[tuple[int, int]]:
    """Where the title and each sentence of ``text`` are in ``embedding_text(title, text)``.

    The first span is the title's (empty without a title); then one per sentence of
    :func:`rag.text.split_sentences`, the split the extractive answerer quotes from.

    >>> sentence_spans("Headline", "One. Two.")
    [(0, 8), (9, 13), (14, 18)]
    """
    offset = len(title) + 1 if title else 0
    return [(0, len(title)), *((s + offset, e + offset) for s, e in split_sentences(text))]


def _progress_bar(total: int, show: bool) -> object | None:
    if not show or total == 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="chunk", desc="embedding", leave=False)


def _report(
    progress: ProgressCallback | None, bar: object | None, done: int, total: int, step: int
) -> None:
    if bar is not None:
        bar.update(step)  # type: ignore[attr-defined]
    if progress is not None:
        progress(done, total, f"{done}/{total} chunks")
