"""A full disk during ingest gives one clear line: CLI exit 1, an inline message in the chat.

A real full disk cannot be made safely here (no root mount of a tiny filesystem), so the
failure is produced at the write boundary with the exception the real failure raises:
- SQLite's own SQLITE_FULL, for real, by capping the record database's size with
  ``PRAGMA max_page_count`` (SQLite then fails exactly as on a full disk);
- Chroma's ``InternalError`` and the OS's ``OSError(ENOSPC)``, raised by monkeypatching
  the one write call (Chroma's upsert, the embedding-cache write, the upload copy).
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from chromadb.errors import InternalError
from sqlalchemy import event

import app
import rag.cli
from rag.assistant import Assistant
from rag.cli import main
from rag.errors import DiskFullError, is_disk_full
from tests.conftest import SEEDS

# Real MiniLM and Chroma.
pytestmark = pytest.mark.slow

CHROMA_FULL = (
    "Error executing plan: Internal error: error returned from database: "
    "(code: 13) database or disk is full"
)


def enospc(*_: Any, **__: Any) -> Any:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def chroma_full(*_: Any, **__: Any) -> Any:
    raise InternalError(CHROMA_FULL)


def articles(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"story-{i}.txt").write_text(
            f"Harbor story number {i}\n\n"
            + " ".join(
                f"Ship {i}-{j} docked at pier {j} with {j * 7} containers." for j in range(60)
            ),
            encoding="utf-8",
        )
    return folder


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        InternalError(CHROMA_FULL),
        RuntimeError("Failed to apply logs: IO error: No space left on device (os error 28)"),
    ],
)
def test_the_ways_a_full_disk_shows_are_recognized(error: Exception) -> None:
    assert is_disk_full(error)
    try:
        try:
            raise error
        except Exception as exc:
            raise RuntimeError("cannot rollback - no transaction is active") from exc
    except RuntimeError as wrapped:
        assert is_disk_full(wrapped)
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))


def test_a_full_record_database_stops_ingest_with_one_line_and_the_next_run_adds_all(
    assistant: Assistant, tmp_path: Path
) -> None:
    folder = articles(tmp_path / "batch", 12)
    engine = assistant.index.records.engine
    with engine.connect() as con:
        pages = con.exec_driver_sql("PRAGMA page_count").scalar()
    limit = {"pages": int(pages) + 2}

    # max_page_count holds per connection: every connection of the pool gets it.
    @event.listens_for(engine, "connect")
    def _cap(dbapi_con: Any, _record: Any) -> None:
        dbapi_con.execute(f"PRAGMA max_page_count = {limit['pages']}")  # SQLite's SQLITE_FULL

    engine.dispose()

    with pytest.raises(DiskFullError) as error:
        assistant.ingest([folder])

    message = str(error.value)
    assert message.startswith("no space left on the disk while ingesting (index in ")
    assert message.endswith("free some space, then try again") and "\n" not in message
    assert "database or disk is full" in str(error.value.__cause__) + str(
        error.value.__cause__.__context__ if error.value.__cause__ else ""
    )

    limit["pages"] = 1073741823  # space is back
    engine.dispose()
    report = assistant.ingest([folder])
    assert len(report.added) + len(report.updated) + len(report.skipped) == 12
    assert len(assistant.articles()) == 12
    assert "containers" in assistant.ask("How many containers did ship 3-5 bring?").text


def test_the_cli_reports_a_full_disk_in_one_line_and_exits_1(
    assistant: Assistant,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(rag.cli, "_assistant", lambda settings: assistant)
    monkeypatch.setattr(assistant.index.vectors._get_collection(), "upsert", chroma_full)

    code = main(["ingest", str(SEEDS)])

    captured = capsys.readouterr()
    assert code == 1
    assert captured.err.startswith("newsrag: error: no space left on the disk while ingesting")
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err


@pytest.fixture
def chat(assistant: Assistant, tmp_path: Path) -> app.ChatApp:
    return app.ChatApp(assistant, tmp_path / "uploads", temp_dir=tmp_path / "gradio")


def gradio_copy(temp_dir: Path, name: str, text: str) -> Path:
    folder = temp_dir / secrets.token_hex(8)
    folder.mkdir(parents=True)
    (folder / name).write_text(text, encoding="utf-8")
    return folder / name


def _inline_warning(report: str) -> str:
    (line,) = [line for line in report.splitlines() if line.strip()]
    assert line.startswith("**⚠ ") and line.endswith("**")
    return line.replace("\\", "")


@pytest.mark.parametrize("where", ["embedding cache", "chroma"])
def test_a_full_disk_during_an_upload_is_an_inline_message_in_the_chat(
    chat: app.ChatApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    if where == "chroma":
        monkeypatch.setattr(chat.assistant.index.vectors._get_collection(), "upsert", chroma_full)
    else:
        monkeypatch.setattr(chat.assistant.index.records, "cache_vectors", enospc)
    upload = gradio_copy(tmp_path / "gradio", "story.txt", "Ferry news\n\nThe ferry runs again.")

    report, stats, *_ = chat.upload([str(upload)])

    assert "no space left on the disk while ingesting" in _inline_warning(report)
    assert "article" in stats  # the panel still refreshes
    assert list((tmp_path / "gradio").iterdir()) == []
    kept = [p.name for p in chat.upload_dir.rglob("*") if p.is_file()]
    if where == "chroma":
        # The article was marked unfinished before Chroma failed: its file stays for the
        # next ingest to finish it.
        assert kept == ["story.txt"]
        assert chat.assistant.stats().pending == 1
    else:
        assert kept == []  # nothing of it was recorded: the rejected upload is deleted


def test_a_full_disk_while_saving_an_upload_is_an_inline_message(
    chat: app.ChatApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.shutil, "copyfile", enospc)
    upload = gradio_copy(tmp_path / "gradio", "story.txt", "Ferry news\n\nThe ferry runs again.")

    report, *_ = chat.upload([str(upload)])

    assert "no space left on the disk while saving the upload" in _inline_warning(report)
    assert list((tmp_path / "gradio").iterdir()) == []


def test_a_full_disk_while_pasting_or_deleting_is_an_inline_message(
    chat: app.ChatApp, monkeypatch: pytest.MonkeyPatch, assistant_factory: Callable[..., Any]
) -> None:
    chat.assistant.ingest([SEEDS])
    (record,) = chat.assistant.articles()
    monkeypatch.setattr(chat.assistant.index.records, "cache_vectors", enospc)
    report, *_ = chat.paste("Ferry news", "The ferry runs again.")
    assert "while adding the article" in _inline_warning(report)

    monkeypatch.setattr(chat.assistant.index.vectors._get_collection(), "delete", chroma_full)
    message, kept = chat.delete_keeping(record.article_id)
    assert message.startswith("⚠ ") and "while deleting the article" in message
    assert kept is None  # nothing deleted, nothing to undo
