"""The eval harness on a tiny dataset built in the test, in the rtqa-dev format."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatResult
from pydantic import Field

from rag.assistant import Assistant
from rag.cli import main
from rag.errors import ConfigError
from rag.eval_conversations import (
    DEFAULT_CONVERSATIONS,
    Conversation,
    conversation_table,
    load_conversations,
    run_conversations,
    summarize_conversations,
)
from rag.eval_match import AnswerIndex, answer_hit_lenient, fair_exclusions, story_groups
from rag.eval_time import explicit_dates, has_time_words
from rag.evaluation import Question, answer_hit, half_label, load_questions, parse_grid, split_weeks
from tests.conftest import make_settings

ARTICLES = [
    {
        "id": "gold-bridge",
        "url": "https://news.example/bridge",
        "title": "Harbor bridge reopens",
        "published": "2024-05-30",
        "source": "news.example",
        "text": "The Harbor Bridge reopened on Thursday after two years of repairs. "
        "Mayor Lena Ortiz said the repairs cost 40 million dollars.",
    },
    {
        "id": "gold-festival",
        "url": "https://news.example/festival",
        "title": "Tall ships festival",
        "published": "2024-05-30",
        "source": "news.example",
        "text": "The tall ships festival will bring 35 ships to the harbor in July. "
        "Organizers expect half a million visitors.",
    },
    {
        "id": "distractor",
        "url": "https://other.example/weather",
        "title": "Weekend weather",
        "published": "2024-05-20",
        "source": "other.example",
        "text": "Forecasters expect rain on Saturday and sunshine on Sunday across the region.",
    },
]
QUESTIONS = [
    {
        "id": "q1",
        "question": "How much did the Harbor Bridge repairs cost?",
        "date": "2024-06-01",
        "answer": "40 million dollars",
        "answer_norm": "40 million dollars",
        "gold_doc_ids": ["gold-bridge"],
    },
    {
        "id": "q2",
        "question": "How many ships will the tall ships festival bring to the harbor?",
        "date": "2024-06-01",
        "answer": "35",
        "answer_norm": "35",
        "gold_doc_ids": ["gold-festival"],
    },
]


def _dataset(folder: Path) -> Path:
    folder.mkdir()
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(a) for a in ARTICLES) + "\n")
    (folder / "questions.jsonl").write_text("\n".join(json.dumps(q) for q in QUESTIONS) + "\n")
    return folder


def test_answer_hit_needs_whole_words() -> None:
    assert answer_hit("It cost 40 million dollars [1].", "40 million dollars")
    assert not answer_hit("It cost 140 million dollars.", "40 million dollars")


def test_a_dataset_without_questions_file_is_a_clear_error(tmp_path: Path) -> None:
    from rag.errors import ConfigError

    with pytest.raises(ConfigError, match=r"questions\.jsonl"):
        load_questions(tmp_path)


@pytest.mark.slow
def test_eval_runs_on_a_small_dataset_and_writes_json_and_markdown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = _dataset(tmp_path / "tiny")
    out = tmp_path / "results"
    code = main(
        [
            "--data-dir",
            str(tmp_path / "data"),
            "eval",
            str(dataset),
            "--limit",
            "2",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "| newsrag (extractive) |" in printed
    assert "| BM25 1000/200 |" in printed and "| LangChain tutorial |" in printed
    payload = json.loads(next(out.glob("eval-*.json")).read_text())
    ours = payload["summaries"][0]
    assert ours["questions"] == 2
    assert ours["recall_at_1"] == 1.0
    assert ours["answer_hit"] == 1.0
    assert ours["citation_precision"] == 1.0
    assert ours["abstain_no_answer"] == 1.0, "with the gold article left out, it abstains"
    assert next(out.glob("eval-*.md")).read_text().count("|") > 20
    # The eval collection is reused: a second run embeds nothing new.
    assert (
        main(
            [
                "--data-dir",
                str(tmp_path / "data"),
                "eval",
                str(dataset),
                "--no-anchors",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "added 0, updated 0, skipped 3" in capsys.readouterr().err


@pytest.mark.slow
def test_eval_can_measure_a_collection_that_holds_the_corpus_already(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = _dataset(tmp_path / "tiny")
    data = str(tmp_path / "data")
    corpus = str(dataset / "corpus.jsonl")
    assert main(["--data-dir", data, "--collection", "kept", "ingest", corpus]) == 0
    capsys.readouterr()
    args = ["eval", str(dataset), "--no-anchors", "--out", str(tmp_path / "results")]
    assert main(["--data-dir", data, "--collection", "kept", *args]) == 0
    assert "added 0, updated 0, skipped 3" in capsys.readouterr().err


# -- lenient answer-hit ---------------------------------------------------------------------


def test_lenient_answer_hit_reads_curly_possessives_as_the_name() -> None:
    text = "Brazil’s polarizing presidential race [1]"
    assert not answer_hit(text, "brazil"), "the strict figure stays strict"
    assert answer_hit_lenient(text, "Brazil", "brazil")
    assert answer_hit_lenient("New York City's Times Square", "New York City’s Times Square", "")


def test_lenient_answer_hit_reads_number_words_as_digits() -> None:
    assert not answer_hit("He got a nine-year sentence.", "9")
    assert answer_hit_lenient("He got a nine-year sentence.", "9", "9")
    assert answer_hit_lenient("Chestnut ate sixty-three hot dogs", "63", "63")
    assert answer_hit_lenient("60 percent disapprove", "60%", "60%")


def test_lenient_answer_hit_reads_a_demonym_as_its_country() -> None:
    assert not answer_hit("Iranian lawmakers voted", "iran")
    assert answer_hit_lenient("Iranian lawmakers voted", "Iran", "iran")
    assert answer_hit_lenient("Filipinos felt the quake", "Philippines", "philippines")
    assert answer_hit_lenient("the North Korean government", "North Korea", "north korea")
    assert answer_hit_lenient("the French New Wave", "France", "france"), "France, not Réunion"


def test_lenient_answer_hit_reads_amounts_numerals_and_plurals_alike() -> None:
    assert answer_hit_lenient("a card sold for $12,600,000 [1]", "$12.6 million", "$12.6 million")
    assert answer_hit_lenient("NASA's Artemis I rocket", "Artemis 1", "artemis 1")
    assert answer_hit_lenient("a new type of chicken nugget", "Chicken nuggets", "chicken nuggets")
    assert not answer_hit_lenient("a card sold for $12,600,000", "$12 million", "$12 million")
    assert not answer_hit_lenient("NASA's Artemis II rocket", "Artemis 1", "artemis 1")


def test_lenient_answer_hit_still_needs_the_answer() -> None:
    assert not answer_hit_lenient("Iraqi lawmakers voted", "Iran", "iran")
    assert not answer_hit_lenient("It cost 19 dollars", "$19 million", "$19 million")
    assert not answer_hit_lenient("ninety people", "9", "9")


# -- time words made explicit --------------------------------------------------------------


def test_this_week_becomes_the_week_of_the_questions_monday() -> None:
    asked = date(2022, 6, 16)  # a Thursday
    assert explicit_dates("Who won this week?", asked) == "Who won in the week of 13 June 2022?"
    assert explicit_dates("Who won last week?", asked) == "Who won in the week of 6 June 2022?"


def test_weekdays_days_and_months_become_dates_before_the_question() -> None:
    asked = date(2022, 6, 23)  # a Thursday
    assert explicit_dates("Who retired on Tuesday?", asked) == "Who retired on 21 June 2022?"
    assert explicit_dates("Who spoke on Thursday?", asked) == "Who spoke on 23 June 2022?"
    assert explicit_dates("What happened yesterday?", asked) == "What happened on 22 June 2022?"
    assert explicit_dates("Who launched this month?", asked) == "Who launched in June 2022?"
    assert "shortly before 23 June 2022" in explicit_dates("What sold recently?", asked)


def test_a_question_without_time_words_is_left_unchanged() -> None:
    question = "Where is Mar-a-Lago located, and what happened on Monday, June 13?"
    assert explicit_dates(question, date(2022, 8, 12)) == question
    assert has_time_words("Who resigned this week?")
    assert not has_time_words("Where is Mar-a-Lago?")


# -- week halves ---------------------------------------------------------------------------


def _question(qid: str, day: date) -> Question:
    return Question(qid, "q?", day, "a", "a", ("g",))


def test_the_week_split_puts_the_earlier_weeks_first() -> None:
    days = [date(2022, 6, 16), date(2022, 6, 17), date(2022, 6, 23), date(2022, 7, 1)]
    days += [date(2022, 7, 8)]
    questions = [_question(f"q{i}", d) for i, d in enumerate(reversed(days))]
    questions.append(Question("undated", "q?", None, "a", "a", ("g",)))
    earlier, later = split_weeks(questions)
    # Three weeks of five: the first half gets the odd one; 16 and 17 June are one week.
    assert sorted(q.id for q in earlier) == ["q2", "q3", "q4"]
    assert sorted(q.id for q in later) == ["q0", "q1"]
    assert half_label(earlier) == "weeks 2022-06-16..2022-06-23 (2 weeks)"


def test_a_grid_names_real_settings_with_valid_values() -> None:
    assert parse_grid(["recency_boost=0.5,3", "min_evidence=0.4"]) == {
        "recency_boost": [0.5, 3.0],
        "min_evidence": [0.4],
    }
    with pytest.raises(ConfigError, match="recency_bost"):
        parse_grid(["recency_bost=1"])
    with pytest.raises(ConfigError, match="greater than or equal"):
        parse_grid(["recency_boost=-1"])


# -- the fair no-answer variant ------------------------------------------------------------

_SESSION = (
    "The session opened with a long debate on fuel subsidies and teacher salaries, and the "
    "speaker read out a statement from the finance ministry about the currency, the deficit "
    "and the price of bread in the provinces before members raised questions about water "
    "shortages in the south and the delayed railway line to the northern border towns."
)
FAIR_CORPUS = {
    "gold": ("Parliament votes", f"Iran's parliament voted on the budget on Sunday. {_SESSION}"),
    "other-holder": ("Budget news", "Iranian lawmakers passed the budget after a long debate."),
    "update-of-gold": (
        "Parliament votes",
        f"The parliament in Tehran voted on the budget on Sunday evening. {_SESSION}",
    ),
    "same-title-other-story": (
        "Parliament votes",
        "Lawmakers in another country approved a new fishing law after a short debate about "
        "quotas, harbours, boat licences and the protection of coral reefs along the coast.",
    ),
    "unrelated": ("Weather", "Rain is expected across the region on Saturday afternoon."),
}


def test_the_fair_no_answer_variant_leaves_out_every_article_holding_the_answer() -> None:
    groups = story_groups(FAIR_CORPUS)
    index = AnswerIndex(FAIR_CORPUS)
    assert sorted(index.holding("Iran", "iran")) == ["gold", "other-holder"]
    [left_out] = fair_exclusions([("Iran", "iran", ["gold"])], index, groups)
    assert "gold" in left_out and "other-holder" in left_out
    assert "update-of-gold" in left_out, "the same story, without the answer's word"
    assert "same-title-other-story" not in left_out, "a title alone is not a story"
    assert "unrelated" not in left_out


def test_story_groups_join_articles_that_share_most_of_their_text() -> None:
    body = " ".join(f"word{i}" for i in range(200))
    corpus = {
        "a": ("First title", body),
        "b": ("Another title", body + " with a correction appended at the end"),
        "c": ("Third", " ".join(f"other{i}" for i in range(200))),
    }
    groups = story_groups(corpus)
    assert groups.of("a") == {"b"}
    assert groups.of("c") == frozenset()


# -- conversations -------------------------------------------------------------------------

DEV = Path(__file__).resolve().parent.parent.parent / "shared" / "eval" / "rtqa-dev"


def _conversation_row(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": "c1",
        "kind": "follow-up",
        "date": "2024-06-01",
        "question_id": "q1",
        "turns": ["When did the Harbor Bridge reopen?", "how much did the repairs cost?"],
        "answer": "40 million dollars",
        "answer_norm": "40 million dollars",
        "gold_doc_ids": ["gold-bridge"],
    }
    row.update(overrides)
    return row


def test_loading_conversations_reads_turns_and_the_full_question(tmp_path: Path) -> None:
    path = tmp_path / "conversations.jsonl"
    path.write_text(json.dumps(_conversation_row()) + "\n\n")
    [conversation] = load_conversations(path, {"q1": "How much did the repairs cost?"})
    assert conversation.kind == "follow-up"
    assert conversation.turns[1] == "how much did the repairs cost?"
    assert conversation.full_question == "How much did the repairs cost?"
    assert conversation.date == date(2024, 6, 1)


def test_a_malformed_conversation_is_an_error_naming_its_line(tmp_path: Path) -> None:
    path = tmp_path / "conversations.jsonl"
    good = json.dumps(_conversation_row())
    path.write_text(good + "\n" + json.dumps(_conversation_row(kind="chat")) + "\n")
    with pytest.raises(ConfigError, match=r"conversations\.jsonl:2"):
        load_conversations(path)
    path.write_text(good + "\n")
    with pytest.raises(ConfigError, match="question_id 'q1' is not in the dataset"):
        load_conversations(path, {"other": "?"})


def test_the_shipped_conversations_are_a_valid_dev_set() -> None:
    questions = None
    if (DEV / "questions.jsonl").is_file():
        questions = {
            json.loads(line)["id"]: json.loads(line)
            for line in (DEV / "questions.jsonl").read_text().splitlines()
            if line.strip()
        }
    texts = {k: v["question"] for k, v in questions.items()} if questions else None
    conversations = load_conversations(DEFAULT_CONVERSATIONS, texts)
    kinds = [c.kind for c in conversations]
    assert len(conversations) >= 40
    assert kinds.count("follow-up") >= 25 and kinds.count("topic switch") >= 15
    assert len({c.id for c in conversations}) == len(conversations)
    if questions:
        for c in conversations:
            source = questions[c.question_id]
            assert set(c.gold_ids) == set(source["gold_doc_ids"]), c.id
            assert (c.answer, str(c.date)) == (source["answer"], source["date"]), c.id


BRIDGE_CORPUS = [
    {
        "id": "gold-bridge",
        "url": "https://news.example/bridge",
        "title": "Harbor Bridge reopens",
        "published": "2024-05-20",
        "source": "news.example",
        "text": "The Harbor Bridge reopened on Thursday after two years of work. "
        "Mayor Lena Ortiz said the Harbor Bridge repairs cost 40 million dollars.",
    },
    {
        # Newer, so asked alone "the repairs" are these: only turn 1 says which bridge.
        "id": "river-bridge",
        "url": "https://news.example/river",
        "title": "River Bridge repairs done",
        "published": "2024-05-31",
        "source": "news.example",
        "text": "Repairs on the River Bridge are done. The River Bridge repairs cost "
        "12 million dollars, the council said.",
    },
    {
        "id": "festival",
        "url": "https://news.example/festival",
        "title": "Tall ships festival",
        "published": "2024-05-30",
        "source": "news.example",
        "text": "The tall ships festival will bring 35 ships to the harbor in July.",
    },
]


@pytest.mark.slow
def test_a_conversation_passes_turn_one_as_history_and_scores_turn_two(
    tmp_path: Path, assistant: Assistant
) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps(a) for a in BRIDGE_CORPUS) + "\n")
    assistant.ingest([corpus])
    follow_up = load_conversations_from_rows(
        tmp_path,
        [
            _conversation_row(question="How much did the Harbor Bridge repairs cost?"),
            _conversation_row(
                id="c2",
                kind="topic switch",
                turns=[
                    "When did the Harbor Bridge reopen?",
                    "How many ships will the festival bring?",
                ],
                answer="35",
                answer_norm="35",
                gold_doc_ids=["festival"],
                question="How many ships will the tall ships festival bring to the harbor?",
            ),
        ],
    )
    results = run_conversations(assistant, follow_up)
    first, switch = results
    assert "Thursday" in first.first_answer
    assert first.in_conversation.answer_hit and first.in_conversation.gold_cited
    assert first.alone.question == "how much did the repairs cost?"
    assert first.full_alone is not None and first.full_alone.answer_hit
    assert switch.in_conversation.answer_hit and switch.alone.answer_hit
    by_kind = {s.kind: s for s in summarize_conversations(results)}
    assert by_kind["follow-up"].hit == 1.0 and by_kind["follow-up"].full_hit == 1.0
    assert by_kind["topic switch"].gold_cited == 1.0
    table = conversation_table(summarize_conversations(results))
    assert "| follow-up | 1 | 1.000 / 1.000 | 1.000 |" in table
    assert "| topic switch | 1 | 1.000 / 1.000 | 1.000 |" in table


class RecordingChatModel(GenericFakeChatModel):
    """Replies with canned messages in order and keeps the prompts it got."""

    prompts: list[list[BaseMessage]] = Field(default_factory=list)

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        self.prompts.append(list(messages))
        return super()._generate(messages, *args, **kwargs)


@pytest.mark.slow
def test_the_conversation_runner_gives_turn_two_the_answer_of_turn_one(
    tmp_path: Path, assistant_factory: Callable[..., Assistant]
) -> None:
    # A turn-1 answer found in no article: if a later prompt holds it, it came as history.
    first = "The ribbon was cut by a penguin named Ortiz [1]."
    model = RecordingChatModel(
        messages=iter([AIMessage(content=first)] + [AIMessage(content="40 million [1].")] * 8)
    )
    settings = make_settings(tmp_path / "data", llm_provider="openai", llm_model="fake")
    assistant = assistant_factory(settings, model)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps(a) for a in BRIDGE_CORPUS) + "\n")
    assistant.ingest([corpus])
    [conversation] = load_conversations_from_rows(
        tmp_path, [_conversation_row(question="How much did it cost?")]
    )

    [result] = run_conversations(assistant, [conversation])

    assert result.first_answer.startswith("The ribbon was cut by a penguin")
    prompts = [" ".join(str(m.content) for m in prompt) for prompt in model.prompts]
    assert "penguin" not in prompts[0]
    with_history = [p for p in prompts[1:] if "ribbon was cut by a penguin" in p]
    # Turn 2 in the conversation (its rewrite and/or its answer) saw it; turn 2 alone and
    # the full question alone did not.
    assert with_history and len(with_history) < len(prompts) - 1
    assert result.in_conversation.answer_hit is False, "'40 million' is not the gold answer"


def load_conversations_from_rows(folder: Path, rows: list[dict[str, object]]) -> list[Conversation]:
    path = folder / "conversations.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return load_conversations(path)


@pytest.mark.slow
def test_eval_reports_conversations_undated_runs_and_held_out_halves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = tmp_path / "tiny"
    dataset.mkdir()
    (dataset / "corpus.jsonl").write_text("\n".join(json.dumps(a) for a in ARTICLES) + "\n")
    questions = [
        {**QUESTIONS[0], "question": "How much did the Harbor Bridge repairs cost this week?"},
        {**QUESTIONS[1], "date": "2024-06-10"},
    ]
    (dataset / "questions.jsonl").write_text("\n".join(json.dumps(q) for q in questions) + "\n")
    (dataset / "conversations.jsonl").write_text(
        json.dumps(_conversation_row(question_id="q1")) + "\n"
    )
    out = tmp_path / "results"
    args = ["--data-dir", str(tmp_path / "data"), "eval", str(dataset), "--no-anchors"]
    args += ["--undated", "--grid", "recency_boost=0,3", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "## per half of the weeks" in printed and "weeks 2024-06-01..2024-06-01" in printed
    assert "**held out**" in printed
    assert "with a time word, undated (explicit dates, no as-of)" in printed
    assert "| follow-up | 1 |" in printed
    assert "| abstain (no answer, fair) |" in printed
    payload = json.loads(next(out.glob("eval-*.json")).read_text())
    assert payload["undated"]["rewritten"] == {
        "q1": "How much did the Harbor Bridge repairs cost in the week of 27 May 2024?"
    }
    assert [h["chosen"] for h in payload["held_out"]] and len(payload["held_out"]) == 2
    assert payload["fair_left_out"]["q1"] == ["gold-bridge"]
    assert payload["conversations"][0]["in_conversation"]["answer_hit"] is True


def test_an_unknown_grid_setting_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = _dataset(tmp_path / "tiny")
    assert main(["eval", str(dataset), "--grid", "speed=9"]) == 2
    assert "speed=9" in capsys.readouterr().err


@pytest.mark.slow
def test_with_answer_gold_another_article_that_holds_the_answer_counts_as_gold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Another outlet's own report of the bridge's cost (not a copy: no story) is cited
    rightly, though the dataset names only one gold article."""
    dataset = _dataset(tmp_path / "tiny")
    other = {
        "id": "other-bridge",
        "url": "https://wire.example/bridge-cost",
        "title": "Harbor Bridge repairs cost the city 40 million dollars",
        "published": "2024-05-31",
        "source": "wire.example",
        "text": "Repairs to the Harbor Bridge cost 40 million dollars, city records show. "
        "The bridge carries about 30,000 cars a day.",
    }
    with (dataset / "corpus.jsonl").open("a") as corpus:
        corpus.write(json.dumps(other) + "\n")
    out = tmp_path / "results"
    args = ["eval", str(dataset), "--no-anchors", "--answer-gold", "--split-weeks"]
    assert main(["--data-dir", str(tmp_path / "data"), *args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| newsrag (extractive), answer-bearing as gold | 2 |" in printed
    assert "| weeks 2024-06-01..2024-06-01 (1 week), answer-bearing as gold | 2 |" in printed
    payload = json.loads(next(out.glob("eval-*.json")).read_text())
    by_article, by_answer = payload["summaries"]
    assert by_answer["system"] == "newsrag (extractive), answer-bearing as gold"
    q1 = payload["per_question"]["newsrag (extractive)"][0]
    assert "other-bridge" in q1["cited"], q1
    assert by_article["citation_precision"] < 1.0
    assert by_answer["citation_precision"] == 1.0
    assert by_answer["recall_at_5"] == 1.0


@pytest.mark.slow
def test_with_story_gold_another_outlets_copy_of_the_gold_article_counts_as_gold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = _dataset(tmp_path / "tiny")
    # Near-copies are grouped only past 50 words (shorter texts only as exact copies).
    gold = {
        **ARTICLES[0],
        "text": ARTICLES[0]["text"]
        + " Engineers replaced the deck, the cables and the lighting, and the city added a"
        " protected bike lane on the north side. Commuters had used a ferry and two detour"
        " routes since the closure, which added about twenty minutes to many trips. The"
        " council will review the final bill at its next meeting in June.",
    }
    rows = [gold, *ARTICLES[1:]]
    (dataset / "corpus.jsonl").write_text("\n".join(json.dumps(a) for a in rows) + "\n")
    copy = {
        **gold,
        "id": "copy-bridge",
        "url": "https://wire.example/harbor-bridge-repairs",
        "title": "Harbor Bridge repairs cost 40 million dollars",
        "source": "wire.example",
        "text": f"{gold['text']} Traffic returned to the bridge within the hour.",
    }
    with (dataset / "corpus.jsonl").open("a") as corpus:
        corpus.write(json.dumps(copy) + "\n")
    out = tmp_path / "results"
    args = ["eval", str(dataset), "--no-anchors", "--story-gold", "--out", str(out)]
    assert main(["--data-dir", str(tmp_path / "data"), *args]) == 0
    printed = capsys.readouterr().out
    assert "stories: 3 of 4 articles (2 articles share a story with another)" in printed
    payload = json.loads(next(out.glob("eval-*.json")).read_text())
    by_article, by_story = payload["summaries"]
    assert by_story["system"] == "newsrag (extractive), story as gold"
    # One copy of the bridge story is retrieved and cited: the dataset's gold or the wire
    # copy; as a story, it is gold either way.
    q1 = payload["per_question"]["newsrag (extractive)"][0]
    assert len({"gold-bridge", "copy-bridge"} & set(q1["ranked"])) == 1
    assert by_story["recall_at_5"] == 1.0
    assert by_story["citation_precision"] == 1.0
    assert by_article["citation_precision"] == (1.0 if q1["cited"] == ["gold-bridge"] else 0.5)
