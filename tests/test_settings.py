from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from rag.settings import Settings
from tests.conftest import ROOT


def test_env_example_documents_every_setting() -> None:
    example = (ROOT / ".env.example").read_text()
    for name in Settings.model_fields:
        assert f"NEWSRAG_{name.upper()}=" in example, name


def test_short_names_for_llm_and_chroma_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_PROVIDER", "ollama")
    monkeypatch.setenv("LLM_MODEL", "llama3.1")
    monkeypatch.setenv("CHROMA_HOST", "127.0.0.1")
    monkeypatch.setenv("CHROMA_PORT", "8123")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (s.llm_provider, s.llm_model) == ("ollama", "llama3.1")
    assert (s.chroma_host, s.chroma_port) == ("127.0.0.1", 8123)
    assert s.answer_mode_resolved == "llm"


def test_settings_are_read_from_a_dotenv_file(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("NEWSRAG_TOP_K=7\nNEWSRAG_DATA_DIR=/tmp/elsewhere\n")
    s = Settings(_env_file=env)  # type: ignore[call-arg]
    assert s.top_k == 7
    assert s.data_dir == Path("/tmp/elsewhere")


def test_defaults_are_offline_local_and_extractive() -> None:
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.host == "127.0.0.1"
    assert s.answer_mode_resolved == "extractive"
    assert s.chroma_host is None and not s.chroma_telemetry and not s.gradio_analytics


def test_privacy_defaults_are_exported_but_user_values_win(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key in ("HF_HUB_OFFLINE", "GRADIO_ANALYTICS_ENABLED", "ANONYMIZED_TELEMETRY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "True")
    Settings(_env_file=None).apply_privacy_defaults()  # type: ignore[call-arg]
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["ANONYMIZED_TELEMETRY"] == "False"
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "True"


def test_inconsistent_settings_are_rejected_with_the_field_named() -> None:
    with pytest.raises(ValidationError, match="chunk_overlap_tokens"):
        Settings(_env_file=None, chunk_tokens=100, chunk_overlap_tokens=100)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="LLM_PROVIDER"):
        Settings(_env_file=None, answer_mode="llm")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="auth_password"):
        Settings(_env_file=None, auth_username="me")  # type: ignore[call-arg]
    for name in ("p", "-news", "my news"):
        with pytest.raises(ValidationError, match="collection"):
            Settings(_env_file=None, collection=name)  # type: ignore[call-arg]
