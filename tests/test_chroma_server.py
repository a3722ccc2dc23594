"""Client/server mode against a real `chroma run` started by the fixture."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rag.assistant import Assistant
from rag.errors import StoreUnavailableError
from tests.conftest import SEEDS, ChromaServer, make_settings

pytestmark = pytest.mark.slow


def _server_settings(tmp_path: Path, server: ChromaServer):  # type: ignore[no-untyped-def]
    return make_settings(tmp_path / "client", chroma_host="127.0.0.1", chroma_port=server.port)


def test_ingest_and_ask_through_a_chroma_server(
    tmp_path: Path, chroma_server: ChromaServer, assistant_factory: Callable[..., Assistant]
) -> None:
    assistant = assistant_factory(_server_settings(tmp_path, chroma_server))
    report = assistant.ingest([SEEDS])
    assert len(report.added) == 1
    assert assistant.index.writer.vector_count() == assistant.stats().chunks
    assert not (tmp_path / "client" / "chroma").exists(), "vectors live on the server"
    answer = assistant.ask("what did Meloni propose?")
    assert "Article 5" in answer.text and answer.sources
    again = assistant.ingest([SEEDS])
    assert len(again.skipped) == 1
    assert assistant.index.writer.vector_count() == assistant.stats().chunks


def test_a_stopped_server_gives_a_clear_error_and_work_resumes_after_restart(
    tmp_path: Path, chroma_server: ChromaServer, assistant_factory: Callable[..., Assistant]
) -> None:
    assistant = assistant_factory(_server_settings(tmp_path, chroma_server))
    assistant.ingest([SEEDS])
    chroma_server.stop()
    with pytest.raises(StoreUnavailableError, match="unreachable"):
        assistant.ask("what did Meloni propose?")
    chroma_server.start()
    answer = assistant.ask("what did Meloni propose?")
    assert "Article 5" in answer.text
