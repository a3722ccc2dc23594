"""The ``newsrag`` command line: ingest, ask, serve, stats, check, eval, feeds, watch.

Exit codes: 0 success, 1 failure (one-line message on stderr), 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy.exc import OperationalError

from rag.errors import NewsragError, QuestionError
from rag.records import also_reported_by, answer_to_dict
from rag.settings import Settings

if TYPE_CHECKING:
    from ingest.web import WebIngestor
    from ingest.webstate import FeedState
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

    ingest = sub.add_parser(
        "ingest", help="add or update articles from files, directories and web pages (URLs)"
    )
    ingest.add_argument("paths", nargs="+", metavar="PATH_OR_URL")
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
    ev.add_argument("--no-abstention", action="store_true", help="skip the no-answer variants")
    ev.add_argument(
        "--story-gold",
        action="store_true",
        help="also score with a story as gold when any of its members is",
    )
    ev.add_argument(
        "--answer-gold",
        action="store_true",
        help="also score with every article that holds the answer as gold",
    )
    ev.add_argument(
        "--conversations",
        nargs="?",
        const="default",
        metavar="FILE",
        help="two-turn conversations to score (no FILE: the project's evals/conversations.jsonl; "
        "default: DATASET_DIR/conversations.jsonl when it exists)",
    )
    ev.add_argument(
        "--undated",
        action="store_true",
        help="also ask with time words made explicit and no as-of date",
    )
    ev.add_argument(
        "--split-weeks", action="store_true", help="report each half of the dataset's weeks"
    )
    ev.add_argument(
        "--grid",
        action="append",
        metavar="NAME=V1,V2",
        help="settings to try (repeat): chosen on one half of the weeks, reported on the other",
    )

    feeds = sub.add_parser("feeds", help="follow RSS and Atom feeds (see `newsrag watch`)")
    feeds_sub = feeds.add_subparsers(dest="feeds_command", required=True, metavar="ACTION")
    feeds_add = feeds_sub.add_parser("add", help="follow a feed (checked by fetching it)")
    feeds_add.add_argument("url", metavar="URL")
    feeds_sub.add_parser("list", help="the followed feeds, their last fetch and new articles")
    feeds_remove = feeds_sub.add_parser("remove", help="stop following a feed")
    feeds_remove.add_argument("url", metavar="URL")

    watch = sub.add_parser("watch", help="poll the feeds and ingest their new articles")
    watch.add_argument(
        "--every",
        type=_duration,
        help="time between polls, e.g. 30m, 2h, 90s (default NEWSRAG_WATCH_EVERY_MINUTES)",
    )
    watch.add_argument("--once", action="store_true", help="poll once, then exit")
    fb = sub.add_parser("feedback", help="the chat's answer ratings")
    fb_sub = fb.add_subparsers(dest="feedback_command", required=True, metavar="ACTION")
    fb_export = fb_sub.add_parser(
        "export", help="write rated answers as a dataset that `newsrag eval DIR` runs"
    )
    fb_export.add_argument("out", type=Path, metavar="DIR")
    return parser


def _duration(text: str) -> float:
    """Seconds in ``30m``, ``2h``, ``1h30m``, ``90s`` or a bare number of minutes."""
    value = text.strip().lower()
    try:
        return float(value) * 60
    except ValueError:
        pass
    match = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", value)
    if not value or match is None:
        msg = f"not a duration (like 30m, 2h, 90s): {text!r}"
        raise argparse.ArgumentTypeError(msg)
    hours, minutes, seconds = (float(part) if part else 0.0 for part in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        msg = f"the duration must be positive: {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return total


# The loggers whose user-facing INFO lines the terminal shows without -v.
USER_FACING_LOGGERS = ("rag.onnx_embeddings", "app")


class UserLines(logging.Formatter):
    """A record logged with ``extra={"user_facing": True}`` as one plain ``newsrag: ...``
    line (something expected the user should know, not a problem); the rest as usual.

    >>> record = logging.makeLogRecord({"msg": "Preparing the model", "user_facing": True})
    >>> UserLines("%(levelname)s %(name)s: %(message)s").format(record)
    'newsrag: Preparing the model'
    """

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "user_facing", False):
            return f"newsrag: {record.getMessage()}"
        return super().format(record)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``newsrag`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    terminal = logging.StreamHandler()
    terminal.setFormatter(UserLines("%(levelname)s %(name)s: %(message)s"))
    if not args.verbose:
        # Expected first-run events (preparing the bundled model, ingesting seeds/) are
        # plain INFO lines marked user_facing; other INFO stays quiet without -v.
        terminal.addFilter(
            lambda r: r.levelno >= logging.WARNING or bool(getattr(r, "user_facing", False))
        )
        for name in USER_FACING_LOGGERS:
            logging.getLogger(name).setLevel(logging.INFO)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, handlers=[terminal]
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
    if args.command == "feeds":
        return _feeds(args, settings)
    if args.command == "watch":
        return _watch(args, settings)
    if args.command == "feedback":
        return _feedback_export(args, settings)
    raise AssertionError(args.command)  # argparse only accepts the commands above


def _is_url(text: str) -> bool:
    return text.lower().startswith(("http://", "https://"))


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    urls = [p for p in args.paths if _is_url(p)]
    paths = [Path(p) for p in args.paths if not _is_url(p)]
    missing = [str(p) for p in paths if not p.exists()]
    if missing and len(missing) == len(args.paths):
        print(f"newsrag: no such file or directory: {', '.join(missing)}", file=sys.stderr)
        return 2
    assistant = _assistant(settings)
    failed = False
    if paths or args.reset:
        report = assistant.ingest(
            paths, prune=args.prune, reset=args.reset, show_progress=sys.stderr.isatty()
        )
        for line in report.details():
            print(line)
        print(report.summary())
        failed = bool(report.failed)
    if urls:
        with _web(assistant, settings) as web:
            url_report = web.ingest_urls(urls)
        for outcome in url_report.outcomes:
            print(outcome)
        print(f"web pages: {url_report.summary()}")
        failed = failed or bool(url_report.failed)
    return 1 if failed else 0


class _WebSession:
    """The web ingestor of one command (the chat's :class:`ingest.following.WebLibrary`),
    closing its HTTP client and database at the end."""

    def __init__(self, assistant: Assistant, settings: Settings) -> None:
        from ingest.following import WebLibrary

        self.library = WebLibrary.open(assistant.ingestor(), settings)

    def __enter__(self) -> WebIngestor:
        return self.library.web

    def __exit__(self, *_: object) -> None:
        self.library.close()


def _web(assistant: Assistant, settings: Settings) -> _WebSession:
    return _WebSession(assistant, settings)


def _feeds(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.webstate import WebState

    if args.feeds_command == "add":
        if not _is_url(args.url):
            print(f"newsrag: not an http(s) URL: {args.url}", file=sys.stderr)
            return 2
        from ingest.feeds import FeedWatcher

        with _web(_assistant(settings), settings) as web:
            if web.state.feed(args.url) is not None:
                print(f"already following {args.url}")
                return 0
            feed = FeedWatcher(web, web.state).add(args.url)
        broken = f", {len(feed.problems)} broken" if feed.problems else ""
        print(f"following {feed.title or args.url} ({len(feed.items)} items{broken})")
        print("run `newsrag watch --once` to ingest its articles")
        return 0
    from rag.components import open_library_database

    records = open_library_database(settings)
    try:
        state = WebState(records.engine)
        if args.feeds_command == "remove":
            if not state.remove_feed(args.url):
                print(f"newsrag: not a followed feed: {args.url}", file=sys.stderr)
                return 1
            print(f"stopped following {args.url}")
            return 0
        feeds = state.feeds()
        if not feeds:
            print("no feeds: add one with `newsrag feeds add URL`")
        for followed in feeds:
            print(feed_line(followed))
        return 0
    finally:
        records.close()


def feed_line(feed: FeedState) -> str:
    """``URL  title  last fetch ...  N new (M in all)  error`` for ``newsrag feeds list``."""
    when = (
        datetime.fromtimestamp(feed.last_fetch).strftime("%Y-%m-%d %H:%M")
        if feed.last_fetch
        else "never fetched"
    )
    line = f"{feed.url}  {feed.title or '(untitled)'}  last fetch: {when}"
    line += f"  new: {feed.last_new} ({feed.total_new} in all)"
    if feed.last_error:
        line += f"  error: {feed.last_error}"
    return line


def _watch(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.feeds import FeedWatcher

    every = args.every if args.every is not None else settings.watch_every_minutes * 60
    with _web(_assistant(settings), settings) as web:
        watcher = FeedWatcher(web, web.state, max_items=settings.feed_max_items)
        while True:
            try:
                polls = watcher.poll_all()
            except NewsragError as exc:
                if args.once:
                    raise
                # A long-running watch outlives a busy or briefly full library.
                print(f"newsrag: poll failed: {exc}", file=sys.stderr, flush=True)
                polls = []
            if not polls and not watcher.state.feeds():
                print("no feeds: add one with `newsrag feeds add URL`")
            for poll in polls:
                for line in poll.lines():
                    print(line, flush=True)
            if args.once:
                return 1 if any(poll.error for poll in polls) else 0
            logger.info("next poll in %.0f s", every)
            time.sleep(every)


def _ask(args: argparse.Namespace, settings: Settings) -> int:
    from rag.store import Filters

    assistant = _assistant(settings)
    if assistant.records.is_empty():
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
    stats = index.records.stats()
    where = (
        f"{settings.chroma_host}:{settings.chroma_port}"
        if settings.chroma_host
        else str(settings.data_dir)
    )
    print(f"index: {where} (collection {settings.collection})")
    if settings.shared_database:
        print(f"records: {redacted(settings.resolved_database_url)}")
    print(f"articles: {stats.articles}")
    if stats.stories and stats.stories < stats.articles:
        print(f"stories: {stats.stories} (other outlets' copies and near-copies grouped)")
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


def _feedback_export(args: argparse.Namespace, settings: Settings) -> int:
    from rag.components import build_index
    from rag.conversations_store import ConversationStore
    from rag.feedback import export_feedback

    if not settings.database_url and not settings.index_db_path.exists():
        print(f"newsrag: no library at {settings.data_dir}", file=sys.stderr)
        return 1
    index = build_index(settings)
    report = export_feedback(ConversationStore(index.records.engine), index, args.out)
    print(f"{args.out}: {report.summary()}")
    return 0


def _check(args: argparse.Namespace, settings: Settings) -> int:
    assistant = _assistant(settings)
    result = assistant.check(repair=args.repair)
    for line in result.lines():
        print(line)
    if result.repair_report is not None:
        print(result.repair_report.summary())
    if result.repaired:
        return 0 if not assistant.index.writer.missing_vectors() else 1
    return 0 if result.ok else 1


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from rag.components import build_index, build_vector_index
    from rag.migrate import copy_records, copy_vectors

    source = build_index(settings)
    if source.records.pending_ids():
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
    missing = target.writer.missing_vectors()
    if missing:
        print(
            f"newsrag: {len(missing):,} chunks have no vector where the migrated library "
            "looks for them: run with the same Chroma (or pass --chroma-host)",
            file=sys.stderr,
        )
        return 1
    articles = target.records.stats().articles
    print(f"done: {articles:,} articles; set NEWSRAG_DATABASE_URL to use them")
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
        if s.also:
            lines.append(f"    {also_reported_by(s.also)}")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
