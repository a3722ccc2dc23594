"""Move a library's records (and, optionally, its vectors) to a shared deployment.

``newsrag migrate --to postgresql+psycopg://...`` copies every table of the record
database (articles, chunks, BM25 postings, the embedding cache with the chunk and
sentence vectors, the library state) into the target database, in one transaction, and checks the
counts. Vectors stay in Chroma: a library already on a Chroma server keeps them there;
an embedded one copies them to a server with ``--chroma-host``/``--chroma-port``. The
application then runs with ``NEWSRAG_DATABASE_URL`` (and ``CHROMA_HOST``) set to the
targets (docs/DEPLOY.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import delete, func, insert, select

from rag.database import TABLES, redacted
from rag.errors import ConfigError
from rag.store import open_record_store
from rag.vectors import VectorIndex

logger = logging.getLogger(__name__)

_BATCH = 1000


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
    """Copy every record table from ``source_url`` into ``target_url``; returns the rows
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
        with target.engine.connect() as con:
            for table in TABLES:
                count = con.execute(select(func.count()).select_from(table)).scalar_one()
                if count != copied[table.name]:
                    msg = f"{table.name}: {count} rows in the target, {copied[table.name]} copied"
                    raise ConfigError(msg)
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
