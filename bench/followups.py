"""How the no-LLM follow-up rule classifies hand-written conversation pairs.

Each line of ``bench/followups.jsonl`` holds a previous question, the next question and
whether that question is a follow-up (cannot be understood alone). Prints every
misclassified pair and the counts by kind. With ``--questions FILE`` (a dataset's
``questions.jsonl``, every question complete), also counts how many of those questions
the rule, and the word-count rule it replaced, would have mixed with a previous turn;
with ``--conversations FILE`` (``evals/conversations.jsonl``), how both classify turn 2::

    .venv/bin/python bench/followups.py --questions ../shared/eval/rtqa-dev/questions.jsonl
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from rag.conversation import follow_up_reason, rule_query
from rag.text import content_terms

# The rule newsrag used before rag/conversation.py, kept here to compare against.
_OLD_FOLLOW_UP = re.compile(
    r"^(and|but|so|also|what about|how about)\b|\b(it|its|he|she|him|her|his|they|them|"
    r"their|this|that|these|those|there)\b",
    re.IGNORECASE,
)


def old_rule(question: str) -> bool:
    return len(content_terms(question)) <= 3 or bool(_OLD_FOLLOW_UP.search(question))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=Path, help="a questions.jsonl of complete questions")
    parser.add_argument(
        "--conversations", type=Path, help="a conversations.jsonl (kind, turns) to classify"
    )
    args = parser.parse_args()
    rows = [json.loads(line) for line in Path(__file__).with_suffix(".jsonl").open()]
    tally = {True: [0, 0], False: [0, 0]}  # kind -> [right, total]
    for row in rows:
        reason = follow_up_reason(row["question"])
        said = reason is not None
        right = said == row["follow_up"]
        tally[row["follow_up"]][0] += right
        tally[row["follow_up"]][1] += 1
        if not right:
            query = rule_query(row["question"], [(row["previous"], "")]).query
            print(f"MISS {row['question']!r} ({reason or 'complete'}) -> {query!r}")
    for kind, (right, total) in tally.items():
        label = "follow-ups" if kind else "complete questions"
        print(f"{label}: {right}/{total} classified right")
    old = sum(old_rule(r["question"]) == r["follow_up"] for r in rows)
    print(f"the word-count rule it replaced: {old}/{len(rows)} right")
    if args.conversations:
        convs = [json.loads(line) for line in args.conversations.open() if line.strip()]
        for kind in sorted({c["kind"] for c in convs}):
            some = [c for c in convs if c["kind"] == kind]
            expected = kind == "follow-up"
            new = sum((follow_up_reason(c["turns"][1]) is not None) == expected for c in some)
            old = sum(old_rule(c["turns"][1]) == expected for c in some)
            print(f"{args.conversations} {kind}: {new}/{len(some)} right (word-count rule {old})")
    if args.questions:
        questions = [json.loads(line)["question"] for line in args.questions.open()]
        flagged = [q for q in questions if follow_up_reason(q) is not None]
        for q in flagged:
            print(f"FLAGGED {q!r} ({follow_up_reason(q)})")
        print(
            f"{args.questions}: {len(flagged)}/{len(questions)} complete questions taken for "
            f"follow-ups (the word-count rule: {sum(map(old_rule, questions))})"
        )


if __name__ == "__main__":
    main()
