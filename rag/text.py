"""Text utilities shared by splitting, lexical search and extractive answering."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator

import snowballstemmer

_STEMMER = snowballstemmer.stemmer("english")

# Periods that do not end a sentence (lowercased, without the final period).
# Titles always precede a name: "Sen. Jones", "St. Louis", "Gen. Milley".
_TITLES = frozenset(
    """mr mrs ms dr prof sr jr st mt ft gen col lt sgt capt cmdr adm maj gov sen rep rev
    pres hon supt det insp messrs mme msgr""".split()
)
# Before a number: "Jan. 6", "No. 10", "Vol. 2"; before anything else they end a sentence.
_BEFORE_NUMBERS = frozenset(
    "jan feb mar apr jun jul aug sep sept oct nov dec no nos vol art sec fig pp p".split()
)
# Acronyms, initials and company suffixes: inside a sentence ("the U.S. economy",
# "George W. Bush", "J.K. Rowling", "Acme Inc. said") unless a word that usually opens
# a sentence follows ("... in the U.S. The company ...").
_ABBREVIATIONS = frozenset(
    """u.s u.k u.n e.u e.g i.e a.m p.m inc corp co ltd llc plc bros vs etc approx dept est al
    ave blvd rd""".split()
)
_SENTENCE_STARTERS = frozenset(
    """the a an he she it they we i you his her its their our this that these those there
    but and so yet however meanwhile in on at after before when while if as some many most
    according what who why how where then still also now today yesterday""".split()
)
# Names that end in "!": the "!" is part of the name, not the end of the sentence.
_BANG_NAMES = frozenset("yahoo jeopardy".split())
_BOUNDARY = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s)|\n")
_NEXT_WORD = re.compile(r"\s*(\S+)")
_CONTINUATION = "—–-,;:)]"
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
    their own lines). A ".", "!" or "?" does not when the text goes on in lowercase or
    with a continuing mark (a name such as "Ripley's Believe It or Not!", a quoted
    question: "'Why?' she asked."), after a title ("Sen. Jones"), a date or number
    abbreviation before a number ("Jan. 6"), an initial or acronym ("George W. Bush",
    "J.K. Rowling", "the U.S. economy") unless a usual sentence opener follows.

    >>> t = "Mr. Smith went to Washington. He met Sen. Jones!\\nNew paragraph"
    >>> [t[s:e] for s, e in split_sentences(t)]
    ['Mr. Smith went to Washington.', 'He met Sen. Jones!', 'New paragraph']
    >>> t = "\'Why?\' she asked. Ripley\'s Believe It or Not! is in the U.S. The end."
    >>> [t[s:e] for s, e in split_sentences(t)]
    ["'Why?' she asked.", "Ripley's Believe It or Not! is in the U.S.", 'The end.']
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        end = match.end()
        if match.group() != "\n" and not _ends_sentence(text, match.start(), end):
            continue
        _append_span(text, start, end, spans, offset)
        start = end
    _append_span(text, start, len(text), spans, offset)
    return spans


def _ends_sentence(text: str, mark: int, end: int) -> bool:
    """Whether the punctuation at ``text[mark:end]`` ends its sentence."""
    following = _NEXT_WORD.match(text, end)
    if following is None:
        return True
    after = following.group(1)
    if after[0] in _CONTINUATION:
        return False  # "Yahoo! — the company", "'Why?' — she asked"
    if after[0].isalpha() and after[0].islower() and not any(c.isupper() for c in after):
        return False  # goes on in lowercase ("iPhone" opens a sentence, "she" does not)
    word = _word_before(text, mark)
    if text[mark] == "!" and word in _BANG_NAMES:
        return False
    if text[mark] != "." or (end - mark > 1 and text[mark + 1] == "."):
        return True  # "!", "?", "…" or "..." followed by a capital
    opener = after.strip("\"'“‘(").lower()
    if word in _TITLES:
        return False
    if word in _BEFORE_NUMBERS:
        return not after[0].isdigit()
    initials = re.fullmatch(r"(?:[a-z]\.)*[a-z]", word) is not None
    if initials or word in _ABBREVIATIONS:
        return opener in _SENTENCE_STARTERS
    return True


def _word_before(text: str, mark: int) -> str:
    """The lowercased word ending at ``mark``, e.g. "u.s" before the final period."""
    begin = mark
    while begin > 0 and not text[begin - 1].isspace():
        begin -= 1
    return text[begin:mark].lower().strip("\"'“‘(")


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
