"""Rated answers become an evaluation dataset: ``newsrag feedback export DIR`` then eval."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from rag.assistant import Assistant
from rag.cli import main
from rag.conversations_store import ConversationStore
from rag.library_view import article_text
from tests.conftest import SEED_FILE, SEEDS, make_settings


@pytest.mark.slow
def test_rated_answers_export_as_a_dataset_that_eval_runs(
    seeded: Assistant, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = seeded.settings
    good = seeded.ask("what did Meloni propose?")
    bad = seeded.ask("who won the 2022 World Cup?")
    assert good.found and good.sources
    store = ConversationStore(seeded.index.records.engine)
    store.add_feedback("browser:x", good, 1, "right quote")
    down = store.add_feedback("browser:x", good, -1)
    store.update_feedback("browser:x", down, "the answer is elsewhere", good.sources[0].article_id)
    store.add_feedback("browser:x", bad, -1, "no gold: left out")
    out = tmp_path / "feedback-set"

    assert main(["--data-dir", str(settings.data_dir), "feedback", "export", str(out)]) == 0

    assert "2 questions, 1 articles (1 ratings without a gold article left out)" in (
        capsys.readouterr().out
    )
    questions = [json.loads(line) for line in (out / "questions.jsonl").open()]
    corpus = [json.loads(line) for line in (out / "corpus.jsonl").open()]
    seed_id = good.sources[0].article_id
    assert [q["gold_doc_ids"] for q in questions] == [[seed_id], [seed_id]]
    assert questions[0]["question"] == "what did Meloni propose?"
    assert questions[0]["date"] == good.as_of.isoformat() if good.as_of else False
    assert "[1]" not in questions[0]["answer"] and "Article 5" in questions[0]["answer"]
    assert [a["id"] for a in corpus] == [seed_id]
    # The full text, rebuilt from the chunks: every sentence of the seed file is there.
    seed_body = SEED_FILE.read_text(encoding="utf-8").split("\n", 1)[1]
    assert " ".join(corpus[0]["text"].split()) == " ".join(seed_body.split())
    assert article_text(seeded.index, "no-such-article") is None

    results = tmp_path / "results"
    args = ["eval", str(out), "--no-anchors", "--no-abstention", "--out", str(results)]
    assert main(["--data-dir", str(tmp_path / "eval-data"), *args]) == 0
    payload = json.loads(next(results.glob("eval-*.json")).read_text())
    assert payload["summaries"][0]["questions"] == 2
    assert payload["summaries"][0]["recall_at_1"] == 1.0


@pytest.mark.slow
def test_a_rating_given_on_one_app_host_is_exported_from_another(
    database_url: str,
    tmp_path: Path,
    assistant_factory: Callable[..., Assistant],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Host A answers and is rated; host B (a data dir of its own) shares only the database.
    host_a = assistant_factory(make_settings(tmp_path / "host-a", database_url=database_url))
    assert host_a.ingest([SEEDS]).added
    good = host_a.ask("what did Meloni propose?")
    ConversationStore(host_a.index.records.engine).add_feedback("browser:x", good, 1, "right")
    monkeypatch.setenv("NEWSRAG_DATABASE_URL", database_url)
    out = tmp_path / "feedback-set"

    assert main(["--data-dir", str(tmp_path / "host-b"), "feedback", "export", str(out)]) == 0

    assert "1 questions, 1 articles" in capsys.readouterr().out
    [question] = [json.loads(line) for line in (out / "questions.jsonl").open()]
    assert (question["question"], question["comment"]) == ("what did Meloni propose?", "right")
    assert question["gold_doc_ids"] == [good.sources[0].article_id]
