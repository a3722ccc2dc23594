"""Time in every path: the as-of of a question, its date words, dated answers.

The Fed case of issue 12: two articles on the same subject from different months, with
real embeddings and a real Chroma index.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date

import pytest

from rag.assistant import Assistant
from rag.settings import Settings

MARCH = date(2022, 3, 16)
JUNE = date(2022, 6, 15)

MARCH_TEXT = (
    "The Federal Reserve raised its benchmark interest rate by a quarter of a percentage "
    "point on Wednesday, its first increase since 2018, as the central bank moved to cool "
    "inflation running at a four-decade high. Fed Chair Jerome Powell said the committee "
    "expects further increases at its coming meetings. The decision lifted the federal "
    "funds rate to a range of 0.25% to 0.5%. Markets rose after the announcement."
)
JUNE_TEXT = (
    "The Federal Reserve raised its benchmark interest rate by three-quarters of a "
    "percentage point on Wednesday, the largest increase since 1994, as the central bank "
    "stepped up its fight against inflation. Fed Chair Jerome Powell said another large "
    "increase could come in July. The decision lifted the federal funds rate to a range of "
    "1.5% to 1.75%. Stocks swung after the announcement."
)
OTHER_TEXT = (
    "A heat wave brought record temperatures to much of Europe this week, and officials in "
    "Spain warned of wildfires as the ground dried out. Farmers said the harvest of wheat "
    "would be smaller than last year."
)


@pytest.fixture
def fed(settings: Settings, assistant_factory: Callable[..., Assistant]) -> Assistant:
    """A library with the March and June 2022 rate hikes, asked on 1 July 2022."""
    assistant = assistant_factory(settings)
    assistant.today = lambda: date(2022, 7, 1)
    assistant.add_text(
        "Fed raises interest rates for the first time since 2018",
        MARCH_TEXT,
        source="example-news",
        published=MARCH,
    )
    assistant.add_text(
        "Fed makes its biggest rate hike since 1994",
        JUNE_TEXT,
        source="example-news",
        published=JUNE,
    )
    assistant.add_text(
        "Heat wave grips Europe", OTHER_TEXT, source="example-news", published=date(2022, 6, 17)
    )
    return assistant


def _cited_dates(answer) -> set[date | None]:  # type: ignore[no-untyped-def]
    return {s.published for s in answer.sources}


def test_a_question_naming_march_cites_the_march_article(fed: Assistant) -> None:
    answer = fed.ask("How much did the Fed raise interest rates in March 2022?")
    assert answer.found, answer.text
    assert _cited_dates(answer) == {MARCH}
    assert "quarter of a percentage point" in answer.text
    assert "2022-03-16" in answer.text
    assert answer.window is not None and answer.window.strict
    assert answer.window.label == "articles from March 2022"


def test_a_question_naming_june_cites_the_june_article(fed: Assistant) -> None:
    answer = fed.ask("How much did the Fed raise interest rates in June?")
    assert _cited_dates(answer) == {JUNE}
    assert "three-quarters" in answer.text


def test_a_question_without_a_date_cites_the_newer_and_shows_both_dates(fed: Assistant) -> None:
    answer = fed.ask("How much did the Fed raise interest rates?")
    assert answer.found, answer.text
    assert _cited_dates(answer) == {MARCH, JUNE}
    # Oldest first, then which one is newest.
    assert answer.text.index("2022-03-16") < answer.text.index("2022-06-15")
    newest = next(s.number for s in answer.sources if s.published == JUNE)
    assert f"The newest of these sources is [{newest}] (2022-06-15)." in answer.text
    assert answer.as_of == date(2022, 7, 1)
    assert answer.window is not None and not answer.window.strict
    assert answer.window.label == "articles up to 1 July 2022, the most recent (17 June 2022) first"


def test_every_quoted_sentence_shows_its_source_date_beside_its_marker(fed: Assistant) -> None:
    answer = fed.ask("What did Powell say about the June rate hike?")
    dates = {s.number: s.published for s in answer.sources}
    markers = re.findall(r"\[(\d)\] \((\d{4}-\d\d-\d\d)\)", answer.text)
    assert markers and len(markers) == len(re.findall(r"\[\d\]", answer.text))
    assert all(dates[int(n)] == date.fromisoformat(d) for n, d in markers)


def test_an_as_of_before_the_june_hike_leaves_it_out(fed: Assistant) -> None:
    answer = fed.ask("How much did the Fed raise interest rates?", as_of=date(2022, 4, 1))
    assert _cited_dates(answer) == {MARCH}
    assert answer.window is not None
    assert answer.window.label.startswith("articles up to 1 April 2022")


def test_an_archive_asked_years_later_still_prefers_its_own_recent_articles(
    settings: Settings, assistant_factory: Callable[..., Assistant]
) -> None:
    archive = assistant_factory(settings)
    archive.today = lambda: date(2026, 11, 27)
    for year, text in ((2018, "by a quarter point"), (2022, "by three-quarters of a point")):
        archive.add_text(
            f"Central bank raises rates ({year})",
            f"The central bank raised its main interest rate {text} on Wednesday to fight "
            "inflation, and its governor said more increases may follow this year.",
            published=date(year, 6, 13),
        )
    hits = archive.search("central bank raises its main interest rate")
    assert [h.published for h in hits] == [date(2022, 6, 13), date(2018, 6, 13)]
    assert hits[0].score > 2 * hits[1].score  # the recency boost of the newest article
    assert archive.time_scope("central bank rates").recent == date(2022, 6, 13)
    # Counted from the as-of itself, no article is recent: the prior tells them not apart.
    from_as_of = assistant_factory(settings.model_copy(update={"recency_from": "as_of"}))
    from_as_of.today = archive.today
    flat = from_as_of.search("central bank raises its main interest rate")
    assert flat[0].score < 1.5 * flat[1].score
    answer = archive.ask("By how much did the central bank raise its main interest rate?")
    newest = next(s.number for s in answer.sources if s.published == date(2022, 6, 13))
    assert "three-quarters of a point on Wednesday to fight inflation, and its" in answer.text
    assert f"The newest of these sources is [{newest}] (2022-06-13)." in answer.text


def test_a_month_without_a_year_means_the_one_the_archive_holds(fed: Assistant) -> None:
    fed.today = lambda: date(2026, 11, 27)
    answer = fed.ask("How much did the Fed raise interest rates in March?")
    assert _cited_dates(answer) == {MARCH}
    assert answer.window is not None and answer.window.label == "articles from March 2022"


def test_a_window_the_library_has_nothing_from_is_said_and_not_applied(fed: Assistant) -> None:
    answer = fed.ask("How much did the Fed raise interest rates in 2019?")
    assert answer.window is not None
    assert answer.window.label.startswith("no articles from 2019; articles up to 1 July 2022")
    assert answer.found and JUNE in _cited_dates(answer)


def test_the_ask_api_defaults_the_as_of_to_today_and_accepts_an_override(fed: Assistant) -> None:
    assert fed.ask("Fed rates?").as_of == date(2022, 7, 1)
    assert fed.ask("Fed rates?", as_of=date(2022, 6, 16)).as_of == date(2022, 6, 16)
    assert fed.time_scope("Fed rates?").as_of == date(2022, 7, 1)
