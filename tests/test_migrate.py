"""`newsrag migrate`: an embedded library moved to Postgres and a Chroma server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ingest.webstate import WebState
from rag.assistant import Assistant
from rag.cli import main
from rag.components import open_library_database
from rag.conversations_store import ConversationStore
from rag.search import LexicalSearch
from rag.store import Filters
from tests.conftest import ChromaServer, make_settings

pytestmark = pytest.mark.slow


def test_an_embedded_library_moved_to_postgres_and_a_chroma_server_answers_the_same(
    seeded: Assistant,
    postgres_url: str,
    chroma_server: ChromaServer,
    assistant_factory: Callable[..., Assistant],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    question = "what did Meloni propose?"
    before = seeded.ask(question)
    saved = ConversationStore(seeded.index.records.engine)
    chat = saved.create("browser:alice", question)
    saved.save_turn("browser:alice", chat.conversation_id, 0, question, before)
    saved.add_feedback("browser:alice", before, 1, "right")
    WebState(seeded.index.records.engine).add_feed("https://news.example/rss", "Courier")
    bm25_before = LexicalSearch.of(seeded.index).search("Meloni NATO Ukraine", 10, Filters())
    argv = [
        "--data-dir",
        str(seeded.settings.data_dir),
        "migrate",
        "--to",
        postgres_url,
        "--chroma-host",
        "127.0.0.1",
        "--chroma-port",
        str(chroma_server.port),
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "articles: 1 rows copied" in out and "done: 1 articles" in out

    moved = assistant_factory(
        make_settings(
            tmp_path / "elsewhere",
            database_url=postgres_url,
            chroma_host="127.0.0.1",
            chroma_port=chroma_server.port,
        )
    )
    assert moved.stats().articles == seeded.stats().articles
    assert moved.stats().chunks == seeded.stats().chunks
    assert sorted(moved.index.writer.vector_ids()) == sorted(seeded.index.records.chunk_ids_of())
    bm25_after = LexicalSearch.of(moved.index).search("Meloni NATO Ukraine", 10, Filters())
    assert [c for c, _ in bm25_after] == [c for c, _ in bm25_before] != []
    assert [s for _, s in bm25_after] == pytest.approx([s for _, s in bm25_before])
    after = moved.ask(question)
    assert after.text == before.text and "Article 5" in after.text
    assert [s.chunk_id for s in after.sources] == [s.chunk_id for s in before.sources]
    assert not (tmp_path / "elsewhere" / "news.sqlite3").exists()
    # The chat's conversations and ratings and the followed feeds came along; new ratings
    # are numbered after the copied ones.
    moved_chats = ConversationStore(moved.index.records.engine)
    turns = moved_chats.turns("browser:alice", chat.conversation_id)
    assert turns is not None and turns[0].answer is not None
    assert turns[0].answer.text == before.text
    assert [r.comment for r in moved_chats.feedback()] == ["right"]
    assert moved_chats.add_feedback("browser:alice", after, -1) == 2
    assert [f.title for f in WebState(moved.index.records.engine).feeds()] == ["Courier"]
    # A process keeping the old data dir (its file holds them too) does not copy them again.
    host = make_settings(seeded.settings.data_dir, database_url=postgres_url)
    assert len(ConversationStore(open_library_database(host).engine).feedback()) == 2

    # A re-ingest through the new library finds everything already there (cache included).
    report = moved.ingest([seeded.settings.seeds_dir])
    assert len(report.skipped) == 1 and report.chunks_embedded == 0

    assert main(argv) == 1, "a target that holds a library is not overwritten silently"
    assert "already holds a library" in capsys.readouterr().err
