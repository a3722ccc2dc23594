"""Move a library's records (and, optionally, its vectors) to a shared deployment.

``newsrag migrate --to postgresql+psycopg://...`` copies every table of the record
database (articles, chunks, BM25 postings, the embedding cache with the chunk and
sentence vectors, the library state, the chat's saved conversations and feedback, the
followed feeds and their seen items) into the target database, in one transaction, and
checks the counts. Vectors stay in Chroma: a library already on a Chroma server keeps them there;
an embedded one copies them to a server with ``--chroma-host``/``--chroma-port``. The
application then runs with ``NEWSRAG_DATABASE_URL`` (and ``CHROMA_HOST``) set to the
targets (docs/DEPLOY.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, Engine, MetaData, Table, delete, func, insert, inspect, select

from rag.database import (
    APP_TABLES,
    LIBRARY_STATE,
    TABLES,
    UI_FEEDBACK,
    dialect_insert,
    open_engine,
    redacted,
    restart_sequences,
    upsert,
    write_transaction,
)
from rag.errors import ConfigError
from rag.store import open_record_store
from rag.vectors import VectorIndex

logger = logging.getLogger(__name__)

_BATCH = 1000
# Set in a SQLite file whose conversations, feedback and web state were copied into another
# database, so they are not copied again (see adopt_local_tables).
MOVED_KEY = "app_tables_moved_to"


@dataclass(frozen=True)
class MigrationReport:
    """Rows copied per table, and vectors copied (None when they stayed where they were)."""

    rows: dict[str, int] = field(default_factory=dict)
    vectors: int | None = None

    def lines(self) -> list[str]:
        lines = [f"{table}: {n:,} rows" for table, n in self.rows.items()]
        if self.vectors is not None:
            lines.append(f"vectors: {self.vectors:,} copied to the Chroma server")
        return lines


def copy_records(source_url: str, target_url: str, *, replace: bool = False) -> dict[str, int]:
    """Copy every table from ``source_url`` into ``target_url``; returns the rows
    copied per table. A target that already holds articles is refused unless ``replace``.

    Example:
        >>> copy_records("sqlite:///data/news.sqlite3",
        ...              "postgresql+psycopg://news@db/news")  # doctest: +SKIP
        {'articles': 1, 'chunks': 6, ...}
    """
    if source_url == target_url:
        msg = "the target database is the one the library already uses"
        raise ConfigError(msg)
    source = open_record_store(source_url)
    target = open_record_store(target_url)
    try:
        if not target.is_empty() and not replace:
            msg = f"{redacted(target_url)} already holds a library; pass --replace to overwrite it"
            raise ConfigError(msg)
        copied: dict[str, int] = {}
        with source.snapshot() as src, target.transaction() as dst:
            for table in TABLES:
                # The target's tables were created (and its BM25 state initialised) on
                # open: the source's rows replace them all.
                dst.execute(delete(table))
                copied[table.name] = 0
                result = src.execution_options(yield_per=_BATCH).execute(select(table))
                for rows in result.partitions(_BATCH):
                    dst.execute(insert(table), [dict(r._mapping) for r in rows])
                    copied[table.name] += len(rows)
            restart_sequences(dst)
        with target.engine.connect() as con:
            for table in TABLES:
                count = con.execute(select(func.count()).select_from(table)).scalar_one()
                if count != copied[table.name]:
                    msg = f"{table.name}: {count} rows in the target, {copied[table.name]} copied"
                    raise ConfigError(msg)
        if source.engine.dialect.name == "sqlite":
            # A process on the target finds this file in its data dir: nothing to adopt.
            with write_transaction(source.engine) as src:
                _mark_moved(src, target_url)
        logger.info("copied the records to %s: %s", redacted(target_url), copied)
        return copied
    finally:
        source.close()
        target.close()


def copy_vectors(source: VectorIndex, target: VectorIndex) -> int:
    """Copy every vector (with its metadata) from one Chroma collection to another;
    returns how many. Ids are kept, so running it twice changes nothing."""
    copied = 0
    for ids, vectors, metadatas in source.export(_BATCH):
        target.upsert(ids, vectors, metadatas)
        copied += len(ids)
    return copied


def adopt_local_tables(engine: Engine, path: Path, busy_seconds: float = 30.0) -> dict[str, int]:
    """Copy the conversations, feedback and web state that earlier versions kept in the
    SQLite file ``path`` into the library's database ``engine``, once; returns the rows
    copied per table (nothing when ``path`` is that database, or was adopted already).

    Before they moved into the library's database, these tables always lived in the data
    dir's ``<collection>.sqlite3``, also when the records were on Postgres (one file per
    host). Conversations, turns, feeds, items and pages already in ``engine`` are kept;
    ratings get new ids there (each host's file numbered its own from 1). The file keeps
    its rows and is marked, so they are not copied twice.

    Example:
        >>> adopt_local_tables(records.engine, Path("data/news.sqlite3"))  # doctest: +SKIP
        {'ui_conversations': 4, 'ui_turns': 9, 'ui_feedback': 2, ...}
    """
    if not path.is_file():
        return {}
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and Path(database).resolve() == path.resolve():
        return {}
    local = open_engine(f"sqlite:///{path}", busy_seconds)
    copied: dict[str, int] = {}
    try:
        # A write transaction on the file: another process of this host adopting it at the
        # same time waits, then finds the mark.
        with write_transaction(local) as src:
            found = MetaData()
            found.reflect(src, only=lambda name, _: name in {t.name for t in APP_TABLES})
            if not found.tables or _moved(src):
                return {}
            with write_transaction(engine) as dst:
                for table in APP_TABLES:
                    old = found.tables.get(table.name)
                    if old is not None:
                        copied[table.name] = _adopt(src, dst, old, table)
            if any(copied.values()):
                _mark_moved(src, redacted(str(engine.url)))
    finally:
        local.dispose()
    if any(copied.values()):
        logger.info(
            "moved the conversations and web state of %s into the library: %s", path, copied
        )
    return copied


def _moved(src: Connection) -> bool:
    if not inspect(src).has_table(LIBRARY_STATE.name):
        return False
    row = src.execute(select(LIBRARY_STATE.c.value).where(LIBRARY_STATE.c.key == MOVED_KEY))
    return row.first() is not None


def _mark_moved(src: Connection, target: str) -> None:
    LIBRARY_STATE.create(src, checkfirst=True)
    upsert(src, LIBRARY_STATE, [{"key": MOVED_KEY, "value": redacted(target)}], ["key"])


def _adopt(src: Connection, dst: Connection, old: Table, table: Table) -> int:
    """Insert the rows of ``old`` (a table as an earlier version wrote it) into ``table``."""
    columns = [c.name for c in old.columns if c.name in table.c]
    if table is UI_FEEDBACK:
        columns.remove("feedback_id")  # numbered anew, in the order they were given
    query = select(*(old.c[name] for name in columns))
    if table is UI_FEEDBACK:
        query = query.order_by(old.c.feedback_id)
    n = 0
    for rows in src.execute(query.execution_options(yield_per=_BATCH)).partitions(_BATCH):
        values = [dict(zip(columns, row, strict=True)) for row in rows]
        if table is UI_FEEDBACK:
            dst.execute(insert(table), values)
        else:
            dst.execute(dialect_insert(dst, table).on_conflict_do_nothing(), values)
        n += len(rows)
    return n
