"""One story, many outlets: near-copies are one story, cited once, listing every outlet.

Real embedded Chroma, the real bundled MiniLM, articles ingested through the pipeline.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete

from app import Turn, answer_plain_text, conversation_markdown, render_sources
from rag.assistant import Assistant
from rag.cli import format_answer
from rag.components import build_index
from rag.database import STORIES
from rag.records import Article, answer_to_dict
from rag.settings import Settings
from tests.conftest import SEEDS

pytestmark = pytest.mark.slow

PARAGRAPHS = [
    "A magnitude 6.1 earthquake struck the mountain town of Velmora at dawn on Tuesday, "
    "damaging the old stone bridge and the clock tower, officials said.",
    "Rescue teams from three provinces searched collapsed houses through the morning. "
    "Mayor Ilse Brandt said forty-two people were treated for injuries at the district "
    "hospital and that no deaths had been reported.",
    "The regional seismology office said the quake's epicentre lay eleven kilometres "
    "north of the town at a depth of nine kilometres, and that aftershocks were likely "
    "for several days.",
    "Schools in Velmora will stay closed for the rest of the week while engineers inspect "
    "every public building, the education department announced.",
    "Residents spent the night in the sports hall, where volunteers handed out blankets, "
    "soup and bottled water, and a field kitchen was set up by the fire brigade.",
    "The railway line through the valley was closed after a landslide covered the tracks "
    "near the tunnel entrance; the operator expects to reopen it on Friday.",
]
WIRE = "\n\n".join(PARAGRAPHS)
# Another outlet's copy: new headline, the last paragraph trimmed, a line of its own added.
DAILY = "\n\n".join([*PARAGRAPHS[:-1], "Our reporter in the valley contributed to this story."])
OTHER = (
    "The city council of Harlow Bay approved a new ferry timetable on Monday. Boats to the "
    "islands will leave every forty minutes from June, the harbour master said, and the "
    "night service returns for the summer."
)


def _record(article_id: str, title: str, text: str, url: str, day: int, **extra: Any) -> str:
    row = {
        "id": article_id,
        "title": title,
        "text": text,
        "url": url,
        "published": f"2022-06-{day:02d}",
        **extra,
    }
    return json.dumps(row)


def _write_jsonl(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def story_library(assistant: Assistant, tmp_path: Path) -> Assistant:
    """Two outlets' near-copies of one story, an unrelated article and the seed article."""
    corpus = _write_jsonl(
        tmp_path / "news.jsonl",
        _record(
            "wire-1",
            "Earthquake damages Velmora bridge and clock tower",
            WIRE,
            "https://wire.example/2022/06/07/velmora-quake",
            7,
            author="Ana Ruiz",
            site_name="Wire Service",
        ),
        _record(
            "daily-1",
            "Velmora shaken: 42 hurt as quake hits mountain town",
            DAILY,
            "https://daily.example/news/velmora-earthquake",
            8,
            site_name="The Daily",
        ),
        _record("ferry-1", "Harlow Bay ferry timetable", OTHER, "https://bay.example/ferry", 8),
    )
    report = assistant.ingest([corpus, SEEDS])
    assert len(report.added) == 4, report.details()
    return assistant


def test_two_outlets_near_copies_are_one_story_cited_once_listing_both_outlets(
    story_library: Assistant,
) -> None:
    members = story_library.index.records.story_members(["wire-1", "daily-1", "ferry-1"])
    assert [m.article_id for m in members["wire-1"]] == ["wire-1", "daily-1"]
    assert [m.article_id for m in members["ferry-1"]] == ["ferry-1"]
    assert (story_library.stats().articles, story_library.stats().stories) == (4, 3)

    question = "How many people were treated for injuries after the Velmora earthquake?"
    answer = story_library.ask(question, as_of=date(2022, 6, 10))
    assert answer.found
    cited = [s for s in answer.sources if s.article_id in ("wire-1", "daily-1")]
    assert len(cited) == 1, [s.article_id for s in answer.sources]
    source = cited[0]
    (other,) = source.also
    expected = {
        "wire-1": ("Wire Service", "https://wire.example/2022/06/07/velmora-quake", 7),
        "daily-1": ("The Daily", "https://daily.example/news/velmora-earthquake", 8),
    }
    outlet, url, day = expected[other.article_id]
    assert (other.outlet, other.url, other.published) == (outlet, url, date(2022, 6, day))
    assert source.site_name == expected[source.article_id][0]

    # The same on every surface: ask --json / the Python API's dict, and the chat's card.
    data = answer_to_dict(answer)["sources"]
    listed = next(s for s in data if s["article_id"] == source.article_id)
    assert listed["also_reported_by"][0]["url"] == url
    assert listed["also_reported_by"][0]["published"] == f"2022-06-{day:02d}"
    card = render_sources(answer)
    assert "Also reported by" in card
    assert f'href="{url}"' in card
    assert f'href="{expected[source.article_id][1]}"' in card

    # The text surfaces: plain `newsrag ask`, the chat's copied answer, the Markdown export.
    also = f"also reported by: {outlet} (2022-06-{day:02d}) {url}"
    printed = format_answer(answer).splitlines()
    at = printed.index(f"[{source.number}] {source.title}, {source.published}")
    assert printed[at + 3] == f"    {also}"  # under its title, link and passage
    copied = answer_plain_text(answer).splitlines()
    at = copied.index(f"[{source.number}] {source.title} · {source.link}")
    assert copied[at + 1] == f"    {also}"
    exported = conversation_markdown("Quake", [Turn(question, answer)]).splitlines()
    at = next(i for i, line in enumerate(exported) if line.startswith(f"{source.number}. ["))
    assert exported[at + 1] == f"   - {also}"
    # Only a source with other outlets gets the line.
    assert sum("also reported by" in line for line in printed) == 1


def test_the_langchain_retriever_piped_into_the_answerer_keeps_the_other_outlets(
    story_library: Assistant,
) -> None:
    retriever = story_library.as_retriever(k=3, as_of=date(2022, 6, 10))
    question = "How many people were treated for injuries after the Velmora earthquake?"
    documents = retriever.invoke(question)
    quake = [d for d in documents if d.metadata["article_id"] in ("wire-1", "daily-1")]
    assert len({d.metadata["article_id"] for d in quake}) == 1
    assert len(quake[0].metadata["also_reported_by"]) == 1
    answer = (retriever | story_library.as_answerer()).invoke(question)
    cited = [s for s in answer.sources if s.article_id in ("wire-1", "daily-1")]
    assert [len(s.also) for s in cited] == [1]


def test_without_the_collapse_both_copies_crowd_the_results(
    story_library: Assistant, assistant_factory: Callable[..., Assistant], settings: Settings
) -> None:
    question = "Velmora earthquake bridge clock tower injuries"
    collapsed = [h.article_id for h in story_library.search(question, as_of=date(2022, 6, 10))]
    assert len({"wire-1", "daily-1"} & set(collapsed)) == 1
    apart = assistant_factory(settings.model_copy(update={"collapse_stories": False}))
    both = [h.article_id for h in apart.search(question, as_of=date(2022, 6, 10))]
    assert {"wire-1", "daily-1"} <= set(both)


def test_an_exact_copy_from_a_second_outlet_is_kept_as_a_member_of_the_story(
    assistant: Assistant,
) -> None:
    title = "Earthquake damages Velmora bridge and clock tower"
    wire = Article(
        "wire-2",
        title,
        WIRE,
        "wire.example",
        "test",
        "https://wire.example/quake",
        date(2022, 6, 7),
        site_name="Wire Service",
    )
    copy = Article(
        "paper-2",
        title,
        WIRE,
        "paper.example",
        "test",
        "https://paper.example/world/quake",
        date(2022, 6, 9),
    )
    ingestor = assistant.ingestor()
    assert ingestor.ingest_articles([wire]).added
    report = ingestor.ingest_articles([copy])
    assert [a.article_id for a in report.added] == ["paper-2"]
    assert not report.duplicates
    assert "same story" in "\n".join(report.details())
    members = assistant.index.records.story_members(["paper-2"])["paper-2"]
    assert [(m.outlet, m.url, m.published) for m in members] == [
        ("Wire Service", "https://wire.example/quake", date(2022, 6, 7)),
        ("paper.example", "https://paper.example/world/quake", date(2022, 6, 9)),
    ]
    # The same text again from the same page is still a duplicate, stored once.
    again = Article("wire-3", title, WIRE, "wire.example", "test", "https://wire.example/quake")
    assert ingestor.ingest_articles([again]).duplicates
    assert assistant.stats().articles == 2


def test_an_updated_version_from_the_same_url_replaces_the_old_one(assistant: Assistant) -> None:
    ingestor = assistant.ingestor()
    first = Article(
        "v1",
        "Quake hits Velmora",
        "\n\n".join(PARAGRAPHS[:3]),
        "wire.example",
        "test",
        "https://wire.example/quake",
        date(2022, 6, 7),
    )
    assert ingestor.ingest_articles([first]).added
    # Fetched again under a tracking link: the same canonical URL, a longer text.
    update = Article(
        "v2",
        "Quake hits Velmora: 42 hurt",
        WIRE,
        "wire.example",
        "test",
        "https://wire.example/quake?utm_source=feed",
        date(2022, 6, 8),
    )
    report = ingestor.ingest_articles([update])
    assert [a.article_id for a in report.added] == ["v2"]
    assert [(a.article_id, old) for a, old in report.replaced] == [
        ("v2", "'Quake hits Velmora' (https://wire.example/quake)")
    ]
    assert "replaced 1" in report.summary()
    assert set(assistant.index.records.get_records()) == {"v2"}
    hits = assistant.search("Velmora earthquake railway landslide", as_of=date(2022, 6, 10))
    assert [h.article_id for h in hits] == ["v2"]


def test_a_near_identical_text_from_the_same_outlet_replaces_the_older_version(
    assistant: Assistant,
) -> None:
    ingestor = assistant.ingestor()
    old = Article(
        "old",
        "Quake hits Velmora",
        WIRE,
        "wire.example",
        "test",
        "https://wire.example/quake-live",
        date(2022, 6, 7),
    )
    newer = Article(
        "new",
        "Quake hits Velmora (updated)",
        WIRE + " The bridge reopened at noon.",
        "wire.example",
        "test",
        "https://wire.example/quake-update",
        date(2022, 6, 8),
    )
    other_outlet = Article(
        "other",
        "Velmora quake",
        WIRE + " Reporting by our desk.",
        "daily.example",
        "test",
        "https://daily.example/quake",
        date(2022, 6, 8),
    )
    assert ingestor.ingest_articles([old]).added
    report = ingestor.ingest_articles([newer, other_outlet])
    assert [a.article_id for a, _ in report.replaced] == ["new"]
    assert set(assistant.index.records.get_records()) == {"new", "other"}
    # An older version arriving late is not stored over the newer one.
    late = Article(
        "late",
        "Quake hits Velmora (first take)",
        WIRE + " Early reports.",
        "wire.example",
        "test",
        "https://wire.example/quake-first",
        date(2022, 6, 6),
    )
    report = ingestor.ingest_articles([late])
    assert [a.article_id for a, _ in report.superseded] == ["late"]
    assert set(assistant.index.records.get_records()) == {"new", "other"}


def test_an_existing_library_gets_its_stories_on_open_without_embedding_again(
    story_library: Assistant, settings: Settings, embeddings: Any
) -> None:
    index = story_library.index
    chunks = index.writer.vector_count()
    with index.records.transaction() as con:  # as a library written before stories
        con.execute(delete(STORIES))
    assert len(index.records.unstoried_ids()) == 4
    assert [m.article_id for m in index.records.story_members(["daily-1"])["daily-1"]] == [
        "daily-1"
    ]

    class NoEmbedding:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"the backfill embedded something ({name})")

    reopened = build_index(settings, NoEmbedding())  # type: ignore[arg-type]
    assert reopened.records.unstoried_ids() == []
    members = reopened.records.story_members(["daily-1"])["daily-1"]
    assert [m.article_id for m in members] == ["wire-1", "daily-1"]
    assert reopened.writer.vector_count() == chunks


def test_author_and_site_name_of_an_html_page_are_stored_and_shown_on_the_card(
    assistant: Assistant, tmp_path: Path
) -> None:
    page = tmp_path / "quake.html"
    body = "".join(f"<p>{p}</p>" for p in PARAGRAPHS)
    page.write_text(
        "<html><head><title>Quake hits Velmora</title>"
        '<meta name="author" content="Ana Ruiz">'
        '<meta property="og:site_name" content="Valley Post">'
        '<link rel="canonical" href="https://valleypost.example/quake">'
        '<meta property="article:published_time" content="2022-06-07T08:00:00Z">'
        f"</head><body><article><h1>Quake hits Velmora</h1>{body}</article></body></html>",
        encoding="utf-8",
    )
    assert assistant.ingest([page]).added
    (record,) = assistant.index.records.get_records().values()
    assert (record.author, record.site_name) == ("Ana Ruiz", "Valley Post")
    answer = assistant.ask("Who is the mayor of Velmora?", as_of=date(2022, 6, 10))
    (source,) = answer.sources
    assert (source.author, source.site_name) == ("Ana Ruiz", "Valley Post")
    card = render_sources(answer)
    assert "Valley Post" in card
    assert "by Ana Ruiz" in card


def test_a_jsonl_record_gives_its_author_and_site_name(
    assistant: Assistant, tmp_path: Path
) -> None:
    corpus = _write_jsonl(
        tmp_path / "one.jsonl",
        _record(
            "a1",
            "Quake",
            WIRE,
            "https://x.example/q",
            7,
            authors=["Ana Ruiz", "Li Wei"],
            site_name="X News",
        ),
    )
    assert assistant.ingest([corpus]).added
    record = assistant.index.records.get_records()["a1"]
    assert (record.author, record.site_name) == ("Ana Ruiz, Li Wei", "X News")


def test_one_outlets_pages_with_the_same_text_under_unrelated_headlines_are_all_kept(
    assistant: Assistant,
) -> None:
    # A scraper that kept only page furniture gives many pages of one site one text: they
    # group as one story, but none is taken for an update of another.
    ingestor = assistant.ingestor()
    pages = [
        Article(
            f"week-{n}",
            title,
            WIRE,
            "week.example",
            "test",
            f"https://week.example/{n}",
            date(2022, 6, 7 + n),
        )
        for n, title in enumerate(["Will Ukraine join the EU?", "Quiz of the week: 20 August"])
    ]
    for page in pages:
        assert ingestor.ingest_articles([page]).added
    assert set(assistant.index.records.get_records()) == {"week-0", "week-1"}
    members = assistant.index.records.story_members(["week-1"])["week-1"]
    assert [m.article_id for m in members] == ["week-0", "week-1"]
