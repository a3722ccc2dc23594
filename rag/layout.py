"""How the record database stores vectors, and the one-time upgrade of older libraries.

Layout 2 (this version) stores each vector once in the record database:

- ``embedding_cache`` holds one row per distinct embedded text (keyed by a hash of the
  model and the text): the chunk vector as float16, and the chunk's sentence vectors
  (int8, :func:`rag.record_store.pack_rows`). It serves three purposes: an unchanged
  chunk text is never embedded twice, the extractive answerer reads a chunk's sentence
  vectors from it, and a vector lost from the vector index is written again from it.
- ``chunks.embedding_key`` names that row; ``chunks.sentences`` is no longer written.
  A row is deleted with the last chunk naming it (:meth:`rag.writer.LibraryWriter.delete`
  and the replacement of an edited article), so no vector outlives its article.

Why float16 for the chunk vector: the vector index keeps the float32 vector that is
searched; this copy is only read to restore a lost vector or to reuse an unchanged
chunk's. Rounding MiniLM vectors to float16 changes their cosine with the original by at
most 1.2e-7 and a question's dense scores by at most 6.5e-5 (docs/BENCHMARKS.md,
"Footprint"), at half the bytes.

Libraries written before (layout 1: float32 in the cache, a second copy of the sentence
vectors in ``chunks.sentences``) are upgraded when first opened (:func:`upgrade`), in
one write transaction: cache vectors become float16, and each chunk's sentence vectors
are matched byte for byte with the cache row they were copied from, which the chunk then
names. A chunk whose copy matches no cache row keeps it (it is still read). No model is
needed, so the upgrade runs on any machine that opens the library.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Connection, Engine, bindparam, select, update

from rag.database import CHUNKS, EMBEDDING_CACHE, LIBRARY_STATE, truncate_log, upsert

logger = logging.getLogger(__name__)

LAYOUT = "2"
_KEY = "layout"
_BATCH = 1000


def encode_vector(vector: np.ndarray) -> bytes:
    """A chunk vector as the embedding cache stores it (float16).

    >>> decode_vector(encode_vector(np.array([0.6, 0.8], dtype=np.float32)))
    array([0.6, 0.8], dtype=float32)
    """
    return np.asarray(vector, dtype=np.float16).tobytes()


def decode_vector(blob: bytes) -> np.ndarray:
    """The float32 vector of :func:`encode_vector`."""
    return np.frombuffer(blob, dtype=np.float16).astype(np.float32)


@dataclass(frozen=True)
class Upgrade:
    """What :func:`upgrade` changed."""

    vectors: int  # cache vectors rewritten as float16
    linked: int  # chunks now reading their sentence vectors from the cache
    kept: int  # chunks whose sentence vectors matched no cache row (their copy stays)


def needs_upgrade(con: Connection) -> bool:
    """True when the record database was written with an older layout (or is new)."""
    value = con.execute(
        select(LIBRARY_STATE.c.value).where(LIBRARY_STATE.c.key == _KEY)
    ).scalar_one_or_none()
    return value != LAYOUT


def upgrade(con: Connection) -> Upgrade:
    """Bring a layout-1 record database to layout 2 (see the module docstring); call in a
    write transaction, after :func:`needs_upgrade`. Rows are read ``_BATCH`` at a time."""
    e = EMBEDDING_CACHE.c
    c = CHUNKS.c
    by_sentences: dict[bytes, str] = {}
    vectors = 0
    last = ""
    rewrite = (
        update(EMBEDDING_CACHE)
        .where(e.key == bindparam("b_key"))
        .values(vector=bindparam("b_vector"))
    )
    while True:
        rows = con.execute(
            select(e.key, e.vector, e.sentences).where(e.key > last).order_by(e.key).limit(_BATCH)
        ).all()
        if not rows:
            break
        changes = []
        for key, blob, packed in rows:
            float32 = np.frombuffer(bytes(blob), dtype=np.float32)
            changes.append({"b_key": key, "b_vector": encode_vector(float32)})
            if packed is not None:
                by_sentences.setdefault(_digest(bytes(packed)), key)
        con.execute(rewrite, changes)
        vectors += len(changes)
        last = rows[-1][0]
    linked = kept = 0
    link = (
        update(CHUNKS)
        .where(c.rowid == bindparam("b_rowid"))
        .values(embedding_key=bindparam("b_key"), sentences=None)
    )
    after = 0
    while True:
        copies = con.execute(
            select(c.rowid, c.sentences)
            .where(c.rowid > after, c.embedding_key.is_(None), c.sentences.is_not(None))
            .order_by(c.rowid)
            .limit(_BATCH)
        ).all()
        if not copies:
            break
        links = []
        for rowid, packed in copies:
            key = by_sentences.get(_digest(bytes(packed)))
            if key is None:
                kept += 1
            else:
                links.append({"b_rowid": rowid, "b_key": key})
        if links:
            con.execute(link, links)
        linked += len(links)
        after = copies[-1][0]
    upsert(con, LIBRARY_STATE, [{"key": _KEY, "value": LAYOUT}], ["key"])
    done = Upgrade(vectors=vectors, linked=linked, kept=kept)
    if vectors or linked or kept:
        logger.info(
            "upgraded the record database to layout %s: %d cached vectors now float16, "
            "%d chunks share their cached sentence vectors (%d keep their own copy)",
            LAYOUT,
            vectors,
            linked,
            kept,
        )
    return done


def reclaim(engine: Engine) -> None:
    """After an upgrade that freed space, give it back to the disk (SQLite's ``VACUUM``;
    best effort: a busy or full disk leaves the freed pages for later writes to reuse)."""
    if engine.dialect.name != "sqlite" or not engine.url.database:
        return
    raw = engine.raw_connection()
    try:
        raw.driver_connection.execute("VACUUM")  # type: ignore[union-attr]
        truncate_log(engine)
    except sqlite3.Error as exc:  # busy, or a full disk: the free pages stay for reuse
        logger.warning("could not compact the record database after its upgrade: %s", exc)
    finally:
        raw.close()


def _digest(blob: bytes) -> bytes:
    return hashlib.sha1(blob).digest()
