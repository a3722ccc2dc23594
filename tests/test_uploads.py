"""Uploads never replace each other, and rejected ones leave no file behind.

Every test goes through the chat's real upload handler (``ChatApp.upload``: save, ingest
with the real MiniLM and Chroma, clean up), with the uploads placed where Gradio puts
them: ``<gradio temp dir>/<random dir>/<original name>``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

import pytest

import app
from rag.assistant import Assistant
from tests.conftest import make_settings

# Real MiniLM and Chroma.
pytestmark = pytest.mark.slow

# Pairs of names the chat used to store under one name (issue 11, part 2).
LONG = "Quarterly harbour authority report on dredging, tariffs and the new ferry terminal"
NAME_PAIRS = [
    ("🔥.txt", "💧.txt"),
    (f"{LONG[:80]} {'x' * 8} part 1.txt", f"{LONG[:80]} {'x' * 8} part 2.txt"),
    ("ＡＢＣ／..／x.txt", "x.TXT"),
]
STORIES = [
    (
        "Oslund fire brigade buys ladders",
        "The fire brigade of Oslund bought 14 red ladders in March for its new station.",
        "How many red ladders did the Oslund fire brigade buy?",
        "14 red ladders",
    ),
    (
        "Vennby water board repairs pipes",
        "The Vennby water board replaced 230 metres of cracked pipes under the market square.",
        "How many metres of pipes did the Vennby water board replace?",
        "230 metres",
    ),
]


def gradio_copy(temp_dir: Path, name: str, text: str) -> Path:
    """A file as Gradio hands it to the handler: its original name in a random dir."""
    folder = temp_dir / secrets.token_hex(8)
    folder.mkdir(parents=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def chat(assistant: Assistant, tmp_path: Path) -> app.ChatApp:
    return app.ChatApp(assistant, tmp_path / "data" / "uploads", temp_dir=tmp_path / "gradio")


def _shown(markdown: str) -> str:
    return markdown.replace("\\", "")


@pytest.mark.parametrize(("first", "second"), NAME_PAIRS, ids=["emoji", "long", "fullwidth"])
def test_two_names_that_sanitize_alike_are_two_articles(
    chat: app.ChatApp, tmp_path: Path, first: str, second: str
) -> None:
    for name, (title, body, _, _) in zip((first, second), STORIES, strict=True):
        path = gradio_copy(tmp_path / "gradio", name, f"{title}\n\n{body}")
        report, *_ = chat.upload([str(path)])
        assert "added 1, updated 0" in _shown(report), report

    titles = sorted(r.title for r in chat.assistant.articles())
    assert titles == sorted(story[0] for story in STORIES)
    for title, _, question, fact in STORIES:
        answer = chat.assistant.ask(question)
        assert fact in answer.text
        assert answer.sources[0].title == title
    # Both files are kept, each under its readable name in its own directory.
    stored = sorted(p for p in chat.upload_dir.rglob("*") if p.is_file())
    assert len(stored) == 2 and stored[0].parent != stored[1].parent
    assert {p.name for p in stored} == {app.safe_upload_name(first), app.safe_upload_name(second)}


def test_reuploading_the_same_name_updates_its_article(chat: app.ChatApp, tmp_path: Path) -> None:
    title, body, question, _ = STORIES[0]
    first = gradio_copy(tmp_path / "gradio", "🔥.txt", f"{title}\n\n{body}")
    chat.upload([str(first)])
    changed = body.replace("14 red ladders", "9 yellow ladders")
    second = gradio_copy(tmp_path / "gradio", "🔥.txt", f"{title}\n\n{changed}")

    report, *_ = chat.upload([str(second)])

    assert "added 0, updated 1" in _shown(report)
    assert [r.title for r in chat.assistant.articles()] == [title]
    assert "9 yellow ladders" in chat.assistant.ask(question).text


def test_rejected_uploads_are_deleted_from_the_upload_dir_and_gradios_temp_dir(
    tmp_path: Path, assistant_factory: Callable[..., Assistant]
) -> None:
    settings = make_settings(tmp_path / "data", max_article_chars=1000)
    chat = app.ChatApp(assistant_factory(settings), tmp_path / "uploads", tmp_path / "gradio")
    temp = tmp_path / "gradio"
    good = gradio_copy(temp, "good.txt", f"{STORIES[0][0]}\n\n{STORIES[0][1]}")
    too_long = gradio_copy(temp, "log.txt", "Server log\n\n" + "disk ok. " * 500)
    corrupt = gradio_copy(temp, "broken.pdf", "%PDF-1.4 not really a PDF")
    unsupported = gradio_copy(temp, "tool.exe", "MZ")
    outside = tmp_path / "mine.txt"  # not Gradio's: never deleted
    outside.write_text(f"{STORIES[1][0]}\n\n{STORIES[1][1]}", encoding="utf-8")

    report, *_ = chat.upload([str(p) for p in (good, too_long, corrupt, unsupported, outside)])

    shown = _shown(report)
    assert "added 2" in shown and "failed 2" in shown
    assert "article too long" in shown and "corrupt PDF" in shown
    assert "tool.exe: unsupported file type" in shown
    kept = sorted(p.name for p in (tmp_path / "uploads").rglob("*") if p.is_file())
    assert kept == ["good.txt", "mine.txt"]
    assert list(temp.iterdir()) == []  # every Gradio copy and its directory is gone
    assert outside.exists()
