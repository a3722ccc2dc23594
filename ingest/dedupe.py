"""One story, many copies: group near-duplicate articles with MinHash and LSH (datasketch).

Two articles belong to one story when the Jaccard similarity of their word 5-shingles
reaches ``threshold``: a wire copy under another headline, an updated version with a
paragraph trimmed or added. The default 0.5 was measured on the RealTime QA dev corpus
(docs/BENCHMARKS.md): pairs above 0.6 were versions of one story, pairs from 0.2 to 0.4
related but different stories (two Emmy nights, two moon articles), 0.4-0.6 mostly one
story.

The grouping is incremental (:meth:`StoryGrouper.add` one article at a time) and
deterministic: an article joins the story of its most similar earlier article.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from datasketch import LeanMinHash, MinHash, MinHashLSH

_WORD = re.compile(r"\w+")
SHINGLE_WORDS = 5
DEFAULT_THRESHOLD = 0.5
# Under this many words, an article joins a story only as an exact copy: two short items
# ("the central bank raised its rate by a quarter point" in 2018, "by three-quarters of a
# point" in 2022) share most of their few shingles while reporting different facts.
# Every article of RealTime QA dev has at least 50 words, so its grouping is unchanged.
MIN_WORDS = 50
_PERMUTATIONS = 128
_SCHEME = "affine32"  # datasketch 2.x default: stored signatures name the one they used


def shingles(text: str, size: int = SHINGLE_WORDS) -> set[str]:
    """The set of ``size``-word windows of ``text``, lowercased (one window if shorter).

    >>> sorted(shingles("The cat sat on the mat", 5))
    ['cat sat on the mat', 'the cat sat on the']
    """
    words = _WORD.findall(text.lower())
    return {" ".join(words[i : i + size]) for i in range(max(1, len(words) - size + 1))}


def is_short(text: str) -> bool:
    """Whether ``text`` has too few words to be grouped by similarity (see MIN_WORDS).

    >>> is_short("Rates rose."), is_short("word " * 60)
    (True, False)
    """
    return len(_WORD.findall(text)) < MIN_WORDS


def signature(text: str) -> LeanMinHash:
    """The MinHash of ``text``'s shingles."""
    minhash = MinHash(num_perm=_PERMUTATIONS, scheme=_SCHEME)
    minhash.update_batch([s.encode("utf-8") for s in shingles(text)])
    return LeanMinHash(minhash)


def signature_bytes(minhash: LeanMinHash) -> bytes:
    """The signature as stored in the library (128 little-endian uint64).

    >>> from_bytes(signature_bytes(signature("a b c d e f"))).jaccard(signature("a b c d e f"))
    1.0
    """
    return np.asarray(minhash.hashvalues, dtype="<u8").tobytes()


def from_bytes(blob: bytes) -> LeanMinHash:
    """The signature :func:`signature_bytes` stored (no text needed)."""
    hashvalues = np.frombuffer(blob, dtype="<u8").astype(np.uint64)
    return LeanMinHash(seed=1, hashvalues=hashvalues, scheme=_SCHEME)


@dataclass(frozen=True)
class Match:
    """Where :meth:`StoryGrouper.add` put an article: its story and the closest member."""

    story: str
    similar_to: str | None = None
    similarity: float = 0.0


class StoryGrouper:
    """Groups articles into stories as they arrive.

    Example:
        >>> grouper = StoryGrouper()
        >>> text = " ".join(f"word{i}" for i in range(200))
        >>> grouper.add("a", text).story, grouper.add("b", text + " one more line").story
        ('a', 'a')
        >>> grouper.add("c", "something else entirely, not the same story at all").story
        'c'
    """

    def __init__(self, threshold: float = DEFAULT_THRESHOLD) -> None:
        if not 0 < threshold <= 1:
            msg = f"threshold must be in (0, 1], got {threshold}"
            raise ValueError(msg)
        self.threshold = threshold
        # The LSH bands are tuned below the threshold so that candidates are not missed;
        # each candidate is then checked against the threshold itself.
        # Keyed by the exact signature: n identical copies are one LSH entry and one
        # comparison, not n (restoring 100,000 empty bodies' copies stays cheap).
        self._lsh = MinHashLSH(threshold=max(0.1, threshold * 0.8), num_perm=_PERMUTATIONS)
        self._signatures: dict[str, LeanMinHash] = {}
        self._story: dict[str, str] = {}
        # Articles by their exact signature: an exact copy is placed without comparing it
        # with every other copy (n identical texts were n^2/2 comparisons: 100,000 empty
        # article bodies took minutes), and with the smallest id as the original did.
        self._exact: dict[bytes, set[str]] = {}
        self._exact_first: dict[bytes, str] = {}

    def add(self, article_id: str, text: str) -> Match:
        """Place one article; an id added before is placed again with its new text."""
        return self.add_signature(article_id, signature(text), exact_only=is_short(text))

    def add_signature(
        self, article_id: str, minhash: LeanMinHash, *, exact_only: bool = False
    ) -> Match:
        """:meth:`add` with the text's signature already computed; ``exact_only``: join
        a story only as an exact copy (a short text, see :data:`MIN_WORDS`)."""
        self.remove(article_id)
        first = self._exact_first.get(_exact_key(minhash))
        similar = [(first, 1.0)] if first else self.similar(minhash, 1.0 if exact_only else None)
        self._insert(article_id, minhash)
        if not similar:
            self._story[article_id] = article_id
            return Match(article_id)
        other, similarity = similar[0]
        story = self._story[other]
        self._story[article_id] = story
        return Match(story, other, similarity)

    def similar(
        self, minhash: LeanMinHash, threshold: float | None = None
    ) -> list[tuple[str, float]]:
        """Placed articles at least ``threshold`` (default: the grouper's) similar to
        ``minhash``, most similar first (ties by id)."""
        floor = self.threshold if threshold is None else threshold
        found: list[tuple[str, float]] = []
        for key in self._lsh.query(minhash):
            similarity = float(minhash.jaccard(self._signatures[self._exact_first[key]]))
            if similarity >= floor:
                found += [(other, similarity) for other in self._exact[key]]
        return sorted(found, key=lambda p: (-p[1], p[0]))

    def restore(self, article_id: str, story: str, minhash: LeanMinHash) -> None:
        """Put back an article placed earlier (its story read from the library)."""
        self.remove(article_id)
        self._insert(article_id, minhash)
        self._story[article_id] = story

    def _insert(self, article_id: str, minhash: LeanMinHash) -> None:
        self._signatures[article_id] = minhash
        key = _exact_key(minhash)
        if key not in self._exact:
            self._lsh.insert(key, minhash)
        self._exact.setdefault(key, set()).add(article_id)
        first = self._exact_first.get(key)
        if first is None or article_id < first:
            self._exact_first[key] = article_id

    def remove(self, article_id: str) -> None:
        """Forget an article (deleted, or replaced by a newer version)."""
        if article_id in self._signatures:
            key = _exact_key(self._signatures.pop(article_id))
            del self._story[article_id]
            same = self._exact[key]
            same.discard(article_id)
            if not same:
                self._lsh.remove(key)
                del self._exact[key], self._exact_first[key]
            elif self._exact_first[key] == article_id:
                self._exact_first[key] = min(same)

    def __contains__(self, article_id: object) -> bool:
        return article_id in self._signatures

    @property
    def band_split(self) -> str:
        """The LSH's bands and rows per band: stored band keys are valid for this split only.

        >>> StoryGrouper(0.5).band_split
        'b32r4'
        """
        return f"b{self._lsh.b}r{self._lsh.r}"

    def stored_keys(self, blob: bytes) -> list[int]:
        """The keys the library stores for a signature (:func:`signature_bytes`): one per
        LSH band (the band's number and its slice of the hash values, so two signatures
        share a key where the LSH puts them in one bucket), then :func:`exact_key`.
        A 63-bit hash: a collision only adds a candidate that the Jaccard check rejects.

        >>> blob = signature_bytes(signature("a b c d e f"))
        >>> keys = StoryGrouper(0.5).stored_keys(blob)
        >>> len(keys), keys[-1] == exact_key(blob), all(0 <= k < 2**63 for k in keys)
        (33, True, True)
        """
        keys = [
            _key(band.to_bytes(2, "little") + blob[start * 8 : end * 8])
            for band, (start, end) in enumerate(self._lsh.hashranges)
        ]
        return [*keys, exact_key(blob)]

    def signature_of(self, article_id: str) -> LeanMinHash:
        return self._signatures[article_id]

    def story_of(self, article_id: str) -> str:
        return self._story[article_id]

    def stories(self) -> dict[str, list[str]]:
        """Every story id with its members, in the order they were added."""
        groups: dict[str, list[str]] = {}
        for article_id, story in self._story.items():
            groups.setdefault(story, []).append(article_id)
        return groups


def _exact_key(minhash: LeanMinHash) -> bytes:
    return bytes(minhash.hashvalues.tobytes())


def exact_key(blob: bytes) -> int:
    """The stored key of a whole signature: finds its exact copies (checked against the
    stored signature, so a collision finds nothing wrong).

    >>> exact_key(b"x" * 8) == exact_key(b"x" * 8) != exact_key(b"y" * 8)
    True
    """
    return _key(b"all" + blob)


def _key(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little") >> 1


def group_texts(
    items: Iterable[tuple[str, str]], threshold: float = DEFAULT_THRESHOLD
) -> dict[str, list[str]]:
    """Stories of ``(article_id, text)`` pairs: ``{story_id: [member ids]}``.

    >>> group_texts([("a", "one two three four five six"), ("b", "one two three four five six")])
    {'a': ['a', 'b']}
    """
    grouper = StoryGrouper(threshold)
    for article_id, text in items:
        grouper.add(article_id, text)
    return grouper.stories()
