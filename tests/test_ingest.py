"""Incremental ingest against a real embedded Chroma and the real bundled model."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from rag.assistant import Assistant
from rag.search import LexicalSearch
from tests.conftest import SEED_FILE

pytestmark = pytest.mark.slow


def _copy_seed(folder: Path, name: str = "seed.txt") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    shutil.copyfile(SEED_FILE, target)
    return target


def _index_counts(assistant: Assistant) -> tuple[int, int, int]:
    stats = assistant.stats()
    return stats.articles, stats.chunks, assistant.index.writer.vector_count()


def test_ingesting_the_seeds_stores_chunks_with_their_metadata(seeded: Assistant) -> None:
    articles, chunks, in_chroma = _index_counts(seeded)
    assert articles == 1
    assert chunks == in_chroma >= 2
    for meta in seeded.index.vectors.get_metadatas():
        assert meta["title"].startswith("Italian PM proposes extending NATO")
        assert meta["source"].endswith("meloni-article5-ukraine.txt")
        assert meta["end"] > meta["start"] >= 0
        assert len(meta["content_hash"]) == 40
        assert {"article_id", "chunk_index", "chunk_hash"} <= set(meta)


def test_reingesting_an_unchanged_article_adds_no_chunks(seeded: Assistant) -> None:
    before = _index_counts(seeded)
    report = seeded.ingest([SEED_FILE.parent])
    assert len(report.skipped) == 1
    assert not report.added and not report.updated
    assert report.chunks_embedded == 0
    assert _index_counts(seeded) == before


def test_editing_an_article_replaces_its_chunks(assistant: Assistant, tmp_path: Path) -> None:
    path = _copy_seed(tmp_path / "articles")
    assistant.ingest([path.parent])
    article_id = next(iter(assistant.index.records.get_records()))
    old_ids = set(assistant.index.writer.vector_ids(article_id))
    path.write_text(
        "Short edited article\n\nThe article now says only that the summit was postponed.\n",
        encoding="utf-8",
    )
    report = assistant.ingest([path.parent])
    assert [a.article_id for a in report.updated] == [article_id]
    new_ids = set(assistant.index.writer.vector_ids(article_id))
    assert len(new_ids) == 1 < len(old_ids)
    assert _index_counts(assistant) == (1, 1, 1)
    chunks = assistant.index.records.article_chunks(article_id)
    assert "postponed" in chunks[0][1]
    assert not LexicalSearch.of(assistant.index).search("Meloni", 10, _no_filters())


def test_prune_removes_articles_whose_file_is_gone(assistant: Assistant, tmp_path: Path) -> None:
    folder = tmp_path / "articles"
    _copy_seed(folder, "a.txt")
    other = folder / "b.txt"
    other.write_text("Another story\n\nThe council approved a new bike lane on Main Street.\n")
    assistant.ingest([folder])
    assert assistant.stats().articles == 2
    other.unlink()
    report = assistant.ingest([folder])
    assert assistant.stats().articles == 2, "without --prune nothing is deleted"
    report = assistant.ingest([folder], prune=True)
    assert [a.title for a in report.deleted] == ["Another story"]
    articles, chunks, in_chroma = _index_counts(assistant)
    assert articles == 1 and chunks == in_chroma


def test_a_broken_file_is_reported_and_the_rest_of_the_batch_lands(
    assistant: Assistant, tmp_path: Path
) -> None:
    folder = tmp_path / "batch"
    _copy_seed(folder)
    (folder / "empty.txt").write_text("")
    (folder / "binary.txt").write_bytes(b"\x00\x01\x02garbage\x00" * 100)
    (folder / "bad.pdf").write_bytes(b"%PDF-1.4 truncated")
    report = assistant.ingest([folder])
    assert len(report.added) == 1
    failed = {Path(f.path).name for f in report.failed}
    assert failed == {"empty.txt", "binary.txt", "bad.pdf"}
    assert all(f.reason for f in report.failed)
    assert "failed 3" in report.summary()


def test_the_same_text_under_two_names_is_stored_once(assistant: Assistant, tmp_path: Path) -> None:
    folder = tmp_path / "dups"
    _copy_seed(folder, "one.txt")
    _copy_seed(folder, "two.txt")
    report = assistant.ingest([folder])
    assert len(report.added) == 1
    assert len(report.duplicates) == 1
    assert assistant.stats().articles == 1


def test_an_interrupted_write_is_repaired_by_the_next_ingest(
    assistant: Assistant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "articles"
    _copy_seed(folder)
    index = assistant.index
    original = index.writer._delete_chunks

    def crash(*args: object) -> None:
        raise RuntimeError("simulated crash after the Chroma upsert")

    monkeypatch.setattr(index.writer, "_delete_chunks", crash)
    with pytest.raises(RuntimeError):
        assistant.ingest([folder])
    assert index.records.stats().articles == 0, "a half-written article is not searchable"
    assert index.records.stats().pending == 1
    assert not assistant.search("what did Meloni propose?")
    monkeypatch.setattr(index.writer, "_delete_chunks", original)
    report = assistant.ingest([folder])
    assert len(report.updated) == 1
    articles, chunks, in_chroma = _index_counts(assistant)
    assert (articles, index.records.stats().pending) == (1, 0)
    assert chunks == in_chroma


def test_reset_empties_the_index_before_ingesting(seeded: Assistant) -> None:
    report = seeded.ingest([SEED_FILE.parent], reset=True)
    assert len(report.added) == 1
    articles, chunks, in_chroma = _index_counts(seeded)
    assert articles == 1 and chunks == in_chroma


def _no_filters():  # type: ignore[no-untyped-def]
    from rag.store import Filters

    return Filters()


def test_changing_the_chunk_size_resplits_every_article_on_the_next_ingest(
    seeded: Assistant, tmp_path: Path, assistant_factory: object
) -> None:
    from tests.conftest import make_settings

    before = seeded.stats().chunks
    smaller = make_settings(seeded.settings.data_dir, chunk_tokens=80, chunk_overlap_tokens=10)
    resized = assistant_factory(smaller)  # type: ignore[operator]
    report = resized.ingest([SEED_FILE.parent])
    assert len(report.updated) == 1
    articles, chunks, in_chroma = _index_counts(resized)
    assert articles == 1 and chunks == in_chroma > before


def test_every_chunk_is_stored_with_a_vector_for_its_title_and_each_sentence(
    seeded: Assistant,
) -> None:
    from rag.text import split_sentences

    index = seeded.index
    chunks = index.records.chunks_by_id(index.writer.vector_ids())
    stored = index.records.sentence_vectors(list(chunks))
    assert set(stored) == set(chunks)
    for chunk_id, chunk in chunks.items():
        matrix = stored[chunk_id]
        assert matrix.shape == (len(split_sentences(chunk.text)) + 1, 384)
        assert np.allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=0.02)


def test_each_chunk_vector_and_its_sentence_vectors_are_stored_once_in_the_record_database(
    seeded: Assistant,
) -> None:
    import sqlite3

    db = seeded.index.db_path
    assert db is not None
    with sqlite3.connect(db) as con:
        chunks = con.execute("SELECT text, sentences, embedding_key FROM chunks").fetchall()
        cache = dict(con.execute("SELECT key, length(vector) FROM embedding_cache").fetchall())
        with_sentences = con.execute(
            "SELECT count(*) FROM embedding_cache WHERE sentences IS NOT NULL"
        ).fetchone()[0]
    assert chunks and all(sentences is None for _, sentences, _ in chunks), "no second copy"
    keys = {key for _, _, key in chunks}
    assert keys <= set(cache), "every chunk names the cache row holding its vectors"
    assert len(cache) == len({text for text, _, _ in chunks}), "one row per distinct text"
    assert with_sentences == len(cache)
    assert set(cache.values()) == {384 * 2}, "the chunk vector as float16, once"


def test_an_ingest_gives_back_the_disk_space_of_its_write_ahead_log(seeded: Assistant) -> None:
    db = seeded.index.db_path
    assert db is not None
    wal = db.with_name(db.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    assert seeded.ask("what did Meloni propose?").found, "the writes are in the database"


def test_an_unchanged_chunk_of_an_edited_article_keeps_its_sentence_vectors_from_the_cache(
    assistant: Assistant, tmp_path: Path
) -> None:
    path = _copy_seed(tmp_path / "articles")
    assistant.ingest([path.parent])
    index = assistant.index
    before = index.records.sentence_vectors(index.writer.vector_ids())
    path.write_text(path.read_text(encoding="utf-8") + "\nOne more closing line.\n", "utf-8")
    report = assistant.ingest([path.parent])
    after = index.records.sentence_vectors(index.writer.vector_ids())
    assert report.chunks_embedded == 1 < report.chunks_written
    assert set(after) == set(index.writer.vector_ids())
    unchanged = [c for c in before if c in after and before[c].shape == after[c].shape]
    assert len(unchanged) == report.chunks_written - 1
    for chunk_id in unchanged:
        np.testing.assert_array_equal(before[chunk_id], after[chunk_id])


def test_a_record_database_from_before_sentence_vectors_is_upgraded_and_still_answers(
    seeded: Assistant, assistant_factory: object
) -> None:
    import sqlite3

    db = seeded.index.db_path
    with sqlite3.connect(db) as con:
        for table in ("chunks", "embedding_cache"):
            con.execute(f"ALTER TABLE {table} DROP COLUMN sentences")
    reopened = assistant_factory(seeded.settings)  # type: ignore[operator]
    assert not reopened.index.records.sentence_vectors(reopened.index.writer.vector_ids())
    answer = reopened.ask("what did Meloni propose?")
    assert answer.found and "Article 5" in answer.text


def test_a_model_without_sentence_vectors_still_reuses_cached_chunk_vectors(
    embeddings: object, tmp_path: Path
) -> None:
    from collections.abc import Callable, Sequence

    from rag.components import build_index
    from rag.embeddings import LocalEmbeddings
    from tests.conftest import make_settings

    class NoSpans(LocalEmbeddings):
        """The real model, seen as one that cannot pool sentence vectors."""

        def __init__(self, inner: LocalEmbeddings) -> None:
            self.inner, self.model_name = inner, inner.model_name

        @property
        def max_tokens(self) -> int:
            return self.inner.max_tokens

        def token_counter(self) -> Callable[[Sequence[str]], list[int]]:
            return self.inner.token_counter()

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return self.inner.embed_documents(texts)

    assert isinstance(embeddings, LocalEmbeddings)
    plain = NoSpans(embeddings)
    settings = make_settings(tmp_path / "data")
    assistant = Assistant(settings, build_index(settings, plain), plain)
    path = _copy_seed(tmp_path / "articles")
    assistant.ingest([path.parent])
    assert not assistant.index.records.sentence_vectors(assistant.index.writer.vector_ids())
    path.write_text(path.read_text(encoding="utf-8") + "\nOne more closing line.\n", "utf-8")
    report = assistant.ingest([path.parent])
    assert report.chunks_embedded == 1 < report.chunks_written
    answer = assistant.ask("what did Meloni propose?")
    assert answer.found and "Article 5" in answer.text


def test_sentence_vectors_cached_under_another_sentence_split_are_pooled_again(
    assistant: Assistant,
) -> None:
    import numpy as np

    from rag.store import pack_rows

    index = assistant.index
    vector = np.ones(384, dtype=np.float32)
    index.records.cache_vectors({"k": vector}, {"k": pack_rows(np.ones((2, 384)))}, split="sv1")
    vectors, sentences = index.records.cached_vectors(["k"], split="sv2")
    assert "k" in vectors, "the chunk vector does not depend on the split"
    assert sentences == {}, "sentence vectors of another split are not reused"
    assert "k" in index.records.cached_vectors(["k"], split="sv1")[1]
