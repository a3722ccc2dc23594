"""Sentence splitting: what the extractive answer quotes and ingest pools vectors over."""

from __future__ import annotations

import pytest

from ingest.pipeline import sentence_spans
from rag.text import split_sentences


def _sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text)]


def test_an_exclamation_mark_inside_a_name_does_not_end_the_sentence() -> None:
    text = "He visited Ripley's Believe It or Not! in Times Square. Then he left."
    assert _sentences(text) == [
        "He visited Ripley's Believe It or Not! in Times Square.",
        "Then he left.",
    ]
    text = "Yahoo! Finance reported gains. Shares of Yahoo! rose 5%. Investors cheered."
    assert _sentences(text) == [
        "Yahoo! Finance reported gains.",
        "Shares of Yahoo! rose 5%.",
        "Investors cheered.",
    ]
    text = "The museum, Believe It or Not! — a landmark — reopened. Crowds came."
    assert len(_sentences(text)) == 2, "a dash continues the sentence"


@pytest.mark.parametrize("quote", ["'Why?' she asked.", "“Why?” she asked.", '"Why?" she asked.'])
def test_a_quoted_question_followed_by_its_speaker_is_one_sentence(quote: str) -> None:
    assert _sentences(f"{quote} Nobody knew.") == [quote, "Nobody knew."]


def test_a_question_or_exclamation_followed_by_a_capital_still_ends_the_sentence() -> None:
    assert _sentences("Is it over? Yes! The war ended.") == [
        "Is it over?",
        "Yes!",
        "The war ended.",
    ]


@pytest.mark.parametrize(
    "sentence",
    [
        "The U.S. economy grew 2% last year.",
        "The U.K. government resigned on Thursday.",
        "Mr. Smith met Dr. Jones in Paris.",
        "Gen. Milley and Sen. Schumer spoke on Jan. 6 in the Capitol.",
        "The deal was signed on Feb. 24 in Kyiv.",
        "He lives at No. 10 Downing Street.",
        "They moved to St. Louis in June.",
    ],
)
def test_an_abbreviation_does_not_end_a_sentence(sentence: str) -> None:
    assert _sentences(f"{sentence} Another sentence follows.") == [
        sentence,
        "Another sentence follows.",
    ]


@pytest.mark.parametrize(
    "sentence", ["George W. Bush met J.K. Rowling in London.", "J. R. R. Tolkien wrote it."]
)
def test_initials_do_not_end_a_sentence(sentence: str) -> None:
    assert _sentences(f"{sentence} They talked.") == [sentence, "They talked."]


def test_an_abbreviation_that_ends_a_sentence_still_ends_it() -> None:
    assert _sentences("Prices rose in the U.S. The Fed acted. He said no. Then he left.") == [
        "Prices rose in the U.S.",
        "The Fed acted.",
        "He said no.",
        "Then he left.",
    ]


def test_ingest_pools_sentence_vectors_over_the_same_sentences() -> None:
    text = "Shares of Yahoo! rose. George W. Bush spoke."
    spans = sentence_spans("Title", text)
    embedded = f"Title\n{text}"
    assert [embedded[s:e] for s, e in spans] == [
        "Title",
        "Shares of Yahoo! rose.",
        "George W. Bush spoke.",
    ]
