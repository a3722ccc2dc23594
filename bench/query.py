"""Query benchmark: warm ``ask()`` latency, cold ``newsrag ask``, memory of the app.

    python bench/query.py --data-dir DIR --collection NAME [--backend onnx-int8]

Needs an index of the dev corpus: e.g. the one the eval harness builds in ``data/``
(``newsrag eval ../shared/eval/rtqa-dev`` names it ``eval-rtqa-dev-<hash>``), or one
kept by ``python bench/ingest.py --keep``. It is only read.

- warm: one ``Assistant`` asks every dev question (extractive mode, ``as_of`` = the
  question's date) after three warm-up questions: p50/p95/p99 of ``ask()``, and of
  ``search()`` alone;
- cold: ``newsrag ask "..."`` as a fresh process, median of 3, and its peak RSS;
- app: peak RSS of ``newsrag serve`` once it answers HTTP, and of this process after all
  warm questions.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    DEV,
    PYTHON,
    append_report,
    busy_note,
    free_port,
    markdown,
    median,
    peak_rss_mb,
    percentile,
)

NEWSRAG = str(Path(PYTHON).parent / "newsrag")


def _vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return 0.0


def serve_rss(env: dict[str, str], args: argparse.Namespace) -> float | None:
    """Peak RSS of ``newsrag serve`` after it starts answering (None if it did not)."""
    port = free_port()
    proc = subprocess.Popen(
        [
            NEWSRAG,
            "--data-dir",
            str(args.data_dir),
            "--collection",
            args.collection,
            "serve",
            "--port",
            str(port),
            "--no-browser",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
                    break
            except Exception:
                time.sleep(0.5)
        else:
            return None
        time.sleep(1.0)
        return _vm_hwm_mb(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="index directory")
    parser.add_argument("--collection", required=True, help="collection of the dev corpus")
    parser.add_argument("--dataset", type=Path, default=DEV, help="dev dataset directory")
    parser.add_argument(
        "--backend",
        default="onnx-int8",
        choices=["torch", "onnx", "onnx-int8"],
        help="embedding backend for the questions (default: onnx-int8)",
    )
    parser.add_argument("--limit", type=int, help="only the first N questions")
    parser.add_argument("--no-serve", action="store_true", help="skip the serve RSS probe")
    parser.add_argument("--no-record", action="store_true", help="do not write BENCHMARKS.md")
    args = parser.parse_args()

    from rag.assistant import Assistant
    from rag.evaluation import load_questions
    from rag.settings import Settings

    note = busy_note()
    env = {
        **os.environ,
        "NEWSRAG_EMBEDDING_BACKEND": args.backend,
        "NEWSRAG_ANSWER_MODE": "extractive",
    }
    settings = Settings(
        _env_file=None,
        data_dir=args.data_dir,
        collection=args.collection,
        embedding_backend=args.backend,
        answer_mode="extractive",
    )
    questions = load_questions(args.dataset, args.limit)
    assistant = Assistant.from_settings(settings)
    stats = assistant.stats()
    if stats.chunks == 0:
        print(f"bench: {args.data_dir} / {args.collection} is empty", file=sys.stderr)
        return 1
    for q in questions[:3]:
        assistant.ask(q.question, as_of=q.date)
    ask_ms: list[float] = []
    search_ms: list[float] = []
    # The assistant remembers question vectors: forget them so each timed call embeds
    # its question, as a new question does.
    forget = getattr(assistant.embeddings, "forget_queries", lambda: None)
    for q in questions:
        forget()
        started = time.perf_counter()
        assistant.search(q.question, as_of=q.date)
        search_ms.append((time.perf_counter() - started) * 1000)
        forget()
        started = time.perf_counter()
        assistant.ask(q.question, as_of=q.date)
        ask_ms.append((time.perf_counter() - started) * 1000)
    warm_rss = peak_rss_mb()

    cold: list[float] = []
    cold_q = questions[0]
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run(
            [
                NEWSRAG,
                "--data-dir",
                str(args.data_dir),
                "--collection",
                args.collection,
                "ask",
                cold_q.question,
                "--as-of",
                str(cold_q.date),
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        cold.append(time.perf_counter() - started)
    cold_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    app_rss = None if args.no_serve else serve_rss(env, args)

    def row(label: str, values: list[float], target: str) -> list[Any]:
        return [
            label,
            len(values),
            f"{percentile(values, 50):.1f}",
            f"{percentile(values, 95):.1f}",
            f"{percentile(values, 99):.1f}",
            target,
        ]

    header = ["measure", "n", "p50", "p95", "p99", "target"]
    rows: list[list[Any]] = [
        row("warm ask(), ms", ask_ms, "p50 <= 60, p95 <= 200"),
        row("warm search() alone, ms", search_ms, ""),
        [
            "cold `newsrag ask`, s (fresh process)",
            3,
            f"{median(cold):.2f} (median)",
            "",
            f"{max(cold):.2f} (max)",
            "<= 4 s",
        ],
        ["peak RSS: cold `newsrag ask`, MB", 3, f"{cold_rss:.0f}", "", "", ""],
        ["peak RSS: this process after warm asks, MB", 1, f"{warm_rss:.0f}", "", "", "<= 1200"],
        [
            "peak RSS: `newsrag serve` after start, MB",
            1,
            "n/a" if app_rss is None else f"{app_rss:.0f}",
            "",
            "",
            "<= 1200",
        ],
    ]
    notes = [
        f"index: {args.data_dir} collection {args.collection}: {stats.articles} articles, "
        f"{stats.chunks} chunks; extractive answers; query embedding backend {args.backend}",
        f"questions: {len(questions)} dev questions, each asked as of its date",
        f"cold question: {json.dumps(cold_q.question)}",
        note,
    ]
    table = markdown(header, rows)
    if args.no_record:
        print(table)
    else:
        append_report("Query", "query latency and memory", table, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
