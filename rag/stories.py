"""Answers cite a story once: retrieval keeps each story's best article, and its source
lists the other outlets' copies ("also reported by").

Stories are made at ingest (:mod:`ingest.stories`): near-duplicate articles (a wire copy
under another headline, an exact copy from a second outlet) share a story id. Here:

- :func:`collapse_stories` keeps, of the ranked hits of one story, only the best one, so
  near-copies stop crowding other sources out of the top ``k``, and gives it the story's
  other members;
- :func:`with_story_members` copies those members (and the author and site name) from the
  hits onto the answer's sources, whichever answerer (extractive or LLM) built them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from rag.records import Answer, StoryMember

if TYPE_CHECKING:
    from rag.retrieval import ArticleHit


def collapse_stories(
    hits: Sequence[ArticleHit],
    members: Mapping[str, Sequence[StoryMember]],
    *,
    collapse: bool = True,
) -> list[ArticleHit]:
    """``hits`` (best first) with one hit per story, each carrying its story's other
    members in ``also``; ``members`` maps an article id to its story's members, itself
    included (:meth:`rag.record_store.SqlRecordStore.story_members`). With ``collapse=False`` every
    hit stays, still told its story's members.

    >>> from rag.retrieval import ArticleHit
    >>> a = ArticleHit("a", "Quake", "ap.example", None, None, 2.0, ())
    >>> b = ArticleHit("b", "Quake hits", "cnn.example", None, None, 1.0, ())
    >>> story = [StoryMember("a", "Quake", "AP", None, None),
    ...          StoryMember("b", "Quake hits", "CNN", None, None)]
    >>> [(h.article_id, [m.outlet for m in h.also])
    ...  for h in collapse_stories([a, b], {"a": story, "b": story})]
    [('a', ['CNN'])]
    """
    seen: set[str] = set()
    kept: list[ArticleHit] = []
    for hit in hits:
        group = members.get(hit.article_id) or ()
        # The oldest member names the story: the same for every member of it.
        story = group[0].article_id if group else hit.article_id
        if collapse and story in seen:
            continue
        seen.add(story)
        own = next((m for m in group if m.article_id == hit.article_id), None)
        kept.append(
            replace(
                hit,
                author=own.author if own else hit.author,
                site_name=own.site_name if own else hit.site_name,
                also=tuple(m for m in group if m.article_id != hit.article_id),
            )
        )
    return kept


def with_story_members(answer: Answer, hits: Sequence[ArticleHit]) -> Answer:
    """``answer`` whose sources carry their hit's author, site name and "also reported
    by" members (an answerer builds sources from hits without them).

    >>> from rag.records import Source
    >>> from rag.retrieval import ArticleHit
    >>> m = StoryMember("b", "Quake hits", "CNN", "https://cnn.example/q", None)
    >>> hit = ArticleHit("a", "Quake", "ap.example", None, None, 1.0, (), also=(m,))
    >>> src = Source(1, "a", "Quake", "ap.example", None, None, "p")
    >>> with_story_members(Answer("q", "t [1]", (src,)), [hit]).sources[0].also[0].outlet
    'CNN'
    """
    by_id = {h.article_id: h for h in hits}
    if not answer.sources or not by_id:
        return answer
    sources = tuple(
        replace(s, author=hit.author, site_name=hit.site_name, also=hit.also)
        if (hit := by_id.get(s.article_id)) is not None
        else s
        for s in answer.sources
    )
    return replace(answer, sources=sources)
