"""Hostile input is bounded: PDFs and HTML by pages, size and time, questions by length.

The hostile files are built here (raw PDF bytes, generated HTML) and go through the real
ingest (real MiniLM, real Chroma) next to good files, which must still land.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from pydantic import Field

import app
from ingest.loaders import LoadLimits, load_file
from rag.assistant import Assistant
from rag.errors import QuestionError
from tests.conftest import SEEDS, make_settings

# Real MiniLM and Chroma (the PDF, HTML and question checks around them are quick).
pytestmark = pytest.mark.slow

GOOD_TEXT = (
    "Oslund fire brigade buys ladders\n\n"
    "The fire brigade of Oslund bought 14 red ladders in March for its new station."
)


def pdf_bytes(streams: list[bytes], pages: list[int]) -> bytes:
    """A PDF written by hand: Flate-compressed content ``streams``, page i showing
    ``streams[pages[i]]``. One stream on many pages is the hostile case of issue 11."""
    font = 3
    first_stream = 4
    first_page = first_stream + len(streams)
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    kids = " ".join(f"{first_page + i} 0 R" for i in range(len(pages)))
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for content in streams:
        packed = zlib.compress(content, 9)
        objects.append(
            b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(packed), packed)
        )
    for stream in pages:
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            + f"/Contents {first_stream + stream} 0 R ".encode()
            + f"/Resources << /Font << /F1 {font} 0 R >> >> >>".encode()
        )
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\n" % (len(objects) + 1)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def text_content(lines: list[str]) -> bytes:
    shows = " 0 -16 Td ".join(f"({line}) Tj" for line in lines)
    return f"BT /F1 12 Tf 72 720 Td {shows} ET".encode()


def heavy_content(operators: int) -> bytes:
    """A content stream of ``operators`` text operators (27 bytes each), compressing ~400:1."""
    return b"BT /F1 12 Tf 72 720 Td " + b"(spam and eggs) Tj 0 -1 Td " * operators + b"ET"


def _reason(report_failed: tuple[Any, ...], name: str) -> str:
    return next(f.reason for f in report_failed if Path(f.path).name == name)


def test_a_pdf_reusing_one_big_stream_on_every_page_is_rejected_at_once_and_the_batch_lands(
    tmp_path: Path, assistant: Assistant
) -> None:
    # 60 pages showing one 1 MB stream (10 KB on disk): 65 MB to parse. Before the limits,
    # pypdf spent seconds on each page and the file failed only at the end.
    batch = tmp_path / "batch"
    batch.mkdir()
    hostile = batch / "hostile.pdf"
    hostile.write_bytes(pdf_bytes([heavy_content(40_000)], [0] * 60))
    (batch / "good.txt").write_text(GOOD_TEXT, encoding="utf-8")
    (batch / "good.pdf").write_bytes(
        pdf_bytes([text_content(["Vennby water board", "It replaced 230 metres of pipes."])], [0])
    )
    assert hostile.stat().st_size < 20_000

    started = time.monotonic()
    report = assistant.ingest([batch])
    seconds = time.monotonic() - started

    assert _reason(report.failed, "hostile.pdf").startswith(
        "PDF content too large after decompression (over 10.0 MB by page 10 of 60)"
    )
    assert sorted(a.title for a in report.added) == [
        "Oslund fire brigade buys ladders",
        "Vennby water board",
    ]
    assert seconds < 15, f"the batch took {seconds:.1f} s"
    assert "230 metres" in assistant.ask("How many metres of pipes did Vennby replace?").text


def test_a_slow_pdf_under_the_size_limits_is_stopped_by_the_time_limit(
    tmp_path: Path, assistant_factory: Callable[..., Assistant]
) -> None:
    assistant = assistant_factory(make_settings(tmp_path / "data", load_max_seconds=1))
    slow = tmp_path / "slow.pdf"
    # 8 pages of 1 MB each: under the 10 MB and 2 MB-a-page limits, several s a page.
    slow.write_bytes(pdf_bytes([heavy_content(40_000)], [0] * 8))

    started = time.monotonic()
    report = assistant.ingest([slow])
    seconds = time.monotonic() - started

    reason = _reason(report.failed, "slow.pdf")
    assert reason.startswith("took longer than 1 s to read (page 1 of 8)")
    assert "NEWSRAG_LOAD_MAX_SECONDS" in reason
    assert seconds < 5, f"stopped after {seconds:.1f} s"


def test_a_pdf_with_too_many_pages_is_rejected_before_any_page_is_read(tmp_path: Path) -> None:
    path = tmp_path / "long.pdf"
    path.write_bytes(pdf_bytes([text_content(["A page."])], [0] * 6))

    loaded = load_file(path, limits=LoadLimits(pdf_max_pages=5))

    assert [f.reason for f in loaded.failures] == [
        "PDF has too many pages (6 > 5); the limit is NEWSRAG_PDF_MAX_PAGES"
    ]
    assert load_file(path, limits=LoadLimits(pdf_max_pages=6)).articles


def test_a_page_too_big_to_parse_is_skipped_and_the_others_are_read(tmp_path: Path) -> None:
    path = tmp_path / "mixed.pdf"
    streams = [text_content(["Harbor news", "The ferry runs again."]), heavy_content(80_000)]
    path.write_bytes(pdf_bytes(streams, [0, 1]))

    started = time.monotonic()
    loaded = load_file(path, limits=LoadLimits(max_seconds=10, pdf_max_content_bytes=10**7))

    assert time.monotonic() - started < 2
    assert [a.text for a in loaded.articles] == ["The ferry runs again."]
    assert loaded.warnings == [
        f"{path}: text of 1 of 2 pages could not be extracted (1 with over 2.0 MB of content)"
    ]


def test_html_of_millions_of_tags_is_stopped_by_the_time_limit_and_the_batch_lands(
    tmp_path: Path, assistant_factory: Callable[..., Assistant]
) -> None:
    # 2 million unclosed tags in 6 MB: BeautifulSoup spent 77 s on it before the limit.
    assistant = assistant_factory(make_settings(tmp_path / "data", load_max_seconds=1))
    batch = tmp_path / "batch"
    batch.mkdir()
    (batch / "tags.html").write_text("<html><body>" + "<b>" * 2_000_000, encoding="utf-8")
    (batch / "good.txt").write_text(GOOD_TEXT, encoding="utf-8")

    started = time.monotonic()
    report = assistant.ingest([batch])
    seconds = time.monotonic() - started

    assert _reason(report.failed, "tags.html").startswith(
        "took longer than 1 s to read (parsing HTML"
    )
    assert [a.title for a in report.added] == ["Oslund fire brigade buys ladders"]
    assert seconds < 8, f"the batch took {seconds:.1f} s"


def test_a_huge_markdown_file_is_stopped_by_the_time_limit(tmp_path: Path) -> None:
    # 49 MB of Markdown lines: 16 s of inline-syntax stripping before the limit.
    path = tmp_path / "big.md"
    path.write_text("# Log\n\n" + "Some *text* with [a link](http://x).\n" * 1_300_000)

    started = time.monotonic()
    loaded = load_file(path, limits=LoadLimits(max_seconds=1))

    assert time.monotonic() - started < 4
    assert [f.reason.split(" (")[0] for f in loaded.failures] == ["took longer than 1 s to read"]


def test_the_load_limits_come_from_the_settings(assistant: Assistant) -> None:
    limits = assistant.ingestor().limits
    settings = assistant.settings
    assert limits == LoadLimits(
        max_seconds=settings.load_max_seconds,
        pdf_max_pages=settings.pdf_max_pages,
        pdf_max_content_bytes=int(settings.pdf_max_content_mb * 1_000_000),
    )
    assert (settings.load_max_seconds, settings.pdf_max_pages, settings.pdf_max_content_mb) == (
        10.0,
        500,
        10.0,
    )


# -- questions -------------------------------------------------------------------------


@pytest.fixture
def no_search(seeded: Assistant, monkeypatch: pytest.MonkeyPatch) -> Assistant:
    """The seeded assistant, failing the test if a search is started."""

    def search(*_: Any, **__: Any) -> Any:
        raise AssertionError("a refused question must not be searched")

    monkeypatch.setattr(seeded.searcher, "search", search)
    return seeded


@pytest.mark.parametrize("length", [2001, 100_000, 5_000_000])
def test_a_question_over_the_cap_is_refused_before_any_work(
    no_search: Assistant, length: int
) -> None:
    question = ("Meloni " * (length // 7 + 1))[:length]
    started = time.monotonic()
    with pytest.raises(QuestionError) as error:
        no_search.ask(question)
    assert time.monotonic() - started < 0.5
    assert str(error.value) == (
        f"the question is too long ({len(question.strip()):,} characters; at most 2,000): "
        "ask about one thing at a time"
    )


def test_the_question_cap_is_a_setting(
    tmp_path: Path, assistant_factory: Callable[..., Assistant]
) -> None:
    assistant = assistant_factory(make_settings(tmp_path / "data", max_question_chars=100))
    assistant.ingest([SEEDS])
    with pytest.raises(QuestionError, match="at most 100"):
        assistant.ask("what did Meloni propose? " * 5)
    assert assistant.ask("what did Meloni propose?").sources


def test_the_chat_refuses_a_huge_question_inline_without_echoing_it(
    no_search: Assistant, tmp_path: Path
) -> None:
    chat = app.ChatApp(no_search, tmp_path / "uploads")
    question = "what did Meloni propose? " * 200_000  # 5 MB

    *_, (history, turns, _, box) = chat.respond(question, [], [])

    assert [m["role"] for m in history] == ["user", "assistant"]
    assert len(history[0]["content"]) < 400
    assert "5,000,000 characters" in history[0]["content"].replace("\\", "")
    assert "the question is too long" in history[1]["content"]
    assert len(turns) == 1 and len(turns[0].question) < 400
    assert box == ""
    # The next, normal question is answered as usual.
    *_, (history, turns, _, _) = chat.respond("what did Meloni propose?", history, turns)
    assert len(turns) == 2


class RecordingChatModel(GenericFakeChatModel):
    """The fake LLM, keeping the prompts it was sent."""

    prompts: list[str] = Field(default_factory=list)

    def _stream(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Iterator[Any]:
        self.prompts.append(str(messages[-1].content))
        yield from super()._stream(messages, *args, **kwargs)


def test_a_follow_up_carries_only_a_few_capped_turns(
    tmp_path: Path, assistant_factory: Callable[..., Assistant], monkeypatch: pytest.MonkeyPatch
) -> None:
    # With an LLM, it first writes the follow-up's standalone question, then answers.
    model = RecordingChatModel(
        messages=iter(
            [
                AIMessage(content="What did Meloni say about Ukraine?"),
                AIMessage(content="She proposed it [1]."),
            ]
        )
    )
    settings = make_settings(tmp_path / "data", llm_provider="openai", llm_model="fake")
    assistant = assistant_factory(settings, model)
    assistant.ingest([SEEDS])
    queries: list[str] = []
    search = assistant.searcher.search

    def recording_search(query: str, *args: Any, **kwargs: Any) -> Any:
        queries.append(query)
        return search(query, *args, **kwargs)

    monkeypatch.setattr(assistant.searcher, "search", recording_search)
    # Ten earlier turns of 1 MB each, as a hostile API client could send them.
    history = [(f"turn{i} " + "Meloni " * 150_000, f"answer{i} " * 150_000) for i in range(10)]

    answer = assistant.ask("and what did she say?", history=history)

    assert answer.text
    assert queries == ["What did Meloni say about Ukraine?"]
    prompt = model.prompts[-1]  # the answer's (the rewrite's history is cut shorter still)
    assert [f"turn{i} " in prompt for i in range(10)] == [False] * 7 + [True] * 3
    assert len(prompt) < 3 * 2 * 2000 + 20_000  # three capped turns plus the sources
