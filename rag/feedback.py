"""Turn the chat's answer ratings into an evaluation dataset: ``newsrag feedback export DIR``.

The directory has the layout ``newsrag eval DIR`` reads (see :mod:`rag.evaluation`):

- ``questions.jsonl``: one question per rated answer that names a gold article: the
  articles cited by an up-voted answer, or the source a user marked as the right one on a
  down-voted answer (a down-vote without that mark says what is wrong, not what is right,
  and is left out). ``date`` is the as-of the question was asked for; ``answer`` the
  up-voted answer's text without its markers (a down-voted answer's text is no gold
  answer: its ``answer`` is the comment, or empty).
- ``corpus.jsonl``: every article those questions need (the gold ones and the other
  sources shown), with the full text rebuilt from the library's chunks.

Example:
    >>> report = export_feedback(store, index, Path("feedback-set"))  # doctest: +SKIP
    >>> report.questions, report.articles  # doctest: +SKIP
    (3, 5)
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from rag.conversations_store import ConversationStore, Feedback
from rag.library_view import article_text
from rag.store import Library

logger = logging.getLogger(__name__)

_MARKER = re.compile(r"\s*\[\d+\]")


@dataclass(frozen=True)
class FeedbackExport:
    """What an export wrote, and what it left out (rated answers without a gold article)."""

    questions: int
    articles: int
    skipped: int
    missing_articles: tuple[str, ...] = ()

    def summary(self) -> str:
        line = (
            f"{self.questions} questions, {self.articles} articles "
            f"({self.skipped} ratings without a gold article left out)"
        )
        if self.missing_articles:
            line += f"; {len(self.missing_articles)} articles no longer in the library"
        return line


def _gold(item: Feedback) -> tuple[str, ...]:
    if item.rating > 0:
        cited = {int(n) for n in re.findall(r"\[(\d+)\]", item.answer.text)}
        return tuple(dict.fromkeys(s.article_id for s in item.answer.sources if s.number in cited))
    return (item.right_article_id,) if item.right_article_id else ()


def export_feedback(store: ConversationStore, index: Library, out: Path) -> FeedbackExport:
    """Write ``corpus.jsonl`` and ``questions.jsonl`` of the stored ratings into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    questions: list[dict[str, object]] = []
    wanted: dict[str, None] = {}
    skipped = 0
    for item in store.feedback():
        gold = _gold(item)
        if not gold:
            skipped += 1
            continue
        answer = _MARKER.sub("", item.answer.text).strip() if item.rating > 0 else item.comment
        questions.append(
            {
                "id": f"feedback-{item.feedback_id}",
                "question": item.answer.question,
                "date": item.answer.as_of.isoformat() if item.answer.as_of else None,
                "answer": answer,
                "gold_doc_ids": list(gold),
                "rating": item.rating,
                "comment": item.comment,
            }
        )
        wanted.update(dict.fromkeys(gold))
        wanted.update(dict.fromkeys(s.article_id for s in item.answer.sources))
    records = index.records.get_records(list(wanted))
    missing: list[str] = []
    written = 0
    with (out / "corpus.jsonl").open("w", encoding="utf-8") as corpus:
        for article_id in wanted:
            record = records.get(article_id)
            text = article_text(index, article_id) if record else None
            if record is None or text is None:
                missing.append(article_id)
                continue
            row = {
                "id": article_id,
                "url": record.url,
                "title": record.title,
                "published": record.published.isoformat() if record.published else None,
                "source": record.source,
                "text": text,
            }
            corpus.write(json.dumps(row, ensure_ascii=False) + "\n")
            written += 1
    with (out / "questions.jsonl").open("w", encoding="utf-8") as fh:
        for question in questions:
            fh.write(json.dumps(question, ensure_ascii=False) + "\n")
    if missing:
        logger.warning("%d rated articles are no longer in the library", len(missing))
    return FeedbackExport(len(questions), written, skipped, tuple(missing))
