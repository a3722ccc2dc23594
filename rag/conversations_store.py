"""Saved conversations and answer feedback, kept in the library's database.

The chat saves each finished turn of a conversation under its owner (a browser's random
id, or ``user:<name>`` with login), so a reload or another day reopens it. Feedback (a
thumbs up or down with an optional comment) is stored with everything needed to turn it
into an evaluation case later: the question, the as-of, the answer and its sources.

The tables live in the record store's database (``NEWSRAG_DATABASE_URL``: the SQLite file
in the data dir by default, Postgres when app processes on several hosts share a library),
through the same engine, so every process of a library lists and reopens the same
conversations. This module never touches the record tables.

Example:
    >>> store = ConversationStore(index.records.engine)  # doctest: +SKIP
    >>> c = store.create("browser-1", "what did Meloni propose?")  # doctest: +SKIP
    >>> store.save_turn("browser-1", c.conversation_id, 0, answer)  # doctest: +SKIP
    >>> [s.title for s in store.summaries("browser-1")]  # doctest: +SKIP
    ['what did Meloni propose?']
"""

from __future__ import annotations

import json
import logging
import secrets
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update

from rag.database import (
    LIBRARY_STATE,
    UI_CONVERSATIONS,
    UI_FEEDBACK,
    UI_TURNS,
    connection,
    dialect_insert,
    upsert,
)
from rag.records import Answer, DateWindow, Source, answer_to_dict, member_from_dict

logger = logging.getLogger(__name__)

MAX_TITLE_CHARS = 120
_BROWSER_SECRET = "browser_secret"


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
    """Conversations and feedback of the chat's users, in the library's database.

    ``engine`` is the record store's (``index.records.engine``), whose tables
    :func:`rag.database.create_schema` made. Every method takes the ``owner``: a
    conversation of another owner is neither listed, read, renamed nor deleted (a guessed
    id opens nothing). Each write is one transaction, so processes saving at once (on one
    host or several sharing Postgres) lose no row.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _connect(self, write: bool = False) -> AbstractContextManager[Connection]:
        return connection(self.engine, "the conversation tables", write=write)

    def browser_secret(self, legacy: Path | None = None) -> str:
        """The key that encrypts the browsers' stored ids, created once per library.

        Kept in the library's database (``library_state``), so every app host sharing the
        library reads a browser as the same owner; a key made at each start would make
        every browser a stranger after a restart. A library whose key is still in the file
        ``legacy`` (``<data_dir>/.browser-secret``, written by earlier versions) keeps it.

        >>> from rag.store import open_record_store
        >>> store = ConversationStore(open_record_store("sqlite://").engine)
        >>> store.browser_secret() == store.browser_secret()
        True
        """
        known = ""
        if legacy is not None and legacy.is_file():
            known = legacy.read_text(encoding="ascii").strip()
        key = LIBRARY_STATE.c.key
        with self._connect(write=True) as con:
            offer = dialect_insert(con, LIBRARY_STATE).values(
                key=_BROWSER_SECRET, value=known or secrets.token_urlsafe(32)
            )
            con.execute(offer.on_conflict_do_nothing())  # the first host's key stays
            found = con.execute(select(LIBRARY_STATE.c.value).where(key == _BROWSER_SECRET))
            return str(found.scalar_one())

    # -- conversations ---------------------------------------------------------------

    def create(self, owner: str, title: str) -> ConversationSummary:
        """A new, empty conversation titled by (the start of) ``title``."""
        conversation_id = secrets.token_hex(8)
        now = _now()
        title = " ".join(title.split())[:MAX_TITLE_CHARS] or "Untitled"
        with self._connect(write=True) as con:
            con.execute(
                insert(UI_CONVERSATIONS).values(
                    conversation_id=conversation_id,
                    owner=owner,
                    title=title,
                    created=now,
                    updated=now,
                )
            )
        stamp = datetime.fromisoformat(now)
        return ConversationSummary(conversation_id, title, stamp, stamp)

    def summaries(self, owner: str, limit: int = 200) -> list[ConversationSummary]:
        """The owner's conversations, the most recently changed first."""
        c = UI_CONVERSATIONS.c
        with self._connect() as con:
            rows = con.execute(
                select(c.conversation_id, c.title, c.created, c.updated)
                .where(c.owner == owner)
                .order_by(c.updated.desc(), c.created.desc(), c.conversation_id)
                .limit(limit)
            ).all()
        return [
            ConversationSummary(
                r[0], r[1], datetime.fromisoformat(r[2]), datetime.fromisoformat(r[3])
            )
            for r in rows
        ]

    def turns(self, owner: str, conversation_id: str) -> list[SavedTurn] | None:
        """The saved turns in order, or None when the owner has no such conversation."""
        t = UI_TURNS.c
        with self._connect() as con:
            if not self._owns(con, owner, conversation_id):
                return None
            rows = con.execute(
                select(t.question, t.answer)
                .where(t.conversation_id == conversation_id)
                .order_by(t.position)
            ).all()
        return [SavedTurn(q, answer_from_json(a) if a else None) for q, a in rows]

    def save_turn(
        self, owner: str, conversation_id: str, position: int, question: str, answer: Answer | None
    ) -> bool:
        """Save (or replace) turn ``position`` (from 0); False when not the owner's."""
        row = {
            "conversation_id": conversation_id,
            "position": position,
            "question": question,
            "answer": answer_to_json(answer) if answer else None,
        }
        with self._connect(write=True) as con:
            if not self._owns(con, owner, conversation_id):
                return False
            upsert(con, UI_TURNS, [row], ("conversation_id", "position"))
            con.execute(
                update(UI_CONVERSATIONS)
                .where(UI_CONVERSATIONS.c.conversation_id == conversation_id)
                .values(updated=_now())
            )
        return True

    def rename(self, owner: str, conversation_id: str, title: str) -> bool:
        """Give a conversation a new title; False when not the owner's or the title is empty."""
        title = " ".join(title.split())[:MAX_TITLE_CHARS]
        if not title:
            return False
        c = UI_CONVERSATIONS.c
        with self._connect(write=True) as con:
            result = con.execute(
                update(UI_CONVERSATIONS)
                .where(c.conversation_id == conversation_id, c.owner == owner)
                .values(title=title)
            )
        return result.rowcount == 1

    def delete(self, owner: str, conversation_id: str) -> bool:
        """Delete a conversation and its turns; False when not the owner's."""
        c = UI_CONVERSATIONS.c
        with self._connect(write=True) as con:
            result = con.execute(
                delete(UI_CONVERSATIONS).where(
                    c.conversation_id == conversation_id, c.owner == owner
                )
            )
            if result.rowcount != 1:
                return False
            # Postgres cascades; SQLite enforces foreign keys only where a connection asks.
            con.execute(delete(UI_TURNS).where(UI_TURNS.c.conversation_id == conversation_id))
        return True

    @staticmethod
    def _owns(con: Connection, owner: str, conversation_id: str) -> bool:
        c = UI_CONVERSATIONS.c
        row = con.execute(
            select(c.conversation_id).where(c.conversation_id == conversation_id, c.owner == owner)
        ).first()
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
        with self._connect(write=True) as con:
            result = con.execute(
                insert(UI_FEEDBACK)
                .values(
                    owner=owner,
                    rating=rating,
                    comment=comment.strip(),
                    right_article_id=right_article_id,
                    question=answer.question,
                    as_of=answer.as_of.isoformat() if answer.as_of else None,
                    answer=answer_to_json(answer),
                    created=_now(),
                )
                .returning(UI_FEEDBACK.c.feedback_id)
            )
            return int(result.scalar_one())

    def update_feedback(
        self, owner: str, feedback_id: int, comment: str, right_article_id: str | None = None
    ) -> bool:
        """Add the comment (and the right source) to a rating; False when not the owner's."""
        f = UI_FEEDBACK.c
        with self._connect(write=True) as con:
            result = con.execute(
                update(UI_FEEDBACK)
                .where(f.feedback_id == feedback_id, f.owner == owner)
                .values(comment=comment.strip(), right_article_id=right_article_id or None)
            )
        return result.rowcount == 1

    def feedback(self) -> list[Feedback]:
        """Every rating stored, oldest first."""
        f = UI_FEEDBACK.c
        with self._connect() as con:
            rows = con.execute(
                select(
                    f.feedback_id,
                    f.owner,
                    f.rating,
                    f.comment,
                    f.answer,
                    f.created,
                    f.right_article_id,
                ).order_by(f.feedback_id)
            ).all()
        return [
            Feedback(
                r[0], r[1], r[2], r[3], answer_from_json(r[4]), datetime.fromisoformat(r[5]), r[6]
            )
            for r in rows
        ]
