"""The chat's render helpers and handlers, without a browser (see test_browser.py for that)."""

from __future__ import annotations

import html
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import gradio as gr
import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

import app
from rag.assistant import Assistant
from rag.records import NOT_FOUND_TEXT, Answer, Source
from tests.conftest import SEEDS, make_settings

HOSTILE = (
    "<script>alert(1)</script> <img src=x onerror=alert(2)> [click](javascript:alert(3)) "
    "&amp; **bold** _em_ `code` # heading | table | ![img](x) https://evil.example "
    "www.evil.example a@b.example \"quotes\" 'single' $$x^2$$ \\[1\\] <b onmouseover=x>"
)


def _source(number: int = 1, **overrides: Any) -> Source:
    values: dict[str, Any] = {
        "number": number,
        "article_id": f"a{number}",
        "title": "Italian PM proposes extending NATO's Article 5",
        "source": "example.com",
        "url": "https://example.com/story",
        "published": date(2025, 3, 20),
        "passage": "Before. Meloni proposed an umbrella. After.",
        "highlights": ("Meloni proposed an umbrella.",),
    }
    values.update(overrides)
    return Source(**values)


def _shown(markdown: str) -> str:
    """What a Markdown renderer shows for escaped text: escapes consumed, entities decoded."""
    return html.unescape(re.sub(r"\\(.)", r"\1", markdown))


# -- escaping ---------------------------------------------------------------------------


def test_escaped_markdown_shows_the_original_text_and_forms_no_markup() -> None:
    escaped = app.escape_markdown(HOSTILE)

    assert _shown(escaped) == HOSTILE
    assert "<" not in escaped and ">" not in escaped
    # Every punctuation character is either escaped or part of an entity we wrote.
    bare = re.sub(r"\\.|&(amp|lt|gt);", "", escaped)
    assert re.search(r"[!-/:-@\[-`{-~]", bare) is None, bare


def test_escaped_markdown_drops_indentation_that_would_start_a_code_block() -> None:
    assert app.escape_markdown("line one\n        indented") == "line one\nindented"


# -- the answer and its source cards ----------------------------------------------------


def test_markers_of_known_sources_link_to_their_card_of_this_turn() -> None:
    answer = Answer("q", "First [1]. Second [2]. Unknown [7].", sources=(_source(1), _source(2)))

    rendered = app.render_answer(answer, turn=3)

    assert rendered.count('<a class="cite"') == 2
    assert 'href="#src-3-1"' in rendered and 'href="#src-3-2"' in rendered
    assert "\\[7\\]" in rendered, "a marker without a source stays plain text"
    assert 'title="[1] Italian PM proposes extending NATO&#x27;s Article 5"' in rendered


def test_the_chat_shows_searched_for_when_the_query_differs_from_the_question() -> None:
    query = "what did Meloni propose? and what did Zelenskyy say about <it>?"
    answer = Answer("and what did Zelenskyy say about <it>?", "He spoke [1]", sources=(_source(1),))

    assert "Searched for" not in app.render_answer(answer)
    rendered = app.render_answer(replace(answer, search_query=query))

    assert rendered.startswith('He spoke <a class="cite"')
    line = rendered.split("\n\n")[-1]
    assert line.startswith('<small class="searched">Searched for: ')
    assert _shown(line.removeprefix('<small class="searched">')) == f"Searched for: {query}</small>"
    assert "<it>" not in rendered, "the query is escaped like the answer"


def test_a_hostile_answer_and_title_cannot_break_out_of_the_marker_link() -> None:
    title = 'x" onmouseover="alert(1)" data-x="<script>'
    answer = Answer("q", HOSTILE + " [1]", sources=(_source(1, title=title),))

    rendered = app.render_answer(answer)

    tags = re.findall(r"<[^>]*>", rendered)
    assert tags == [
        '<a class="cite" href="#src-1-1" title="[1] x&quot; onmouseover=&quot;alert(1)&quot; '
        'data-x=&quot;&lt;script&gt;">',
        "</a>",
    ]


def test_a_card_shows_title_outlet_date_link_and_the_highlighted_sentence() -> None:
    card = app.render_sources(Answer("q", "x [1]", sources=(_source(),)), turn=2)

    assert 'id="src-2-1"' in card
    assert "<strong>Italian PM proposes extending NATO&#x27;s Article 5</strong>" in card
    assert "example.com" in card and "2025-03-20" in card
    assert '<a href="https://example.com/story" target="_blank"' in card
    assert "Before. <mark>Meloni proposed an umbrella.</mark> After." in card


def test_a_card_of_a_file_shows_its_path_and_unknown_date() -> None:
    source = _source(url=None, source="/data/uploads/story.txt", published=None)

    card = app.render_sources(Answer("q", "x [1]", sources=(source,)))

    assert '<span class="outlet">/data/uploads/story.txt</span>' in card
    assert "date unknown" in card
    assert "<a " not in card


def test_hostile_card_fields_are_escaped_and_unsafe_links_are_not_links() -> None:
    source = _source(
        title=HOSTILE,
        source="<img src=x onerror=alert(4)>",
        url="javascript:alert(5)",
        passage=f"Intro. {HOSTILE} Outro.",
        highlights=(HOSTILE,),
    )

    card = app.render_sources(Answer("q", "x [1]", sources=(source,)))

    tags = re.findall(r"<([a-z]+)", card)
    assert set(tags) <= {"article", "div", "span", "strong", "blockquote", "mark"}
    assert "javascript:alert(5)" in card, "shown as text"
    assert f"<mark>{html.escape(HOSTILE)}</mark>" in card


def test_highlights_tolerate_different_whitespace_and_ignore_overlaps() -> None:
    passage = "One two.\nThree   four. Five."

    marked = app.highlight(passage, ["Three four.", "four. Five.", "missing", ""])

    assert marked == "One two.\n<mark>Three   four.</mark> Five."


def test_the_source_panel_shows_only_the_latest_answer_but_keeps_earlier_cards() -> None:
    first = app.Turn("what did Meloni propose?", Answer("q1", "a [1]", sources=(_source(),)))
    second = app.Turn("and Zelenskyy?", Answer("q2", NOT_FOUND_TEXT, found=False))

    panel = app.render_source_panel([first, second])

    assert '<section class="answer-sources" id="answer-1"' in panel
    assert '<section class="answer-sources current" id="answer-2"' in panel
    assert 'id="src-1-1"' in panel
    assert "No source supports an answer" in panel
    assert "Sources of the answer appear here" in app.render_source_panel([])


def test_a_partial_answer_waits_for_its_sources() -> None:
    partial = Answer("q", "Meloni [1", done=False)

    assert "appear when the answer is complete" in app.render_sources(partial)


# -- uploads ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("../../etc/passwd.txt", "passwd.txt"),
        ("C:\\Users\\me\\Story (final)!.MD", "Story_final.md"),
        ("a\uff0f..\uff0fb.txt", "b.txt"),  # fullwidth slashes normalize to "/"
        (".bashrc", "bashrc"),
        ("..", "upload"),
        ("", "upload"),
        ("x\x00y.html", "x_y.html"),
        ("news.jsonl ", "news.jsonl"),
        ("report.txt.exe", "report_txt.exe"),
    ],
)
def test_upload_names_are_reduced_to_a_plain_base_name(name: str, safe: str) -> None:
    assert app.safe_upload_name(name) == safe


def test_uploads_are_copied_inside_the_upload_dir_or_rejected_with_a_reason(
    tmp_path: Path,
) -> None:
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    good = incoming / "My story.txt"
    good.write_text("Title\n\nText.", encoding="utf-8")
    other = tmp_path / "other"
    other.mkdir()
    same_name = other / "My story.txt"
    same_name.write_text("Other\n\nText.", encoding="utf-8")
    script = incoming / "run.sh"
    script.write_text("echo hi", encoding="utf-8")
    big = incoming / "big.md"
    big.write_bytes(b"x" * 2048)
    upload_dir = tmp_path / "uploads"

    saved, rejected = app.save_uploads([good, same_name, script, big], upload_dir, max_mb=0.001)

    home = app.upload_path("My story.txt", upload_dir.resolve()).parent
    assert saved == [home / "My_story.txt", home / "My_story-2.txt"]
    assert saved[1].read_text(encoding="utf-8") == "Other\n\nText."
    assert [r.split(":")[0] for r in rejected] == ["run.sh", "big.md"]
    assert "unsupported file type" in rejected[0]
    assert "larger than 0.001 MB" in rejected[1]
    assert sorted(p.relative_to(upload_dir.resolve()) for p in upload_dir.rglob("*.*")) == [
        Path(home.name, "My_story-2.txt"),
        Path(home.name, "My_story.txt"),
    ]


def test_filters_come_from_the_fields_and_bad_dates_are_user_errors() -> None:
    filters = app.make_filters(["cnn.com"], " 2025-03-01 ", "")
    assert filters.sources == ("cnn.com",)
    assert filters.date_from == date(2025, 3, 1) and filters.date_to is None

    with pytest.raises(gr.Error, match="date like"):
        app.make_filters(None, "March 1", "")
    with pytest.raises(gr.Error, match="on or before"):
        app.make_filters(None, "2025-03-02", "2025-03-01")


# -- the handlers over a real assistant --------------------------------------------------


@pytest.fixture
def chat(assistant: Assistant, tmp_path: Path) -> app.ChatApp:
    return app.ChatApp(assistant, tmp_path / "uploads")


def _ask(
    chat: app.ChatApp, question: str, history: list[dict[str, Any]], turns: list[app.Turn]
) -> list[tuple[list[dict[str, Any]], list[app.Turn], str, str]]:
    return list(chat.respond(question, history, turns))


@pytest.mark.slow
def test_an_empty_library_says_how_to_add_articles(chat: app.ChatApp) -> None:
    *_, (history, turns, _, box) = _ask(chat, "what did Meloni propose?", [], [])

    assert "The library is empty" in history[-1]["content"]
    assert "upload files" in history[-1]["content"]
    assert "The library is empty" in app.stats_markdown(chat.assistant)
    assert [t.answer for t in turns] == [None] and box == ""


@pytest.mark.slow
def test_a_follow_up_question_uses_the_earlier_turn(chat: app.ChatApp) -> None:
    chat.assistant.ingest([SEEDS])
    *_, (history, turns, _, _) = _ask(chat, "what did Meloni propose?", [], [])
    steps = _ask(chat, "and what did Zelenskyy say?", history, turns)

    assert steps[0][0][-1]["content"] == app.SEARCHING, "the chat shows it is searching"
    history, turns, panel, _ = steps[-1]
    assert [m["role"] for m in history] == ["user", "assistant"] * 2
    assert "Zelenskyy" in history[-1]["content"]
    assert 'href="#src-2-1"' in history[-1]["content"]
    assert "Searched for: what did Meloni propose" in _shown(history[-1]["content"])
    assert [t.question for t in turns] == [
        "what did Meloni propose?",
        "and what did Zelenskyy say?",
    ]
    assert 'class="answer-sources current" id="answer-2"' in panel

    # The chat was cleared in the browser: its earlier turns are forgotten.
    *_, (history, turns, _, _) = _ask(chat, "what did Meloni propose?", [], turns)
    assert len(turns) == 1 and 'href="#src-1-1"' in history[-1]["content"]


@pytest.mark.slow
def test_filters_that_exclude_every_article_give_the_not_found_answer(chat: app.ChatApp) -> None:
    chat.assistant.ingest([SEEDS])

    *_, (history, _, panel, _) = list(
        chat.respond("what did Meloni propose?", [], [], ["cnn.com"], "", "")
    )

    assert "Not found in the ingested articles" in _shown(history[-1]["content"])
    assert "No source supports an answer" in panel


@pytest.mark.slow
def test_the_llm_answer_streams_into_the_chat_with_its_mode_visible(
    tmp_path: Path, assistant_factory: Callable[..., Assistant]
) -> None:
    settings = make_settings(tmp_path / "data", llm_provider="openai", llm_model="fake-model")
    reply = "Meloni proposed extending NATO's Article 5 protection to Ukraine [1]."
    model = GenericFakeChatModel(messages=iter([AIMessage(content=reply)]))
    assistant = assistant_factory(settings, model)
    assistant.ingest([SEEDS])
    chat = app.ChatApp(assistant, tmp_path / "uploads")

    steps = list(chat.respond("what did Meloni propose?", [], []))

    texts = [history[-1]["content"] for history, *_ in steps]
    assert texts[0] == app.SEARCHING
    assert len(texts) > 3, "the answer arrives in pieces"
    assert all(len(a) <= len(b) for a, b in itertools.pairwise(texts[1:-1]))
    assert "appear when the answer is complete" in steps[1][2]
    assert 'href="#src-1-1"' in texts[-1]
    assert "llm: fake-model" in steps[-1][2]
    assert "LLM: openai/fake-model" in assistant.mode_label
    assert "LLM: openai/fake-model" in _header_of(app.build_ui(assistant))


@pytest.mark.slow
def test_the_library_handlers_upload_paste_reseed_and_delete(
    chat: app.ChatApp, tmp_path: Path
) -> None:
    story = tmp_path / "harbor.txt"
    story.write_text(
        "Lumenfield harbor reopens\n\nThe new lighthouse cost 37 million kroner.",
        encoding="utf-8",
    )
    exe = tmp_path / "tool.exe"
    exe.write_bytes(b"MZ")

    report, stats, *_ = chat.upload([str(story), str(exe)])
    assert "added 1" in _shown(report)
    assert "added: Lumenfield harbor reopens" in _shown(report)
    assert "failed: tool.exe: unsupported file type" in _shown(report)
    assert "**1** article · **1** chunk · no publication dates" in stats
    assert app.upload_path("harbor.txt", tmp_path / "uploads").exists()
    assert story.exists() and exe.exists()  # files outside Gradio's temp dir are left alone

    report, *_ = chat.paste("", "text without a title")
    assert "needs a title" in report
    *kept, date_message = chat.paste("Pasted <b>story</b>", "Body text here.", "", "March 2025")
    assert "Not a date: write it as YYYY-MM-DD" in date_message  # next to the field...
    assert all(update == gr.update() for update in kept)  # ...and every field keeps its text
    report, *_, title_box, text_box, date_message = chat.paste(
        "Pasted <b>story</b>", "Body text here.", "https://example.com/x", "2025-03-20"
    )
    assert "added 1" in _shown(report)
    assert title_box["value"] == "" and text_box["value"] == "" and date_message == ""

    report, stats, *_ = chat.reseed()
    assert "added 1" in _shown(report)
    assert "**3** articles" in stats and "newest: 2025\\-03\\-20" in stats
    report, *_ = chat.reseed()
    assert "skipped 1" in _shown(report)

    pasted = next(r for r in chat.assistant.articles() if r.title == "Pasted <b>story</b>")
    message, kept = chat.delete_keeping(pasted.article_id)
    assert message == "Deleted “Pasted <b>story</b>”."
    assert kept is not None and kept.title == "Pasted <b>story</b>"
    assert "**2** articles" in app.stats_markdown(chat.assistant)
    assert pasted.article_id not in [r.article_id for r in chat.assistant.articles()]
    assert chat.delete_keeping(pasted.article_id) == ("That article was not in the library.", None)


def _header_of(demo: gr.Blocks) -> str:
    header = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "header")
    return str(header.value)  # type: ignore[attr-defined]


# -- the queue of a tab and the filter fields (issue 14) ---------------------------------


def test_date_fields_get_a_message_each_and_nothing_is_raised() -> None:
    problems = app.check_filter_fields("tomorrow", "March 2022", "2021-01-01")

    assert set(problems) == {"as_of", "date_from"}
    assert problems["date_from"].startswith("Not a date")
    assert app.check_filter_fields("", "2025-03-02", "2025-03-01") == {
        "date_to": "Must be on or after Published from (2025-03-02)."
    }
    assert app.check_filter_fields(" 2025-03-01 ", "", "") == {}


def test_only_active_filters_get_a_chip() -> None:
    assert app.filter_chips(None, "", "", "") == {}
    chips = app.filter_chips(["a.com", "b.com", "c.com", "d.com"], "", "2025-01-31", "2025-02-01")
    assert chips == {
        "sources": "Sources: a.com, b.com, c.com +1 ✕",
        "date_to": "To 2025-01-31 ✕",
        "as_of": "As of 2025-02-01 ✕",
    }


@pytest.mark.slow
def test_questions_queued_during_an_answer_are_answered_in_order_by_one_drain(
    chat: app.ChatApp,
) -> None:
    chat.assistant.ingest([SEEDS])
    assert chat.enqueue("tab", "what did Meloni propose?") == {}
    running = chat.drain("tab")
    first = next(running)
    assert first is not None and first.current == "what did Meloni propose?"
    # Asked while the first is being answered: a second drain leaves them to the first.
    assert chat.enqueue("tab", "and what did Zelenskyy say?") == {}
    assert chat.enqueue("tab", "bad", date_from="March 2022") == {
        "date_from": "Not a date: write it as YYYY-MM-DD, e.g. 2022-03-01."
    }
    assert list(chat.drain("tab")) == [None]
    *_, session = running

    assert session is not None and session.current is None and not session.pending
    assert [t.question for t in session.turns] == [
        "what did Meloni propose?",
        "and what did Zelenskyy say?",
    ]
    assert all(t.answer is not None and t.answer.done for t in session.turns)
    assert [m["role"] for m in session.history] == ["user", "assistant"] * 2


@pytest.mark.slow
def test_a_stop_keeps_the_partial_answer_and_the_next_question_follows(
    tmp_path: Path, assistant_factory: Callable[..., Assistant]
) -> None:
    settings = make_settings(tmp_path / "data", llm_provider="openai", llm_model="fake-model")
    reply = "Meloni proposed extending NATO's Article 5 protection to Ukraine [1]."
    model = GenericFakeChatModel(messages=itertools.cycle([AIMessage(content=reply)]))
    assistant = assistant_factory(settings, model)
    assistant.ingest([SEEDS])
    chat = app.ChatApp(assistant, tmp_path / "uploads")
    chat.enqueue("tab", "what did Meloni propose?")
    chat.enqueue("tab", "who proposed it?")

    running = chat.drain("tab")
    for session in running:
        assert session is not None
        answer = session.turns[-1].answer if session.turns else None
        if answer is not None and not answer.done and "Meloni" in answer.text:
            chat.request_stop("tab")
            break
    *_, session = running

    assert session is not None and len(session.turns) == 2
    stopped, full = (t.answer for t in session.turns)
    assert stopped is not None and stopped.done and "Ukraine" not in stopped.text
    assert "Stopped before the end" in session.history[1]["content"]
    assert full is not None and "Ukraine" in full.text


@pytest.mark.slow
def test_a_conversation_saved_through_one_app_host_is_listed_and_reopened_on_another(
    database_url: str, tmp_path: Path, assistant_factory: Callable[..., Assistant]
) -> None:
    # Two hosts: a data dir each, one library database (NEWSRAG_DATABASE_URL).
    host_a, host_b = (
        app.ChatApp(
            assistant_factory(make_settings(tmp_path / name, database_url=database_url)),
            tmp_path / name / "uploads",
        )
        for name in ("host-a", "host-b")
    )
    host_a.open_session("tab", "browser:alice")
    host_a.enqueue("tab", "what did Meloni propose?")
    *_, session = host_a.drain("tab")
    assert session is not None and session.conversation_id is not None

    host_b.open_session("tab", "browser:alice")
    assert [c for _, c in host_b.conversation_choices("tab")] == [session.conversation_id]
    assert host_b.open_conversation("tab", session.conversation_id)
    assert [t.question for t in host_b.session("tab").turns] == ["what did Meloni propose?"]
    host_b.open_session("other", "browser:bob")
    assert host_b.conversation_choices("other") == []


@pytest.mark.slow
def test_answered_turns_are_saved_per_owner_and_reopen_in_another_tab(chat: app.ChatApp) -> None:
    chat.assistant.ingest([SEEDS])
    chat.open_session("tab-1", "browser:alice")
    chat.enqueue("tab-1", "what did Meloni propose?")
    chat.enqueue("tab-1", "and what did Zelenskyy say?")
    *_, session = chat.drain("tab-1")
    assert session is not None and session.conversation_id is not None
    [(label, conversation_id)] = chat.conversation_choices("tab-1")
    assert label.startswith("what did Meloni propose? · ")

    # Another tab of the same browser (a reload) reopens it; another browser sees nothing.
    other = chat.open_session("tab-2", "browser:alice", conversation_id)
    assert [t.question for t in other.turns] == [t.question for t in session.turns]
    assert other.history == session.history
    stranger = chat.open_session("tab-3", "browser:bob", conversation_id)
    assert stranger.turns == [] and chat.conversation_choices("tab-3") == []
    assert not chat.rename_conversation("tab-3", "mine")

    assert chat.rename_conversation("tab-2", "NATO plan")
    path = chat.export_conversation("tab-2")
    assert path is not None and path.name == "NATO_plan.md"
    markdown = path.read_text(encoding="utf-8")
    assert markdown.startswith("# NATO plan\n\n## what did Meloni propose?\n")
    assert "1. Italian PM proposes extending NATO's Article 5" in markdown
    assert "seeds/meloni-article5-ukraine.txt" in markdown and str(SEEDS) not in markdown

    assert chat.delete_conversation("tab-2")
    assert chat.conversation_choices("tab-1") == [] and chat.session("tab-2").turns == []


@pytest.mark.slow
def test_the_outlet_filter_names_each_article_by_the_outlet_its_card_and_table_show(
    chat: app.ChatApp, tmp_path: Path
) -> None:
    wire = tmp_path / "wire.jsonl"
    rows = [
        {
            "url": f"https://edition.cnn.com/2025/03/0{n}/ferry",
            "source": "cnn.com",  # the outlet the record names, beside its URL
            "title": f"Vellmar ferry strike, day {n}",
            "published": f"2025-03-0{n}",
            "text": f"On day {n} the ferry strike in Vellmar went on, the union said.",
        }
        for n in (1, 2)
    ]
    wire.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    page = tmp_path / "bridge.html"
    page.write_text(
        "<html><head><title>Vellmar bridge opens</title>"
        '<meta property="og:site_name" content="Valley Post">'
        '<link rel="canonical" href="https://www.valleypost.example/bridge">'
        "</head><body><article><h1>Vellmar bridge opens</h1>"
        "<p>The new Vellmar bridge opened on Saturday at a cost of 88 million euros.</p>"
        "</article></body></html>",
        encoding="utf-8",
    )
    chat.assistant.ingest([wire, page, SEEDS])

    assert chat.source_choices() == [
        ("cnn.com (2)", "cnn.com"),
        ("Valley Post (1)", "Valley Post"),
        ("seeds (1)", "seeds"),
    ]
    rows_shown, *_ = chat.library_table(sort="title")
    assert {row[0]: row[1] for row in rows_shown} == {
        "Italian PM proposes extending NATO's Article 5 security umbrella to Ukraine": "seeds",
        "Vellmar bridge opens": "Valley Post",
        "Vellmar ferry strike, day 1": "cnn.com",
        "Vellmar ferry strike, day 2": "cnn.com",
    }
    for question, outlet in (
        ("How much did the Vellmar bridge cost?", "Valley Post"),
        ("What did the union say about the Vellmar ferry strike?", "cnn.com"),
    ):
        *_, (_, _, panel, _) = chat.respond(question, [], [], [outlet], "", "")
        assert f'<span class="outlet">{outlet}</span>' in panel, panel  # the card's outlet
        *_, (_, _, other, _) = chat.respond(question, [], [], ["seeds"], "", "")
        assert "No source supports an answer" in other


def test_a_row_clicked_just_before_a_search_reply_opens_the_article_clicked_or_nothing(
    chat: app.ChatApp,
) -> None:
    for n in range(1, 4):
        chat.assistant.add_text(f"Quillmoor notice {n}", f"Notice {n} of the Quillmoor harbor.")
    rows, _, ids, _ = chat.library_table("quillmoor", "title")
    assert [r[0] for r in rows] == [f"Quillmoor notice {n}" for n in (1, 2, 3)]
    assert chat.row_article(ids, 1, "Quillmoor notice 2") == ids[1]  # nothing moved
    # The reader clicked row 0 of the whole library's page, then the search's reply
    # replaced the server's ids: row 0 of the new page is another article.
    assert chat.row_article(ids, 0, "Quillmoor notice 3") == ids[2]
    # An article the new page does not hold: nothing opens.
    assert chat.row_article(ids, 0, "Italian PM proposes extending NATO's Article 5") is None
    assert chat.row_article(ids, 7, "Quillmoor notice 1") is None


def test_a_clicked_row_opens_its_own_outlets_copy_of_a_shared_title(
    chat: app.ChatApp, tmp_path: Path
) -> None:
    """Two outlets' reports under one title: the row's outlet and date say which one
    was clicked, also when the page changed between the click and its handling."""
    feed = tmp_path / "ferry.jsonl"
    feed.write_text(
        "\n".join(
            json.dumps(
                {
                    "id": outlet,
                    "url": f"https://{outlet}.example/ferry",
                    "title": "Ferry line approved",
                    "source": outlet,
                    "published": day,
                    "text": f"The council approved the ferry line, {outlet} reports. {extra}",
                }
            )
            for outlet, day, extra in (
                ("harbor-news", "2024-05-02", "Boats start in June."),
                ("quay-times", "2024-05-03", "The first crossing is planned for summer."),
            )
        )
    )
    assert len(chat.assistant.ingest([feed]).added) == 2
    rows, _, ids, _ = chat.library_table("ferry", "published")
    assert [r[1] for r in rows] == ["quay-times", "harbor-news"]
    assert chat.row_article(ids, 1, rows[1]) == ids[1]
    assert chat.row_article(ids, 0, rows[1]) == ids[1], "the page moved: found by outlet"
    assert chat.row_article(ids, 1, rows[0]) == ids[0]
    assert chat.row_article(ids, 0, ["Ferry line approved", "other-outlet", "2024-05-02"]) is None
