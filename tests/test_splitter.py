from __future__ import annotations

import itertools

from ingest.splitter import SentenceSplitter, approximate_token_counter
from rag.embeddings import LocalEmbeddings
from rag.records import Article
from tests.conftest import SEED_FILE


def _article(text: str, title: str = "A title") -> Article:
    return Article("a1", title, text, "src", "origin")


def test_chunks_are_exact_slices_of_the_article_text() -> None:
    text = "\n".join(f"Paragraph {p} sentence {s} is here." for p in range(10) for s in range(5))
    splitter = SentenceSplitter(approximate_token_counter, chunk_tokens=60, overlap_tokens=10)
    chunks = splitter.split(_article(text))
    assert len(chunks) > 3
    for i, chunk in enumerate(chunks):
        assert chunk.index == i
        assert chunk.chunk_id == f"a1:{i}"
        assert text[chunk.start : chunk.end] == chunk.text


def test_chunks_end_at_sentence_boundaries() -> None:
    text = " ".join(f"Sentence number {i} talks about topic {i}." for i in range(60))
    splitter = SentenceSplitter(approximate_token_counter, chunk_tokens=50, overlap_tokens=0)
    for chunk in splitter.split(_article(text)):
        assert chunk.text.endswith(".")
        assert chunk.text.startswith("Sentence number")


def test_overlap_repeats_trailing_sentences_in_the_next_chunk() -> None:
    text = " ".join(f"Fact {i} is stated here." for i in range(40))
    splitter = SentenceSplitter(approximate_token_counter, chunk_tokens=50, overlap_tokens=15)
    chunks = splitter.split(_article(text))
    assert len(chunks) > 2
    for a, b in itertools.pairwise(chunks):
        assert b.start < a.end, "consecutive chunks should overlap"
        assert b.end > a.end, "every chunk must move forward"


def test_an_overlong_sentence_is_cut_at_words_to_fit() -> None:
    text = "word " * 500
    splitter = SentenceSplitter(approximate_token_counter, chunk_tokens=64, overlap_tokens=8)
    chunks = splitter.split(_article(text.strip()))
    counts = approximate_token_counter([c.text for c in chunks])
    assert len(chunks) > 5
    assert max(counts) <= 64


def test_no_seed_chunk_plus_title_exceeds_the_model_window(
    embeddings: LocalEmbeddings,
) -> None:
    from ingest.loaders import load_file

    article = load_file(SEED_FILE).articles[0]
    count = embeddings.token_counter()
    splitter = SentenceSplitter(count, chunk_tokens=200, overlap_tokens=40)
    chunks = splitter.split(article)
    assert len(chunks) >= 2
    for chunk in chunks:
        tokens = count([f"{article.title}\n{chunk.text}"])[0]
        assert tokens + 2 <= embeddings.max_tokens  # + [CLS] and [SEP]
    covered = set()
    for chunk in chunks:
        covered.update(range(chunk.start, chunk.end))
    text_positions = {i for i, ch in enumerate(article.text) if not ch.isspace()}
    assert text_positions <= covered, "every character of the article is in some chunk"
