"""Scale benchmark: hybrid search latency as the index grows (synthetic data).

    python bench/scale.py [--sizes 10000,100000,300000] [--queries 200] [--keep]

One temporary index (Chroma + the project's ChunkIndex record database) is grown to each
size with synthetic chunks written through ``ChunkIndex.write``: random unit 384-d
vectors and texts of words drawn from a Zipf-distributed vocabulary (so common words
have long posting lists, as in news). At each size, ``HybridSearcher.search`` (dense +
BM25 + fusion + chunk lookup) is timed on random queries. The query embedding is a
random vector supplied by a stub, so the figures are the store's cost, not the model's.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import append_report, busy_note, markdown, peak_rss_mb, percentile
from langchain_core.embeddings import Embeddings

DIM = 384
CHUNKS_PER_ARTICLE = 10
WORDS_PER_CHUNK = 120
VOCABULARY = 50_000
WRITE_ARTICLES = 500  # articles per ChunkIndex.write call (5,000 chunks)


class RandomQueryEmbeddings(Embeddings):
    """Random unit vectors: the query side of the benchmark costs nothing."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = np.random.default_rng(seed)

    def _vector(self) -> list[float]:
        v = self.rng.standard_normal(DIM).astype(np.float32)
        return (v / np.linalg.norm(v)).tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._vector() for _ in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector()


def _words(rng: np.random.Generator) -> np.ndarray:
    """A pronounceable synthetic vocabulary (FTS needs real tokens)."""
    syllables = np.array(["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "do", "fu"])
    parts = rng.integers(0, len(syllables), size=(VOCABULARY, 4))
    return np.array(["".join(syllables[p]) + str(i % 7) for i, p in enumerate(parts)])


def _zipf_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    ranks = np.arange(1, VOCABULARY + 1)
    p = 1.0 / ranks
    return rng.choice(VOCABULARY, size=n, p=p / p.sum())


def grow(
    index: Any,
    start: int,
    stop: int,
    rng: np.random.Generator,
    vocab: np.ndarray,
    deadline: float = float("inf"),
) -> int:
    """Write articles ``start..stop`` (10 chunks each) in batches, stopping at
    ``deadline`` (a ``time.monotonic()`` value); returns the articles now in the index."""
    from rag.records import Article, Chunk

    base_day = date(2022, 1, 1)
    for first in range(start, stop, WRITE_ARTICLES):
        if time.monotonic() > deadline:
            return first
        batch = []
        for a in range(first, min(stop, first + WRITE_ARTICLES)):
            ids = _zipf_ids(rng, CHUNKS_PER_ARTICLE * WORDS_PER_CHUNK)
            texts = [
                " ".join(vocab[ids[i * WORDS_PER_CHUNK : (i + 1) * WORDS_PER_CHUNK]])
                for i in range(CHUNKS_PER_ARTICLE)
            ]
            body = "\n".join(texts)
            article = Article(
                article_id=f"syn{a:07d}",
                title=f"Synthetic article {a} {texts[0][:40]}",
                text=body,
                source=f"source{a % 20}.example",
                origin=f"synthetic:{a}",
                url=None,
                published=base_day + timedelta(days=a % 365),
            )
            chunks = []
            offset = 0
            for i, text in enumerate(texts):
                chunks.append(
                    Chunk(
                        chunk_id=f"{article.article_id}:{i}",
                        article_id=article.article_id,
                        index=i,
                        text=text,
                        start=offset,
                        end=offset + len(text),
                    )
                )
                offset += len(text) + 1
            vecs = rng.standard_normal((CHUNKS_PER_ARTICLE, DIM)).astype(np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            batch.append((article, chunks, vecs))
        index.write(batch)
    return stop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,300000", help="chunk counts")
    parser.add_argument("--queries", type=int, default=200, help="queries per size")
    parser.add_argument(
        "--max-build-minutes",
        type=float,
        default=30.0,
        help="stop growing the index past this build time (the sizes reached are reported)",
    )
    parser.add_argument("--no-record", action="store_true", help="do not write BENCHMARKS.md")
    parser.add_argument("--keep", action="store_true", help="keep the index (path printed)")
    args = parser.parse_args()

    from rag.components import build_index
    from rag.retrieval import HybridSearcher, SearchConfig
    from rag.settings import Settings
    from rag.store import Filters

    sizes = sorted(int(s) for s in args.sizes.split(","))
    note = busy_note()
    tmp = Path(tempfile.mkdtemp(prefix="newsrag-bench-scale-"))
    settings = Settings(_env_file=None, data_dir=tmp, collection="scale")
    stub = RandomQueryEmbeddings()
    index = build_index(settings)
    searcher = HybridSearcher(index, stub, SearchConfig())
    rng = np.random.default_rng(42)
    vocab = _words(rng)
    qrng = np.random.default_rng(3)
    rows: list[list[Any]] = []
    articles = 0
    build_seconds = 0.0
    base_p50 = None
    skipped: list[int] = []
    try:
        for size in sizes:
            if build_seconds > args.max_build_minutes * 60:
                skipped.append(size)
                continue
            target = size // CHUNKS_PER_ARTICLE
            started = time.perf_counter()
            deadline = time.monotonic() + args.max_build_minutes * 60 - build_seconds
            articles = grow(index, articles, target, rng, vocab, deadline)
            build_seconds += time.perf_counter() - started
            if articles < target:  # budget spent: measure the size reached instead
                print(f"build budget spent: {size:,} chunks not reached", file=sys.stderr)
                skipped.append(size)
                size = articles * CHUNKS_PER_ARTICLE
            print(f"{size} chunks written ({build_seconds:.0f}s so far)", file=sys.stderr)
            queries = [" ".join(vocab[_zipf_ids(qrng, 6)]) for _ in range(args.queries)]
            as_of = date(2022, 12, 31)
            for q in queries[:5]:
                searcher.search(q, Filters(as_of=as_of))
            timings: dict[str, list[float]] = {
                "hybrid": [],
                "dense": [],
                "dense_nofilter": [],
                "lexical": [],
            }
            for q in queries:
                started = time.perf_counter()
                searcher.search(q, Filters(as_of=as_of))
                timings["hybrid"].append((time.perf_counter() - started) * 1000)
                vector = stub.embed_query(q)
                started = time.perf_counter()
                index.dense_search(vector, 50, Filters(as_of=as_of))
                timings["dense"].append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                index.dense_search(vector, 50, Filters())
                timings["dense_nofilter"].append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                index.lexical_search(q, 50, Filters(as_of=as_of))
                timings["lexical"].append((time.perf_counter() - started) * 1000)
            p50 = percentile(timings["hybrid"], 50)
            base_p50 = base_p50 or p50
            rows.append(
                [
                    f"{size:,} (synthetic)",
                    f"{p50:.1f}",
                    f"{percentile(timings['hybrid'], 95):.1f}",
                    f"{percentile(timings['dense'], 50):.1f}",
                    f"{percentile(timings['dense_nofilter'], 50):.1f}",
                    f"{percentile(timings['lexical'], 50):.1f}",
                    f"{p50 / base_p50:.2f}x",
                    f"{build_seconds:.0f}",
                    f"{peak_rss_mb():.0f}",
                ]
            )
            print(rows[-1], file=sys.stderr)
    finally:
        index.close()
        if args.keep:
            print(f"index kept: --data-dir {tmp} --collection scale", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    header = [
        "chunks",
        "hybrid search p50 ms",
        "p95 ms",
        "dense p50 ms",
        "dense, no filter, p50 ms",
        "BM25 p50 ms",
        f"p50 vs {sizes[0]:,}",
        "build s (cumulative)",
        "peak RSS MB",
    ]
    notes = [
        "SYNTHETIC data: random unit 384-d vectors; texts of 120 words drawn from a "
        "50,000-word Zipf vocabulary; 10 chunks per article; 6-word random queries with a "
        "random query vector (no model in the loop); as-of filter on every query",
        f"{args.queries} queries per size after 5 warm-up queries; target: p50 at the "
        "largest size <= 3x p50 at the smallest; every query has an as-of date filter "
        "(as `ask` with a date), except the 'no filter' column",
        f"not reached within --max-build-minutes {args.max_build_minutes:g}: "
        + ", ".join(f"{s:,}" for s in skipped)
        if skipped
        else "",
        note,
    ]
    table = markdown(header, rows)
    if args.no_record:
        print(table)
    else:
        append_report("Scale", "hybrid search latency vs index size", table, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
