"""The newsrag CLI, run in-process through ``main`` and once as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rag.cli import main
from tests.conftest import SEEDS

pytestmark = pytest.mark.slow


def test_ingest_then_ask_prints_a_cited_answer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(tmp_path / "data")
    assert main(["--data-dir", data, "ingest", str(SEEDS)]) == 0
    assert "added 1, updated 0, skipped 0, deleted 0, failed 0" in capsys.readouterr().out
    assert main(["--data-dir", data, "ingest", str(SEEDS)]) == 0
    assert "added 0, updated 0, skipped 1" in capsys.readouterr().out
    assert main(["--data-dir", data, "ask", "what did Meloni propose?"]) == 0
    out = capsys.readouterr().out
    assert "Article 5" in out and "[1]" in out
    assert "[1] Italian PM proposes extending NATO's Article 5" in out


def test_check_finds_cached_vectors_an_older_version_left_and_repair_releases_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Versions before 2026-12-08 never deleted a cached vector: a library they wrote
    keeps the vectors of every edited or deleted article. `check` says so (nothing is
    lost, so it passes), `check --repair` deletes them and keeps every stored chunk's."""
    import sqlite3

    import numpy as np

    from rag.layout import encode_vector

    data = tmp_path / "data"
    assert main(["--data-dir", str(data), "ingest", str(SEEDS)]) == 0
    database = next(data.glob("*.sqlite3"))
    with sqlite3.connect(database) as con:  # as an older version left them
        con.executemany(
            "INSERT INTO embedding_cache (key, vector) VALUES (?, ?)",
            [(f"old-{n}", encode_vector(np.ones(384, dtype=np.float32))) for n in range(7)],
        )
    capsys.readouterr()
    assert main(["--data-dir", str(data), "check"]) == 0
    out = capsys.readouterr().out
    assert "found: 7 cached vectors of no stored chunk (disk space only)" in out
    assert "newsrag check --repair" in out
    assert main(["--data-dir", str(data), "check", "--repair"]) == 0
    assert "released: 7 cached vectors of no stored chunk" in capsys.readouterr().out
    with sqlite3.connect(database) as con:
        keys = {k for (k,) in con.execute("SELECT key FROM embedding_cache")}
        named = {k for (k,) in con.execute("SELECT embedding_key FROM chunks")}
    assert keys == named and len(keys) >= 1
    assert main(["--data-dir", str(data), "ask", "what did Meloni propose?"]) == 0
    assert "Article 5" in capsys.readouterr().out


def test_ask_as_json_has_the_answer_and_its_sources(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(tmp_path / "data")
    main(["--data-dir", data, "ingest", str(SEEDS)])
    capsys.readouterr()
    assert main(["--data-dir", data, "ask", "--json", "who won the 2022 World Cup?"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["found"] is False
    assert "not found in the ingested articles" in payload["text"].lower()


def test_usage_errors_exit_with_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["ask"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["ask", "q", "--as-of", "yesterday"])
    assert exc.value.code == 2
    assert main(["--data-dir", str(tmp_path), "ingest", str(tmp_path / "nope")]) == 2
    assert "no such file" in capsys.readouterr().err
    main(["--data-dir", str(tmp_path / "d"), "ingest", str(SEEDS)])
    assert main(["--data-dir", str(tmp_path / "d"), "ask", "   "]) == 2


def test_failures_exit_with_1_and_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--data-dir", str(tmp_path / "empty"), "ask", "anything?"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "index is empty" in err
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\x00\x00binary")
    assert main(["--data-dir", str(tmp_path / "d"), "ingest", str(bad)]) == 1
    assert "binary" in capsys.readouterr().out


def test_an_invalid_setting_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NEWSRAG_TOP_K", "zero")
    with pytest.raises(SystemExit) as exc:
        main(["stats"])
    assert exc.value.code == 2
    assert "top_k" in capsys.readouterr().err


def test_the_console_script_runs_as_a_fresh_process(tmp_path: Path) -> None:
    env_data = tmp_path / "data"
    cmd = [sys.executable, "-m", "rag.cli", "--data-dir", str(env_data)]
    done = subprocess.run([*cmd, "ingest", str(SEEDS)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    done = subprocess.run(
        [*cmd, "ask", "what did Meloni propose?"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "Article 5" in done.stdout
    assert "Traceback" not in done.stderr
    stats = subprocess.run([*cmd, "stats"], capture_output=True, text=True, timeout=300)
    assert "articles: 1" in stats.stdout


def test_ask_shows_what_it_searched_for_a_long_question(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(tmp_path / "data")
    main(["--data-dir", data, "ingest", str(SEEDS)])
    question = "Hello! " + "I have been reading a lot about Europe lately. " * 8
    question += "So, my question: what did Meloni propose for Ukraine?"
    capsys.readouterr()
    assert main(["--data-dir", data, "ask", "--json", question]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["search_query"] == "Europe what did Meloni propose for Ukraine?"
    assert payload["found"] is True
    assert main(["--data-dir", data, "ask", question]) == 0
    assert "(searched for: Europe what did Meloni propose for Ukraine?)" in capsys.readouterr().out
