"""The BM25 index (rag.lexical) inside a real Library (real embedded Chroma, real SQLite).

SQLite's own FTS5 is the reference: it ranked newsrag's BM25 before, and the new index
must rank the same chunks with the same scores.
"""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from rag import lexical
from rag.components import build_index
from rag.records import Article, Chunk
from rag.search import LexicalSearch
from rag.store import Filters, Library
from tests.conftest import make_settings

TOPICS = [
    "Meloni proposed extending NATO's Article 5 protection to Ukraine without membership.",
    "The central bank raised interest rates again as inflation stayed high in Europe.",
    "Gas prices fell slightly but remain far above last year's record levels.",
    "The World Cup final drew a record audience; Argentina beat France on penalties.",
    "Ukraine asked its allies for air defence systems before the winter.",
    "Mustard is missing from French supermarkets after a poor harvest in Canada.",
    "LeBron James signed a contract extension and became the highest paid player.",
    "Heavy rain flooded Pakistan; the government asked for international help.",
]


def _article(n: int, text: str, title: str | None = None) -> tuple[Article, list[Chunk]]:
    article = Article(
        article_id=f"a{n:04d}",
        title=title or f"Story {n}: {text.split()[0]} {text.split()[-1]}",
        text=text,
        source=f"outlet{n % 3}.example",
        origin=f"test:{n}",
        url=None,
        published=date(2022, 7, 1 + n % 28),
    )
    sentences = [s.strip() + "." for s in text.split(".") if s.strip()]
    chunks, start = [], 0
    for i, sentence in enumerate(sentences):
        chunks.append(
            Chunk(
                chunk_id=f"{article.article_id}:{i}",
                article_id=article.article_id,
                index=i,
                text=sentence,
                start=start,
                end=start + len(sentence),
            )
        )
        start += len(sentence) + 1
    return article, chunks


def _write(index: Library, articles: list[tuple[Article, list[Chunk]]]) -> None:
    rng = np.random.default_rng(len(articles))
    batch = []
    for article, chunks in articles:
        vectors = rng.standard_normal((len(chunks), 8)).astype(np.float32)
        batch.append((article, chunks, vectors / np.linalg.norm(vectors, axis=1, keepdims=True)))
    index.writer.write(batch)


def _corpus(size: int) -> list[tuple[Article, list[Chunk]]]:
    rng = np.random.default_rng(size)
    articles = []
    for n in range(size):
        picks = rng.choice(len(TOPICS), size=3, replace=False)
        articles.append(_article(n, " ".join(TOPICS[p] for p in picks)))
    return articles


@pytest.fixture
def index(tmp_path: Path) -> Library:
    return build_index(make_settings(tmp_path / "data"))


def _fts5_ranking(index: Library, query: str, k: int) -> list[tuple[str, float]]:
    """What the FTS5 index of earlier versions returned for ``query``."""
    con = sqlite3.connect(":memory:")
    con.execute(
        "CREATE VIRTUAL TABLE f USING fts5(chunk_id UNINDEXED, title, body, "
        "tokenize = 'porter unicode61 remove_diacritics 2')"
    )
    rows = sqlite3.connect(index.db_path).execute(
        "SELECT c.chunk_id, a.title, c.text FROM chunks c JOIN articles a USING (article_id)"
    )
    con.executemany("INSERT INTO f VALUES (?,?,?)", rows.fetchall())
    match = " OR ".join(f'"{t}"' for t in lexical.tokens(query) if len(t) > 1)
    found = con.execute(
        "SELECT chunk_id, -bm25(f, 0.0, 2.0, 1.0) AS s FROM f WHERE f MATCH ? "
        "ORDER BY s DESC, chunk_id LIMIT ?",
        (match, k),
    )
    return [(str(c), float(s)) for c, s in found]


@pytest.mark.parametrize(
    "query",
    [
        "Meloni NATO Ukraine",
        "record gas prices Europe",
        "highest paid player contract",
        "story Meloni",  # "story" is in every title: FTS5's floor IDF
    ],
)
def test_bm25_ranks_chunks_as_sqlite_fts5_did(index: Library, query: str) -> None:
    _write(index, _corpus(40))
    ours = LexicalSearch.of(index).search(query, 1000, Filters())
    reference = _fts5_ranking(index, query, 1000)
    assert len(ours) == len(reference) > 10
    assert [s for _, s in ours] == pytest.approx([s for _, s in reference], rel=1e-4)
    assert dict(ours) == pytest.approx(dict(reference), rel=1e-4)


def test_a_word_in_most_chunks_is_skipped_without_changing_the_best_matches(
    index: Library,
) -> None:
    _write(index, _corpus(40))
    ours = LexicalSearch.of(index).search("story Meloni", 5, Filters())
    reference = _fts5_ranking(index, "story Meloni", 5)
    assert [s for _, s in ours] == pytest.approx([s for _, s in reference], rel=1e-4)


def test_an_edited_article_is_found_by_its_new_words_only(index: Library) -> None:
    _write(index, _corpus(12))
    _write(index, [_article(3, "Flamingos gathered at the salt lake in Kenya.")])
    assert [c for c, _ in LexicalSearch.of(index).search("flamingos", 5, Filters())] == ["a0003:0"]
    _write(index, [_article(3, "Pelicans gathered at the salt lake in Kenya.")])
    assert not LexicalSearch.of(index).search("flamingos", 5, Filters())
    assert [c for c, _ in LexicalSearch.of(index).search("pelicans", 5, Filters())] == ["a0003:0"]
    index.writer.delete(["a0003"])
    assert not LexicalSearch.of(index).search("pelicans kenya", 5, Filters())


def test_chunk_ids_are_never_reused_so_old_postings_cannot_match_new_chunks(
    index: Library,
) -> None:
    _write(index, [_article(1, "Zebras crossed the river.")])
    index.writer.delete(["a0001"])
    _write(index, [_article(2, "Giraffes ate the leaves.")])  # would take the freed rowid
    assert not LexicalSearch.of(index).search("zebras river", 5, Filters())


def test_postings_stay_in_few_fragments_and_compaction_drops_deleted_chunks(
    index: Library,
) -> None:
    for n in range(64):  # one write per article: the worst case for fragmentation
        _write(index, [_article(n, TOPICS[n % len(TOPICS)])])
    con = sqlite3.connect(index.db_path)
    worst = con.execute(
        "SELECT max(n) FROM (SELECT count(*) AS n FROM lex_postings GROUP BY term)"
    ).fetchone()[0]
    assert worst <= 6  # log_4(64) + 1 fragments, not one per write
    for n in range(0, 64, 2):
        _write(index, [_article(n, TOPICS[(n + 1) % len(TOPICS)])])  # changes half of them
    with index.records.transaction() as tx:
        lexical.compact(tx)
    meta = dict(con.execute("SELECT key, value FROM lex_meta").fetchall())
    assert meta["postings"] == meta["live_postings"]
    stored = sum(
        len(blob) // 4 for (blob,) in con.execute("SELECT docs FROM lex_postings").fetchall()
    )
    assert stored == meta["live_postings"]
    assert meta["docs"] == con.execute("SELECT count(*) FROM chunks").fetchone()[0]


def test_filters_apply_to_bm25_even_when_the_best_matches_are_filtered_out(
    index: Library,
) -> None:
    articles = _corpus(60)
    articles.append(_article(99, "Meloni met the mayor of a small town."))
    _write(index, articles)
    only = Filters(sources=("outlet0.example",))
    found = LexicalSearch.of(index).search("Meloni", 5, only)
    assert len(found) == 5
    ids = {c.split(":")[0] for c, _ in found}
    assert all(int(i[1:]) % 3 == 0 for i in ids)


def test_a_record_database_with_the_old_fts5_index_is_upgraded_on_open(
    index: Library, tmp_path: Path
) -> None:
    _write(index, _corpus(20))
    before = LexicalSearch.of(index).search("Ukraine allies winter", 10, Filters())
    con = sqlite3.connect(index.db_path)
    con.executescript(
        "DROP TABLE lex_postings; DROP TABLE lex_meta; "
        "CREATE VIRTUAL TABLE chunks_fts USING fts5(title, body);"
    )
    con.close()
    reopened = build_index(make_settings(tmp_path / "data"))
    assert LexicalSearch.of(reopened).search("Ukraine allies winter", 10, Filters()) == before
    schema = sqlite3.connect(index.db_path).execute("SELECT name FROM sqlite_master")
    tables = {r[0] for r in schema}
    assert "chunks_fts" not in tables


def test_opening_a_database_another_process_is_upgrading_says_so(
    index: Library, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rag.errors import StoreError

    _write(index, _corpus(5))
    con = sqlite3.connect(index.db_path, isolation_level=None)
    con.execute("DELETE FROM lex_meta WHERE key='version'")  # as if written by an old version
    con.execute("BEGIN IMMEDIATE")  # the other process, still building
    monkeypatch.setattr(Library, "busy_seconds", 0.2)
    with pytest.raises(StoreError, match="another newsrag process is writing it"):
        build_index(make_settings(tmp_path / "data"))
    con.execute("ROLLBACK")
    assert LexicalSearch.of(build_index(make_settings(tmp_path / "data"))).search(
        "Ukraine", 3, Filters()
    )


def test_word_frequencies_count_chunks_whose_body_has_the_word(index: Library) -> None:
    _write(index, _corpus(30))
    total, freqs = LexicalSearch.of(index).frequencies(["ukraine", "flamingo", "it's"])
    con = sqlite3.connect(index.db_path)
    assert total == con.execute("SELECT count(*) FROM chunks").fetchone()[0]
    body = con.execute("SELECT count(*) FROM chunks WHERE text LIKE '%Ukraine%'").fetchone()[0]
    assert freqs == {"ukraine": body, "flamingo": 0, "it's": total}


def _zipf_library(n_chunks: int, seed: int, url: str) -> tuple[object, list[str]]:
    """A record database with BM25 postings of random Zipf-worded chunks, written in
    several fragments, some chunks deleted (their postings stay until merged)."""
    from sqlalchemy import delete

    from rag.database import CHUNKS, create_schema, open_engine, write_transaction

    rng = np.random.default_rng(seed)
    vocabulary = [f"w{i}x" for i in range(400)]
    p = 1.0 / np.arange(1, len(vocabulary) + 1)
    engine = open_engine(url)
    create_schema(engine)
    with write_transaction(engine) as con:
        index = lexical.SqlLexicalIndex()
        index.ensure_built(con)
        doc = 1
        for _ in range(4):  # four writes: several fragments per term
            docs = []
            for _ in range(n_chunks // 4):
                words = rng.choice(len(vocabulary), size=int(rng.integers(5, 60)), p=p / p.sum())
                title = " ".join(vocabulary[w] for w in words[:3])
                body = " ".join(vocabulary[w] for w in words[3:])
                docs.append((doc, lexical.analyze(title, body)))
                doc += 1
            lexical._append(con, docs, merge=False)
        con.execute(delete(CHUNKS))  # no chunk rows: deletion is the join's business
        lexical.forget(con, n_chunks // 10, 0, 0)
    return engine, vocabulary


@pytest.mark.parametrize("seed", [1, 2])
def test_the_best_chunks_found_without_reading_every_posting_are_those_of_scoring_all(
    seed: int, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A big library's question reads only part of its common words' postings (MaxScore);
    # forced here on a small one, it must give the exhaustive ranking to the bit.
    engine, vocabulary = _zipf_library(4_000, seed, database_url)
    monkeypatch.setattr(lexical, "EXHAUSTIVE", 0)
    monkeypatch.setattr(lexical, "DENSE", 0)
    monkeypatch.setattr(lexical, "_WINDOW", 97)  # each database reads postings in windows
    monkeypatch.setattr(lexical, "_RANGE", 301)  # and scores the chunks a range at a time
    rng = np.random.default_rng(seed + 10)
    pruned = 0
    with engine.connect() as con:
        for _ in range(60):
            # a question mixes rare and common words, sometimes repeats or misses one
            words = [vocabulary[int(i)] for i in rng.integers(0, 400, size=3)]
            words += [vocabulary[int(i)] for i in rng.integers(0, 8, size=2)] + ["absentword"]
            terms = lexical.query_terms(" ".join(words))
            for n in (1, 10, 50, 200):
                ids, scores = lexical.score(con, terms)
                expected = lexical.top(ids, scores, n)
                got_ids, got_scores = lexical.best(con, terms, n)
                assert [
                    (int(d), float(s)) for d, s in zip(got_ids, got_scores, strict=True)
                ] == expected
    # the test must exercise the pruning, not only the fallbacks
    with engine.connect() as con:
        terms = lexical.query_terms(f"{vocabulary[284]} {vocabulary[240]} {vocabulary[11]}")
        calls: list[np.ndarray | None] = []
        original = lexical._Fragment.take

        def spy(self, high, only):  # type: ignore[no-untyped-def]
            calls.append(only)
            return original(self, high, only)

        monkeypatch.setattr(lexical._Fragment, "take", spy)
        lexical.best(con, terms, 10)
        pruned = sum(1 for c in calls if c is not None)
    assert pruned >= 1
    # ...and each database's postings are read a window at a time, never a row whole.
    windows: list[int] = []
    for kind in (lexical._BlobFragment, lexical._WindowFragment):

        def counted(self, pos, read=kind._docs):  # type: ignore[no-untyped-def]
            windows.append(pos)
            return read(self, pos)

        monkeypatch.setattr(kind, "_docs", counted)
    with engine.connect() as con:
        lexical.best(con, terms, 10)
    assert any(pos > 0 for pos in windows), "a common word's row was read in windows"
    if engine.dialect.name == "postgresql":  # uncompressed, so a window reads its own pages
        with engine.connect() as con:
            storage = con.exec_driver_sql(
                "SELECT attstorage FROM pg_attribute WHERE attrelid = 'lex_postings'::regclass "
                "AND attname IN ('docs', 'freqs', 'lens')"
            ).scalars()
            assert list(storage) == ["e", "e", "e"]


def test_postings_written_before_their_bounds_existed_get_them_on_the_first_open(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import delete, select, update

    from rag.database import LEX_META, LEX_POSTINGS, write_transaction

    engine, vocabulary = _zipf_library(2_000, 4, database_url)
    p = LEX_POSTINGS.c
    with engine.connect() as con:
        written = {
            (r.term, r.frag): (r.n, r.fmax, r.lmin) for r in con.execute(select(LEX_POSTINGS))
        }
        terms = lexical.query_terms(" ".join(vocabulary[280:300]))
        before = lexical.top(*lexical.score(con, terms), 20)
    with write_transaction(engine) as con:  # as an older version left them
        con.execute(update(LEX_POSTINGS).values(n=None, fmax=None, lmin=None))
        con.execute(delete(LEX_META).where(LEX_META.c.key == "bounds"))
    with engine.connect() as con:
        assert lexical.needs_build(con)
        # unbounded rows are still searched right, only with less pruning
        monkeypatch.setattr(lexical, "EXHAUSTIVE", 0)
        monkeypatch.setattr(lexical, "DENSE", 0)
        ids, scores = lexical.best(con, terms, 20)
        assert [(int(d), float(s)) for d, s in zip(ids, scores, strict=True)] == before
    with write_transaction(engine) as con:
        assert lexical.SqlLexicalIndex().ensure_built(con)
    with engine.connect() as con:
        assert not lexical.needs_build(con)
        filled = {
            (r.term, r.frag): (r.n, r.fmax, r.lmin) for r in con.execute(select(LEX_POSTINGS))
        }
        assert filled == written and all(v[0] > 0 for v in filled.values())
        assert con.execute(select(p.term).where(p.n.is_(None))).first() is None
