"""The first run prepares the bundled model: one plain line, no third-party warnings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, SEEDS


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
