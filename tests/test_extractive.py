"""The extractive answer quotes the article's sentences, with the real model and Chroma."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest

from rag.assistant import Assistant
from rag.extractive import ExtractiveAnswerer
from rag.records import Answer, RetrievedChunk
from rag.retrieval import ArticleHit

pytestmark = pytest.mark.slow

TITLE = "Italian PM proposes extending NATO's Article 5 security umbrella to Ukraine"


def _asked_of_one_article(
    assistant: Assistant, title: str, text: str, published: date, question: str, days: int = 1
) -> Answer:
    """Ingest one article published on ``published``; ask ``question`` ``days`` later."""
    assistant.add_text(title, text, published=published)
    return assistant.ask(question, as_of=published + timedelta(days=days))


def test_the_meloni_answer_quotes_the_body_and_not_the_headline(seeded: Assistant) -> None:
    answer = seeded.ask("what did Meloni propose?")
    assert answer.found
    assert "extending NATO's Article 5 collective security protections to Ukraine" in answer.text
    assert "without granting the country full membership" in answer.text
    assert TITLE not in answer.text
    quotes = [q for q in re.split(r"\s*\[\d+\]\s*", answer.text) if q]
    body = [c.text for c in answer.retrieved]
    assert quotes and all(any(q in text for text in body) for q in quotes), "body sentences"
    assert set(re.findall(r"\[(\d+)\]", answer.text)) == {"1"}
    assert answer.sources[0].title == TITLE, "the headline stays the source card's title"


def test_the_headline_is_quoted_when_it_is_all_there_is(assistant: Assistant) -> None:
    assistant.add_text("Harbor festival will feature 40 tall ships this August", "Photo: AP.")
    answer = assistant.ask("How many tall ships will the harbor festival feature?")
    assert answer.found
    assert answer.text == "Harbor festival will feature 40 tall ships this August [1]"


def test_a_sentence_naming_the_asked_thing_only_as_the_noun_brings_the_one_naming_it(
    assistant: Assistant,
) -> None:
    """ "Which show?" answered by "... the popular drama series ..." alone names no show."""
    assistant.add_text(
        "Streaming service renews its hit",
        "Harbor Lights is officially coming back for more episodes. The streaming service "
        "announced on Sunday that the wildly popular drama series has been renewed for a "
        "second season, after it became the most watched show in its history. Production "
        "starts in the spring in Lisbon, the company said.",
    )
    answer = assistant.ask("Which wildly popular series was renewed for a second season?")
    assert answer.found
    assert "Harbor Lights is officially coming back" in answer.text
    assert answer.text.index("Harbor Lights") < answer.text.index("wildly popular drama series")
    # A best sentence that names its subject itself needs nothing before it.
    named = assistant.ask("Where does production of the renewed series start?")
    assert "Harbor Lights" not in named.text and "Lisbon" in named.text


def _hit(article_id: str, text: str, published: date) -> ArticleHit:
    chunk = RetrievedChunk(
        f"{article_id}:0",
        article_id,
        text,
        "Menu news",
        "example",
        None,
        published,
        0,
        0,
        len(text),
        1.0,
    )
    return ArticleHit(article_id, "Menu news", "example", None, published, 1.0, (chunk,))


def test_a_fresh_sentence_leads_the_answer_over_a_years_old_one_that_matches_better() -> None:
    """Asked as of a day, that week's news answers: of two equally retrieved articles, a
    six-year-old sentence worded like the question does not lead the answer."""
    question = "What new item did the burger chain add to its menu for the fall?"
    hits = [
        _hit(
            "old",
            "The burger chain added a new item to its menu for the fall: a maple breakfast "
            "sandwich with sausage, egg and cheese.",
            date(2016, 7, 6),
        ),
        _hit(
            "new",
            "The chain's newest menu item for the fall is a cheese danish, the first new "
            "pastry at its burger restaurants in years, a spokesperson said on Tuesday.",
            date(2022, 9, 6),
        ),
    ]
    answerer = ExtractiveAnswerer(idf=lambda ws: dict.fromkeys(ws, 1.0))
    answer = answerer.answer(question, hits, as_of=date(2022, 9, 8))
    assert answer.found
    assert answer.text.startswith("The chain's newest menu item for the fall is a cheese")
    assert answer.sources[0].article_id == "new"
    # With no date to be fresh for, the better-worded sentence leads.
    assert answerer.answer(question, hits).sources[0].article_id == "old"


def test_another_outlets_sentence_stating_the_same_facts_is_not_cited(
    assistant: Assistant,
) -> None:
    """Two reports of one event: the answer quotes one of them, not both, since the
    second names nothing the first does not (each citation has to be the right one)."""
    day = date(2022, 6, 27)
    assistant.add_text(
        "Avalanche win the Stanley Cup",
        "The Colorado Avalanche won the Stanley Cup on Sunday night, beating the Tampa Bay "
        "Lightning in Game 6 of the final series.",
        source="first-outlet",
        published=day,
    )
    assistant.add_text(
        "Colorado are champions",
        "The Colorado Avalanche won the Stanley Cup final series on Sunday night, beating "
        "Tampa Bay in Game 6.",
        source="second-outlet",
        published=day,
    )
    answer = assistant.ask("Which team won the Stanley Cup final series?", as_of=day)
    assert answer.found
    assert "The Colorado Avalanche won the Stanley Cup" in answer.text
    assert len(answer.sources) == 1, answer.text
    assert answer.text.count("[1]") == 1 and "[2]" not in answer.text


def test_a_differently_dated_sentence_repeating_the_figure_is_not_quoted_as_a_contrast(
    assistant: Assistant,
) -> None:
    """ "How many ...?": an older article is quoted beside the answer only when it gives
    another figure; one that repeats the answer's figure contrasts nothing."""
    assistant.add_text(
        "Chestnut eats 63 for his 15th title",
        "Joey Chestnut ate 63 hot dogs and buns in 10 minutes to win the hot dog eating "
        "contest for the 15th time.",
        source="first-outlet",
        published=date(2022, 7, 5),
    )
    assistant.add_text(
        "Chestnut wins again",
        "Competitive eater Joey Chestnut won the hot dog eating contest again, eating 63 "
        "hot dogs in 10 minutes.",
        source="second-outlet",
        published=date(2022, 7, 4),
    )
    question = "How many hot dogs did Joey Chestnut eat to win the hot dog eating contest?"
    answer = assistant.ask(question, as_of=date(2022, 7, 6))
    assert answer.found
    assert "63 hot dogs" in answer.text
    assert len(answer.sources) == 1, answer.text
    assert "The newest of these sources" not in answer.text


def test_a_dateline_on_its_own_line_is_not_quoted_as_a_sentence(assistant: Assistant) -> None:
    """ "Los Angeles / New York CNN Business —" has six words but says nothing: it is
    neither the lede (that takes the headline's words) nor a sentence to quote."""
    answer = _asked_of_one_article(
        assistant,
        "California fast food law could raise the minimum wage to $22 an hour",
        "Los Angeles / New York CNN Business —\n"
        "California's governor signed a bill on Monday creating a council for fast food "
        "workers. The council could raise the minimum wage for fast food workers to $22 an "
        "hour next year. Restaurant groups said they would fight the law.",
        date(2022, 9, 5),
        "A new California fast food law could raise the minimum wage to which hourly amount?",
    )
    assert answer.found
    assert "$22 an hour" in answer.text
    assert "CNN Business" not in answer.text, answer.text


def test_an_outlets_mark_run_into_the_first_sentence_is_not_quoted(assistant: Assistant) -> None:
    """ "(CNN) NASA's Artemis I ..." is quoted from "NASA": the card names the outlet."""
    answer = _asked_of_one_article(
        assistant,
        "NASA sets the Artemis I launch",
        "(CNN) NASA's Artemis I rocket is scheduled to launch on a historic mission later this "
        "month that will go beyond the moon and return to Earth. The uncrewed flight will test "
        "the Orion capsule before astronauts fly on it.",
        date(2022, 8, 16),
        "Which NASA rocket will launch on a mission beyond the moon?",
        days=2,
    )
    assert answer.found
    assert answer.text.startswith("NASA's Artemis I rocket is scheduled"), answer.text
    assert "(CNN)" not in answer.text


def test_which_amount_is_asked_as_a_figure_and_the_sentence_stating_it_is_quoted(
    assistant: Assistant,
) -> None:
    """ "To which hourly amount?" asks for a figure, not a name: the sentence with "$22 an
    hour" beats the lede that restates the question with names (the two are too long to
    quote both)."""
    answer = _asked_of_one_article(
        assistant,
        "California fast food law",
        "In a move the restaurant industry warns could raise fast food prices, California's "
        "governor signed into law a bill creating a Fast Food Council to determine standards "
        "for pay, hours and working conditions for the state's fast food workers. Under the "
        "legislation, the council could raise the minimum wage for fast food workers to up "
        "to $22 an hour next year, well above the $15 an hour minimum the state sets for "
        "employers with more than 26 workers, according to the text of the bill.",
        date(2022, 9, 5),
        "A new California fast food law could soon raise the minimum wage to which hourly amount?",
    )
    assert "$22 an hour" in answer.text, answer.text


def test_the_sentence_naming_the_asked_thing_is_added_when_another_quote_comes_first(
    assistant: Assistant,
) -> None:
    """The best sentence says only "the ... series"; a second quote from earlier in the
    article comes first in reading order, and the sentence naming the series is still
    added right before the best one."""
    answer = _asked_of_one_article(
        assistant,
        "Streaming service renews its wildly popular series for a second season",
        "Streaming fans had a lot to celebrate this week as the service renewed a series. "
        "Harbor Lights is officially coming back for more episodes. The streaming service "
        "announced on Sunday that the wildly popular drama series has been renewed for a "
        "second season, after it became the most watched show in its history.",
        date(2022, 6, 13),
        "Which wildly popular series was renewed for a second season?",
    )
    assert answer.found
    assert "Harbor Lights is officially coming back" in answer.text, answer.text
    assert answer.text.index("Harbor Lights") < answer.text.index("wildly popular drama series")


def test_the_sentence_naming_the_asked_thing_is_added_for_a_second_quote_that_needs_it(
    assistant: Assistant,
) -> None:
    """The best sentence speaks of series in general; the other quote says "the ...
    series": the sentence before that one names it and is added."""
    answer = _asked_of_one_article(
        assistant,
        "Streaming service renews a series",
        "Harbor Lights is officially coming back. The service said on Sunday that the "
        "wildly popular drama series will return. Wildly popular series are rarely renewed "
        "for a second season so quickly, the service said.",
        date(2022, 6, 13),
        "Which wildly popular series was renewed for a second season?",
    )
    assert answer.found
    assert answer.text.startswith("Harbor Lights is officially coming back."), answer.text
