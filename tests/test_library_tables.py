"""Conversations, feedback and feeds in the library's database, moved in on open from the
SQLite file earlier versions kept them in (the data dir's ``<collection>.sqlite3``), on the
embedded SQLite file and on a real Postgres."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ingest.webstate import WebState
from rag.components import open_library_database
from rag.conversations_store import ConversationStore
from rag.records import Answer
from rag.store import open_record_store
from tests.conftest import make_settings

pytestmark = pytest.mark.slow

# The tables as earlier versions wrote them, in their own file when the records were on
# Postgres (or in the record file itself, embedded): web_feed_items had no claimed_at.
_LEGACY = """
CREATE TABLE ui_conversations (conversation_id TEXT PRIMARY KEY, owner TEXT NOT NULL,
    title TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL);
CREATE TABLE ui_turns (conversation_id TEXT NOT NULL
        REFERENCES ui_conversations (conversation_id) ON DELETE CASCADE,
    position INTEGER NOT NULL, question TEXT NOT NULL, answer TEXT,
    PRIMARY KEY (conversation_id, position));
CREATE TABLE ui_feedback (feedback_id INTEGER PRIMARY KEY AUTOINCREMENT, owner TEXT NOT NULL,
    rating INTEGER NOT NULL, comment TEXT NOT NULL, right_article_id TEXT,
    question TEXT NOT NULL, as_of TEXT, answer TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE web_pages (url TEXT PRIMARY KEY, article_id TEXT NOT NULL, etag TEXT,
    last_modified TEXT, content_hash TEXT, fetched_at REAL NOT NULL);
CREATE TABLE web_feeds (url TEXT PRIMARY KEY, title TEXT, added_at REAL NOT NULL,
    last_fetch REAL, last_error TEXT, etag TEXT, last_modified TEXT,
    last_new INTEGER NOT NULL DEFAULT 0, total_new INTEGER NOT NULL DEFAULT 0);
CREATE TABLE web_feed_items (feed_url TEXT NOT NULL, item_key TEXT NOT NULL, link TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, done INTEGER NOT NULL DEFAULT 0, error TEXT,
    seen_at REAL NOT NULL, PRIMARY KEY (feed_url, item_key));
INSERT INTO ui_conversations VALUES ('c0ffee', 'browser:alice', 'what did Meloni propose?',
    '2025-03-21T10:00:00.000000+00:00', '2025-03-21T10:01:00.000000+00:00');
INSERT INTO ui_turns VALUES ('c0ffee', 0, 'what did Meloni propose?', NULL);
INSERT INTO ui_turns VALUES ('c0ffee', 1, 'and Zelenskyy?', NULL);
INSERT INTO ui_feedback VALUES (1, 'browser:alice', 1, 'helpful', NULL, 'q1', NULL,
    '{"question": "q1", "text": "t [1]"}', '2025-03-21T10:02:00.000000+00:00');
INSERT INTO ui_feedback VALUES (2, 'browser:alice', -1, 'wrong', 'a7', 'q2', NULL,
    '{"question": "q2", "text": "t"}', '2025-03-21T10:03:00.000000+00:00');
INSERT INTO web_feeds (url, title, added_at, total_new) VALUES
    ('https://news.example/rss', 'Courier', 1.0, 4);
INSERT INTO web_feed_items VALUES ('https://news.example/rss', 'item-1',
    'https://news.example/1', 1, 1, NULL, 2.0);
"""


def _write_legacy(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    con.executescript(_LEGACY)
    con.close()


def _check_adopted(conversations: ConversationStore, web: WebState) -> None:
    turns = conversations.turns("browser:alice", "c0ffee")
    assert turns is not None and [t.question for t in turns] == [
        "what did Meloni propose?",
        "and Zelenskyy?",
    ]
    assert [s.title for s in conversations.summaries("browser:alice")] == [
        "what did Meloni propose?"
    ]
    assert [(f.url, f.total_new) for f in web.feeds()] == [("https://news.example/rss", 4)]
    assert web.item_done("https://news.example/rss", "item-1")
    assert not web.claim_item("https://news.example/rss", "item-1", "https://news.example/1")
    assert web.claim_item("https://news.example/rss", "item-2", "https://news.example/2")


def test_conversations_and_feeds_kept_beside_the_records_move_into_their_database_once(
    database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path / "data", database_url=database_url)
    _write_legacy(settings.index_db_path)
    # Another host moved its own ratings in already: ours are numbered after them.
    ConversationStore(open_record_store(database_url).engine).add_feedback(
        "browser:bob", Answer("q0", "t"), 1
    )

    engine = open_library_database(settings).engine
    conversations = ConversationStore(engine)

    _check_adopted(conversations, WebState(engine))
    ratings = conversations.feedback()
    assert [(r.owner, r.comment) for r in ratings] == [
        ("browser:bob", ""),
        ("browser:alice", "helpful"),
        ("browser:alice", "wrong"),
    ]
    assert len({r.feedback_id for r in ratings}) == 3
    assert ratings[2].right_article_id == "a7"
    # A restart (or another process of this host) copies nothing twice, and a conversation
    # deleted since does not come back from the old file.
    assert conversations.delete("browser:alice", "c0ffee")
    again = ConversationStore(open_library_database(settings).engine)
    assert len(again.feedback()) == 3
    assert again.summaries("browser:alice") == []


def test_an_embedded_library_keeps_the_conversations_and_feeds_its_file_holds(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path / "data")  # records in the same file, as before
    _write_legacy(settings.index_db_path)

    engine = open_library_database(settings).engine
    conversations = ConversationStore(engine)

    _check_adopted(conversations, WebState(engine))
    assert [r.feedback_id for r in conversations.feedback()] == [1, 2]
    assert conversations.add_feedback("browser:alice", Answer("q3", "t"), 1) == 3
