"""The eval harness on a tiny dataset built in the test, in the rtqa-dev format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.cli import main
from rag.evaluation import answer_hit, load_questions

ARTICLES = [
    {
        "id": "gold-bridge",
        "url": "https://news.example/bridge",
        "title": "Harbor bridge reopens",
        "published": "2024-05-30",
        "source": "news.example",
        "text": "The Harbor Bridge reopened on Thursday after two years of repairs. "
        "Mayor Lena Ortiz said the repairs cost 40 million dollars.",
    },
    {
        "id": "gold-festival",
        "url": "https://news.example/festival",
        "title": "Tall ships festival",
        "published": "2024-05-30",
        "source": "news.example",
        "text": "The tall ships festival will bring 35 ships to the harbor in July. "
        "Organizers expect half a million visitors.",
    },
    {
        "id": "distractor",
        "url": "https://other.example/weather",
        "title": "Weekend weather",
        "published": "2024-05-20",
        "source": "other.example",
        "text": "Forecasters expect rain on Saturday and sunshine on Sunday across the region.",
    },
]
QUESTIONS = [
    {
        "id": "q1",
        "question": "How much did the Harbor Bridge repairs cost?",
        "date": "2024-06-01",
        "answer": "40 million dollars",
        "answer_norm": "40 million dollars",
        "gold_doc_ids": ["gold-bridge"],
    },
    {
        "id": "q2",
        "question": "How many ships will the tall ships festival bring to the harbor?",
        "date": "2024-06-01",
        "answer": "35",
        "answer_norm": "35",
        "gold_doc_ids": ["gold-festival"],
    },
]


def _dataset(folder: Path) -> Path:
    folder.mkdir()
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(a) for a in ARTICLES) + "\n")
    (folder / "questions.jsonl").write_text("\n".join(json.dumps(q) for q in QUESTIONS) + "\n")
    return folder


def test_answer_hit_needs_whole_words() -> None:
    assert answer_hit("It cost 40 million dollars [1].", "40 million dollars")
    assert not answer_hit("It cost 140 million dollars.", "40 million dollars")


def test_a_dataset_without_questions_file_is_a_clear_error(tmp_path: Path) -> None:
    from rag.errors import ConfigError

    with pytest.raises(ConfigError, match=r"questions\.jsonl"):
        load_questions(tmp_path)


@pytest.mark.slow
def test_eval_runs_on_a_small_dataset_and_writes_json_and_markdown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = _dataset(tmp_path / "tiny")
    out = tmp_path / "results"
    code = main(
        [
            "--data-dir",
            str(tmp_path / "data"),
            "eval",
            str(dataset),
            "--limit",
            "2",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "| newsrag (extractive) |" in printed
    assert "| BM25 1000/200 |" in printed and "| LangChain tutorial |" in printed
    payload = json.loads(next(out.glob("eval-*.json")).read_text())
    ours = payload["summaries"][0]
    assert ours["questions"] == 2
    assert ours["recall_at_1"] == 1.0
    assert ours["answer_hit"] == 1.0
    assert ours["citation_precision"] == 1.0
    assert ours["abstain_no_answer"] == 1.0, "with the gold article left out, it abstains"
    assert next(out.glob("eval-*.md")).read_text().count("|") > 20
    # The eval collection is reused: a second run embeds nothing new.
    assert (
        main(
            [
                "--data-dir",
                str(tmp_path / "data"),
                "eval",
                str(dataset),
                "--no-anchors",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "added 0, updated 0, skipped 3" in capsys.readouterr().err


@pytest.mark.slow
def test_eval_can_measure_a_collection_that_holds_the_corpus_already(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = _dataset(tmp_path / "tiny")
    data = str(tmp_path / "data")
    corpus = str(dataset / "corpus.jsonl")
    assert main(["--data-dir", data, "--collection", "kept", "ingest", corpus]) == 0
    capsys.readouterr()
    args = ["eval", str(dataset), "--no-anchors", "--out", str(tmp_path / "results")]
    assert main(["--data-dir", data, "--collection", "kept", *args]) == 0
    assert "added 0, updated 0, skipped 3" in capsys.readouterr().err
