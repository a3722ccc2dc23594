"""Tests of ingest.loaders: every file type, every failure reason, and discovery."""

from __future__ import annotations

import importlib.util
import io
import logging
import os
import re
from datetime import date
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter

from ingest.loaders import SUPPORTED_SUFFIXES, Loaded, LoadFailure, discover, load_file
from rag.records import Article, sha1_hex

SEED = Path(__file__).resolve().parents[1] / "seeds" / "meloni-article5-ukraine.txt"


def _write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def _only_article(loaded: Loaded) -> Article:
    assert loaded.failures == []
    assert len(loaded.articles) == 1
    return loaded.articles[0]


def _only_reason(loaded: Loaded) -> str:
    assert loaded.articles == []
    assert len(loaded.failures) == 1
    return loaded.failures[0].reason


def _pdf(pages: list[list[str]], *, encrypt_entry: bytes | None = None) -> bytes:
    """A minimal PDF, written by hand: one Helvetica text line per string, per page."""
    objects: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(len(pages)))
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    font_number = 3 + 2 * len(pages)
    for i, lines in enumerate(pages):
        shows = " 0 -16 Td ".join(f"({line}) Tj" for line in lines)
        stream = f"BT /F1 12 Tf 72 720 Td {shows} ET".encode() if lines else b""
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            + f"/Contents {4 + 2 * i} 0 R ".encode()
            + f"/Resources << /Font << /F1 {font_number} 0 R >> >> >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    extra = (
        b" /Encrypt " + encrypt_entry + b" /ID [<00112233> <00112233>]" if encrypt_entry else b""
    )
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\n" % (len(objects) + 1, extra)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def _rewrite_pdf(
    data: bytes, *, title: str | None = None, passwords: tuple[str, str] | None = None
) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    if title is not None:
        writer.add_metadata({"/Title": title})
    if passwords is not None:
        user, owner = passwords
        writer.encrypt(user, owner_password=owner, algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


# -- plain text ----------------------------------------------------------------------------


def test_the_seed_article_takes_its_headline_as_title_and_the_rest_as_text() -> None:
    article = _only_article(load_file(SEED))

    assert (
        article.title
        == "Italian PM proposes extending NATO's Article 5 security umbrella to Ukraine"
    )
    assert article.text.startswith("Italian Prime Minister Giorgia Meloni")
    assert "security umbrella to Ukraine\n" not in article.text[:100]
    origin = str(SEED.resolve())
    assert article.origin == origin
    assert article.source == origin
    assert article.article_id == sha1_hex("file:" + origin)
    assert article.url is None
    assert article.published is None


def test_front_matter_sets_title_url_source_and_date_and_is_left_out_of_the_text(
    tmp_path: Path,
) -> None:
    path = _write(
        tmp_path / "story.txt",
        "---\n"
        'Title: "Rates rise: what it means"\n'
        "url: https://news.example/rates\n"
        "source: Example News\n"
        "date: 2022-06-17T10:00:00Z\n"
        "---\n"
        "The central bank raised rates.\n",
    )

    article = _only_article(load_file(path))

    assert article.title == "Rates rise: what it means"
    assert article.url == "https://news.example/rates"
    assert article.source == "https://news.example/rates"
    assert article.published == date(2022, 6, 17)
    assert article.text == "The central bank raised rates."


def test_front_matter_source_is_used_when_there_is_no_url(tmp_path: Path) -> None:
    path = _write(tmp_path / "s.txt", "---\nsource: Example News\npublished: 17 June\n---\nBody.")

    article = _only_article(load_file(path))

    assert article.source == "Example News"
    assert article.url is None
    assert article.published is None  # unparsable dates are dropped, not failures
    assert article.title == "S"


def test_a_dashed_line_followed_by_prose_is_text_not_front_matter(tmp_path: Path) -> None:
    path = _write(tmp_path / "rule.txt", "---\nThis is prose, not a key.\n---\nMore prose.\n")

    article = _only_article(load_file(path))

    assert "This is prose, not a key." in article.text
    assert "More prose." in article.text


def test_a_text_starting_with_a_sentence_gets_its_title_from_the_file_name(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path / "central-bank_rates.txt", "Rates rose today.\nMarkets fell.\n")

    article = _only_article(load_file(path))

    assert article.title == "Central bank rates"
    assert article.text == "Rates rose today.\nMarkets fell."


def test_a_short_first_line_followed_by_a_blank_line_is_the_title_even_with_a_period(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path / "a.txt", "\n\nMarkets fell.\n\nThe index lost 3%.\n")

    article = _only_article(load_file(path))

    assert article.title == "Markets fell."
    assert article.text == "The index lost 3%."


def test_a_one_line_file_is_both_title_and_text(tmp_path: Path) -> None:
    path = _write(tmp_path / "note.txt", "Meloni meets Zelensky in Rome\n")

    article = _only_article(load_file(path))

    assert article.title == "Meloni meets Zelensky in Rome"
    assert article.text == "Meloni meets Zelensky in Rome"


def test_windows_line_endings_and_control_characters_are_cleaned(tmp_path: Path) -> None:
    path = _write(tmp_path / "crlf.txt", b"Headline\r\n\r\nOne\x07 line.\r\nTwo\tlines.\x1b\r\n")

    article = _only_article(load_file(path))

    assert article.title == "Headline"
    assert article.text == "One line.\nTwo\tlines."


def test_a_utf8_byte_order_mark_is_not_part_of_the_title(tmp_path: Path) -> None:
    path = _write(tmp_path / "bom.txt", "\ufeffHeadline\n\nBody.".encode())

    assert _only_article(load_file(path)).title == "Headline"


def test_a_utf16_file_with_a_byte_order_mark_is_decoded(tmp_path: Path) -> None:
    path = _write(tmp_path / "notepad.txt", "Caffè news\n\nEspresso é bom.".encode("utf-16"))

    loaded = load_file(path)

    article = _only_article(loaded)
    assert article.title == "Caffè news"
    assert article.text == "Espresso é bom."
    assert loaded.warnings == []


def test_windows_1252_text_is_ingested_with_a_warning(tmp_path: Path) -> None:
    path = _write(tmp_path / "legacy.txt", "Café prices\n\n“Up 5%” – said he.".encode("cp1252"))

    loaded = load_file(path)

    article = _only_article(loaded)
    assert article.title == "Café prices"
    assert article.text == "“Up 5%” – said he."
    assert loaded.warnings == [f"{path}: not valid UTF-8, decoded as Windows-1252"]


@pytest.mark.parametrize("suffix", [".txt", ".md", ".html", ".jsonl"])
def test_an_empty_file_is_reported_and_skipped(tmp_path: Path, suffix: str) -> None:
    path = _write(tmp_path / f"empty{suffix}", b"")

    assert _only_reason(load_file(path)) == "empty file"


@pytest.mark.parametrize("suffix", [".txt", ".md", ".html", ".jsonl"])
def test_a_whitespace_only_file_is_reported_and_skipped(tmp_path: Path, suffix: str) -> None:
    path = _write(tmp_path / f"blank{suffix}", " \n\t\r\n  \n")

    assert _only_reason(load_file(path)) == "empty file"


def test_front_matter_without_a_body_is_reported(tmp_path: Path) -> None:
    path = _write(tmp_path / "fm.txt", "---\ntitle: Only a title\n---\n\n")

    assert _only_reason(load_file(path)).startswith("no text")


@pytest.mark.parametrize(
    "content",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4,
        bytes(range(1, 32)) * 200,  # no NUL, but nothing but control bytes
    ],
    ids=["with-nul", "control-bytes"],
)
def test_a_binary_file_named_txt_is_reported_as_binary(tmp_path: Path, content: bytes) -> None:
    path = _write(tmp_path / "photo.txt", content)

    assert _only_reason(load_file(path)) == "binary file (not text)"


# -- Markdown --------------------------------------------------------------------------------


def test_markdown_takes_its_title_from_the_first_heading_and_strips_the_syntax(
    tmp_path: Path,
) -> None:
    path = _write(
        tmp_path / "post.md",
        "Intro line.\n\n"
        "# Meloni's **bold** plan\n\n"
        "The *plan* is __new__ and ~~old~~ [explained here](https://x.example/a).\n"
        "![a chart](chart.png)\n\n"
        "## Reactions\n\n"
        "> Allies were *cautious*.\n\n"
        "* first point\n"
        "+ second point\n\n"
        "```\n"
        "keep_this = *as is*\n"
        "```\n"
        "Call `my_func()` with snake_case_names.\n",
    )

    article = _only_article(load_file(path))

    assert article.title == "Meloni's bold plan"
    assert article.text == (
        "Intro line.\n\n"
        "The plan is new and old explained here.\n\n"
        "Reactions\n\n"
        "Allies were cautious.\n\n"
        "- first point\n"
        "- second point\n\n"
        "keep_this = *as is*\n"
        "Call my_func() with snake_case_names."
    )


def test_markdown_front_matter_title_wins_and_a_matching_heading_is_not_repeated(
    tmp_path: Path,
) -> None:
    path = _write(
        tmp_path / "fm.markdown",
        "---\ntitle: The Plan\nurl: https://x.example/plan\n---\n# The Plan\n\nBody text.\n",
    )

    article = _only_article(load_file(path))

    assert article.title == "The Plan"
    assert article.url == "https://x.example/plan"
    assert article.text == "Body text."


def test_a_heading_inside_a_code_fence_is_not_the_title(tmp_path: Path) -> None:
    path = _write(tmp_path / "code.md", "```\n# not a title\n```\n\nSome prose follows here.\n")

    article = _only_article(load_file(path))

    assert article.title == "Code"
    assert article.text == "# not a title\n\nSome prose follows here."


# -- HTML ------------------------------------------------------------------------------------

_HTML_PAGE = """<!doctype html>
<html><head>
  <title>Meloni plan - Example News</title>
  <meta property="og:title" content="Meloni proposes Article 5 for Ukraine">
  <meta property="article:published_time" content="2025-03-20T09:30:00+01:00">
  <link rel="canonical" href="https://news.example/meloni">
  <style>.x { color: red }</style>
  <script>var tracking = "SCRIPT-TEXT";</script>
</head><body>
  <header role="banner"><a href="/">HEADER-TEXT</a></header>
  <nav><ul><li>NAV-TEXT</li></ul></nav>
  <div role="navigation">ROLE-NAV-TEXT</div>
  <article>
    <header><h1>Meloni proposes Article 5 for Ukraine</h1></header>
    <p>Italian Prime   Minister
       Giorgia Meloni &amp; allies met.</p>
    <p>She spoke in <b>Brussels</b>.<br>Then she left.</p>
    <aside>ASIDE-TEXT</aside>
    <ul><li>First point</li><li>Second point</li></ul>
    <form><button>BUTTON-TEXT</button></form>
    <div role="contentinfo">ROLE-TEXT</div>
    <!-- COMMENT-TEXT -->
    <noscript>NOSCRIPT-TEXT</noscript>
  </article>
  <footer>FOOTER-TEXT</footer>
</body></html>
"""


def test_html_keeps_the_article_text_and_drops_scripts_and_navigation(tmp_path: Path) -> None:
    path = _write(tmp_path / "page.html", _HTML_PAGE)

    article = _only_article(load_file(path))

    # trafilatura gives each <br> line and list item its own paragraph.
    assert article.text == (
        "Italian Prime Minister Giorgia Meloni & allies met.\n\n"
        "She spoke in Brussels.\n\nThen she left.\n\n"
        "- First point\n\n"
        "- Second point"
    )
    for boilerplate in ("SCRIPT", "HEADER", "NAV", "ASIDE", "BUTTON", "ROLE", "COMMENT", "FOOTER"):
        assert boilerplate not in article.text


def test_html_finds_the_title_canonical_url_and_publication_date(tmp_path: Path) -> None:
    path = _write(tmp_path / "page.htm", _HTML_PAGE)

    article = _only_article(load_file(path))

    assert article.title == "Meloni proposes Article 5 for Ukraine"
    assert article.url == "https://news.example/meloni"
    assert article.source == "https://news.example/meloni"
    assert article.published == date(2025, 3, 20)
    assert article.article_id == sha1_hex("file:" + str(path.resolve()))


def test_html_falls_back_to_the_title_tag_og_url_and_a_time_element(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "plain.html",
        "<html><head><title> Plain  page </title>"
        '<meta property="og:url" content="https://news.example/plain">'
        '<link rel="canonical" href="/relative-is-ignored"></head>'
        '<body><main><time datetime="2022-06-17">June 17</time>'
        "<div>Loose text in a div.</div></main></body></html>",
    )

    article = _only_article(load_file(path))

    assert article.title == "Plain page"
    assert article.url == "https://news.example/plain"
    assert article.published == date(2022, 6, 17)
    assert article.text == "Loose text in a div."  # a bare date line is not the story


def test_html_without_a_title_uses_its_first_h1_then_the_file_name(tmp_path: Path) -> None:
    with_h1 = _write(tmp_path / "a.html", "<body><h1>The H1</h1><p>Text.</p></body>")
    without = _write(tmp_path / "no-title.html", "<body><p>Just text.</p></body>")

    assert _only_article(load_file(with_h1)).title == "The H1"
    assert _only_article(load_file(with_h1)).text == "Text."
    assert _only_article(load_file(without)).title == "No title"


def test_html_with_only_scripts_and_navigation_is_reported(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "shell.html",
        "<html><body><nav>Home</nav><script>app()</script><footer>(c)</footer></body></html>",
    )

    assert _only_reason(load_file(path)).startswith("no text in HTML")


# -- PDF -------------------------------------------------------------------------------------


def test_the_handmade_pdf_is_readable_by_pypdf() -> None:
    reader = PdfReader(io.BytesIO(_pdf([["Hello world"]])))

    assert reader.pages[0].extract_text() == "Hello world"


def test_a_pdf_takes_its_title_from_the_first_line_and_joins_pages(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "report.pdf",
        _pdf([["Budget report 2024", "Spending rose by 4 percent."], ["Page two text."]]),
    )

    article = _only_article(load_file(path))

    assert article.title == "Budget report 2024"
    assert article.text == "Spending rose by 4 percent.\n\nPage two text."
    assert article.source == str(path.resolve())


def test_a_pdf_metadata_title_wins_and_the_first_line_stays_in_the_text(tmp_path: Path) -> None:
    data = _rewrite_pdf(_pdf([["First line", "Body."]]), title="The Real Title")
    path = _write(tmp_path / "titled.pdf", data)

    article = _only_article(load_file(path))

    assert article.title == "The Real Title"
    assert article.text == "First line\nBody."


def test_a_truncated_pdf_is_reported_as_corrupt(tmp_path: Path) -> None:
    data = _pdf([["Hello world"]])
    path = _write(tmp_path / "cut.pdf", data[: len(data) // 3])

    assert _only_reason(load_file(path)).startswith("corrupt PDF: ")


def test_a_text_file_named_pdf_is_reported_as_corrupt(tmp_path: Path) -> None:
    path = _write(tmp_path / "fake.pdf", "just some words, not a PDF")

    assert _only_reason(load_file(path)).startswith("corrupt PDF: ")


def test_a_password_protected_pdf_is_reported_as_encrypted(tmp_path: Path) -> None:
    data = _rewrite_pdf(_pdf([["Secret plans"]]), passwords=("secret", "owner"))
    path = _write(tmp_path / "locked.pdf", data)

    assert _only_reason(load_file(path)) == "encrypted PDF"


def test_a_pdf_with_only_an_owner_password_still_loads(tmp_path: Path) -> None:
    data = _rewrite_pdf(_pdf([["Open plans", "Anyone can read this."]]), passwords=("", "owner"))
    path = _write(tmp_path / "owner-only.pdf", data)

    article = _only_article(load_file(path))

    assert article.title == "Open plans"
    assert article.text == "Anyone can read this."


def test_an_aes_pdf_without_the_cryptography_package_is_reported_as_encrypted(
    tmp_path: Path,
) -> None:
    if importlib.util.find_spec("cryptography") is not None:
        pytest.skip("cryptography is installed: AES PDFs can be opened")
    blob = "<" + "00" * 48 + ">"
    entry = (
        f"<< /Filter /Standard /V 5 /R 6 /Length 256 /P -4 /O {blob} /U {blob} "
        f"/OE <{'00' * 32}> /UE <{'00' * 32}> /Perms <{'00' * 16}> "
        "/CF << /StdCF << /CFM /AESV3 /Length 32 >> >> /StmF /StdCF /StrF /StdCF >>"
    ).encode()
    path = _write(tmp_path / "aes.pdf", _pdf([["Hidden"]], encrypt_entry=entry))

    assert _only_reason(load_file(path)).startswith("encrypted PDF")


def test_a_pdf_without_text_is_reported_as_probably_scanned(tmp_path: Path) -> None:
    path = _write(tmp_path / "scan.pdf", _pdf([[], []]))

    assert _only_reason(load_file(path)) == "no extractable text in PDF (scanned?)"


def test_pypdf_warnings_are_silenced_while_loading_and_the_log_level_restored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A wrong startxref pointer: pypdf recovers, but logs warnings on the way.
    data = re.sub(rb"startxref\n\d+", b"startxref\n12", _pdf([["Recovered text"]]))
    path = _write(tmp_path / "sloppy.pdf", data)
    pypdf_logger = logging.getLogger("pypdf")
    previous = pypdf_logger.level
    pypdf_logger.setLevel(logging.INFO)
    try:
        with caplog.at_level(logging.WARNING):
            article = _only_article(load_file(path))
        level_after = pypdf_logger.level
    finally:
        pypdf_logger.setLevel(previous)

    assert article.text == "Recovered text"
    assert [r for r in caplog.records if r.name.startswith("pypdf")] == []
    assert level_after == logging.INFO


# -- JSONL -----------------------------------------------------------------------------------


def test_jsonl_loads_the_good_lines_and_reports_each_malformed_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "corpus.jsonl",
        '{"id": "a1", "url": "https://x.example/1", "title": "One", "published": "2022-06-12",'
        ' "source": "x.example", "text": "First story."}\n'
        "\n"
        "{not json\n"
        "[1, 2]\n"
        '{"id": "a4", "title": "No text"}\n'
        '{"id": 7, "text": "  "}\n'
        '{"url": "https://x.example/2", "text": "Second story. It goes on.", "published": "soon"}\n'
        '{"source": "wire", "text": "Third story has no url and a rather long first sentence'
        ' that goes on and on well past eighty characters."}\n',
    )
    origin = str(path.resolve())

    loaded = load_file(path)

    assert [(f.path, f.reason) for f in loaded.failures] == [
        (f"{path}:3", "invalid JSON: Expecting property name enclosed in double quotes"),
        (f"{path}:4", "not a JSON object (got list)"),
        (f"{path}:5", 'missing or empty "text" field'),
        (f"{path}:6", 'missing or empty "text" field'),
    ]
    first, second, third = loaded.articles
    assert (first.article_id, first.title, first.text) == ("a1", "One", "First story.")
    assert first.url == first.source == "https://x.example/1"
    assert first.published == date(2022, 6, 12)
    assert second.article_id == sha1_hex("url:https://x.example/2")
    assert second.title == "Second story."
    assert second.published is None
    assert third.article_id == sha1_hex(f"file:{origin}:8")
    assert third.source == "wire"
    assert third.url is None
    assert third.title.endswith("…")
    assert len(third.title) <= 80
    assert {a.origin for a in loaded.articles} == {origin}


def test_jsonl_numeric_ids_become_strings_and_a_missing_source_is_the_file(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path / "ids.jsonl", '{"id": 42, "text": "Body.\\r\\nMore."}\n')

    article = _only_article(load_file(path))

    assert article.article_id == "42"
    assert article.source == str(path.resolve())
    assert article.text == "Body.\nMore."


def test_a_jsonl_that_is_not_jsonl_at_all_does_not_flood_the_report(tmp_path: Path) -> None:
    path = _write(tmp_path / "table.jsonl", "".join(f"a,b,{i}\n" for i in range(80)))

    loaded = load_file(path)

    assert loaded.articles == []
    assert len(loaded.failures) == 51
    assert loaded.failures[-1] == LoadFailure(str(path), "30 more malformed lines not listed")


def test_a_binary_file_named_jsonl_is_reported_as_binary(tmp_path: Path) -> None:
    path = _write(tmp_path / "data.jsonl", b'{"text": "x"}\n\x00\x01\x02')

    assert _only_reason(load_file(path)) == "binary file (not text)"


# -- limits and odd paths ----------------------------------------------------------------------


def test_a_file_over_max_bytes_is_reported_as_too_large(tmp_path: Path) -> None:
    path = _write(tmp_path / "big.txt", "Headline\n\n" + "word " * 1000)

    reason = _only_reason(load_file(path, max_bytes=1000))

    assert reason.startswith("file too large (")
    assert "MB > limit" in reason
    assert _only_article(load_file(path, max_bytes=path.stat().st_size)).title == "Headline"


def test_load_file_reports_instead_of_raising_for_odd_paths(tmp_path: Path) -> None:
    (tmp_path / "folder.txt").mkdir()
    docx = _write(tmp_path / "letter.docx", b"PK\x03\x04")

    assert _only_reason(load_file(tmp_path / "missing.txt")) == "no such file or directory"
    assert _only_reason(load_file(tmp_path / "folder.txt")) == "is a directory"
    assert _only_reason(load_file(docx)).startswith("unsupported file type .docx; supported: ")


# -- discovery -------------------------------------------------------------------------------


def test_discover_walks_directories_recursively_in_sorted_order(tmp_path: Path) -> None:
    for name in ["b.txt", "a.MD", "sub/z.html", "sub/deeper/c.pdf", "sub/notes.docx", "x.py"]:
        _write(tmp_path / name, "x")

    files, failures = discover([tmp_path])

    assert failures == []
    assert [f.relative_to(tmp_path).as_posix() for f in files] == [
        "a.MD",
        "b.txt",
        "sub/z.html",
        "sub/deeper/c.pdf",
    ]


def test_discover_skips_hidden_files_and_directories(tmp_path: Path) -> None:
    _write(tmp_path / "seen.txt", "x")
    _write(tmp_path / ".hidden.txt", "x")
    _write(tmp_path / ".git" / "inside.txt", "x")
    _write(tmp_path / "sub" / ".cache" / "inside.md", "x")

    files, failures = discover([tmp_path])

    assert failures == []
    assert files == [tmp_path / "seen.txt"]


def test_discover_survives_a_symlink_loop_and_lists_each_file_once(tmp_path: Path) -> None:
    article = _write(tmp_path / "root" / "sub" / "story.txt", "x")
    os.symlink(tmp_path / "root", tmp_path / "root" / "sub" / "loop")
    os.symlink(tmp_path / "root" / "sub", tmp_path / "root" / "again")

    files, failures = discover([tmp_path / "root", article])

    assert failures == []
    assert [f.resolve() for f in files] == [article.resolve()]


def test_discover_reports_unsupported_missing_and_broken_paths(tmp_path: Path) -> None:
    good = _write(tmp_path / "good.txt", "x")
    docx = _write(tmp_path / "letter.docx", "x")
    os.symlink(tmp_path / "gone.txt", tmp_path / "dangling.txt")

    files, failures = discover([good, docx, tmp_path / "missing", tmp_path / "dangling.txt"])

    assert files == [good]
    supported = ", ".join(SUPPORTED_SUFFIXES)
    assert failures == [
        LoadFailure(str(docx), f"unsupported file type .docx; supported: {supported}"),
        LoadFailure(str(tmp_path / "missing"), "no such file or directory"),
        LoadFailure(str(tmp_path / "dangling.txt"), "broken symbolic link"),
    ]


def test_discover_reports_a_broken_symlink_found_inside_a_directory(tmp_path: Path) -> None:
    os.symlink(tmp_path / "gone.md", tmp_path / "dangling.md")
    os.symlink(tmp_path / "gone.bin", tmp_path / "ignored.bin")

    files, failures = discover([tmp_path])

    assert files == []
    assert failures == [LoadFailure(str(tmp_path / "dangling.md"), "broken symbolic link")]


def test_every_discovered_file_of_a_mixed_folder_loads(tmp_path: Path) -> None:
    _write(tmp_path / "a.txt", "Alpha\n\nText a.")
    _write(tmp_path / "b.md", "# Beta\n\nText b.")
    _write(tmp_path / "c.html", "<title>Gamma</title><p>Text c.</p>")
    _write(tmp_path / "d.pdf", _pdf([["Delta", "Text d."]]))
    _write(tmp_path / "e.jsonl", '{"title": "Epsilon", "text": "Text e."}\n')

    files, _ = discover([tmp_path])
    loaded = [load_file(f) for f in files]

    assert [a.title for result in loaded for a in result.articles] == [
        "Alpha",
        "Beta",
        "Gamma",
        "Delta",
        "Epsilon",
    ]
    assert all(result.failures == [] for result in loaded)
