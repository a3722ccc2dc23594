"""The ``newsrag`` command line: ingest, ask, serve, stats, check, eval.

Exit codes: 0 success, 1 failure (one-line message on stderr), 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy.exc import OperationalError

from rag.errors import NewsragError, QuestionError
from rag.settings import Settings

if TYPE_CHECKING:
    from rag.assistant import Assistant
    from rag.records import Answer

logger = logging.getLogger("newsrag")


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        msg = f"not a date (YYYY-MM-DD): {text!r}"
        raise argparse.ArgumentTypeError(msg) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="newsrag",
        description="Ask questions about news articles; answers cite their sources.",
    )
    parser.add_argument("--data-dir", type=Path, help="index directory (default: ./data)")
    parser.add_argument("--collection", help="Chroma collection name (default: news)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ingest = sub.add_parser("ingest", help="add or update articles from files and directories")
    ingest.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    ingest.add_argument("--prune", action="store_true", help="remove articles whose file is gone")
    ingest.add_argument("--reset", action="store_true", help="empty the index first")

    ask = sub.add_parser("ask", help="answer a question from the ingested articles")
    ask.add_argument("question")
    ask.add_argument(
        "--as-of",
        type=_date,
        help="the date the question is asked (YYYY-MM-DD; default today): 'last week' and "
        "recency count from it, later articles are left out",
    )
    ask.add_argument("--source", action="append", default=[], help="only this source (repeat)")
    ask.add_argument("--from", dest="date_from", type=_date, help="published on or after")
    ask.add_argument("--to", dest="date_to", type=_date, help="published on or before")
    ask.add_argument("--json", action="store_true", help="print the answer as JSON")

    serve = sub.add_parser("serve", help="open the chat in the browser (ingests seeds/ if empty)")
    serve.add_argument("--host", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 7860)")
    serve.add_argument("--no-browser", action="store_true", help="do not open a browser tab")

    sub.add_parser("stats", help="what is in the index")

    check = sub.add_parser("check", help="read back every stored vector; --repair fixes")
    check.add_argument(
        "--repair",
        action="store_true",
        help="restore lost vectors, drop orphan ones, finish unfinished articles",
    )

    migrate = sub.add_parser(
        "migrate",
        help="copy the library's records to a shared database (e.g. Postgres)",
        description="Copy articles, chunks, BM25 postings, the embedding cache and the "
        "library state into the database at --to; with --chroma-host, also copy embedded "
        "vectors to a Chroma server. Then run with NEWSRAG_DATABASE_URL (and CHROMA_HOST) "
        "set to them (docs/DEPLOY.md).",
    )
    migrate.add_argument(
        "--to", required=True, metavar="URL", help="postgresql+psycopg://USER:PASSWORD@HOST/DB"
    )
    migrate.add_argument("--chroma-host", help="copy the vectors to this Chroma server")
    migrate.add_argument("--chroma-port", type=int, default=8000, help="its port (8000)")
    migrate.add_argument(
        "--replace", action="store_true", help="overwrite a target that holds a library"
    )

    ev = sub.add_parser("eval", help="measure retrieval and answers on a QA dataset")
    ev.add_argument("dataset", type=Path, metavar="DATASET_DIR")
    ev.add_argument("--limit", type=int, help="only the first N questions")
    ev.add_argument("--mode", choices=["extractive", "llm"], default="extractive")
    ev.add_argument("--out", type=Path, default=Path("eval-results"), help="results directory")
    ev.add_argument("--no-anchors", action="store_true", help="skip the BM25/tutorial anchors")
    ev.add_argument("--no-abstention", action="store_true", help="skip the no-answer variant")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``newsrag`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = _settings(args)
        return _run(args, settings)
    except QuestionError as exc:
        print(f"newsrag: {exc}", file=sys.stderr)
        return 2
    except NewsragError as exc:
        print(f"newsrag: error: {exc}", file=sys.stderr)
        return 1
    except OperationalError as exc:  # the record database went away during the command
        reason = " ".join(str(exc.orig or exc).split())
        print(f"newsrag: error: the record database failed: {reason}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("newsrag: interrupted", file=sys.stderr)
        return 130


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    if args.collection:
        overrides["collection"] = args.collection
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        errors = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        print(f"newsrag: invalid settings: {errors}", file=sys.stderr)
        raise SystemExit(2) from None
    settings.apply_privacy_defaults()
    return settings


def _assistant(settings: Settings) -> Assistant:
    from rag.assistant import Assistant

    return Assistant.from_settings(settings)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "ingest":
        return _ingest(args, settings)
    if args.command == "ask":
        return _ask(args, settings)
    if args.command == "serve":
        from app import launch

        launch(settings, host=args.host, port=args.port, open_browser=not args.no_browser)
        return 0
    if args.command == "stats":
        return _stats(settings)
    if args.command == "check":
        return _check(args, settings)
    if args.command == "migrate":
        return _migrate(args, settings)
    if args.command == "eval":
        from rag.evaluation import run_cli

        return run_cli(args, settings)
    raise AssertionError(args.command)  # argparse only accepts the commands above


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing and len(missing) == len(args.paths):
        print(f"newsrag: no such file or directory: {', '.join(missing)}", file=sys.stderr)
        return 2
    assistant = _assistant(settings)
    report = assistant.ingest(
        args.paths, prune=args.prune, reset=args.reset, show_progress=sys.stderr.isatty()
    )
    for line in report.details():
        print(line)
    print(report.summary())
    return 1 if report.failed else 0


def _ask(args: argparse.Namespace, settings: Settings) -> int:
    from rag.store import Filters

    assistant = _assistant(settings)
    if assistant.index.is_empty():
        print("newsrag: the index is empty: run `newsrag ingest PATH` first", file=sys.stderr)
        return 1
    filters = Filters(tuple(args.source), args.date_from, args.date_to)
    answer = assistant.ask(args.question, as_of=args.as_of, filters=filters)
    if args.json:
        print(json.dumps(answer_to_dict(answer), indent=2, ensure_ascii=False))
    else:
        print(format_answer(answer))
    return 0


def _stats(settings: Settings) -> int:
    from rag.components import build_index
    from rag.database import redacted

    index = build_index(settings)
    stats = index.stats()
    where = (
        f"{settings.chroma_host}:{settings.chroma_port}"
        if settings.chroma_host
        else str(settings.data_dir)
    )
    print(f"index: {where} (collection {settings.collection})")
    if settings.shared_database:
        print(f"records: {redacted(settings.resolved_database_url)}")
    print(f"articles: {stats.articles}")
    print(f"chunks: {stats.chunks}")
    if stats.pending:
        print(f"unfinished articles (the next ingest repairs them): {stats.pending}")
    check = stats.vector_check
    if check is None:
        print("vectors: not checked yet (run `newsrag check`)")
    else:
        when = datetime.fromtimestamp(check.at).strftime("%Y-%m-%d %H:%M")
        scope = "whole library" if check.scope == "library" else "last ingest"
        state = f"{check.missing:,} missing" if check.missing else "none missing"
        print(f"vectors: {state} ({scope}, {check.checked_chunks:,} chunks checked {when})")
    if stats.newest:
        print("newest: " + ", ".join(d.isoformat() for d in stats.newest))
    for source, count in stats.sources[:10]:
        print(f"  {count:6d}  {source}")
    return 0


def _check(args: argparse.Namespace, settings: Settings) -> int:
    assistant = _assistant(settings)
    result = assistant.check(repair=args.repair)
    for line in result.lines():
        print(line)
    if result.repair_report is not None:
        print(result.repair_report.summary())
    if result.repaired:
        return 0 if not assistant.index.missing_vectors() else 1
    return 0 if result.ok else 1


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from rag.components import build_index, build_vector_index
    from rag.migrate import copy_records, copy_vectors

    source = build_index(settings)
    if source.pending_ids():
        print(
            "newsrag: the library has unfinished articles: run `newsrag check --repair` "
            "before migrating",
            file=sys.stderr,
        )
        return 1
    rows = copy_records(settings.resolved_database_url, args.to, replace=args.replace)
    for table, n in rows.items():
        print(f"{table}: {n:,} rows copied")
    target_settings = settings.model_copy(update={"database_url": args.to})
    if args.chroma_host:
        if settings.chroma_host:
            print("newsrag: the vectors are on a Chroma server already", file=sys.stderr)
            return 2
        target_settings = target_settings.model_copy(
            update={"chroma_host": args.chroma_host, "chroma_port": args.chroma_port}
        )
        copied = copy_vectors(source.vectors, build_vector_index(target_settings))
        print(f"vectors: {copied:,} copied to {args.chroma_host}:{args.chroma_port}")
    target = build_index(target_settings)
    missing = target.missing_vectors()
    if missing:
        print(
            f"newsrag: {len(missing):,} chunks have no vector where the migrated library "
            "looks for them: run with the same Chroma (or pass --chroma-host)",
            file=sys.stderr,
        )
        return 1
    print(f"done: {target.stats().articles:,} articles; set NEWSRAG_DATABASE_URL to use them")
    return 0


def format_answer(answer: Answer) -> str:
    """The answer, when it was asked and what it searched, and its numbered sources."""
    lines = [answer.text]
    from rag.dates import answer_when

    when = answer_when(answer)
    if when:
        lines += ["", when]
    if answer.search_query:
        lines.append(f"(searched for: {answer.search_query})")
    if answer.sources:
        lines.append("")
        lines.append("Sources:")
    for s in answer.sources:
        published = f", {s.published.isoformat()}" if s.published else ""
        lines.append(f"[{s.number}] {s.title}{published}")
        lines.append(f"    {s.link}")
        lines.append(f'    "{" ".join(s.passage.split())}"')
    return "\n".join(lines)


def answer_to_dict(answer: Answer) -> dict[str, Any]:
    window = answer.window
    return {
        "question": answer.question,
        "text": answer.text,
        "found": answer.found,
        "mode": answer.mode,
        "as_of": answer.as_of.isoformat() if answer.as_of else None,
        "window": None
        if window is None
        else {
            "start": window.start.isoformat() if window.start else None,
            "end": window.end.isoformat(),
            "label": window.label,
            "phrase": window.phrase,
            "strict": window.strict,
        },
        "search_query": answer.search_query,
        "sources": [
            {
                **{k: v for k, v in asdict(s).items() if k not in ("published", "highlights")},
                "published": s.published.isoformat() if s.published else None,
                "highlights": list(s.highlights),
            }
            for s in answer.sources
        ],
    }


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
