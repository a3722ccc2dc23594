"""Exposure is never silent: no open chat beyond loopback by accident, nothing of the
library before login, failed logins throttled per client.

The server tests launch the real chat (Gradio, real MiniLM and Chroma) on 127.0.0.1 and
talk to it over real HTTP.
"""

from __future__ import annotations

import http.client
import json
import logging
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

import app
from rag.assistant import Assistant
from rag.cli import main
from rag.components import build_index
from rag.embeddings import LocalEmbeddings
from rag.errors import ConfigError
from rag.settings import Settings
from tests.conftest import make_settings, serve_chat

USER, PASSWORD = "editor", "correct horse battery"
SECRET_TITLE = "Intranet memo on the Vennby merger"
SECRET_URL = "https://intranet.example.com/memos/vennby-merger-7731"


# -- binding -------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "newsrag.example.com"])
def test_binding_beyond_loopback_without_login_is_refused(tmp_path: Path, host: str) -> None:
    settings = make_settings(tmp_path / "data", host=host)
    with pytest.raises(ConfigError, match="NEWSRAG_ALLOW_OPEN=true"):
        settings.check_exposure()
    # launch() refuses before any work: no index is opened or created.
    with pytest.raises(ConfigError, match=f"refusing to serve the chat on {host} without login"):
        app.launch(settings, open_browser=False)
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.5"])
def test_loopback_needs_neither_login_nor_permission(tmp_path: Path, host: str) -> None:
    assert make_settings(tmp_path / "data", host=host).check_exposure() is None


def test_login_or_allow_open_lets_the_chat_bind_beyond_loopback(tmp_path: Path) -> None:
    with_login = make_settings(
        tmp_path / "data", host="0.0.0.0", auth_username=USER, auth_password=PASSWORD
    )
    assert with_login.check_exposure() is None
    open_anyway = make_settings(tmp_path / "data", host="0.0.0.0", allow_open=True)
    warning = open_anyway.check_exposure()
    assert warning is not None and "WITHOUT login" in warning


def test_allow_open_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSRAG_HOST", "0.0.0.0")
    monkeypatch.setenv("NEWSRAG_ALLOW_OPEN", "true")
    assert "WITHOUT login" in str(Settings(_env_file=None).check_exposure())  # type: ignore[call-arg]


def test_the_cli_refuses_an_open_bind_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["--data-dir", str(tmp_path / "data"), "serve", "--host", "0.0.0.0", "--no-browser"]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("newsrag: error: refusing to serve the chat on 0.0.0.0 without login")
    assert err.count("\n") == 1 and "Traceback" not in err


# -- a real chat with login ------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path, embeddings: LocalEmbeddings) -> Iterator[tuple[int, Assistant]]:
    """The chat with login on 127.0.0.1, its library holding one article with a URL."""
    settings = make_settings(tmp_path / "data", auth_username=USER, auth_password=PASSWORD)
    assistant = Assistant(settings, build_index(settings, embeddings), embeddings)
    report = assistant.add_text(
        SECRET_TITLE, "The board approved the merger on Tuesday.", source=SECRET_URL
    )
    assert len(report.added) == 1
    with serve_chat(settings, assistant, tmp_path / "uploads") as url:
        yield int(urllib.parse.urlsplit(url).port or 0), assistant


def request(
    port: int,
    method: str,
    path: str,
    *,
    form: dict[str, str] | None = None,
    cookie: str | None = None,
    source: str = "127.0.0.1",
) -> tuple[int, dict[str, str], str]:
    """One HTTP request from the client address ``source``; (status, headers, body)."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=30, source_address=(source, 0)
    )
    headers = {"Cookie": cookie} if cookie else {}
    body = None
    if form is not None:
        body = urllib.parse.urlencode(form)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        connection.close()


def login(port: int, password: str, source: str = "127.0.0.1") -> tuple[int, dict[str, str]]:
    status, headers, _ = request(
        port, "POST", "/login", form={"username": USER, "password": password}, source=source
    )
    return status, headers


@pytest.mark.slow
def test_the_login_page_shows_nothing_of_the_library(
    served: tuple[int, Assistant],
) -> None:
    port, assistant = served
    (record,) = assistant.articles()
    secrets = [SECRET_TITLE, SECRET_URL, "intranet.example.com", record.article_id]

    status, _, page = request(port, "GET", "/")

    assert status == 200 and "auth_required" in page  # the login page
    assert "gradio_api_info" in page  # Gradio embeds the API description here...
    assert [s for s in secrets if s in page] == []  # ...but nothing of the library
    for path in ("/config", "/gradio_api/info"):
        status, _, body = request(port, "GET", path)
        assert status == 401 and not [s for s in secrets if s in body]

    status, headers = login(port, PASSWORD)
    assert status == 200
    cookie = "; ".join(
        part.split(";")[0] for key, part in headers.items() if key.lower() == "set-cookie"
    )
    status, _, config = request(port, "GET", "/config", cookie=cookie)
    assert status == 200 and json.loads(config)["components"]


@pytest.mark.slow
def test_failed_logins_are_throttled_per_client(
    served: tuple[int, Assistant], caplog: pytest.LogCaptureFixture
) -> None:
    port, _ = served
    caplog.set_level(logging.WARNING, logger="app")

    statuses = [login(port, f"guess {n}")[0] for n in range(5)]
    refused, headers = login(port, PASSWORD)  # the right password, too late

    assert statuses == [400] * 5
    assert refused == 429
    assert 290 <= int(headers["retry-after"]) <= 300
    assert "5 failed logins from 127.0.0.1" in caplog.text
    # Another client address is not locked out by this one.
    assert login(port, PASSWORD, source="127.0.0.2")[0] == 200
    assert login(port, "wrong", source="127.0.0.2")[0] == 400


@pytest.mark.slow
def test_a_successful_login_clears_earlier_failures(served: tuple[int, Assistant]) -> None:
    port, _ = served
    assert [login(port, "wrong")[0] for _ in range(4)] == [400] * 4
    assert login(port, PASSWORD)[0] == 200
    assert [login(port, "wrong")[0] for _ in range(4)] == [400] * 4
    assert login(port, PASSWORD)[0] == 200
