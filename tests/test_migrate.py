"""`newsrag migrate`: an embedded library moved to Postgres and a Chroma server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rag.assistant import Assistant
from rag.cli import main
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
    bm25_before = seeded.index.lexical_search("Meloni NATO Ukraine", 10, Filters())
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
    assert sorted(moved.index.chroma_ids()) == sorted(seeded.index.chunk_ids_of())
    bm25_after = moved.index.lexical_search("Meloni NATO Ukraine", 10, Filters())
    assert [c for c, _ in bm25_after] == [c for c, _ in bm25_before] != []
    assert [s for _, s in bm25_after] == pytest.approx([s for _, s in bm25_before])
    after = moved.ask(question)
    assert after.text == before.text and "Article 5" in after.text
    assert [s.chunk_id for s in after.sources] == [s.chunk_id for s in before.sources]
    assert not (tmp_path / "elsewhere" / "news.sqlite3").exists()

    # A re-ingest through the new library finds everything already there (cache included).
    report = moved.ingest([seeded.settings.seeds_dir])
    assert len(report.skipped) == 1 and report.chunks_embedded == 0

    assert main(argv) == 1, "a target that holds a library is not overwritten silently"
    assert "already holds a library" in capsys.readouterr().err
