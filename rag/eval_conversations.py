"""Two-turn conversations for ``newsrag eval``: follow-ups and topic switches.

A conversation file (``evals/conversations.jsonl``) holds one conversation per line::

    {"id": "f01", "kind": "follow-up", "date": "2022-06-23", "question_id": "20220624_1",
     "turns": ["What happened at the charity auction for lunch with Warren Buffett?",
               "and how much did the winner pay?"],
     "answer": "$19 million", "answer_norm": "$19 million", "gold_doc_ids": ["..."]}

``kind`` is ``follow-up`` (turn 2 cannot be understood without turn 1) or ``topic
switch`` (turn 2 is a short complete question after an unrelated turn 1). ``answer``,
``answer_norm``, ``gold_doc_ids`` and ``date`` are those of turn 2, taken from the
dataset question ``question_id`` it was derived from. That question's full text is read
from the dataset (or from an optional ``question`` field), so it can be asked alone.

:func:`run_conversations` asks turn 1, passes its answer as history, scores turn 2, and
asks turn 2 alone and the full question alone beside it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from rag.errors import ConfigError
from rag.eval_match import answer_hit, answer_hit_lenient
from rag.records import Answer
from rag.text import normalize

KINDS = ("follow-up", "topic switch")
# The project's dev conversations, written for RealTime QA dev (see evals/README.md).
DEFAULT_CONVERSATIONS = Path(__file__).resolve().parent.parent / "evals" / "conversations.jsonl"


@dataclass(frozen=True)
class Conversation:
    id: str
    kind: str
    date: date | None
    turns: tuple[str, str]
    answer: str
    answer_norm: str
    gold_ids: tuple[str, ...]
    question_id: str = ""
    full_question: str = ""


def load_conversations(
    path: Path, questions: Mapping[str, str] | None = None
) -> list[Conversation]:
    """Read a conversation file; ``questions`` maps dataset question ids to their text.

    Raises :class:`~rag.errors.ConfigError` naming the line of a malformed conversation,
    or of one whose ``question_id`` is not in ``questions`` (when given) and that has no
    ``question`` of its own.

    >>> load_conversations(DEFAULT_CONVERSATIONS)[0].kind  # doctest: +SKIP
    'follow-up'
    """
    if not path.is_file():
        msg = f"conversation file not found: {path}"
        raise ConfigError(msg)
    conversations = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                conversations.append(_parse(json.loads(line), questions))
            except (ValueError, KeyError, TypeError) as exc:
                msg = f"{path}:{number}: not a valid conversation ({exc})"
                raise ConfigError(msg) from exc
    return conversations


def _parse(row: dict[str, Any], questions: Mapping[str, str] | None) -> Conversation:
    if row["kind"] not in KINDS:
        msg = f"kind must be one of {', '.join(KINDS)}, not {row['kind']!r}"
        raise ValueError(msg)
    turns = row["turns"]
    if len(turns) != 2 or not all(isinstance(t, str) and t.strip() for t in turns):
        msg = "turns must be two non-empty questions"
        raise ValueError(msg)
    gold = tuple(str(g) for g in row["gold_doc_ids"])
    if not gold:
        msg = "gold_doc_ids is empty"
        raise ValueError(msg)
    question_id = str(row.get("question_id") or "")
    full = row.get("question") or ""
    if not full and questions is not None:
        if question_id not in questions:
            msg = f"question_id {question_id!r} is not in the dataset"
            raise ValueError(msg)
        full = questions[question_id]
    return Conversation(
        id=str(row["id"]),
        kind=row["kind"],
        date=date.fromisoformat(row["date"]) if row.get("date") else None,
        turns=(turns[0], turns[1]),
        answer=row["answer"],
        answer_norm=row.get("answer_norm") or normalize(row["answer"]),
        gold_ids=gold,
        question_id=question_id,
        full_question=full,
    )


@dataclass
class TurnScore:
    """One way of asking turn 2's question, scored."""

    question: str
    answer: str
    found: bool
    answer_hit: bool
    answer_hit_lenient: bool
    gold_cited: bool


@dataclass
class ConversationResult:
    id: str
    kind: str
    first_answer: str
    in_conversation: TurnScore
    alone: TurnScore
    full_alone: TurnScore | None


def _score(answer: Answer, c: Conversation) -> TurnScore:
    text = answer.text if answer.found else ""
    return TurnScore(
        question=answer.question,
        answer=text,
        found=answer.found,
        answer_hit=answer.found and answer_hit(text, c.answer_norm),
        answer_hit_lenient=answer.found and answer_hit_lenient(text, c.answer, c.answer_norm),
        gold_cited=answer.found and any(s.article_id in c.gold_ids for s in answer.sources),
    )


def run_conversations(
    assistant: Any, conversations: Sequence[Conversation]
) -> list[ConversationResult]:
    """Ask each conversation as a chat would, and its turn 2 alone, as of its date.

    Turn 1's answer text is passed as history, exactly as the chat passes it.
    """
    results = []
    for c in conversations:
        first: Answer = assistant.ask(c.turns[0], as_of=c.date)
        second: Answer = assistant.ask(c.turns[1], as_of=c.date, history=[(c.turns[0], first.text)])
        alone: Answer = assistant.ask(c.turns[1], as_of=c.date)
        full = assistant.ask(c.full_question, as_of=c.date) if c.full_question else None
        results.append(
            ConversationResult(
                id=c.id,
                kind=c.kind,
                first_answer=first.text,
                in_conversation=_score(second, c),
                alone=_score(alone, c),
                full_alone=_score(full, c) if full is not None else None,
            )
        )
    return results


@dataclass
class ConversationSummary:
    kind: str
    n: int
    hit: float  # turn 2 in the conversation, strict answer-hit
    hit_lenient: float
    gold_cited: float
    alone_hit_lenient: float  # turn 2 asked with no history
    alone_gold_cited: float
    full_hit: float  # the original full question asked alone
    full_hit_lenient: float
    full_gold_cited: float
    results: list[ConversationResult] = field(default_factory=list, repr=False)


def summarize_conversations(results: Sequence[ConversationResult]) -> list[ConversationSummary]:
    """One summary per kind, in :data:`KINDS` order, for the kinds present."""

    def mean(values: list[bool]) -> float:
        return sum(values) / len(values) if values else 0.0

    summaries = []
    for kind in KINDS:
        group = [r for r in results if r.kind == kind]
        if not group:
            continue
        full = [r.full_alone for r in group if r.full_alone is not None]
        summaries.append(
            ConversationSummary(
                kind=kind,
                n=len(group),
                hit=mean([r.in_conversation.answer_hit for r in group]),
                hit_lenient=mean([r.in_conversation.answer_hit_lenient for r in group]),
                gold_cited=mean([r.in_conversation.gold_cited for r in group]),
                alone_hit_lenient=mean([r.alone.answer_hit_lenient for r in group]),
                alone_gold_cited=mean([r.alone.gold_cited for r in group]),
                full_hit=mean([f.answer_hit for f in full]),
                full_hit_lenient=mean([f.answer_hit_lenient for f in full]),
                full_gold_cited=mean([f.gold_cited for f in full]),
                results=list(group),
            )
        )
    return summaries


def conversation_table(summaries: Sequence[ConversationSummary]) -> str:
    """Markdown: turn 2 in the conversation next to turn 2 alone and the full question."""
    rows = [
        "| kind | n | turn 2 in conversation: answer-hit (strict / lenient) | gold cited "
        "| turn 2 alone: answer-hit (lenient) | gold cited "
        "| full question alone: answer-hit (strict / lenient) | gold cited "
        "| in conversation / full (lenient) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        ratio = f"{s.hit_lenient / s.full_hit_lenient:.2f}" if s.full_hit_lenient else "n/a"
        rows.append(
            f"| {s.kind} | {s.n} | {s.hit:.3f} / {s.hit_lenient:.3f} | {s.gold_cited:.3f} "
            f"| {s.alone_hit_lenient:.3f} | {s.alone_gold_cited:.3f} "
            f"| {s.full_hit:.3f} / {s.full_hit_lenient:.3f} | {s.full_gold_cited:.3f} "
            f"| {ratio} |"
        )
    return "\n".join(rows)
