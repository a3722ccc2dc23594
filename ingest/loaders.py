"""Turn files into :class:`~rag.records.Article` records.

Supported inputs: plain text (``.txt``), Markdown (``.md``, ``.markdown``), HTML (``.html``,
``.htm``), PDF (``.pdf``) and JSON Lines (``.jsonl``, one article per line).

Loading never raises for bad content: an empty, binary, corrupt or encrypted file, or a
malformed JSONL line, becomes a :class:`LoadFailure` with a one-sentence reason, so one odd
file cannot stop the ingestion of a thousand good ones. Internally the loaders raise
:class:`~rag.errors.LoaderError`, which :func:`load_file` turns into failures.
"""

from __future__ import annotations

import codecs
import contextlib
import email.utils
import json
import logging
import os
import re
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from bs4 import BeautifulSoup, Tag
from bs4.builder._lxml import LXMLTreeBuilder  # the typed home of the public builder
from bs4.element import NavigableString, PageElement, PreformattedString
from pypdf import PasswordType, PdfReader, apply_configuration
from pypdf.errors import DependencyError, LimitReachedError

from rag.errors import LoaderError
from rag.records import Article, sha1_hex

logger = logging.getLogger(__name__)

SUPPORTED_SUFFIXES: tuple[str, ...] = (
    ".txt",
    ".md",
    ".markdown",
    ".html",
    ".htm",
    ".pdf",
    ".jsonl",
)

_SAMPLE_BYTES = 8192
# Share of control bytes above which a file is binary. Random bytes hold about 10%;
# real text, in any encoding, almost none.
_MAX_CONTROL_SHARE = 0.05
_TITLE_MAX_CHARS = 200
_DERIVED_TITLE_CHARS = 80
_SENTENCE_END = (".", "!", "?", ":")
_CLOSERS = "\"'”’)]»"
# A file that is not JSONL at all (a CSV renamed .jsonl) must not flood the report.
_MAX_LINE_FAILURES = 50

_BINARY = "binary file (not text)"
_EMPTY = "empty file"

# Bytes that occur in text: printable ASCII, all high bytes, and \a \b \t \n \f \r ESC.
_TEXT_BYTES = bytes({7, 8, 9, 10, 12, 13, 27} | set(range(0x20, 0x100)) - {0x7F})
# Every control character but \t and \n. A bare character class: searching 24 MB with
# it is three times faster than with an alternation such as r"\r\n?|[...]".
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_LINE_BREAKS = str.maketrans("\r\x0b\x0c", "\n\n\n")
_BLANK_RUNS = re.compile(r"\n[ \t]*(?:\n[ \t]*){2,}")
_SPACES = re.compile(r"\s+")
_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[T ].*)?")
_HTTP_URL = re.compile(r"https?://\S+", re.IGNORECASE)
_FRONT_MATTER_LINE = re.compile(r"[A-Za-z_][\w-]*\s*:")
_FRONT_MATTER_KEYS = {
    "title": "title",
    "url": "url",
    "source": "source",
    "published": "published",
    "date": "published",
}


@dataclass(frozen=True)
class LoadFailure:
    """A file, or one line of a JSONL file, that could not be loaded.

    ``path`` is the file path as given (``"file.jsonl:LINE"`` for a bad JSONL line);
    ``reason`` is one human sentence such as ``"empty file"`` or ``"encrypted PDF"``.
    """

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class Loaded:
    """What :func:`load_file` got out of one file: articles, failures and warnings."""

    articles: list[Article] = field(default_factory=list)
    failures: list[LoadFailure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LoadLimits:
    """Bounds on the work one file may cost; ``None`` leaves a bound off.

    A hostile file (a PDF whose pages all reuse one huge compressed stream, HTML of
    millions of tags) must fail fast with its reason instead of holding the library.

    ``max_seconds`` is checked while parsing (every few hundred HTML tags or PDF
    operators), so a file stops within about that time. ``pdf_max_content_bytes`` counts
    the decompressed content of every page, a stream shared by several pages once per
    page, and is checked before any page is parsed.

    >>> LoadLimits(max_seconds=10, pdf_max_pages=500).pdf_max_pages
    500
    """

    max_bytes: int | None = None
    max_seconds: float | None = None
    pdf_max_pages: int | None = None
    pdf_max_content_bytes: int | None = None


class _Deadline:
    """Raises :class:`LoaderError` once a file has taken longer than its time limit."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.end = None if seconds is None else time.monotonic() + seconds

    def check(self, where: str) -> None:
        if self.end is not None and time.monotonic() > self.end:
            msg = (
                f"took longer than {self.seconds:g} s to read ({where}); "
                "the limit is NEWSRAG_LOAD_MAX_SECONDS"
            )
            raise LoaderError(msg)


# -- discovery ---------------------------------------------------------------------------


def discover(paths: Sequence[Path]) -> tuple[list[Path], list[LoadFailure]]:
    """Expand files and directories into the supported files to load.

    Directories are walked recursively in sorted order, skipping hidden entries and files
    of other types; symlinked directories are followed once, so a symlink loop ends.
    Files named explicitly must have a supported suffix. Each file appears once, even
    when reached through several paths.

    >>> discover([Path("no/such/dir")])
    ([], [LoadFailure(path='no/such/dir', reason='no such file or directory')])
    """
    files: list[Path] = []
    failures: list[LoadFailure] = []
    seen: set[str] = set()
    for path in paths:
        problem = _stat_problem(path)
        if problem is not None:
            failures.append(LoadFailure(str(path), problem))
        elif path.is_dir():
            found, walk_failures = _walk(path)
            failures += walk_failures
            files += [file for file in found if _first_visit(file, seen)]
        elif not path.is_file():
            failures.append(LoadFailure(str(path), "not a regular file"))
        elif path.suffix.lower() not in SUPPORTED_SUFFIXES:
            failures.append(LoadFailure(str(path), _unsupported(path)))
        elif _first_visit(path, seen):
            files.append(path)
    return files, failures


def _first_visit(path: Path, seen: set[str]) -> bool:
    key = os.path.realpath(path)
    if key in seen:
        return False
    seen.add(key)
    return True


def _stat_problem(path: Path) -> str | None:
    """Why ``path`` cannot be opened at all, or None when it can."""
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return "broken symbolic link" if path.is_symlink() else "no such file or directory"
    except OSError as exc:
        if path.is_symlink():
            return f"unusable symbolic link ({exc.strerror})"
        return f"cannot access: {exc.strerror}"
    return None


def _walk(root: Path) -> tuple[list[Path], list[LoadFailure]]:
    files: list[Path] = []
    failures: list[LoadFailure] = []

    def on_error(exc: OSError) -> None:
        where = exc.filename if exc.filename is not None else root
        failures.append(LoadFailure(str(where), f"cannot read directory: {exc.strerror}"))

    visited = {os.path.realpath(root)}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=on_error):
        kept: list[str] = []
        for name in sorted(dirnames):
            real = os.path.realpath(os.path.join(dirpath, name))
            if name.startswith(".") or real in visited:
                continue  # hidden, or already walked: a symlink loop or a second link
            visited.add(real)
            kept.append(name)
        dirnames[:] = kept  # os.walk descends into what is left, in this order
        for name in sorted(filenames):
            file = Path(dirpath, name)
            if name.startswith(".") or file.suffix.lower() not in SUPPORTED_SUFFIXES:
                continue
            problem = _stat_problem(file)
            if problem is not None:
                failures.append(LoadFailure(str(file), problem))
            elif file.is_file():
                files.append(file)
    return files, failures


def _unsupported(path: Path) -> str:
    kind = path.suffix or "(no extension)"
    return f"unsupported file type {kind}; supported: {', '.join(SUPPORTED_SUFFIXES)}"


# -- loading -----------------------------------------------------------------------------


def load_file(
    path: Path, *, max_bytes: int | None = None, limits: LoadLimits | None = None
) -> Loaded:
    """Load the articles of one file; problems are reported, never raised.

    A text, Markdown, HTML or PDF file gives one article; a JSONL file gives one per valid
    line and one failure per malformed line. ``max_bytes`` (or ``limits.max_bytes``)
    rejects larger files; ``limits`` also bounds the time and, for PDFs, the pages and
    decompressed content (see :class:`LoadLimits`).

    >>> loaded = load_file(Path("no-such-article.txt"))
    >>> loaded.articles, loaded.failures
    ([], [LoadFailure(path='no-such-article.txt', reason='no such file or directory')])
    """
    notes: list[str] = []
    limits = limits or LoadLimits()
    deadline = _Deadline(limits.max_seconds)
    try:
        suffix = path.suffix.lower()
        if suffix not in SUPPORTED_SUFFIXES:
            raise LoaderError(_unsupported(path))
        _check_size(path, max_bytes if max_bytes is not None else limits.max_bytes)
        if suffix == ".jsonl":
            return _load_jsonl(path)
        if suffix == ".pdf":
            article = _load_pdf(path, notes, limits, deadline)
        else:
            text = _decode(path.read_bytes(), str(path), notes)
            if not text.strip():
                raise LoaderError(_EMPTY)
            if suffix in (".html", ".htm"):
                article = _load_html(path, text, deadline)
            elif suffix in (".md", ".markdown"):
                article = _load_markdown(path, text, deadline)
            else:
                article = _load_text(path, text)
        return Loaded([article], [], notes)
    except LoaderError as exc:
        return Loaded([], [LoadFailure(str(path), str(exc))], notes)
    except OSError as exc:
        reason = f"cannot read file: {exc.strerror or exc}"
        return Loaded([], [LoadFailure(str(path), reason)], notes)
    except Exception as exc:  # a parser bug on one odd file must not abort a whole ingest
        logger.exception("unexpected error while loading %s", path)
        reason = f"unexpected error: {type(exc).__name__}: {exc}"
        return Loaded([], [LoadFailure(str(path), reason)], notes)


def _check_size(path: Path, max_bytes: int | None) -> None:
    problem = _stat_problem(path)
    if problem is not None:
        raise LoaderError(problem)
    if path.is_dir():
        msg = "is a directory"
        raise LoaderError(msg)
    if not path.is_file():
        msg = "not a regular file"
        raise LoaderError(msg)
    size = path.stat().st_size
    if size == 0:
        raise LoaderError(_EMPTY)
    if max_bytes is not None and size > max_bytes:
        msg = f"file too large ({_megabytes(size)} MB > limit {_megabytes(max_bytes)} MB)"
        raise LoaderError(msg)


def _megabytes(size: int) -> str:
    """``12.3`` for 12.3 MB; small sizes keep enough digits not to read as 0."""
    mb = size / 1_000_000
    return f"{mb:.1f}" if mb >= 0.1 else f"{mb:.2g}"


def _article(
    path: Path,
    *,
    title: str,
    text: str,
    url: str | None = None,
    source: str | None = None,
    published: date | None = None,
    author: str | None = None,
    site_name: str | None = None,
) -> Article:
    origin = os.path.realpath(path)
    return Article(
        article_id=sha1_hex("file:" + origin),
        title=title,
        text=text,
        source=url or source or origin,
        origin=origin,
        url=url,
        published=published,
        author=author,
        site_name=site_name or named_outlet(url, source),
    )


def named_outlet(url: str | None, source: str | None) -> str | None:
    """The outlet a record names in its ``source`` field when it also has a URL (the URL
    becomes the article's source): kept as its site name, not thrown away.

    >>> named_outlet("https://edition.cnn.com/a", "cnn.com")
    'cnn.com'
    >>> named_outlet(None, "cnn.com") is None  # the source itself: nothing to keep aside
    True
    >>> named_outlet("https://cnn.com/a", "https://cnn.com/a") is None
    True
    """
    if url and source and "://" not in source:
        return source
    return None


# -- decoding and cleaning ---------------------------------------------------------------


def _decode(data: bytes, name: str, notes: list[str]) -> str:
    """Decode file bytes to clean text, adding a note when a fallback encoding was used."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return _clean_text(data.decode("utf-16"))  # Windows Notepad's "Unicode"
        except UnicodeDecodeError:
            raise LoaderError(_BINARY) from None
    data = data.removeprefix(codecs.BOM_UTF8)
    if _looks_binary(data[:_SAMPLE_BYTES]):
        raise LoaderError(_BINARY)
    try:
        return _clean_text(data.decode("utf-8"))
    except UnicodeDecodeError:
        text, encoding = _decode_legacy(data)
        notes.append(f"{name}: not valid UTF-8, decoded as {encoding}")
        return _clean_text(text)


_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([\w.:-]+)""", re.IGNORECASE)


def decode_html(data: bytes, charset: str | None = None) -> str:
    """Decode a web page: the HTTP charset, else its ``<meta charset>``, else UTF-8/cp1252.

    >>> decode_html(b'<meta charset="iso-8859-1"><p>caf\\xe9</p>')
    '<meta charset="iso-8859-1"><p>café</p>'
    """
    declared = [charset] if charset else []
    match = _META_CHARSET.search(data[:_SAMPLE_BYTES])
    if match:
        declared.append(match[1].decode("ascii", "replace"))
    for name in declared:
        try:
            return _clean_text(data.decode(codecs.lookup(name).name))
        except (LookupError, UnicodeDecodeError):
            continue  # a wrong or unknown declaration: try the next guess
    try:
        return _clean_text(data.removeprefix(codecs.BOM_UTF8).decode("utf-8"))
    except UnicodeDecodeError:
        return _clean_text(_decode_legacy(data)[0])


def _decode_legacy(data: bytes) -> tuple[str, str]:
    try:
        return data.decode("cp1252"), "Windows-1252"
    except UnicodeDecodeError:  # five bytes are undefined in cp1252
        return data.decode("latin-1"), "Latin-1"


def _looks_binary(sample: bytes) -> bool:
    if b"\x00" in sample:
        return True
    controls = len(sample.translate(None, _TEXT_BYTES))
    return controls > _MAX_CONTROL_SHARE * len(sample)


def _clean_text(text: str) -> str:
    """Normalize line ends to ``\\n`` and drop control characters other than \\n and \\t.

    >>> _clean_text("a\\r\\nb\\x07c\\rd")
    'a\\nbc\\nd'
    """
    if _CONTROL.search(text) is None:  # the common case
        return text
    # \r\n and lone \r become \n; \v and \f too, so page breaks do not glue words.
    text = text.replace("\r\n", "\n").translate(_LINE_BREAKS)
    return _CONTROL.sub("", text)


def _collapse(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def _parse_date(value: object) -> date | None:
    """Parse an ISO date or datetime (or an RFC 2822 one); anything else gives None.

    >>> _parse_date("2022-06-17T10:00:00Z"), _parse_date("soon")
    (datetime.date(2022, 6, 17), None)
    """
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip()
    match = _ISO_DATE.fullmatch(value)
    if match:
        try:
            return date(int(match[1]), int(match[2]), int(match[3]))
        except ValueError:
            return None
    try:
        return email.utils.parsedate_to_datetime(value).date()
    except (TypeError, ValueError, IndexError):
        return None


def _http_url(value: object) -> str | None:
    """An absolute http(s) URL, or None: a relative link means nothing without its page."""
    if isinstance(value, str) and _HTTP_URL.fullmatch(value.strip()):
        return value.strip()
    return None


# -- titles ------------------------------------------------------------------------------


def _title_from_stem(path: Path) -> str:
    """``meloni-article5_ukraine.txt`` -> ``"Meloni article5 ukraine"``."""
    words = _collapse(re.sub(r"[-_]+", " ", path.stem)) or path.name
    return words[:1].upper() + words[1:]


def _split_first_line_title(text: str) -> tuple[str | None, str]:
    """Take the first non-empty line as the title when it reads like a headline.

    It must be short and either not end like a sentence or stand alone before a blank
    line. Returns ``(title, rest)``, or ``(None, text)`` when the line is prose.

    >>> _split_first_line_title("Big news today\\n\\nIt happened.")
    ('Big news today', 'It happened.')
    >>> _split_first_line_title("It happened. Then more.\\nAnd more.")[0] is None
    True
    """
    lines = text.split("\n")
    index = next((i for i, line in enumerate(lines) if line.strip()), None)
    if index is None:
        return None, text
    first = _collapse(lines[index])
    followed_by_blank = index + 1 < len(lines) and not lines[index + 1].strip()
    ends_sentence = first.rstrip(_CLOSERS).endswith(_SENTENCE_END)
    if len(first) <= _TITLE_MAX_CHARS and (not ends_sentence or followed_by_blank):
        return first, "\n".join(lines[index + 1 :]).strip()
    return None, text


def _title_from_text(text: str) -> str:
    """The first sentence-ish of ``text``, cut at a word to at most 80 characters.

    >>> _title_from_text("Rates rise again. Markets fall.")
    'Rates rise again.'
    """
    first_line = next((line for line in text.split("\n") if line.strip()), "")
    sentence = re.split(r"(?<=[.!?])\s", _collapse(first_line), maxsplit=1)[0]
    if len(sentence) <= _DERIVED_TITLE_CHARS:
        return sentence
    cut = sentence[: _DERIVED_TITLE_CHARS - 1].rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:-") + "…"


# -- plain text and Markdown -------------------------------------------------------------


def _split_front_matter(text: str) -> tuple[dict[str, str], str]:
    """Split ``---``-delimited ``key: value`` lines off the top of ``text``.

    Only the keys title, url, source and published (or date) are kept. A block with any
    line that is not ``key: value`` is not front matter, so no prose is ever dropped.

    >>> _split_front_matter("---\\nTitle: Hi\\nDate: 2022-01-02\\n---\\nBody")
    ({'title': 'Hi', 'published': '2022-01-02'}, 'Body')
    """
    lines = text.split("\n")
    if lines[0].rstrip() != "---":
        return {}, text
    end = next((i for i in range(1, len(lines)) if lines[i].rstrip() in ("---", "...")), None)
    if end is None:
        return {}, text
    block = [line for line in lines[1:end] if line.strip()]
    if not all(_FRONT_MATTER_LINE.match(line) for line in block):
        return {}, text
    meta: dict[str, str] = {}
    for line in block:
        key, _, value = line.partition(":")
        name = _FRONT_MATTER_KEYS.get(key.strip().lower())
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1].strip()
        if name and value and name not in meta:
            meta[name] = value
    return meta, "\n".join(lines[end + 1 :])


def _front_matter_article(path: Path, meta: dict[str, str], title: str, text: str) -> Article:
    return _article(
        path,
        title=_collapse(title),
        text=text,
        url=meta.get("url"),
        source=meta.get("source"),
        published=_parse_date(meta.get("published")),
    )


def _load_text(path: Path, text: str) -> Article:
    meta, body = _split_front_matter(text)
    body = body.strip()
    title = meta.get("title")
    if title is None:
        title, rest = _split_first_line_title(body)
        # A one-line file is both headline and text rather than an article with no text.
        body = rest or body
    if not body:
        msg = "no text (only front matter)"
        raise LoaderError(msg)
    return _front_matter_article(path, meta, title or _title_from_stem(path), body)


_MD_FENCE = re.compile(r"\s{0,3}(```|~~~)")
_MD_H1 = re.compile(r"\s{0,3}#[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*")
_MD_HEADING = re.compile(r"\s{0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*")
_MD_RULE = re.compile(r"\s{0,3}([-*_=])(?:[ \t]*\1){2,}[ \t]*")
_MD_REF_DEFINITION = re.compile(r"\s{0,3}\[[^\]]+\]:\s+\S+.*")
_MD_QUOTE = re.compile(r"^\s{0,3}(?:>\s?)+")
_MD_BULLET = re.compile(r"^(\s*)[*+][ \t]+")
_MD_CODE_SPAN = re.compile(r"`+([^`]+)`+")
_MD_INLINE: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"!\[[^\]]*\](?:\([^)]*\)|\[[^\]]*\])"), ""),  # images
    (re.compile(r"\[([^\]]*)\]\([^)]*\)"), r"\1"),  # [text](url)
    (re.compile(r"\[([^\]]+)\]\[[^\]]*\]"), r"\1"),  # [text][ref]
    (re.compile(r"<(https?://[^>\s]+)>"), r"\1"),  # <https://autolink>
    (re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1"), r"\2"),  # **bold**
    (re.compile(r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?![\w*])"), r"\1"),  # *italic*
    (re.compile(r"(?<![\w_])_(?=\S)(.+?)(?<=\S)_(?![\w_])"), r"\1"),  # _italic_, not snake_case
    (re.compile(r"~~(?=\S)(.+?)(?<=\S)~~"), r"\1"),  # ~~strike~~
)


def _strip_markdown_inline(line: str) -> str:
    parts = _MD_CODE_SPAN.split(line)  # odd items are code spans: kept verbatim
    for i in range(0, len(parts), 2):
        for pattern, replacement in _MD_INLINE:
            parts[i] = pattern.sub(replacement, parts[i])
    return "".join(parts)


def _load_markdown(path: Path, text: str, deadline: _Deadline | None = None) -> Article:
    meta, body = _split_front_matter(text)
    title = meta.get("title")
    lines: list[str] = []
    in_fence = False
    starts_with_code = False  # then its first line is code, never a headline
    for number, line in enumerate(body.split("\n")):
        if deadline is not None and number % 4096 == 0:
            deadline.check(f"Markdown, line {number + 1:,}")
        if _MD_FENCE.match(line):
            in_fence = not in_fence
            continue  # the fence markers go, the code stays as text
        if in_fence:
            starts_with_code = starts_with_code or not any(lines)
            lines.append(line.rstrip())
            continue
        h1 = _MD_H1.fullmatch(line)
        if h1 and (title is None or _collapse(h1[1]) == _collapse(title)):
            title = title or _strip_markdown_inline(h1[1])
            continue
        if _MD_RULE.fullmatch(line) or _MD_REF_DEFINITION.fullmatch(line):
            continue
        heading = _MD_HEADING.fullmatch(line)
        if heading:
            line = heading[1]
        line = _MD_BULLET.sub(r"\1- ", _MD_QUOTE.sub("", line))
        lines.append(_strip_markdown_inline(line).rstrip())
    body = _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()
    if title is None and not starts_with_code:
        title, rest = _split_first_line_title(body)
        body = rest or body
    if not body:
        msg = "no text (only a title or front matter)"
        raise LoaderError(msg)
    return _front_matter_article(path, meta, title or _title_from_stem(path), body)


# -- HTML --------------------------------------------------------------------------------

_HTML_DROP = (
    "script",
    "style",
    "noscript",
    "template",
    "nav",
    "header",
    "footer",
    "aside",
    "form",
    "iframe",
    "svg",
    "button",
)
_HTML_DROP_ROLES = ("navigation", "banner", "contentinfo")
_HTML_PUBLISHED = ("article:published_time", "date", "pubdate", "publishdate", "dc.date")
# Elements that start a new paragraph; text between them is joined within a paragraph.
_HTML_BLOCKS = frozenset(
    {
        *("p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "blockquote", "pre", "td", "th"),
        *("div", "section", "article", "main", "body", "ul", "ol", "dl", "dt", "dd"),
        *("table", "tr", "figure", "figcaption", "address", "hr", "details", "summary"),
    }
)
_BR = "\x00"  # stands for <br> inside a block; NULs were removed from the text earlier


class _BoundedLXMLTreeBuilder(LXMLTreeBuilder):
    """bs4's lxml builder that stops the parse once the file is over its time limit.

    lxml calls :meth:`start` for every tag; an exception raised there stops the parse,
    so millions of tags cannot hold the ingest for minutes.
    """

    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self.deadline = deadline
        self.tags = 0

    def start(self, tag: str | bytes, attrib: Any, nsmap: Any = None) -> None:
        self.tags += 1
        if self.tags % 512 == 0:
            self.deadline.check(f"parsing HTML, {self.tags:,} tags so far")
        super().start(tag, attrib, nsmap if nsmap is not None else {})


@dataclass(frozen=True)
class ExtractedPage:
    """What :func:`extract_html` found in one news page.

    ``method`` says which extractor produced ``text``: ``"trafilatura"`` (tuned for
    precision), ``"trafilatura-recall"`` (its default settings, used when the precise run
    found nothing) or ``"heuristic"`` (newsrag's own, when trafilatura found nothing).
    """

    title: str | None
    text: str
    url: str | None = None
    published: date | None = None
    author: str | None = None
    site_name: str | None = None
    method: str = "heuristic"


def extract_html(
    html: str, *, url: str | None = None, max_seconds: float | None = None
) -> ExtractedPage:
    """Extract a news page's headline, main text, date, author and outlet.

    The main text comes from trafilatura run for precision without comments (on real news
    pages that beats its defaults; see docs/BENCHMARKS.md), then from trafilatura's
    defaults, then from newsrag's own "largest <article>" heuristic, so a page with any
    text gives an article. Generic boilerplate lines (share prompts, "Advertisement",
    comment counts, shortcodes) are dropped. Raises :class:`LoaderError` when the page has
    no text at all, or when parsing takes over ``max_seconds``.

    >>> page = extract_html("<title>Hi</title><article><p>Rain in Rome.</p></article>")
    >>> page.title, page.text, page.method
    ('Hi', 'Rain in Rome.', 'heuristic')
    """
    return _extract_html(html, url, _Deadline(max_seconds))


def _extract_html(html: str, url: str | None, deadline: _Deadline) -> ExtractedPage:
    soup = BeautifulSoup(html, builder=_BoundedLXMLTreeBuilder(deadline))
    deadline.check("parsing HTML")
    # Metadata first: an article's <h1> and <time> often sit in a <header> dropped below.
    title = _html_title(soup)
    page_url = _http_url(_html_canonical(soup)) or _http_url(_html_meta(soup, "og:url"))
    published = _parse_date(_html_meta(soup, *_HTML_PUBLISHED))
    if published is None:
        time_tag = soup.find("time", attrs={"datetime": True})
        if isinstance(time_tag, Tag):
            published = _parse_date(time_tag.get("datetime"))
    author = _html_meta(soup, "author", "article:author", "byl", "dc.creator")
    site_name = _html_meta(soup, "og:site_name", "application-name")

    document, method = _trafilatura(html, url or page_url)
    deadline.check("extracting the article")
    text = ""
    if document is not None:
        text = _paragraphs(document.text or "")
        title = title or _collapse(document.title or "") or None
        author = author or _collapse(document.author or "") or None
        site_name = site_name or _collapse(document.sitename or "") or None
        published = published or _parse_date(document.date)
    if not text:
        method = "heuristic"
        text = _heuristic_text(soup, title, deadline)
    if not text:
        msg = "no text in HTML (only markup, scripts or navigation)"
        raise LoaderError(msg)
    return ExtractedPage(
        title=title,
        text=text,
        url=page_url or _http_url(url),
        published=published,
        author=author,
        site_name=site_name,
        method=method,
    )


# Navigation landmarks are never the story; trafilatura's fallbacks would keep them.
_PRUNE = " | ".join(
    [*(f"//*[@role='{role}']" for role in _HTML_DROP_ROLES), "//nav", "//footer", "//aside"]
)


def _trafilatura(html: str, url: str | None) -> tuple[Any, str]:
    """trafilatura's document for ``html`` (precise settings first), or ``(None, "")``."""
    # Imported here: trafilatura pulls in a few heavy modules that only HTML needs.
    import trafilatura

    # Reader comments are not the article; favor_precision drops the teaser lists and
    # related-story blocks that trail most news pages (F1 0.961 -> 0.969 on the dev set).
    # Its defaults keep more, which matters only when the precise run finds nothing.
    runs = (("trafilatura", True), ("trafilatura-recall", False))
    for method, precise in runs:
        try:
            document: Any = trafilatura.bare_extraction(
                html,
                url=url,
                include_comments=False,
                favor_precision=precise,
                with_metadata=True,
                prune_xpath=_PRUNE,
            )
        except Exception:  # a parser bug on one odd page leaves the other extractors
            logger.warning("trafilatura failed on %s", url or "a page", exc_info=True)
            return None, ""
        if document is not None and (document.text or "").strip():
            return document, method
    return None, ""


# Lines that are page furniture on any news site, never a sentence of a story.
_BOILERPLATE_LINE = re.compile(
    r"(?:advertisement|advertisements?|sponsored(?: content)?|\d*\s*comments?"
    r"|(?:share|tweet|email|print)(?: (?:this|on \w+))?(?: article| story| page)?"
    r"|(?:read|see|show|load|view) (?:more|all|full story|comments?)"
    r"|tell us what you think\W*|leave a (?:comment|reply)|(?:click|tap) here\W*"
    r"|(?:sign up|subscribe)(?: (?:now|here|today))?|skip (?:to )?(?:content|ad|advert)"
    r"|related(?: (?:articles?|stories|content|coverage))?:?"
    r"|(?:updated|published|posted)(?: on| at)?:? [\w ,:./-]{0,30}\d[\w ,:./-]{0,30}"
    r"|\[/?\w+[^\]]*\].*\[/\w+\])",
    re.IGNORECASE,
)


def _paragraphs(text: str) -> str:
    """trafilatura's one-line paragraphs, boilerplate lines dropped, blank-line separated."""
    lines = (_collapse(line) for line in _clean_text(text).split("\n"))
    return "\n\n".join(
        line for line in lines if line and not _BOILERPLATE_LINE.fullmatch(line.rstrip(".!"))
    )


def _heuristic_text(soup: BeautifulSoup, title: str | None, deadline: _Deadline) -> str:
    """newsrag's own extraction: the largest ``<article>`` (else ``<main>``, ``<body>``)."""
    dropped = [*soup.find_all(_HTML_DROP), *soup.find_all(True, role=True)]
    for n, element in enumerate(dropped):
        if n % 512 == 0:
            deadline.check("cleaning HTML")
        if not isinstance(element, Tag) or element.decomposed:
            continue  # already gone with a dropped ancestor
        if element.name in _HTML_DROP or _html_attr(element, "role") in _HTML_DROP_ROLES:
            element.decompose()
    root = _html_main(soup)
    blocks = _html_blocks(root, deadline) if root is not None else []
    if title and blocks and blocks[0] == title:
        blocks = blocks[1:]  # the headline is the title, as for text files
    return "\n\n".join(blocks)


def _load_html(path: Path, text: str, deadline: _Deadline | None = None) -> Article:
    page = _extract_html(text, None, deadline or _Deadline(None))
    return _article(
        path,
        title=page.title or _title_from_stem(path),
        text=page.text,
        url=page.url,
        published=page.published,
        author=page.author,
        site_name=page.site_name,
    )


def _html_attr(tag: Tag, name: str) -> str:
    """An attribute as one lowercase string (bs4 returns lists for multi-valued ones)."""
    value = tag.get(name)
    if isinstance(value, list):
        value = " ".join(value)
    return (value or "").strip().lower()


def _html_meta(soup: BeautifulSoup, *keys: str) -> str | None:
    """The content of the first ``<meta>`` whose property, name or itemprop is in ``keys``."""
    for tag in soup.find_all("meta"):
        if not isinstance(tag, Tag):
            continue
        if any(_html_attr(tag, attr) in keys for attr in ("property", "name", "itemprop")):
            content = tag.get("content")
            if isinstance(content, str) and content.strip():
                return content.strip()
    return None


def _html_canonical(soup: BeautifulSoup) -> str | None:
    for tag in soup.find_all("link", href=True):
        if isinstance(tag, Tag) and "canonical" in _html_attr(tag, "rel").split():
            href = tag.get("href")
            return href if isinstance(href, str) else None
    return None


def _html_title(soup: BeautifulSoup) -> str | None:
    candidates = [_html_meta(soup, "og:title")]
    for name in ("title", "h1"):
        tag = soup.find(name)
        candidates.append(tag.get_text(" ") if isinstance(tag, Tag) else None)
    return next((_collapse(c) for c in candidates if c and _collapse(c)), None)


def _html_main(soup: BeautifulSoup) -> Tag | None:
    # With several <article>s (comments, teasers) the story is the one with most text.
    articles = [tag for tag in soup.find_all("article") if isinstance(tag, Tag)]
    if articles:
        return max(articles, key=lambda tag: len(tag.get_text()))
    for name in ("main", "body"):
        tag = soup.find(name)
        if isinstance(tag, Tag):
            return tag
    return soup


def _html_blocks(root: Tag, deadline: _Deadline | None = None) -> list[str]:
    """The text of ``root`` as paragraphs, one per block element, whitespace collapsed."""
    blocks: list[str] = []
    buffer: list[str] = []

    def flush() -> None:
        lines = (_collapse(line) for line in "".join(buffer).split(_BR))
        paragraph = "\n".join(line for line in lines if line)
        buffer.clear()
        if paragraph:
            blocks.append(paragraph)

    # Iterative, not recursive: deeply nested markup must not hit the recursion limit.
    stack: list[PageElement | None] = [root]  # None marks the end of a block
    visited = 0
    while stack:
        node = stack.pop()
        visited += 1
        if deadline is not None and visited % 4096 == 0:
            deadline.check("reading HTML text")
        if node is None:
            flush()
        elif isinstance(node, NavigableString):
            if not isinstance(node, PreformattedString):  # comments, CDATA, doctype
                buffer.append(str(node))
        elif isinstance(node, Tag):
            if node.name == "br":
                buffer.append(_BR)
            elif node.name == "pre":
                flush()
                code = "\n".join(line.rstrip() for line in node.get_text().split("\n"))
                if code.strip("\n"):
                    blocks.append(code.strip("\n"))
            else:
                if node.name in _HTML_BLOCKS:
                    flush()
                    stack.append(None)
                stack.extend(reversed(node.contents))
    flush()
    return blocks


# -- PDF ---------------------------------------------------------------------------------

_JUNK_PDF_TITLES = re.compile(r"untitled|microsoft (word|powerpoint) - .*|.*\.(docx?|pdf)", re.I)


@contextlib.contextmanager
def _quiet_pypdf() -> Iterator[None]:
    """Silence pypdf's warnings about sloppy PDFs for one load, then restore the level."""
    pypdf_logger = logging.getLogger("pypdf")
    previous = pypdf_logger.level
    pypdf_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        pypdf_logger.setLevel(previous)


def _short(exc: BaseException) -> str:
    text = _collapse(str(exc)) or type(exc).__name__
    return text if len(text) <= 100 else text[:99] + "…"


def _load_pdf(
    path: Path,
    notes: list[str],
    limits: LoadLimits | None = None,
    deadline: _Deadline | None = None,
) -> Article:
    limits = limits or LoadLimits()
    deadline = deadline or _Deadline(None)
    overrides: dict[str, Any] = {}
    if limits.pdf_max_content_bytes is not None:
        # No single stream may inflate past the limit either (a zip bomb in one stream).
        cap = limits.pdf_max_content_bytes + 1
        kinds = ("zlib", "lzw", "run_length", "brotli")
        overrides = {f"{kind}_maximum_output_length": cap for kind in kinds}
    with _quiet_pypdf(), apply_configuration(None, **overrides):
        reader = _open_pdf(path)
        try:
            pages = list(reader.pages)
        except Exception as exc:  # pypdf raises many kinds of errors on broken files
            msg = f"corrupt PDF: {_short(exc)}"
            raise LoaderError(msg) from exc
        if not pages:
            msg = "corrupt PDF: no pages"
            raise LoaderError(msg)
        if limits.pdf_max_pages is not None and len(pages) > limits.pdf_max_pages:
            msg = (
                f"PDF has too many pages ({len(pages):,} > {limits.pdf_max_pages:,}); "
                "the limit is NEWSRAG_PDF_MAX_PAGES"
            )
            raise LoaderError(msg)
        oversized: set[int] = set()
        if limits.pdf_max_content_bytes is not None:
            oversized = _check_pdf_content(pages, limits.pdf_max_content_bytes, deadline)
        texts: list[str] = []
        broken = 0
        for number, page in enumerate(pages, start=1):
            deadline.check(f"page {number} of {len(pages)}")
            if number in oversized:
                broken += 1
                continue
            try:
                texts.append(_clean_text(_page_text(page, number, len(pages), deadline)).strip())
            except LoaderError:
                raise
            except Exception:  # one broken page should not lose the others
                broken += 1
        meta_title = _pdf_metadata_title(reader)
    too_big = (
        f" ({len(oversized)} with over {_megabytes(_PDF_PAGE_MAX_CONTENT)} MB of content)"
        if oversized
        else ""
    )
    if broken == len(pages):
        msg = f"corrupt PDF: no page could be read{too_big}"
        raise LoaderError(msg)
    if broken:
        notes.append(
            f"{path}: text of {broken} of {len(pages)} pages could not be extracted{too_big}"
        )
    body = "\n\n".join(text for text in texts if text)
    if not body:
        msg = "no extractable text in PDF (scanned?)"
        raise LoaderError(msg)
    title = meta_title
    if title is None:
        title, rest = _split_first_line_title(body)
        body = rest or body
    return _article(path, title=title or _title_from_stem(path), text=body)


# pypdf parses a page's whole content stream before extracting its text, and the time
# limit cannot interrupt that parse: a page with more content than this (about 2 s of
# parsing here) is skipped and counted as unreadable. Text pages hold 2-50 KB.
_PDF_PAGE_MAX_CONTENT = 2_000_000


def _check_pdf_content(pages: Sequence[Any], limit: int, deadline: _Deadline) -> set[int]:
    """Fail before any page is parsed when the pages' decompressed content is too large.

    Parsing costs time in proportion to the decompressed content, and a stream reused by
    many pages is parsed once per page, so it counts once per page here too.
    Decompressing is fast (zlib, in C) and pypdf keeps the result for the next page.
    Returns the numbers of the pages too large to parse (see ``_PDF_PAGE_MAX_CONTENT``).
    """
    total = 0
    oversized: set[int] = set()
    for number, page in enumerate(pages, start=1):
        deadline.check(f"measuring page {number} of {len(pages)}")
        try:
            contents = page.get_contents()
            size = len(contents.get_data()) if contents is not None else 0
        except LimitReachedError:
            size = limit + 1
        except Exception:
            continue  # a broken page is reported (or skipped) when its text is read
        total += size
        if size > _PDF_PAGE_MAX_CONTENT:
            oversized.add(number)
        if total > limit:
            msg = (
                f"PDF content too large after decompression (over {_megabytes(limit)} MB "
                f"by page {number} of {len(pages)}); the limit is NEWSRAG_PDF_MAX_CONTENT_MB"
            )
            raise LoaderError(msg)
    return oversized


def _page_text(page: Any, number: int, pages: int, deadline: _Deadline) -> str:
    """The text of one page; the deadline is checked every few hundred PDF operators."""
    operators = 0

    def visit(*_: Any) -> None:
        nonlocal operators
        operators += 1
        if operators % 256 == 0:
            deadline.check(f"page {number} of {pages}")

    return str(page.extract_text(visitor_operand_before=visit) or "")


def _open_pdf(path: Path) -> PdfReader:
    try:
        reader = PdfReader(path)  # tries the empty password itself
    except DependencyError as exc:
        msg = "encrypted PDF (decrypting it needs the 'cryptography' package)"
        raise LoaderError(msg) from exc
    except Exception as exc:
        msg = f"corrupt PDF: {_short(exc)}"
        raise LoaderError(msg) from exc
    if reader.is_encrypted:
        try:
            opened = reader.decrypt("") != PasswordType.NOT_DECRYPTED
        except Exception:
            opened = False
        if not opened:
            msg = "encrypted PDF"
            raise LoaderError(msg)
    return reader


def _pdf_metadata_title(reader: PdfReader) -> str | None:
    try:
        raw = reader.metadata.title if reader.metadata else None
    except Exception:  # a broken info dictionary only costs the title
        return None
    title = _collapse(_clean_text(raw)) if isinstance(raw, str) else ""
    if not title or _JUNK_PDF_TITLES.fullmatch(title):
        return None
    return title


# -- JSONL -------------------------------------------------------------------------------


def _load_jsonl(path: Path) -> Loaded:
    """One article per line, read as a stream; a malformed line fails alone."""
    name = str(path)
    origin = os.path.realpath(path)
    articles: list[Article] = []
    failures: list[LoadFailure] = []
    unlisted = 0
    legacy_lines = 0
    records = 0
    with path.open("rb") as stream:
        sample = stream.read(_SAMPLE_BYTES)
        if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            msg = "JSONL must be UTF-8, this file is UTF-16"
            raise LoaderError(msg)
        if _looks_binary(sample):
            raise LoaderError(_BINARY)
        stream.seek(0)
        for line_no, raw in enumerate(stream, start=1):
            if not raw.strip():
                continue
            records += 1
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                line = _decode_legacy(raw)[0]
                legacy_lines += 1
            try:
                articles.append(_jsonl_article(line.removeprefix("\ufeff"), origin, line_no))
            except LoaderError as exc:
                if len(failures) < _MAX_LINE_FAILURES:
                    failures.append(LoadFailure(f"{name}:{line_no}", str(exc)))
                else:
                    unlisted += 1
    if records == 0:
        raise LoaderError(_EMPTY)
    if unlisted:
        failures.append(LoadFailure(name, f"{unlisted} more malformed lines not listed"))
    notes = []
    if legacy_lines:
        notes.append(f"{name}: {legacy_lines} lines not valid UTF-8, decoded as Windows-1252")
    return Loaded(articles, failures, notes)


def _jsonl_article(line: str, origin: str, line_no: int) -> Article:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        msg = f"invalid JSON: {exc.msg}"
        raise LoaderError(msg) from None
    if not isinstance(record, dict):
        msg = f"not a JSON object (got {type(record).__name__})"
        raise LoaderError(msg)
    raw_text = record.get("text")
    text = _clean_text(raw_text).strip() if isinstance(raw_text, str) else ""
    if not text:
        msg = 'missing or empty "text" field'
        raise LoaderError(msg)
    url = _string_field(record, "url")
    source = _string_field(record, "source")
    raw_id = record.get("id")
    if isinstance(raw_id, str | int) and not isinstance(raw_id, bool) and str(raw_id).strip():
        article_id = str(raw_id).strip()
    elif url:
        article_id = sha1_hex("url:" + url)
    else:
        article_id = sha1_hex(f"file:{origin}:{line_no}")
    return Article(
        article_id=article_id,
        title=_string_field(record, "title") or _title_from_text(text),
        text=text,
        source=url or source or origin,
        origin=origin,
        url=url,
        published=_parse_date(record.get("published")),
        author=_names_field(record, "author", "authors", "byline"),
        site_name=_string_field(record, "site_name")
        or _string_field(record, "sitename")
        or named_outlet(url, source),
    )


def _names_field(record: dict[str, object], *keys: str) -> str | None:
    """A byline from the first of ``keys`` present: a string, or a list of names.

    >>> _names_field({"authors": ["Ana Ruiz", "Li Wei"]}, "author", "authors")
    'Ana Ruiz, Li Wei'
    """
    for key in keys:
        value = record.get(key)
        if isinstance(value, list):
            names = [_collapse(_clean_text(v)) for v in value if isinstance(v, str)]
            value = ", ".join(n for n in names if n)
        if isinstance(value, str) and (name := _collapse(_clean_text(value))):
            return name
    return None


def _string_field(record: dict[str, object], key: str) -> str | None:
    value = record.get(key)
    if isinstance(value, str):
        return _collapse(_clean_text(value)) or None
    return None
