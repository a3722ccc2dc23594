"""The quality harness: ``newsrag eval DATASET_DIR``.

A dataset directory holds ``corpus.jsonl`` (one article per line: id, url, title,
published, source, text) and ``questions.jsonl`` (id, question, date, answer,
answer_norm, gold_doc_ids). The harness ingests the corpus into its own collection
(reused when unchanged), asks every question as of its date, and measures:

- retrieval: gold-article recall@1/5/10 and MRR over the ranked distinct articles;
- answers: answer-hit (the normalized gold answer occurs as whole words in the answer)
  and answer length;
- citations: precision (cited articles that are gold) and support (a cited passage
  contains the gold answer);
- abstention: the same questions with their gold articles left out of the index (by an
  exclusion filter, equivalent to removing them for that question): how often the system
  says not found, and how often it abstains when the answer is there; and the fair
  variant, which also leaves out every article holding the answer and its near-copies
  (:mod:`rag.eval_match`), so abstaining is the right reply.

Answer-hit is reported strict and lenient (possessives, number words, demonyms: see
:mod:`rag.eval_match`). Optional modes measure what the chat does rather than the quiz:
two-turn conversations (:mod:`rag.eval_conversations`), questions asked with no as-of date
after their relative time words were made explicit (:mod:`rag.eval_time`), and the
figures per half of the dataset's weeks, with settings chosen on one half and reported
on the other (``--split-weeks``, ``--grid``).

Beside newsrag it measures two anchors on the same corpus and questions: BM25 alone over
1000/200-character chunks, and the LangChain RAG tutorial (RecursiveCharacterTextSplitter
1000/200, all-MiniLM-L6-v2, Chroma similarity search), whose answer is its top chunk.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import re
import statistics
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from rag.errors import ConfigError, MissingDependencyError
from rag.eval_match import AnswerIndex, answer_hit, answer_hit_lenient, fair_exclusions
from rag.eval_match import story_groups as build_story_groups
from rag.eval_time import explicit_dates, has_time_words
from rag.records import Answer, sha1_hex
from rag.settings import Settings
from rag.store import Filters
from rag.text import normalize

__all__ = ["answer_hit", "answer_hit_lenient", "load_questions", "run_cli"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    date: date | None
    answer: str
    answer_norm: str
    gold_ids: tuple[str, ...]


@dataclass
class Result:
    """One system's outcome on one question."""

    id: str
    ranked: list[str]
    answer: str
    found: bool
    cited: list[str]
    passages: list[str]
    answer_hit: bool = False
    answer_hit_lenient: bool = False
    supported: bool = False
    rr: float = 0.0
    abstained_without_gold: bool | None = None
    abstained_fair: bool | None = None  # with every answer-bearing article left out
    seconds: float = 0.0


@dataclass
class Summary:
    system: str
    questions: int
    recall_at_1: float
    recall_at_5: float
    recall_at_10: float
    mrr: float
    answer_hit: float
    answer_hit_lenient: float
    median_answer_chars: float
    citation_precision: float
    support: float
    abstain_no_answer: float | None
    abstain_fair: float | None
    abstain_answerable: float
    p50_ms: float
    results: list[Result] = field(default_factory=list, repr=False)


def load_questions(dataset: Path, limit: int | None = None) -> list[Question]:
    path = dataset / "questions.jsonl"
    if not path.is_file() or not (dataset / "corpus.jsonl").is_file():
        msg = f"{dataset} needs corpus.jsonl and questions.jsonl (see README: Evaluation)"
        raise ConfigError(msg)
    questions = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            gold = tuple(str(g) for g in row.get("gold_doc_ids") or ())
            if not gold:
                continue
            questions.append(
                Question(
                    id=str(row["id"]),
                    question=row["question"],
                    date=date.fromisoformat(row["date"]) if row.get("date") else None,
                    answer=row["answer"],
                    answer_norm=row.get("answer_norm") or normalize(row["answer"]),
                    gold_ids=gold,
                )
            )
    return questions[:limit] if limit else questions


def _score(result: Result, q: Question) -> Result:
    gold = set(q.gold_ids)
    result.rr = next((1.0 / (i + 1) for i, a in enumerate(result.ranked) if a in gold), 0.0)
    result.answer_hit = result.found and answer_hit(result.answer, q.answer_norm)
    result.answer_hit_lenient = result.found and answer_hit_lenient(
        result.answer, q.answer, q.answer_norm
    )
    result.supported = result.found and any(answer_hit(p, q.answer_norm) for p in result.passages)
    return result


def summarize(system: str, questions: list[Question], results: list[Result]) -> Summary:
    by_id = {q.id: q for q in questions}

    def recall(k: int) -> float:
        hits = [any(a in by_id[r.id].gold_ids for a in r.ranked[:k]) for r in results]
        return _mean(hits)

    answered = [r for r in results if r.found]
    precisions = [
        sum(c in by_id[r.id].gold_ids for c in r.cited) / len(r.cited) for r in answered if r.cited
    ]
    no_answer = [r.abstained_without_gold for r in results if r.abstained_without_gold is not None]
    fair = [r.abstained_fair for r in results if r.abstained_fair is not None]
    return Summary(
        system=system,
        questions=len(results),
        recall_at_1=recall(1),
        recall_at_5=recall(5),
        recall_at_10=recall(10),
        mrr=_mean([r.rr for r in results]),
        answer_hit=_mean([r.answer_hit for r in results]),
        answer_hit_lenient=_mean([r.answer_hit_lenient for r in results]),
        median_answer_chars=statistics.median([len(r.answer) for r in answered])
        if answered
        else 0.0,
        citation_precision=_mean(precisions),
        support=_mean([r.supported for r in answered]),
        abstain_no_answer=_mean(no_answer) if no_answer else None,
        abstain_fair=_mean(fair) if fair else None,
        abstain_answerable=_mean([not r.found for r in results]),
        p50_ms=statistics.median([r.seconds * 1000 for r in results]) if results else 0.0,
        results=results,
    )


def story_gold(
    questions: Sequence[Question], members: Mapping[str, Sequence[str]]
) -> list[Question]:
    """The questions with each gold article's story as gold: a story counts as gold when
    any of its members is (``members`` maps an article id to its story's article ids).

    >>> q = Question("q1", "?", None, "x", "x", ("a",))
    >>> story_gold([q], {"a": ["a", "b"]})[0].gold_ids
    ('a', 'b')
    """
    return [
        replace(
            q,
            gold_ids=tuple(
                dict.fromkeys(m for g in q.gold_ids for m in members.get(g, (g,)) or (g,))
            ),
        )
        for q in questions
    ]


def answer_gold(
    questions: Sequence[Question], holders: Mapping[str, Sequence[str]]
) -> list[Question]:
    """The questions with every article that holds the answer as gold too (``holders``
    maps a question id to those articles: :func:`answer_holders`).

    The dataset names one or two gold articles; another outlet's report of the same event
    often holds the answer as well, and citing it is not wrong.

    >>> q = Question("q1", "?", None, "x", "x", ("a",))
    >>> answer_gold([q], {"q1": ["c", "a"]})[0].gold_ids
    ('a', 'c')
    """
    return [
        replace(q, gold_ids=tuple(dict.fromkeys((*q.gold_ids, *holders.get(q.id, ())))))
        for q in questions
    ]


def answer_holders(dataset: Path, questions: Sequence[Question]) -> dict[str, list[str]]:
    """For each question, the corpus articles whose title or text holds its answer
    (lenient match, as for the fair no-answer variant)."""
    articles = {str(d["id"]): (d.get("title") or "", d.get("text") or "") for d in _corpus(dataset)}
    index = AnswerIndex(articles)
    return {q.id: index.holding(q.answer, q.answer_norm) for q in questions}


def rescore(questions: Sequence[Question], results: Sequence[Result]) -> list[Result]:
    """``results`` scored again against ``questions`` (e.g. with :func:`story_gold`)."""
    by_id = {q.id: q for q in questions}
    return [_score(replace(r), by_id[r.id]) for r in results]


def _mean(values: Sequence[float | bool]) -> float:
    return float(sum(values)) / len(values) if values else 0.0


# -- systems -----------------------------------------------------------------------------


def eval_settings(settings: Settings, dataset: Path) -> Settings:
    """The settings of the eval collection: one per dataset, model and chunking."""
    recipe = f"{dataset.resolve()}|{settings.embedding_key}|{settings.chunk_tokens}|"
    recipe += str(settings.chunk_overlap_tokens)
    name = re.sub(r"[^a-zA-Z0-9]+", "-", dataset.resolve().name).strip("-")[:40] or "dataset"
    return settings.model_copy(update={"collection": f"eval-{name}-{sha1_hex(recipe, 8)}"})


def run_newsrag(
    assistant: Any,
    questions: list[Question],
    *,
    abstention: bool = True,
    fair: Mapping[str, tuple[str, ...]] | None = None,
    undated: bool = False,
) -> list[Result]:
    """Ask every question as of its date and score it.

    ``fair`` maps question ids to the articles left out for the fair no-answer variant
    (see :func:`fair_exclusion_sets`). ``undated`` asks as the chat does: no as-of date
    is passed at all, so the assistant's own default applies.
    """
    results = []
    for q in questions:
        started = time.perf_counter()
        if undated:
            hits = assistant.search(q.question, top_k=10)
            answer: Answer = assistant.ask(q.question)
        else:
            hits = assistant.search(q.question, as_of=q.date, top_k=10)
            answer = list(assistant.answer_from(q.question, hits, as_of=q.date))[-1]
        elapsed = time.perf_counter() - started
        result = Result(
            id=q.id,
            ranked=[h.article_id for h in hits],
            answer=answer.text if answer.found else "",
            found=answer.found,
            cited=[s.article_id for s in answer.sources],
            passages=[s.passage for s in answer.sources],
            seconds=elapsed,
        )
        if abstention:
            without = Filters(exclude_ids=q.gold_ids)
            blind = assistant.ask(q.question, as_of=q.date, filters=without)
            result.abstained_without_gold = not blind.found
        if fair is not None and q.id in fair:
            blind = assistant.ask(q.question, as_of=q.date, filters=Filters(exclude_ids=fair[q.id]))
            result.abstained_fair = not blind.found
        results.append(_score(result, q))
    return results


def fair_exclusion_sets(dataset: Path, questions: Sequence[Question]) -> dict[str, tuple[str, ...]]:
    """For each question, the articles the fair no-answer variant leaves out.

    The gold articles, every article of the corpus whose title or text holds the answer
    (lenient match), and the near-copies of each (:func:`rag.eval_match.story_groups`:
    the corpus has no story ids, so >= 50% shared 5-word shingles, >= 20% with the same
    title).
    """
    articles = {str(d["id"]): (d.get("title") or "", d.get("text") or "") for d in _corpus(dataset)}
    groups = build_story_groups(articles)
    index = AnswerIndex(articles)
    sets = fair_exclusions(
        ((q.answer, q.answer_norm, q.gold_ids) for q in questions), index, groups
    )
    return {q.id: ids for q, ids in zip(questions, sets, strict=True)}


ANCHOR_MODULES = (
    "langchain_text_splitters",
    "rank_bm25",
    "langchain_chroma",
    "langchain_huggingface",
)


def check_anchor_dependencies() -> None:
    """Raise :class:`MissingDependencyError` naming the ``eval`` extra when the anchors'
    packages are missing (they are not needed to ingest or answer).

    >>> check_anchor_dependencies()  # with newsrag[eval] installed
    """
    import importlib.util

    missing = [m for m in ANCHOR_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        msg = (
            f"the eval anchors need {', '.join(missing)}: pip install 'newsrag[eval]' "
            "(or run eval with --no-anchors)"
        )
        raise MissingDependencyError(msg)


def _corpus(dataset: Path) -> Iterator[dict[str, Any]]:
    with (dataset / "corpus.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def _anchor_chunks(dataset: Path) -> list[tuple[str, str]]:
    """(article id, chunk text) pairs split the tutorial's way: 1000/200 characters."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
    pairs = []
    for doc in _corpus(dataset):
        for piece in splitter.split_text(doc["text"]):
            pairs.append((str(doc["id"]), piece))
    return pairs


def _top_chunk_results(
    questions: list[Question], ranked_chunks: list[list[tuple[str, str]]], seconds: list[float]
) -> list[Result]:
    results = []
    for q, chunks, elapsed in zip(questions, ranked_chunks, seconds, strict=True):
        ranked: list[str] = []
        for article_id, _ in chunks:
            if article_id not in ranked:
                ranked.append(article_id)
        top = chunks[0] if chunks else ("", "")
        result = Result(
            id=q.id,
            ranked=ranked[:10],
            answer=top[1],
            found=bool(chunks),
            cited=[top[0]] if chunks else [],
            passages=[top[1]] if chunks else [],
            abstained_without_gold=False,  # a top chunk is always returned
            abstained_fair=False,
            seconds=elapsed,
        )
        results.append(_score(result, q))
    return results


def run_bm25_anchor(dataset: Path, questions: list[Question]) -> list[Result]:
    """BM25 (rank_bm25's Okapi) alone over 1000/200-character chunks."""
    from rank_bm25 import BM25Okapi

    pairs = _anchor_chunks(dataset)
    tokenize = _bm25_tokens
    bm25 = BM25Okapi([tokenize(text) for _, text in pairs])
    ranked, seconds = [], []
    for q in questions:
        started = time.perf_counter()
        scores = bm25.get_scores(tokenize(q.question))
        order = sorted(range(len(pairs)), key=lambda i: scores[i], reverse=True)[:40]
        seconds.append(time.perf_counter() - started)
        ranked.append([pairs[i] for i in order])
    return _top_chunk_results(questions, ranked, seconds)


def _bm25_tokens(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def run_tutorial_anchor(
    dataset: Path, questions: list[Question], settings: Settings
) -> list[Result]:
    """The LangChain RAG tutorial: 1000/200 splitter, MiniLM, Chroma similarity search.

    Its Chroma collection is kept under ``data_dir/eval-anchors`` and reused when it
    already holds every chunk (building it embeds the whole corpus, ~15 min here).
    """
    import chromadb
    from chromadb.config import Settings as ChromaSettings
    from langchain_chroma import Chroma
    from langchain_core.documents import Document
    from langchain_huggingface import HuggingFaceEmbeddings

    from rag.embeddings import resolve_model_path

    pairs = _anchor_chunks(dataset)
    embeddings = HuggingFaceEmbeddings(model_name=resolve_model_path(settings.embedding_model))
    path = settings.data_dir / "eval-anchors"
    client = chromadb.PersistentClient(
        path=str(path), settings=ChromaSettings(anonymized_telemetry=False)
    )
    recipe = f"{dataset.resolve()}|{settings.embedding_model}|tutorial-1000-200"
    name = f"tutorial-{sha1_hex(recipe, 12)}"
    store = Chroma(client=client, collection_name=name, embedding_function=embeddings)
    ids = [f"{n}:{sha1_hex(a + t, 12)}" for n, (a, t) in enumerate(pairs)]
    have = set(store._collection.get(include=[])["ids"])
    todo = [i for i, chunk_id in enumerate(ids) if chunk_id not in have]
    if todo:  # resumable: an interrupted build keeps what it embedded
        logger.warning("tutorial anchor: embedding %d of %d chunks (once)", len(todo), len(ids))
        for start in range(0, len(todo), 500):
            part = todo[start : start + 500]
            store.add_documents(
                [
                    Document(page_content=pairs[i][1], metadata={"article_id": pairs[i][0]})
                    for i in part
                ],
                ids=[ids[i] for i in part],
            )
    ranked, seconds = [], []
    for q in questions:
        started = time.perf_counter()
        found = store.similarity_search(q.question, k=40)
        seconds.append(time.perf_counter() - started)
        ranked.append([(d.metadata["article_id"], d.page_content) for d in found])
    return _top_chunk_results(questions, ranked, seconds)


# -- week halves and settings chosen on one half -----------------------------------------

# The standing targets of issue 12, checked on each held-out half.
TARGETS: dict[str, tuple[str, float]] = {
    "recall_at_5": (">=", 0.92),
    "answer_hit_lenient": (">=", 0.70),
    "citation_precision": (">=", 0.85),
    "abstain_fair": (">=", 0.80),
    "abstain_answerable": ("<=", 0.10),
}


def week_of(day: date) -> tuple[int, int]:
    """The ISO (year, week) of a date: the unit the dataset's questions come in."""
    iso = day.isocalendar()
    return iso.year, iso.week


def split_weeks(questions: Sequence[Question]) -> tuple[list[Question], list[Question]]:
    """The questions of the earlier and the later half of the dataset's weeks.

    Weeks are the ISO weeks of the question dates, sorted; with an odd number of weeks
    the first half has one more. Questions without a date are in neither half.

    >>> qs = [Question(str(i), "q", date(2022, 6, 1 + 7 * i), "a", "a", ("g",)) for i in range(3)]
    >>> [[q.id for q in half] for half in split_weeks(qs)]
    [['0', '1'], ['2']]
    """
    weeks = sorted({week_of(q.date) for q in questions if q.date})
    first = set(weeks[: (len(weeks) + 1) // 2])
    earlier = [q for q in questions if q.date and week_of(q.date) in first]
    later = [q for q in questions if q.date and week_of(q.date) not in first]
    return earlier, later


def half_label(questions: Sequence[Question]) -> str:
    """``weeks 2022-06-16..2022-07-28 (7 weeks)``: what a half holds."""
    dates = sorted(q.date for q in questions if q.date)
    if not dates:
        return "no dated questions"
    weeks = len({week_of(d) for d in dates})
    return f"weeks {dates[0]}..{dates[-1]} ({weeks} week{'s' if weeks != 1 else ''})"


def parse_grid(specs: Sequence[str]) -> dict[str, list[Any]]:
    """``["recency_boost=0.5,3", "min_evidence=0.3,0.4"]`` -> validated setting values.

    Raises :class:`~rag.errors.ConfigError` for an unknown setting or a value it rejects.

    >>> parse_grid(["recency_days=14,30"])
    {'recency_days': [14, 30]}
    """
    from typing import Annotated

    grid: dict[str, list[Any]] = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        name = name.strip()
        field_info = Settings.model_fields.get(name)
        if not sep or field_info is None:
            tunable = "recency_boost, recency_days, min_evidence, fresh_days, top_k, ..."
            msg = f"--grid {spec!r}: expected NAME=V1,V2 with a setting name ({tunable})"
            raise ConfigError(msg)
        # The field's own constraints (ge=0...) come along, so a bad value is named here.
        constrained: Any = Annotated[field_info.annotation, field_info]
        adapter: TypeAdapter[Any] = TypeAdapter(constrained)
        try:
            grid[name] = [
                adapter.validate_python(v.strip()) for v in values.split(",") if v.strip()
            ]
        except ValidationError as exc:
            msg = f"--grid {spec!r}: {exc.errors()[0]['msg']}"
            raise ConfigError(msg) from exc
    return grid


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in order.

    >>> grid_points({"a": [1, 2], "b": [0]})
    [{'a': 1, 'b': 0}, {'a': 2, 'b': 0}]
    """
    names = list(grid)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*grid.values())]


def targets_met(summary: Summary) -> list[str]:
    """The names of the :data:`TARGETS` that ``summary`` meets."""
    met = []
    for name, (op, bound) in TARGETS.items():
        value = getattr(summary, name)
        if value is not None and (value >= bound if op == ">=" else value <= bound):
            met.append(name)
    return met


def selection_key(summary: Summary) -> tuple[int, float]:
    """How settings are chosen on a half: most targets met, then the best mean figure.

    The mean is over recall@5, lenient answer-hit, citation precision, fair abstention
    and (1 - answerable abstention), so no single figure decides alone.
    """
    figures = [
        summary.recall_at_5,
        summary.answer_hit_lenient,
        summary.citation_precision,
        summary.abstain_fair or 0.0,
        1.0 - summary.abstain_answerable,
    ]
    return len(targets_met(summary)), sum(figures) / len(figures)


@dataclass
class HeldOut:
    """Settings chosen on one half (``tuned_on``), reported on the other."""

    tuned_on: str
    chosen: dict[str, Any]
    tuned: Summary
    held_out: Summary
    default_held_out: Summary


def choose_and_hold_out(
    points: Sequence[tuple[dict[str, Any], list[Result]]],
    halves: tuple[list[Question], list[Question]],
    default: list[Result],
) -> list[HeldOut]:
    """For each half: the grid point best on it (:func:`selection_key`), on the other half."""
    outcomes = []
    for tune, hold in (halves, halves[::-1]):
        scored = [
            (point, _subset(f"{_point_label(point)}", tune, results), results)
            for point, results in points
        ]
        point, tuned, results = max(scored, key=lambda item: selection_key(item[1]))
        outcomes.append(
            HeldOut(
                tuned_on=half_label(tune),
                chosen=point,
                tuned=tuned,
                held_out=_subset(_point_label(point), hold, results),
                default_held_out=_subset("shipped settings", hold, default),
            )
        )
    return outcomes


def _point_label(point: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.items()) or "shipped settings"


def _subset(label: str, questions: Sequence[Question], results: Sequence[Result]) -> Summary:
    ids = {q.id for q in questions}
    return summarize(label, list(questions), [r for r in results if r.id in ids])


def run_grid(
    assistant: Any,
    questions: list[Question],
    grid: Mapping[str, Sequence[Any]],
    fair: Mapping[str, tuple[str, ...]] | None,
) -> list[tuple[dict[str, Any], list[Result]]]:
    """Every grid point over all questions, on the same index (only settings change)."""
    from rag.assistant import Assistant

    chat_model = assistant.llm.model if assistant.llm is not None else None
    runs = []
    for point in grid_points(grid):
        variant = assistant.settings.model_copy(update=point)
        logger.warning("grid: %s", _point_label(point))
        other = Assistant(variant, assistant.index, assistant.embeddings, chat_model)
        runs.append((point, run_newsrag(other, questions, abstention=False, fair=fair)))
    return runs


# -- reporting ---------------------------------------------------------------------------


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def markdown_table(summaries: list[Summary]) -> str:
    rows = [
        "| system | n | recall@1 | recall@5 | recall@10 | MRR | answer-hit (strict) "
        "| answer-hit (lenient) | median chars | cit. precision | support | abstain (no gold) "
        "| abstain (no answer, fair) | abstain (answerable) | p50 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        rows.append(
            f"| {s.system} | {s.questions} | {_pct(s.recall_at_1)} | {_pct(s.recall_at_5)} | "
            f"{_pct(s.recall_at_10)} | {_pct(s.mrr)} | {_pct(s.answer_hit)} | "
            f"{_pct(s.answer_hit_lenient)} | {s.median_answer_chars:.0f} | "
            f"{_pct(s.citation_precision)} | {_pct(s.support)} | {_pct(s.abstain_no_answer)} | "
            f"{_pct(s.abstain_fair)} | {_pct(s.abstain_answerable)} | {s.p50_ms:.0f} |"
        )
    return "\n".join(rows)


def compact_table(rows: Sequence[tuple[str, Summary]], first: str = "run") -> str:
    """The figures the targets are about, one labelled row per summary."""
    lines = [
        f"| {first} | n | recall@5 | MRR | answer-hit (strict / lenient) | cit. precision "
        "| support | abstain (no gold) | abstain (fair) | abstain (answerable) | targets met |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, s in rows:
        lines.append(
            f"| {label} | {s.questions} | {_pct(s.recall_at_5)} | {_pct(s.mrr)} | "
            f"{_pct(s.answer_hit)} / {_pct(s.answer_hit_lenient)} | "
            f"{_pct(s.citation_precision)} | {_pct(s.support)} | {_pct(s.abstain_no_answer)} | "
            f"{_pct(s.abstain_fair)} | {_pct(s.abstain_answerable)} | "
            f"{len(targets_met(s))}/{len(TARGETS)} |"
        )
    return "\n".join(lines)


def held_out_table(outcomes: Sequence[HeldOut]) -> str:
    rows: list[tuple[str, Summary]] = []
    for o in outcomes:
        chosen = _point_label(o.chosen)
        rows.append((f"tuned on {o.tuned_on}: {chosen}, on its own half", o.tuned))
        rows.append((f"tuned on {o.tuned_on}: {chosen}, **held out**", o.held_out))
        rows.append(("shipped settings on the same held-out half", o.default_held_out))
    return compact_table(rows, first="settings / half")


def _raw_questions(dataset: Path) -> dict[str, str]:
    """Every question id of the dataset and its text (also those without gold ids)."""
    out = {}
    with (dataset / "questions.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                out[str(row["id"])] = row["question"]
    return out


def _conversation_file(args: argparse.Namespace, dataset: Path) -> Path | None:
    from rag.eval_conversations import DEFAULT_CONVERSATIONS

    if args.conversations == "default":
        return DEFAULT_CONVERSATIONS
    if args.conversations:
        return Path(args.conversations)
    own = dataset / "conversations.jsonl"
    return own if own.is_file() else None


def run_cli(args: argparse.Namespace, settings: Settings) -> int:
    """``newsrag eval``: prints the tables, writes JSON and Markdown under ``--out``."""
    from rag.assistant import Assistant
    from rag.eval_conversations import (
        conversation_table,
        load_conversations,
        run_conversations,
        summarize_conversations,
    )

    dataset: Path = args.dataset
    questions = load_questions(dataset, args.limit)
    if not questions:
        print(f"newsrag: no questions with gold articles in {dataset}", file=sys.stderr)
        return 1
    try:
        grid = parse_grid(args.grid or [])
    except ConfigError as exc:
        print(f"newsrag: {exc}", file=sys.stderr)
        return 2
    conversation_file = _conversation_file(args, dataset)
    conversations = []
    if conversation_file is not None:
        conversations = load_conversations(conversation_file, _raw_questions(dataset))
        conversations = conversations[: args.limit] if args.limit else conversations
    # --collection names an index that holds the corpus already (e.g. one that
    # bench/ingest.py kept); by default the eval keeps its own collection per dataset.
    esettings = settings if args.collection else eval_settings(settings, dataset)
    if args.mode == "extractive":
        esettings = esettings.model_copy(update={"answer_mode": "extractive"})
    elif not settings.llm_provider:
        print("newsrag: --mode llm needs LLM_PROVIDER and LLM_MODEL in .env", file=sys.stderr)
        return 2
    else:
        esettings = esettings.model_copy(update={"answer_mode": "llm"})
    if not args.no_anchors:
        check_anchor_dependencies()  # before the corpus is ingested, not after
    assistant = Assistant.from_settings(esettings)
    report = assistant.ingest([dataset / "corpus.jsonl"], show_progress=sys.stderr.isatty())
    print(f"corpus: {report.summary()}", file=sys.stderr)
    fair = None
    if not args.no_abstention:
        print("fair no-answer variant: finding the articles that hold each answer", file=sys.stderr)
        fair = fair_exclusion_sets(dataset, questions)
    results = run_newsrag(assistant, questions, abstention=not args.no_abstention, fair=fair)
    summaries = [summarize(f"newsrag ({args.mode})", questions, results)]
    story_note = ""
    if args.story_gold:
        ids = [str(d["id"]) for d in _corpus(dataset)]
        members = {
            a: [m.article_id for m in ms] for a, ms in assistant.records.story_members(ids).items()
        }
        stories = {ms[0] for ms in members.values() if ms}
        shared = sum(1 for ms in members.values() if len(ms) > 1)
        story_note = (
            f"stories: {len(stories):,} of {len(members):,} articles "
            f"({shared:,} articles share a story with another); a story counts as gold when "
            "any of its members is"
        )
        by_story = story_gold(questions, members)
        summaries.append(
            summarize(f"newsrag ({args.mode}), story as gold", by_story, rescore(by_story, results))
        )
    answer_view: tuple[list[Question], list[Result]] | None = None
    if args.answer_gold:
        by_answer = answer_gold(questions, answer_holders(dataset, questions))
        answer_view = (by_answer, rescore(by_answer, results))
        summaries.append(summarize(f"newsrag ({args.mode}), answer-bearing as gold", *answer_view))
    if not args.no_anchors:
        summaries.append(summarize("BM25 1000/200", questions, run_bm25_anchor(dataset, questions)))
        summaries.append(
            summarize(
                "LangChain tutorial",
                questions,
                run_tutorial_anchor(dataset, questions, esettings),
            )
        )
    sections = [("all questions", markdown_table(summaries))]
    if story_note:
        sections.append(("stories", story_note))
    if fair:
        left_out = [len(ids) for ids in fair.values()]
        sections.append(
            (
                "fair no-answer variant",
                f"articles left out per question: median {statistics.median(left_out):.0f}, "
                f"min {min(left_out)}, max {max(left_out)} (of the corpus); the anchors "
                "always return a chunk, so they never abstain",
            )
        )
    payload: dict[str, Any] = {}
    if args.split_weeks or grid:
        sections += _weeks_sections(assistant, questions, results, grid, fair, payload, answer_view)
    if args.undated:
        sections.append(_undated_section(assistant, questions, results, payload))
    if conversations:
        conv = run_conversations(assistant, conversations)
        table = conversation_table(summarize_conversations(conv))
        sections.append((f"conversations ({conversation_file})", table))
        payload["conversations"] = [asdict(r) for r in conv]
    text = "\n\n".join(f"## {title}\n\n{body}" for title, body in sections)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    command = "newsrag eval " + " ".join(sys.argv[2:] if len(sys.argv) > 2 else [str(dataset)])
    payload = {
        "dataset": str(dataset),
        "command": command,
        "questions": len(questions),
        "summaries": [_summary_dict(s) for s in summaries],
        "per_question": {s.system: [asdict(r) for r in s.results] for s in summaries},
        "fair_left_out": fair,
        **payload,
    }
    (args.out / f"eval-{stamp}.json").write_text(json.dumps(payload, indent=1, default=str))
    (args.out / f"eval-{stamp}.md").write_text(f"# newsrag eval {stamp}\n\n`{command}`\n\n{text}\n")
    print(f"results: {args.out / f'eval-{stamp}.json'}", file=sys.stderr)
    return 0


def _weeks_sections(
    assistant: Any,
    questions: list[Question],
    results: list[Result],
    grid: Mapping[str, Sequence[Any]],
    fair: Mapping[str, tuple[str, ...]] | None,
    payload: dict[str, Any],
    answer_view: tuple[list[Question], list[Result]] | None = None,
) -> list[tuple[str, str]]:
    """The halves with the shipped settings; with a grid, the held-out figures too.
    With ``answer_view`` (questions and results with answer-bearing articles as gold),
    each half is also shown that way."""
    halves = split_weeks(questions)
    rows = [(half_label(h), _subset(assistant.mode_label, h, results)) for h in halves]
    if answer_view is not None:
        by_answer, rescored = answer_view
        for half in halves:
            ids = {q.id for q in half}
            view = [q for q in by_answer if q.id in ids]
            label = f"{half_label(half)}, answer-bearing as gold"
            rows.append((label, _subset(assistant.mode_label, view, rescored)))
    sections = [("per half of the weeks (shipped settings)", compact_table(rows, "half"))]
    if not grid:
        return sections
    points = run_grid(assistant, questions, grid, fair)
    grid_rows = [
        (f"{_point_label(p)} on {half_label(h)}", _subset(_point_label(p), h, r))
        for p, r in points
        for h in halves
    ]
    sections.append(("grid, per half", compact_table(grid_rows, "settings on half")))
    outcomes = choose_and_hold_out(points, halves, results)
    sections.append(("chosen on one half, reported on the other", held_out_table(outcomes)))
    payload["grid"] = [
        {"settings": p, "half": half_label(h), **_summary_dict(_subset("", h, r))}
        for p, r in points
        for h in halves
    ]
    payload["held_out"] = [
        {
            "tuned_on": o.tuned_on,
            "chosen": o.chosen,
            "held_out": _summary_dict(o.held_out),
            "shipped_held_out": _summary_dict(o.default_held_out),
        }
        for o in outcomes
    ]
    return sections


def _undated_section(
    assistant: Any, questions: list[Question], dated: list[Result], payload: dict[str, Any]
) -> tuple[str, str]:
    """The questions with explicit dates and no as-of, next to the dated run."""
    rewritten = [
        replace(q, question=explicit_dates(q.question, q.date)) if q.date else q for q in questions
    ]
    timed = {q.id for q in questions if has_time_words(q.question)}
    undated = run_newsrag(assistant, rewritten, abstention=False, undated=True)
    rows = []
    for label, group in (
        ("with a time word", [q for q in questions if q.id in timed]),
        ("without", [q for q in questions if q.id not in timed]),
        ("all", questions),
    ):
        if group:
            rows.append((f"{label}, dated (as of the question's date)", _subset("", group, dated)))
            rows.append(
                (f"{label}, undated (explicit dates, no as-of)", _subset("", group, undated))
            )
    payload["undated"] = {
        "rewritten": {q.id: q.question for q in rewritten if q.id in timed},
        "per_question": [asdict(r) for r in undated],
    }
    return "undated: time words made explicit, no as-of given", compact_table(rows, "questions")


def _summary_dict(summary: Summary) -> dict[str, Any]:
    return {k: v for k, v in asdict(summary).items() if k != "results"}
