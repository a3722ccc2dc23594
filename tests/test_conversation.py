"""Follow-up resolution: rule-based without an LLM, LLM-written with one (a fake here)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatResult
from pydantic import Field

from rag.assistant import Assistant
from rag.conversation import (
    MAX_HISTORY_ANSWER_CHARS,
    MAX_HISTORY_QUESTION_CHARS,
    MAX_QUERY_CHARS,
    QuestionRewriter,
    focus_question,
    follow_up_reason,
    rule_query,
    trim_history,
)
from rag.records import NOT_FOUND_TEXT
from tests.conftest import SEEDS, make_settings

ROOT = Path(__file__).resolve().parent.parent
IE = ("Why is Microsoft retiring Internet Explorer?", NOT_FOUND_TEXT)
MELONI = (
    "what did Meloni propose?",
    "Italian Prime Minister Giorgia Meloni has suggested extending NATO's Article 5 "
    "collective security protections to Ukraine [1]",
)
CHATTY = (
    "Hi there, and thanks for building this tool, I really appreciate it! I hope you are "
    "having a good day. I have been trying to keep up with the news about the war and the "
    "peace talks, but honestly there is so much going on that I keep losing track of who "
    "said what. Last week my brother and I were arguing over dinner about European "
    "politics, about the summit in Brussels, about what the various leaders think should "
    "happen once the fighting stops, and about whether anyone in Europe actually has a "
    "concrete plan for the security of the region. He kept saying that nobody has proposed "
    "anything specific and that it is all just talk, while I was fairly sure I had read "
    "something about the Italian government putting an idea on the table. I did not manage "
    "to find the article again, my search engine gave me a dozen unrelated results, and I "
    "would like to settle this properly, with a source I can show him, because he does not "
    "believe anything unless he sees it written down. I would also like to understand the "
    "idea itself a bit better, since I only remember the headline vaguely and not the "
    "details, and I suspect he will ask me about the details as soon as I bring it up "
    "again at the next family dinner. So, to get to the point, my actual question is this "
    "one: what did Meloni propose to protect Ukraine? Thank you very much in advance!"
)


# -- the rule ------------------------------------------------------------------------------


def test_a_short_complete_question_after_an_unrelated_turn_is_not_rewritten() -> None:
    resolution = rule_query("what did Meloni propose?", [IE])
    assert not resolution.follow_up
    assert resolution.query == "what did Meloni propose?"
    assert rule_query("Who won Wimbledon?", [MELONI]).query == "Who won Wimbledon?"


def test_a_pronoun_follow_up_borrows_the_topic_of_the_previous_turn() -> None:
    fed = ("How much did the Fed raise rates in June 2022?", "By 0.75 points [1]")
    resolution = rule_query("and what did Powell say about it?", [fed])
    assert resolution.follow_up
    assert resolution.query.startswith("How much did the Fed raise rates in June 2022?")
    assert resolution.query.endswith("and what did Powell say about it?")
    # Without the opener the object pronoun still has nothing in the question to refer to.
    assert follow_up_reason("What did Powell say about it?") == "'it' has nothing to refer to"
    # A pronoun whose antecedent is in the question itself does not make a follow-up.
    assert follow_up_reason("Which company said it would cut 10,000 jobs?") is None


def test_a_pronoun_referring_to_an_earlier_sentence_of_the_question_is_not_a_follow_up() -> None:
    question = "A record python was caught in Florida this week. How long was it?"
    assert follow_up_reason(question) is None
    assert rule_query(question, [MELONI]).query == question
    assert follow_up_reason("How long was it?") is not None


@pytest.mark.parametrize(
    ("question", "follow_up"),
    [
        ("which club does he coach?", True),  # "he" is the subject: "club" is not it
        ("are they selling the team?", True),
        ("by how many years was her sentence extended?", True),  # nobody named for "her"
        ("how many voters think he lied?", True),  # "he" cannot be the voters
        ("Which company said it would cut 10,000 jobs?", False),  # across "said"
        ("Which tennis player retired after she won the final?", False),  # across "after"
        ("Why did Meloni change her mind about the summit?", False),  # possessive, own clause
        ("Which head of state announced his resignation?", False),
    ],
)
def test_a_pronoun_needs_a_fitting_antecedent_in_an_earlier_clause(
    question: str, follow_up: bool
) -> None:
    assert (follow_up_reason(question) is not None) == follow_up, follow_up_reason(question)


def test_what_about_a_new_name_replaces_the_names_of_the_previous_question() -> None:
    resolution = rule_query("what about Germany?", [("How much did France spend on arms?", "")])
    assert "France" not in resolution.query
    assert "spend on arms" in resolution.query and "Germany" in resolution.query


def test_a_follow_up_without_a_topic_borrows_the_names_the_previous_answer_gave() -> None:
    race = ("Which race was held in Monaco on Sunday?", "Sergio Perez won the race [1].")
    resolution = rule_query("who won?", [race])
    assert resolution.reason == "no topic of its own"
    assert "Monaco" in resolution.query and "Perez" in resolution.query
    assert "[1]" not in resolution.query
    # A "not found" answer lends no words.
    resolution = rule_query("who won?", [("Which race was held in Monaco?", NOT_FOUND_TEXT)])
    assert resolution.query == "Which race was held in Monaco? who won?"


def test_a_chain_of_follow_ups_keeps_the_topic_of_the_first_question() -> None:
    history = [("How many people died in the heat wave in Spain?", ""), ("and why?", "")]
    resolution = rule_query("how long will it last?", history)
    assert "heat wave" in resolution.query and "why" in resolution.query


def test_only_the_last_two_turns_are_used_each_cut_to_a_sane_length() -> None:
    huge = "Tell me everything about the Meloni proposal and NATO " * 200
    history = [("old question about cats", "old answer"), (huge, "x " * 5000), IE]
    turns = trim_history(history)
    assert len(turns) == 2 and turns[-1][0] == IE[0]
    assert all(len(q) <= MAX_HISTORY_QUESTION_CHARS + 1 for q, _ in turns)
    assert all(len(a) <= MAX_HISTORY_ANSWER_CHARS + 1 for _, a in turns)
    resolution = rule_query("and what did she say?", [(huge, "x " * 5000)])
    assert resolution.follow_up
    assert len(resolution.query) <= MAX_QUERY_CHARS + 1, "a huge turn cannot blow up the query"


def test_the_hand_written_pairs_are_classified_as_labelled() -> None:
    """bench/followups.jsonl: 30 follow-ups, 25 complete questions after unrelated turns."""
    rows = [json.loads(line) for line in (ROOT / "bench" / "followups.jsonl").open()]
    wrong = [r for r in rows if (follow_up_reason(r["question"]) is not None) != r["follow_up"]]
    complete = [r for r in rows if not r["follow_up"]]
    assert len(rows) >= 55 and len(complete) >= 25
    assert not [r for r in wrong if not r["follow_up"]], "a complete question was rewritten"
    assert len(wrong) <= 1, [r["question"] for r in wrong]


def test_a_long_chatty_question_is_focused_on_its_question_sentence() -> None:
    assert 1200 < len(CHATTY) < 1400
    assert focus_question(CHATTY) == "what did Meloni propose to protect Ukraine?"
    resolution = rule_query(CHATTY, ())
    assert resolution.query.endswith(" what did Meloni propose to protect Ukraine?")
    assert len(resolution.query) < 200, "the names before the question, not its chat"
    assert "Brussels" in resolution.query and "brother" not in resolution.query
    # A question that needs the message's context borrows the names written before it.
    vague = CHATTY.replace("what did Meloni propose to protect Ukraine?", "what did she say?")
    resolution = rule_query(vague, ())
    assert resolution.follow_up and "Italian" in resolution.query and "Brussels" in resolution.query
    assert resolution.query.endswith("what did she say?")
    assert len(resolution.query) < 200


def test_a_long_question_keeps_the_names_that_set_its_scene() -> None:
    question = (
        "The singer Taylor Swift announced a new stadium tour across North America and "
        "Europe this week, with dozens of dates planned for next year and ticket sales "
        "opening through a verified fan programme that already drew complaints from fans "
        "who waited for hours in online queues without getting any seats at all for the "
        "shows they wanted. Which company sold the tickets?"
    )
    assert len(question) > 300
    resolution = rule_query(question, [MELONI])
    assert resolution.focus == "Which company sold the tickets?"
    assert "Taylor Swift" in resolution.query and "Meloni" not in resolution.query
    assert resolution.query.endswith("Which company sold the tickets?")


# -- the LLM path (langchain-core's fake chat models) -------------------------------------


class RecordingChatModel(GenericFakeChatModel):
    """Replies with canned messages in order and keeps the prompts it got."""

    prompts: list[list[BaseMessage]] = Field(default_factory=list)

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        self.prompts.append(list(messages))
        return super()._generate(messages, *args, **kwargs)


class BrokenChatModel(GenericFakeChatModel):
    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        msg = "the LLM server is down"
        raise ConnectionError(msg)


def _model(*replies: str) -> RecordingChatModel:
    return RecordingChatModel(messages=iter([AIMessage(content=r) for r in replies]))


@pytest.mark.slow
def test_the_llm_rewrite_path_uses_the_fake_models_standalone_question_for_retrieval(
    tmp_path: Path, assistant_factory: Callable[..., Assistant]
) -> None:
    standalone = "What did Ukrainian President Zelenskyy say about NATO troops in Ukraine?"
    model = _model(standalone, "Zelenskyy wants NATO troops in Ukraine [1].")
    settings = make_settings(tmp_path / "data", llm_provider="openai", llm_model="fake")
    assistant = assistant_factory(settings, model)
    assistant.ingest([SEEDS])
    searched: list[str] = []
    search = assistant.searcher.search

    def recording(query: str, *args: Any, **kwargs: Any) -> Any:
        searched.append(query)
        return search(query, *args, **kwargs)

    assistant.searcher.search = recording  # type: ignore[method-assign]
    answer = assistant.ask("and what did he say about troops?", history=[MELONI])

    assert searched == [standalone]
    assert answer.search_query == standalone
    assert answer.question == "and what did he say about troops?"
    assert answer.text == "Zelenskyy wants NATO troops in Ukraine [1]."
    assert answer.sources and answer.sources[0].title.startswith("Italian PM proposes")
    rewrite_prompt = model.prompts[0]
    assert [m.type for m in rewrite_prompt] == ["system", "human", "ai", "human"]
    assert "standalone question" in str(rewrite_prompt[0].content)
    assert rewrite_prompt[1].content == MELONI[0]
    assert "[1]" not in str(rewrite_prompt[2].content), "citation markers are not history"
    assert rewrite_prompt[-1].content == "and what did he say about troops?"


def test_without_history_the_llm_is_not_asked_to_rewrite() -> None:
    model = _model("should not be used")
    resolution = QuestionRewriter(model).resolve("what did Meloni propose?", ())
    assert resolution.query == "what did Meloni propose?" and not model.prompts


def test_an_llm_reply_is_cleaned_to_one_standalone_question() -> None:
    model = _model('Standalone question: "What did Powell say about the June hike?"\nDone.')
    fed = ("How much did the Fed raise rates in June?", "0.75 points [1]")
    resolution = QuestionRewriter(model).resolve("and Powell?", [fed])
    assert resolution.query == "What did Powell say about the June hike?"
    assert resolution.follow_up and resolution.reason == "rewritten by the LLM"


def test_a_failing_or_empty_llm_rewrite_falls_back_to_the_rule() -> None:
    broken = BrokenChatModel(messages=iter([]))
    resolution = QuestionRewriter(broken).resolve("and what did Zelenskyy say?", [MELONI])
    assert resolution.query == rule_query("and what did Zelenskyy say?", [MELONI]).query
    assert resolution.query.startswith("what did Meloni propose?")
    resolution = QuestionRewriter(_model("  \n ")).resolve("what did Meloni propose?", [IE])
    assert resolution.query == "what did Meloni propose?" and not resolution.follow_up


# -- the assistant, for real ---------------------------------------------------------------


@pytest.mark.slow
def test_a_short_complete_question_after_an_unrelated_turn_is_answered_alone(
    seeded: Assistant,
) -> None:
    answer = seeded.ask("what did Meloni propose?", history=[IE])
    assert answer.found and "Article 5" in answer.text and "[1]" in answer.text
    assert answer.search_query is None


@pytest.mark.slow
def test_a_pronoun_follow_up_is_answered_on_the_previous_topic(seeded: Assistant) -> None:
    first = seeded.ask("what did Meloni propose?")
    answer = seeded.ask(
        "and what did Zelenskyy say about it?", history=[(first.question, first.text)]
    )
    assert answer.found, answer.confidence
    assert "Zelenskyy" in answer.text and "[1]" in answer.text
    assert answer.search_query is not None and "Meloni" in answer.search_query


@pytest.mark.slow
def test_a_1300_character_chatty_question_is_answered_with_a_citation(
    seeded: Assistant,
) -> None:
    answer = seeded.ask(CHATTY)
    assert answer.found, answer.confidence
    assert "Article 5" in answer.text and "[1]" in answer.text
    assert answer.question == CHATTY
    assert answer.search_query is not None
    assert answer.search_query.endswith(" what did Meloni propose to protect Ukraine?")


@pytest.mark.slow
def test_a_follow_up_is_answered_from_its_topic_but_not_made_up(seeded: Assistant) -> None:
    history = [MELONI]
    who = seeded.ask("who is she?", history=history)
    assert who.found and "Italian Prime Minister Giorgia Meloni" in who.text
    # Nothing in the article says what the proposal costs: the topic alone is no answer.
    assert not seeded.ask("how much would it cost?", history=history).found
