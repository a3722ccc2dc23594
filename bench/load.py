"""Load benchmark: concurrent chat clients against the running app while an ingest runs.

Starts ``newsrag serve`` on a free loopback port with a temporary index (seeds/ ingested),
then drives it through its real API with ``gradio_client``: ``--clients`` threads ask
``--questions`` questions in total (the RealTime QA dev questions when the dataset is
there, else questions about the seed article) while another client uploads a JSONL batch
of articles. Prints latency percentiles and appends them to docs/RELIABILITY.md.

    python bench/load.py [--clients 20] [--questions 200] [--ingest-articles 200]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    DEV,
    ROOT,
    busy_note,
    command_line,
    free_port,
    machine,
    markdown,
    percentile,
    wait_for_http,
)

REPORT = ROOT / "docs" / "RELIABILITY.md"
SEED_QUESTIONS = [
    "what did Meloni propose?",
    "What did Zelenskyy suggest as an alternative to NATO membership?",
    "What does NATO's Article 5 say?",
    "Who said the US does not see Ukraine's NATO membership as realistic?",
    "who won the 2022 World Cup?",
]


def _questions(n: int) -> list[str]:
    path = DEV / "questions.jsonl"
    pool = SEED_QUESTIONS
    if path.exists():
        pool = [json.loads(line)["question"] for line in path.open() if line.strip()]
    return [pool[i % len(pool)] for i in range(n)]


def _ingest_batch(folder: Path, n: int) -> Path | None:
    corpus = DEV / "corpus.jsonl"
    if not corpus.exists():
        return None
    target = folder / "batch.jsonl"  # a temporary copy, never part of the project
    with corpus.open() as src, target.open("w") as dst:
        for i, line in enumerate(src):
            if i >= n:
                break
            dst.write(line)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--ingest-articles", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=1800, help="stop after this many s")
    args = parser.parse_args()

    from gradio_client import Client, handle_file

    workdir = Path(tempfile.mkdtemp(prefix="newsrag-load-"))
    port = free_port()
    env = {**os.environ, "NEWSRAG_DATA_DIR": str(workdir / "data"), "NEWSRAG_PORT": str(port)}
    note_load = busy_note()
    server = subprocess.Popen(
        [sys.executable, "-m", "rag.cli", "serve", "--no-browser"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(workdir / "server.log", "w"),  # noqa: SIM115 - closed with the process
    )
    results: list[dict[str, Any]] = []
    lock = threading.Lock()
    try:
        wait_for_http(f"http://127.0.0.1:{port}/", 300)
        questions = _questions(args.questions)
        queue = list(enumerate(questions))
        deadline = time.monotonic() + args.timeout

        def worker() -> None:
            client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            while time.monotonic() < deadline:
                with lock:
                    if not queue:
                        return
                    i, question = queue.pop()
                started = time.perf_counter()
                try:
                    # Inputs of the API: question, chat, sources, date from, date to (the
                    # per-session state is not part of it).
                    out = client.predict(question, [], [], "", "", api_name="/respond")
                    text = str(out[0][-1]["content"]) if out and out[0] else ""
                    ok = bool(text) and "Searching" not in text and "⚠" not in text
                    error = "" if ok else text[:200]
                except Exception as exc:  # a lost or failed request is a result too
                    ok, error = False, f"{type(exc).__name__}: {exc}"[:200]
                with lock:
                    results.append(
                        {"i": i, "ok": ok, "seconds": time.perf_counter() - started, "error": error}
                    )

        ingest_report = "none"
        batch = _ingest_batch(workdir, args.ingest_articles)

        def ingester() -> None:
            nonlocal ingest_report
            if batch is None:
                return
            client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            started = time.perf_counter()
            out = client.predict([handle_file(str(batch))], api_name="/on_upload")
            took = time.perf_counter() - started
            first = str(out[0]).splitlines()[0].replace("\\", "").strip("*")
            ingest_report = f"{first[:160]} in {took:.0f}s"

        threads = [threading.Thread(target=worker) for _ in range(args.clients)]
        ingest_thread = threading.Thread(target=ingester)
        wall = time.perf_counter()
        ingest_thread.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - wall
        ingest_thread.join(timeout=args.timeout)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()

    latencies = [r["seconds"] for r in results if r["ok"]]
    failed = [r for r in results if not r["ok"]]
    lost = args.questions - len(results)
    rows = [
        [
            args.clients,
            args.questions,
            len(latencies),
            len(failed),
            lost,
            f"{percentile(latencies, 50):.2f}" if latencies else "n/a",
            f"{percentile(latencies, 95):.2f}" if latencies else "n/a",
            f"{len(results) / wall:.1f}",
        ]
    ]
    table = markdown(
        ["clients", "questions", "answered", "failed", "lost", "p50 s", "p95 s", "answers/s"],
        rows,
    )
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    notes = [
        f"command: `{command_line()}`",
        f"machine: {machine()}",
        note_load,
        f"concurrent ingest (upload of {args.ingest_articles} dev articles): {ingest_report}",
    ]
    notes += [f"failure: {r['error']}" for r in failed[:5]]
    block = "\n".join([f"### Load run ({stamp})", "", *[f"- {n}" for n in notes], "", table, ""])
    print(block)
    text = REPORT.read_text(encoding="utf-8")
    REPORT.write_text(text.rstrip("\n") + "\n\n" + block, encoding="utf-8")
    return 0 if not failed and not lost else 1


if __name__ == "__main__":
    sys.exit(main())
