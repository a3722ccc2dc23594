"""Saved conversations and answer feedback, kept in the library's SQLite record database.

The chat saves each finished turn of a conversation under its owner (a browser's random
id, or ``user:<name>`` with login), so a reload or another day reopens it. Feedback (a
thumbs up or down with an optional comment) is stored with everything needed to turn it
into an evaluation case later: the question, the as-of, the answer and its sources.

The tables live next to the store's own (``settings.index_db_path``) but are separate
from them: this module opens its own WAL connection and never touches the store's tables.

Example:
    >>> store = ConversationStore(Path("/tmp/newsrag-doc/records.sqlite3"))  # doctest: +SKIP
    >>> c = store.create("browser-1", "what did Meloni propose?")  # doctest: +SKIP
    >>> store.save_turn("browser-1", c.conversation_id, 0, answer)  # doctest: +SKIP
    >>> [s.title for s in store.summaries("browser-1")]  # doctest: +SKIP
    ['what did Meloni propose?']
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from rag.database import use_wal
from rag.errors import StoreError
from rag.records import Answer, DateWindow, Source, answer_to_dict, member_from_dict

logger = logging.getLogger(__name__)

MAX_TITLE_CHARS = 120

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ui_conversations (
    conversation_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    title TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ui_conversations_owner ON ui_conversations (owner, updated);
CREATE TABLE IF NOT EXISTS ui_turns (
    conversation_id TEXT NOT NULL
        REFERENCES ui_conversations (conversation_id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    question TEXT NOT NULL,
    answer TEXT,
    PRIMARY KEY (conversation_id, position)
);
CREATE TABLE IF NOT EXISTS ui_feedback (
    feedback_id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL,
    rating INTEGER NOT NULL,
    comment TEXT NOT NULL,
    right_article_id TEXT,
    question TEXT NOT NULL,
    as_of TEXT,
    answer TEXT NOT NULL,
    created TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class ConversationSummary:
    """One line of the conversation list: id, title and when it last changed."""

    conversation_id: str
    title: str
    created: datetime
    updated: datetime


@dataclass(frozen=True)
class SavedTurn:
    """A saved question and its answer (None when none could be produced)."""

    question: str
    answer: Answer | None


@dataclass(frozen=True)
class Feedback:
    """A rating of one answer: +1 (helpful) or -1, with the answer it rates.

    ``right_article_id`` is the source a user marked as the right one on a down-voted
    answer (the gold article of an evaluation case made from it).
    """

    feedback_id: int
    owner: str
    rating: int
    comment: str
    answer: Answer
    created: datetime
    right_article_id: str | None = None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _day(text: Any) -> date | None:
    return date.fromisoformat(text) if text else None


def answer_to_json(answer: Answer) -> str:
    """The answer as JSON: text, sources, as-of and window (not the retrieved chunks).

    >>> answer_from_json(answer_to_json(Answer("q", "t [1]"))).text
    't [1]'
    """
    return json.dumps(answer_to_dict(answer), ensure_ascii=False)


def answer_from_json(text: str) -> Answer:
    """The :class:`Answer` saved by :func:`answer_to_json` (always ``done``)."""
    data = json.loads(text)
    window = data.get("window")
    return Answer(
        question=data["question"],
        text=data["text"],
        found=bool(data.get("found", True)),
        confidence=float(data.get("confidence", 1.0)),
        mode=data.get("mode", "extractive"),
        model=data.get("model", ""),
        as_of=_day(data.get("as_of")),
        search_query=data.get("search_query"),
        window=None
        if not window
        else DateWindow(
            _day(window.get("start")),
            date.fromisoformat(window["end"]),
            window.get("label", ""),
            window.get("phrase", ""),
            bool(window.get("strict", False)),
        ),
        sources=tuple(
            Source(
                number=int(s["number"]),
                article_id=s["article_id"],
                title=s["title"],
                source=s["source"],
                url=s.get("url"),
                published=_day(s.get("published")),
                passage=s.get("passage", ""),
                highlights=tuple(s.get("highlights", ())),
                chunk_id=s.get("chunk_id", ""),
                author=s.get("author"),
                site_name=s.get("site_name"),
                also=tuple(member_from_dict(m) for m in s.get("also_reported_by", ())),
            )
            for s in data.get("sources", ())
        ),
    )


def new_owner_id() -> str:
    """A random id for a browser without login (kept in its localStorage).

    >>> len(new_owner_id())
    22
    """
    return secrets.token_urlsafe(16)


class ConversationStore:
    """Conversations and feedback of the chat's users, in one SQLite file.

    Every method takes the ``owner``: a conversation of another owner is neither listed,
    read, renamed nor deleted (a guessed id opens nothing).
    """

    def __init__(self, db_path: Path, busy_seconds: float = 10.0) -> None:
        self.db_path = db_path
        self.busy_seconds = busy_seconds
        self._lock = threading.Lock()
        self._con: sqlite3.Connection | None = None

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._con is None:
                try:
                    self.db_path.parent.mkdir(parents=True, exist_ok=True)
                    con = sqlite3.connect(
                        self.db_path,
                        timeout=self.busy_seconds,
                        isolation_level=None,
                        check_same_thread=False,
                    )
                    use_wal(con, self.busy_seconds)
                    con.execute("PRAGMA foreign_keys=ON")
                    con.executescript(_SCHEMA)
                except sqlite3.Error as exc:
                    msg = f"cannot open the conversation database {self.db_path}: {exc}"
                    raise StoreError(msg) from exc
                self._con = con
            try:
                yield self._con
            except sqlite3.Error as exc:
                msg = f"the conversation database {self.db_path} failed: {exc}"
                raise StoreError(msg) from exc

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None

    # -- conversations ---------------------------------------------------------------

    def create(self, owner: str, title: str) -> ConversationSummary:
        """A new, empty conversation titled by (the start of) ``title``."""
        conversation_id = secrets.token_hex(8)
        now = _now()
        title = " ".join(title.split())[:MAX_TITLE_CHARS] or "Untitled"
        with self._connect() as con:
            con.execute(
                "INSERT INTO ui_conversations VALUES (?, ?, ?, ?, ?)",
                (conversation_id, owner, title, now, now),
            )
        stamp = datetime.fromisoformat(now)
        return ConversationSummary(conversation_id, title, stamp, stamp)

    def summaries(self, owner: str, limit: int = 200) -> list[ConversationSummary]:
        """The owner's conversations, the most recently changed first."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT conversation_id, title, created, updated FROM ui_conversations "
                "WHERE owner = ? ORDER BY updated DESC, rowid DESC LIMIT ?",
                (owner, limit),
            ).fetchall()
        return [
            ConversationSummary(
                r[0], r[1], datetime.fromisoformat(r[2]), datetime.fromisoformat(r[3])
            )
            for r in rows
        ]

    def turns(self, owner: str, conversation_id: str) -> list[SavedTurn] | None:
        """The saved turns in order, or None when the owner has no such conversation."""
        with self._connect() as con:
            if not self._owns(con, owner, conversation_id):
                return None
            rows = con.execute(
                "SELECT question, answer FROM ui_turns WHERE conversation_id = ? ORDER BY position",
                (conversation_id,),
            ).fetchall()
        return [SavedTurn(q, answer_from_json(a) if a else None) for q, a in rows]

    def save_turn(
        self, owner: str, conversation_id: str, position: int, question: str, answer: Answer | None
    ) -> bool:
        """Save (or replace) turn ``position`` (from 0); False when not the owner's."""
        with self._connect() as con:
            if not self._owns(con, owner, conversation_id):
                return False
            con.execute(
                "INSERT OR REPLACE INTO ui_turns VALUES (?, ?, ?, ?)",
                (conversation_id, position, question, answer_to_json(answer) if answer else None),
            )
            con.execute(
                "UPDATE ui_conversations SET updated = ? WHERE conversation_id = ?",
                (_now(), conversation_id),
            )
        return True

    def rename(self, owner: str, conversation_id: str, title: str) -> bool:
        """Give a conversation a new title; False when not the owner's or the title is empty."""
        title = " ".join(title.split())[:MAX_TITLE_CHARS]
        if not title:
            return False
        with self._connect() as con:
            cursor = con.execute(
                "UPDATE ui_conversations SET title = ? WHERE conversation_id = ? AND owner = ?",
                (title, conversation_id, owner),
            )
        return cursor.rowcount == 1

    def delete(self, owner: str, conversation_id: str) -> bool:
        """Delete a conversation and its turns; False when not the owner's."""
        with self._connect() as con:
            cursor = con.execute(
                "DELETE FROM ui_conversations WHERE conversation_id = ? AND owner = ?",
                (conversation_id, owner),
            )
        return cursor.rowcount == 1

    @staticmethod
    def _owns(con: sqlite3.Connection, owner: str, conversation_id: str) -> bool:
        row = con.execute(
            "SELECT 1 FROM ui_conversations WHERE conversation_id = ? AND owner = ?",
            (conversation_id, owner),
        ).fetchone()
        return row is not None

    # -- feedback --------------------------------------------------------------------

    def add_feedback(
        self,
        owner: str,
        answer: Answer,
        rating: int,
        comment: str = "",
        right_article_id: str | None = None,
    ) -> int:
        """Store a rating (+1 or -1) of ``answer``; returns its id."""
        if rating not in (1, -1):
            msg = f"rating must be 1 or -1, got {rating!r}"
            raise ValueError(msg)
        with self._connect() as con:
            cursor = con.execute(
                "INSERT INTO ui_feedback (owner, rating, comment, right_article_id, question, "
                "as_of, answer, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    owner,
                    rating,
                    comment.strip(),
                    right_article_id,
                    answer.question,
                    answer.as_of.isoformat() if answer.as_of else None,
                    answer_to_json(answer),
                    _now(),
                ),
            )
        return int(cursor.lastrowid or 0)

    def update_feedback(
        self, owner: str, feedback_id: int, comment: str, right_article_id: str | None = None
    ) -> bool:
        """Add the comment (and the right source) to a rating; False when not the owner's."""
        with self._connect() as con:
            cursor = con.execute(
                "UPDATE ui_feedback SET comment = ?, right_article_id = ? "
                "WHERE feedback_id = ? AND owner = ?",
                (comment.strip(), right_article_id or None, feedback_id, owner),
            )
        return cursor.rowcount == 1

    def feedback(self) -> list[Feedback]:
        """Every rating stored, oldest first."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT feedback_id, owner, rating, comment, answer, created, right_article_id "
                "FROM ui_feedback ORDER BY feedback_id"
            ).fetchall()
        return [
            Feedback(
                r[0], r[1], r[2], r[3], answer_from_json(r[4]), datetime.fromisoformat(r[5]), r[6]
            )
            for r in rows
        ]
