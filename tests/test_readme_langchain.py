"""The README's "Use from LangChain" examples, run as written against a tmp data dir."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

SECTION = "## Use from LangChain"


def _python_blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index(SECTION)
    end = readme.find("\n## ", start + len(SECTION))
    section = readme[start : end if end != -1 else None]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_the_readme_has_langchain_examples_for_each_part() -> None:
    code = "\n".join(_python_blocks())
    for call in ("add_documents", "as_retriever", "as_answerer", "LLMAnswerer", "aask",
                 "astream", "DeterministicFakeEmbedding"):  # fmt: skip
        assert call in code, call


@pytest.mark.slow
def test_the_readme_langchain_examples_run_and_print_what_they_say(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The autouse fixture already made tmp_path the working directory; the examples'
    # Settings() read NEWSRAG_DATA_DIR from the environment like a user's shell.
    monkeypatch.setenv("NEWSRAG_DATA_DIR", str(tmp_path / "data"))
    namespace: dict[str, object] = {"__name__": "readme"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for block in _python_blocks():
            exec(compile(block, "README.md", "exec"), namespace)  # our own README
    printed = out.getvalue().splitlines()
    deal, strike = "Deal ends Rotterdam port strike", "Dock workers in Rotterdam began"
    assert printed[0].startswith("added 2, updated 0, skipped 0, deleted 0, failed 0")
    assert printed[1].startswith("added 0, updated 0, skipped 2, deleted 0, failed 0")
    assert printed[2].startswith(f"{deal} 2024-03-06 0 127 ")
    assert printed[3].startswith(strike) and " 2024-03-04 0 68 " in printed[3]
    assert printed[4] == "1"
    assert "6% pay rise over two years, the union said. [2]" in printed[5]
    assert printed[5].endswith(f"'{deal}']")
    assert printed[6] == "Workers get a 6% pay rise [1]."
    assert "6% pay rise over two years" in printed[7]
    assert printed[8].startswith(f"True {strike}")
    assert printed[9].startswith("added 2, updated 0, skipped 0, deleted 0, failed 0")
    assert printed[10].startswith(strike) and printed[10].endswith("[1] (2024-03-04)")
    assert len(printed) == 11
    assert (tmp_path / "data-other-model").is_dir()
