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
  says not found, and how often it abstains when the answer is there.

Beside newsrag it measures two anchors on the same corpus and questions: BM25 alone over
1000/200-character chunks, and the LangChain RAG tutorial (RecursiveCharacterTextSplitter
1000/200, all-MiniLM-L6-v2, Chroma similarity search), whose answer is its top chunk.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from rag.errors import ConfigError, MissingDependencyError
from rag.records import Answer, sha1_hex
from rag.settings import Settings
from rag.store import Filters
from rag.text import contains_phrase, normalize

logger = logging.getLogger(__name__)

_MARKER = re.compile(r"\[\d+\]")


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
    supported: bool = False
    rr: float = 0.0
    abstained_without_gold: bool | None = None
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
    median_answer_chars: float
    citation_precision: float
    support: float
    abstain_no_answer: float | None
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


def answer_hit(text: str, answer_norm: str) -> bool:
    """Whole-word match of the normalized gold answer in the normalized text.

    >>> answer_hit("It was Saudi Arabia [1].", "saudi arabia")
    True
    """
    return contains_phrase(normalize(_MARKER.sub(" ", text)), answer_norm)


def _score(result: Result, q: Question) -> Result:
    gold = set(q.gold_ids)
    result.rr = next((1.0 / (i + 1) for i, a in enumerate(result.ranked) if a in gold), 0.0)
    result.answer_hit = result.found and answer_hit(result.answer, q.answer_norm)
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
    return Summary(
        system=system,
        questions=len(results),
        recall_at_1=recall(1),
        recall_at_5=recall(5),
        recall_at_10=recall(10),
        mrr=_mean([r.rr for r in results]),
        answer_hit=_mean([r.answer_hit for r in results]),
        median_answer_chars=statistics.median([len(r.answer) for r in answered])
        if answered
        else 0.0,
        citation_precision=_mean(precisions),
        support=_mean([r.supported for r in answered]),
        abstain_no_answer=_mean(no_answer) if no_answer else None,
        abstain_answerable=_mean([not r.found for r in results]),
        p50_ms=statistics.median([r.seconds * 1000 for r in results]) if results else 0.0,
        results=results,
    )


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
    assistant: Any, questions: list[Question], *, abstention: bool = True
) -> list[Result]:
    results = []
    for q in questions:
        started = time.perf_counter()
        hits = assistant.search(q.question, as_of=q.date, top_k=10)
        answer: Answer = list(assistant.answer_from(q.question, hits, as_of=q.date))[-1]
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
        results.append(_score(result, q))
    return results


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


# -- reporting ---------------------------------------------------------------------------


def markdown_table(summaries: list[Summary]) -> str:
    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    rows = [
        "| system | n | recall@1 | recall@5 | recall@10 | MRR | answer-hit | median chars "
        "| cit. precision | support | abstain (no gold) | abstain (answerable) | p50 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        rows.append(
            f"| {s.system} | {s.questions} | {pct(s.recall_at_1)} | {pct(s.recall_at_5)} | "
            f"{pct(s.recall_at_10)} | {pct(s.mrr)} | {pct(s.answer_hit)} | "
            f"{s.median_answer_chars:.0f} | {pct(s.citation_precision)} | {pct(s.support)} | "
            f"{pct(s.abstain_no_answer)} | {pct(s.abstain_answerable)} | {s.p50_ms:.0f} |"
        )
    return "\n".join(rows)


def run_cli(args: argparse.Namespace, settings: Settings) -> int:
    """``newsrag eval``: prints the table, writes JSON and Markdown under ``--out``."""
    from rag.assistant import Assistant

    dataset: Path = args.dataset
    questions = load_questions(dataset, args.limit)
    if not questions:
        print(f"newsrag: no questions with gold articles in {dataset}", file=sys.stderr)
        return 1
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
    summaries = [
        summarize(
            f"newsrag ({args.mode})",
            questions,
            run_newsrag(assistant, questions, abstention=not args.no_abstention),
        )
    ]
    if not args.no_anchors:
        summaries.append(summarize("BM25 1000/200", questions, run_bm25_anchor(dataset, questions)))
        summaries.append(
            summarize(
                "LangChain tutorial",
                questions,
                run_tutorial_anchor(dataset, questions, esettings),
            )
        )
    table = markdown_table(summaries)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    command = "newsrag eval " + " ".join(sys.argv[2:] if len(sys.argv) > 2 else [str(dataset)])
    payload = {
        "dataset": str(dataset),
        "command": command,
        "questions": len(questions),
        "summaries": [
            {**{k: v for k, v in asdict(s).items() if k != "results"}} for s in summaries
        ],
        "per_question": {s.system: [asdict(r) for r in s.results] for s in summaries},
    }
    (args.out / f"eval-{stamp}.json").write_text(json.dumps(payload, indent=1, default=str))
    (args.out / f"eval-{stamp}.md").write_text(
        f"# newsrag eval {stamp}\n\n`{command}`\n\n{table}\n"
    )
    print(f"results: {args.out / f'eval-{stamp}.json'}", file=sys.stderr)
    return 0
