"""The SQL home of everything but vectors: one database, SQLite or Postgres, one schema.

The record store (:mod:`rag.record_store`), the BM25 postings (:mod:`rag.lexical`), the
library state (its write generation), the chat's saved conversations and feedback
(:mod:`rag.conversations_store`) and the web state (:mod:`ingest.webstate`: followed feeds,
seen items, HTTP validators) live in one database chosen by ``NEWSRAG_DATABASE_URL``: a
SQLite file in the data dir by default (embedded, one machine),
``postgresql+psycopg://...`` when several app processes share a library. The code speaks
SQLAlchemy 2 Core, so the same statements run on both.

Why the SQLite schema is still created from its own DDL: libraries written by earlier
versions must stay readable as they are (``chunks.rowid`` is SQLite's rowid alias);
:data:`METADATA` describes the same tables for Postgres and for the statements.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    BindParameter,
    Column,
    Connection,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    bindparam,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.schema import CreateIndex, CreateTable

from rag.errors import ConfigError, StoreError

logger = logging.getLogger(__name__)

METADATA = MetaData()

ARTICLES = Table(
    "articles",
    METADATA,
    Column("article_id", Text, primary_key=True),
    Column("title", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("url", Text),
    Column("published", Text),
    Column("published_day", Integer, nullable=False),
    Column("origin", Text, nullable=False),
    Column("content_hash", Text, nullable=False),
    Column("text_hash", Text, nullable=False),
    Column("n_chunks", Integer, nullable=False, server_default="0"),
    Column("status", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("author", Text),
    Column("site_name", Text),
    Index("articles_origin", "origin"),
    Index("articles_text_hash", "text_hash"),
    # The as-of's newest-article lookup on every question.
    Index("articles_published", "published_day"),
    # Placing each new article looks for a stored version under its URL.
    Index("articles_url", "url"),
)

CHUNKS = Table(
    "chunks",
    METADATA,
    # The BM25 index's chunk id: allocated by rag.lexical, never reused.
    Column("rowid", Integer, primary_key=True, autoincrement=False),
    Column("chunk_id", Text, nullable=False, unique=True),
    Column("article_id", Text, nullable=False),
    Column("chunk_index", Integer, nullable=False),
    Column("start", Integer, nullable=False),
    Column("end", Integer, nullable=False),
    Column("text", Text, nullable=False),
    # Written by versions before layout 2 only: a copy of the sentence vectors that the
    # embedding cache row of ``embedding_key`` holds (see rag.layout).
    Column("sentences", LargeBinary),
    Column("lex_len", Integer, nullable=False, server_default="0"),
    Column("lex_terms", Integer, nullable=False, server_default="0"),
    # The embedding cache row holding this chunk's vector and sentence vectors.
    Column("embedding_key", Text),
    Index("chunks_article", "article_id"),
    # Which chunks still use a cache row: a row none uses is deleted with its last chunk.
    Index("chunks_embedding_key", "embedding_key"),
)

# One story, many outlets (rag.stories): each article's story and the MinHash signature
# of its text, so the near-duplicate index is rebuilt on open without re-reading texts.
STORIES = Table(
    "stories",
    METADATA,
    Column("article_id", Text, primary_key=True),
    Column("story_id", Text, nullable=False),
    Column("signature", LargeBinary, nullable=False),
    Index("stories_story", "story_id"),
)

# The LSH band keys of each stored signature (ingest.dedupe.StoryGrouper.stored_keys), and
# one key of the whole signature: placing an article reads only the stored articles that
# share a band with it (its candidates), not every signature of the library. Written and
# deleted with the article's ``stories`` row.
STORY_BANDS = Table(
    "story_bands",
    METADATA,
    Column("key", BigInteger, nullable=False),
    Column("article_id", Text, nullable=False),
    PrimaryKeyConstraint("key", "article_id"),
    Index("story_bands_article", "article_id"),
)

# Keyed by a hash of the model and the embedded text: one row per distinct chunk text,
# shared by every chunk with that text. ``vector`` is float16 (float32 before layout 2),
# ``sentences`` the packed sentence vectors (rag.record_store.pack_rows) of the split
# ``split``.
EMBEDDING_CACHE = Table(
    "embedding_cache",
    METADATA,
    Column("key", Text, primary_key=True),
    Column("vector", LargeBinary, nullable=False),
    Column("sentences", LargeBinary),
    Column("split", Text),
)

LIBRARY_STATE = Table(
    "library_state",
    METADATA,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
)

LEX_POSTINGS = Table(
    "lex_postings",
    METADATA,
    Column("term", Text, nullable=False),
    Column("frag", Integer, nullable=False),
    # The row's posting count, highest weighted term frequency and shortest chunk: what
    # a question needs to know before reading the postings (rag.lexical.best). Stored
    # before the arrays: SQLite reads a column after a long BLOB by walking its overflow
    # pages. NULL in rows written before they existed, until the first open fills them.
    Column("n", Integer),
    Column("fmax", Integer),
    Column("lmin", Integer),
    Column("docs", LargeBinary, nullable=False),
    Column("freqs", LargeBinary, nullable=False),
    Column("lens", LargeBinary, nullable=False),
    PrimaryKeyConstraint("term", "frag"),
)

LEX_META = Table(
    "lex_meta",
    METADATA,
    Column("key", Text, primary_key=True),
    Column("value", BigInteger, nullable=False),
)

# The chat's saved conversations and answer ratings (rag.conversations_store), per owner:
# a browser's random id, or ``user:<name>`` with login.
UI_CONVERSATIONS = Table(
    "ui_conversations",
    METADATA,
    Column("conversation_id", Text, primary_key=True),
    Column("owner", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("created", Text, nullable=False),
    Column("updated", Text, nullable=False),
    Index("ui_conversations_owner", "owner", "updated"),
)

UI_TURNS = Table(
    "ui_turns",
    METADATA,
    Column(
        "conversation_id",
        Text,
        ForeignKey("ui_conversations.conversation_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("position", Integer, nullable=False),
    Column("question", Text, nullable=False),
    Column("answer", Text),
    PrimaryKeyConstraint("conversation_id", "position"),
)

UI_FEEDBACK = Table(
    "ui_feedback",
    METADATA,
    Column("feedback_id", Integer, primary_key=True),
    Column("owner", Text, nullable=False),
    Column("rating", Integer, nullable=False),
    Column("comment", Text, nullable=False),
    Column("right_article_id", Text),
    Column("question", Text, nullable=False),
    Column("as_of", Text),
    Column("answer", Text, nullable=False),
    Column("created", Text, nullable=False),
    sqlite_autoincrement=True,
)

# What the library remembers about the web (ingest.webstate): fetched pages and their
# HTTP validators, followed feeds, and each feed item seen (claimed, ingested, failed).
WEB_PAGES = Table(
    "web_pages",
    METADATA,
    Column("url", Text, primary_key=True),
    Column("article_id", Text, nullable=False),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("content_hash", Text),
    Column("fetched_at", Float, nullable=False),
)

WEB_FEEDS = Table(
    "web_feeds",
    METADATA,
    Column("url", Text, primary_key=True),
    Column("title", Text),
    Column("added_at", Float, nullable=False),
    Column("last_fetch", Float),
    Column("last_error", Text),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("last_new", Integer, nullable=False, server_default="0"),
    Column("total_new", Integer, nullable=False, server_default="0"),
)

WEB_FEED_ITEMS = Table(
    "web_feed_items",
    METADATA,
    Column("feed_url", Text, nullable=False),
    Column("item_key", Text, nullable=False),
    Column("link", Text),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("done", Integer, nullable=False, server_default="0"),
    Column("error", Text),
    Column("seen_at", Float, nullable=False),
    # When a process took the item to fetch and ingest it (NULL once it is done or failed):
    # another process polling the same feed leaves it alone (ingest.webstate.claim_item).
    Column("claimed_at", Float),
    PrimaryKeyConstraint("feed_url", "item_key"),
)

RECORD_TABLES = (
    ARTICLES,
    CHUNKS,
    EMBEDDING_CACHE,
    LIBRARY_STATE,
    LEX_POSTINGS,
    LEX_META,
    STORIES,
    STORY_BANDS,
)
# Kept in files apart from the records by versions before they moved into the library's
# database (rag.migrate.adopt_local_tables brings them over); parents before children.
CONVERSATION_TABLES = (UI_CONVERSATIONS, UI_TURNS, UI_FEEDBACK)
WEB_TABLES = (WEB_PAGES, WEB_FEEDS, WEB_FEED_ITEMS)
APP_TABLES = CONVERSATION_TABLES + WEB_TABLES
TABLES = RECORD_TABLES + APP_TABLES

# The embedded default's DDL, as earlier versions wrote it (see the module docstring).
SQLITE_LEX_POSTINGS = """CREATE TABLE IF NOT EXISTS lex_postings (
    term TEXT NOT NULL,
    frag INTEGER NOT NULL,
    n INTEGER,
    fmax INTEGER,
    lmin INTEGER,
    docs BLOB NOT NULL,
    freqs BLOB NOT NULL,
    lens BLOB NOT NULL,
    PRIMARY KEY (term, frag)
)"""
# Not WITHOUT ROWID (as before the bounds): that makes the table an index b-tree, whose
# lookups load the whole of every long row they compare on the way (its overflow pages
# too), so finding a term read other terms' postings.

_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS articles (
    article_id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    source TEXT NOT NULL,
    url TEXT,
    published TEXT,
    published_day INTEGER NOT NULL,
    origin TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    text_hash TEXT NOT NULL,
    n_chunks INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    updated_at REAL NOT NULL,
    author TEXT,
    site_name TEXT
);
CREATE INDEX IF NOT EXISTS articles_origin ON articles(origin);
CREATE INDEX IF NOT EXISTS articles_text_hash ON articles(text_hash);
CREATE INDEX IF NOT EXISTS articles_published ON articles(published_day);
CREATE INDEX IF NOT EXISTS articles_url ON articles(url);
CREATE TABLE IF NOT EXISTS chunks (
    rowid INTEGER PRIMARY KEY,
    chunk_id TEXT NOT NULL UNIQUE,
    article_id TEXT NOT NULL,
    chunk_index INTEGER NOT NULL,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    text TEXT NOT NULL,
    sentences BLOB,
    lex_len INTEGER NOT NULL DEFAULT 0,
    lex_terms INTEGER NOT NULL DEFAULT 0,
    embedding_key TEXT
);
CREATE INDEX IF NOT EXISTS chunks_article ON chunks(article_id);
CREATE TABLE IF NOT EXISTS embedding_cache (
    key TEXT PRIMARY KEY,
    vector BLOB NOT NULL,
    sentences BLOB,
    split TEXT
);
CREATE TABLE IF NOT EXISTS library_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS lex_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS stories (
    article_id TEXT PRIMARY KEY,
    story_id TEXT NOT NULL,
    signature BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS stories_story ON stories(story_id);
CREATE TABLE IF NOT EXISTS story_bands (
    key INTEGER NOT NULL,
    article_id TEXT NOT NULL,
    PRIMARY KEY (key, article_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS story_bands_article ON story_bands(article_id);
"""

# Article columns added after the table first shipped (on SQLite and on Postgres).
_ADDED_ARTICLE_COLUMNS = ("author", "site_name")
_ADDED_POSTING_COLUMNS = ("n", "fmax", "lmin")

DIALECTS = ("sqlite", "postgresql")
_WRITE = "newsrag_write"


def open_engine(url: str, busy_seconds: float = 30.0) -> Engine:
    """An engine on ``url`` (``sqlite:///path`` or ``postgresql+psycopg://...``).

    On SQLite every transaction starts with ``BEGIN`` (``BEGIN IMMEDIATE`` for writes,
    see :func:`write_transaction`) and waits ``busy_seconds`` for another process's
    write; the file is in WAL mode so readers never wait for writers.

    >>> engine = open_engine("sqlite://")
    >>> engine.dialect.name
    'sqlite'
    """
    dialect = url.split(":", 1)[0].split("+", 1)[0]
    if dialect not in DIALECTS:
        msg = (
            f"unsupported NEWSRAG_DATABASE_URL {redacted(url)!r}: use one of "
            "sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB"
        )
        raise ConfigError(msg)
    if dialect == "sqlite":
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and not path.startswith(":"):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": busy_seconds})
        _sqlite_transactions(engine, busy_seconds)
        return engine
    if "+" not in url.split(":", 1)[0]:
        url = "postgresql+psycopg" + url[len("postgresql") :]
    return create_engine(url, pool_pre_ping=True)


def use_wal(con: sqlite3.Connection, busy_seconds: float) -> None:
    """Put a SQLite file in write-ahead-log mode, waiting for another process doing the same.

    Switching a new file to WAL needs it alone: SQLite answers "database is locked" at once
    (its busy timeout does not apply) while another connection is switching it, which two
    processes opening a new library together hit. The mode is stored in the file, so this
    retries until the other one is done (or ``busy_seconds`` pass), then finds WAL on.

    >>> con = sqlite3.connect(":memory:")
    >>> use_wal(con, 1.0)  # an in-memory database keeps its own mode: nothing to wait for
    """
    deadline = time.monotonic() + busy_seconds
    pause = 0.01
    while True:
        try:
            con.execute("PRAGMA journal_mode=WAL").fetchall()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


def _sqlite_transactions(engine: Engine, busy_seconds: float) -> None:
    """Let SQLite transactions be what we ask (pysqlite's own handling defers BEGIN)."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_con: Any, _record: Any) -> None:
        dbapi_con.isolation_level = None
        if engine.url.database:  # a file: WAL, so readers never wait for the writer
            use_wal(dbapi_con, busy_seconds)
            dbapi_con.execute("PRAGMA synchronous=NORMAL")

    @event.listens_for(engine, "begin")
    def _begin(con: Connection) -> None:
        # IMMEDIATE takes the write lock up front: a deferred transaction that reads and
        # then writes fails at once (no busy wait) if another process wrote meanwhile.
        write = con.get_execution_options().get(_WRITE, False)
        con.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _sqlite_ddl(tables: Sequence[Table]) -> str:
    """``CREATE ... IF NOT EXISTS`` statements of ``tables`` and their indexes for SQLite,
    compiled from their definitions (the tables newer than the legacy DDL above; safe when
    two processes create a new library at once, which ``create_all``'s check is not)."""
    dialect = sqlite.dialect()
    statements = []
    for table in tables:
        statements.append(str(CreateTable(table, if_not_exists=True).compile(dialect=dialect)))
        statements += [
            str(CreateIndex(index, if_not_exists=True).compile(dialect=dialect))
            for index in sorted(table.indexes, key=lambda i: str(i.name))
        ]
    return "".join(f"{statement.strip()};\n" for statement in statements)


def create_schema(engine: Engine) -> None:
    """Create missing tables (and columns, for libraries written by older versions)."""
    if engine.dialect.name == "sqlite":
        raw = engine.raw_connection()
        try:
            script = _SQLITE_SCHEMA + SQLITE_LEX_POSTINGS + ";" + _sqlite_ddl(APP_TABLES)
            raw.driver_connection.executescript(script)  # type: ignore[union-attr]
            _add_missing_sqlite_columns(raw.driver_connection)
            # After the column, which libraries of older versions gain just above.
            raw.driver_connection.execute(  # type: ignore[union-attr]
                "CREATE INDEX IF NOT EXISTS chunks_embedding_key ON chunks(embedding_key)"
            )
        finally:
            raw.close()
        return
    with engine.begin() as con:
        # Two processes opening a new database at once must not both create its tables.
        con.execute(select(func.pg_advisory_xact_lock(advisory_key("schema"))))
        METADATA.create_all(con)
        # create_all leaves existing tables alone: add the columns newer versions use.
        for column in _ADDED_ARTICLE_COLUMNS:
            con.exec_driver_sql(f"ALTER TABLE articles ADD COLUMN IF NOT EXISTS {column} TEXT")
        # Columns added since Postgres libraries first existed (create_all adds tables only).
        con.exec_driver_sql("ALTER TABLE chunks ADD COLUMN IF NOT EXISTS embedding_key TEXT")
        # Indexes added to tables that existed before them (create_all skips those).
        con.exec_driver_sql("CREATE INDEX IF NOT EXISTS articles_url ON articles (url)")
        con.exec_driver_sql(
            "CREATE INDEX IF NOT EXISTS chunks_embedding_key ON chunks (embedding_key)"
        )
        for column in _ADDED_POSTING_COLUMNS:
            con.exec_driver_sql(
                f"ALTER TABLE lex_postings ADD COLUMN IF NOT EXISTS {column} INTEGER"
            )
        # Postings stored uncompressed: a search reads windows of a row (substring, see
        # rag.lexical._WindowFragment), and a slice of a compressed value is decompressed
        # from its start. Rows written from now on; set once (it locks the table).
        compressible = con.exec_driver_sql(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'lex_postings'::regclass "
            "AND attname IN ('docs', 'freqs', 'lens') AND attstorage <> 'e'"
        ).scalars()
        for column in list(compressible):
            con.exec_driver_sql(
                f"ALTER TABLE lex_postings ALTER COLUMN {column} SET STORAGE EXTERNAL"
            )


def _add_missing_sqlite_columns(con: Any) -> None:
    """Bring a record database written by an older version up to the current columns."""
    wanted = {
        "chunks": {
            "sentences": "BLOB",
            "lex_len": "INTEGER NOT NULL DEFAULT 0",
            "lex_terms": "INTEGER NOT NULL DEFAULT 0",
            "embedding_key": "TEXT",
        },
        "embedding_cache": {"sentences": "BLOB", "split": "TEXT"},
        "articles": dict.fromkeys(_ADDED_ARTICLE_COLUMNS, "TEXT"),
        "lex_postings": dict.fromkeys(_ADDED_POSTING_COLUMNS, "INTEGER"),
        "web_feed_items": {"claimed_at": "REAL"},
    }
    for table, columns in wanted.items():
        present = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
        for column, kind in columns.items():
            if column not in present:
                con.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


def truncate_log(engine: Engine) -> None:
    """Give the SQLite write-ahead log's disk space back (after an ingest or a delete).

    In WAL mode the log keeps its largest size until the last connection closes: after an
    ingest it held as much as a third of the database. A ``TRUNCATE`` checkpoint copies
    it into the database and empties the file; it waits (up to the busy timeout) for
    readers of older snapshots, and is skipped (and retried next time) if they stay.
    Postgres manages its own log: nothing to do there.
    """
    if engine.dialect.name != "sqlite" or not engine.url.database:
        return
    raw = engine.raw_connection()
    try:
        row = raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()  # type: ignore[union-attr]
    except sqlite3.OperationalError as exc:  # locked: the writes are safe, the log waits
        row = (1,)
        logger.debug("no checkpoint of the write-ahead log: %s", exc)
    finally:
        raw.close()
    if row and row[0]:
        logger.info("the write-ahead log stays for now: another process is using it")


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One write transaction (``BEGIN IMMEDIATE`` on SQLite); commits on success."""
    with engine.connect().execution_options(**{_WRITE: True}) as con, con.begin():
        yield con


@contextmanager
def connection(engine: Engine, what: str, *, write: bool = False) -> Iterator[Connection]:
    """A connection, or a write transaction when ``write``; a database error becomes a
    :class:`StoreError` saying which ``what`` failed (the URL without its password)."""
    try:
        if write:
            with write_transaction(engine) as con:
                yield con
        else:
            with engine.connect() as con:
                yield con
    except SQLAlchemyError as exc:
        msg = f"{what} in {redacted(str(engine.url))} failed: {exc}"
        raise StoreError(msg) from exc


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """One consistent snapshot for several reads (postings and their statistics)."""
    with engine.connect() as con:
        if engine.dialect.name == "postgresql":
            con = con.execution_options(isolation_level="REPEATABLE READ")
        with con.begin():
            yield con


def upsert(
    con: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    update: Sequence[str] | None = None,
) -> None:
    """Insert ``rows``, replacing the columns ``update`` (default: all but ``keys``) of
    rows whose ``keys`` already exist."""
    if not rows:
        return
    insert = dialect_insert(con, table)
    columns = update if update is not None else [c for c in rows[0] if c not in keys]
    statement = insert.on_conflict_do_update(
        index_elements=list(keys), set_={c: insert.excluded[c] for c in columns}
    )
    con.execute(statement, list(rows))


def restart_sequences(con: Connection) -> None:
    """Make Postgres number new ratings after the ones copied in with their ids.

    A ``SERIAL`` column's sequence does not see rows inserted with explicit ids: without
    this, the next rating after ``newsrag migrate`` would collide with rating 1.
    """
    if con.dialect.name != "postgresql":
        return
    column = UI_FEEDBACK.c.feedback_id
    con.execute(
        select(
            func.setval(
                func.pg_get_serial_sequence(UI_FEEDBACK.name, column.name),
                func.coalesce(func.max(column), 0) + 1,
                False,
            )
        )
    )


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for Postgres advisory locks named ``name``.

    >>> advisory_key("news") == advisory_key("news")
    True
    """
    digest = hashlib.sha1(f"newsrag:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def redacted(url: str) -> str:
    """``url`` with its password masked, for logs and messages.

    >>> redacted("postgresql+psycopg://news:secret@db:5432/news")
    'postgresql+psycopg://news:***@db:5432/news'
    """
    head, sep, tail = url.rpartition("@")
    if not sep or ":" not in head.split("//", 1)[-1]:
        return url
    scheme, _, credentials = head.partition("//")
    user = credentials.split(":", 1)[0]
    return f"{scheme}//{user}:***@{tail}"


def batches(items: Sequence[Any], size: int = 500) -> Iterator[list[Any]]:
    """``items`` in lists of at most ``size`` (bound parameters stay under limits)."""
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


def dialect_insert(con: Connection, table: Table) -> Any:
    """``INSERT`` of the connection's dialect (for ``ON CONFLICT`` clauses)."""
    return (postgresql if con.dialect.name == "postgresql" else sqlite).insert(table)


class InList:
    """A statement with ``column IN (:v0, ... :vn)``, built and compiled once per ``n``.

    Why not SQLAlchemy's expanding ``IN``: it rewrites the compiled SQL with a regular
    expression on every execution, which cost more than the query itself on the search
    path (0.2 ms per statement).

    >>> from sqlalchemy import select
    >>> by_id = InList(lambda values: select(ARTICLES.c.title).where(
    ...     ARTICLES.c.article_id.in_(values)))
    >>> statement, params = by_id(["a", "b"])
    >>> params
    {'v0': 'a', 'v1': 'b'}
    """

    def __init__(self, build: Callable[[list[BindParameter[Any]]], Any]) -> None:
        self._build = build
        self._cache: dict[int, Any] = {}

    def __call__(self, values: Sequence[Any]) -> tuple[Any, dict[str, Any]]:
        n = len(values)
        statement = self._cache.get(n)
        if statement is None:
            statement = self._build([bindparam(f"v{i}") for i in range(n)])
            if n <= 512:
                self._cache[n] = statement
        return statement, {f"v{i}": v for i, v in enumerate(values)}
