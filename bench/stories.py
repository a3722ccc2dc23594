"""Near-duplicate grouping on the RealTime QA dev corpus: how many stories, at what threshold.

For each threshold: the number of stories the 2,481 articles form, how many articles share
a story, and how many gold articles of the questions share one with another article. A
synthetic check measures recall: for ``--variants`` articles, an updated version (last
paragraph dropped, a sentence added, headline changed) and a trimmed copy (first and last
paragraphs dropped) must join their original's story.

    python bench/stories.py [--thresholds 0.3,0.4,0.5,0.6,0.7,0.8] [--variants 200]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEV, ROOT

sys.path.insert(0, str(ROOT))  # bench/ingest.py would shadow the ingest package

from ingest.dedupe import StoryGrouper


def _variants(text: str, rng: random.Random) -> list[str]:
    paragraphs = [p for p in text.split("\n") if p.strip()]
    if len(paragraphs) < 4:
        return []
    updated = [*paragraphs[:-1], "This story has been updated with more details."]
    trimmed = paragraphs[1:-1]
    return ["\n".join(updated), "\n".join(trimmed)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, default=DEV)
    parser.add_argument("--thresholds", default="0.3,0.4,0.5,0.6,0.7,0.8")
    parser.add_argument("--variants", type=int, default=200)
    args = parser.parse_args(argv)
    docs = [json.loads(line) for line in (args.dataset / "corpus.jsonl").open()]
    gold = {
        doc_id
        for line in (args.dataset / "questions.jsonl").open()
        for doc_id in json.loads(line)["gold_doc_ids"]
    }
    rng = random.Random(7)
    picked = rng.sample([d for d in docs if d["text"].count("\n") >= 4], args.variants)
    print(
        "| threshold | stories | articles sharing a story | gold sharing | variant recall "
        "| seconds |"
    )
    print("|---|---|---|---|---|---|")
    for threshold in (float(t) for t in args.thresholds.split(",")):
        started = time.perf_counter()
        grouper = StoryGrouper(threshold)
        for doc in docs:
            grouper.add(doc["id"], doc["text"])
        stories = grouper.stories()
        seconds = time.perf_counter() - started
        shared = sum(len(m) for m in stories.values() if len(m) > 1)
        gold_shared = sum(
            1 for m in stories.values() if len(m) > 1 for doc_id in m if doc_id in gold
        )
        joined = total = 0
        for doc in picked:
            for n, text in enumerate(_variants(doc["text"], rng)):
                total += 1
                match = grouper.add(f"variant-{n}-{doc['id']}", text)
                joined += match.story == grouper.story_of(doc["id"])
        print(
            f"| {threshold:.1f} | {len(stories):,} | {shared} | {gold_shared} "
            f"| {joined / total:.3f} ({joined}/{total}) | {seconds:.1f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
