"""The chat's library table at scale: one page of a 100,000-article library.

    python bench/library.py [--articles 100000] [--runs 5]

A temporary library is bulk-loaded with ``--articles`` synthetic article rows (complete,
with titles, outlets, URLs and dates; no chunks, no vectors: the table reads the rows
only). Each case (a search, a sort, a page) is then served through
``app.ChatApp.library_table``, the function the chat's "Articles in the library" view
calls, and through the path it replaced in the same run (the baseline): every record
read into Python, the added times read in a second query, then filtered, sorted and
sliced in Python. The page load's outlet counts (the sources filter's choices,
``app.ChatApp.source_choices``: a GROUP BY in the database) are timed the same way,
against counting every record read into Python. Figures are the median of ``--runs``
calls, after one warm-up call.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, append_report, busy_note, markdown, median

sys.path.insert(0, str(ROOT))  # bench/ingest.py would shadow the ingest package

from sqlalchemy import insert

from app import ChatApp
from rag.assistant import Assistant
from rag.components import build_embeddings, build_index
from rag.database import ARTICLES
from rag.library_view import PAGE_SIZE, LibraryRow
from rag.records import UNKNOWN_DAY, day_number
from rag.settings import Settings

WORDS = (
    "harbor council vote budget storm ferry strike bridge election court minister police "
    "hospital school river port union market energy water fire festival bank rail airport "
    "museum farm weather flood trade tax housing health army summit talks deal report"
).split()
OUTLETS = [f"outlet{n:02d}.example" for n in range(60)]
CASES = [  # (label, search, sort, page)
    ("first page, newest published", "", "published", 1),
    ("search one word, newest published", "harbor", "published", 1),
    ("search two words, title A-Z, page 3", "council vote", "title", 3),
    ("search an outlet, recently added", "outlet07", "added", 2),
    ("no search, most chunks, page 100", "", "chunks", 100),
    ("no search, most chunks, the middle page (the worst case)", "", "chunks", 2500),
    ("no search, oldest published, the last page", "", "published-asc", 5000),
    ("a search that matches nothing", "zanzibar", "published", 1),
]


def bulk_load(settings: Settings, n: int, seed: int = 7) -> float:
    """Insert ``n`` complete article rows (no chunks); returns the seconds it took."""
    rng = random.Random(seed)
    start_day = date(2020, 1, 1)
    now = time.time()
    index = build_index(settings)
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with index.records.transaction() as con:
        for i in range(n):
            day = None if rng.random() < 0.03 else start_day + timedelta(days=rng.randrange(2000))
            outlet = rng.choice(OUTLETS)
            title = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 9))).capitalize()
            rows.append(
                {
                    "article_id": f"bench-{i:06d}",
                    "title": f"{title} {i}",
                    "source": outlet,
                    "url": f"https://www.{outlet}/{i}",
                    "published": day.isoformat() if day else None,
                    "published_day": day_number(day) if day else UNKNOWN_DAY,
                    "origin": "bench",
                    "content_hash": f"{i:040d}",
                    "text_hash": f"{i:040d}",
                    "n_chunks": rng.randint(1, 30),
                    "status": "complete",
                    "updated_at": now - rng.random() * 86400 * 365,
                }
            )
            if len(rows) == 5000:
                con.execute(insert(ARTICLES), rows)
                rows = []
        if rows:
            con.execute(insert(ARTICLES), rows)
    seconds = time.perf_counter() - started
    index.close()
    return seconds


# -- the baseline: the load-everything path the table used before (verbatim logic) -------


def _added_times(db_path: Path) -> dict[str, datetime]:
    uri = f"{db_path.resolve().as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5)) as con:
        rows = con.execute("SELECT article_id, updated_at FROM articles").fetchall()
    return {str(a): datetime.fromtimestamp(float(t), UTC) for a, t in rows if t is not None}


def _newest_first(day: date | datetime | None) -> tuple[int, float]:
    if day is None:
        return (1, 0.0)
    if isinstance(day, datetime):
        return (0, -day.timestamp())
    return (0, -float(day.toordinal()))


def _oldest_first(day: date | None) -> tuple[int, float]:
    return (1, 0.0) if day is None else (0, float(day.toordinal()))


_OLD_SORTS: dict[str, Callable[[LibraryRow], Any]] = {
    "published": lambda r: (_newest_first(r.published), r.title.lower()),
    "published-asc": lambda r: (_oldest_first(r.published), r.title.lower()),
    "added": lambda r: (_newest_first(r.added), r.title.lower()),
    "title": lambda r: (r.title.lower(), r.article_id),
    "chunks": lambda r: (-r.chunks, r.title.lower()),
}


def baseline_table(chat: ChatApp, query: str, sort: str, page: int) -> Sequence[LibraryRow]:
    """One page as the table served it before: all rows to Python, then a slice."""
    added = _added_times(chat.settings.index_db_path)
    rows = [
        LibraryRow(
            r.article_id,
            r.title,
            chat.outlet_of(r),
            r.published,
            added.get(r.article_id),
            r.n_chunks,
        )
        for r in chat.assistant.articles()
    ]
    words = query.lower().split()
    matching = [r for r in rows if all(w in f"{r.title} {r.outlet}".lower() for w in words)]
    matching.sort(key=_OLD_SORTS[sort])
    pages = max(1, -(-len(matching) // PAGE_SIZE))
    page = min(max(1, page), pages)
    start = (page - 1) * PAGE_SIZE
    return matching[start : start + PAGE_SIZE]


def baseline_outlets(chat: ChatApp) -> list[tuple[str, str]]:
    """The sources filter's choices as the page load made them before: every record read
    into Python and counted by its outlet there."""
    counts = Counter(chat.outlet_of(r) for r in chat.assistant.articles())
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [(f"{outlet} ({n})", outlet) for outlet, n in ranked]


def _count(label: str) -> int:
    """The article count of a choice label, ``outlet07.example (1654)`` -> 1654."""
    return int(label.rsplit("(", 1)[1].rstrip(")"))


def _timed(call: Callable[[], Any], runs: int) -> tuple[float, Any]:
    result = call()  # warm-up (and the result to compare)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return median(times), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-report", action="store_true", help="print, do not write docs/")
    args = parser.parse_args(argv)
    note = busy_note()
    workdir = Path(tempfile.mkdtemp(prefix="newsrag-bench-library-"))
    try:
        settings = Settings(_env_file=None, data_dir=workdir / "data")  # type: ignore[call-arg]
        load_seconds = bulk_load(settings, args.articles)
        index = build_index(settings)
        assistant = Assistant(settings, index, build_embeddings(settings))  # never embeds here
        chat = ChatApp(assistant, workdir / "uploads", temp_dir=workdir / "tmp")
        table_rows = []
        for label, query, sort, page in CASES:
            new_ms, (_rows, line, ids, _shown) = _timed(
                lambda q=query, s=sort, p=page: chat.library_table(q, s, p), args.runs
            )
            old_ms, old_rows = _timed(
                lambda q=query, s=sort, p=page: baseline_table(chat, q, s, p),
                max(1, args.runs // 2),
            )
            # The baseline broke ties of a date or count by title, the database by id.
            same = "yes" if ids == [r.article_id for r in old_rows] else "ties ordered by id"
            table_rows.append(
                [label, f"`{query}`" if query else "", line, f"{new_ms:.1f}", f"{old_ms:.0f}", same]
            )
            print(table_rows[-1], flush=True)
        # The page load (and every ingest, delete and undo) also counts the articles by
        # outlet for the sources filter: a GROUP BY in the database, against the old path.
        new_ms, choices = _timed(chat.source_choices, args.runs)
        old_ms, old_choices = _timed(lambda: baseline_outlets(chat), max(1, args.runs // 2))
        table_rows.append(
            [
                "page load: outlet counts of the sources filter",
                "",
                f"{len(choices)} outlets, {sum(_count(label) for label, _ in choices):,} articles",
                f"{new_ms:.1f}",
                f"{old_ms:.0f}",
                "yes" if choices == old_choices else "no",
            ]
        )
        print(table_rows[-1], flush=True)
        index.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    table = markdown(
        [
            "case",
            "search",
            "table line",
            "ms, ChatApp.library_table / source_choices (median)",
            "ms, baseline: load everything (median)",
            "same rows as the baseline",
        ],
        table_rows,
    )
    notes = [
        f"{args.articles:,} article rows bulk-loaded in {load_seconds:.1f} s (SQLite file, "
        "no chunks or vectors); 20 rows a page",
        f"median of {args.runs} calls (baseline: {max(1, args.runs // 2)}) after a warm-up",
        note,
    ]
    if args.no_report:
        print(table)
        print("\n".join(notes))
    else:
        append_report("Library table", "One page of a 100,000-article library", table, notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
