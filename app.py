"""The Gradio chat: a thin layer over :class:`rag.Assistant`.

Run it with ``make run`` or ``newsrag serve``. Everything shown here is one call of the
Python API away; this module only renders. Article text is hostile input: it is always
HTML-escaped (and Markdown-escaped in the chat) before it reaches the browser.
"""

from __future__ import annotations

import html
import logging
import re
import shutil
import tempfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import gradio as gr

from ingest.loaders import SUPPORTED_SUFFIXES
from rag.assistant import Assistant
from rag.errors import NewsragError
from rag.records import Answer, Source
from rag.settings import Settings
from rag.store import Filters

logger = logging.getLogger(__name__)

CSS = """
.source-card { border: 1px solid var(--border-color-primary); border-radius: 8px;
  padding: 10px 12px; margin: 8px 0; background: var(--background-fill-secondary); }
.source-card:target, .source-card.flash { outline: 3px solid var(--color-accent); }
.source-card .num { font-weight: 700; margin-right: 6px; }
.source-card .meta { font-size: 0.85em; opacity: 0.8; word-break: break-all; }
.source-card blockquote { margin: 6px 0 0 0; padding-left: 8px;
  border-left: 3px solid var(--border-color-accent); }
.source-card mark { background: #fde68a; color: inherit; padding: 0 1px; }
a.cite { text-decoration: none; font-weight: 600; }
.mode-badge { font-size: 0.85em; opacity: 0.85; }
"""

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~<>])")


def escape_markdown(text: str) -> str:
    """Make article text inert in the Markdown chat: HTML-escape, then escape Markdown.

    >>> escape_markdown("<b>[x](javascript:alert(1))</b>")
    '&lt;b&gt;\\\\[x\\\\]\\\\(javascript:alert\\\\(1\\\\)\\\\)&lt;/b&gt;'
    """
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=True))


def render_answer(answer: Answer) -> str:
    """The chat message: escaped text whose ``[n]`` markers link to the source cards."""
    titles = {s.number: s.title for s in answer.sources}
    text = escape_markdown(answer.text)

    def link(match: re.Match[str]) -> str:
        n = int(match.group(1))
        if n not in titles:
            return match.group(0)
        title = html.escape(titles[n], quote=True)
        return f'<a class="cite" href="#src-{n}" title="[{n}] {title}">[{n}]</a>'

    return re.sub(r"\\\[(\d+)\\\]", link, text)


def render_sources(answer: Answer | None) -> str:
    """Numbered source cards (title, outlet, date, link, quoted passage with highlights)."""
    if answer is None:
        return "<p class='empty'>Sources of the answer appear here.</p>"
    if not answer.sources:
        return "<p class='empty'>No source supports an answer to this question.</p>"
    return "\n".join(_card(s) for s in answer.sources)


def _card(source: Source) -> str:
    link = html.escape(source.link, quote=True)
    if source.url and source.url.startswith(("http://", "https://")):
        where = f'<a href="{link}" target="_blank" rel="noopener noreferrer">{link}</a>'
    else:
        where = f"<span>{link}</span>"
    published = source.published.isoformat() if source.published else "date unknown"
    passage = html.escape(source.passage)
    for sentence in source.highlights:
        escaped = html.escape(sentence)
        if escaped and escaped in passage:
            passage = passage.replace(escaped, f"<mark>{escaped}</mark>", 1)
    return (
        f'<div class="source-card" id="src-{source.number}">'
        f'<div><span class="num">[{source.number}]</span>'
        f"<strong>{html.escape(source.title)}</strong></div>"
        f'<div class="meta">{html.escape(source.source)} · {published} · {where}</div>'
        f"<blockquote>{passage}</blockquote></div>"
    )


def _history_pairs(history: list[dict[str, Any]]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    question: str | None = None
    for message in history:
        content = message.get("content")
        if not isinstance(content, str):
            continue
        if message.get("role") == "user":
            question = content
        elif message.get("role") == "assistant" and question is not None:
            pairs.append((question, re.sub(r"<[^>]+>", "", content)))
            question = None
    return pairs


def _parse_day(text: str | None, label: str) -> date | None:
    if not text or not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        msg = f"{label} must be a date like 2025-03-20"
        raise gr.Error(msg) from None


def stats_markdown(assistant: Assistant) -> str:
    stats = assistant.stats()
    if stats.articles == 0:
        return (
            "**The library is empty.** Upload articles (.txt, .md, .html, .pdf, .jsonl), "
            "paste one below, or re-ingest the seed articles."
        )
    newest = ", ".join(d.isoformat() for d in stats.newest[:3]) or "unknown"
    return f"**{stats.articles}** articles · **{stats.chunks}** chunks · newest: {newest}"


def report_markdown(report: Any) -> str:
    lines = [f"**{report.summary()}**"]
    lines += [f"- {html.escape(line)}" for line in report.details()[:50]]
    return "\n".join(lines)


def build_ui(assistant: Assistant) -> gr.Blocks:
    """The chat, its source panel and the library side panel."""
    settings = assistant.settings
    upload_dir = Path(tempfile.mkdtemp(prefix="newsrag-upload-"))

    def article_choices() -> list[tuple[str, str]]:
        return [
            (f"{r.title[:80]} ({r.published or 'undated'})", r.article_id)
            for r in assistant.articles()
        ]

    def source_choices() -> list[str]:
        return [s for s, _ in assistant.stats().sources]

    def respond(
        message: str,
        history: list[dict[str, Any]],
        sources: list[str] | None,
        date_from: str,
        date_to: str,
    ) -> Iterator[tuple[list[dict[str, Any]], str, str]]:
        history = list(history or [])
        if not message or not message.strip():
            yield history, render_sources(None), ""
            return
        filters = Filters(
            tuple(sources or ()),
            _parse_day(date_from, "From"),
            _parse_day(date_to, "To"),
        )
        pairs = _history_pairs(history)
        history.append({"role": "user", "content": escape_markdown(message)})
        if assistant.index.is_empty():
            history.append(
                {"role": "assistant", "content": "The library is empty: add articles first."}
            )
            yield history, render_sources(None), ""
            return
        history.append({"role": "assistant", "content": "…"})
        try:
            for answer in assistant.stream(message, filters=filters, history=pairs):
                history[-1] = {"role": "assistant", "content": render_answer(answer)}
                yield history, render_sources(answer if answer.done else None), ""
        except NewsragError as exc:
            history[-1] = {"role": "assistant", "content": escape_markdown(f"⚠ {exc}")}
            yield history, render_sources(None), ""

    def upload(files: list[Any] | None) -> tuple[str, str, Any, Any]:
        if not files:
            return (
                "Choose files to upload first.",
                stats_markdown(assistant),
                gr.update(),
                gr.update(),
            )
        paths = []
        rejected = []
        for f in files:
            original = Path(getattr(f, "name", str(f)))
            name = re.sub(r"[^\w.-]+", "_", original.name).lstrip(".") or "upload.txt"
            if original.suffix.lower() not in SUPPORTED_SUFFIXES:
                rejected.append(f"{name}: unsupported file type")
                continue
            if original.stat().st_size > settings.upload_max_mb * 1024 * 1024:
                rejected.append(f"{name}: larger than {settings.upload_max_mb:g} MB")
                continue
            target = upload_dir / name
            shutil.copyfile(original, target)
            paths.append(target)
        text = "\n".join(f"- failed: {html.escape(r)}" for r in rejected)
        if paths:
            report = assistant.ingest(paths)
            text = report_markdown(report) + ("\n" + text if text else "")
        return (
            text,
            stats_markdown(assistant),
            gr.update(choices=article_choices()),
            gr.update(choices=source_choices()),
        )

    def paste(title: str, text: str) -> tuple[str, str, Any, Any]:
        try:
            report = assistant.add_text(title, text)
        except NewsragError as exc:
            return f"⚠ {html.escape(str(exc))}", stats_markdown(assistant), gr.update(), gr.update()
        return (
            report_markdown(report),
            stats_markdown(assistant),
            gr.update(choices=article_choices()),
            gr.update(choices=source_choices()),
        )

    def reseed() -> tuple[str, str, Any, Any]:
        report = assistant.ingest([settings.seeds_dir])
        return (
            report_markdown(report),
            stats_markdown(assistant),
            gr.update(choices=article_choices()),
            gr.update(choices=source_choices()),
        )

    def delete(article_id: str | None) -> tuple[str, str, Any, Any]:
        if not article_id:
            return (
                "Choose an article to delete.",
                stats_markdown(assistant),
                gr.update(),
                gr.update(),
            )
        deleted = assistant.delete_article(article_id)
        text = "Deleted." if deleted else "That article was not in the library."
        return (
            text,
            stats_markdown(assistant),
            gr.update(choices=article_choices(), value=None),
            gr.update(choices=source_choices()),
        )

    with gr.Blocks(title="newsrag") as demo:
        gr.Markdown("## newsrag — ask your news articles")
        gr.Markdown(
            f"<span class='mode-badge'>Answer mode: {html.escape(assistant.mode_label)}</span>",
            elem_id="mode",
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=320):
                chatbot = gr.Chatbot(label="Chat", elem_id="chat", height=420, sanitize_html=True)
                with gr.Row():
                    question = gr.Textbox(
                        placeholder="Ask about the articles, e.g. what did Meloni propose?",
                        show_label=False,
                        scale=5,
                        elem_id="question",
                        autofocus=True,
                    )
                    send = gr.Button("Ask", variant="primary", scale=1, elem_id="ask")
                with gr.Accordion("Filters", open=False):
                    source_filter = gr.Dropdown(
                        choices=source_choices(), multiselect=True, label="Sources"
                    )
                    with gr.Row():
                        date_from = gr.Textbox(label="Published from (YYYY-MM-DD)")
                        date_to = gr.Textbox(label="Published to (YYYY-MM-DD)")
                gr.Markdown("### Sources")
                sources_html = gr.HTML(render_sources(None), elem_id="sources")
            with gr.Column(scale=2, min_width=280):
                gr.Markdown("### Library")
                stats = gr.Markdown(stats_markdown(assistant), elem_id="stats")
                files = gr.File(
                    label="Upload articles",
                    file_count="multiple",
                    file_types=list(SUPPORTED_SUFFIXES),
                    elem_id="upload",
                )
                upload_btn = gr.Button("Ingest uploaded files", elem_id="ingest-upload")
                with gr.Accordion("Paste an article", open=False):
                    paste_title = gr.Textbox(label="Title", elem_id="paste-title")
                    paste_text = gr.Textbox(label="Text", lines=6, elem_id="paste-text")
                    paste_btn = gr.Button("Add article", elem_id="paste-add")
                report = gr.Markdown(elem_id="report")
                reseed_btn = gr.Button("Re-ingest seeds/", elem_id="reseed")
                articles = gr.Dropdown(
                    choices=article_choices(), label="Indexed articles", elem_id="articles"
                )
                delete_btn = gr.Button("Delete article", variant="stop", elem_id="delete")

        chat_inputs = [question, chatbot, source_filter, date_from, date_to]
        chat_outputs = [chatbot, sources_html, question]
        question.submit(respond, chat_inputs, chat_outputs)
        send.click(respond, chat_inputs, chat_outputs)
        library_outputs = [report, stats, articles, source_filter]
        upload_btn.click(upload, [files], library_outputs)
        paste_btn.click(paste, [paste_title, paste_text], library_outputs)
        reseed_btn.click(reseed, [], library_outputs)
        delete_btn.click(delete, [articles], library_outputs)
    return demo


def launch(
    settings: Settings | None = None,
    *,
    host: str | None = None,
    port: int | None = None,
    open_browser: bool = True,
) -> None:
    """Open the chat: ingest ``seeds/`` on first run, then serve on 127.0.0.1 by default."""
    settings = settings or Settings()
    settings.apply_privacy_defaults()
    assistant = Assistant.from_settings(settings)
    seeded = assistant.ensure_seeded()
    if seeded is not None:
        logger.warning("first run: %s", seeded.summary())
    auth = None
    if settings.auth_username and settings.auth_password:
        auth = (settings.auth_username, settings.auth_password.get_secret_value())
    demo = build_ui(assistant)
    demo.queue(default_concurrency_limit=4).launch(
        server_name=host or settings.host,
        server_port=port or settings.port,
        inbrowser=open_browser,
        auth=auth,
        max_file_size=f"{settings.upload_max_mb:g}mb",
        css=CSS,
        footer_links=[],
    )


if __name__ == "__main__":
    launch()
