"""Placing new articles in the stories of a large library: the stored articles that share
an LSH band with them (read from ``story_bands``) against the whole library's signatures
loaded into an in-memory LSH (what every ingest did before), in the same run.

A synthetic library of ``--articles`` stored signatures (random word texts), written
directly as an older version would have (stories, no bands); the first open then makes
the bands (timed). The batch: new unrelated articles, near copies and exact copies of
stored ones. The placements of both ways are checked equal.

    python bench/story_candidates.py [--articles 100000] [--batch 100]
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import delete, insert

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT

sys.path.insert(0, str(ROOT))  # bench/ingest.py would shadow the ingest package

from ingest.dedupe import signature, signature_bytes
from ingest.stories import LibraryStories
from rag.components import build_index
from rag.database import ARTICLES, LIBRARY_STATE, STORIES, STORY_BANDS, batches
from rag.record_store import article_row
from rag.records import Article
from rag.settings import Settings

_WORDS = [f"{a}{b}{c}" for a in "bdfgklmnprstvz" for b in "aeiou" for c in "lmnrst"][:2000]


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words))


def _article(n: int, text: str, prefix: str = "s") -> Article:
    day = date(2020, 1, 1) + timedelta(days=n % 900)
    host = f"outlet{n % 50}.example"
    return Article(
        f"{prefix}{n:07d}", f"Story {n}", text, host, "bench", f"https://{host}/{n}", day
    )


def _write_library(settings: Settings, n: int, words: int, seed: int) -> list[str]:
    """``n`` complete articles with their stories and signatures, no bands (as written
    before them); returns their texts."""
    index = build_index(settings)
    rng = random.Random(seed)
    texts = [_text(rng, words) for _ in range(n)]
    engine = index.records.engine
    started = time.perf_counter()
    for batch in batches(list(range(n)), 5000):
        articles = [_article(i, texts[i]) for i in batch]
        rows = [{**article_row(a, 0.0), "n_chunks": 0, "status": "complete"} for a in articles]
        stories = [
            {
                "article_id": a.article_id,
                "story_id": a.article_id,
                "signature": signature_bytes(signature(a.text)),
            }
            for a in articles
        ]
        with index.records.transaction() as con:
            con.execute(insert(ARTICLES), rows)
            con.execute(insert(STORIES), stories)
    with index.records.transaction() as con:
        con.execute(delete(STORY_BANDS))
        con.execute(delete(LIBRARY_STATE).where(LIBRARY_STATE.c.key == "story_bands"))
    index.records.release_log()
    print(f"wrote {n:,} stored signatures in {time.perf_counter() - started:.1f} s")
    engine.dispose()
    return texts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--words", type=int, default=150)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="newsrag-story-bench-"))
    settings = Settings(_env_file=None, data_dir=data_dir, collection="bench")  # type: ignore[call-arg]
    texts = _write_library(settings, args.articles, args.words, seed=1)
    database = Path(settings.index_db_path)
    size = database.stat().st_size

    started = time.perf_counter()
    index = build_index(settings)  # the first open makes the bands
    print(
        f"first open, bands of {args.articles:,} stored signatures: "
        f"{time.perf_counter() - started:.1f} s, database {size / 1e6:.0f} MB -> "
        f"{database.stat().st_size / 1e6:.0f} MB"
    )
    started = time.perf_counter()
    build_index(settings)
    print(f"open again: {time.perf_counter() - started:.2f} s")

    rng = random.Random(2)
    batch: list[Article] = []
    for n in range(args.batch):
        kind = n % 10
        if kind == 0:  # an exact copy from another outlet
            stored = rng.randrange(args.articles)
            batch.append(_article(10_000_000 + n, texts[stored], prefix="n"))
        elif kind == 1:  # a near copy: the last fifth trimmed
            words = texts[rng.randrange(args.articles)].split()
            text = " ".join(words[: len(words) * 4 // 5])
            batch.append(_article(10_000_000 + n, text, prefix="n"))
        else:
            batch.append(_article(10_000_000 + n, _text(rng, args.words), prefix="n"))

    started = time.perf_counter()
    stories = LibraryStories.load(index)
    read = stories.prepare(batch)
    after = {a.article_id: stories.place(a) for a in batch}
    after_s = time.perf_counter() - started

    started = time.perf_counter()
    full = LibraryStories.load_all(index)
    loaded = time.perf_counter() - started
    before = {a.article_id: full.place(a) for a in batch}
    before_s = time.perf_counter() - started

    assert after == before, "placements differ"

    # The same batch into an empty library: what the library's size adds per article.
    empty = build_index(settings.model_copy(update={"data_dir": data_dir / "empty"}))
    started = time.perf_counter()
    alone = LibraryStories.load(empty)
    alone.prepare(batch)
    for article in batch:
        alone.place(article)
    empty_s = time.perf_counter() - started
    grouped = sum(1 for p in after.values() if p.similar_to is not None)
    print(
        f"load + place {args.batch} new articles ({grouped} join a stored story) into "
        f"{args.articles:,} stored signatures:\n"
        f"  before (whole library into the LSH): {before_s:.2f} s (load {loaded:.2f} s)\n"
        f"  after (band candidates from the database, {read} read): {after_s:.3f} s\n"
        f"  placements identical: yes\n"
        f"  into an empty library: {empty_s:.3f} s"
    )
    print(f"data dir: {data_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
