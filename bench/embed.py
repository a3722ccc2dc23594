"""Embedding throughput of the three backends on the same dev-corpus chunks.

    python bench/embed.py [--chunks 256]

Isolates the model from the rest of ingest: the first ``--chunks`` newsrag chunks
(title + text, <= 200 word pieces) of the dev corpus, embedded by torch
(sentence-transformers), ONNX fp32 and ONNX int8, each after a warm-up, in one process.
Cosine to the torch vectors shows what each speed-up costs in agreement.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import DEV, append_report, busy_note, markdown


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=256, help="chunks to embed")
    parser.add_argument("--dataset", type=Path, default=DEV, help="dev dataset directory")
    parser.add_argument("--no-record", action="store_true", help="do not write BENCHMARKS.md")
    args = parser.parse_args()

    from ingest.pipeline import embedding_text
    from ingest.splitter import SentenceSplitter
    from rag.components import build_embeddings
    from rag.records import Article
    from rag.settings import Settings

    note = busy_note()
    backends = ["torch", "onnx", "onnx-int8"]
    models = {b: build_embeddings(Settings(_env_file=None, embedding_backend=b)) for b in backends}
    splitter = SentenceSplitter(models["onnx-int8"].token_counter(), chunk_tokens=200)
    texts: list[str] = []
    with (args.dataset / "corpus.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            article = Article(row["id"], row["title"], row["text"], row["source"], row["id"])
            texts += [embedding_text(article.title, c.text) for c in splitter.split(article)]
            if len(texts) >= args.chunks:
                break
    texts = texts[: args.chunks]
    vectors: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    for backend in backends:
        models[backend].embed_documents(texts[:16])  # load + warm up
        started = time.perf_counter()
        vectors[backend] = np.asarray(models[backend].embed_documents(texts))
        seconds[backend] = time.perf_counter() - started
    rows = []
    for backend in backends:
        cos = (vectors[backend] * vectors["torch"]).sum(axis=1)
        rows.append(
            [
                backend,
                len(texts),
                f"{seconds[backend]:.1f}",
                f"{len(texts) / seconds[backend]:.1f}",
                f"{seconds['torch'] / seconds[backend]:.2f}x",
                f"{cos.mean():.5f}",
                f"{cos.min():.5f}",
            ]
        )
    header = ["backend", "chunks", "s", "chunks/s", "vs torch", "cos to torch, mean", "min"]
    notes = ["chunks: newsrag's own (title + <= 200 word pieces) from the dev corpus", note]
    table = markdown(header, rows)
    if args.no_record:
        print(table)
    else:
        append_report("Ingest", "embedding throughput by backend", table, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
