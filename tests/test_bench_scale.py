"""bench/scale.py's bulk loader writes the library that Library.writer.write would write."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from rag.cli import main
from rag.components import build_index
from rag.database import ARTICLES, CHUNKS, LEX_META, LEX_POSTINGS
from rag.search import DenseSearch, LexicalSearch
from rag.store import Filters, Library
from tests.conftest import SEEDS, make_settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import scale

ARTICLES_N = 230  # two bulk groups of 100 and a partial one, across two seed blocks


@pytest.fixture(scope="module")
def corpus() -> scale.SyntheticCorpus:
    return scale.SyntheticCorpus()


def _index(path: Path) -> Library:
    return build_index(make_settings(path, collection="scale"))


def _rows(index: Library, statement: Any) -> list[Any]:
    with index.records.snapshot() as con:
        return [tuple(r) for r in con.execute(statement).all()]


def _postings(index: Library) -> dict[str, tuple[bytes, bytes, bytes]]:
    """Each term's postings, fragments concatenated (their split is the writer's)."""
    p = LEX_POSTINGS.c
    joined: dict[str, list[bytes]] = {}
    for term, docs, freqs, lens in _rows(
        index, select(p.term, p.docs, p.freqs, p.lens).order_by(p.term, p.frag)
    ):
        parts = joined.setdefault(term, [b"", b"", b""])
        parts[0] += docs
        parts[1] += freqs
        parts[2] += lens
    return {t: (d, f, n) for t, (d, f, n) in joined.items()}


def _vectors(index: Library) -> dict[str, tuple[list[float], dict[str, Any]]]:
    found = {}
    for ids, vectors, metadatas in index.vectors.export():
        for i, vector, metadata in zip(ids, vectors.round(5).tolist(), metadatas, strict=True):
            found[i] = (vector, metadata)
    return found


def test_the_synthetic_articles_are_the_same_whatever_range_is_asked(
    corpus: scale.SyntheticCorpus,
) -> None:
    whole = list(corpus.articles(990, 1010))
    part = list(corpus.articles(1000, 1005))
    assert [a.article.article_id for a in whole[10:15]] == [a.article.article_id for a in part]
    assert whole[10].article.text == part[0].article.text
    assert np.array_equal(whole[12].vectors, part[2].vectors)
    assert whole[0].article.text != whole[1].article.text


def test_bulk_postings_equal_the_analyzer_on_the_same_chunks(
    corpus: scale.SyntheticCorpus,
) -> None:
    from rag import lexical

    items = list(corpus.articles(0, 3))
    postings, lengths, distinct = scale.BulkPostings(corpus.words).build(items, 1)
    expected: dict[str, list[tuple[int, int, int]]] = {}
    doc = 1
    for item in items:
        for chunk in item.chunks:
            analyzed = lexical.analyze(item.article.title, chunk.text)
            assert lengths[doc - 1] == analyzed.length
            assert distinct[doc - 1] == len(analyzed.freqs)
            for term, freq in analyzed.freqs.items():
                expected.setdefault(term, []).append((doc, freq, analyzed.length))
            doc += 1
    got = {
        term: list(zip(d.tolist(), f.tolist(), n.tolist(), strict=True))
        for term, (d, f, n) in postings.items()
    }
    assert got == expected


@pytest.mark.slow
def test_a_bulk_loaded_library_equals_one_written_article_by_article(
    tmp_path: Path,
    corpus: scale.SyntheticCorpus,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bulk, written = _index(tmp_path / "bulk"), _index(tmp_path / "written")
    assert scale.bulk_load(bulk, corpus, 0, 120, group=100) == 120
    assert scale.bulk_load(bulk, corpus, 120, ARTICLES_N, group=100) == ARTICLES_N  # resumes
    assert scale.grow_by_writes(written, corpus, 0, ARTICLES_N) == ARTICLES_N
    with written.records.transaction() as con:
        written.lexical.compact(con)

    a, c, m = ARTICLES.c, CHUNKS.c, LEX_META.c
    articles = select(*(col for col in a if col.name != "updated_at")).order_by(a.article_id)
    assert _rows(bulk, articles) == _rows(written, articles)
    assert len(_rows(bulk, articles)) == ARTICLES_N
    chunks = select(CHUNKS).order_by(c.rowid)
    assert _rows(bulk, chunks) == _rows(written, chunks)
    counts = select(m.key, m.value).where(m.key.in_(["docs", "words", "live_postings"]))
    assert _rows(bulk, counts) == _rows(written, counts)
    assert _postings(bulk) == _postings(written)

    ids = sorted(written.vectors.ids())
    assert sorted(bulk.vectors.ids()) == ids
    assert len(ids) == ARTICLES_N * scale.CHUNKS_PER_ARTICLE
    assert _vectors(bulk) == _vectors(written)
    question = " ".join(corpus.words[i] for i in (3, 40, 700, 9000))
    for filters in (Filters(), Filters(as_of=scale.date(2022, 3, 1))):
        assert LexicalSearch.of(bulk).search(question, 20, filters) == LexicalSearch.of(
            written
        ).search(question, 20, filters)
        # HNSW is approximate and the other random vectors are all about as far: only
        # the nearest one (the vector itself) is the same in two separately built graphs.
        vector = next(corpus.articles(7, 8)).vectors[3].tolist()
        for index in (bulk, written):
            assert DenseSearch.of(index).search(vector, 1, filters)[0][0] == "syn0000007:3"
    bulk.close()
    written.close()

    # The CLI accepts it, and a normal ingest extends it.
    monkeypatch.setenv("NEWSRAG_COLLECTION", "scale")
    data = str(tmp_path / "bulk")
    assert main(["--data-dir", data, "check"]) == 0
    assert main(["--data-dir", data, "ingest", str(SEEDS)]) == 0
    assert main(["--data-dir", data, "stats"]) == 0
    out = capsys.readouterr().out
    assert f"{ARTICLES_N + 1}" in out
    assert main(["--data-dir", data, "ask", "What did Meloni propose?"]) == 0
    assert "Meloni" in capsys.readouterr().out
