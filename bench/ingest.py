"""Ingest benchmark: newsrag vs the LangChain-tutorial pipeline on the same documents.

    python bench/ingest.py [--limit N] [--backends onnx-int8,torch] [--no-tutorial]

Every system runs in its own fresh process (so peak RSS is its own) on a temporary copy
of the dev corpus: first ingest, then (newsrag) re-ingest unchanged, then re-ingest with
5% of the articles edited in place. Each first-ingest index is then asked the dev
questions whose gold articles it holds, for recall@5, so a faster embedding that
changes the vectors shows its quality cost in the same table.

The tutorial pipeline is the LangChain RAG tutorial's: RecursiveCharacterTextSplitter
(1000/200), HuggingFaceEmbeddings (the bundled all-MiniLM-L6-v2) and
Chroma.add_documents. It has no incremental mode: re-ingesting costs a first ingest.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import DEV, append_report, busy_note, markdown, peak_rss_mb, run_worker

EDIT_EVERY = 20  # every 20th article edited: 5%


# -- workers (each runs in its own process) -------------------------------------------


def _questions(dataset: Path, corpus: Path) -> list[Any]:
    """Dev questions whose gold articles are all in ``corpus``."""
    from rag.evaluation import load_questions

    ids = {json.loads(line)["id"] for line in corpus.open(encoding="utf-8") if line.strip()}
    return [q for q in load_questions(dataset) if set(q.gold_ids) <= ids]


def dir_mb(path: Path) -> float:
    """Bytes under ``path`` in MB: the library's footprint on disk (issue 13's target is
    at most 1.5x the tutorial's Chroma directory on the same articles)."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 1e6


def worker_newsrag(args: argparse.Namespace) -> dict[str, Any]:
    from rag.assistant import Assistant
    from rag.settings import Settings

    settings = Settings(
        _env_file=None,
        data_dir=args.data_dir,
        collection="bench",
        embedding_backend=args.backend,
        answer_mode="extractive",
    )
    started = time.perf_counter()
    assistant = Assistant.from_settings(settings)
    report = assistant.ingest([args.corpus])
    seconds = time.perf_counter() - started
    result: dict[str, Any] = {
        "seconds": seconds,
        "chunks": report.chunks_written,
        "embedded": report.chunks_embedded,
        "articles": len(report.added) + len(report.updated),
        "skipped": len(report.skipped) + len(report.duplicates),
        "rss_mb": peak_rss_mb(),
        "disk_mb": dir_mb(args.data_dir),
    }
    if args.recall:
        questions = _questions(args.dataset, args.corpus)
        hits = [
            any(
                h.article_id in q.gold_ids
                for h in assistant.search(q.question, as_of=q.date, top_k=5)
            )
            for q in questions
        ]
        result["recall_at_5"] = sum(hits) / len(hits) if hits else None
        result["questions"] = len(hits)
    return result


def worker_tutorial(args: argparse.Namespace) -> dict[str, Any]:
    import chromadb
    from chromadb.config import Settings as ChromaSettings
    from langchain_chroma import Chroma
    from langchain_core.documents import Document
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from rag.embeddings import resolve_model_path
    from rag.settings import BUNDLED_EMBEDDING_MODEL

    started = time.perf_counter()
    docs = []
    with args.corpus.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                meta = {"article_id": row["id"], "title": row.get("title", "")}
                docs.append(Document(page_content=row["text"], metadata=meta))
    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
    splits = splitter.split_documents(docs)
    embeddings = HuggingFaceEmbeddings(model_name=resolve_model_path(BUNDLED_EMBEDDING_MODEL))
    client = chromadb.PersistentClient(
        path=str(args.data_dir), settings=ChromaSettings(anonymized_telemetry=False)
    )
    store = Chroma(client=client, collection_name="tutorial", embedding_function=embeddings)
    for i in range(0, len(splits), 1000):  # Chroma caps one add at ~5000 records
        store.add_documents(splits[i : i + 1000])
    seconds = time.perf_counter() - started
    result: dict[str, Any] = {
        "seconds": seconds,
        "chunks": len(splits),
        "embedded": len(splits),
        "articles": len(docs),
        "rss_mb": peak_rss_mb(),
        "disk_mb": dir_mb(args.data_dir),
    }
    if args.recall:
        questions = _questions(args.dataset, args.corpus)
        hits = []
        for q in questions:
            ranked: list[str] = []
            for d in store.similarity_search(q.question, k=40):
                if d.metadata["article_id"] not in ranked:
                    ranked.append(d.metadata["article_id"])
            hits.append(any(a in q.gold_ids for a in ranked[:5]))
        result["recall_at_5"] = sum(hits) / len(hits) if hits else None
        result["questions"] = len(hits)
    return result


def warm_export(backend: str) -> None:
    """Export/quantize the ONNX model once, outside the timed runs (a one-time cost)."""
    if backend == "torch":
        return
    from rag.components import build_embeddings
    from rag.settings import Settings

    settings = Settings(_env_file=None, embedding_backend=backend)
    build_embeddings(settings).embed_query("warm up")


# -- the driver ------------------------------------------------------------------------


def make_corpus(source: Path, target: Path, limit: int | None, dataset: Path) -> int:
    """Copy the corpus (or ``limit`` articles of it: gold articles of the dev questions
    first, so recall@5 means something, then the others in file order)."""
    lines = [line for line in source.open(encoding="utf-8") if line.strip()]
    if limit:
        from rag.evaluation import load_questions

        gold = {g for q in load_questions(dataset) for g in q.gold_ids}
        ids = [json.loads(line)["id"] for line in lines]
        keep = {i for i, a in enumerate(ids) if a in gold}
        keep = set(sorted(keep)[:limit])
        for i in range(len(lines)):
            if len(keep) >= limit:
                break
            keep.add(i)
        lines = [line for i, line in enumerate(lines) if i in keep]
    target.write_text("".join(lines), encoding="utf-8")
    return len(lines)


def edit_corpus(path: Path) -> int:
    """Edit every EDIT_EVERY-th article in place (a correction appended): 5% changed."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    edited = 0
    for i in range(0, len(lines), EDIT_EVERY):
        row = json.loads(lines[i])
        row["text"] += (
            "\n\nCorrection: an earlier version of this story misstated a date. "
            f"This version was updated (benchmark edit {i})."
        )
        lines[i] = json.dumps(row, ensure_ascii=False) + "\n"
        edited += 1
    path.write_text("".join(lines), encoding="utf-8")
    return edited


def _worker_args(kind: str, corpus: Path, data_dir: Path, dataset: Path, **extra: Any) -> list[str]:
    args = [
        str(Path(__file__).resolve()),
        "--worker",
        kind,
        "--corpus",
        str(corpus),
        "--data-dir",
        str(data_dir),
        "--dataset",
        str(dataset),
    ]
    for key, value in extra.items():
        if value is True:
            args.append(f"--{key.replace('_', '-')}")
        elif value not in (None, False):
            args += [f"--{key.replace('_', '-')}", str(value)]
    return args


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, help="only N articles (gold articles first)")
    parser.add_argument("--dataset", type=Path, default=DEV, help="dev dataset directory")
    parser.add_argument(
        "--backends",
        default="onnx-int8,torch",
        help="newsrag embedding backends to run, comma-separated (default: onnx-int8,torch)",
    )
    parser.add_argument("--no-tutorial", action="store_true", help="skip the baseline")
    parser.add_argument("--keep", action="store_true", help="keep the indexes (printed)")
    parser.add_argument("--no-record", action="store_true", help="do not write BENCHMARKS.md")
    # worker mode
    parser.add_argument(
        "--worker", choices=["newsrag", "tutorial", "export"], help=argparse.SUPPRESS
    )
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="onnx-int8", help=argparse.SUPPRESS)
    parser.add_argument("--recall", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker == "export":
        warm_export(args.backend)
        print(json.dumps({"ok": True}))
        return 0
    if args.worker:
        work = worker_newsrag if args.worker == "newsrag" else worker_tutorial
        print(json.dumps(work(args)))
        return 0

    source = args.dataset / "corpus.jsonl"
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    note = busy_note()
    tmp = Path(tempfile.mkdtemp(prefix="newsrag-bench-ingest-"))
    corpus = tmp / "corpus.jsonl"
    n_articles = make_corpus(source, corpus, args.limit, args.dataset)
    print(f"corpus: {n_articles} articles in {corpus}", file=sys.stderr)

    results: dict[str, dict[str, Any]] = {}
    if not args.no_tutorial:
        print("tutorial pipeline: first ingest...", file=sys.stderr)
        results["tutorial"] = run_worker(
            _worker_args("tutorial", corpus, tmp / "tutorial", args.dataset, recall=True)
        )
    for backend in backends:
        run_worker(_worker_args("export", corpus, tmp, args.dataset, backend=backend))
        print(f"newsrag {backend}: first ingest...", file=sys.stderr)
        data = tmp / f"newsrag-{backend}"
        results[backend] = run_worker(
            _worker_args("newsrag", corpus, data, args.dataset, backend=backend, recall=True)
        )
    # Re-ingest with the first backend only (the default one): unchanged, then 5% edited.
    main_backend = backends[0]
    data = tmp / f"newsrag-{main_backend}"
    print(f"newsrag {main_backend}: re-ingest unchanged...", file=sys.stderr)
    unchanged = run_worker(
        _worker_args("newsrag", corpus, data, args.dataset, backend=main_backend)
    )
    edited_count = edit_corpus(corpus)
    print(f"newsrag {main_backend}: re-ingest with {edited_count} edited...", file=sys.stderr)
    edited = run_worker(_worker_args("newsrag", corpus, data, args.dataset, backend=main_backend))

    base = results.get("tutorial")

    def rate(r: dict[str, Any]) -> float:
        return r["chunks"] / r["seconds"] if r["seconds"] else 0.0

    def vs_base(r: dict[str, Any]) -> str:
        return f"{rate(r) / rate(base):.2f}x" if base else "n/a"

    def recall(r: dict[str, Any]) -> str:
        value = r.get("recall_at_5")
        return "n/a" if value is None else f"{value:.3f} ({r.get('questions', 0)} q)"

    header = [
        "run",
        "articles",
        "chunks",
        "embedded",
        "wall s",
        "chunks/s",
        "vs tutorial",
        "peak RSS MB",
        "disk MB",
        "recall@5",
    ]
    rows: list[list[Any]] = []
    if base:
        rows.append(
            [
                "LangChain tutorial (baseline), first ingest",
                base["articles"],
                base["chunks"],
                base["embedded"],
                f"{base['seconds']:.1f}",
                f"{rate(base):.1f}",
                "1.00x",
                f"{base['rss_mb']:.0f}",
                f"{base['disk_mb']:.1f}",
                recall(base),
            ]
        )
    for backend in backends:
        r = results[backend]
        rows.append(
            [
                f"newsrag {backend}, first ingest",
                r["articles"],
                r["chunks"],
                r["embedded"],
                f"{r['seconds']:.1f}",
                f"{rate(r):.1f}",
                vs_base(r),
                f"{r['rss_mb']:.0f}",
                f"{r['disk_mb']:.1f}"
                + (f" ({r['disk_mb'] / base['disk_mb']:.2f}x)" if base and base["disk_mb"] else ""),
                recall(r),
            ]
        )
    first = results[main_backend]
    for label, r in (
        ("re-ingest unchanged", unchanged),
        (f"re-ingest, {edited_count} edited (5%)", edited),
    ):
        speedup = first["seconds"] / r["seconds"] if r["seconds"] else 0.0
        rows.append(
            [
                f"newsrag {main_backend}, {label}",
                r["articles"],
                r["chunks"],
                r["embedded"],
                f"{r['seconds']:.1f}",
                f"{speedup:.0f}x faster than its first ingest",
                f"{base['seconds'] / r['seconds']:.0f}x faster than the tutorial re-embedding all"
                if base and r["seconds"]
                else "n/a",
                f"{r['rss_mb']:.0f}",
                "",
                "",
            ]
        )
    scope = f"{n_articles} articles" + (
        " (--limit: gold articles of the dev questions first)"
        if args.limit
        else " (full dev corpus)"
    )
    notes = [
        f"corpus: {scope}, copied to a temp file that the edit step changes in place",
        "each run is a fresh process; wall time includes loading the model and reading the "
        "file; the ONNX export is done (and cached) before the timed runs",
        "chunks differ by design: the tutorial splits 1000/200 characters, newsrag at "
        "sentence boundaries into <= 200 word pieces + 40 overlap, title prepended; "
        "'embedded' < 'chunks' when identical chunk texts were embedded once",
        "recall@5: dev questions whose gold articles are all in the corpus, asked as of "
        "their date (newsrag: hybrid search; tutorial: distinct articles of its top 40 chunks)",
        note,
    ]
    if not args.no_record:
        append_report(
            "Ingest", "ingest: newsrag vs LangChain tutorial", markdown(header, rows), notes
        )
    else:
        print(markdown(header, rows))
    if args.keep:
        print(f"indexes kept in {tmp}", file=sys.stderr)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
