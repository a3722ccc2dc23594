"""Saved conversations and feedback in the library's SQLite file (rag/conversations_store.py)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from rag.conversations_store import ConversationStore, answer_from_json, answer_to_json
from rag.records import Answer, DateWindow, Source


def _answer() -> Answer:
    source = Source(
        1,
        "a1",
        "Italian PM proposes <extending> Article 5",
        "example.com",
        "https://example.com/a",
        date(2025, 3, 20),
        "Meloni proposed an umbrella.",
        ("Meloni proposed an umbrella.",),
        "a1:0",
    )
    window = DateWindow(None, date(2025, 3, 21), "articles up to 21 March 2025")
    return Answer(
        "what did Meloni propose?",
        "An umbrella [1].",
        (source,),
        as_of=date(2025, 3, 21),
        window=window,
        search_query="meloni proposal",
    )


def test_an_answer_survives_its_json_round_trip() -> None:
    answer = _answer()
    assert answer_from_json(answer_to_json(answer)) == answer


def test_conversations_are_listed_latest_first_and_only_to_their_owner(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "records.sqlite3")
    first = store.create("browser:a", "  what did   Meloni propose?  ")
    second = store.create("browser:a", "who won?")
    store.create("browser:b", "not yours")
    assert store.save_turn("browser:a", first.conversation_id, 0, "q1", _answer())
    assert store.save_turn("browser:a", first.conversation_id, 1, "q2", None)

    assert [c.title for c in store.summaries("browser:a")] == [
        "what did Meloni propose?",
        "who won?",
    ]
    turns = store.turns("browser:a", first.conversation_id)
    assert turns is not None and [t.question for t in turns] == ["q1", "q2"]
    assert turns[0].answer == _answer() and turns[1].answer is None
    # Another owner neither reads, writes, renames nor deletes it.
    assert store.turns("browser:b", first.conversation_id) is None
    assert not store.save_turn("browser:b", first.conversation_id, 2, "q", None)
    assert not store.rename("browser:b", first.conversation_id, "mine")
    assert not store.delete("browser:b", first.conversation_id)

    assert store.rename("browser:a", second.conversation_id, "World Cup")
    assert not store.rename("browser:a", second.conversation_id, "   ")
    assert store.delete("browser:a", first.conversation_id)
    assert [c.title for c in store.summaries("browser:a")] == ["World Cup"]
    assert store.turns("browser:a", first.conversation_id) is None
    # Its turns went with it (ON DELETE CASCADE).
    store.close()
    reopened = ConversationStore(tmp_path / "records.sqlite3")
    with reopened._connect() as con:
        assert con.execute("SELECT COUNT(*) FROM ui_turns").fetchone() == (0,)


def test_feedback_keeps_the_rated_answer_and_refuses_other_ratings(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "records.sqlite3")
    store.add_feedback("browser:a", _answer(), 1, " helpful ")
    store.add_feedback("browser:a", _answer(), -1, "", right_article_id="a7")
    with pytest.raises(ValueError, match="rating must be 1 or -1"):
        store.add_feedback("browser:a", _answer(), 5)

    up, down = store.feedback()
    assert (up.rating, up.comment, up.answer) == (1, "helpful", _answer())
    assert (down.rating, down.right_article_id) == (-1, "a7")
