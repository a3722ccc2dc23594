"""Time in every path: the as-of of a question, its date words, dated answers.

The Fed case of issue 12: two articles on the same subject from different months, with
real embeddings and a real Chroma index.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path

import gradio as gr
import pytest
from langchain_core.messages import AIMessage

import app
from rag.assistant import Assistant
from rag.cli import main
from rag.dates import format_day, resolve_window
from rag.records import Answer, DateWindow
from rag.settings import Settings
from tests.conftest import SEEDS
from tests.test_llm import RecordingChatModel

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


def _cited_dates(answer: Answer) -> set[date | None]:
    return {s.published for s in answer.sources}


@pytest.mark.slow
def test_a_question_naming_march_cites_the_march_article(fed: Assistant) -> None:
    answer = fed.ask("How much did the Fed raise interest rates in March 2022?")
    assert answer.found, answer.text
    assert _cited_dates(answer) == {MARCH}
    assert "quarter of a percentage point" in answer.text
    assert "2022-03-16" in answer.text
    assert answer.window is not None and answer.window.strict
    assert answer.window.label == "articles from March 2022"


@pytest.mark.slow
def test_a_question_naming_june_cites_the_june_article(fed: Assistant) -> None:
    answer = fed.ask("How much did the Fed raise interest rates in June?")
    assert _cited_dates(answer) == {JUNE}
    assert "three-quarters" in answer.text


@pytest.mark.slow
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


@pytest.mark.slow
def test_every_quoted_sentence_shows_its_source_date_beside_its_marker(fed: Assistant) -> None:
    answer = fed.ask("What did Powell say about the June rate hike?")
    dates = {s.number: s.published for s in answer.sources}
    markers = re.findall(r"\[(\d)\] \((\d{4}-\d\d-\d\d)\)", answer.text)
    assert markers and len(markers) == len(re.findall(r"\[\d\]", answer.text))
    assert all(dates[int(n)] == date.fromisoformat(d) for n, d in markers)


@pytest.mark.slow
def test_an_as_of_before_the_june_hike_leaves_it_out(fed: Assistant) -> None:
    answer = fed.ask("How much did the Fed raise interest rates?", as_of=date(2022, 4, 1))
    assert _cited_dates(answer) == {MARCH}
    assert answer.window is not None
    assert answer.window.label.startswith("articles up to 1 April 2022")


@pytest.mark.slow
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


def test_a_named_week_asked_of_an_archive_prefers_news_from_around_it_over_later_news(
    settings: Settings, assistant_factory: Callable[..., Assistant]
) -> None:
    """ "The week of 11 July 2022" asked in 2026 (no as-of to leave later news out): the
    weekend report just before that week outranks the same story told a week later."""
    archive = assistant_factory(settings)
    archive.today = lambda: date(2026, 11, 27)
    body = (
        "topped the North American box office this weekend with an estimated $143 million "
        "in ticket sales, the studio said, ahead of last week's leader."
    )
    archive.add_text(
        "Weekend box office", f"Thor: Love and Thunder {body}", published=date(2022, 7, 10)
    )
    archive.add_text("Box office report", f"Nope {body}", published=date(2022, 7, 25))
    archive.add_text("Box office, September", f"Barbarian {body}", published=date(2022, 9, 12))
    archive.add_text("Heat wave grips Europe", OTHER_TEXT, published=date(2022, 7, 13))
    question = "Which movie topped the box office in the week of 11 July 2022?"
    scope = archive.time_scope(question)
    assert (scope.window.start, scope.recent, scope.around) == (
        date(2022, 7, 11),
        date(2022, 7, 13),
        True,
    )
    hits = archive.search(question)
    assert hits[0].published == date(2022, 7, 10)
    assert hits[0].score > 1.5 * hits[1].score  # a day outside the week; the other two weeks
    assert "Thor" in archive.ask(question).text


def test_the_date_words_of_a_question_are_not_matched_as_words_of_an_article(
    settings: Settings, assistant_factory: Callable[..., Assistant]
) -> None:
    """ "In the week of 20 June 2022" sets the window; as words it would rank first the
    round-ups whose text is full of that week's dates over the article that answers."""
    archive = assistant_factory(settings)
    archive.today = lambda: date(2026, 11, 27)
    archive.add_text(
        "Colombia chooses Gustavo Petro",
        "Colombians elected Gustavo Petro on Sunday, the first leftist president in the "
        "country's history, after a campaign dominated by inequality and violence.",
        published=date(2022, 6, 20),
    )
    for day in (20, 21, 22):
        archive.add_text(
            f"Five things to know for June {day}, 2022",
            f"Here is the week of June 20, 2022 so far. On June {day}, 2022 the heat wave "
            "reached Spain, airlines cancelled flights and the Supreme Court ruled on a "
            f"case. Start your week of 20 June 2022 smart: June {day}, 2022 in brief.",
            published=date(2022, 6, day),
        )
    hits = archive.search(
        "Which country elected its first leftist leader in the week of 20 June 2022?"
    )
    assert hits[0].title == "Colombia chooses Gustavo Petro"


@pytest.mark.slow
def test_a_month_without_a_year_means_the_one_the_archive_holds(fed: Assistant) -> None:
    fed.today = lambda: date(2026, 11, 27)
    answer = fed.ask("How much did the Fed raise interest rates in March?")
    assert _cited_dates(answer) == {MARCH}
    assert answer.window is not None and answer.window.label == "articles from March 2022"


def test_a_month_named_in_passing_means_the_one_the_archive_holds(fed: Assistant) -> None:
    """Issue 12's "What did Powell say about the Fed's June rate hike?" asked in 2026 of
    a 2022 archive searched June 2026, found nothing, and quoted a 2018 article."""
    fed.today = lambda: date(2026, 11, 27)
    answer = fed.ask("What did Powell say about the Fed's June rate hike?")
    assert answer.window is not None and answer.window.label == "articles from 1-17 June 2022 first"
    assert answer.sources[0].published == JUNE, answer.text
    assert "another large increase could come in July" in answer.text


@pytest.mark.slow
def test_a_window_the_library_has_nothing_from_is_said_and_not_applied(fed: Assistant) -> None:
    answer = fed.ask("How much did the Fed raise interest rates in 2019?")
    assert answer.window is not None
    assert answer.window.label.startswith("no articles from 2019; articles up to 1 July 2022")
    assert answer.found and JUNE in _cited_dates(answer)


@pytest.mark.slow
def test_the_ask_api_defaults_the_as_of_to_today_and_accepts_an_override(fed: Assistant) -> None:
    assert fed.ask("Fed rates?").as_of == date(2022, 7, 1)
    assert fed.ask("Fed rates?", as_of=date(2022, 6, 16)).as_of == date(2022, 6, 16)
    assert fed.time_scope("Fed rates?").as_of == date(2022, 7, 1)


# -- date words, resolved against a fixed as-of (Friday 24 June 2022) -------------------

FRIDAY = date(2022, 6, 24)


@pytest.mark.parametrize(
    ("question", "start", "end", "strict", "label"),
    [
        (
            "How much did the Fed raise rates in June 2022?",
            date(2022, 6, 1),
            FRIDAY,
            True,
            "articles from 1-24 June 2022",
        ),
        (
            "What happened last week?",
            date(2022, 6, 13),
            date(2022, 6, 19),
            False,
            "articles from 13-19 June 2022 first",
        ),
        (
            "What happened this week in Ukraine?",
            date(2022, 6, 20),
            FRIDAY,
            False,
            "articles from 20-24 June 2022 first",
        ),
        (
            "Who won yesterday?",
            date(2022, 6, 23),
            date(2022, 6, 23),
            False,
            "articles from 23 June 2022 first",
        ),
        (
            "What did Powell say on Wednesday?",
            date(2022, 6, 22),
            date(2022, 6, 22),
            False,
            "articles from 22 June 2022 first",
        ),
        (
            "Who was arrested early Friday?",
            FRIDAY,
            FRIDAY,
            False,
            "articles from 24 June 2022 first",
        ),
        (
            "Who won the election in 2018?",
            date(2018, 1, 1),
            date(2018, 12, 31),
            True,
            "articles from 2018",
        ),
        (
            "What has the Fed done since March?",
            date(2022, 3, 1),
            FRIDAY,
            True,
            "articles from 1 March to 24 June 2022",
        ),
        (
            "What did Biden say before 1 May 2022?",
            None,
            date(2022, 4, 30),
            True,
            "articles up to 30 April 2022",
        ),
        (
            "What happened on 15 June 2022?",
            date(2022, 6, 15),
            date(2022, 6, 15),
            False,
            "articles from 15 June 2022 first",
        ),
        (
            "What happened in the past two weeks?",
            date(2022, 6, 11),
            FRIDAY,
            False,
            "articles from 11-24 June 2022 first",
        ),
        (
            "what happened in may?",
            date(2022, 5, 1),
            date(2022, 5, 31),
            True,
            "articles from May 2022",
        ),
        (
            "What happened in December?",
            date(2021, 12, 1),
            date(2021, 12, 31),
            True,
            "articles from December 2021",
        ),
        (
            "What did Powell say about the Fed's June rate hike?",
            date(2022, 6, 1),
            FRIDAY,
            False,
            "articles from 1-24 June 2022 first",
        ),
        (  # how people write about an archive: dateparser finds no date in the phrase
            "Who was arrested in the week of 13 June 2022 near the parade?",
            date(2022, 6, 13),
            date(2022, 6, 19),
            False,
            "articles from 13-19 June 2022 first",
        ),
        (
            "Which cheese is seeing a boost in popularity as of 20 June 2022?",
            None,
            date(2022, 6, 20),
            True,
            "articles up to 20 June 2022",
        ),
        (  # an event still to come: its news comes out before it
            "Which product is Apple expected to unveil in June 2022?",
            date(2022, 5, 1),
            date(2022, 6, 24),
            False,
            "articles from 1 May to 24 June 2022 first",
        ),
        (  # a word after the date does not make it describe a thing after "before"
            "Which show was shortly before 16 June 2022 green lit for a new season?",
            None,
            date(2022, 6, 15),
            True,
            "articles up to 15 June 2022",
        ),
    ],
)
def test_date_words_resolve_against_the_as_of(
    question: str, start: date | None, end: date, strict: bool, label: str
) -> None:
    window = resolve_window(question, FRIDAY)
    assert window is not None, question
    assert (window.start, window.end, window.strict, window.label) == (start, end, strict, label)


@pytest.mark.parametrize(
    "question",
    [
        "What did Biden say before the election?",  # no date is known for it
        "May the Fed raise rates again?",  # the verb
        "What did the protesters march on?",
        "What happened now?",
        "How many of the 2000 people were rescued?",  # a count, not a year
        "Who won the 2020 presidential election?",  # a year naming a thing, not a window
        "Did the sun rise over the Sahara?",  # dateparser reads "sun" as Sunday
        "What did Jan say about the merger?",
        "What did they say at 5 pm?",
        "Which card from 1952 sold at auction?",  # describes the card
        "What was the record high of June?",
        "Why are rents higher than a year ago?",  # a comparison, not a window
        "What did Meloni propose?",
        "According to a June 2022 survey, how many adults disapprove?",  # names the survey
    ],
)
def test_words_that_only_look_like_dates_give_no_window(question: str) -> None:
    assert resolve_window(question, FRIDAY) is None


def test_a_date_after_the_as_of_gives_no_window() -> None:
    assert resolve_window("What will happen in 2030?", FRIDAY) is None


def test_a_date_said_twice_in_a_long_question_is_one_window() -> None:
    question = "What happened in the markets this week? " * 40
    window = resolve_window(question[:2000], FRIDAY)
    assert window is not None and window.phrase == "this week"
    assert (window.start, window.end) == (date(2022, 6, 20), FRIDAY)


# -- the as-of and window shown by the CLI and the chat ---------------------------------


@pytest.mark.slow
def test_the_cli_shows_the_as_of_and_window_and_defaults_to_today(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(tmp_path / "data")
    library = tmp_path / "fed.jsonl"
    library.write_text(
        "\n".join(
            json.dumps({"title": title, "text": text, "published": day.isoformat()})
            for title, text, day in (
                ("March hike", MARCH_TEXT, MARCH),
                ("June hike", JUNE_TEXT, JUNE),
            )
        )
    )
    assert main(["--data-dir", data, "ingest", str(SEEDS), str(library)]) == 0
    capsys.readouterr()
    question = "How much did the Fed raise interest rates in March 2022?"
    assert main(["--data-dir", data, "ask", question, "--as-of", "2022-07-01"]) == 0
    out = capsys.readouterr().out
    assert "quarter of a percentage point" in out and "[1] (2022-03-16)" in out
    assert "As of 1 July 2022 · searched articles from March 2022" in out
    assert "[1] March hike, 2022-03-16" in out
    assert main(["--data-dir", data, "ask", "what did Meloni propose?"]) == 0
    out = capsys.readouterr().out
    assert f"As of {format_day(date.today())} · searched articles up to" in out
    assert "Article 5" in out
    assert main(["--data-dir", data, "ask", "--json", question, "--as-of", "2022-07-01"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["as_of"] == "2022-07-01"
    assert payload["window"] == {
        "start": "2022-03-01",
        "end": "2022-03-31",
        "label": "articles from March 2022",
        "phrase": "in March 2022",
        "strict": True,
    }
    assert [s["published"] for s in payload["sources"]] == ["2022-03-16"]


def test_the_chat_shows_the_as_of_and_window_under_a_complete_answer() -> None:
    window = DateWindow(date(2022, 6, 13), date(2022, 6, 19), "articles from 13-19 June 2022")
    answer = Answer("q", "It rained [1] (2022-06-15)", as_of=date(2022, 6, 24), window=window)
    shown = app.render_answer(answer)
    assert '<small class="answer-when">As of 24 June 2022 · searched articles from 13' in shown
    assert "19 June 2022</small>" in shown
    assert "answer-when" not in app.render_answer(replace(answer, done=False))


@pytest.mark.slow
def test_the_chat_date_control_sets_the_as_of(fed: Assistant, tmp_path: Path) -> None:
    chat = app.ChatApp(fed, tmp_path / "uploads")
    question = "How much did the Fed raise interest rates?"
    *_, (history, turns, _, _) = chat.respond(question, [], [], [], "", "", "2022-04-01")
    assert turns[-1].answer is not None and turns[-1].answer.as_of == date(2022, 4, 1)
    assert "As of 1 April 2022" in history[-1]["content"]
    assert {s.published for s in turns[-1].answer.sources} == {MARCH}
    *_, (history, turns, _, _) = chat.respond(question, [], [], [], "", "", "")
    assert "As of 1 July 2022" in history[-1]["content"]
    with pytest.raises(gr.Error, match="As of must be a date"):
        list(chat.respond(question, [], [], [], "", "", "last week"))


@pytest.mark.slow
def test_the_llm_gets_the_as_of_and_dated_sources_and_its_answer_carries_them(
    settings: Settings, assistant_factory: Callable[..., Assistant]
) -> None:
    reply = "On 2022-06-15 the Fed raised rates by three-quarters of a point [1]."
    model = RecordingChatModel(messages=iter([AIMessage(content=reply)]))
    llm_settings = settings.model_copy(update={"llm_provider": "openai", "llm_model": "fake"})
    assistant = assistant_factory(llm_settings, model)
    assistant.today = lambda: date(2022, 7, 1)
    assistant.add_text("Fed makes its biggest rate hike since 1994", JUNE_TEXT, published=JUNE)

    answer = assistant.ask("How much did the Fed raise interest rates in June?")

    system, user = (m.content for m in model.prompts[-1])
    assert "publication date" in system and "which source is the newest" in system
    assert 'date="2022-06-15"' in user
    assert "The question is asked on 2022-07-01." in user
    assert answer.text == reply and answer.as_of == date(2022, 7, 1)
    assert answer.window is not None and answer.window.label == "articles from June 2022"


def test_an_archive_asked_without_a_date_does_not_discount_its_older_months(
    settings: Settings, assistant_factory: Callable[..., Assistant]
) -> None:
    """2022 news asked about in 2026 with no date: the June article answers even though
    the library's newest article is from September (before, its evidence was halved for
    being three months older than the newest, and the answer was "Not found")."""
    assistant = assistant_factory(settings)
    assistant.today = lambda: date(2026, 11, 27)
    assistant.add_text("Fed makes its biggest rate hike since 1994", JUNE_TEXT, published=JUNE)
    assistant.add_text("Heat wave grips Europe", OTHER_TEXT, published=date(2022, 9, 20))
    answer = assistant.ask("By how much did the Federal Reserve raise its benchmark rate?")
    assert answer.found, answer.text
    assert "three-quarters of a percentage point" in answer.text
    dated = assistant.ask(
        "By how much did the Federal Reserve raise its benchmark rate?", as_of=date(2022, 9, 30)
    )
    assert dated.confidence < answer.confidence, "a dated question still prefers fresh news"
