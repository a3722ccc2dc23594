"""Text utilities shared by splitting, lexical search and extractive answering."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator

import snowballstemmer

_STEMMER = snowballstemmer.stemmer("english")

# Abbreviations after which a period does not end a sentence (lowercased, no period).
_ABBREVIATIONS = frozenset(
    """mr mrs ms dr prof sr jr st mt ft gen col lt sgt capt gov sen rep rev pres vs etc
    inc corp co ltd no jan feb mar apr jun jul aug sep sept oct nov dec u.s u.k u.n e.g i.e
    a.m p.m approx dept est fig al""".split()
)
_BOUNDARY = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s)|\n")
_WORD = re.compile(r"[^\W_]+(?:['’.][^\W_]+)*", re.UNICODE)

STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for
    from further had has have having he her here hers herself him himself his how i if in
    into is it its itself just me more most my myself no nor not now of off on once only or
    other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up
    very was we were what when where which while who whom why will with would you your
    yours yourself yourselves also s t don says said say according one new may might must
    shall get got via per year years week weeks day days recently recent time ago last""".split()
)


def split_sentences(text: str, offset: int = 0) -> list[tuple[int, int]]:
    """Return ``(start, end)`` character spans of the sentences of ``text``.

    Newlines always end a sentence (news text puts headlines, bylines and paragraphs on
    their own lines); a period after a known abbreviation or a single initial does not.

    >>> t = "Mr. Smith went to Washington. He met Sen. Jones!\\nNew paragraph"
    >>> [t[s:e] for s, e in split_sentences(t)]
    ['Mr. Smith went to Washington.', 'He met Sen. Jones!', 'New paragraph']
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        end = match.end()
        if match.group() != "\n" and _is_abbreviation(text, match.start()):
            continue
        _append_span(text, start, end, spans, offset)
        start = end
    _append_span(text, start, len(text), spans, offset)
    return spans


def _is_abbreviation(text: str, dot: int) -> bool:
    if text[dot] != ".":
        return False
    begin = dot
    while begin > 0 and not text[begin - 1].isspace():
        begin -= 1
    word = text[begin:dot].lower().strip("\"'“‘(")
    if len(word) == 1 and word.isalpha():
        return True  # an initial: "George W. Bush"
    return word in _ABBREVIATIONS


def _append_span(
    text: str, start: int, end: int, spans: list[tuple[int, int]], offset: int
) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        spans.append((start + offset, end + offset))


def normalize(text: str) -> str:
    """Lowercase, NFKC-normalize, drop punctuation and collapse whitespace.

    Mirrors the ``answer_norm`` convention of the RealTime QA files so that matching an
    answer in a text is a whole-word test on normalized strings.

    >>> normalize("The U.S. “Inflation Reduction Act”, 1,600 — 12.6%, $19 million")
    'the us inflation reduction act 1600 12.6% $19 million'
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    text = re.sub(r"(?<=\d)\.(?=\d)", "\x00", text)
    text = re.sub(r"[-–—/]", " ", text)
    text = re.sub(r"[^\w\s%$€£¥\x00]", "", text)
    text = text.replace("\x00", ".").replace("_", " ")
    return " ".join(text.split())


def contains_phrase(haystack_norm: str, needle_norm: str) -> bool:
    """Whole-word containment of two already-normalized strings."""
    if not needle_norm:
        return False
    return f" {needle_norm} " in f" {haystack_norm} "


def words(text: str) -> Iterator[str]:
    """Lowercased word tokens, keeping inner apostrophes and dots ("u.s", "o'brien")."""
    for match in _WORD.finditer(unicodedata.normalize("NFKC", text)):
        yield match.group().lower().replace("’", "'")


@functools.lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """The Snowball (Porter 2) stem of a lowercased word, cached: news reuses words.

    >>> [stem(w) for w in ["proposed", "proposes", "proposal", "propose", "countries"]]
    ['propos', 'propos', 'propos', 'propos', 'countri']
    """
    return str(_STEMMER.stemWord(word.replace(".", "").replace("'", "")))


def content_terms(text: str) -> list[str]:
    """Stemmed content words of ``text``, stopwords and one-letter words dropped, in order."""
    return [stem(w) for w in words(text) if w not in STOPWORDS and len(w) > 1]
