"""Stories in a library: the cost of the backfill and of restoring the LSH, and the search
latency with the story collapse on and off.

Run it on a copy of a library built by an earlier version (no stories yet) to time the
backfill; on one that has them, the first line says so.

    python bench/story_library.py --data-dir /work/stories-eval --collection bench
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEV, ROOT

sys.path.insert(0, str(ROOT))  # bench/ingest.py would shadow the ingest package

from ingest.dedupe import StoryGrouper
from ingest.stories import LibraryStories
from rag.assistant import Assistant
from rag.components import build_index
from rag.settings import Settings


def _p(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * q))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--collection", default="bench")
    parser.add_argument("--dataset", type=Path, default=DEV)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    settings = Settings(_env_file=None, data_dir=args.data_dir, collection=args.collection)  # type: ignore[call-arg]

    started = time.perf_counter()
    index = build_index(settings)
    print(f"open (backfilling any article without a story): {time.perf_counter() - started:.2f} s")
    started = time.perf_counter()
    index = build_index(settings)
    print(f"open again: {time.perf_counter() - started:.2f} s")
    started = time.perf_counter()
    stories = LibraryStories.load_all(index)  # what ingest loaded before the bands
    rows = index.records.story_rows()
    print(
        f"LSH from stored signatures: {time.perf_counter() - started:.2f} s "
        f"({stories.count():,} stories of {len(rows):,} articles)"
    )
    started = time.perf_counter()
    texts = index.records.article_texts([r.article_id for r in rows])
    read = time.perf_counter() - started
    grouper = StoryGrouper()
    for row in rows:
        grouper.add(row.article_id, texts[row.article_id])
    print(
        f"LSH from stored texts instead: {time.perf_counter() - started:.1f} s "
        f"(reading them {read:.1f} s; {len(grouper.stories()):,} stories)"
    )

    questions = [json.loads(line) for line in (args.dataset / "questions.jsonl").open()]
    on = Assistant.from_settings(settings)
    off = Assistant(
        settings.model_copy(update={"collapse_stories": False}), on.index, on.embeddings
    )
    times: dict[str, list[float]] = {"on": [], "off": []}
    for n, q in enumerate(questions * args.rounds):
        # Alternating who goes first: the second search reuses the query's embedding.
        order = [("on", on), ("off", off)] if n % 2 else [("off", off), ("on", on)]
        for name, assistant in order:
            started = time.perf_counter()
            assistant.search(q["question"], as_of=date.fromisoformat(q["date"]), top_k=10)
            times[name].append((time.perf_counter() - started) * 1000)
    for name, values in times.items():
        print(
            f"search, collapse {name}: p50 {statistics.median(values):.1f} ms, "
            f"p95 {_p(values, 0.95):.1f} ms ({len(values)} searches)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
