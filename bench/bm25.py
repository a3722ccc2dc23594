"""BM25 top-k without reading every posting (MaxScore) against scoring every match.

On libraries that bench/scale.py built and kept (``--data-root``), asks the same random
Zipf questions both ways, in one process, one after the other per question:

- *every match*: ``rag.lexical.score`` (each posting of each question word scored into one
  float per chunk id) then ``rag.lexical.top``, the ranking BM25 used before;
- *MaxScore*: ``rag.lexical.best``, what ``rag.search.LexicalSearch`` runs now, reading
  each word's postings a window (``_WINDOW`` postings) at a time;
- *MaxScore, rows whole*: the same with each postings row read whole (an unbounded
  window), as it ran on Postgres before windows were read there with ``substring``.

It checks that all give the same chunks with the same scores for every question (it
stops with an error otherwise), then prints p50/p95 time and tracemalloc's peak per query.
A library is a data dir (its SQLite file) or a database URL (Postgres).

    python bench/bm25.py /work/scale-data/embedded-10000 /work/scale-data/embedded-1000000
    python bench/bm25.py postgresql+psycopg://postgres@127.0.0.1:55432/newsrag_scale_300000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import append_report, busy_note, markdown, percentile
from scale import SEED, _words, _zipf_ids

from rag import lexical
from rag.store import open_record_store

_UNBOUNDED = 1 << 28  # a window longer than any postings row (in SQL int range): rows whole


def _url(library: str) -> str:
    if "://" in library:
        return library
    return f"sqlite:///{next(Path(library).glob('*.sqlite3'))}"


def _best_with_window(window: int, con: Any, terms: list[str], n: int) -> Any:
    default = lexical._WINDOW
    lexical._WINDOW = window
    try:
        return lexical.best(con, terms, n, n)
    finally:
        lexical._WINDOW = default


def measure(library: str, queries: int, n: int) -> list[str]:
    started = time.perf_counter()
    records = open_record_store(_url(library), 600)
    opened = time.perf_counter() - started
    vocabulary = _words(np.random.default_rng(SEED))
    rng = np.random.default_rng(3)  # the questions of bench/scale.py
    texts = [" ".join(vocabulary[_zipf_ids(rng, 6)]) for _ in range(queries)]
    every: list[float] = []
    pruned: list[float] = []
    whole: list[float] = []
    every_kb: list[float] = []
    pruned_kb: list[float] = []
    whole_kb: list[float] = []
    with records.engine.connect() as con:
        chunks = lexical._meta(con).get("docs", 0)
        for text in texts[:5]:  # warm-up
            lexical.best(con, lexical.query_terms(text), n, n)
        for text in texts:
            terms = lexical.query_terms(text)
            t = time.perf_counter()
            expected = lexical.top(*lexical.score(con, terms, n), n)
            every.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            ids, scores = lexical.best(con, terms, n, n)
            pruned.append((time.perf_counter() - t) * 1000)
            got = [(int(d), float(s)) for d, s in zip(ids, scores, strict=True)]
            if got != expected:
                raise SystemExit(f"different rankings for {text!r}: {got[:3]} vs {expected[:3]}")
            t = time.perf_counter()
            ids, scores = _best_with_window(_UNBOUNDED, con, terms, n)
            whole.append((time.perf_counter() - t) * 1000)
            if [(int(d), float(s)) for d, s in zip(ids, scores, strict=True)] != expected:
                raise SystemExit(f"different rankings (rows whole) for {text!r}")
        for text in texts[:30]:
            terms = lexical.query_terms(text)
            tracemalloc.start()
            lexical.top(*lexical.score(con, terms, n), n)
            every_kb.append(tracemalloc.get_traced_memory()[1] / 1024)
            tracemalloc.stop()
            tracemalloc.start()
            lexical.best(con, terms, n, n)
            pruned_kb.append(tracemalloc.get_traced_memory()[1] / 1024)
            tracemalloc.stop()
            tracemalloc.start()
            _best_with_window(_UNBOUNDED, con, terms, n)
            whole_kb.append(tracemalloc.get_traced_memory()[1] / 1024)
            tracemalloc.stop()
    records.close()
    return [
        f"{chunks:,} ({records.engine.dialect.name})",
        f"{statistics.median(every):.2f} / {percentile(every, 95):.2f}",
        f"{statistics.median(pruned):.2f} / {percentile(pruned, 95):.2f}",
        f"{statistics.median(every_kb):.0f} / {max(every_kb):.0f}",
        f"{statistics.median(pruned_kb):.0f} / {max(pruned_kb):.0f}",
        f"{statistics.median(whole):.2f} / {percentile(whole, 95):.2f}",
        f"{statistics.median(whole_kb):.0f} / {max(whole_kb):.0f}",
        f"{queries} of {queries}",
        f"{opened:.1f}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "libraries", nargs="+", help="data dirs of bench/scale.py, or database URLs (Postgres)"
    )
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--top", type=int, default=200, help="chunks asked for (k x widen)")
    parser.add_argument("--no-record", action="store_true", help="do not write BENCHMARKS.md")
    args = parser.parse_args()
    note = busy_note()
    rows = [measure(library, args.queries, args.top) for library in args.libraries]
    header = [
        "chunks",
        "every match p50 / p95 ms",
        "MaxScore p50 / p95 ms",
        "every match peak KB (p50 / max)",
        "MaxScore peak KB (p50 / max)",
        "MaxScore, rows whole, p50 / p95 ms",
        "MaxScore, rows whole, peak KB (p50 / max)",
        "same ranking",
        "open s",
    ]
    notes = [
        "libraries of bench/scale.py (synthetic Zipf texts), its 6-word random questions; "
        f"the best {args.top} chunks; the three ways per question in one process (page "
        f"cache shared); windows of {lexical._WINDOW:,} postings; tracemalloc over 30 "
        "questions",
        note,
    ]
    table = markdown(header, rows)
    if args.no_record:
        print("\n".join(f"- {n}" for n in notes) + "\n\n" + table)
    else:
        append_report(
            "Scale",
            "BM25 top-k: MaxScore (windows, rows whole) vs scoring every match",
            table,
            notes,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
