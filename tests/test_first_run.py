"""The first run prepares the bundled model and ingests seeds/: plain lines, no warnings."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rag.embeddings import LocalEmbeddings
from tests.conftest import ROOT, SEEDS, free_port, wait_for_http


@pytest.mark.slow
def test_the_first_run_says_in_one_plain_line_that_it_prepares_the_model(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "NEWSRAG_MODEL_CACHE_DIR": str(tmp_path / "fresh-models"),  # nothing prepared yet
        "PYTHONPATH": str(ROOT),
    }
    command = [sys.executable, "-m", "rag.cli", "--data-dir", str(tmp_path / "data")]

    first = subprocess.run(
        [*command, "ingest", str(SEEDS)], env=env, capture_output=True, text=True, timeout=600
    )

    assert first.returncode == 0, first.stderr
    lines = [line for line in first.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("newsrag: Preparing the bundled embedding model"), lines
    assert "once" in lines[0]
    assert "WARNING" not in first.stderr and "pre-processing" not in first.stderr
    again = subprocess.run(
        [*command, "ask", "what did Meloni propose?"], env=env, capture_output=True, text=True
    )
    assert again.returncode == 0 and again.stderr == "", "prepared once: silent afterwards"


@pytest.mark.slow
def test_the_first_serve_says_in_a_plain_line_that_it_added_seeds_and_warns_of_nothing(
    tmp_path: Path, embeddings: LocalEmbeddings
) -> None:
    # ``embeddings`` has prepared the model in the session's cache, which the server shares.
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NEWSRAG_SEEDS_DIR": str(SEEDS)}
    command = [sys.executable, "-m", "rag.cli", "--data-dir", str(tmp_path / "empty")]
    server = subprocess.Popen(
        [*command, "serve", "--no-browser", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/", timeout=120)
    finally:
        server.terminate()
        try:
            output, _ = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            output, _ = server.communicate()

    lines = output.splitlines()
    assert not [line for line in lines if "WARNING" in line], output
    plain = [line for line in lines if line.startswith("newsrag: ")]
    first_run = re.compile(
        r"newsrag: First run: the library was empty, so it now holds the 1 article of "
        rf"{re.escape(str(SEEDS))} \(4 chunks, \d+\.\d s\)\."
    )
    assert len(plain) == 1 and first_run.fullmatch(plain[0]), output
    assert "Running on local URL" in output, "the server did start"
