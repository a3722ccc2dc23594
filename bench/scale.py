"""Scale benchmark: hybrid search latency, memory per query and ingest speed as the
library grows (synthetic data).

    python bench/scale.py [--sizes 10000,100000,300000] [--queries 200] [--keep]
    python bench/scale.py --sizes 10000,1000000 --data-root /work/scale-data \\
        --ingest-articles 500                      # reuse libraries built by a former run
    NEWSRAG_DATABASE_URL=postgresql+psycopg://... CHROMA_HOST=127.0.0.1 CHROMA_PORT=8000 \\
        python bench/scale.py --backend server --sizes 10000,300000 --data-root DIR

Each size gets its own library (Chroma + the record database), filled with synthetic
articles of 10 chunks: random unit 384-d vectors, and texts of words drawn from a
Zipf-distributed vocabulary (so common words have long posting lists, as in news). The
articles are the same in every library (seeded per block of 1,000 articles), so a larger
library holds the smaller ones' articles.

Building (``--build bulk``, the default): vectors go to Chroma through the vector index's
``upsert`` in large batches; records, chunks and BM25 postings (built with numpy from the
word ids, one fragment per 10,000 articles) are written in one transaction per 10,000
articles, then the postings are compacted (one fragment per term, as a BM25 rebuild
leaves them). No embedding model runs. The result is a library like ingest writes (tests
check that its rows, postings and rankings equal those of ``Library.writer.write``), so
``newsrag stats``/``check`` accept it and ingest extends it. ``--build write`` grows the
libraries through ``Library.writer.write`` instead (500 articles per call; the slow path).
With ``--data-root`` the libraries stay there and a later run reuses (or grows) them.

Measuring: after every build, each size is measured in a fresh process, one after the
other, so all sizes see similar machine load: ``HybridSearcher.search`` (dense + BM25 +
fusion + chunk lookup) on random queries, with a random query vector (the figures are
the store's cost, not the model's); the process's RSS after opening the library and its
peak RSS growth over the queries; and tracemalloc's peak per query (Python allocations).

``--ingest-articles N`` then ingests N real articles (read at run time from
``--ingest-corpus``, the held-out dev corpus by default; never copied) with the bundled
embedding model, into an empty library and into the largest one, and reports seconds per
article for each. The articles are deleted from the large library afterwards (with the
embedding cache rows they added, so a rerun embeds them again).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from rag.search import DenseSearch, LexicalSearch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import DEV, ROOT, append_report, busy_note, markdown, percentile, run_worker
from langchain_core.embeddings import Embeddings

sys.path.insert(0, str(ROOT))  # the `ingest` package, not bench/ingest.py

DIM = 384
CHUNKS_PER_ARTICLE = 10
WORDS_PER_CHUNK = 120
VOCABULARY = 50_000
BLOCK_ARTICLES = 1_000  # articles generated from one seed
GROUP_ARTICLES = 10_000  # articles per bulk transaction (100,000 chunks)
WRITE_ARTICLES = 500  # articles per Library.writer.write call (--build write)
SEED = 42


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
    """A pronounceable synthetic vocabulary (BM25 needs real tokens)."""
    syllables = np.array(["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "do", "fu"])
    parts = rng.integers(0, len(syllables), size=(VOCABULARY, 4))
    return np.array(["".join(syllables[p]) + str(i % 7) for i, p in enumerate(parts)])


def _zipf_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    ranks = np.arange(1, VOCABULARY + 1)
    p = 1.0 / ranks
    return rng.choice(VOCABULARY, size=n, p=p / p.sum())


@dataclass(frozen=True)
class SyntheticArticle:
    article: Any  # rag.records.Article
    chunks: list[Any]  # rag.records.Chunk
    vectors: np.ndarray  # (chunks, DIM) unit float32
    word_ids: np.ndarray  # (chunks, WORDS_PER_CHUNK) vocabulary ids of the chunk texts


class SyntheticCorpus:
    """Deterministic synthetic articles: article ``a`` is the same in every run."""

    def __init__(self, seed: int = SEED) -> None:
        self.seed = seed
        self.vocab = _words(np.random.default_rng(seed))
        self.words: list[str] = self.vocab.tolist()

    def articles(self, start: int, stop: int) -> Iterator[SyntheticArticle]:
        """Articles ``start..stop-1``."""
        for block in range(start // BLOCK_ARTICLES, (stop - 1) // BLOCK_ARTICLES + 1):
            first = block * BLOCK_ARTICLES
            for n, item in enumerate(self._block(block)):
                if start <= first + n < stop:
                    yield item

    def _block(self, block: int) -> list[SyntheticArticle]:
        from rag.records import Article, Chunk

        rng = np.random.default_rng([self.seed, block])
        per_article = CHUNKS_PER_ARTICLE * WORDS_PER_CHUNK
        ids = _zipf_ids(rng, BLOCK_ARTICLES * per_article).reshape(
            BLOCK_ARTICLES, CHUNKS_PER_ARTICLE, WORDS_PER_CHUNK
        )
        vecs = rng.standard_normal((BLOCK_ARTICLES, CHUNKS_PER_ARTICLE, DIM)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=2, keepdims=True)
        base_day = date(2022, 1, 1)
        words = self.words
        out = []
        for n in range(BLOCK_ARTICLES):
            a = block * BLOCK_ARTICLES + n
            texts = [" ".join([words[i] for i in row]) for row in ids[n].tolist()]
            article_id = f"syn{a:07d}"
            lead = " ".join(words[i] for i in ids[n, 0, :4].tolist())
            article = Article(
                article_id=article_id,
                title=f"Synthetic article {a} {lead}",
                text="\n".join(texts),
                source=f"source{a % 20}.example",
                origin=f"synthetic:{a}",
                url=None,
                published=base_day + timedelta(days=a % 365),
            )
            chunks = []
            offset = 0
            for i, text in enumerate(texts):
                chunks.append(
                    Chunk(f"{article_id}:{i}", article_id, i, text, offset, offset + len(text))
                )
                offset += len(text) + 1
            out.append(SyntheticArticle(article, chunks, vecs[n], ids[n]))
        return out


class BulkPostings:
    """BM25 postings of synthetic chunks computed with numpy from their word ids.

    Equal to what :func:`rag.lexical.analyze` gives for the same texts (every vocabulary
    word is one token, never a stopword; titles are analyzed by the product's analyzer).
    """

    def __init__(self, words: Sequence[str]) -> None:
        from rag import lexical
        from rag.text import STOPWORDS

        self.names: list[str] = []
        self.ids: dict[str, int] = {}
        for word in words:
            if lexical.tokens(word) != [word] or word in STOPWORDS:
                msg = f"vocabulary word {word!r} is not one indexed token"
                raise ValueError(msg)
        self.word_term = np.array([self._id(lexical.term(w)) for w in words], dtype=np.int64)

    def _id(self, name: str) -> int:
        found = self.ids.get(name)
        if found is None:
            found = self.ids[name] = len(self.names)
            self.names.append(name)
        return found

    def build(
        self, items: Sequence[SyntheticArticle], first_doc: int
    ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], np.ndarray, np.ndarray]:
        """Postings of the chunks of ``items`` numbered from ``first_doc`` in order, and
        each chunk's length in words and number of distinct terms."""
        from rag import lexical

        n = len(items) * CHUNKS_PER_ARTICLE
        titles = [lexical.analyze(item.article.title, "") for item in items]
        title_docs: list[int] = []
        title_terms: list[int] = []
        title_freqs: list[int] = []
        for a, analyzed in enumerate(titles):
            for name, freq in analyzed.freqs.items():
                term_id = self._id(name)
                for i in range(CHUNKS_PER_ARTICLE):
                    title_docs.append(a * CHUNKS_PER_ARTICLE + i)
                    title_terms.append(term_id)
                    title_freqs.append(freq)  # title << 8: the body count is added below
        width = len(self.names)
        body = self.word_term[np.stack([item.word_ids for item in items]).reshape(n, -1)]
        keys, counts = np.unique(
            (np.arange(n, dtype=np.int64)[:, None] * width + body).ravel(), return_counts=True
        )
        keys = np.concatenate([keys, np.array(title_docs, np.int64) * width + title_terms])
        values = np.concatenate([np.minimum(counts, 255), np.array(title_freqs, np.int64)])
        keys, inverse = np.unique(keys, return_inverse=True)
        packed = np.bincount(inverse, weights=values).astype(np.int64)
        local, terms = np.divmod(keys, width)
        lengths = np.repeat([t.length for t in titles], CHUNKS_PER_ARTICLE) + WORDS_PER_CHUNK
        distinct = np.bincount(local, minlength=n)
        order = np.lexsort((local, terms))
        terms, local, packed = terms[order], local[order], packed[order]
        lens = np.minimum(lengths, 65_535)[local]
        cuts = np.flatnonzero(np.diff(terms)) + 1
        starts = np.concatenate([[0], cuts])
        ends = np.concatenate([cuts, [len(terms)]])
        postings = {
            self.names[int(terms[s])]: (
                (local[s:e] + first_doc).astype("<u4"),
                packed[s:e].astype("<u2"),
                lens[s:e].astype("<u2"),
            )
            for s, e in zip(starts.tolist(), ends.tolist(), strict=True)
        }
        return postings, lengths, distinct


def bulk_load(
    index: Any,
    corpus: SyntheticCorpus,
    start: int,
    stop: int,
    deadline: float = float("inf"),
    group: int = GROUP_ARTICLES,
) -> int:
    """Add synthetic articles ``start..stop-1`` to ``index`` without the per-article
    write path; returns the articles now in the library (less than ``stop`` when
    ``deadline``, a ``time.monotonic()`` value, passed first).

    Per group of articles, under the library lock: upsert the vectors (idempotent, so a
    run killed midway is simply run again), then one transaction writes the articles as
    ``complete``, their chunks and one postings fragment, and bumps the write generation.
    At the end the postings are compacted (one fragment per term).
    """
    from sqlalchemy import insert

    from rag import lexical
    from rag.database import ARTICLES, CHUNKS
    from rag.record_store import article_row
    from rag.records import chunk_metadata

    builder = BulkPostings(corpus.words)
    reached = start
    with index.lock.exclusive("bulk-load synthetic articles"):
        for first in range(start, stop, group):
            if time.monotonic() > deadline:
                break
            t0 = time.perf_counter()
            items = list(corpus.articles(first, min(stop, first + group)))
            t1 = time.perf_counter()
            ids = [c.chunk_id for item in items for c in item.chunks]
            metadatas = [chunk_metadata(item.article, c) for item in items for c in item.chunks]
            index.vectors.upsert(ids, np.concatenate([item.vectors for item in items]), metadatas)
            t2 = time.perf_counter()
            now = time.time()
            with index.records.transaction() as con:
                first_doc = index.lexical.next_doc(con)
                postings, lengths, distinct = builder.build(items, first_doc)
                con.execute(
                    insert(ARTICLES),
                    [
                        {
                            **article_row(item.article, now),
                            "n_chunks": len(item.chunks),
                            "status": "complete",
                        }
                        for item in items
                    ],
                )
                rows = []
                for item in items:
                    for chunk in item.chunks:
                        n = len(rows)
                        rows.append(
                            {
                                "rowid": first_doc + n,
                                "chunk_id": chunk.chunk_id,
                                "article_id": chunk.article_id,
                                "chunk_index": chunk.index,
                                "start": chunk.start,
                                "end": chunk.end,
                                "text": chunk.text,
                                "sentences": None,
                                "lex_len": int(lengths[n]),
                                "lex_terms": int(distinct[n]),
                            }
                        )
                con.execute(insert(CHUNKS), rows)
                lexical.add_fragment(
                    con,
                    postings,
                    len(rows),
                    int(lengths.sum()),
                    first_doc + len(rows) - 1,
                    merge=False,
                )
                index.records.bump_generation(con)
            reached = first + len(items)
            print(
                f"  {reached * CHUNKS_PER_ARTICLE:,} chunks stored (generate {t1 - t0:.0f} s, "
                f"vectors {t2 - t1:.0f} s, records and postings "
                f"{time.perf_counter() - t2:.0f} s)",
                file=sys.stderr,
            )
        # Also after a run killed between two groups (their fragments are still apart).
        if reached > start or _fragmented(index):
            started = time.perf_counter()
            with index.records.transaction() as con:
                index.lexical.compact(con)
            print(f"  postings compacted ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return reached


def _fragmented(index: Any) -> bool:
    """True when some term's postings are in several fragments."""
    from sqlalchemy import func, select

    from rag.database import LEX_POSTINGS

    with index.records.snapshot() as con:
        rows, terms = con.execute(
            select(func.count(), func.count(LEX_POSTINGS.c.term.distinct()))
        ).one()
    return bool(rows > terms)


def grow_by_writes(
    index: Any,
    corpus: SyntheticCorpus,
    start: int,
    stop: int,
    deadline: float = float("inf"),
) -> int:
    """Add synthetic articles through ``Library.writer.write``, ``WRITE_ARTICLES`` per call."""
    for first in range(start, stop, WRITE_ARTICLES):
        if time.monotonic() > deadline:
            return first
        items = corpus.articles(first, min(stop, first + WRITE_ARTICLES))
        index.writer.write([(item.article, item.chunks, item.vectors) for item in items])
    return stop


# -- libraries --------------------------------------------------------------------------


@dataclass(frozen=True)
class ScaleLibrary:
    """Where one size's library lives (what a worker process needs to open it)."""

    size: int
    data_dir: str
    collection: str
    database_url: str | None
    chroma_host: str | None
    chroma_port: int

    def settings(self) -> Any:
        from rag.settings import Settings

        return Settings(
            _env_file=None,
            data_dir=Path(self.data_dir),
            collection=self.collection,
            database_url=self.database_url,
            chroma_host=self.chroma_host,
            chroma_port=self.chroma_port,
        )


def library_for(size: int, root: Path, backend: str, label: str = "") -> ScaleLibrary:
    """The library of ``size`` chunks under ``root`` (or on the servers of the env)."""
    name = label or str(size)
    if backend == "embedded":
        return ScaleLibrary(size, str(root / f"embedded-{name}"), "scale", None, None, 8000)
    base = os.environ.get("NEWSRAG_DATABASE_URL", "")
    host = os.environ.get("CHROMA_HOST")
    if not base.startswith("postgresql") or not host:
        msg = "--backend server needs NEWSRAG_DATABASE_URL=postgresql... and CHROMA_HOST"
        raise SystemExit(msg)
    database = f"newsrag_scale_{name}"
    _create_database(base, database)
    url = base.rsplit("/", 1)[0] + "/" + database
    port = int(os.environ.get("CHROMA_PORT", "8000"))
    return ScaleLibrary(size, str(root / f"server-{name}"), f"scale{name}", url, host, port)


def _create_database(url: str, name: str) -> None:
    from sqlalchemy import create_engine, text

    from rag.database import open_engine

    engine = open_engine(url)
    engine = create_engine(engine.url, isolation_level="AUTOCOMMIT")
    with engine.connect() as con:
        exists = con.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
        ).first()
        if not exists:
            con.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()


def build(library: ScaleLibrary, mode: str, deadline: float) -> tuple[int, float]:
    """Grow ``library`` to its size; returns the chunks it holds and the seconds spent."""
    from rag.components import build_index

    started = time.perf_counter()
    index = build_index(library.settings())
    try:
        have = index.records.stats().articles
        target = library.size // CHUNKS_PER_ARTICLE
        if mode == "bulk":  # also compacts what a killed build left apart
            have = bulk_load(index, SyntheticCorpus(), have, target, deadline)
        elif have < target:
            have = grow_by_writes(index, SyntheticCorpus(), have, target, deadline)
        return have * CHUNKS_PER_ARTICLE, time.perf_counter() - started
    finally:
        index.close()


# -- workers (each in a fresh process) ---------------------------------------------------


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(library: ScaleLibrary, queries: int, traced: int) -> dict[str, Any]:
    """Search latency and memory on one library (run in a fresh process)."""
    from rag.components import build_index
    from rag.retrieval import HybridSearcher, SearchConfig
    from rag.store import Filters

    started = time.perf_counter()
    index = build_index(library.settings())
    stub = RandomQueryEmbeddings()
    searcher = HybridSearcher.of(index, stub, SearchConfig())
    corpus_vocab = _words(np.random.default_rng(SEED))
    qrng = np.random.default_rng(3)
    texts = [" ".join(corpus_vocab[_zipf_ids(qrng, 6)]) for _ in range(queries)]
    as_of = Filters(as_of=date(2022, 12, 31))
    searcher.search(texts[0], as_of)  # loads the vectors
    opened = time.perf_counter() - started
    for q in texts[1:5]:
        searcher.search(q, as_of)
    rss_open = _rss_mb()
    peak_before = _peak_mb()
    timings: dict[str, list[float]] = {"hybrid": [], "dense": [], "dense_all": [], "bm25": []}
    for q in texts:
        t = time.perf_counter()
        searcher.search(q, as_of)
        timings["hybrid"].append((time.perf_counter() - t) * 1000)
        vector = stub.embed_query(q)
        t = time.perf_counter()
        DenseSearch.of(index).search(vector, 50, as_of)
        timings["dense"].append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        DenseSearch.of(index).search(vector, 50, Filters())
        timings["dense_all"].append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        LexicalSearch.of(index).search(q, 50, as_of)
        timings["bm25"].append((time.perf_counter() - t) * 1000)
    peak_after = _peak_mb()
    # The same questions again: every page they read is in the OS page cache now, as in a
    # server whose library fits in memory (the first pass reads a big library from disk).
    repeated = []
    for q in texts:
        t = time.perf_counter()
        searcher.search(q, as_of)
        repeated.append((time.perf_counter() - t) * 1000)
    tracemalloc.start()
    peaks = []
    for q in texts[:traced]:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        searcher.search(q, as_of)
        peaks.append((tracemalloc.get_traced_memory()[1] - base) / 1024)
    tracemalloc.stop()
    chunks = index.records.complete_chunks()
    vectors = index.vectors.count()
    index.close()
    return {
        "chunks": chunks,
        "vectors": vectors,
        "open_s": opened,
        **{f"{k}_p50": percentile(v, 50) for k, v in timings.items()},
        "hybrid_p95": percentile(timings["hybrid"], 95),
        "repeat_p50": percentile(repeated, 50),
        "rss_open_mb": rss_open,
        "rss_growth_mb": peak_after - peak_before,
        "traced_p50_kb": statistics.median(peaks),
        "traced_max_kb": max(peaks),
    }


def ingest(library: ScaleLibrary, corpus: str, n: int, remove: bool) -> dict[str, Any]:
    """Ingest ``n`` real articles into ``library`` with the bundled model (fresh process)."""
    from sqlalchemy import delete

    from ingest.loaders import load_file
    from rag.assistant import Assistant
    from rag.database import EMBEDDING_CACHE

    articles = load_file(Path(corpus)).articles[:n]
    started = time.perf_counter()
    assistant = Assistant.from_settings(library.settings())
    ingestor = assistant.ingestor()
    before = assistant.index.records.complete_chunks()
    assistant.embeddings.embed_query("warm up the model")
    opened = time.perf_counter() - started
    cpu = time.process_time()
    report = ingestor.ingest_articles(articles)
    cpu = time.process_time() - cpu  # all threads of this process: less load-sensitive
    seconds = report.seconds
    added = [a.article_id for a in report.added]
    result = {
        "articles": len(added),
        "chunks_embedded": report.chunks_embedded,
        "chunks_written": report.chunks_written,
        "library_chunks": before,
        "open_s": opened,
        "seconds": seconds,
        "per_article_s": seconds / max(len(added), 1),
        "cpu_per_article_s": cpu / max(len(added), 1),
    }
    if remove:  # leave the kept library as it was, and embed them again next time
        assistant.index.writer.delete(added)
        with assistant.index.records.transaction() as con:
            con.execute(delete(EMBEDDING_CACHE))
    assistant.index.close()
    return result


# -- main --------------------------------------------------------------------------------


def _worker(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    return run_worker([str(Path(__file__).resolve()), "--worker", kind, json.dumps(payload)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,300000", help="chunk counts")
    parser.add_argument("--queries", type=int, default=200, help="queries per size")
    parser.add_argument(
        "--traced-queries", type=int, default=30, help="queries measured with tracemalloc"
    )
    parser.add_argument(
        "--max-build-minutes",
        type=float,
        default=30.0,
        help="stop building past this time (the sizes reached are measured)",
    )
    parser.add_argument("--build", choices=("bulk", "write"), default="bulk")
    parser.add_argument(
        "--backend",
        choices=("embedded", "server"),
        default="embedded",
        help="server: records on NEWSRAG_DATABASE_URL (Postgres), vectors on CHROMA_HOST",
    )
    parser.add_argument(
        "--data-root", type=Path, help="keep the libraries here and reuse them (else temporary)"
    )
    parser.add_argument("--ingest-articles", type=int, default=0, help="real articles to ingest")
    parser.add_argument("--ingest-corpus", default=str(DEV / "corpus.jsonl"))
    parser.add_argument(
        "--ingest-empty-again",
        action="store_true",
        help="ingest into an empty library again after the large one",
    )
    parser.add_argument("--no-record", action="store_true", help="do not write BENCHMARKS.md")
    parser.add_argument("--keep", action="store_true", help="keep temporary libraries")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        kind, payload = args.worker[0], json.loads(args.worker[1])
        library = ScaleLibrary(**payload.pop("library"))
        result = measure(library, **payload) if kind == "measure" else ingest(library, **payload)
        print(json.dumps(result))
        return 0

    sizes = sorted(int(s) for s in args.sizes.split(","))
    note = busy_note()
    root = args.data_root or Path(tempfile.mkdtemp(prefix="newsrag-bench-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    libraries = [library_for(size, root, args.backend) for size in sizes]
    deadline = time.monotonic() + args.max_build_minutes * 60
    rows: list[list[Any]] = []
    notes: list[str] = []
    try:
        built: dict[int, tuple[int, float]] = {}
        for library in libraries:
            chunks, seconds = build(library, args.build, deadline)
            built[library.size] = (chunks, seconds)
            print(f"{chunks:,} chunks in {library.data_dir} ({seconds:.0f} s)", file=sys.stderr)
            if chunks < library.size:
                notes.append(
                    f"{library.size:,} not reached within --max-build-minutes "
                    f"{args.max_build_minutes:g}: measured at {chunks:,}"
                )
        load = os.getloadavg()[0]
        results = []
        for library in libraries:
            payload = {"queries": args.queries, "traced": args.traced_queries}
            result = _worker("measure", {"library": asdict(library), **payload})
            results.append(result)
            print(result, file=sys.stderr)
        for r in results:
            if r["vectors"] != r["chunks"]:
                notes.append(f"the {r['chunks']:,}-chunk library has {r['vectors']:,} vectors")
        base = results[0]["hybrid_p50"]
        for library, r in zip(libraries, results, strict=True):
            rows.append(
                [
                    f"{r['chunks']:,} (synthetic)",
                    f"{r['hybrid_p50']:.1f}",
                    f"{r['hybrid_p95']:.1f}",
                    f"{r['dense_p50']:.1f}",
                    f"{r['dense_all_p50']:.1f}",
                    f"{r['bm25_p50']:.1f}",
                    f"{r['hybrid_p50'] / base:.2f}x",
                    f"{r['repeat_p50']:.1f}",
                    f"{r['repeat_p50'] / results[0]['repeat_p50']:.2f}x",
                    f"{built[library.size][1]:.0f}",
                    f"{r['open_s']:.1f}",
                    f"{r['rss_open_mb']:.0f}",
                    f"{r['rss_growth_mb']:.1f}",
                    f"{r['traced_p50_kb']:.0f} / {r['traced_max_kb']:.0f}",
                ]
            )
        ingest_table = ""
        if args.ingest_articles:
            ingest_table, ingest_notes = _ingest_runs(args, root, libraries[-1])
            notes += ingest_notes
    finally:
        if args.data_root is None and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"libraries kept under {root}", file=sys.stderr)
    header = [
        "chunks",
        "hybrid search p50 ms",
        "p95 ms",
        "dense p50 ms",
        "dense, no filter, p50 ms",
        "BM25 p50 ms",
        f"p50 vs {results[0]['chunks']:,}",
        "hybrid p50 ms, repeated questions",
        f"repeated p50 vs {results[0]['chunks']:,}",
        "build s",
        "open s",
        "RSS after open MB",
        f"peak RSS growth over {args.queries} queries MB",
        "Python peak per query KB (p50 / max)",
    ]
    backend = (
        "records in SQLite, vectors in embedded Chroma (the default)"
        if args.backend == "embedded"
        else "records on Postgres (NEWSRAG_DATABASE_URL), vectors on a Chroma server"
    )
    notes = [
        backend,
        "SYNTHETIC data: random unit 384-d vectors; texts of 120 words drawn from a "
        "50,000-word Zipf vocabulary; 10 chunks per article; 6-word random queries with a "
        "random query vector (no model in the loop)",
        f"libraries built with --build {args.build}; each size measured in a fresh process "
        f"after all builds, one after the other ({args.queries} queries after 5 warm-up "
        "queries); every query has an as-of date filter (as `ask` with a date), except "
        "the 'no filter' column; 'repeated questions': the same queries asked again "
        "afterwards (the pages they read are in the OS page cache, as in a server whose "
        "library fits in memory); tracemalloc over "
        f"{args.traced_queries} queries (Python allocations only, not Chroma's)",
        *notes,
        note,
        f"load average when the measurements started {load:.1f}",
    ]
    table = markdown(header, rows)
    if ingest_table:
        table += "\n\n" + ingest_table
    if args.no_record:
        print("\n".join(f"- {n}" for n in notes if n) + "\n\n" + table)
    else:
        append_report("Scale", "search latency, memory and ingest vs library size", table, notes)
    return 0


def _ingest_runs(args: argparse.Namespace, root: Path, big: ScaleLibrary) -> tuple[str, list[str]]:
    """Ingest real articles into an empty library and into the largest one."""
    empty_root = Path(tempfile.mkdtemp(prefix="newsrag-bench-scale-empty-"))
    runs = []
    try:
        plan: list[tuple[str, ScaleLibrary | None]] = [("empty", None), ("the largest", big)]
        if args.ingest_empty_again:  # brackets the large run when the load drifts
            plan.append(("empty (again)", None))
        for label, library in plan:
            if library is None:
                shutil.rmtree(empty_root, ignore_errors=True)
                library = library_for(0, empty_root, args.backend, f"empty{len(runs)}")
            load = os.getloadavg()[0]
            payload = {"corpus": args.ingest_corpus, "n": args.ingest_articles, "remove": True}
            result = _worker("ingest", {"library": asdict(library), **payload})
            print(label, result, file=sys.stderr)
            runs.append((label, load, result))
    finally:
        shutil.rmtree(empty_root, ignore_errors=True)
    empties = [r["per_article_s"] for label, _, r in runs if label.startswith("empty")]
    big_run = runs[1][2]
    rows = [
        [
            label,
            f"{r['library_chunks']:,}",
            r["articles"],
            r["chunks_embedded"],
            f"{r['seconds']:.1f}",
            f"{r['per_article_s'] * 1000:.0f}",
            f"{r['cpu_per_article_s'] * 1000:.0f}",
            f"{r['open_s']:.1f}",
            f"{load:.1f}",
        ]
        for label, load, r in runs
    ]
    header = [
        "ingest into",
        "chunks before",
        "articles added",
        "chunks embedded",
        "ingest s",
        "ms per article",
        "CPU ms per article",
        "open s (not counted)",
        "load average",
    ]
    ratio = big_run["per_article_s"] / statistics.mean(empties)
    cpu_empties = [r["cpu_per_article_s"] for label, _, r in runs if label.startswith("empty")]
    cpu_ratio = big_run["cpu_per_article_s"] / statistics.mean(cpu_empties)
    notes = [
        f"ingest: {args.ingest_articles} real articles from {Path(args.ingest_corpus).name} "
        "(read at run time) with the bundled model; per-article time into the "
        f"{big_run['library_chunks']:,}-chunk library is {ratio:.2f}x the mean of the "
        "empty-library runs (target <= 1.2x); afterwards they are deleted from it with "
        "their cache rows",
        f"in CPU time (all threads of the ingesting process, less sensitive to the other "
        f"jobs on the machine) {cpu_ratio:.2f}x",
        "ms per article: the ingest call (split, embed, write, read the vectors back); "
        "opening the library and loading the model are not counted",
    ]
    return markdown(header, rows), notes


if __name__ == "__main__":
    sys.exit(main())
