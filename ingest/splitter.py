"""Sentence- and paragraph-aware splitting into chunks that fit the embedding model."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rag.records import Article, Chunk
from rag.text import split_sentences

TokenCounter = Callable[[Sequence[str]], list[int]]


def approximate_token_counter(texts: Sequence[str]) -> list[int]:
    """A model-free word-piece estimate (~1.3 pieces per word), for tests and tools."""
    return [int(len(re.findall(r"\w+|[^\w\s]", t)) * 1.3) + 1 for t in texts]


@dataclass(frozen=True)
class _Sentence:
    start: int
    end: int
    tokens: int
    paragraph: int


class SentenceSplitter:
    """Pack whole sentences into chunks of at most ``chunk_tokens`` word pieces.

    The article title is prepended to every chunk when it is embedded, so its word
    pieces count against the budget: a chunk plus its title never exceeds the model's
    window, and no tail goes unsearched. Chunks end at a paragraph break when one is
    near, and repeat up to ``overlap_tokens`` of trailing sentences so that an answer
    spanning a boundary is found whole in one chunk.

    Example:
        >>> s = SentenceSplitter(approximate_token_counter, chunk_tokens=40, overlap_tokens=8)
        >>> art = Article("a1", "T", "One two three. " * 20, "src", "origin")
        >>> chunks = s.split(art)
        >>> len(chunks) > 1 and all(art.text[c.start:c.end] == c.text for c in chunks)
        True
    """

    def __init__(
        self, count_tokens: TokenCounter, *, chunk_tokens: int = 200, overlap_tokens: int = 40
    ) -> None:
        if overlap_tokens >= chunk_tokens:
            msg = "overlap_tokens must be smaller than chunk_tokens"
            raise ValueError(msg)
        self.count_tokens = count_tokens
        self.chunk_tokens = chunk_tokens
        self.overlap_tokens = overlap_tokens

    def split(self, article: Article) -> list[Chunk]:
        title_tokens = min(self.count_tokens([article.title])[0] + 2, self.chunk_tokens // 4)
        budget = max(16, self.chunk_tokens - title_tokens)
        sentences = self._sentences(article.text, budget)
        spans = self._pack(sentences, budget)
        return [
            Chunk(
                chunk_id=f"{article.article_id}:{i}",
                article_id=article.article_id,
                index=i,
                text=article.text[start:end],
                start=start,
                end=end,
            )
            for i, (start, end) in enumerate(spans)
        ]

    def _sentences(self, text: str, budget: int) -> list[_Sentence]:
        spans = split_sentences(text)
        counts = self.count_tokens([text[s:e] for s, e in spans])
        result: list[_Sentence] = []
        paragraph = 0
        previous_end = 0
        for (start, end), tokens in zip(spans, counts, strict=True):
            if "\n" in text[previous_end:start]:
                paragraph += 1
            previous_end = end
            if tokens <= budget:
                result.append(_Sentence(start, end, tokens, paragraph))
            else:
                result += self._split_long(text, start, end, budget, paragraph)
        return result

    def _split_long(
        self, text: str, start: int, end: int, budget: int, paragraph: int
    ) -> list[_Sentence]:
        """Cut an over-long sentence (a table, a list without periods) at word boundaries."""
        words = [(m.start() + start, m.end() + start) for m in re.finditer(r"\S+", text[start:end])]
        counts = self.count_tokens([text[s:e] for s, e in words])
        pieces: list[_Sentence] = []
        piece_start, used = words[0][0], 0
        last_end = words[0][1]
        for (w_start, w_end), n in zip(words, counts, strict=True):
            if used and used + n > budget:
                pieces.append(_Sentence(piece_start, last_end, used, paragraph))
                piece_start, used = w_start, 0
            used += n
            last_end = w_end
        pieces.append(_Sentence(piece_start, last_end, min(used, budget), paragraph))
        return pieces

    def _pack(self, sentences: list[_Sentence], budget: int) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        current: list[_Sentence] = []
        used = 0
        i = 0
        while i < len(sentences):
            sentence = sentences[i]
            new_paragraph = bool(current) and sentence.paragraph != current[-1].paragraph
            fits = used + sentence.tokens <= budget
            # Prefer a paragraph break once the chunk is well filled.
            paragraph_break = (
                new_paragraph
                and used >= budget * 0.6
                and not self._paragraph_fits(sentences, i, budget - used)
            )
            if current and (not fits or paragraph_break):
                if not spans or current[-1].end > spans[-1][1]:
                    spans.append((current[0].start, current[-1].end))
                current, used = self._overlap(current, paragraph_break)
                if used + sentence.tokens > budget:
                    current, used = [], 0
                continue
            current.append(sentence)
            used += sentence.tokens
            i += 1
        if current and (not spans or current[-1].end > spans[-1][1]):
            spans.append((current[0].start, current[-1].end))
        return spans

    @staticmethod
    def _paragraph_fits(sentences: list[_Sentence], i: int, room: int) -> bool:
        paragraph = sentences[i].paragraph
        total = 0
        for sentence in sentences[i:]:
            if sentence.paragraph != paragraph:
                break
            total += sentence.tokens
        return total <= room

    def _overlap(
        self, current: list[_Sentence], paragraph_break: bool
    ) -> tuple[list[_Sentence], int]:
        if paragraph_break or self.overlap_tokens == 0:
            return [], 0
        kept: list[_Sentence] = []
        used = 0
        for sentence in reversed(current[1:]):  # never repeat the whole chunk
            if used + sentence.tokens > self.overlap_tokens:
                break
            kept.insert(0, sentence)
            used += sentence.tokens
        return kept, used
