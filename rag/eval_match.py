"""Lenient answer matching and the fair no-answer exclusion set of ``newsrag eval``.

The strict answer-hit (:func:`rag.evaluation.answer_hit`) compares normalized strings,
so "Brazil’s" (normalized "brazils") misses "Brazil", "a nine-year sentence" misses 9 and
"Iranian lawmakers" misses Iran. :func:`lenient_normalize` maps both sides to one form
first:

- curly quotes become straight ones and possessives are dropped ("Brazil’s" -> "brazil");
- "&" reads "and", "60 percent"/"60 per cent" reads "60%";
- number words become digits ("nine" -> "9", "sixty-three" -> "63");
- a country adjective or demonym becomes the country ("Iranian(s)" -> "iran"), from the
  demonyms of the maintained ``countryinfo`` package;
- an amount in words becomes its digits ("$12.6 million" -> "$12600000", as
  "$12,600,000" is), and a Roman numeral after a name its number ("Artemis I" ->
  "artemis 1", "Charles III" -> "charles 3");
- a plural reads as its singular ("chicken nuggets" -> "chicken nugget"): a word of 4 or
  more letters loses a final "s" unless it ends in "ss", "us" or "is".

:func:`fair_exclusions` builds the no-answer variant that does not punish a system for
finding the answer elsewhere: every article whose title or text holds the answer
(leniently), the gold articles, and the near-copies (same story) of each.
"""

from __future__ import annotations

import functools
import re
import unicodedata
import zlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from rag.text import contains_phrase, normalize

_MARKER = re.compile(r"\[\d+\]")
_UNITS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_NUMBER_WORDS = {w: i for i, w in enumerate(_UNITS)} | {w: 20 + 10 * i for i, w in enumerate(_TENS)}
_PERCENT = re.compile(r"(?<=\d)\s*(?:per\s?cent|percent)\b", re.IGNORECASE)
_POSSESSIVE = re.compile(r"(?<=\w)'s\b|(?<=s)'(?=\W|$)")
_SCALES = {"thousand": 1_000, "million": 1_000_000, "billion": 10**9, "trillion": 10**12}
_AMOUNT = re.compile(r"([$€£¥]?)(\d+(?:\.\d+)?)")
_ROMAN = {"I": 1, "II": 2, "III": 3, "IV": 4, "V": 5, "VI": 6, "VII": 7, "VIII": 8, "IX": 9}
_NAME_NUMERAL = re.compile(r"\b([A-Z][a-z]+) (I{1,3}|IV|VI{0,3}|IX)\b")


def _amount(token: str, scale: str) -> str | None:
    """``12.6`` and ``million`` as ``12600000`` (its currency sign kept), or None."""
    match = _AMOUNT.fullmatch(token)
    if match is None or scale not in _SCALES:
        return None
    value = Decimal(match[2]) * _SCALES[scale]
    return f"{match[1]}{int(value)}" if value == value.to_integral_value() else None


def _singular(token: str) -> str:
    if len(token) >= 4 and token.endswith("s") and not token.endswith(("ss", "us", "is")):
        return token[:-1]
    return token


@functools.cache
def _demonyms() -> dict[str, str]:
    """Normalized demonyms (and their plurals) and the normalized country of each.

    A demonym shared by several entries names the one with the shortest name, which is
    the country rather than its territories: "French" is France, not Réunion; "Chinese"
    China, not Macau; "American" the United States, not the Northern Mariana Islands.
    """
    from countryinfo import all_countries

    owners: dict[str, set[str]] = defaultdict(set)
    for country in all_countries():
        name = normalize(country.name() or "")
        for demonym in (country.demonym() or "").split(","):
            word = normalize(demonym)
            if word and name and word != name:
                owners[word].add(name)
    table = {word: min(names, key=lambda n: (len(n), n)) for word, names in owners.items()}
    forms: dict[str, str] = {}
    for word, name in table.items():
        forms[word] = name
        if word[-1] in "aion":  # Iranians, Israelis, Filipinos; not "Japaneses"
            forms.setdefault(word + "s", name)
    return forms


@functools.cache
def _phrases() -> dict[str, list[tuple[list[str], str]]]:
    """Every phrase :func:`lenient_normalize` rewrites, by first word, longest first."""
    table = {w: str(n) for w, n in _NUMBER_WORDS.items()}
    for tens in _TENS:  # "sixty-three" was normalized to "sixty three"
        for unit in _UNITS[1:10]:
            table[f"{tens} {unit}"] = str(_NUMBER_WORDS[tens] + _NUMBER_WORDS[unit])
    table |= _demonyms()
    by_first: dict[str, list[tuple[list[str], str]]] = defaultdict(list)
    for phrase in sorted(table, key=lambda p: len(p.split()), reverse=True):
        words = phrase.split()
        by_first[words[0]].append((words, table[phrase]))
    return dict(by_first)


def lenient_normalize(text: str) -> str:
    """Normalize ``text`` for lenient answer matching (see the module docstring).

    >>> lenient_normalize("Brazil’s nine-year plan, 60 percent of Iranians & more")
    'brazil 9 year plan 60% of iran and more'
    >>> lenient_normalize("Artemis I cost $4.1 billion, Charles III's nuggets")
    'artemis 1 cost $4100000000 charle 3 nugget'
    """
    text = unicodedata.normalize("NFKC", text).replace("’", "'").replace("‘", "'")
    text = _NAME_NUMERAL.sub(lambda m: f"{m[1]} {_ROMAN[m[2]]}", text)
    text = _POSSESSIVE.sub("", text)
    text = _PERCENT.sub("%", text.replace("&", " and "))
    # One pass over the words, longest phrase first: a regex alternation of ~300
    # demonyms took 20 s on the 23 MB dev corpus.
    phrases = _phrases()
    tokens = normalize(text).split()
    out: list[str] = []
    i = 0
    while i < len(tokens):
        amount = _amount(tokens[i], tokens[i + 1]) if i + 1 < len(tokens) else None
        if amount is not None:
            out.append(amount)
            i += 2
            continue
        for words, replacement in phrases.get(tokens[i], ()):
            if tokens[i : i + len(words)] == words:
                out.append(replacement)
                i += len(words)
                break
        else:
            out.append(tokens[i])
            i += 1
    return " ".join(_singular(token) for token in out)


def answer_hit(text: str, answer_norm: str) -> bool:
    """Whole-word match of the normalized gold answer in the normalized text (strict).

    >>> answer_hit("It was Saudi Arabia [1].", "saudi arabia")
    True
    """
    return contains_phrase(normalize(_MARKER.sub(" ", text)), answer_norm)


def answer_hit_lenient(text: str, answer: str, answer_norm: str) -> bool:
    """The strict answer-hit, or a whole-word match after :func:`lenient_normalize`.

    Both the raw gold answer and its normalized form are tried: the raw one still has
    its apostrophes ("New York City’s"), which ``answer_norm`` has turned into "citys".

    >>> answer_hit_lenient("Brazil’s race [1]", "Brazil", "brazil")
    True
    >>> answer_hit_lenient("Iranian lawmakers voted", "Iran", "iran")
    True
    >>> answer_hit_lenient("a nine-year sentence", "9", "9")
    True
    >>> answer_hit_lenient("Iraqi lawmakers voted", "Iran", "iran")
    False
    """
    if answer_hit(text, answer_norm):
        return True
    text = _MARKER.sub(" ", text)
    haystack = lenient_normalize(text)
    return any(
        contains_phrase(haystack, lenient_normalize(gold)) for gold in (answer, answer_norm) if gold
    )


# -- the fair no-answer variant -------------------------------------------------------------


@dataclass(frozen=True)
class StoryGroups:
    """Near-copies of each article: the same story under another id (syndicated, updated).

    Two articles are one story when at least ``min_overlap`` (half) of the smaller one's
    sampled 5-word shingles are also in the other (containment, so a shortened copy counts
    too), or a fifth of them when their normalized titles are equal (an updated version).
    A title alone is not enough: a daily digest ("News from around our 50 states") keeps
    its title over different stories. Shingles found in more than 20 articles (a site's
    newsletter box) count for neither; a text under ~20 words has too few sampled
    shingles to be grouped.
    """

    neighbours: Mapping[str, frozenset[str]]

    def of(self, article_id: str) -> frozenset[str]:
        return self.neighbours.get(article_id, frozenset())


SHINGLE_WORDS = 5
_SAMPLE_MOD = 4  # keep about a quarter of the shingles: a cheap, stable sketch
_BOILERPLATE = 20  # a shingle in more articles than this is a site's footer, not a story


@functools.lru_cache(maxsize=500_000)
def _word_code(word: str) -> int:
    # crc32, not hash(): str hashes change between processes, so would the groups.
    return zlib.crc32(word.encode())


def story_groups(
    articles: Mapping[str, tuple[str, str]], min_overlap: float = 0.5, same_title: float = 0.2
) -> StoryGroups:
    """Group ``{article id: (title, text)}`` into stories (see :class:`StoryGroups`).

    >>> body = " ".join(f"w{i}" for i in range(100))
    >>> g = story_groups({"a": ("Fed raises rates", body), "b": ("Fed Raises Rates!", body[:300]),
    ...                   "c": ("Fed raises rates", "an unrelated digest " * 30)})
    >>> sorted(g.of("a")), sorted(g.of("c"))
    (['b'], [])
    """
    titles: dict[str, str] = {}
    sketches: dict[str, set[int]] = {}
    postings: dict[int, list[str]] = defaultdict(list)
    for article_id, (title, text) in articles.items():
        titles[article_id] = normalize(title)
        codes = [_word_code(w) for w in normalize(text).split()]
        # A shingle is kept when its first word's code is: the same shingle is kept or
        # dropped in every article, and the others cost nothing.
        sketch = {
            hash(tuple(codes[i : i + SHINGLE_WORDS]))
            for i in range(len(codes) - SHINGLE_WORDS + 1)
            if codes[i] % _SAMPLE_MOD == 0
        }
        sketches[article_id] = sketch
        for h in sketch:
            postings[h].append(article_id)
    neighbours: dict[str, set[str]] = defaultdict(set)
    for article_id, sketch in sketches.items():
        shared: dict[str, int] = defaultdict(int)
        for h in sketch:
            if len(postings[h]) > _BOILERPLATE:
                continue
            for other in postings[h]:
                if other != article_id:
                    shared[other] += 1
        for other, count in shared.items():
            smaller = min(len(sketch), len(sketches[other]))
            title = titles[article_id]
            needed = same_title if title and title == titles[other] else min_overlap
            if smaller and count / smaller >= needed:
                neighbours[article_id].add(other)
                neighbours[other].add(article_id)
    return StoryGroups({a: frozenset(n) for a, n in neighbours.items()})


class AnswerIndex:
    """The corpus, leniently normalized once, to find the articles that hold an answer.

    >>> idx = AnswerIndex({"a": ("Vote", "Iranian lawmakers voted."), "b": ("x", "Iraq")})
    >>> idx.holding("Iran", "iran")
    ['a']
    """

    def __init__(self, articles: Mapping[str, tuple[str, str]]) -> None:
        # Padded with spaces once: a whole-word test is then a plain substring test.
        self._texts = {a: f" {lenient_normalize(f'{t} {x}')} " for a, (t, x) in articles.items()}
        self._strict = {a: f" {normalize(f'{t} {x}')} " for a, (t, x) in articles.items()}

    def holding(self, answer: str, answer_norm: str) -> list[str]:
        """Ids of the articles whose title or text holds the answer (lenient match)."""
        needles = {f" {n} " for g in (answer, answer_norm) if g if (n := lenient_normalize(g))}
        strict = f" {answer_norm} " if answer_norm else None
        return [
            a
            for a, text in self._texts.items()
            if (strict and strict in self._strict[a]) or any(n in text for n in needles)
        ]


def fair_exclusions(
    answers: Iterable[tuple[str, str, Sequence[str]]],
    index: AnswerIndex,
    groups: StoryGroups,
) -> list[tuple[str, ...]]:
    """For each ``(answer, answer_norm, gold ids)``: the article ids to leave out.

    That is the gold articles, every article holding the answer, and the story group of
    each of them, sorted.
    """
    result = []
    for answer, answer_norm, gold in answers:
        seeds = set(gold) | set(index.holding(answer, answer_norm))
        left_out = set(seeds)
        for article_id in seeds:
            left_out |= groups.of(article_id)
        result.append(tuple(sorted(left_out)))
    return result
