"""Saved conversations and feedback in the library's database (rag/conversations_store.py),
on the embedded SQLite file and on a real Postgres (tests/conftest.py starts one)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select

from rag.conversations_store import ConversationStore, answer_from_json, answer_to_json
from rag.database import UI_TURNS
from rag.records import Answer, DateWindow, Source
from rag.store import open_record_store
from tests.conftest import ROOT


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


def _store(database_url: str) -> ConversationStore:
    """A store of its own over ``database_url``: its own engine, as another process has."""
    return ConversationStore(open_record_store(database_url).engine)


@pytest.mark.slow
def test_conversations_are_listed_latest_first_and_only_to_their_owner(
    database_url: str,
) -> None:
    store = _store(database_url)
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
    # Its turns went with it.
    with store.engine.connect() as con:
        assert con.execute(select(func.count()).select_from(UI_TURNS)).scalar_one() == 0


@pytest.mark.slow
def test_feedback_keeps_the_rated_answer_and_refuses_other_ratings(database_url: str) -> None:
    store = _store(database_url)
    store.add_feedback("browser:a", _answer(), 1, " helpful ")
    store.add_feedback("browser:a", _answer(), -1, "", right_article_id="a7")
    with pytest.raises(ValueError, match="rating must be 1 or -1"):
        store.add_feedback("browser:a", _answer(), 5)

    up, down = store.feedback()
    assert (up.rating, up.comment, up.answer) == (1, "helpful", _answer())
    assert (down.rating, down.right_article_id) == (-1, "a7")


# A process of its own (another app host): it shares only the database URL with the test.
_SAVE = textwrap.dedent(
    """
    import sys
    from rag.conversations_store import ConversationStore
    from rag.records import Answer
    from rag.store import open_record_store

    url, owner, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = ConversationStore(open_record_store(url).engine)
    for i in range(n):
        c = store.create(owner, f"question {i} of {owner}")
        store.save_turn(owner, c.conversation_id, 0, f"question {i}", Answer(f"q{i}", "t [1]"))
        store.save_turn(owner, c.conversation_id, 1, "and then?", None)
        store.add_feedback(owner, Answer(f"question {i}", "t"), 1 if i % 2 else -1, f"note {i}")
    print(c.conversation_id)
    """
)


def _saver(database_url: str, owner: str, n: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _SAVE, database_url, owner, str(n)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_a_conversation_saved_by_one_process_is_listed_and_reopened_by_another(
    database_url: str,
) -> None:
    store = _store(database_url)  # open before the other process saves: no cached state
    saver = _saver(database_url, "browser:a", 1)
    out, _ = saver.communicate(timeout=120)
    assert saver.returncode == 0
    conversation_id = out.split()[-1]

    assert [c.conversation_id for c in store.summaries("browser:a")] == [conversation_id]
    turns = store.turns("browser:a", conversation_id)
    assert turns is not None
    assert [t.question for t in turns] == ["question 0", "and then?"]
    assert turns[0].answer is not None and turns[0].answer.text == "t [1]"
    assert store.summaries("browser:b") == []
    [rating] = store.feedback()
    assert (rating.owner, rating.rating, rating.comment) == ("browser:a", -1, "note 0")
    # And back: what this process changes, the other one's database shows.
    assert store.rename("browser:a", conversation_id, "renamed here")
    assert [c.title for c in _store(database_url).summaries("browser:a")] == ["renamed here"]


@pytest.mark.slow
def test_processes_saving_at_once_lose_no_conversation_turn_or_rating(database_url: str) -> None:
    _store(database_url)  # the tables exist before the processes race
    savers = [_saver(database_url, f"browser:{n}", 40) for n in range(3)]
    for saver in savers:
        saver.communicate(timeout=300)
        assert saver.returncode == 0

    store = _store(database_url)
    for n in range(3):
        summaries = store.summaries(f"browser:{n}")
        assert len(summaries) == 40
        assert all(
            len(store.turns(f"browser:{n}", s.conversation_id) or ()) == 2 for s in summaries
        )
    ratings = store.feedback()
    assert len(ratings) == 120
    assert len({r.feedback_id for r in ratings}) == 120


@pytest.mark.slow
def test_every_app_host_reads_a_browser_with_the_same_key_and_an_old_key_is_kept(
    database_url: str, tmp_path: Path
) -> None:
    old = tmp_path / "host-a" / ".browser-secret"  # where earlier versions kept it
    old.parent.mkdir()
    old.write_text("key-of-the-first-host\n", encoding="ascii")

    first = _store(database_url).browser_secret(old)
    other = _store(database_url).browser_secret(tmp_path / "host-b" / ".browser-secret")

    assert first == other == "key-of-the-first-host"
