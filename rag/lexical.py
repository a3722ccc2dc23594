"""BM25 over the chunks: postings stored in the record database, scored with numpy.

Why not SQLite FTS5 (used before): FTS5 computes ``bm25()`` row by row for every chunk
that contains any word of the question, and common news words ("government", "said
on", "president") match a third of a library. Ranking therefore grew with the library:
27 ms at 10k chunks, 648 ms at 300k (docs/BENCHMARKS.md). Here each term's postings are
three arrays (chunk ids, term frequencies, chunk lengths) in one BLOB row, and a question
is scored with a few vector operations per term.

Layout (tables in the record database, :mod:`rag.database`, SQLite or Postgres, written in
the same transaction as the chunks, so the crash-safety protocol of
:class:`rag.writer.LibraryWriter` covers it; the same SQLAlchemy statements run on both):

- ``lex_postings(term, frag, docs, freqs, lens)``: each write adds one *fragment* per
  term it contains. The newest fragment of a term is merged into the one before it while
  it is at least ``1/MERGE_RATIO`` of its size, so a term has O(log n) fragments and a
  posting is rewritten O(log n) times (the logarithmic method of LSM trees and Lucene).
- Chunk ids (the ``rowid`` of ``chunks``) are allocated from ``lex_meta.next_doc`` and
  never reused. A deleted chunk's postings are therefore harmless: its id no longer joins
  to a chunk row. :func:`compact` drops them, rewriting every term, once they outnumber a
  quarter of the live postings (a write's merges keep them: knowing which ids are gone
  means reading every chunk id of the library).
- ``lex_meta``: live chunks and their words (BM25's average length), id counters.

Scoring is FTS5's ``bm25`` as configured before (k1 1.2, b 0.75, a title word counts
twice, a chunk's length is its words, stopwords included), and words are what FTS5's
``porter unicode61 remove_diacritics 2`` tokenizer made of them, so the ranking is the
one FTS5 gave (identical on the dev questions). Stopwords are not indexed: no question
term is ever one.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import snowballstemmer
from sqlalchemy import (
    Connection,
    MetaData,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    tuple_,
    update,
)

from rag.database import (
    ARTICLES,
    CHUNKS,
    LEX_META,
    LEX_POSTINGS,
    SQLITE_LEX_POSTINGS,
    InList,
    upsert,
)
from rag.text import STOPWORDS

logger = logging.getLogger(__name__)

VERSION = 1  # of the analyzer and layout: a database with another version is rebuilt
TITLE_WEIGHT = 2
K1 = 1.2
B = 0.75
MERGE_RATIO = 4
MAX_QUERY_TERMS = 64

# Statements of the hot paths, built once (building one costs more than running it).
_P = LEX_POSTINGS.c
_META = select(LEX_META.c.key, LEX_META.c.value)
_TERM_SIZES = InList(
    lambda terms: (
        select(_P.term, func.sum(func.length(_P.docs))).where(_P.term.in_(terms)).group_by(_P.term)
    )
)
# Per term: postings, highest weighted frequency, shortest chunk (rows an older version
# wrote without them count as unbounded until the first open fills them in).
_TERM_STATS = InList(
    lambda terms: (
        select(
            _P.term,
            func.sum(func.coalesce(_P.n, func.length(_P.docs) / 4)),  # 4: bytes of a chunk id
            func.max(func.coalesce(_P.fmax, 65_535)),
            func.min(func.coalesce(_P.lmin, 0)),
        )
        .where(_P.term.in_(terms))
        .group_by(_P.term)
    )
)
_POSTINGS_OF_TERM = (
    select(_P.docs, _P.freqs, _P.lens).where(_P.term == bindparam("term")).order_by(_P.frag)
)
_POSTINGS_OF = InList(
    lambda terms: (
        select(_P.term, _P.docs, _P.freqs, _P.lens).where(_P.term.in_(terms)).order_by(_P.frag)
    )
)
_FRAGMENT_SIZES = select(_P.frag, func.coalesce(_P.n, func.length(_P.docs) / 4)).where(
    _P.term == bindparam("term")
)
_FRAGMENT_SIZES = _FRAGMENT_SIZES.order_by(_P.frag)
_WINDOW_OF = select(
    func.substring(_P.docs, bindparam("d_from"), bindparam("d_for")),
    func.substring(_P.freqs, bindparam("s_from"), bindparam("s_for")),
    func.substring(_P.lens, bindparam("s_from"), bindparam("s_for")),
).where((_P.term == bindparam("term")) & (_P.frag == bindparam("frag")))
_IN_TAIL = (_P.term == bindparam("term")) & (_P.frag >= bindparam("low"))
_TAIL = select(_P.docs, _P.freqs, _P.lens).where(_IN_TAIL).order_by(_P.frag)
_DELETE_TAIL = delete(LEX_POSTINGS).where(_IN_TAIL)
_INSERT = insert(LEX_POSTINGS)
_SET_BOUNDS = (
    update(LEX_POSTINGS)
    .where((_P.term == bindparam("b_term")) & (_P.frag == bindparam("b_frag")))
    .values(n=bindparam("b_n"), fmax=bindparam("b_fmax"), lmin=bindparam("b_lmin"))
)

_DOC = np.dtype("<u4")
_SMALL = np.dtype("<u2")
_TOKEN = re.compile(r"[^\W_]+")
# Combining marks that NFKD splits off letters (the blocks FTS5's remove_diacritics folds).
_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
_PORTER = snowballstemmer.stemmer("porter")


def tokens(text: str) -> list[str]:
    """Lowercased alphanumeric runs without diacritics (FTS5's unicode61 tokenizer).

    >>> tokens("U.S. President Macron's café")
    ['u', 's', 'president', 'macron', 's', 'cafe']
    """
    text = text.lower()
    if not text.isascii():  # curly quotes are enough: most news text comes this way
        text = _COMBINING.sub("", unicodedata.normalize("NFKD", text))
    return _TOKEN.findall(text)


@functools.lru_cache(maxsize=200_000)
def term(token: str) -> str:
    """The Porter stem of a token (the stemmer of FTS5's ``porter`` tokenizer)."""
    return str(_PORTER.stemWord(token))


@dataclass(frozen=True)
class Analyzed:
    """A chunk as BM25 sees it: its length in words and, for each stem, how often it is
    in the title and in the body, packed as ``title << 8 | body`` (each capped at 255)."""

    freqs: Mapping[str, int]
    length: int


def analyze(title: str, body: str) -> Analyzed:
    """The index terms of a chunk.

    >>> a = analyze("Meloni proposes", "Meloni proposed a plan to the allies.")
    >>> {t: divmod(f, 256) for t, f in a.freqs.items()}, a.length
    ({'meloni': (1, 1), 'propos': (1, 1), 'plan': (0, 1), 'alli': (0, 1)}, 9)

    One-letter tokens are indexed for :func:`frequencies` ("U.S." is ``u``, ``s``) but
    never searched for.
    """
    counts: dict[str, list[int]] = {}
    length = 0
    for field, text in enumerate((title, body)):
        found = tokens(text)
        length += len(found)
        for token in found:
            if token not in STOPWORDS:
                counts.setdefault(term(token), [0, 0])[field] += 1
    freqs = {t: min(c[0], 255) << 8 | min(c[1], 255) for t, c in counts.items()}
    return Analyzed(freqs, length)


def query_terms(text: str) -> list[str]:
    """The distinct stems a question is searched with, in order.

    >>> query_terms("What did Meloni propose? Meloni's proposal")
    ['meloni', 'propos']
    """
    seen: dict[str, None] = {}
    for token in tokens(text):
        if len(token) > 1 and token not in STOPWORDS:
            seen.setdefault(term(token), None)
    return list(seen)[:MAX_QUERY_TERMS]


# -- metadata ---------------------------------------------------------------------------


def _meta(con: Connection) -> dict[str, int]:
    return {str(k): int(v) for k, v in con.execute(_META)}


def _set_meta(con: Connection, values: Mapping[str, int]) -> None:
    upsert(con, LEX_META, [{"key": k, "value": v} for k, v in values.items()], ["key"])


def needs_build(con: Connection) -> bool:
    """True when the postings were built by another version (or never), or their rows
    lack the bounds that :func:`best` reads (written before they existed)."""
    meta = _meta(con)
    return meta.get("version") != VERSION or meta.get("bounds") != 1


def fill_bounds(con: Connection, batch: int = 2_000) -> int:
    """Give every postings row its count and bounds (rows written before they existed);
    returns the rows filled. Reads each row once, ``batch`` at a time (flat memory)."""
    source = LEX_POSTINGS
    sqlite = con.dialect.name == "sqlite"
    if sqlite:
        # SQLite appended the new columns after the arrays, where reading them walks the
        # arrays' overflow pages, in a WITHOUT ROWID table, where finding a term loads the
        # postings it passes: the rows move to the table rag.database now creates.
        con.exec_driver_sql("DROP TABLE IF EXISTS lex_postings_old")
        con.exec_driver_sql("ALTER TABLE lex_postings RENAME TO lex_postings_old")
        con.exec_driver_sql(SQLITE_LEX_POSTINGS)
        source = LEX_POSTINGS.to_metadata(MetaData(), name="lex_postings_old")
    old = source.c
    filled, after = 0, ("", -1)
    while True:
        rows = con.execute(
            select(old.term, old.frag, old.docs, old.freqs, old.lens)
            .where(tuple_(old.term, old.frag) > tuple_(literal(after[0]), literal(after[1])))
            .order_by(old.term, old.frag)
            .limit(batch)
        ).all()
        if not rows:
            break
        new = [
            _row(
                name,
                frag,
                np.frombuffer(docs, _DOC),
                np.frombuffer(freqs, _SMALL),
                np.frombuffer(lens, _SMALL),
            )
            for name, frag, docs, freqs, lens in rows
        ]
        if sqlite:
            con.execute(_INSERT, new)
        else:
            con.execute(
                _SET_BOUNDS,
                [
                    {"b_term": r["term"], "b_frag": r["frag"], "b_n": r["n"]}
                    | {"b_fmax": r["fmax"], "b_lmin": r["lmin"]}
                    for r in new
                ],
            )
        filled += len(rows)
        after = (rows[-1][0], rows[-1][1])
    if sqlite:
        con.exec_driver_sql("DROP TABLE lex_postings_old")
    _set_meta(con, {"bounds": 1})
    return filled


def build(con: Connection, batch: int = 5_000) -> int:
    """(Re)build every posting from the chunks table; returns the chunks indexed.

    Runs once on a database written before this index existed (it had FTS5) or by
    another analyzer version. Call inside a write transaction. Chunks are read
    ``batch`` at a time, so memory stays flat whatever the size of the library.
    """
    con.execute(delete(LEX_POSTINGS))
    total, top = con.execute(select(func.count(), func.coalesce(func.max(CHUNKS.c.rowid), 0))).one()
    if total:
        logger.info("building the BM25 index of %d chunks (once, after an upgrade)", total)
    _set_meta(
        con,
        {
            "version": VERSION,
            "docs": 0,
            "words": 0,
            "postings": 0,
            "live_postings": 0,
            "next_doc": int(top) + 1,
            "next_frag": 1,
            "bounds": 1,
        },
    )
    done, after = 0, 0
    while True:
        rows = con.execute(
            select(CHUNKS.c.rowid, ARTICLES.c.title, CHUNKS.c.text)
            .join(ARTICLES, ARTICLES.c.article_id == CHUNKS.c.article_id)
            .where(CHUNKS.c.rowid > after)
            .order_by(CHUNKS.c.rowid)
            .limit(batch)
        ).all()
        if not rows:
            break
        docs = [(int(rowid), analyze(title, text)) for rowid, title, text in rows]
        con.execute(
            update(CHUNKS)
            .where(CHUNKS.c.rowid == bindparam("b_rowid"))
            .values(lex_len=bindparam("b_len"), lex_terms=bindparam("b_terms")),
            [{"b_len": a.length, "b_terms": len(a.freqs), "b_rowid": rowid} for rowid, a in docs],
        )
        _append(con, docs, merge=False)
        done += len(docs)
        after = docs[-1][0]
    if done > batch:
        compact(con)  # one fragment per term (each posting is rewritten once)
    if con.dialect.name == "sqlite":
        con.exec_driver_sql("DROP TABLE IF EXISTS chunks_fts")  # the FTS5 index this replaces
    return done


def next_doc(con: Connection) -> int:
    """The first unused chunk id (ids are never reused: see the module docstring)."""
    return _meta(con).get("next_doc", 1)


# -- writes (inside the caller's transaction) -----------------------------------------------


def add(con: Connection, docs: Sequence[tuple[int, Analyzed]]) -> None:
    """Index new chunks ``(chunk id, analyzed)``; ids must come from :func:`next_doc`."""
    _append(con, docs, merge=True)
    meta = _meta(con)
    if meta["postings"] > 50_000 and meta["postings"] > 1.25 * meta["live_postings"]:
        compact(con)


def _append(con: Connection, docs: Sequence[tuple[int, Analyzed]], merge: bool) -> None:
    if not docs:
        return
    postings: dict[str, tuple[list[int], list[int], list[int]]] = {}
    words_total = 0
    ordered = sorted(docs, key=lambda d: d[0])
    for doc, analyzed in ordered:
        length = min(analyzed.length, 65_535)
        words_total += analyzed.length
        for term, freq in analyzed.freqs.items():
            entry = postings.setdefault(term, ([], [], []))
            entry[0].append(doc)
            entry[1].append(freq)
            entry[2].append(length)
    add_fragment(
        con,
        {
            term: (np.asarray(d, _DOC), np.asarray(f, _SMALL), np.asarray(n, _SMALL))
            for term, (d, f, n) in postings.items()
        },
        len(docs),
        words_total,
        ordered[-1][0],
        merge=merge,
    )


def add_fragment(
    con: Connection,
    postings: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    chunks: int,
    words_total: int,
    last_doc: int,
    *,
    merge: bool = True,
) -> None:
    """Index new chunks given as ready postings, as one fragment per term.

    ``postings`` maps a term to three arrays over the chunks that contain it: chunk ids
    (ascending, from :func:`next_doc`), packed frequencies (see :class:`Analyzed`) and
    chunk lengths in words (capped at 65,535). ``chunks``, ``words_total`` and
    ``last_doc`` are the new chunks' count, summed length and highest id (a chunk
    without any term has no posting, but its id is taken). :func:`add` builds them from
    analyzed chunks; a bulk load (bench/scale.py) builds them with numpy.

    >>> from rag.database import create_schema, open_engine, write_transaction
    >>> engine = open_engine("sqlite://")
    >>> create_schema(engine)
    >>> with write_transaction(engine) as con:
    ...     _ = SqlLexicalIndex().ensure_built(con)
    ...     add_fragment(con, {"meloni": (np.array([1, 2]), np.array([257, 1]),
    ...                                   np.array([9, 12]))}, 5, 50, 5)
    ...     score(con, ["meloni"])[0].tolist()
    [1, 2]
    """
    if not chunks:
        return
    meta = _meta(con)
    n_postings = sum(len(d) for d, _, _ in postings.values())
    frag = meta["next_frag"]
    rows = [_row(term, frag, d, f, n) for term, (d, f, n) in postings.items() if len(d)]
    if rows:
        con.execute(insert(LEX_POSTINGS), rows)
    _set_meta(
        con,
        {
            "docs": meta["docs"] + chunks,
            "words": meta["words"] + words_total,
            "postings": meta["postings"] + n_postings,
            "live_postings": meta["live_postings"] + n_postings,
            "next_doc": max(meta["next_doc"], last_doc + 1),
            "next_frag": frag + 1,
        },
    )
    if merge:
        _Merger(con, drop_deleted=False).merge_tails(postings)


def _row(term: str, frag: int, docs: Any, freqs: Any, lens: Any) -> dict[str, Any]:
    """A ``lex_postings`` row: the three arrays, and the bounds :func:`best` reads first."""
    docs = np.asarray(docs, dtype=_DOC)
    freqs = np.asarray(freqs, dtype=_SMALL)
    lens = np.asarray(lens, dtype=_SMALL)
    return {
        "term": term,
        "frag": frag,
        "docs": docs.tobytes(),
        "freqs": freqs.tobytes(),
        "lens": lens.tobytes(),
        "n": len(docs),
        "fmax": int(_WEIGHTED[freqs].max()) if len(freqs) else 0,
        "lmin": int(lens.min()) if len(lens) else 0,
    }


def forget(con: Connection, chunks: int, words_total: int, postings: int) -> None:
    """Account for deleted chunks (their postings stay until merged; see module doc)."""
    meta = _meta(con)
    _set_meta(
        con,
        {
            "docs": max(0, meta.get("docs", 0) - chunks),
            "words": max(0, meta.get("words", 0) - words_total),
            "live_postings": max(0, meta.get("live_postings", 0) - postings),
        },
    )


def clear(con: Connection) -> None:
    """Drop every posting (the chunks are being deleted too)."""
    con.execute(delete(LEX_POSTINGS))
    _set_meta(con, {"docs": 0, "words": 0, "postings": 0, "live_postings": 0})


_COMPACT_POSTINGS = 1_000_000  # postings read per round trip (8 MB of arrays)
_ROW_SIZES = select(_P.term, func.coalesce(_P.n, func.length(_P.docs) / 4)).order_by(_P.term)
_ROWS_OF = InList(
    lambda terms: (
        select(_P.term, _P.frag, _P.docs, _P.freqs, _P.lens)
        .where(_P.term.in_(terms))
        .order_by(_P.term, _P.frag)
    )
)
_DELETE_TERMS = InList(lambda terms: delete(LEX_POSTINGS).where(_P.term.in_(terms)))


def compact(con: Connection) -> None:
    """Merge every term's fragments into one, dropping the postings of deleted chunks.

    Terms are read, deleted and written back in groups of about ``_COMPACT_POSTINGS``
    postings, a few statements per group: one term at a time took three round trips per
    term, which on Postgres (50,000 terms) was minutes of waiting on the network.
    """
    merger = _Merger(con, drop_deleted=True)
    alive = merger.alive()
    sizes: dict[str, int] = {}
    for name, n in con.execute(_ROW_SIZES):
        sizes[str(name)] = sizes.get(str(name), 0) + int(n)
    group: list[str] = []
    in_group = 0
    for name in [*sizes, None]:
        if name is not None:
            group.append(name)
            in_group += sizes[name]
            if in_group < _COMPACT_POSTINGS and len(group) < 500:
                continue
        if not group:
            break
        parts: dict[str, list[tuple[int, bytes, bytes, bytes]]] = {}
        for term_, frag, docs_b, freqs_b, lens_b in con.execute(*_ROWS_OF(group)):
            parts.setdefault(str(term_), []).append((int(frag), docs_b, freqs_b, lens_b))
        rows, rewritten = [], []
        for term_, blobs in parts.items():
            docs = np.concatenate([np.frombuffer(b[1], _DOC) for b in blobs])
            keep = alive[np.minimum(docs, len(alive) - 1)]
            if len(blobs) == 1 and keep.all():
                continue  # one fragment, nothing deleted: already compact
            rewritten.append(term_)
            merger.dropped += int(len(docs) - keep.sum())
            if keep.any():
                freqs = np.concatenate([np.frombuffer(b[2], _SMALL) for b in blobs])
                lens = np.concatenate([np.frombuffer(b[3], _SMALL) for b in blobs])
                frag = max(b[0] for b in blobs)
                rows.append(_row(term_, frag, docs[keep], freqs[keep], lens[keep]))
        if rewritten:
            con.execute(*_DELETE_TERMS(rewritten))
        if rows:
            con.execute(_INSERT, rows)
        group, in_group = [], 0
    merger.settle()


class _Merger:
    """Merges fragments of a term, dropping postings whose chunk is gone."""

    def __init__(self, con: Connection, drop_deleted: bool) -> None:
        self.con = con
        # A write's merges keep deleted chunks' postings (harmless, see the module doc):
        # knowing which ids are gone means reading every chunk id of the library, 1.2 s
        # per write at 1,000,000 chunks. compact() drops them, all at once.
        self.drop_deleted = drop_deleted
        self._alive: np.ndarray | None = None
        self.dropped = 0

    def alive(self) -> np.ndarray:
        """Which chunk ids still exist (read once per merger: every id of the library)."""
        if self._alive is None:
            rows = self.con.execute(select(CHUNKS.c.rowid))
            ids = np.fromiter((r[0] for r in rows), _DOC)
            mask = np.zeros(next_doc(self.con) + 1, dtype=bool)
            mask[ids] = True
            self._alive = mask
        return self._alive

    def merge_tails(self, terms: Iterable[str]) -> None:
        """Merge each term's newest fragments while the one before them is at most
        ``MERGE_RATIO`` times their size (fragment sizes then fall geometrically)."""
        for term in terms:
            sizes = self.con.execute(_FRAGMENT_SIZES, {"term": term}).all()
            first = len(sizes) - 1
            merged = sizes[first][1] if sizes else 0
            while first >= 1 and sizes[first - 1][1] <= MERGE_RATIO * merged:
                first -= 1
                merged += sizes[first][1]
            if first < len(sizes) - 1:
                self.merge(term, [f for f, _ in sizes[first:]])
        self.settle()

    def merge(self, term: str, frags: list[int]) -> None:
        """Merge ``frags``: the term's newest fragments, all of those from ``min(frags)``
        on (so one range condition selects them)."""
        these = {"term": term, "low": min(frags)}
        rows = self.con.execute(_TAIL, these).all()
        docs = np.concatenate([np.frombuffer(r[0], _DOC) for r in rows])
        freqs = np.concatenate([np.frombuffer(r[1], _SMALL) for r in rows])
        lens = np.concatenate([np.frombuffer(r[2], _SMALL) for r in rows])
        if self.drop_deleted:
            alive = self.alive()
            keep = alive[np.minimum(docs, len(alive) - 1)]
        else:
            keep = np.ones(len(docs), dtype=bool)
        self.dropped += int(len(docs) - keep.sum())
        self.con.execute(_DELETE_TAIL, these)
        if keep.any():
            self.con.execute(_INSERT, _row(term, max(frags), docs[keep], freqs[keep], lens[keep]))

    def settle(self) -> None:
        """Record the dropped postings in the statistics."""
        if self.dropped:
            meta = _meta(self.con)
            _set_meta(self.con, {"postings": max(0, meta["postings"] - self.dropped)})
            self.dropped = 0


# -- reads --------------------------------------------------------------------------------


def score(
    con: Connection, terms: Sequence[str], at_least: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """BM25 of the chunks containing the terms: ``(chunk ids, scores)``, unordered.

    A term in more than half of the chunks has FTS5's floor IDF (1e-6): it cannot
    change the order of chunks that match another term, so its postings (the longest)
    are read only when the other terms match fewer than ``at_least`` chunks.

    Call inside a read transaction so that the postings and the statistics agree.
    Ids of deleted chunks can be among them: join them to the chunks table.
    """
    empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
    meta = _meta(con)
    n_docs = meta.get("docs", 0)
    if not terms or n_docs <= 0:
        return empty
    sizes = {str(t): int(n) // _DOC.itemsize for t, n in con.execute(*_TERM_SIZES(list(terms)))}
    # In the question's order, so scores add up the same on every database.
    idfs = {t: _idf(n_docs, sizes[t]) for t in terms if t in sizes}
    informative = [t for t, idf in idfs.items() if idf > _IDF_FLOOR]
    acc = np.zeros(meta.get("next_doc", 1) + 1, dtype=np.float32)
    norms = K1 * (1.0 - B) + (K1 * B / max(meta.get("words", 0) / n_docs, 1.0)) * _LENGTHS
    _accumulate(con, informative, idfs, norms, acc)
    hit = np.flatnonzero(acc)
    if len(hit) < at_least and len(informative) < len(idfs):
        _accumulate(con, [t for t in idfs if t not in informative], idfs, norms, acc)
        hit = np.flatnonzero(acc)
    return hit, acc[hit]


_IDF_FLOOR = 1e-6
_LENGTHS = np.arange(65_536, dtype=np.float32)
_WEIGHTED = (TITLE_WEIGHT * (np.arange(65_536) >> 8) + (np.arange(65_536) & 255)).astype(
    np.float32
)  # packed frequency -> weighted term frequency


def _idf(n_docs: int, df: int) -> float:
    """FTS5's BM25 IDF, floored at 1e-6 for terms in half of the chunks or more."""
    return max(math.log((max(n_docs - df, 0) + 0.5) / (df + 0.5)), _IDF_FLOOR)


def _accumulate(
    con: Connection,
    terms: Sequence[str],
    idfs: Mapping[str, float],
    norms: np.ndarray,
    acc: np.ndarray,
) -> None:
    if not terms:
        return
    grouped: dict[str, list[tuple[bytes, bytes, bytes]]] = {}
    for name, docs, freqs, lens in con.execute(*_POSTINGS_OF(list(terms))):
        grouped.setdefault(name, []).append((docs, freqs, lens))
    for name in terms:
        parts = grouped.get(name)
        if not parts:
            continue
        docs = np.concatenate([np.frombuffer(p[0], _DOC) for p in parts])
        freqs = _WEIGHTED[np.concatenate([np.frombuffer(p[1], _SMALL) for p in parts])]
        norm = norms[np.concatenate([np.frombuffer(p[2], _SMALL) for p in parts])]
        acc[docs] += (idfs[name] * (K1 + 1.0)) * freqs / (freqs + norm)


EXHAUSTIVE = 50_000  # postings: below this, :func:`best` scores every match
DENSE = 1 << 18  # chunk ids: below this, one score per id (1 MB) is the fastest way


def best(
    con: Connection, terms: Sequence[str], n: int, at_least: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` best chunks for the terms by BM25: ``(chunk ids, scores)``, best first
    (ties by id), exactly as ``top(*score(con, terms, at_least), n)`` ranks them.

    Without scoring every match: a question's common words ("said", "government") are
    in a large share of a big library, so scoring every chunk that has any word costs
    time and memory in proportion to the library. This is MaxScore (Turtle and Flood,
    1995), a range of chunk ids at a time: each term can add at most its IDF times the
    best term frequency and shortest chunk in its postings. In each range the terms are
    read from the strongest down, and a cut rises with the ``n``-th best score known (the
    best ``n`` of earlier ranges, and the partial sums of this one); once the terms left
    could not lift a chunk they alone match up to the cut, they bring no new chunk and
    are only looked up (a binary search per window) for the chunks that still can make
    it. A chunk's score is then the sum of its terms' contributions in the question's
    order, as :func:`score` adds them, so both agree to the bit. The postings are read
    in ascending chunk id, ``_WINDOW`` at a time through SQLite's incremental BLOB I/O,
    and scored ``_RANGE`` chunk ids at a time, so a question's memory is bounded by
    those, not by the library (Postgres reads each term's rows whole).

    Call inside a read transaction. Ids of deleted chunks can be among them: join them
    to the chunks table (and ask for more when too few of them are left).
    """
    empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
    meta = _meta(con)
    n_docs = meta.get("docs", 0)
    if not terms or n_docs <= 0 or n <= 0:
        return empty
    stats = {
        str(r[0]): (int(r[1]), int(r[2]), int(r[3])) for r in con.execute(*_TERM_STATS(list(terms)))
    }
    ordered = [t for t in terms if t in stats]  # the question's order
    idfs = {t: _idf(n_docs, stats[t][0]) for t in ordered}
    informative = [t for t in ordered if idfs[t] > _IDF_FLOOR]
    if meta.get("next_doc", 1) <= DENSE:  # small enough to score every match at once
        return _ranked(*score(con, terms, at_least), n)
    with_common = informative + [t for t in ordered if t not in informative]  # score()'s order
    norms = K1 * (1.0 - B) + (K1 * B / max(meta.get("words", 0) / n_docs, 1.0)) * _LENGTHS
    if sum(stats[t][0] for t in informative) <= max(EXHAUSTIVE, n):
        ids, scores = _sparse_scores(con, informative, idfs, norms)
        if len(ids) < at_least and len(informative) < len(ordered):
            ids, scores = _sparse_scores(con, with_common, idfs, norms)
        return _ranked(ids, scores, n)
    if max(stats[t][0] for t in informative) < at_least and len(informative) < len(ordered):
        # The informative terms may match too few chunks: then the common ones count too
        # (as in :func:`score`); the rare case of a big library asked only common words.
        ids, scores = _sparse_scores(con, informative, idfs, norms)
        if len(ids) < at_least:
            ids, scores = _sparse_scores(con, with_common, idfs, norms)
        return _ranked(ids, scores, n)
    bound = {}
    for t in informative:
        _, fmax, lmin = stats[t]  # fmax: a weighted frequency; 65,535 when unknown
        f = float(fmax)
        saturation = f / (f + float(norms[min(lmin, 65_535)])) if fmax < 65_535 else 1.0
        bound[t] = idfs[t] * (K1 + 1.0) * saturation
    by_bound = sorted(informative, key=lambda t: -bound[t])  # the strongest first
    best_ids = np.zeros(0, dtype=np.int64)
    best_scores = np.zeros(0, dtype=np.float32)
    with contextlib.ExitStack() as stack:
        postings = {t: _Postings(con, t, idfs[t], norms, stack) for t in informative}
        for low in range(0, meta.get("next_doc", 1) + 1, _RANGE):
            high = low + _RANGE
            # A score at least n chunks reach in the end (the best n so far, exact, and
            # this range's partial sums), less a margin for float rounding.
            cut = _cut(best_scores, n)
            parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
            cand = np.zeros(0, dtype=np.int64)
            partial = np.zeros(0, dtype=np.float64)
            read = 0
            while read < len(by_bound):
                if sum(bound[u] for u in by_bound[read:]) < cut:
                    break  # a chunk only the remaining terms match scores below the n-th
                t = by_bound[read]
                parts[t] = postings[t].take(high)
                cand, partial = _union_add(cand, partial, *parts[t])
                later = sum(bound[u] for u in by_bound[read + 1 :])
                if len(cand) and later < float(partial.max()):  # else no cut could stop it
                    cut = max(cut, _cut(np.concatenate([best_scores, partial]), n))
                read += 1
            remaining = by_bound[read:]
            if remaining and len(cand):
                cand = cand[partial + sum(bound[u] for u in remaining) >= cut]
            for t in remaining:  # read past this range even when no chunk is left in it
                parts[t] = postings[t].take(high, only=cand)
            if not len(cand):
                continue
            scores = np.zeros(len(cand), dtype=np.float32)
            for t in informative:  # in the question's order, as score() adds them up
                docs, contrib = parts[t]
                at = np.minimum(np.searchsorted(cand, docs), len(cand) - 1)
                kept = cand[at] == docs  # pruned chunks are not among them
                scores[at[kept]] += contrib[kept]
            best_ids, best_scores = _ranked(
                np.concatenate([best_ids, cand]), np.concatenate([best_scores, scores]), n
            )
    return best_ids, best_scores


def _cut(scores: np.ndarray, n: int) -> float:
    """The n-th highest of ``scores`` less a margin for float rounding (-inf if fewer)."""
    if len(scores) < n:
        return -math.inf
    theta = float(np.partition(scores, len(scores) - n)[len(scores) - n])
    return theta - 1e-5 * abs(theta) - 1e-6


def _union_add(
    cand: np.ndarray, partial: np.ndarray, docs: np.ndarray, contrib: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Add a term's contributions to the running candidates (both sorted by id)."""
    if not len(cand):
        return docs, contrib.astype(np.float64)
    at = np.searchsorted(cand, docs)
    known = cand[np.minimum(at, len(cand) - 1)] == docs
    partial = partial.copy()
    partial[at[known]] += contrib[known]
    new = ~known  # inserted at their sorted places (positions ascending: one pass)
    return np.insert(cand, at[new], docs[new]), np.insert(partial, at[new], contrib[new])


def _ranked(ids: np.ndarray, scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` best ``(ids, scores)`` as arrays, best first (ties by id, for stable
    results)."""
    if len(ids) > n:
        # The n-th best score; of the chunks tied with it, those with the lowest ids (a
        # plain argpartition would keep any of them, so the cut would depend on the order).
        kth = np.partition(scores, len(scores) - n)[len(scores) - n]
        above = np.flatnonzero(scores > kth)
        tied = np.flatnonzero(scores == kth)
        tied = tied[np.argsort(ids[tied], kind="stable")][: n - len(above)]
        part = np.concatenate([above, tied])
        ids, scores = ids[part], scores[part]
    order = np.lexsort((ids, -scores))
    return ids[order].astype(np.int64, copy=False), scores[order]


def _term_scores(
    con: Connection, name: str, idf: float, norms: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A term's postings whole, as ``(chunk ids ascending, contributions)``."""
    ids: list[np.ndarray] = []
    contribs: list[np.ndarray] = []
    for d, f, n in con.execute(_POSTINGS_OF_TERM, {"term": name}):
        ids.append(np.frombuffer(d, _DOC).astype(np.int64))
        contribs.append(
            _contributions(idf, norms, np.frombuffer(f, _SMALL), np.frombuffer(n, _SMALL))
        )
    if not ids:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    docs = np.concatenate(ids)
    contrib = np.concatenate(contribs)
    order = np.argsort(docs, kind="stable")
    return docs[order], contrib[order]


def _contributions(
    idf: float, norms: np.ndarray, freqs: np.ndarray, lens: np.ndarray
) -> np.ndarray:
    """What a term adds to the BM25 of each chunk of its postings (float32, as
    :func:`score` adds it)."""
    f = _WEIGHTED[freqs]
    return (idf * (K1 + 1.0)) * f / (f + norms[lens])


_RANGE = 1 << 17  # chunk ids :func:`best` scores at a time (its memory is bounded by it)
_WINDOW = 16_384  # postings read from the database at a time (64 KB of chunk ids)
_ROWS_OF_TERM = "SELECT rowid FROM lex_postings WHERE term = ? ORDER BY frag"


class _Postings:
    """One term's postings, taken in ascending chunk id order a range at a time: a
    common word's postings in a big library are megabytes, and a range needs a slice."""

    def __init__(
        self,
        con: Connection,
        name: str,
        idf: float,
        norms: np.ndarray,
        stack: contextlib.ExitStack,
    ) -> None:
        self.idf, self.norms = idf, norms
        self.fragments: list[_Fragment]
        if con.dialect.name == "sqlite":  # read in windows through incremental BLOB I/O
            raw = con.connection.driver_connection
            rows = raw.execute(_ROWS_OF_TERM, (name,)).fetchall()  # type: ignore[union-attr]
            self.fragments = [_BlobFragment(raw, rowid, stack) for (rowid,) in rows]
        else:  # on a server (Postgres): windows of each row, read with substring()
            self.fragments = [
                _WindowFragment(con, name, int(frag), int(size))
                for frag, size in con.execute(_FRAGMENT_SIZES, {"term": name})
            ]

    def take(self, high: int, only: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(chunk ids ascending, contributions)`` of the postings below ``high`` not
        taken yet; with ``only`` (sorted chunk ids), just those chunks' postings."""
        ids: list[np.ndarray] = []
        contribs: list[np.ndarray] = []
        for fragment in self.fragments:
            for docs, freqs, lens in fragment.take(high, only):
                ids.append(docs.astype(np.int64))
                contribs.append(_contributions(self.idf, self.norms, freqs, lens))
        if not ids:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if len(ids) == 1:
            return ids[0], contribs[0]
        docs = np.concatenate(ids)
        contrib = np.concatenate(contribs)
        order = np.argsort(docs, kind="stable")
        return docs[order], contrib[order]


class _Fragment:
    """A fragment's postings (ascending chunk ids) read from a position onwards."""

    total = 0
    pos = 0  # postings taken so far
    start = 0  # position of ``window``'s first chunk id
    window = np.zeros(0, dtype=_DOC)

    def _docs(self, pos: int) -> np.ndarray:
        raise NotImplementedError

    def _small(self, which: str, first: int, last: int) -> np.ndarray:
        raise NotImplementedError

    def take(
        self, high: int, only: np.ndarray | None
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        while self.pos < self.total:
            if self.pos >= self.start + len(self.window):
                self.start, self.window = self.pos, self._docs(self.pos)
            docs = self.window[self.pos - self.start :]
            below = int(np.searchsorted(docs, high))
            first = self.pos
            self.pos += below
            if below:
                docs = docs[:below]
                if only is None:
                    yield (
                        docs,
                        self._small("freqs", first, self.pos),
                        self._small("lens", first, self.pos),
                    )
                else:
                    low = int(np.searchsorted(only, docs[0]))
                    top = int(np.searchsorted(only, docs[-1], side="right"))
                    if low < top:
                        at = np.searchsorted(docs, only[low:top])
                        at = at[docs[np.minimum(at, below - 1)] == only[low:top]]
                        if len(at):
                            a, b = first + int(at[0]), first + int(at[-1]) + 1  # just that span
                            yield (
                                docs[at],
                                self._small("freqs", a, b)[at - (a - first)],
                                self._small("lens", a, b)[at - (a - first)],
                            )
            if self.pos < self.start + len(self.window):
                return  # the next posting is at or past ``high``


class _BlobFragment(_Fragment):
    def __init__(self, raw: Any, rowid: int, stack: contextlib.ExitStack) -> None:
        self.blobs = {
            column: stack.enter_context(raw.blobopen("lex_postings", column, rowid, readonly=True))
            for column in ("docs", "freqs", "lens")
        }
        self.total = len(self.blobs["docs"]) // _DOC.itemsize

    def _docs(self, pos: int) -> np.ndarray:
        blob = self.blobs["docs"]
        blob.seek(pos * _DOC.itemsize)
        return np.frombuffer(blob.read(_WINDOW * _DOC.itemsize), _DOC)

    def _small(self, which: str, first: int, last: int) -> np.ndarray:
        blob = self.blobs[which]
        blob.seek(first * _SMALL.itemsize)
        return np.frombuffer(blob.read((last - first) * _SMALL.itemsize), _SMALL)


class _WindowFragment(_Fragment):
    """A fragment in a server's database: ``_WINDOW`` postings at a time, each window one
    query for the three arrays' slices (``substring`` on bytea), so a common word's
    postings are never in memory whole. The column storage is ``EXTERNAL`` (uncompressed,
    see :func:`rag.database.create_schema`): a slice then reads only its own pages."""

    def __init__(self, con: Connection, term: str, frag: int, total: int) -> None:
        self.con, self.term, self.frag = con, term, frag
        self.total = total
        self.small_start = 0
        self.small: dict[str, np.ndarray] = {}

    def _docs(self, pos: int) -> np.ndarray:
        docs, freqs, lens = self.con.execute(
            _WINDOW_OF,
            {
                "term": self.term,
                "frag": self.frag,
                "d_from": pos * _DOC.itemsize + 1,  # SQL counts bytes from 1
                "d_for": _WINDOW * _DOC.itemsize,
                "s_from": pos * _SMALL.itemsize + 1,
                "s_for": _WINDOW * _SMALL.itemsize,
            },
        ).one()
        self.small_start = pos
        self.small = {"freqs": np.frombuffer(freqs, _SMALL), "lens": np.frombuffer(lens, _SMALL)}
        return np.frombuffer(docs, _DOC)

    def _small(self, which: str, first: int, last: int) -> np.ndarray:
        # take() asks only for positions inside the window _docs read last.
        return self.small[which][first - self.small_start : last - self.small_start]


def _sparse_scores(
    con: Connection, terms: Sequence[str], idfs: Mapping[str, float], norms: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Every chunk matching the terms with its score, added up in the terms' order."""
    parts = [_term_scores(con, t, idfs[t], norms) for t in terms]
    parts = [(d, c) for d, c in parts if len(d)]
    if not parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    ids = np.unique(np.concatenate([d for d, _ in parts]))
    scores = np.zeros(len(ids), dtype=np.float32)
    for docs, contrib in parts:
        scores[np.searchsorted(ids, docs)] += contrib
    return ids, scores


def frequencies(con: Connection, words: Sequence[str]) -> tuple[int, dict[str, int]]:
    """Live chunk count, and how many chunks hold each word in their body (a title word
    is in every chunk of its article).

    A word of several tokens ("mcdonald's", "u.s") counts as its rarest token (an upper
    bound of FTS5's phrase count); a word of stopwords only ("it's") is in every chunk.
    Postings of chunks deleted since their last merge still count: a small overestimate.
    """
    n_docs = _meta(con).get("docs", 0)
    parts = {w: [term(t) for t in tokens(w) if t not in STOPWORDS] for w in words}
    wanted = sorted({t for ts in parts.values() for t in ts})
    if not wanted:
        return n_docs, dict.fromkeys(words, n_docs)
    rows = con.execute(
        select(LEX_POSTINGS.c.term, LEX_POSTINGS.c.freqs).where(LEX_POSTINGS.c.term.in_(wanted))
    )
    by_term: dict[str, int] = {}
    for name, freqs in rows:
        in_body = int(np.count_nonzero(np.frombuffer(freqs, _SMALL) & 255))
        by_term[str(name)] = by_term.get(str(name), 0) + in_body
    # A word made only of stopwords ("it's") is as common as they are.
    return n_docs, {
        w: min((by_term.get(t, 0) for t in ts), default=n_docs) for w, ts in parts.items()
    }


def top(ids: np.ndarray, scores: np.ndarray, n: int) -> list[tuple[int, float]]:
    """The ``n`` best ``(id, score)``, best first (ties by id, for stable results)."""
    best_ids, best_scores = _ranked(ids, scores, n)
    return list(zip(best_ids.tolist(), best_scores.tolist(), strict=True))


class LexicalIndex(Protocol):
    """BM25 over the chunks. Postings are written in the record store's transaction
    (``con``), so a chunk and its postings become visible together.

    Every implementation passes tests/test_parts.py (same ranking as SQLite's FTS5).
    """

    def ensure_built(self, con: Connection) -> bool: ...
    def next_doc(self, con: Connection) -> int: ...
    def add(self, con: Connection, docs: Sequence[tuple[int, Analyzed]]) -> None: ...
    def forget(self, con: Connection, chunks: int, words_total: int, postings: int) -> None: ...
    def clear(self, con: Connection) -> None: ...
    def compact(self, con: Connection) -> None: ...
    def score(
        self, con: Connection, terms: Sequence[str], at_least: int = 0
    ) -> tuple[np.ndarray, np.ndarray]: ...
    def best(
        self, con: Connection, terms: Sequence[str], n: int, at_least: int = 0
    ) -> tuple[np.ndarray, np.ndarray]: ...
    def frequencies(self, con: Connection, words: Sequence[str]) -> tuple[int, dict[str, int]]: ...


class SqlLexicalIndex:
    """The postings in the record database (tables ``lex_postings``, ``lex_meta``), on
    SQLite or Postgres alike.

    Example:
        >>> from rag.database import create_schema, open_engine, write_transaction
        >>> engine = open_engine("sqlite://")
        >>> create_schema(engine)
        >>> with write_transaction(engine) as con:
        ...     SqlLexicalIndex().ensure_built(con)
        True
    """

    def ensure_built(self, con: Connection) -> bool:
        """Build the postings when another version (or none) wrote them, or fill in the
        rows' bounds when an older version wrote them; True if it wrote anything."""
        if not needs_build(con):
            return False
        if _meta(con).get("version") != VERSION:
            build(con)
        else:
            logger.info("adding search bounds to the BM25 index (once, after an upgrade)")
            fill_bounds(con)
        return True

    def next_doc(self, con: Connection) -> int:
        return next_doc(con)

    def add(self, con: Connection, docs: Sequence[tuple[int, Analyzed]]) -> None:
        add(con, docs)

    def forget(self, con: Connection, chunks: int, words_total: int, postings: int) -> None:
        forget(con, chunks, words_total, postings)

    def clear(self, con: Connection) -> None:
        clear(con)

    def compact(self, con: Connection) -> None:
        compact(con)

    def score(
        self, con: Connection, terms: Sequence[str], at_least: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        return score(con, terms, at_least)

    def best(
        self, con: Connection, terms: Sequence[str], n: int, at_least: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        return best(con, terms, n, at_least)

    def frequencies(self, con: Connection, words: Sequence[str]) -> tuple[int, dict[str, int]]:
        return frequencies(con, words)
