"""How the no-LLM follow-up rule classifies hand-written conversation pairs.

Each line of ``bench/followups.jsonl`` holds a previous question, the next question and
whether that question is a follow-up (cannot be understood alone). Prints every
misclassified pair and the counts by kind::

    PYTHONPATH=. .venv/bin/python bench/followups.py
"""

from __future__ import annotations

import json
from pathlib import Path

from rag.conversation import follow_up_reason, rule_query


def main() -> None:
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


if __name__ == "__main__":
    main()
