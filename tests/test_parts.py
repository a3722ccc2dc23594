"""The index's parts, each through its interface, on every store newsrag supports.

One suite per part (record store, lexical index, writer, library lock), run against the
embedded SQLite file and a real Postgres server (tests/conftest.py starts one), and one
for the vector index, run against embedded Chroma and a real `chroma run`: a second
implementation is only done when it passes the same tests as the first.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import delete, func, insert, select

from rag import lexical
from rag.assistant import Assistant
from rag.components import build_index, build_vector_index
from rag.database import CHUNKS, EMBEDDING_CACHE, LEX_META, LEX_POSTINGS, LIBRARY_STATE
from rag.embeddings import LocalEmbeddings
from rag.errors import StoreBusyError
from rag.lexical import SqlLexicalIndex
from rag.locking import LibraryLock, Lock, PostgresLibraryLock
from rag.record_store import (
    ArticleList,
    ChunkRow,
    Filters,
    SqlRecordStore,
    StoryRow,
    VectorCheck,
    pack_rows,
    unpack_rows,
)
from rag.records import Article, Chunk
from rag.retrieval import HybridSearcher
from rag.search import LexicalSearch
from rag.store import Library, open_record_store
from rag.vectors import VectorIndex
from rag.writer import LibraryWriter
from tests.conftest import ROOT, make_settings
from tests.test_lexical import _article, _corpus, _write

pytestmark = pytest.mark.slow


@pytest.fixture
def records(database_url: str) -> SqlRecordStore:
    return open_record_store(database_url)


@pytest.fixture
def index(database_url: str, tmp_path: Path) -> Library:
    return build_index(make_settings(tmp_path / "data", database_url=database_url))


def _store(
    records: SqlRecordStore, article: Article, chunks: list[Chunk], first_rowid: int = 1
) -> None:
    with records.transaction() as con:
        records.mark(con, [article], "pending")
    keys = {chunk.chunk_id: f"key-{chunk.text}" for chunk in chunks}
    records.cache_vectors(
        {key: np.ones(4, dtype=np.float32) for key in keys.values()},
        {key: pack_rows(np.eye(2, 4, dtype=np.float32)) for key in keys.values()},
    )
    with records.transaction() as con:
        records.delete_chunks(con, [article.article_id])
        rows = [
            ChunkRow(first_rowid + n, chunk, keys[chunk.chunk_id], 5, 3)
            for n, chunk in enumerate(chunks)
        ]
        records.insert_chunks(con, article.article_id, rows)
        records.complete(con, article, len(chunks))
        records.bump_generation(con)


# -- the record store ------------------------------------------------------------------


def test_a_pending_article_is_listed_but_none_of_its_chunks_is_searchable(
    records: SqlRecordStore,
) -> None:
    article, chunks = _article(1, "Zebras crossed the river. They swam.")
    with records.transaction() as con:
        records.mark(con, [article], "pending")
        records.insert_chunks(
            con, article.article_id, [ChunkRow(n + 1, c, None, 3, 2) for n, c in enumerate(chunks)]
        )
    assert records.get_records()["a0001"].status == "pending"
    assert records.pending_ids() == ["a0001"]
    assert records.chunks_by_id(["a0001:0"]) == {}
    assert records.stats().articles == 0 and records.stats().pending == 1


def test_a_complete_article_returns_its_chunks_with_their_article_and_sentence_vectors(
    records: SqlRecordStore,
) -> None:
    article, chunks = _article(2, "Giraffes ate the leaves. Then they slept.")
    _store(records, article, chunks)
    found = records.chunks_by_id(["a0002:1", "a0002:0", "nope:0"])
    assert set(found) == {"a0002:0", "a0002:1"}
    assert found["a0002:1"].text == "Then they slept."
    assert found["a0002:1"].title == article.title
    assert found["a0002:1"].published == date(2022, 7, 3)
    assert records.sentence_vectors(["a0002:0"])["a0002:0"].shape == (2, 4)
    assert records.chunk_ids_of(["a0002"]) == {"a0002:0": "a0002", "a0002:1": "a0002"}
    assert records.article_chunks("a0002") == [
        (0, "Giraffes ate the leaves."),
        (1, "Then they slept."),
    ]
    assert records.find_by_text_hash(article.text_hash) is not None
    stats = records.stats()
    assert (stats.articles, stats.chunks, stats.pending) == (1, 2, 0)
    assert stats.sources == (("outlet2.example", 1),)
    assert records.newest_published(date(2022, 12, 31)) == date(2022, 7, 3)
    assert records.newest_published(date(2022, 7, 2)) is None


def test_filters_keep_the_chunks_of_the_sources_and_dates_asked_for(
    records: SqlRecordStore,
) -> None:
    for n in range(6):
        article, chunks = _article(n, f"Story number {n} happened.")
        _store(records, article, chunks, first_rowid=10 * n + 1)
    ids = [f"a{n:04d}:0" for n in range(6)]
    by_source = records.passing("chunk_id", ids, Filters(sources=("outlet1.example",)), True)
    assert sorted(by_source) == ["a0001:0", "a0004:0"]
    dated = Filters(date_from=date(2022, 7, 3), date_to=date(2022, 7, 5))
    assert sorted(records.passing("chunk_id", ids, dated, True)) == [
        "a0002:0",
        "a0003:0",
        "a0004:0",
    ]
    as_of = Filters(as_of=date(2022, 7, 2), exclude_ids=("a0000",))
    assert records.passing("rowid", [1, 11, 21], as_of, True) == {11: "a0001:0"}


def test_the_library_table_is_searched_sorted_and_paged_by_the_database(
    records: SqlRecordStore,
) -> None:
    def story(n: int, title: str, day: date | None, url: str | None = None) -> Article:
        return Article(
            f"t{n:02d}", title, f"Text {n}.", url or f"desk{n % 2}.example", "o", url, day
        )

    stories = [story(n, f"Harbor report {n:02d}", date(2024, 1, 1 + n)) for n in range(12)] + [
        story(20, "harbor UNDATED note", None),
        story(21, "Ferry 100% sold out", date(2024, 2, 1), "https://ferries.example/a"),
        story(22, "Ferry 1000 sold", date(2024, 2, 2)),
    ]
    for n, article in enumerate(stories):
        _store(records, article, [], first_rowid=10 * n + 1)
    with records.transaction() as con:  # pending: never listed
        records.mark(con, [story(30, "Harbor pending", date(2030, 1, 1))], "pending")

    newest = records.list_articles("harbor", "published", 0, 5)
    assert newest.total == 13
    assert [i.record.article_id for i in newest.items] == ["t11", "t10", "t09", "t08", "t07"]
    last = records.list_articles("HARBOR", "published", 10, 5)
    assert [i.record.article_id for i in last.items] == ["t01", "t00", "t20"]  # undated last
    middle = records.list_articles("harbor", "published", 6, 5).items
    assert [i.record.article_id for i in middle] == ["t05", "t04", "t03", "t02", "t01"]
    # Without a search (counted apart), and a page past the middle, read from the end.
    everything = records.list_articles("", "published", 0, 20).items
    assert [i.record.article_id for i in everything][:3] == ["t22", "t21", "t11"]
    assert everything[-1].record.article_id == "t20"
    for offset in range(15):
        page = records.list_articles("", "published", offset, 4)
        assert page.items == everything[offset : offset + 4]
        assert page.total == 15
    assert records.list_articles("harbor", "published", 100, 5) == ArticleList((), 13)
    oldest = records.list_articles("harbor", "published-asc", 0, 2).items
    assert [i.record.article_id for i in oldest] == ["t00", "t01"]
    assert records.list_articles("harbor", "published-asc", 12, 5).items[0].record.title == (
        "harbor UNDATED note"
    )
    # Every word must match, in the title, the source, the URL, the outlet or the byline;
    # % and _ are literal.
    assert [i.record.article_id for i in records.list_articles("ferry 100%").items] == ["t21"]
    assert records.list_articles("ferries.example").total == 1
    assert records.list_articles("desk1 report").total == 6
    assert records.list_articles("harbor_report").total == 0
    by_title = records.list_articles("", "title", 0, 3).items
    assert [i.record.title for i in by_title] == [
        "Ferry 100% sold out",
        "Ferry 1000 sold",
        "Harbor report 00",
    ]
    recent = records.list_articles("", "added", 0, 2).items
    assert [i.record.article_id for i in recent] == ["t22", "t21"]  # stored last
    assert recent[0].added >= recent[1].added > 0
    with pytest.raises(ValueError, match="unknown order 'nope'; choose one of published"):
        records.list_articles("", "nope")


def test_the_library_table_finds_an_article_by_the_outlet_name_and_byline_it_shows(
    records: SqlRecordStore,
) -> None:
    page = Article(
        "q01",
        "Harbor crane collapses",
        "A crane fell.",
        "https://qg.example/crane",
        "o",
        "https://qg.example/crane",
        date(2024, 3, 1),
        author="Ada Brennan",
        site_name="The Quayside Gazette",
    )
    _store(records, page, [])
    _store(
        records,
        replace(
            page,
            article_id="q02",
            title="Ferry fares rise",
            site_name=None,
            author=None,
            url=None,
            source="other.example",
        ),
        [],
        11,
    )
    assert [i.record.article_id for i in records.list_articles("quayside").items] == ["q01"]
    assert [i.record.article_id for i in records.list_articles("gazette brennan").items] == ["q01"]
    assert records.list_articles("quayside ferry").total == 0  # every word, in one article


def test_outlets_are_counted_by_the_database_and_give_back_their_sources(
    records: SqlRecordStore,
) -> None:
    def article(n: int, url: str | None, source: str, site: str | None = None) -> Article:
        return Article(f"o{n}", f"Story {n}", "Text.", url or source, "o", url, site_name=site)

    stories = [
        article(1, "https://www.cnn.com/a", "https://www.cnn.com/a"),
        article(2, "https://CNN.com/b?x=1", "https://CNN.com/b?x=1"),
        article(3, "https://cnn.com", "https://cnn.com"),
        article(4, "https://reuters.com/c", "https://reuters.com/c", "Reuters"),
        article(5, "https://www.reuters.com/d", "https://www.reuters.com/d", "Reuters"),
        article(6, None, "portnews"),  # a named source, no URL
        article(7, None, "portnews"),
        article(8, None, "/srv/seeds/quake.txt"),  # a file
    ]
    for n, story in enumerate(stories):
        _store(records, story, [], first_rowid=10 * n + 1)
    with records.transaction() as con:  # pending: not counted
        records.mark(con, [article(9, "https://cnn.com/p", "https://cnn.com/p")], "pending")

    groups = records.outlet_groups()
    counts: dict[str, int] = {}
    for group in groups:
        counts[group.outlet] = counts.get(group.outlet, 0) + group.articles
    assert counts == {"cnn.com": 3, "Reuters": 2, "portnews": 2, "quake.txt": 1}
    # One row per site name, URL host as stored and URL-less source, not one per article.
    assert len(groups) == 7
    cnn = [g for g in groups if g.outlet == "cnn.com"]
    assert records.sources_in(cnn) == [
        "https://CNN.com/b?x=1",
        "https://cnn.com",
        "https://www.cnn.com/a",
    ]
    named = [g for g in groups if g.outlet in ("portnews", "quake.txt")]
    assert records.sources_in(named) == ["/srv/seeds/quake.txt", "portnews"]
    assert records.sources_in([]) == []


def test_every_write_moves_the_generation_that_another_connection_reads(
    records: SqlRecordStore, database_url: str
) -> None:
    other = open_record_store(database_url)  # as another process would open it
    assert other.generation() == 0
    article, chunks = _article(3, "Flamingos gathered.")
    _store(records, article, chunks)
    _store(records, article, chunks)
    assert other.generation() == 2
    assert other.get_records()["a0003"].status == "complete"


def test_the_embedding_cache_gives_sentence_vectors_only_of_the_same_split(
    records: SqlRecordStore,
) -> None:
    vector = np.arange(4, dtype=np.float32)
    records.cache_vectors({"k1": vector}, {"k1": b"packed"}, split="v1")
    records.cache_vectors({"k2": vector + 1}, split="v1")
    vectors, sentences = records.cached_vectors(["k1", "k2", "k3"], split="v1")
    assert set(vectors) == {"k1", "k2"}
    np.testing.assert_array_equal(vectors["k1"], vector)
    assert sentences == {"k1": b"packed"}
    assert records.cached_vectors(["k1"], split="v2")[1] == {}
    records.cache_vectors({"k1": vector * 2}, {"k1": b"again"}, split="v2")
    assert records.cached_vectors(["k1"], split="v2")[1] == {"k1": b"again"}


def test_chunks_with_the_same_text_share_one_copy_of_its_vectors_in_the_record_store(
    records: SqlRecordStore,
) -> None:
    first, chunks = _article(5, "Otters held hands. Otters held hands.")
    _store(records, first, chunks)
    with records.engine.connect() as con:
        copies = con.execute(select(CHUNKS.c.sentences, CHUNKS.c.embedding_key)).all()
        cached = con.execute(select(func.count()).select_from(EMBEDDING_CACHE)).scalar_one()
    assert [c.sentences for c in copies] == [None, None], "no copy beside the chunk"
    assert len({c.embedding_key for c in copies}) == 1 and cached == 1
    vectors = records.sentence_vectors(["a0005:0", "a0005:1"])
    np.testing.assert_allclose(vectors["a0005:1"], np.eye(2, 4), atol=0.01)
    (vector,) = records.cached_vectors([copies[0].embedding_key])[0].values()
    np.testing.assert_array_equal(vector, np.ones(4))


def _cache_rows(records: SqlRecordStore) -> dict[str, bytes | None]:
    with records.engine.connect() as con:
        return dict(con.execute(select(EMBEDDING_CACHE.c.key, EMBEDDING_CACHE.c.sentences)).all())


def _chunk_keys(records: SqlRecordStore) -> dict[str, str]:
    with records.engine.connect() as con:
        return dict(con.execute(select(CHUNKS.c.chunk_id, CHUNKS.c.embedding_key)).all())


def test_a_changed_or_deleted_articles_vectors_leave_the_record_database_with_it(
    database_url: str, tmp_path: Path, assistant_factory: Callable[..., Assistant]
) -> None:
    """Each edit of a followed article used to leave its old vectors in the embedding
    cache for good (5 edits of a 3-chunk article: 15 rows), and a deleted article's
    stayed too. Now the cache holds the vectors of the stored chunks, each readable."""
    assistant = assistant_factory(make_settings(tmp_path / "data", database_url=database_url))
    records = assistant.records
    body = "The harbor council met on {day} to discuss the new ferry line. " * 12
    other = "Pelicans gathered at the salt lake, the park rangers said on Sunday. " * 12
    assistant.add_text("Ferry plans", body.format(day="Monday"))
    assistant.add_text("Pelicans at the lake", other)
    for day in ("Tuesday", "Wednesday", "Thursday"):
        assistant.add_text("Ferry plans", body.format(day=day))
    keys = _chunk_keys(records)
    rows = _cache_rows(records)
    assert set(rows) == set(keys.values()), "exactly the vectors of the stored chunks"
    assert all(packed is not None for packed in rows.values()), "with their sentence vectors"
    cached, _ = records.cached_vectors(list(keys.values()))
    assert set(cached) == set(keys.values())
    assert records.unused_cache_rows() == 0

    ferry = next(r.article_id for r in records.get_records().values() if r.title == "Ferry plans")
    assert assistant.delete_article(ferry)
    assert set(_cache_rows(records)) == set(_chunk_keys(records).values())
    answer = assistant.ask("Where did the pelicans gather?")
    assert answer.found and "salt lake" in answer.text, answer.text


def test_a_cache_row_released_by_another_process_meanwhile_is_written_again_with_the_chunk(
    index: Library,
) -> None:
    """Ingest reads the cache before it takes the library lock: another process may delete
    a row it read (its last chunk went) before this one writes the chunk naming it."""
    article, chunks = _article(3, "Otters held hands in the kelp forest.")
    vector = np.full((len(chunks), 4), 0.5, dtype=np.float32)
    packed = pack_rows(np.eye(2, 4, dtype=np.float32))
    index.records.cache_vectors({"k-otters": vector[0]}, {"k-otters": packed}, split="s1")
    with index.records.transaction() as con:  # the other process's release
        assert index.records.release_cache(con, ["k-otters"]) == 1
    index.writer.write(
        [(article, chunks, vector)],
        embedding_keys={c.chunk_id: "k-otters" for c in chunks},
        sentences={"k-otters": packed},
        split="s1",
    )
    cached, sentences = index.records.cached_vectors(["k-otters"], split="s1")
    np.testing.assert_array_equal(cached["k-otters"], vector[0])
    assert sentences == {"k-otters": packed}
    np.testing.assert_allclose(
        index.records.sentence_vectors([chunks[0].chunk_id])[chunks[0].chunk_id], np.eye(2, 4)
    )


def test_a_record_database_of_the_older_layout_is_upgraded_on_open_with_nothing_lost(
    records: SqlRecordStore, database_url: str
) -> None:
    """Layout 1 kept the cache vectors as float32 and a copy of each chunk's sentence
    vectors beside it; opening it keeps one float16 copy, and every chunk's vectors."""
    vector = np.linspace(-0.5, 0.5, 8, dtype=np.float32)
    packed = {n: pack_rows(np.eye(2, 8, k=n, dtype=np.float32)) for n in range(3)}
    article, chunks = _article(6, "Seals slept. Seals woke. Seals ate fish.")
    with records.transaction() as con:
        records.mark(con, [article], "pending")
        con.execute(
            insert(EMBEDDING_CACHE),
            [
                {"key": f"k{n}", "vector": vector.tobytes(), "sentences": packed[n], "split": ""}
                for n in range(2)
            ],
        )
        # Chunk 2's copy matches no cache row: it must stay readable.
        con.execute(
            insert(CHUNKS),
            [
                {
                    "rowid": n + 1,
                    "chunk_id": c.chunk_id,
                    "article_id": article.article_id,
                    "chunk_index": n,
                    "start": c.start,
                    "end": c.end,
                    "text": c.text,
                    "sentences": packed[n],
                }
                for n, c in enumerate(chunks)
            ],
        )
        records.complete(con, article, len(chunks))
        con.execute(delete(LIBRARY_STATE).where(LIBRARY_STATE.c.key == "layout"))
        # Not in layout 1, nor its index.
        con.exec_driver_sql("DROP INDEX IF EXISTS chunks_embedding_key")
        con.exec_driver_sql("ALTER TABLE chunks DROP COLUMN embedding_key")
    records.close()
    upgraded = open_record_store(database_url)
    with upgraded.engine.connect() as con:
        rows = con.execute(
            select(CHUNKS.c.embedding_key, CHUNKS.c.sentences).order_by(CHUNKS.c.rowid)
        ).all()
        blobs = con.execute(select(EMBEDDING_CACHE.c.vector)).scalars().all()
    assert [r.embedding_key for r in rows] == ["k0", "k1", None]
    assert [r.sentences is None for r in rows] == [True, True, False]
    assert [len(b) for b in blobs] == [2 * 8, 2 * 8], "float16"
    cached = upgraded.cached_vectors(["k0", "k1"])[0]
    np.testing.assert_allclose(cached["k1"], vector, atol=1e-3)
    found = upgraded.sentence_vectors([c.chunk_id for c in chunks])
    for n, chunk in enumerate(chunks):
        np.testing.assert_array_equal(found[chunk.chunk_id], unpack_rows(packed[n]))
    assert open_record_store(database_url).cached_vectors(["k1"])[0]["k1"].tobytes() == (
        cached["k1"].tobytes()
    ), "upgraded once: a second open leaves the float16 vectors alone"


def test_deleting_chunks_reports_what_the_lexical_index_must_forget(
    records: SqlRecordStore,
) -> None:
    article, chunks = _article(4, "One sentence. Two sentences.")
    _store(records, article, chunks)
    with records.transaction() as con:
        assert records.delete_chunks(con, ["a0004"]) == (2, 10, 6)
        records.delete_articles(con, ["a0004"])
    assert records.is_empty()


def test_stories_their_members_and_texts_are_kept_and_go_with_their_articles(
    records: SqlRecordStore,
) -> None:
    first, first_chunks = _article(1, "Zebras crossed the river. They swam. All of them.")
    copy = replace(first, article_id="a0002", url="https://paper.example/z", site_name="Paper")
    _store(records, first, first_chunks)
    copy_chunks = [
        replace(c, article_id="a0002", chunk_id=f"a0002:{c.index}") for c in first_chunks
    ]
    _store(records, copy, copy_chunks, 10)
    assert records.unstoried_ids() == ["a0001", "a0002"]
    records.set_stories(
        [StoryRow("a0001", "a0001", b"\x01" * 16), StoryRow("a0002", "a0001", b"\x02" * 16)]
    )
    assert records.unstoried_ids() == []
    assert [(r.article_id, r.story_id, r.signature) for r in records.story_rows()] == [
        ("a0001", "a0001", b"\x01" * 16),
        ("a0002", "a0001", b"\x02" * 16),
    ]
    members = records.story_members(["a0002"])["a0002"]
    assert [(m.article_id, m.outlet, m.url) for m in members] == [
        ("a0001", "outlet1.example", None),
        ("a0002", "Paper", "https://paper.example/z"),
    ]
    assert records.find_by_url(["https://paper.example/z"])[
        "https://paper.example/z"
    ].site_name == ("Paper")
    assert records.article_texts(["a0001"]) == {"a0001": first.text}
    with records.transaction() as con:
        records.delete_chunks(con, ["a0001"])
        records.delete_articles(con, ["a0001"])
    assert [r.article_id for r in records.story_rows()] == ["a0002"]
    assert [m.article_id for m in records.story_members(["a0002"])["a0002"]] == ["a0002"]


def test_the_last_vector_check_is_remembered(records: SqlRecordStore) -> None:
    assert records.last_vector_check() is None
    records.record_vector_check(VectorCheck(3, 40, "library", 12.5))
    assert records.last_vector_check() == VectorCheck(3, 40, "library", 12.5)


# -- the lexical index ---------------------------------------------------------------------


def _fts5_ranking(index: Library, query: str, k: int) -> list[tuple[str, float]]:
    """What SQLite's FTS5 (the reference BM25) returns for ``query`` over these chunks."""
    with index.records.engine.connect() as con:
        rows = con.exec_driver_sql(
            "SELECT c.chunk_id, a.title, c.text FROM chunks c JOIN articles a "
            "ON a.article_id = c.article_id"
        ).all()
    fts = sqlite3.connect(":memory:")
    fts.execute(
        "CREATE VIRTUAL TABLE f USING fts5(chunk_id UNINDEXED, title, body, "
        "tokenize = 'porter unicode61 remove_diacritics 2')"
    )
    fts.executemany("INSERT INTO f VALUES (?,?,?)", [tuple(r) for r in rows])
    match = " OR ".join(f'"{t}"' for t in lexical.tokens(query) if len(t) > 1)
    found = fts.execute(
        "SELECT chunk_id, -bm25(f, 0.0, 2.0, 1.0) AS s FROM f WHERE f MATCH ? "
        "ORDER BY s DESC, chunk_id LIMIT ?",
        (match, k),
    )
    return [(str(c), float(s)) for c, s in found]


@pytest.mark.parametrize("query", ["Meloni NATO Ukraine", "story Meloni", "record gas prices"])
def test_bm25_ranks_as_sqlite_fts5_on_every_database(index: Library, query: str) -> None:
    _write(index, _corpus(40))
    _write(index, [_article(3, "Flamingos gathered near Meloni's office.")])  # an edit
    index.writer.delete(["a0005"])
    # Postings of replaced chunks count in word frequencies until their fragment is
    # merged (rag.lexical's design): compaction makes the ranking exact again.
    with index.records.transaction() as con:
        index.lexical.compact(con)
    ours = LexicalSearch.of(index).search(query, 1000, Filters())
    reference = _fts5_ranking(index, query, 1000)
    assert len(ours) == len(reference) > 10
    assert dict(ours) == pytest.approx(dict(reference), rel=1e-4)
    assert [s for _, s in ours] == pytest.approx([s for _, s in reference], rel=1e-4)


def test_compaction_keeps_only_live_postings_on_every_database(
    index: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lexical, "_COMPACT_POSTINGS", 5)  # several groups of terms
    for n in range(24):
        _write(index, [_article(n, f"Meloni met allies on day {n}.")])
    for n in range(0, 24, 2):
        index.writer.delete([f"a{n:04d}"])
    with index.records.transaction() as con:
        index.lexical.compact(con)
    with index.records.engine.connect() as con:
        meta = {k: v for k, v in con.execute(select(LEX_META.c.key, LEX_META.c.value))}
        stored = sum(len(b) // 4 for (b,) in con.execute(select(LEX_POSTINGS.c.docs)))
        chunks = len(con.execute(select(CHUNKS.c.rowid)).all())
    assert meta["postings"] == meta["live_postings"] == stored
    assert meta["docs"] == chunks == 12
    assert len(LexicalSearch.of(index).search("Meloni allies", 50, Filters())) == 12


def test_word_frequencies_count_chunks_on_every_database(index: Library) -> None:
    _write(index, _corpus(12))
    total, freqs = LexicalSearch.of(index).frequencies(["ukraine", "flamingo"])
    assert total == index.records.complete_chunks()
    with index.records.engine.connect() as con:
        texts = [t for (t,) in con.execute(select(CHUNKS.c.text))]
    assert freqs == {"ukraine": sum("Ukraine" in t for t in texts), "flamingo": 0}


def test_a_lexical_index_is_built_once_from_existing_chunks(records: SqlRecordStore) -> None:
    for n, text in enumerate(["Pelicans gathered at the lake.", "Rain fell.", "Sun shone."]):
        article, chunks = _article(n, text)
        _store(records, article, chunks, first_rowid=n + 1)
    with records.transaction() as con:
        con.execute(LEX_META.delete())  # as if written before the postings existed
    with records.transaction() as con:
        assert SqlLexicalIndex().ensure_built(con)
    with records.transaction() as con:
        assert not SqlLexicalIndex().ensure_built(con)
    with records.snapshot() as con:
        ids, scores = SqlLexicalIndex().score(con, lexical.query_terms("pelicans"))
    assert list(ids) == [1] and scores[0] > 0


# -- the writer ------------------------------------------------------------------------


def test_a_write_that_dies_after_the_vectors_leaves_nothing_visible_and_is_repaired(
    index: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(index, _corpus(4))

    def crash(*args: object) -> None:
        raise RuntimeError("killed between the vector and the record writes")

    monkeypatch.setattr(index.writer, "_delete_chunks", crash)
    with pytest.raises(RuntimeError):
        _write(index, [_article(9, "Pelicans gathered at the salt lake.")])
    assert index.records.pending_ids() == ["a0009"]
    assert not LexicalSearch.of(index).search("pelicans", 5, Filters())
    monkeypatch.undo()
    _write(index, [_article(9, "Pelicans gathered at the salt lake.")])
    assert sorted(index.writer.vector_ids()) == sorted(index.records.chunk_ids_of())
    assert [c for c, _ in LexicalSearch.of(index).search("pelicans", 5, Filters())] == ["a0009:0"]
    assert not index.writer.missing_vectors()


def test_vector_ids_follow_the_records_through_edits_and_deletes(index: Library) -> None:
    _write(index, _corpus(10))
    _write(index, [_article(2, "Short now.")])  # fewer chunks than before
    index.writer.delete(["a0004", "a0007"])
    assert sorted(index.writer.vector_ids()) == sorted(index.records.chunk_ids_of())
    assert index.writer.vector_ids("a0002") == ["a0002:0"]
    assert index.records.stats().articles == 8
    index.writer.reset()
    assert index.writer.vector_count() == 0 and index.records.is_empty()


# -- the library lock ------------------------------------------------------------------------

_HOLDER = """
import sys, time
from rag.database import open_engine
from rag.locking import LibraryLock, PostgresLibraryLock
from pathlib import Path
url = sys.argv[1]
lock = (LibraryLock(Path(url)) if not url.startswith("postgresql")
        else PostgresLibraryLock(open_engine(url), "news"))
with lock.exclusive("hold"):
    print("held", flush=True)
    time.sleep(600)
"""


def _lock_for(database_url: str, tmp_path: Path) -> tuple[Lock, str]:
    if database_url.startswith("postgresql"):
        from rag.database import open_engine

        return PostgresLibraryLock(open_engine(database_url), "news", timeout=0.5), database_url
    path = tmp_path / "news.lock"
    return LibraryLock(path, timeout=0.5), str(path)


def test_the_library_lock_keeps_other_processes_out_until_its_holder_dies(
    database_url: str, tmp_path: Path
) -> None:
    lock, target = _lock_for(database_url, tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_HOLDER), target],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreBusyError, match="another newsrag process"), lock.shared("read"):
            pass
        with pytest.raises(StoreBusyError), lock.exclusive("write"):
            pass
        os.kill(holder.pid, signal.SIGKILL)  # released by the kernel / the server
        holder.wait(timeout=10)
        deadline = time.monotonic() + 10
        while True:
            try:
                with lock.exclusive("write"), lock.exclusive("nested write"), lock.shared("r"):
                    break
            except StoreBusyError:
                assert time.monotonic() < deadline, "the lock outlived its killed holder"
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


# -- the vector index ------------------------------------------------------------------------


@pytest.fixture(params=["embedded", "server"])
def vector_index(request: pytest.FixtureRequest, tmp_path: Path) -> VectorIndex:
    """Each Chroma newsrag supports: embedded in the data dir, and a real `chroma run`."""
    if request.param == "embedded":
        return build_vector_index(make_settings(tmp_path / "data"))
    server = request.getfixturevalue("chroma_server")
    return build_vector_index(
        make_settings(tmp_path / "data", chroma_host="127.0.0.1", chroma_port=server.port)
    )


def _unit(rows: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((rows, 8)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_stored_vectors_are_found_read_back_and_removed_by_id_or_article(
    vector_index: VectorIndex,
) -> None:
    vectors = _unit(6, 1)
    ids = [f"a{n // 3}:{n % 3}" for n in range(6)]
    metadatas = [{"article_id": i.split(":")[0], "published_day": n} for n, i in enumerate(ids)]
    vector_index.upsert(ids, vectors, metadatas)
    vector_index.upsert(ids[:1], vectors[:1], metadatas[:1])  # an upsert, not a copy
    assert vector_index.count() == 6 and sorted(vector_index.ids()) == sorted(ids)
    assert vector_index.ids({"article_id": "a1"}) == ["a1:0", "a1:1", "a1:2"]
    assert vector_index.missing([*ids, "a9:0"]) == ["a9:0"]
    best, score = vector_index.query(vectors[4].tolist(), 2)[0]
    assert best == "a1:1" and score == pytest.approx(1.0, abs=1e-4)
    late = vector_index.query(vectors[4].tolist(), 6, {"published_day": {"$lte": 2}})
    assert {i for i, _ in late} == {"a0:0", "a0:1", "a0:2"}
    exported = [i for batch, _, _ in vector_index.export(4) for i in batch]
    assert sorted(exported) == sorted(ids)
    vector_index.delete_where({"article_id": "a0"})
    vector_index.delete(["a1:2"])
    assert sorted(vector_index.ids()) == ["a1:0", "a1:1"]
    vector_index.reset()
    assert vector_index.count() == 0


def test_a_collection_emptied_behind_the_index_is_re_created_on_the_next_call(
    vector_index: VectorIndex, tmp_path: Path
) -> None:
    vector_index.upsert(["a:0"], _unit(1, 2), [{"article_id": "a"}])
    other = (
        build_vector_index(make_settings(tmp_path / "data"))
        if vector_index.embedded
        else vector_index
    )
    client = other._shared.get()  # type: ignore[attr-defined]
    client.delete_collection(other.name)
    other.refresh()
    assert other.recreated and other.count() == 0
    assert other.missing(["a:0"]) == ["a:0"]


# -- the searcher receives the parts ----------------------------------------------------


def test_the_searcher_finds_articles_from_the_parts_it_is_given_with_no_index_around_them(
    database_url: str, tmp_path: Path, embeddings: LocalEmbeddings
) -> None:
    settings = make_settings(tmp_path / "data", database_url=database_url)
    records = open_record_store(database_url)
    vectors = build_vector_index(settings)
    lock, _ = _lock_for(database_url, tmp_path)
    words = SqlLexicalIndex()
    writer = LibraryWriter(records, vectors, words, lock)
    texts = {
        1: "Meloni proposed extending NATO protection to Ukraine without membership.",
        2: "The pelicans of the lake returned in spring. Birdwatchers counted them.",
        3: "Flamingos nest on salt flats in Kenya. They eat shrimp.",
    }
    batch = []
    for n, text in texts.items():
        article, chunks = _article(n, text)
        vecs = np.asarray(embeddings.embed_documents([c.text for c in chunks]), np.float32)
        batch.append((article, chunks, vecs))
    writer.write(batch)

    searcher = HybridSearcher(records, vectors, words, writer, embeddings)
    hits = searcher.search("what did Meloni propose for Ukraine?", top_k=2)
    assert hits[0].article_id == "a0001"
    assert "NATO protection" in hits[0].chunks[0].text
    # Only complete articles, as the record store says: a deleted one is gone at once.
    writer.delete(["a0001"])
    assert "a0001" not in [h.article_id for h in searcher.search("Meloni NATO Ukraine")]
    records.close()
