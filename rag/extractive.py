"""The default answerer: quotes the retrieved sentences that best answer the question.

No model generates text, so nothing can be made up: every sentence of the answer is a
verbatim quote, followed by the ``[n]`` of the article it comes from and that article's
publication date. When no sentence covers enough of the question the answer says it was
not found. Quotes from articles of different dates are put in date order, and the answer
says which source is the newest (a figure may have changed in between).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np

from rag.records import NOT_FOUND_TEXT, Answer, AnswerMode, Source
from rag.retrieval import ArticleHit
from rag.text import STOPWORDS, content_terms, split_sentences, stem, words

IdfLookup = Callable[[Sequence[str]], dict[str, float]]
Encoder = Callable[[list[str]], "np.ndarray"]
"""Embeds texts into L2-normalized rows (the question first)."""
SentenceVectors = Callable[[Sequence[str]], dict[str, "np.ndarray"]]
"""Stored sentence vectors by chunk id: row 0 the title, then one row per sentence of
the chunk text (:func:`rag.text.split_sentences`), NaN where none was stored."""

_NUMBER = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|"
    r"forty|fifty|hundred|thousand|million|billion|trillion|dozen|half)\b",
    re.IGNORECASE,
)
_DATE = re.compile(
    r"\b(1[89]\d\d|20\d\d|january|february|march|april|may|june|july|august|september|"
    r"october|november|december|monday|tuesday|wednesday|thursday|friday|saturday|sunday|"
    r"today|yesterday|tomorrow)\b",
    re.IGNORECASE,
)
_FIGURE = re.compile(
    r"\d+(?:[.,]\d+)*|\b(?:(?:one|two|three)[- ](?:quarters?|halfs?|thirds?)|quarter|half|"
    r"one|two|three|four|five|six|seven|eight|nine|ten|twenty|thirty|forty|fifty|hundred|"
    r"thousand|million|billion|trillion|dozen)\b",
    re.IGNORECASE,
)
_DATELINE = re.compile(r"[—–-]\s*$")  # "WASHINGTON —" on a line of its own
_CAPITALIZED = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][\w'’-]+")
# An outlet's mark run into the first sentence: "(CNN) NASA's ...". A dateline naming a
# place ("Kennedy Space Center, Florida (CNN)", "WASHINGTON –") is kept: the place can be
# the answer to a "where" question.
_WIRE_MARK = re.compile(
    r"^\s*\((?:CNN|Reuters|AP|AFP|UPI|Bloomberg|The Associated Press)\b[^()]{0,20}\)"
    r"\s*[—–-]{0,2}\s+(?=[\"“‘'A-Z0-9])"
)


@dataclass
class _Candidate:
    text: str
    hit_rank: int
    hit: ArticleHit
    chunk_id: str
    chunk_text: str
    chunk_index: int
    spans: list[tuple[int, int]]
    position: int  # index of this sentence in ``spans``
    terms: set[str] = field(default_factory=set)
    coverage: float = 0.0
    similarity: float = 0.0
    evidence: float = 0.0
    factor: float = 1.0  # retrieval prior and answer-shape multipliers
    score: float = 0.0


@dataclass(frozen=True)
class ExtractiveConfig:
    sentences: int = 2
    min_evidence: float = 0.40
    max_chars: int = 420
    # Sentences embedded at ask time to compare with the question: the best few by their
    # stored vectors, or more lexical front-runners when the index has no sentence vectors
    # (RealTime QA dev, full set: 3 after prescoring answer as well as 16 lexical ones;
    # answer-hit 0.594 vs 0.586, citation precision 0.777 vs 0.765, support 0.697 vs 0.701).
    embedded_candidates: int = 3
    lexical_candidates: int = 16
    prescored_candidates: int = 400  # sentences ranked by their stored vectors first
    fresh_days: int = 7
    prior_weight: float = 0.6  # how much the article's retrieval rank weighs on a sentence
    # A differently dated article's other figure is quoted beside the best answer when
    # its sentence covers nearly as much of the question and scores not far below.
    contrast_ratio: float = 0.25
    contrast_coverage: float = 0.8


# "Which hourly amount ...?", "what percentage ...?": the noun asked for says the kind.
_ASKS_AMOUNT = re.compile(
    r"\b(?:which|what)\s+(?:[\w-]+\s+){0,2}?(?:amount|sum|price|cost|figure|percentage|"
    r"percent|share|number|total|fee|fine|wage|salary)s?\b"
)
_ASKS_DATE = re.compile(r"\b(?:which|what)\s+(?:[\w-]+\s+){0,2}?(?:year|month|day|date)s?\b")


def question_kind(question: str) -> str:
    """A coarse answer type: number, date, person, place or other.

    >>> question_kind("How many people died?"), question_kind("Who won the match?")
    ('number', 'person')
    >>> question_kind("Which company cut jobs?"), question_kind("What did Meloni propose?")
    ('entity', 'other')
    >>> question_kind("The law could raise the wage to which hourly amount?")
    'number'
    >>> question_kind("In which year did it open?"), question_kind("What price cuts?")
    ('date', 'number')
    """
    q = question.lower()
    if re.search(r"\bhow (many|much|old|long|far|tall)\b", q) or _ASKS_AMOUNT.search(q):
        return "number"
    if re.search(r"\bwhen\b", q) or _ASKS_DATE.search(q):
        return "date"
    if re.search(r"\bwho(m|se)?\b", q):
        return "person"
    if re.search(r"\bwhere\b|\bwhich (country|city|state|nation)\b", q):
        return "place"
    if re.search(
        r"\bwhich\b|\bwhat (?!(is|are|was|were|did|does|do|has|have|had|will|would|can|"
        r"could|should|might|happened)\b)\w+",
        q,
    ):
        return "entity"  # "which company...", "what show...": a name is the answer
    return "other"


_ASKED = re.compile(
    r"\b(?:which|what)\s+((?:[a-z][\w'’-]*\s+){0,3}?)([a-z][\w-]*)\s+"
    r"(?:is|are|was|were|has|have|had|did|does|do|will|would|can|could|remains?|received?|"
    r"made|won|became|got|took|saw|showed|\w+ed)\b",
    re.IGNORECASE,
)


def asked_noun(question: str) -> str | None:
    """The noun a "which/what ... ?" question asks for, or None.

    >>> asked_noun("Which wildly popular show was recently green lit?")
    'show'
    >>> asked_noun("A cheese is popular. Which product is it?"), asked_noun("Who won?")
    ('product', None)
    """
    match = _ASKED.search(question)
    if match is None:
        return None
    noun = match.group(2).lower()
    if noun in STOPWORDS or len(noun) < 3:
        return None
    return noun


class ExtractiveAnswerer:
    """Picks the sentences that best answer the question and cites their articles.

    ``idf`` gives a weight per question word (rarer words matter more); the assistant
    wires it to the BM25 index statistics.

    Example:
        >>> answerer = ExtractiveAnswerer(idf=lambda ws: {w: 1.0 for w in ws})
        >>> answerer.answer("what did Meloni propose?", hits).text  # doctest: +SKIP
        "Italian Prime Minister Giorgia Meloni has suggested extending NATO's Article 5 ... [1]"
    """

    def __init__(
        self,
        idf: IdfLookup,
        encode: Encoder | None = None,
        config: ExtractiveConfig | None = None,
        sentence_vectors: SentenceVectors | None = None,
    ) -> None:
        self.idf = idf
        self.encode = encode
        self.config = config or ExtractiveConfig()
        self.sentence_vectors = sentence_vectors

    def answer(
        self,
        question: str,
        hits: Sequence[ArticleHit],
        query: str | None = None,
        as_of: date | None = None,
    ) -> Answer:
        """Answer ``question`` from ``hits``; ``query`` (with follow-up context) scores terms.

        With ``as_of``, evidence from an article much older than that date counts less:
        a news question asked on a date is about that week's news.
        """
        query = query or question
        candidates = self._candidates(hits)
        weights = self._weights(question)
        # What the answer must cover is the question's own words: words a follow-up
        # borrows from the conversation raise the sentences on its topic, but do not
        # dilute the coverage of a short follow-up ("who won?") into "Not found".
        own_total = sum(weights.values())
        borrowed = {t: w for t, w in self._weights(query).items() if t not in weights}
        if borrowed:
            # Together at most half the question's own weight, so its words lead.
            scale = min(0.3, 0.5 * own_total / sum(borrowed.values())) if own_total else 0.3
            weights.update({t: scale * w for t, w in borrowed.items()})
        if not candidates or not weights:
            return _not_found(question, hits)
        self._score(candidates, weights, question, hits, own_total or sum(weights.values()))
        ranked = sorted(candidates, key=lambda c: c.score, reverse=True)
        ranked = self._rerank(question, ranked, query)
        if as_of is not None:
            # Stale evidence counts less for the answer as it does for the confidence:
            # a years-old sentence does not lead an answer about this week's news.
            for c in ranked:
                c.score *= self._freshness(c.hit.published, as_of)
            ranked.sort(key=lambda c: c.score, reverse=True)
        best = ranked[0]
        confidence = best.evidence * self._freshness(best.hit.published, as_of)
        if confidence < self.config.min_evidence:
            return _not_found(question, hits, confidence)
        chosen = self._with_antecedent(question, ranked, self._select(question, ranked))
        chosen = self._contrast(question, ranked, chosen)
        return _compose(question, chosen, hits, confidence)

    def _freshness(self, published: date | None, as_of: date | None) -> float:
        """1 for an article published within ``fresh_days`` before ``as_of``, fading to
        1/2 over the next two weeks (on RealTime QA dev, 80% of the gold articles are at
        most 7 days old at question time; the best non-gold articles, 26%)."""
        if as_of is None or published is None or self.config.fresh_days <= 0:
            return 1.0
        stale = (as_of - published).days - self.config.fresh_days
        return 1.0 if stale <= 0 else max(0.5, 1.0 - stale / 28)

    # -- scoring -----------------------------------------------------------------------

    def _weights(self, query: str) -> dict[str, float]:
        raw = [w for w in words(query) if w not in STOPWORDS and len(w) > 1]
        idf = self.idf(raw)
        weights: dict[str, float] = {}
        for word in raw:
            key = stem(word)
            # +1 keeps a word that is in every chunk of a tiny library from counting zero.
            weights[key] = max(weights.get(key, 0.0), 1.0 + idf.get(word, 1.0))
        return weights

    @staticmethod
    def _candidates(hits: Sequence[ArticleHit]) -> list[_Candidate]:
        seen: set[str] = set()
        candidates = []
        for rank, hit in enumerate(hits):
            sources = [(c.chunk_index, c.chunk_id, c.text) for c in hit.chunks]
            if not any(len(c.text.strip()) >= 20 for c in hit.chunks):
                # The headline is quoted only when it is all there is (chunk -1): an
                # answer quotes the article's sentences, and the lede states the
                # headline's facts in full (its match still raises the lede, below).
                sources.append((-1, hit.chunks[0].chunk_id if hit.chunks else "", hit.title))
            for chunk_index, chunk_id, chunk_text in sources:
                spans = split_sentences(chunk_text)
                # The lede: the first real sentence, not a dateline ("New York CNN —",
                # "Los Angeles / New York CNN Business —": six words, still a dateline).
                lede = next(
                    (
                        i
                        for i, (a, b) in enumerate(spans)
                        if len(chunk_text[a:b].split()) >= 6
                        and not _DATELINE.search(chunk_text[a:b])
                    ),
                    0,
                )
                for position, (start, end) in enumerate(spans):
                    text = _without_wire_mark(chunk_text[start:end])
                    key = " ".join(text.lower().split())
                    if key in seen or len(text) < 20 or _DATELINE.search(text):
                        continue  # a dateline on its own line is not a sentence to quote
                    seen.add(key)
                    terms = set(content_terms(text))
                    if chunk_index == 0 and position == lede:
                        # The headline sums up the lede: a question worded like the
                        # headline ("proposes") is answered by the lede ("suggested").
                        terms |= set(content_terms(hit.title))
                    candidates.append(
                        _Candidate(
                            text=text,
                            hit_rank=rank,
                            hit=hit,
                            chunk_id=chunk_id,
                            chunk_text=chunk_text,
                            chunk_index=chunk_index,
                            spans=spans,
                            position=position,
                            terms=terms,
                        )
                    )
        return candidates

    def _score(
        self,
        candidates: list[_Candidate],
        weights: dict[str, float],
        question: str,
        hits: Sequence[ArticleHit],
        total: float,
    ) -> None:
        kind = question_kind(question)
        question_terms = set(weights)
        top_score = hits[0].score if hits else 1.0
        title_coverage = {
            h.article_id: sum(weights[t] for t in question_terms & set(content_terms(h.title)))
            / total
            for h in hits
        }
        # Names in a headline that the question does not use: the headline is not
        # quoted, but a sentence naming what it names often holds a "which ...?" answer.
        headline_names = {
            h.article_id: {t for m in _CAPITALIZED.findall(h.title) for t in content_terms(m)}
            - question_terms
            for h in hits
        }
        for c in candidates:
            matched = question_terms & c.terms
            c.coverage = min(1.0, sum(weights[t] for t in matched) / total)
            prior = c.hit.score / top_score if top_score else 0.0
            factor = (1.0 - self.config.prior_weight) + self.config.prior_weight * prior
            new_terms = len(c.terms - question_terms)
            if new_terms < 2:  # restates the question (a headline), answers nothing
                factor *= 0.5
            factor *= _kind_factor(kind, c.text, question)
            if kind in ("person", "place", "entity") and c.terms & headline_names[c.hit.article_id]:
                factor *= 1.2
            n_words = len(c.text.split())
            if n_words < 8:
                factor *= 0.7
            elif n_words < 14:  # short quotes look similar to any question, say little
                factor *= 0.85
            elif n_words > 70:
                factor *= 0.8
            if c.text.rstrip("\"'”’) ").endswith("?"):
                factor *= 0.3  # a question (quiz pages repeat them) answers nothing
            if c.chunk_index < 0 or (c.chunk_index == 0 and c.position <= 2):
                # A news lede states the main facts: on RealTime QA dev, 69 of the 98
                # answers found in a gold article are in its first three sentences. The
                # more the headline matches the question, the more its lede answers it.
                factor *= 1.3 + 0.4 * title_coverage[c.hit.article_id]
            c.factor = factor
            c.evidence = c.coverage
            c.score = c.evidence * factor

    def _rerank(
        self, question: str, ranked: list[_Candidate], query: str | None = None
    ) -> list[_Candidate]:
        """Blend in the embedding similarity of the best candidates to the question.

        Words alone miss paraphrases ("proposed" vs "suggested"). Embedding sentences
        here is what an answer waits for, so only a few front-runners are embedded: the
        lexical ones, or, when ingest stored sentence vectors (pooled from the pass that
        embedded each chunk, read in its context), the best by those vectors. Stored
        vectors rank well but score less sharply than a sentence embedded alone, so the
        final similarity is always the sentence's own.

        A follow-up is compared with itself and with its resolved ``query`` alike: "which
        team does he play for?" alone resembles no sentence naming the team, and the
        query alone resembles every sentence of the previous topic.
        """
        if self.encode is None:
            return ranked
        question_vector: np.ndarray | None = None
        if query and query != question:
            both = self.encode([question, query])
            question_vector = (both[0] + both[1]) / 2  # dot products: the mean similarity
        stored = self._stored_vectors(ranked[: self.config.prescored_candidates])
        if stored:
            if question_vector is None:
                question_vector = self.encode([question])[0]
            for c in ranked:
                vector = stored.get(id(c))
                sim = 0.0 if vector is None else float(vector @ question_vector)
                c.score = (0.5 * c.coverage + 0.5 * max(0.0, sim)) * c.factor
            ranked = sorted(ranked, key=lambda c: c.score, reverse=True)
        size = self.config.embedded_candidates if stored else self.config.lexical_candidates
        head = ranked[:size]
        texts = [c.text for c in head]
        if question_vector is None:
            vectors = self.encode([question, *texts])
            question_vector, sentence_vectors = vectors[0], vectors[1:]
        else:
            sentence_vectors = self.encode(texts)
        for c, vector in zip(head, sentence_vectors, strict=True):
            c.similarity = float(vector @ question_vector)
            c.evidence = 0.5 * c.coverage + 0.5 * max(0.0, c.similarity)
            c.score = c.evidence * c.factor
        for c in ranked[len(head) :]:
            c.evidence = 0.5 * c.coverage
            c.score = c.evidence * c.factor
        return sorted(ranked, key=lambda c: c.score, reverse=True)

    def _stored_vectors(self, candidates: list[_Candidate]) -> dict[int, np.ndarray]:
        """The stored vector of each candidate that has one, by ``id(candidate)``."""
        if self.sentence_vectors is None:
            return {}
        matrices = self.sentence_vectors(sorted({c.chunk_id for c in candidates if c.chunk_id}))
        found: dict[int, np.ndarray] = {}
        for c in candidates:
            matrix = matrices.get(c.chunk_id)
            if matrix is None or not len(matrix):
                continue
            if c.chunk_index < 0:  # the headline: row 0, read in the context of a chunk
                row = matrix[0]
            elif matrix.shape[0] == len(c.spans) + 1:
                row = matrix[c.position + 1]
            else:  # the chunk was split differently when it was stored
                continue
            if not np.isnan(row).any():
                found[id(c)] = row
        return found

    def _select(self, question: str, ranked: list[_Candidate]) -> list[_Candidate]:
        best = ranked[0]
        chosen = [best]
        length = len(best.text)
        asked = _facts(question)
        stated = _facts(best.text)  # the names and figures the quotes chosen state

        def follows(c: _Candidate) -> bool:
            if c.hit.article_id != best.hit.article_id:
                return False
            if best.chunk_index < 0:  # the headline is continued by the lede
                return c.chunk_index == 0 and c.position == 0
            return c.chunk_index == best.chunk_index and c.position == best.position + 1

        # The sentence right after the best one usually completes it: a small preference.
        rest = sorted(ranked[1:], key=lambda c: c.score * (1.25 if follows(c) else 1.0))
        for c in reversed(rest):
            if len(chosen) >= self.config.sentences:
                break
            if c.score * (1.25 if follows(c) else 1.0) < 0.5 * best.score:
                break
            # Another article is cited only when it is nearly as good: each extra source
            # is one more citation that has to be right.
            if c.hit.article_id != best.hit.article_id and c.score < 0.85 * best.score:
                continue
            if length + len(c.text) > self.config.max_chars:
                continue
            facts = _facts(c.text)
            fresh = facts - asked
            if c.hit.article_id != best.hit.article_id and fresh and fresh <= stated:
                # Another outlet's report of the same names and figures: one more
                # citation that adds nothing to read and may not be the source the
                # reader wants (citation precision on RealTime QA dev: docs/BENCHMARKS.md,
                # session 8). One that names nothing may say something else in words
                # ("a maple breakfast sandwich"), so it is kept.
                continue
            chosen.append(c)
            stated |= facts
            length += len(c.text)
        # Keep quotes from one article in reading order.
        chosen.sort(key=lambda c: (c.hit_rank, c.chunk_index, c.position))
        return chosen

    @staticmethod
    def _with_antecedent(
        question: str, ranked: list[_Candidate], chosen: list[_Candidate]
    ) -> list[_Candidate]:
        """Add the sentence a quoted sentence refers back to when it names the thing
        asked for only as "the ... <noun>".

        Asked "which popular show was renewed?", the sentence "Netflix announced that the
        popular South Korean show is renewed" matches best but does not name the show;
        the sentence before it does ("Squid Game is coming back."). The best sentence
        (ranked first) is looked at first, then the other quotes: ``chosen`` is in
        reading order, where an earlier sentence may come before the best one.
        """
        target = asked_noun(question)
        if target is None:
            return chosen
        refers = re.compile(
            rf"\b(?:the|this|that)\s+(?:[\w'’-]+\s+){{0,4}}?{re.escape(target)}s?\b",
            re.IGNORECASE,
        )
        best = ranked[0]
        for quote in [best, *(c for c in chosen if c is not best)]:
            if quote.position == 0 or quote.chunk_index < 0 or not refers.search(quote.text):
                continue
            previous = next(
                (
                    c
                    for c in ranked
                    if c.hit.article_id == quote.hit.article_id
                    and c.chunk_index == quote.chunk_index
                    and c.position == quote.position - 1
                ),
                None,
            )
            if previous is None or previous in chosen or len(previous.text.split()) < 6:
                continue  # none, or a dateline ("Colombo, Sri Lanka CNN —")
            if _kind_factor("entity", previous.text, question) < 1:
                continue  # it names nothing the question does not
            # In reading order, so right before the sentence it explains.
            return sorted(
                [*chosen, previous], key=lambda c: (c.hit_rank, c.chunk_index, c.position)
            )
        return chosen

    def _contrast(
        self, question: str, ranked: list[_Candidate], chosen: list[_Candidate]
    ) -> list[_Candidate]:
        """Add the figure an article of another date gives, when it differs.

        Asked "how much did the Fed raise rates?", a library holding the March hike and
        the June one should show both, dated, rather than one as if it were the only.
        """
        best = chosen[0]
        if question_kind(question) != "number" or best.hit.published is None:
            return chosen
        if any(c.hit.article_id != best.hit.article_id for c in chosen):
            return chosen  # another article is quoted already
        figures = _figures(best.text)
        for c in ranked[1:]:
            if c.score < self.config.contrast_ratio * best.score:
                break
            # Its retrieval prior is lower (an older article): judge it by the words of
            # the question it covers. Headlines state no figure of the story.
            if c.hit.published in (None, best.hit.published) or c.chunk_index < 0:
                continue
            if c.coverage < self.config.contrast_coverage * best.coverage:
                continue
            # It must state a figure the best sentence does not: one that repeats the
            # best one's figures and drops some ("63 hot dogs" beside "his 15th title,
            # 63 hot dogs") contrasts nothing, and its citation adds nothing.
            if figures and _figures(c.text) - figures:
                return [*chosen, c]
        return chosen


def _without_wire_mark(sentence: str) -> str:
    """``sentence`` without an outlet's mark in front (the card names the outlet).

    >>> _without_wire_mark("(CNN) NASA will not launch Artemis I this month.")
    'NASA will not launch Artemis I this month.'
    >>> _without_wire_mark("Kennedy Space Center, Florida (CNN) NASA will not launch.")
    'Kennedy Space Center, Florida (CNN) NASA will not launch.'
    """
    match = _WIRE_MARK.match(sentence)
    if match is None or len(sentence) - match.end() < 20:
        return sentence
    return sentence[match.end() :]


def _facts(text: str) -> set[str]:
    """The names and figures a sentence states: stemmed capitalized words and numbers.

    >>> sorted(_facts("The Colorado Avalanche won 4-2 on Sunday in Tampa."))
    ['2', '4', 'avalanch', 'colorado', 'sunday', 'tampa']
    """
    names = {t for m in _CAPITALIZED.findall(text) for t in content_terms(m)}
    return names | {m.group(0).lower() for m in _FIGURE.finditer(text)}


def _figures(text: str) -> frozenset[str]:
    """The numbers a sentence states, as written ("0.75", "three-quarters", "25").

    >>> sorted(_figures("raised rates by three-quarters of a point to 1.75%"))
    ['1.75', 'three-quarters']
    """
    return frozenset(m.group(0).lower() for m in _FIGURE.finditer(text))


def _kind_factor(kind: str, text: str, question: str) -> float:
    if kind == "number":
        return 1.25 if _NUMBER.search(text) else 0.75
    if kind == "date":
        return 1.25 if _DATE.search(text) else 0.75
    if kind in ("person", "place", "entity"):
        q = question.lower()
        names = [m for m in _CAPITALIZED.findall(text) if m.lower() not in q]
        return 1.15 if names else 0.85
    return 1.0


def _not_found(question: str, hits: Sequence[ArticleHit], confidence: float = 0.0) -> Answer:
    return Answer(
        question=question,
        text=NOT_FOUND_TEXT,
        sources=(),
        found=False,
        confidence=confidence,
        mode=AnswerMode.EXTRACTIVE.value,
        retrieved=tuple(c for h in hits for c in h.chunks),
    )


def _compose(
    question: str, chosen: list[_Candidate], hits: Sequence[ArticleHit], confidence: float
) -> Answer:
    dates = {c.hit.published for c in chosen}
    dated = len(dates) > 1 and None not in dates
    if dated:
        # Sources of different dates: oldest first, so a figure's latest value ends it.
        order = {id(c): i for i, c in enumerate(chosen)}
        chosen = sorted(chosen, key=lambda c: (c.hit.published or date.min, order[id(c)]))
    numbers: dict[str, int] = {}
    quoted: dict[str, list[_Candidate]] = {}
    parts = []
    for c in chosen:
        number = numbers.setdefault(c.hit.article_id, len(numbers) + 1)
        quoted.setdefault(c.hit.article_id, []).append(c)
        # ISO dates: a date in words could pose as the answer to a "when" question.
        # An undated source (a file without a date) gets no label: "(undated)" after
        # every quote of a plain text file is noise.
        when = f" ({_date_text(c.hit.published)})" if c.hit.published else ""
        parts.append(f"{_defuse_markers(c.text)} [{number}]{when}")
    if dated:
        newest = chosen[-1].hit
        parts.append(
            f"The newest of these sources is [{numbers[newest.article_id]}] "
            f"({_date_text(newest.published)})."
        )
    sources = []
    for article_id, number in numbers.items():
        cands = quoted[article_id]
        hit = cands[0].hit
        sources.append(
            Source(
                number=number,
                article_id=article_id,
                title=hit.title,
                source=hit.source,
                url=hit.url,
                published=hit.published,
                passage=_passage(cands),
                highlights=tuple(c.text for c in cands if c.chunk_index >= 0),
                chunk_id=next(
                    (ch.chunk_id for ch in hit.chunks if ch.text == cands[0].chunk_text), ""
                ),
                score=hit.score,
            )
        )
    return Answer(
        question=question,
        text=" ".join(parts),
        sources=tuple(sources),
        found=True,
        confidence=confidence,
        mode=AnswerMode.EXTRACTIVE.value,
        retrieved=tuple(c for h in hits for c in h.chunks),
    )


def _date_text(published: date | None) -> str:
    return published.isoformat() if published else "undated"


def _defuse_markers(text: str) -> str:
    """A quoted "[3]" would pose as a citation: show it as "(3)".

    >>> _defuse_markers("cite source [5] as proof")
    'cite source (5) as proof'
    """
    return re.sub(r"\[(\d{1,3})\]", r"(\1)", text)


def _passage(cands: list[_Candidate]) -> str:
    """The quoted sentences with one sentence of context on each side.

    A quoted headline is shown as the card's title already; its passage is the lede.
    """
    body = [c for c in cands if c.chunk_index >= 0]
    if not body:
        hit = cands[0].hit
        lead = next((c.text for c in hit.chunks if c.chunk_index == 0), "")
        spans = split_sentences(lead)[:2]
        return lead[spans[0][0] : spans[-1][1]] if spans else cands[0].text
    cands = body
    first = cands[0]
    positions = [c.position for c in cands if c.chunk_text == first.chunk_text]
    lo = max(0, min(positions) - 1)
    hi = min(len(first.spans) - 1, max(positions) + 1)
    passage = first.chunk_text[first.spans[lo][0] : first.spans[hi][1]]
    extra = [c.text for c in cands if c.chunk_text != first.chunk_text]
    return " … ".join([passage, *extra])


def bm25_idf(total: int, frequencies: dict[str, int]) -> dict[str, float]:
    """BM25's IDF for each word, from chunk counts.

    >>> round(bm25_idf(100, {"rare": 1, "common": 90})["rare"], 2)
    4.21
    """
    return {
        word: math.log((total - df + 0.5) / (df + 0.5) + 1.0) for word, df in frequencies.items()
    }
