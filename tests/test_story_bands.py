"""Story candidates from the database: placing new articles reads only the stored articles
that share an LSH band with them (``story_bands``), with the placements of the whole
library's LSH.

Real record databases (SQLite and Postgres), real MinHash signatures; articles are stored
as complete records without chunks (no embedding: stories need none).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from ingest.dedupe import StoryGrouper
from ingest.stories import LibraryStories, Placement
from rag.components import build_index
from rag.database import LIBRARY_STATE, STORY_BANDS
from rag.record_store import SqlRecordStore
from rag.records import Article
from rag.store import Library
from tests.conftest import make_settings

pytestmark = pytest.mark.slow

_SYLLABLES = "ka lo mi ne ru sa ti vo be da fe gu hi jo ku la ma no pe qu".split()
VOCABULARY = sorted({a + b + c for a in _SYLLABLES for b in _SYLLABLES for c in _SYLLABLES})
BANDS_PER_ARTICLE = len(StoryGrouper().stored_keys(b"\0" * 8 * 128))


def _text(seed: int, words: int = 150) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(VOCABULARY) for _ in range(words))


def _article(
    article_id: str, title: str, text: str, host: str, day: int, path: str | None = None
) -> Article:
    url = f"https://{host}/{path or article_id}"
    return Article(article_id, title, text, host, "test", url, date(2022, 6, day))


def _open(database_url: str, tmp_path: Path) -> Library:
    return build_index(make_settings(tmp_path / "data", database_url=database_url))


def _store(index: Library, articles: Sequence[Article]) -> dict[str, Placement]:
    """Place ``articles`` as the pipeline does, store their stories, then the articles
    as complete records."""
    stories = LibraryStories.load(index)
    stories.prepare(articles)
    placements = {a.article_id: stories.place(a) for a in articles}
    stories.save(placements)
    with index.records.transaction() as con:
        index.records.mark(con, articles, "pending")
        for article in articles:
            index.records.complete(con, article, 0)
        index.records.bump_generation(con)
    return placements


def _placed(stories: LibraryStories, batch: Sequence[Article]) -> dict[str, Placement]:
    stories.prepare(batch)
    return {a.article_id: stories.place(a) for a in batch}


def _band_rows(index: Library, article_id: str | None = None) -> int:
    query = select(func.count()).select_from(STORY_BANDS)
    if article_id is not None:
        query = query.where(STORY_BANDS.c.article_id == article_id)
    with index.records.engine.connect() as con:
        return int(con.execute(query).scalar_one())


STORED_TEXTS = {n: _text(n) for n in range(8)}


def _stored_library() -> list[Article]:
    """Eight stories, two of them already told by two outlets in the same words."""
    t = STORED_TEXTS
    return [
        _article("s05", "Harbour strike ends after talks", t[0], "wire.example", 3),
        _article("s03", "Harbour strike ends", t[0], "paper.example", 4),
        _article("s09", "Dock workers back at work", t[0], "daily.example", 5),
        _article("s01", "Council votes on ferry fares", t[1], "bay.example", 3),
        _article("s02", "Museum reopens its east wing", t[2], "city.example", 4, "museum"),
        _article("s04", "Rail line closed by landslide", t[3], "wire.example", 5, "rail"),
        _article("s06", "Drought hits olive harvest", t[4], "farm.example", 6),
        _article("s07", "Storm warning for the coast", t[5], "weather.example", 6),
        _article("s08", "New bridge opens to traffic", t[6], "city.example", 7),
        _article("s10", "Library extends opening hours", t[7], "city.example", 8),
    ]


def _new_batch() -> list[Article]:
    t = STORED_TEXTS
    words = t[1].split()
    return [
        # An exact copy from another outlet: joins through the lowest id of its copies.
        _article("n1", "Strike at the harbour is over", t[0], "herald.example", 10),
        # Near copies: another headline, the last paragraph trimmed.
        _article(
            "n2", "Ferry fares: the council decides", " ".join(words[:-25]), "post.example", 10
        ),
        # An update from the same outlet (near-identical text, related headline).
        _article(
            "n3",
            "Rail line closed by landslide, reopens Friday",
            t[3] + " gu ka lo",
            "wire.example",
            9,
        ),
        # The same URL again with a new text (replaces it, keeps its story).
        _article("n4", "Museum east wing", _text(100), "city.example", 9, "museum"),
        # An older version from the same outlet than the stored one: not stored.
        _article("n5", "Drought hits olive harvest (first take)", t[4] + " be", "farm.example", 1),
        # Unrelated, and a copy of that one later in the same batch.
        _article("n6", "Chess club wins the league", _text(200), "sport.example", 10),
        _article("n7", "Chess league title for the club", _text(200)[:-40], "club.example", 11),
        _article("n8", "Bakery prices up", _text(300), "food.example", 11),
    ]


def test_placing_with_candidates_from_the_database_equals_the_whole_librarys_lsh(
    database_url: str, tmp_path: Path
) -> None:
    index = _open(database_url, tmp_path)
    _store(index, _stored_library())
    assert _band_rows(index) == 10 * BANDS_PER_ARTICLE

    batch = _new_batch()
    full = _placed(LibraryStories.load_all(index), batch)
    from_database = _placed(LibraryStories.load(index), batch)
    assert from_database == full
    # And the batch holds each kind of placement (so equal is not "all alone").
    assert (from_database["n1"].story_id, from_database["n1"].similar_to) == ("s05", "s03")
    assert from_database["n2"].story_id == "s01"
    assert from_database["n3"].replaces == ("s04",)
    assert (from_database["n4"].replaces, from_database["n4"].story_id) == (("s02",), "s02")
    assert from_database["n5"].superseded_by == "s06"
    assert (from_database["n6"].story_id, from_database["n7"].story_id) == ("n6", "n6")
    assert (from_database["n8"].story_id, from_database["n8"].similar_to) == ("n8", None)


def test_a_library_from_before_the_bands_gets_them_on_first_open_and_places_the_same(
    database_url: str, tmp_path: Path
) -> None:
    index = _open(database_url, tmp_path)
    _store(index, _stored_library())
    with index.records.transaction() as con:  # as a library written before the bands
        con.execute(delete(STORY_BANDS))
        con.execute(delete(LIBRARY_STATE).where(LIBRARY_STATE.c.key == "story_bands"))
    assert _band_rows(index) == 0
    assert index.records.story_band_split() is None

    reopened = _open(database_url, tmp_path)
    assert _band_rows(reopened) == 10 * BANDS_PER_ARTICLE
    assert reopened.records.story_band_split() == StoryGrouper().band_split
    batch = _new_batch()
    assert _placed(LibraryStories.load(reopened), batch) == _placed(
        LibraryStories.load_all(reopened), batch
    )
    # Done once: the next open finds the split recorded and leaves the bands alone.
    with reopened.records.transaction() as con:
        con.execute(delete(STORY_BANDS).where(STORY_BANDS.c.article_id == "s01"))
    assert _band_rows(_open(database_url, tmp_path)) == 9 * BANDS_PER_ARTICLE


def test_bands_made_for_another_threshold_are_made_again_on_open(
    database_url: str, tmp_path: Path
) -> None:
    index = _open(database_url, tmp_path)
    _store(index, _stored_library()[:3])
    strict = build_index(
        make_settings(tmp_path / "data", database_url=database_url, story_threshold=0.9)
    )
    assert (
        strict.records.story_band_split()
        == StoryGrouper(0.9).band_split
        != StoryGrouper().band_split
    )
    keys = len(StoryGrouper(0.9).stored_keys(b"\0" * 8 * 128))
    assert _band_rows(strict) == 3 * keys


def test_deleting_an_article_removes_its_bands_and_a_later_copy_starts_its_own_story(
    database_url: str, tmp_path: Path
) -> None:
    index = _open(database_url, tmp_path)
    _store(index, _stored_library())
    assert _band_rows(index, "s01") == BANDS_PER_ARTICLE
    index.writer.delete(["s01"])
    assert _band_rows(index, "s01") == 0
    assert _band_rows(index) == 9 * BANDS_PER_ARTICLE

    copy = _article("n9", "Ferry fares", " ".join(STORED_TEXTS[1].split()[:-25]), "p.example", 9)
    placed = LibraryStories.load(index).place(copy)
    assert (placed.story_id, placed.similar_to) == ("n9", None)


def test_placing_reads_only_the_candidates_not_every_stored_story(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = _open(database_url, tmp_path)
    unrelated = [
        _article(f"u{n:03d}", f"Story {n}", _text(1000 + n), f"o{n}.example", 1 + n % 28)
        for n in range(200)
    ]
    _store(index, [*unrelated, *_stored_library()])

    restored: list[str] = []
    restore = StoryGrouper.restore

    def counting(self: StoryGrouper, article_id: str, *args: Any) -> None:
        restored.append(article_id)
        restore(self, article_id, *args)

    monkeypatch.setattr(StoryGrouper, "restore", counting)
    batch = _new_batch()
    stories = LibraryStories.load(index)
    stories.prepare(batch)
    # The three copies of one text, the ferry story, the rail and olive stories and the
    # museum (by its URL only when placed): nothing of the 200 unrelated ones.
    assert sorted(restored) == ["s01", "s03", "s04", "s05", "s06", "s09"]
    placed = {a.article_id: stories.place(a) for a in batch}
    assert placed["n1"].similar_to == "s03"
    assert placed["n4"].story_id == "s02"
    monkeypatch.setattr(StoryGrouper, "restore", restore)
    assert placed == _placed(LibraryStories.load_all(index), batch)


def test_many_exact_copies_are_found_by_one_key_without_reading_their_signatures(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = _open(database_url, tmp_path)
    text = _text(7)
    copies = [
        _article(f"c{n:03d}", f"Copy {n}", text, f"o{n}.example", 1 + n % 28) for n in range(150)
    ]
    placed = _store(index, copies)
    assert {p.story_id for p in placed.values()} == {"c000"}

    read: list[str] = []
    story_rows = SqlRecordStore.story_rows

    def counting(self: SqlRecordStore, article_ids: Sequence[str] | None = None) -> Any:
        read.extend(["<all>"] if article_ids is None else article_ids)
        return story_rows(self, article_ids)

    monkeypatch.setattr(SqlRecordStore, "story_rows", counting)
    stories = LibraryStories.load(index)
    new = _article("c999", "Copy again", text, "new.example", 28)
    assert stories.prepare([new]) == 150
    assert read == []  # their ids and stories only, by the whole signature's key
    assert len(stories.grouper._lsh.keys) == 1  # one LSH entry for the 150 copies
    result = stories.place(new)
    assert (result.story_id, result.similar_to, result.similarity) == ("c000", "c000", 1.0)


def test_a_library_from_before_the_url_index_gets_it_and_versions_are_found_through_it(
    database_url: str, tmp_path: Path
) -> None:
    index = _open(database_url, tmp_path)
    _store(index, _stored_library())
    with index.records.transaction() as con:  # as a library written before the index
        con.exec_driver_sql("DROP INDEX articles_url")

    reopened = _open(database_url, tmp_path)
    with reopened.records.engine.connect() as con:
        if con.dialect.name == "sqlite":
            plan = con.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT article_id FROM articles WHERE url IN ('x', 'y')"
            ).all()
            assert "articles_url" in " ".join(str(row[-1]) for row in plan)
        else:
            names = con.exec_driver_sql(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'articles'"
            ).scalars()
            assert "articles_url" in set(names)
    found = reopened.records.find_by_url(["https://city.example/museum"])
    assert [r.article_id for r in found.values()] == ["s02"]
