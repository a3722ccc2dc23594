"""Article extraction benchmark: newsrag's HTML extraction beside plain trafilatura.

Runs both on the pages of ``../shared/eval/article-extraction-dev`` (gzipped HTML with
hand-made ground truth of each article body) in one run and prints F1, precision, recall,
accuracy, pages without an article and time, with the Article Extraction Benchmark's
metric: 4-gram shingles of ``\\w+`` tokens, per page TP/FP/FN as multiset counts divided by
their sum, precision and recall averaged over pages, F1 of those averages.

    python bench/extraction.py [--dataset DIR] [--worst 5] [--write]

``--write`` appends the table to docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPORT, ROOT, machine

# bench/ingest.py would shadow the ingest package: the project root goes first.
sys.path.insert(0, str(ROOT))

DATASET = ROOT.parent / "shared" / "eval" / "article-extraction-dev"
_TOKEN = re.compile(r"\w+")


def shingles(text: str) -> Counter[tuple[str, ...]]:
    """The multiset of 4-token windows (a text of under 4 tokens is one shingle)."""
    tokens = _TOKEN.findall(text)
    if len(tokens) < 4:
        return Counter([tuple(tokens)]) if tokens else Counter()
    return Counter(tuple(tokens[i : i + 4]) for i in range(len(tokens) - 3))


def page_counts(predicted: str, truth: str) -> tuple[float, float, float]:
    """Normalized (TP, FP, FN) of one page, so that every page weighs the same."""
    pred, gold = shingles(predicted), shingles(truth)
    tp = sum((pred & gold).values())
    fp = sum((pred - gold).values())
    fn = sum((gold - pred).values())
    total = tp + fp + fn
    return (tp / total, fp / total, fn / total) if total else (0.0, 0.0, 0.0)


def evaluate(predictions: dict[str, str], truth: dict[str, str]) -> dict[str, float]:
    """F1, precision, recall and accuracy of ``predictions`` (id -> text) on ``truth``."""
    precisions: list[float] = []
    recalls: list[float] = []
    exact = 0
    for page_id, gold in truth.items():
        predicted = predictions.get(page_id, "")
        tp, fp, fn = page_counts(predicted, gold)
        if fp == fn == 0:
            precisions.append(1.0)
            recalls.append(1.0)
        else:
            if tp + fp > 0:
                precisions.append(tp / (tp + fp))
            if tp + fn > 0:
                recalls.append(tp / (tp + fn))
        exact += _TOKEN.findall(predicted) == _TOKEN.findall(gold)
    precision = sum(precisions) / len(precisions)
    recall = sum(recalls) / len(recalls)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "f1": f1,
        "precision": precision,
        "recall": recall,
        "accuracy": exact / len(truth),
        "empty": sum(not predictions.get(i, "").strip() for i in truth),
    }


def decode_html(data: bytes) -> str:
    from ingest.loaders import decode_html

    return decode_html(data)


def _newsrag(html: str, url: str | None) -> str:
    from ingest.loaders import extract_html
    from rag.errors import LoaderError

    try:
        return extract_html(html, url=url).text
    except LoaderError:
        return ""


def _plain_trafilatura(html: str, url: str | None) -> str:
    import trafilatura

    return trafilatura.extract(html, url=url) or ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--worst", type=int, default=0, help="list the N worst pages of newsrag")
    parser.add_argument("--write", action="store_true", help="append to docs/BENCHMARKS.md")
    args = parser.parse_args(argv)
    truth_file = args.dataset / "ground-truth.json"
    if not truth_file.exists():
        print(f"no dataset at {args.dataset}", file=sys.stderr)
        return 2
    records = json.loads(truth_file.read_text(encoding="utf-8"))
    truth = {page_id: r["articleBody"] for page_id, r in records.items()}
    pages: dict[str, str] = {}
    for page_id in sorted(truth):
        raw = gzip.decompress((args.dataset / "html" / f"{page_id}.html.gz").read_bytes())
        pages[page_id] = decode_html(raw)

    extractors: dict[str, Callable[[str, str | None], str]] = {
        "newsrag": _newsrag,
        "trafilatura (defaults)": _plain_trafilatura,
    }
    rows: list[tuple[str, dict[str, float], float]] = []
    outputs: dict[str, dict[str, str]] = {}
    for name, extract in extractors.items():
        started = time.perf_counter()
        outputs[name] = {i: extract(html, records[i].get("url")) for i, html in pages.items()}
        rows.append((name, evaluate(outputs[name], truth), time.perf_counter() - started))

    header = (
        f"| extractor ({len(pages)} pages of {args.dataset.name}) "
        "| F1 | precision | recall | accuracy | no article | seconds |"
    )
    lines = [header, "|---|---|---|---|---|---|---|"]
    for name, m, seconds in rows:
        lines.append(
            f"| {name} | {m['f1']:.3f} | {m['precision']:.3f} | {m['recall']:.3f} "
            f"| {m['accuracy']:.3f} | {int(m['empty'])} | {seconds:.1f} |"
        )
    print("\n".join(lines))
    if args.worst:
        scored = []
        for page_id, gold in truth.items():
            tp, fp, fn = page_counts(outputs["newsrag"][page_id], gold)
            scored.append((tp, page_id, fp, fn))
        for tp, page_id, fp, fn in sorted(scored)[: args.worst]:
            print(f"{page_id[:12]} TP {tp:.3f} FP {fp:.3f} FN {fn:.3f}")
    if args.write:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        with REPORT.open("a", encoding="utf-8") as report:
            report.write(
                f"\n## Article extraction ({stamp})\n\n`python bench/extraction.py` "
                f"on {machine()}\n\n" + "\n".join(lines) + "\n"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
