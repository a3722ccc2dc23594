"""The Gradio chat: a thin layer over :class:`rag.Assistant`.

Run it with ``make run`` or ``newsrag serve``. Everything shown here is one call of the
Python API away; this module only renders. Article text is hostile input: it is always
HTML-escaped (and Markdown-escaped in the chat) before it reaches the browser.

Layout: the chat (answers stream in, ``[n]`` markers link to source cards), the source
cards of each answer next to it, and the library panel (upload, paste, re-ingest,
delete, stats). On a narrow window the three columns stack.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
import logging
import os
import re
import shutil
import string
import tempfile
import threading
import time
import unicodedata
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

import gradio as gr
from gradio.utils import get_upload_folder
from starlette.middleware import Middleware

from ingest.following import WebLibrary
from ingest.loaders import SUPPORTED_SUFFIXES
from ingest.pipeline import IngestReport, ProgressCallback
from ingest.web import UrlOutcome
from ingest.webstate import FeedState
from rag.assistant import AnswerMode, Assistant
from rag.conversations_store import ConversationStore, SavedTurn, new_owner_id
from rag.dates import answer_when
from rag.errors import NewsragError, QuestionError, disk_full_as_error
from rag.library_view import SORTS, library_page, snapshot
from rag.library_view import article_text as library_text
from rag.records import Answer, Article, Source, StoryMember, also_reported_by, outlet_name
from rag.settings import Settings
from rag.store import ArticleRecord, Filters, OutletGroup

logger = logging.getLogger(__name__)

CSS = """
.app-header { display: flex; flex-wrap: wrap; align-items: center;
  justify-content: space-between; gap: 6px 16px; }
.app-header h1 { font-size: 1.5em; margin: 0; }
.mode-badge { display: inline-block; padding: 3px 12px; border-radius: 12px; font-size: 0.9em;
  border: 1px solid var(--border-color-accent); background: var(--background-fill-secondary); }
a.cite { display: inline-block; padding: 0 5px; margin: 0 1px; border-radius: 6px;
  font-size: 0.85em; font-weight: 700; line-height: 1.4; text-decoration: none;
  color: var(--color-accent) !important; background: var(--color-accent-soft);
  border: 1px solid var(--color-accent); cursor: pointer; }
a.cite:hover, a.cite:focus-visible { background: var(--color-accent); color: white !important; }
.pending { opacity: 0.7; font-style: italic; }
.searched { display: inline-block; font-size: 0.85em; opacity: 0.75; }
#sources { max-height: 72vh; overflow-y: auto; }
@media (max-width: 900px) { #sources { max-height: none; } }
.answer-sources { display: none; }
.answer-sources.current { display: block; }
.sources-head { font-size: 0.85em; opacity: 0.8; margin-bottom: 4px; }
.source-card { border: 1px solid var(--border-color-primary); border-radius: 8px;
  padding: 10px 12px; margin: 8px 0; background: var(--background-fill-secondary);
  scroll-margin: 12px; transition: box-shadow 0.3s ease; }
.source-card.active, .source-card.peek, .source-card:target {
  box-shadow: 0 0 0 3px var(--color-accent); }
.source-card.flash { animation: card-flash 1.2s ease-out; }
@keyframes card-flash { from { background: var(--color-accent-soft); } }
.source-card .num { font-weight: 700; margin-right: 6px; color: var(--color-accent); }
.source-card .meta { font-size: 0.85em; opacity: 0.85; overflow-wrap: anywhere; margin-top: 2px; }
.source-card blockquote { margin: 8px 0 0 0; padding-left: 10px; font-size: 0.95em;
  border-left: 3px solid var(--border-color-accent); overflow-wrap: anywhere; }
.source-card mark { background: rgba(250, 204, 21, 0.4); color: inherit; padding: 0 1px;
  border-radius: 2px; }
.empty { opacity: 0.75; }
.answer-when { opacity: 0.75; }
.field-error { color: var(--error-text-color, #b91c1c); font-size: 0.9em; margin: 2px 0 6px; }
#filter-chips { gap: 6px; flex-wrap: wrap; }
#filter-chips:not(:has(button:not(.hidden))) { display: none; }
.chip { border-radius: 14px !important; font-size: 0.85em !important; }
.chat-status { font-size: 0.85em; opacity: 0.8; }
.stopped { opacity: 0.75; font-style: italic; }
/* Phone: the question box (with the filter chips and the status line) is pinned to the
   bottom of the screen, and the chat takes the height between the header and it. The
   page script measures both into --chat-top and --ask-bar-h. (A sticky row is not
   enough: it scrolls away with its column.) */
@media (max-width: 900px) {
  .app-header h1 { font-size: 1.1em; }
  .app-header .mode-badge { font-size: 0.8em; padding: 2px 10px; }
  #ask-bar #chat-status:not(:has(.chat-status)) { display: none; }
  #ask-bar { position: fixed; left: 0; right: 0; bottom: 0; z-index: 20; gap: 4px;
    padding: 6px 12px calc(6px + env(safe-area-inset-bottom));
    background: var(--body-background-fill); border-top: 1px solid var(--border-color-primary);
    box-shadow: 0 -4px 12px rgba(0, 0, 0, 0.08); }
  #chat { height: calc(100dvh - var(--chat-top, 110px) - var(--ask-bar-h, 100px) - 8px)
    !important; min-height: 280px; }
  /* The page's last block ends above the bar (Gradio scopes this CSS inside the app). */
  #library-view { margin-bottom: calc(var(--ask-bar-h, 100px) + 8px); }
}
button.copy-answer { margin-left: 6px; font-size: 0.9em; padding: 0 8px; cursor: pointer;
  border: 1px solid var(--border-color-primary); border-radius: 6px; background: transparent; }
.related ul { list-style: none; padding: 0; margin: 4px 0 8px; }
.related button.suggest { text-align: left; border: 1px solid var(--border-color-primary);
  border-radius: 8px; padding: 4px 10px; margin: 3px 0; background: transparent;
  cursor: pointer; color: var(--color-accent); }
.related button.suggest:hover, .related button.suggest:focus-visible {
  background: var(--color-accent-soft); }
/* The calendar beside a date field: only its icon shows (the box takes typed dates). */
.has-date-pick .input-container { position: relative; }
.has-date-pick textarea, .has-date-pick input:not(.date-pick) { padding-right: 40px !important; }
input.date-pick { position: absolute; z-index: 2; right: 6px; top: 50%; transform: translateY(-50%);
  width: 30px; height: 28px; padding: 0; border: none; color: transparent; cursor: pointer;
  background: url("data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' \
viewBox='0 0 24 24' fill='none' stroke='%236b7280' stroke-width='2'%3E%3Crect x='3' y='5' \
width='18' height='16' rx='2'/%3E%3Cpath d='M3 10h18M8 3v4M16 3v4'/%3E%3C/svg%3E")
    center / 18px no-repeat; }
/* The native calendar button covers the icon, invisible: a click opens the calendar. */
input.date-pick::-webkit-datetime-edit { display: none; }
input.date-pick::-webkit-calendar-picker-indicator { position: absolute; inset: 0;
  width: auto; height: auto; margin: 0; padding: 0; opacity: 0; cursor: pointer; }
input.date-pick:focus-visible { outline: 2px solid var(--color-accent); border-radius: 4px; }
#card-sheet { position: fixed; left: 0; right: 0; z-index: 60; max-height: 45dvh;
  font-family: var(--font); font-size: var(--text-md); color: var(--body-text-color);
  overflow-y: auto; padding: 6px 12px 10px; background: var(--background-fill-primary);
  border-top: 2px solid var(--color-accent); box-shadow: 0 -6px 18px rgba(0, 0, 0, 0.18); }
#card-sheet[hidden] { display: none; }
#card-sheet .sheet-close { float: right; font-size: 1.1em; padding: 2px 10px;
  border: 1px solid var(--border-color-primary); border-radius: 6px;
  background: transparent; cursor: pointer; }
#card-sheet .source-card { margin: 4px 0 0; }
ul.feeds { list-style: none; padding: 0; margin: 4px 0; font-size: 0.9em; }
ul.feeds li { padding: 4px 0; border-bottom: 1px solid var(--border-color-primary); }
.feed-url, .feed-meta { font-size: 0.85em; opacity: 0.85; overflow-wrap: anywhere; }
.feed-error { color: var(--error-text-color, #b91c1c); }
.reader { max-height: 60vh; overflow-y: auto; padding: 4px 8px; }
.reader .meta { font-size: 0.85em; opacity: 0.85; overflow-wrap: anywhere; }
"""

# Click on a ``[n]`` marker: show the sources of that answer, scroll its card into view
# and flash it; hover: outline the card. Capture phase, so the chatbot's own handlers
# never treat the marker as a navigation.
HEAD = r"""
<script>
(() => {
  const cardOf = (link) => {
    const id = decodeURIComponent((link.getAttribute("href") || "").slice(1));
    return id ? document.getElementById(id) : null;
  };
  const citeOf = (event) =>
    event.target instanceof Element ? event.target.closest("a.cite") : null;
  document.addEventListener("click", (event) => {
    const link = citeOf(event);
    const card = link && cardOf(link);
    if (!card) return;
    event.preventDefault();
    event.stopPropagation();
    const section = card.closest(".answer-sources");
    document.querySelectorAll(".answer-sources").forEach(
      (s) => s.classList.toggle("current", s === section));
    keyboardOrder();  // the cards shown come next after the markers
    document.querySelectorAll(".source-card.active").forEach(
      (c) => c.classList.remove("active"));
    card.classList.add("active");
    if (phone.matches) {  // the cards are below the chat: show this one over it instead
      showSheet(card, link);
      return;
    }
    const still = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    card.scrollIntoView({ behavior: still ? "auto" : "smooth", block: "nearest" });
    card.classList.remove("flash");
    void card.offsetWidth;  // restart the animation
    card.classList.add("flash");
    card.focus({ preventScroll: true });
  }, true);
  // On a phone a tapped marker shows its card in a sheet above the question box: the
  // page and the chat stay where they were, and closing the sheet returns to the marker.
  const phone = window.matchMedia("(max-width: 900px)");
  let sheetMarker = null;
  const closeSheet = () => {
    const sheet = document.getElementById("card-sheet");
    if (!sheet || sheet.hidden) return;
    sheet.hidden = true;
    if (sheetMarker) sheetMarker.focus({ preventScroll: true });
    sheetMarker = null;
  };
  const showSheet = (card, link) => {
    let sheet = document.getElementById("card-sheet");
    if (!sheet) {
      sheet = document.createElement("div");
      sheet.id = "card-sheet";
      sheet.setAttribute("role", "dialog");
      sheet.tabIndex = -1;
      sheet.hidden = true;
      const close = document.createElement("button");
      close.type = "button";
      close.className = "sheet-close";
      close.textContent = "✕";
      close.setAttribute("aria-label", "Close the source");
      close.addEventListener("click", closeSheet);
      const body = document.createElement("div");
      body.className = "sheet-body";
      sheet.append(close, body);
      sheet.addEventListener("keydown", (event) => {
        if (event.key === "Escape") closeSheet();
      });
      document.body.append(sheet);
    }
    const copy = card.cloneNode(true);
    copy.removeAttribute("id");
    copy.removeAttribute("tabindex");
    copy.classList.remove("active", "flash");
    sheet.querySelector(".sheet-body").replaceChildren(copy);
    sheet.setAttribute("aria-label", card.getAttribute("aria-label") || "Source");
    const bar = document.getElementById("ask-bar");
    const top = bar ? bar.getBoundingClientRect().top : window.innerHeight;
    sheet.style.bottom = `${Math.max(0, window.innerHeight - Math.min(top, window.innerHeight))}px`;
    sheet.hidden = false;
    sheetMarker = link;
    sheet.focus({ preventScroll: true });
  };
  document.addEventListener("click", (event) => {  // a tap elsewhere closes the sheet
    const target = event.target instanceof Element ? event.target : null;
    if (target && !target.closest("#card-sheet, a.cite")) closeSheet();
  });
  phone.addEventListener("change", closeSheet);
  // The phone layout's two measures: the height of the pinned question bar and where the
  // chat starts, so the chat fills the screen between them (see the CSS).
  const fitPhone = () => {
    const root = document.documentElement.style;
    const bar = document.getElementById("ask-bar");
    const chat = document.getElementById("chat");
    if (!phone.matches || !bar || !chat) {
      root.removeProperty("--ask-bar-h");
      root.removeProperty("--chat-top");
      return;
    }
    root.setProperty("--ask-bar-h", `${Math.ceil(bar.getBoundingClientRect().height)}px`);
    const top = chat.getBoundingClientRect().top + window.scrollY;
    root.setProperty("--chat-top", `${Math.ceil(top)}px`);
  };
  const waitForBar = setInterval(() => {
    const bar = document.getElementById("ask-bar");
    const header = document.getElementById("header");
    if (!bar || !header) return;
    clearInterval(waitForBar);
    const watch = new ResizeObserver(fitPhone);
    watch.observe(bar);
    watch.observe(header);
    fitPhone();
  }, 50);
  phone.addEventListener("change", fitPhone);
  document.addEventListener("mouseover", (event) => {
    const link = citeOf(event);
    const card = link && cardOf(link);
    if (card) card.classList.add("peek");
  });
  document.addEventListener("mouseout", (event) => {
    const link = citeOf(event);
    const card = link && cardOf(link);
    if (card) card.classList.remove("peek");
  });
  // Copy an answer (its text and numbered sources) to the clipboard.
  document.addEventListener("click", async (event) => {
    const target = event.target instanceof Element ? event.target : null;
    const button = target && target.closest("button.copy-answer");
    if (!button) return;
    try {
      await navigator.clipboard.writeText(button.dataset.copy || "");
      button.textContent = "Copied";
    } catch (error) {
      button.textContent = "Copy failed";
    }
    setTimeout(() => { button.textContent = "Copy answer"; }, 2000);
  });
  // A related story is a click away: it is asked as the next question.
  document.addEventListener("click", (event) => {
    const target = event.target instanceof Element ? event.target : null;
    const button = target && target.closest("button.suggest");
    if (!button) return;
    const box = document.querySelector("#question textarea");
    const ask = document.querySelector("#ask");
    if (!box || !ask) return;
    box.value = button.dataset.question || "";
    box.dispatchEvent(new Event("input", { bubbles: true }));
    setTimeout(() => ask.click(), 50);
  });
  // A dropdown's list closes when the focus leaves the dropdown (Gradio leaves the list
  // of a dropdown opened from the keyboard showing over the page once Tab moves on).
  document.addEventListener("focusout", (event) => {
    const input = event.target instanceof Element ? event.target : null;
    if (!input || !input.matches("input[role='combobox']")) return;
    const block = input.closest(".block");
    setTimeout(() => {
      if (!block || block.contains(document.activeElement)) return;
      const list = block.querySelector("ul.option-list");
      if (list && list.offsetParent) {
        input.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape", bubbles: true }));
      }
    }, 0);
  });
  // Screen readers name a chat message by its aria-label, which Gradio fills with the
  // message's raw markup: name it by the text a reader sees instead.
  let pending = false;
  const plainLabels = () => {
    pending = false;
    document.querySelectorAll("#chat [data-testid='bot'], #chat [data-testid='user']")
      .forEach((el) => {
        const who = el.dataset.testid === "bot" ? "Answer" : "Question";
        const label = `${who}: ${el.innerText.replace(/\s+/g, " ").trim()}`;
        if (el.getAttribute("aria-label") !== label) el.setAttribute("aria-label", label);
      });
    keyboardOrder();
  };
  // Keyboard order: the question box (and its buttons), the latest answer, its markers,
  // the cards of the answer shown, then everything else (panels, earlier answers) in page
  // order. Positive tabindex values put exactly these first, in this order.
  const FOLLOWS = Node.DOCUMENT_POSITION_FOLLOWING;
  const setTab = (el, n) => {
    if (el && el.getAttribute("tabindex") !== String(n)) el.setAttribute("tabindex", String(n));
  };
  const keyboardOrder = () => {
    const box = document.querySelector("#question textarea");
    if (!box) return;
    setTab(box, 1);
    document.querySelectorAll("#ask, #stop").forEach((b) => setTab(b, 1));
    const bots = [...document.querySelectorAll("#chat [data-testid='bot']")];
    const latest = bots[bots.length - 1];
    bots.forEach((bot) => {
      setTab(bot, bot === latest ? 2 : 0);
      bot.querySelectorAll("a.cite").forEach((a) => setTab(a, bot === latest ? 3 : 0));
    });
    // The latest answer's own buttons (retry, like, dislike) follow its markers.
    document.querySelectorAll("#chat button").forEach((button) => {
      const after = latest && latest.compareDocumentPosition(button) & FOLLOWS;
      setTab(button, after ? 3 : 0);
    });
    document.querySelectorAll("#sources .answer-sources").forEach((section) => {
      const shown = section.classList.contains("current");
      section.querySelectorAll("button, a[href]").forEach((el) => setTab(el, shown ? 4 : -1));
      section.querySelectorAll(".source-card").forEach((card) => {
        setTab(card, shown ? 4 : -1);
        const num = (card.querySelector(".num") || {}).textContent || "";
        const title = (card.querySelector(".card-title strong") || {}).textContent || "";
        const label = `Source ${num.replace(/[^0-9]/g, "")}: ${title}`;
        if (card.getAttribute("aria-label") !== label) card.setAttribute("aria-label", label);
      });
    });
  };
  new MutationObserver(() => {
    if (!pending) { pending = true; requestAnimationFrame(plainLabels); }
  }).observe(document.documentElement, { childList: true, subtree: true, characterData: true });
  // On a phone the conversations sidebar would cover the chat: start it closed there.
  const narrow = window.matchMedia("(max-width: 900px)");
  const closeSidebar = () => {
    const sidebar = document.getElementById("sidebar");
    if (narrow.matches && sidebar && sidebar.classList.contains("open")) {
      sidebar.querySelector("button.toggle-button")?.click();
    }
  };
  const waitForSidebar = setInterval(() => {
    if (!document.getElementById("sidebar")) return;
    clearInterval(waitForSidebar);
    closeSidebar();
  }, 50);
  narrow.addEventListener("change", closeSidebar);
  // Date fields: the text box takes a typed date (checked on the server, with an inline
  // message when it is no date); the calendar beside it picks one. A picked date is
  // written into the box as if typed, so the chips, checks and questions see it alike.
  const DATE_FIELDS = {
    "as-of": "Pick the as-of date", "date-from": "Pick the first publication date",
    "date-to": "Pick the last publication date", "paste-date": "Pick the publication date",
  };
  const isoDay = /^\d{4}-\d{2}-\d{2}$/;
  const addPickers = () => {
    for (const [id, label] of Object.entries(DATE_FIELDS)) {
      const field = document.getElementById(id);
      const box = field && field.querySelector("textarea, input:not(.date-pick)");
      if (!box || field.querySelector("input.date-pick")) continue;
      const picker = document.createElement("input");
      picker.type = "date";
      picker.className = "date-pick";
      picker.setAttribute("aria-label", label);
      picker.title = label;
      picker.tabIndex = -1;  // the keyboard types the date in the box (one stop per field)
      const sync = () => { picker.value = isoDay.test(box.value.trim()) ? box.value.trim() : ""; };
      picker.addEventListener("focus", sync);
      picker.addEventListener("pointerdown", sync);
      picker.addEventListener("change", () => {
        if (!picker.value) return;
        box.value = picker.value;
        box.dispatchEvent(new Event("input", { bubbles: true }));
        box.dispatchEvent(new Event("blur"));  // the field's check runs on leaving it
      });
      box.insertAdjacentElement("afterend", picker);
      field.classList.add("has-date-pick");
    }
  };
  new MutationObserver(addPickers).observe(
    document.documentElement, { childList: true, subtree: true });
  addPickers();
})();
</script>
"""

EMPTY_LIBRARY = (
    "The library is empty. Add articles in the Library panel: upload files "
    "(.txt, .md, .html, .pdf, .jsonl), paste an article, or click Re-ingest seeds/."
)
SEARCHING = "<span class='pending'>Searching the articles…</span>"
NO_SOURCE = "\x00no such source"  # a source filter value that matches no article
# Gradio injects a tracker for a parameter whose default is a Progress (a fresh one per
# call, so one shared default is enough).
_PROGRESS = gr.Progress()

# Every ASCII punctuation character can start Markdown syntax (links, emphasis, lists,
# tables, autolinks via ":" and "@"...). Backslash-escaping all of them makes any text
# literal; &, < and > become entities so no HTML tag can form either.
_MD_ESCAPES = {c: "\\" + c for c in string.punctuation}
_MD_ESCAPES.update({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_MD_TABLE = str.maketrans(_MD_ESCAPES)
_ESCAPED_MARKER = re.compile(r"\\\[(\d+)\\\]")


def escape_markdown(text: str) -> str:
    """Make text inert in a Markdown component: no HTML, no link, no emphasis, no list.

    Leading indentation is dropped too (four spaces would start a code block).

    >>> escape_markdown("<b>[x](javascript:alert(1))</b> & *y*")
    '&lt;b&gt;\\\\[x\\\\]\\\\(javascript\\\\:alert\\\\(1\\\\)\\\\)&lt;\\\\/b&gt; &amp; \\\\*y\\\\*'
    """
    text = re.sub(r"(?m)^[ \t]+", "", text)
    return text.translate(_MD_TABLE)


def _attr(text: str) -> str:
    """Text for an HTML attribute value (one line, quotes escaped)."""
    return html.escape(" ".join(text.split()), quote=True)


def render_answer(answer: Answer, turn: int = 1) -> str:
    """The chat message: escaped text whose ``[n]`` markers link to the source cards,
    then (once complete) the as-of it was answered for and the window it searched.

    ``turn`` numbers the answers of a chat, so a marker of an earlier answer still finds
    its own card (``#src-<turn>-<n>``).

    >>> from rag.records import Source
    >>> s = Source(1, "a1", "Title", "example.com", None, None, "passage")
    >>> render_answer(Answer("q", "It rained [1]", sources=(s,)), turn=2)
    'It rained <a class="cite" href="#src-2-1" title="[1] Title">[1]</a>'

    When retrieval searched for something else than the question typed (a follow-up
    given the conversation's topic), a "Searched for: ..." line says what.
    """
    titles = {s.number: s.title for s in answer.sources}
    text = escape_markdown(answer.text)

    def link(match: re.Match[str]) -> str:
        n = int(match.group(1))
        if n not in titles:
            return match.group(0)
        return (
            f'<a class="cite" href="#src-{turn}-{n}" title="{_attr(f"[{n}] {titles[n]}")}">'
            f"[{n}]</a>"
        )

    rendered = _ESCAPED_MARKER.sub(link, text)
    if answer.search_query and answer.search_query != answer.question:
        rendered += f"\n\n{render_search_query(answer.search_query)}"
    when = answer_when(answer)
    if when and answer.done:
        rendered += f'\n\n<small class="answer-when">{escape_markdown(when)}</small>'
    return rendered


def render_search_query(query: str) -> str:
    """The "Searched for" line under an answer, escaped like the answer itself.

    >>> render_search_query("what did Meloni propose? and Zelenskyy?")
    '<small class="searched">Searched for: what did Meloni propose\\\\? and Zelenskyy\\\\?</small>'
    """
    return f'<small class="searched">Searched for: {escape_markdown(query)}</small>'


def render_sources(answer: Answer | None, turn: int = 1) -> str:
    """Numbered source cards of one answer (title, outlet, date, link, highlighted quote)."""
    if answer is None:
        return "<p class='empty'>Sources of the answer appear here.</p>"
    if not answer.done:
        return "<p class='empty pending'>The sources appear when the answer is complete.</p>"
    if not answer.sources:
        return "<p class='empty'>No source supports an answer to this question.</p>"
    return "\n".join(_card(s, turn) for s in answer.sources)


@dataclass(frozen=True)
class Turn:
    """One question of the chat and its answer (None when none could be produced).

    ``related`` are titles of other library articles the search found for it (matching
    words of the question) that the answer does not cite: offered as next questions.
    """

    question: str
    answer: Answer | None
    related: tuple[str, ...] = ()


MAX_RELATED = 3


def related_titles(answer: Answer, limit: int = MAX_RELATED) -> tuple[str, ...]:
    """Titles of articles retrieved for ``answer`` by its words (a BM25 match, not only a
    nearby vector) that it does not cite, best first: stories from the library, never
    invented.

    >>> from rag.records import RetrievedChunk
    >>> hit = RetrievedChunk("c1", "a2", "t", "Ferry strike ends", "s", None, None, 0, 0, 1,
    ...                      0.5, lexical_rank=1)
    >>> related_titles(Answer("q", "x", retrieved=(hit,)))
    ('Ferry strike ends',)
    """
    cited = {s.article_id for s in answer.sources}
    titles: dict[str, None] = {}
    for chunk in answer.retrieved:
        if chunk.lexical_rank is None or chunk.article_id in cited:
            continue
        titles.setdefault(chunk.title, None)
        cited.add(chunk.article_id)
        if len(titles) == limit:
            break
    return tuple(titles)


def answer_plain_text(answer: Answer) -> str:
    """An answer as plain text for the clipboard: its text, then its numbered sources.

    >>> from rag.records import Source
    >>> s = Source(1, "a1", "Title", "example.com", "https://example.com/a", None, "p")
    >>> print(answer_plain_text(Answer("q", "So [1].", (s,))))
    So [1].
    <BLANKLINE>
    [1] Title · https://example.com/a
    """
    lines = [answer.text]
    if answer.sources:
        lines.append("")
    for s in answer.sources:
        lines.append(f"[{s.number}] {s.title} · {s.link}")
        if s.also:
            lines.append(f"    {also_reported_by(s.also)}")
    return "\n".join(lines)


def render_copy_button(answer: Answer | None, number: int) -> str:
    """The "Copy answer" button of a complete answer (its text rides in an attribute)."""
    if answer is None or not answer.done:
        return ""
    text = html.escape(answer_plain_text(answer), quote=True).replace("\n", "&#10;")
    return (
        f'<button type="button" class="copy-answer" data-copy="{text}" '
        f'aria-label="Copy answer {number}">Copy answer</button>'
    )


def render_related(titles: Sequence[str]) -> str:
    """The "Related stories" buttons under an answer's sources; a click asks the title."""
    if not titles:
        return ""
    buttons = "".join(
        f'<li><button type="button" class="suggest" data-question="{_attr(t)}">'
        f"{html.escape(t)}</button></li>"
        for t in titles
    )
    return (
        '<nav class="related" aria-label="Related stories in the library">'
        f'<div class="sources-head">Related stories in the library</div><ul>{buttons}</ul></nav>'
    )


def render_source_panel(turns: Sequence[Turn]) -> str:
    """The cards of every answer of the chat; only the latest answer's are shown.

    Earlier answers keep their cards in the page (hidden), so their markers still work:
    a click shows that answer's cards (see ``HEAD``).
    """
    if not turns:
        return render_sources(None)
    sections = []
    for number, turn in enumerate(turns, start=1):
        current = " current" if number == len(turns) else ""
        mode = ""
        if turn.answer is not None:
            mode = f" · {_mode_name(turn.answer)}"
        sections.append(
            f'<section class="answer-sources{current}" id="answer-{number}" '
            f'aria-label="Sources of answer {number}">'
            f'<div class="sources-head">Answer {number}: “{html.escape(turn.question)}”'
            f"{html.escape(mode)} {render_copy_button(turn.answer, number)}</div>"
            f"{render_sources(turn.answer, number)}{render_related(turn.related)}</section>"
        )
    return "\n".join(sections)


def _mode_name(answer: Answer) -> str:
    return f"{answer.mode}: {answer.model}" if answer.model else answer.mode


def _safe_href(url: str | None) -> str | None:
    if not url:
        return None
    scheme = urlparse(url.strip()).scheme.lower()
    return url.strip() if scheme in ("http", "https") else None


def _card(source: Source, turn: int = 1) -> str:
    href = _safe_href(source.url)
    published = source.published.isoformat() if source.published else "date unknown"
    meta: list[str] = []
    if href:
        outlet = outlet_name(source.site_name, href, source.source)  # as the filter names it
        meta.append(f'<span class="outlet">{html.escape(outlet)}</span>')
        if source.author:
            meta.append(f'<span class="author">by {html.escape(source.author)}</span>')
        meta.append(published)
        link = html.escape(href, quote=True)
        meta.append(f'<a href="{link}" target="_blank" rel="noopener noreferrer">{link}</a>')
    else:
        meta.append(f'<span class="outlet">{html.escape(source.site_name or source.link)}</span>')
        if source.author:
            meta.append(f'<span class="author">by {html.escape(source.author)}</span>')
        meta.append(published)
    return (
        f'<article class="source-card" id="src-{turn}-{source.number}" tabindex="-1">'
        f'<div class="card-title"><span class="num">[{source.number}]</span>'
        f"<strong>{html.escape(source.title)}</strong></div>"
        f'<div class="meta">{" · ".join(meta)}</div>'
        f"<blockquote>{highlight(source.passage, source.highlights)}</blockquote>"
        f"{render_also(source.also)}</article>"
    )


def render_also(members: Sequence[StoryMember]) -> str:
    """The card's "Also reported by" line: each other outlet's copy of the story, linked,
    with its date.

    >>> render_also([StoryMember("a2", "Quake", "AP", "https://ap.example/q", date(2022, 6, 1))])
    '<div class="also">Also reported by <a href="https://ap.example/q" target="_blank" \
rel="noopener noreferrer" title="Quake">AP</a> (2022-06-01)</div>'
    """
    if not members:
        return ""
    items = []
    for m in members:
        when = f" ({m.published.isoformat()})" if m.published else ""
        href = _safe_href(m.url)
        name = html.escape(m.outlet)
        if href:
            link = html.escape(href, quote=True)
            name = (
                f'<a href="{link}" target="_blank" rel="noopener noreferrer" '
                f'title="{_attr(m.title)}">{name}</a>'
            )
        items.append(f"{name}{when}")
    return f'<div class="also">Also reported by {", ".join(items)}</div>'


def highlight(passage: str, sentences: Sequence[str]) -> str:
    """The passage, HTML-escaped, with each supporting sentence wrapped in ``<mark>``.

    >>> highlight("A <b>. B & C. D.", ["B & C."])
    'A &lt;b&gt;. <mark>B &amp; C.</mark> D.'
    """
    spans: list[tuple[int, int]] = []
    for sentence in sentences:
        words = sentence.split()
        if not words:
            continue
        # Whitespace may differ between the quoted sentence and the passage.
        match = re.search(r"\s+".join(map(re.escape, words)), passage)
        if match and not any(s < match.end() and match.start() < e for s, e in spans):
            spans.append(match.span())
    out: list[str] = []
    position = 0
    for start, end in sorted(spans):
        out.append(html.escape(passage[position:start]))
        out.append(f"<mark>{html.escape(passage[start:end])}</mark>")
        position = end
    out.append(html.escape(passage[position:]))
    return "".join(out)


def _preview(text: str, chars: int = 200) -> str:
    """The start of a refused (too long) question, for the chat to show what was refused.

    >>> _preview("a" * 300, 5)
    'aaaaa… (300 characters)'
    """
    if len(text) <= chars:
        return text
    return f"{text[:chars]}… ({len(text):,} characters)"


def _answers_in(history: Sequence[dict[str, Any]]) -> int:
    return sum(1 for m in history if m.get("role") == "assistant")


def _parse_day(text: str | None, label: str) -> date | None:
    if not text or not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        msg = f"{label} must be a date like 2025-03-20"
        raise gr.Error(msg) from None


def make_filters(sources: Sequence[str] | None, date_from: str, date_to: str) -> Filters:
    """Filters from the UI fields; a bad date raises :class:`gr.Error` (shown as a toast).

    The chat validates the fields first (:func:`check_filter_fields`), so a user's typo
    is shown next to its field instead; this is the last line for direct callers.
    """
    low = _parse_day(date_from, "Published from")
    high = _parse_day(date_to, "Published to")
    if low and high and low > high:
        msg = "Published from must be on or before Published to"
        raise gr.Error(msg)
    return Filters(tuple(sources or ()), low, high)


# The date fields of the filter panel: (field key, label as shown).
DATE_FIELDS = (("as_of", "As of"), ("date_from", "Published from"), ("date_to", "Published to"))


NOT_A_DATE = "Not a date: write it as YYYY-MM-DD, e.g. 2022-03-01."


def check_day(text: str | None) -> tuple[date | None, str | None]:
    """A typed date field read as (its day, its message): (None, None) when empty, and a
    message for the field when the text is no date (never raised: a user's typo is not a
    server error).

    >>> check_day(" 2022-03-01 ")
    (datetime.date(2022, 3, 1), None)
    >>> check_day("March 2022")
    (None, 'Not a date: write it as YYYY-MM-DD, e.g. 2022-03-01.')
    """
    text = (text or "").strip()
    if not text:
        return None, None
    try:
        return date.fromisoformat(text), None
    except ValueError:
        return None, NOT_A_DATE


def check_filter_fields(as_of: str, date_from: str, date_to: str) -> dict[str, str]:
    """A message per date field whose text is not a usable date (empty dict: all fine).

    A user's typo is not an error of the server: it is reported next to its field and
    never raised, so nothing reaches the log.

    >>> check_filter_fields("", "March 2022", "")
    {'date_from': 'Not a date: write it as YYYY-MM-DD, e.g. 2022-03-01.'}
    >>> check_filter_fields("", "2025-03-02", "2025-03-01")
    {'date_to': 'Must be on or after Published from (2025-03-02).'}
    """
    values = {"as_of": as_of, "date_from": date_from, "date_to": date_to}
    messages: dict[str, str] = {}
    days: dict[str, date] = {}
    for key, _label in DATE_FIELDS:
        day, message = check_day(values[key])
        if message:
            messages[key] = message
        elif day:
            days[key] = day
    low, high = days.get("date_from"), days.get("date_to")
    if low and high and low > high:
        messages["date_to"] = f"Must be on or after Published from ({low.isoformat()})."
    return messages


def filter_chips(
    sources: Sequence[str] | None, date_from: str, date_to: str, as_of: str
) -> dict[str, str]:
    """The label of each active filter's chip (shown above the input), by field key.

    >>> filter_chips(["cnn.com"], "2022-03-01", "", "")
    {'sources': 'Sources: cnn.com ✕', 'date_from': 'From 2022-03-01 ✕'}
    """
    chips: dict[str, str] = {}
    if sources:
        shown = ", ".join(list(sources)[:3]) + (f" +{len(sources) - 3}" if len(sources) > 3 else "")
        chips["sources"] = f"Sources: {shown} ✕"
    for key, label, value in (
        ("date_from", "From", date_from),
        ("date_to", "To", date_to),
        ("as_of", "As of", as_of),
    ):
        if value and value.strip():
            chips[key] = f"{label} {' '.join(value.split())[:40]} ✕"
    return chips


def render_field_message(message: str | None) -> str:
    """The inline message under a filter field (empty when the field is fine).

    >>> render_field_message("Not a date")
    '<p class="field-error" role="alert">Not a date</p>'
    """
    if not message:
        return ""
    return f'<p class="field-error" role="alert">{html.escape(message)}</p>'


def render_feeds(feeds: Sequence[FeedState]) -> str:
    """The followed feeds, one line each: name, address, last fetch, new articles, error.

    >>> render_feeds([])
    "<p class='empty'>No feeds followed yet.</p>"
    """
    if not feeds:
        return "<p class='empty'>No feeds followed yet.</p>"
    items = []
    for feed in feeds:
        when = (
            datetime.fromtimestamp(feed.last_fetch).strftime("%Y-%m-%d %H:%M")
            if feed.last_fetch
            else "never"
        )
        status = (
            f"<span class='feed-error' role='alert'>error: {html.escape(feed.last_error)}</span>"
            if feed.last_error
            else "ok"
        )
        items.append(
            f"<li><strong>{html.escape(feed.title or feed.url)}</strong>"
            f"<div class='feed-url'>{html.escape(feed.url)}</div>"
            f"<div class='feed-meta'>last fetch {when} · {feed.last_new} new "
            f"({feed.total_new} in all) · {status}</div></li>"
        )
    return f"<ul class='feeds' aria-label='Followed feeds'>{''.join(items)}</ul>"


def url_report_markdown(outcomes: Sequence[UrlOutcome], head: str) -> str:
    """The short report of pages fetched: ``head``, then one line per page.

    >>> print(url_report_markdown([UrlOutcome("https://x.example/a", "failed", "HTTP 404")],
    ...                           "Page"))
    **Page: failed 1**
    <BLANKLINE>
    - failed\\: https\\:\\/\\/x\\.example\\/a\\: HTTP 404
    """
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    summary = ", ".join(f"{status} {n}" for status, n in counts.items()) or "nothing new"
    lines = [f"**{escape_markdown(head)}: {summary}**", ""]
    lines += [f"- {escape_markdown(str(outcome))}" for outcome in outcomes]
    return "\n".join(lines)


def stats_markdown(assistant: Assistant) -> str:
    """Article count, chunk count and newest dates (or how to fill an empty library)."""
    stats = assistant.stats()
    if stats.articles == 0:
        return f"**{escape_markdown(EMPTY_LIBRARY)}**"
    newest = ", ".join(d.isoformat() for d in stats.newest[:3])
    text = (
        f"**{stats.articles}** {_plural(stats.articles, 'article')} · "
        f"**{stats.chunks}** {_plural(stats.chunks, 'chunk')} · "
        + (f"newest: {escape_markdown(newest)}" if newest else "no publication dates")
    )
    if stats.pending:
        text += f" · {stats.pending} unfinished (the next ingest repairs them)"
    check = stats.vector_check
    if check is not None and check.missing:
        text += (
            f" · {check.missing} {_plural(check.missing, 'chunk')} without a vector "
            "(`newsrag check --repair` restores them)"
        )
    return text


def _row_head(title: str, outlet: str, published: date | None) -> tuple[str, str, str]:
    """The first cells of a library table row: title, outlet and publication day."""
    return title, outlet, published.isoformat() if published else ""


def _plural(n: int, word: str) -> str:
    return word if n == 1 else f"{word}s"


def report_markdown(
    report: IngestReport, scrub: Callable[[str], str] = str, refused: Sequence[str] = ()
) -> str:
    """The short ingest report: the counts, each failure with its reason (and the other
    lines that need attention), then the titles folded in a ``<details>``.

    ``scrub`` rewrites server paths in the lines (see :meth:`ChatApp.scrub`); ``refused``
    are the uploads refused before the ingest (type, size), each with its reason.
    """
    lines = [f"**{escape_markdown(report.summary())}**", ""]
    lines += [f"- failed: {escape_markdown(line)}" for line in refused]
    lines += [f"- {escape_markdown(scrub(line))}" for line in report.details()[:50]]
    if len(report.details()) > 50:
        lines.append(f"- … and {len(report.details()) - 50} more")
    titled = [
        (label, items)
        for label, items in (
            ("added", report.added),
            ("updated", report.updated),
            ("unchanged", report.skipped),
        )
        if items
    ]
    if titled:
        counts = ", ".join(f"{len(items)} {label}" for label, items in titled)
        lines += ["", f"<details><summary>Titles ({counts})</summary>", ""]
        for label, items in titled:
            lines += [f"- {label}: {escape_markdown(a.title)}" for a in items[:200]]
            if len(items) > 200:
                lines.append(f"- … and {len(items) - 200} more {label}")
        lines += ["", "</details>"]
    return "\n".join(lines)


def safe_upload_name(name: str) -> str:
    """A plain file name for an upload: no directory part, no odd characters, no dot file.

    >>> safe_upload_name("../../etc/cron.d/evil.TXT")
    'evil.txt'
    >>> safe_upload_name("C:\\\\Users\\\\me\\\\My story (final)!.md")
    'My_story_final.md'
    """
    # Normalize first: NFKC turns look-alikes such as "／" into a real "/".
    name = unicodedata.normalize("NFKC", name)
    base = PurePosixPath(name.replace("\\", "/")).name.strip()
    path = PurePosixPath(base)
    suffix = path.suffix.lower() if re.fullmatch(r"\.[A-Za-z0-9]{1,10}", path.suffix) else ""
    stem = base[: -len(path.suffix)] if path.suffix else base
    stem = re.sub(r"[^\w-]+", "_", stem).strip("_-")[:80]
    return (stem or "upload") + suffix


def upload_path(original_name: str, upload_dir: Path) -> Path:
    """Where an upload named ``original_name`` is kept: one directory per exact name.

    The directory is a short hash of the name as uploaded, the file in it the readable
    sanitized name (its title and source). Re-uploading the same name reaches the same
    path, so it updates its article; two different names never share a path, even when
    they sanitize alike (``🔥.txt`` and ``💧.txt`` are both ``upload.txt``).

    >>> upload_path("🔥.txt", Path("up")), upload_path("💧.txt", Path("up"))
    (PosixPath('up/31b29adfc721/upload.txt'), PosixPath('up/348c991431ea/upload.txt'))
    """
    digest = hashlib.sha256(original_name.encode("utf-8", "surrogatepass")).hexdigest()
    return upload_dir / digest[:12] / safe_upload_name(original_name)


def save_uploads(
    files: Sequence[str | Path] | None, upload_dir: Path, max_mb: float
) -> tuple[list[Path], list[str]]:
    """Copy accepted uploads into ``upload_dir``; returns (saved paths, rejection lines).

    Each upload is kept at :func:`upload_path` of its name, always inside ``upload_dir``;
    an earlier upload of the same name is replaced (re-uploading a story updates it).

    >>> save_uploads(["/tmp/x/evil.exe"], Path("/tmp/up"), 1.0)  # doctest: +SKIP
    ([], ['evil.exe: unsupported file type (allowed: .txt, .md, ...)'])
    """
    upload_dir.mkdir(parents=True, exist_ok=True)
    root = upload_dir.resolve()
    saved: list[Path] = []
    rejected: list[str] = []
    for item in files or ():
        original = Path(item)
        target = upload_path(original.name, root)
        name = target.name
        if target.suffix not in SUPPORTED_SUFFIXES:
            allowed = ", ".join(SUPPORTED_SUFFIXES)
            rejected.append(f"{name}: unsupported file type (allowed: {allowed})")
            continue
        if original.stat().st_size > max_mb * 1024 * 1024:
            rejected.append(f"{name}: larger than {max_mb:g} MB")
            continue
        n = 2
        while target in saved:  # two uploads of one name in a batch keep both
            target = target.parent / f"{Path(name).stem}-{n}{target.suffix}"
            n += 1
        if target.parent.parent != root:  # cannot happen with a sanitized name; never write out
            rejected.append(f"{name}: invalid file name")
            continue
        try:
            target.parent.mkdir(exist_ok=True)
            shutil.copyfile(original, target)
        except OSError:
            target.unlink(missing_ok=True)  # a full disk mid-copy: leave no partial file
            raise
        saved.append(target)
    return saved, rejected


def remove_gradio_copies(files: Sequence[str | Path], temp_dir: Path) -> None:
    """Delete Gradio's temporary copies of uploads once they are handled.

    Only files inside ``temp_dir`` (Gradio's upload folder) are touched, with their
    per-upload directory when it is left empty: a path from elsewhere is never deleted.
    """
    root = temp_dir.resolve()
    for item in files:
        path = Path(item).resolve()
        if not path.is_relative_to(root) or path == root:
            continue
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # not empty, or already gone
            if path.parent != root:
                path.parent.rmdir()


def _progress_callback(progress: gr.Progress | None) -> ProgressCallback | None:
    if progress is None:
        return None

    def report(done: int, total: int, message: str) -> None:
        progress((done, total) if total else None, desc=message or "Embedding")

    return report


def history_of(turns: Sequence[SavedTurn | Turn]) -> list[dict[str, Any]]:
    """The chat messages of saved turns, rendered as when they were answered."""
    history: list[dict[str, Any]] = []
    for number, turn in enumerate(turns, start=1):
        history.append({"role": "user", "content": escape_markdown(turn.question)})
        if turn.answer is None:
            text = escape_markdown("⚠ No answer was produced for this question.")
        else:
            text = render_answer(turn.answer, number)
        history.append({"role": "assistant", "content": text})
    return history


def conversation_markdown(title: str, turns: Sequence[Turn | SavedTurn]) -> str:
    """A conversation as Markdown: each question, its answer, its numbered sources.

    The text is written as it was answered; a source links to its URL when it has one.

    >>> from rag.records import Source
    >>> s = Source(1, "a1", "Title", "example.com", "https://example.com/a", None, "p")
    >>> print(conversation_markdown("Chat", [Turn("Why?", Answer("Why?", "So [1].", (s,)))]))
    # Chat
    <BLANKLINE>
    ## Why?
    <BLANKLINE>
    So [1].
    <BLANKLINE>
    Sources:
    <BLANKLINE>
    1. [Title](https://example.com/a) · example.com · date unknown
    <BLANKLINE>
    """
    lines = [f"# {title}", ""]
    for turn in turns:
        lines += [f"## {turn.question}", ""]
        if turn.answer is None:
            lines += ["(no answer)", ""]
            continue
        lines += [turn.answer.text, ""]
        when = answer_when(turn.answer)
        if when:
            lines += [f"*{when}*", ""]
        if turn.answer.sources:
            lines += ["Sources:", ""]
            for s in turn.answer.sources:
                published = s.published.isoformat() if s.published else "date unknown"
                href = _safe_href(s.url)
                name = f"[{s.title}]({href})" if href else s.title
                lines.append(f"{s.number}. {name} · {s.source} · {published}")
                if s.also:  # a nested item, so it renders on its own line under the source
                    lines.append(f"   - {also_reported_by(s.also)}")
            lines.append("")
    return "\n".join(lines)


@dataclass(frozen=True)
class Pending:
    """A question waiting for its turn, with the filter fields as they were when asked."""

    question: str
    sources: tuple[str, ...] = ()
    date_from: str = ""
    date_to: str = ""
    as_of: str = ""
    top_k: int | None = None  # the number of sources (None: the settings')
    mode: AnswerMode | None = None  # extractive or llm (None: the settings')
    regenerate: bool = False  # answers again the last question, replacing its answer


@dataclass
class ChatSession:
    """The chat of one browser tab, kept on the server.

    Questions queue in ``pending`` and one worker (:meth:`ChatApp.drain`) answers them
    in order, so a question asked while another is answered is never lost.
    """

    history: list[dict[str, Any]] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    pending: deque[Pending] = field(default_factory=deque)
    current: str | None = None
    running: bool = False
    generation: int = 0  # bumped by a reset: an answer of the old chat is dropped
    owner: str | None = None  # whose saved conversations (None: nothing is saved)
    conversation_id: str | None = None  # the saved conversation shown, once it has a turn
    saves: int = 0  # bumped when the conversation list changed
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


def render_status(session: ChatSession) -> str:
    """The line under the input: what is being answered and what waits (empty when idle)."""
    parts: list[str] = []
    if session.current is not None:
        parts.append(f"Answering “{html.escape(_preview(session.current, 80))}”")
    if session.pending:
        queued = ", ".join(f"“{html.escape(_preview(p.question, 60))}”" for p in session.pending)
        parts.append(f"queued ({len(session.pending)}): {queued}")
    return f"<div class='chat-status'>{' · '.join(parts)}</div>" if parts else ""


STOPPED = "\n\n<small class='stopped'>Stopped before the end.</small>"

# The answer modes as the settings panel offers them.
_MODE_LABELS: dict[str, Callable[[Assistant], str]] = {
    "extractive": lambda _: "Quotes from the articles (extractive)",
    "llm": lambda a: f"Written by the LLM ({a.settings.llm_provider}/{a.settings.llm_model})",
}


class ChatApp:
    """The handlers behind the UI, callable without a browser (see ``tests/test_app.py``).

    Example:
        >>> chat = ChatApp(assistant, upload_dir=Path("data/uploads"))  # doctest: +SKIP
        >>> *_, last = chat.respond("what did Meloni propose?", [], [])  # doctest: +SKIP
        >>> history, turns, panel, question_box = last  # doctest: +SKIP
    """

    def __init__(
        self, assistant: Assistant, upload_dir: Path, temp_dir: Path | None = None
    ) -> None:
        self.assistant = assistant
        self.settings = assistant.settings
        self.upload_dir = upload_dir
        # Gradio's own copies of uploads: deleted once handled (see remove_gradio_copies).
        self.temp_dir = temp_dir or Path(get_upload_folder())
        self.sessions: dict[str, ChatSession] = {}
        self._sessions_lock = threading.Lock()
        self.conversations = ConversationStore(assistant.records.engine)
        self._web: WebLibrary | None = None
        self._web_lock = threading.Lock()

    # -- chat ------------------------------------------------------------------------

    def respond(
        self,
        message: str,
        history: list[dict[str, Any]] | None,
        turns: list[Turn] | None,
        sources: list[str] | None = None,
        date_from: str = "",
        date_to: str = "",
        as_of: str = "",
        top_k: int | None = None,
        mode: AnswerMode | None = None,
    ) -> Generator[tuple[list[dict[str, Any]], list[Turn], str, str], None, None]:
        """Stream one chat turn: yields (chat messages, turns, source panel, input box).

        ``as_of`` is the date the question is asked (empty: today); ``top_k`` and ``mode``
        are the settings panel's number of sources and answer mode (None: the settings').
        """
        history = list(history or [])
        # The chat may have been cleared in the browser; the turns follow the messages.
        turns = list(turns or [])[: _answers_in(history)]

        def state(turns: list[Turn]) -> tuple[list[dict[str, Any]], list[Turn], str, str]:
            # Copies: Gradio may still be sending one update while the next is built.
            return [*history], [*turns], render_source_panel(turns), ""

        if not message or not message.strip():
            yield state(turns)
            return
        try:
            # Before anything is echoed: a 5 MB "question" must not enter the chat.
            self.assistant.check_question(message)
        except QuestionError as exc:
            history.append({"role": "user", "content": escape_markdown(_preview(message))})
            history.append(
                {"role": "assistant", "content": escape_markdown(self.scrub(f"⚠ {exc}"))}
            )
            yield state([*turns, Turn(_preview(message), None)])
            return
        filters = make_filters(self.sources_of(sources), date_from, date_to)
        asked_on = _parse_day(as_of, "As of")
        pairs = [(t.question, t.answer.text) for t in turns if t.answer is not None]
        history.append({"role": "user", "content": escape_markdown(message)})
        history.append({"role": "assistant", "content": SEARCHING})
        yield state(turns)
        if self.assistant.records.is_empty():
            history[-1] = {"role": "assistant", "content": escape_markdown(EMPTY_LIBRARY)}
            yield state([*turns, Turn(message, None)])
            return
        number = len(turns) + 1
        current = [*turns, Turn(message, None)]
        try:
            for answer in self.assistant.stream(
                message, as_of=asked_on, filters=filters, history=pairs, top_k=top_k, mode=mode
            ):
                history[-1] = {"role": "assistant", "content": render_answer(answer, number)}
                # Only the text and sources are shown; the retrieved chunks stay server-side.
                shown = tuple(
                    replace(s, source=self.display_path(s.source)) for s in answer.sources
                )
                related = related_titles(answer) if answer.done else ()
                current = [
                    *turns,
                    Turn(message, replace(answer, retrieved=(), sources=shown), related),
                ]
                yield state(current)
        except NewsragError as exc:
            history[-1] = {"role": "assistant", "content": escape_markdown(self.scrub(f"⚠ {exc}"))}
            yield state(current)
        except Exception:
            # A chat stuck on "Searching…" helps nobody: say it failed, keep the trace.
            logger.exception("answering %r failed", message)
            text = "⚠ Answering failed because of an internal error; see the server log."
            history[-1] = {"role": "assistant", "content": escape_markdown(text)}
            yield state(current)

    # -- the queue of one browser tab ---------------------------------------------------

    def session(self, key: str) -> ChatSession:
        """The chat of the tab ``key`` (Gradio's session hash), created when first seen."""
        with self._sessions_lock:
            return self.sessions.setdefault(key, ChatSession())

    def forget(self, key: str) -> None:
        """Drop a closed tab's chat from memory."""
        with self._sessions_lock:
            self.sessions.pop(key, None)

    def enqueue(
        self,
        key: str,
        message: str,
        sources: Sequence[str] | None = None,
        date_from: str = "",
        date_to: str = "",
        as_of: str = "",
        top_k: int | None = None,
        mode: AnswerMode | None = None,
    ) -> dict[str, str]:
        """Queue a question of tab ``key``; returns the date fields' messages.

        A non-empty result means nothing was queued: the question stays in the input and
        each message is shown next to its field. ``top_k`` and ``mode`` are the settings
        panel's (None: the settings').

        >>> chat.enqueue("tab1", "what did Meloni propose?", top_k=3)  # doctest: +SKIP
        {}
        """
        problems = check_filter_fields(as_of, date_from, date_to)
        if problems or not message or not message.strip():
            return problems
        session = self.session(key)
        with session.lock:
            session.pending.append(
                Pending(
                    message,
                    tuple(sources or ()),
                    date_from or "",
                    date_to or "",
                    as_of or "",
                    top_k,
                    mode,
                )
            )
        return {}

    def regenerate(
        self,
        key: str,
        sources: Sequence[str] | None = None,
        date_from: str = "",
        date_to: str = "",
        as_of: str = "",
        top_k: int | None = None,
        mode: AnswerMode | None = None,
    ) -> dict[str, str]:
        """Answer the last question of tab ``key`` again, with the filters and settings
        given (as they are now); the new answer replaces the old one, also in the saved
        conversation. Returns the date fields' messages, as :meth:`enqueue`.
        """
        problems = check_filter_fields(as_of, date_from, date_to)
        session = self.session(key)
        with session.lock:
            if problems or not session.turns:
                return problems
            question = session.turns[-1].question
            session.pending.append(
                Pending(
                    question,
                    tuple(sources or ()),
                    date_from or "",
                    date_to or "",
                    as_of or "",
                    top_k,
                    mode,
                    regenerate=True,
                )
            )
        return {}

    def request_stop(self, key: str) -> None:
        """End the answer being streamed for tab ``key`` (queued questions still follow)."""
        self.session(key).stop.set()

    def reset(self, key: str) -> None:
        """A new, empty chat for tab ``key``: queued questions are dropped too."""
        session = self.session(key)
        with session.lock:
            session.pending.clear()
            session.history, session.turns = [], []
            session.generation += 1
        session.stop.set()

    def drain(self, key: str) -> Iterator[ChatSession | None]:
        """Answer the queued questions of tab ``key`` in order, yielding the session after
        each change; yields None once when another call is already answering them.

        Only one drain runs per tab: the check of the queue and the release of the
        "running" flag happen under one lock, so a question queued at any moment is
        either seen by the running drain or starts a new one.
        """
        session = self.session(key)
        with session.lock:
            if session.running:
                yield None
                return
            session.running = True
        try:
            while True:
                with session.lock:
                    if not session.pending:
                        session.running = False
                        session.current = None
                        break
                    item = session.pending.popleft()
                    session.current = item.question
                    session.stop.clear()
                    last = session.turns[-1] if session.turns else None
                    if item.regenerate and last is not None and last.question == item.question:
                        # The old answer goes; the new one takes its place (and number).
                        session.turns = session.turns[:-1]
                        session.history = session.history[:-2]
                yield from self._answer(session, item)
                self._save_last_turn(session)
            yield session
        finally:
            with session.lock:
                session.running = False
                session.current = None

    def _answer(self, session: ChatSession, item: Pending) -> Iterator[ChatSession]:
        steps = self.respond(
            item.question,
            session.history,
            session.turns,
            list(item.sources),
            item.date_from,
            item.date_to,
            item.as_of,
            item.top_k,
            item.mode,
        )
        generation = session.generation
        first = True
        try:
            for history, turns, _panel, _box in steps:
                with session.lock:
                    if session.generation != generation:
                        return  # the chat was reset meanwhile: this answer belongs to none
                    stopped = session.stop.is_set()
                    # Stopped: keep what the user saw (the question at least), marked.
                    if first or not stopped:
                        session.history, session.turns = history, turns
                    if stopped:
                        self._mark_stopped(session, item.question)
                first = False
                yield session
                if stopped:
                    return
        finally:
            steps.close()

    @staticmethod
    def _mark_stopped(session: ChatSession, question: str) -> None:
        """Keep what was streamed of the current answer, marked as stopped."""
        if _answers_in(session.history) > len(session.turns):  # stopped while searching
            session.turns = [*session.turns, Turn(question, None)]
            text = escape_markdown("Stopped before an answer.")
            session.history = [*session.history[:-1], {"role": "assistant", "content": text}]
            return
        last = session.turns[-1] if session.turns else None
        if last is None or last.answer is None or last.answer.done:
            return  # already complete: nothing to stop
        answer = replace(last.answer, done=True)
        session.turns = [*session.turns[:-1], Turn(last.question, answer)]
        text = render_answer(answer, len(session.turns)) + STOPPED
        session.history = [*session.history[:-1], {"role": "assistant", "content": text}]

    # -- saved conversations ------------------------------------------------------------

    def _save_last_turn(self, session: ChatSession) -> None:
        with session.lock:
            if session.owner is None or not session.turns:
                return
            owner, turns = session.owner, list(session.turns)
            conversation_id = session.conversation_id
        if conversation_id is None:
            conversation_id = self.conversations.create(owner, turns[0].question).conversation_id
        last = turns[-1]
        self.conversations.save_turn(
            owner, conversation_id, len(turns) - 1, last.question, last.answer
        )
        with session.lock:
            if session.turns[: len(turns)] == turns:  # still the same chat
                session.conversation_id = conversation_id
            session.saves += 1

    def open_session(self, key: str, owner: str, conversation_id: str | None = None) -> ChatSession:
        """Attach tab ``key`` to ``owner`` and show their saved ``conversation_id``
        (when it is theirs); the chat stays empty otherwise."""
        session = self.session(key)
        with session.lock:
            session.owner = owner
        if conversation_id:
            self.open_conversation(key, conversation_id)
        return session

    def open_conversation(self, key: str, conversation_id: str) -> bool:
        """Show a saved conversation of the tab's owner; False when there is none such."""
        session = self.session(key)
        saved = (
            self.conversations.turns(session.owner, conversation_id)
            if session.owner is not None
            else None
        )
        if saved is None:
            return False
        self.reset(key)
        with session.lock:
            session.turns = [Turn(t.question, t.answer) for t in saved]
            session.history = history_of(saved)
            session.conversation_id = conversation_id
        return True

    def new_conversation(self, key: str) -> None:
        """An empty chat; its first answered question starts a new saved conversation."""
        self.reset(key)
        with self.session(key).lock:
            self.session(key).conversation_id = None

    def rename_conversation(self, key: str, title: str) -> bool:
        session = self.session(key)
        if session.owner is None or session.conversation_id is None:
            return False
        renamed = self.conversations.rename(session.owner, session.conversation_id, title)
        session.saves += renamed
        return renamed

    def delete_conversation(self, key: str) -> bool:
        """Delete the open conversation of the tab and empty the chat."""
        session = self.session(key)
        if session.owner is None or session.conversation_id is None:
            return False
        deleted = self.conversations.delete(session.owner, session.conversation_id)
        self.new_conversation(key)
        session.saves += 1
        return deleted

    def export_conversation(self, key: str) -> Path | None:
        """Write the tab's chat as a Markdown file (for download); None when it is empty."""
        session = self.session(key)
        with session.lock:
            turns = list(session.turns)
            conversation_id = session.conversation_id
        if not turns:
            return None
        title = turns[0].question
        if session.owner and conversation_id:
            title = next(
                (
                    c.title
                    for c in self.conversations.summaries(session.owner)
                    if c.conversation_id == conversation_id
                ),
                title,
            )
        folder = Path(tempfile.mkdtemp(prefix="newsrag-export-"))
        name = safe_upload_name(f"{title[:60]}.md")
        path = folder / (name if name.endswith(".md") else f"{name}.md")
        path.write_text(conversation_markdown(title, turns), encoding="utf-8")
        return path

    # -- feedback ---------------------------------------------------------------------

    def rate(self, key: str, message_index: int, liked: bool | str) -> tuple[int, Answer] | None:
        """Store a thumbs up (``liked`` True) or down of the answer at chat message
        ``message_index``; returns (feedback id, the rated answer), or None when that
        message is no answer (a refusal, an answer still streaming)."""
        session = self.session(key)
        number = message_index // 2
        with session.lock:
            if message_index % 2 != 1 or not 0 <= number < len(session.turns):
                return None
            answer = session.turns[number].answer
            owner = session.owner or "anonymous"
        if answer is None or not answer.done:
            return None
        rating = 1 if liked is True else -1
        comment = liked if isinstance(liked, str) else ""
        return self.conversations.add_feedback(owner, answer, rating, comment), answer

    def comment_feedback(
        self, key: str, feedback_id: int, comment: str, right_article_id: str | None = None
    ) -> bool:
        """Add a comment (and, for a thumbs down, the right source) to a rating."""
        owner = self.session(key).owner or "anonymous"
        return self.conversations.update_feedback(owner, feedback_id, comment, right_article_id)

    def conversation_choices(self, key: str) -> list[tuple[str, str]]:
        """(label, id) of the owner's saved conversations, the latest first."""
        owner = self.session(key).owner
        if owner is None:
            return []
        return [
            (f"{c.title} · {c.updated:%Y-%m-%d %H:%M}", c.conversation_id)
            for c in self.conversations.summaries(owner)
        ]

    # -- library ---------------------------------------------------------------------

    # -- what the page may show of the server's files and outlets ----------------------

    def _roots(self) -> list[tuple[str, str]]:
        """(absolute directory, the name shown for it): uploads, seeds, the data dir."""
        roots = [
            (self.upload_dir, "uploads"),
            (self.settings.seeds_dir, self.settings.seeds_dir.name),
            (self.settings.data_dir, self.settings.data_dir.name),
        ]
        seen: list[tuple[str, str]] = []
        for directory, name in roots:
            for form in {str(directory.absolute()), os.path.realpath(directory)}:
                seen.append((form.rstrip("/") + "/", f"{name}/"))
        # The longest first: uploads/ lies inside the data dir.
        return sorted(seen, key=lambda pair: -len(pair[0]))

    def display_path(self, text: str) -> str:
        """A file's path as the page shows it: relative to the uploads, the seeds or the
        data folder (never the server's absolute path); other text is left as is.

        >>> chat.display_path("/srv/newsrag/seeds/a.txt")  # doctest: +SKIP
        'seeds/a.txt'
        """
        if not text.startswith("/"):
            return text
        for root, name in self._roots():
            if text.startswith(root):
                return name + text[len(root) :]
        return PurePosixPath(text).name

    def scrub(self, text: str) -> str:
        """Any message with the library's directories replaced by their short names."""
        for root, name in self._roots():
            text = text.replace(root, name)
        return text

    def outlet_of(self, record: ArticleRecord) -> str:
        """The outlet an article is shown and filtered by, as its card names it: its site
        name, its URL's host (without www.), the source it names, or for a file the
        folder it is in (``uploads`` for uploads)."""
        return self._outlet(record.outlet, bool(record.site_name or record.url), record.source)

    def _outlet(self, outlet: str, named: bool, source: str) -> str:
        """``outlet`` (see :func:`outlet_name`), except for a file: its folder."""
        if named or not source.startswith("/"):
            return outlet
        shown = self.display_path(source)
        if shown.startswith("uploads/"):
            return "uploads"
        return str(PurePosixPath(shown).parent) if "/" in shown else "files"

    def outlets(self) -> dict[str, list[OutletGroup]]:
        """Each outlet and the groups of articles it stands for (counted by the database,
        not read: see :meth:`SqlRecordStore.outlet_groups`), the biggest outlet first."""
        grouped: dict[str, list[OutletGroup]] = {}
        for group in self.assistant.records.outlet_groups():
            named = bool(group.site_name or group.host)
            outlet = self._outlet(group.outlet, named, group.source or "")
            grouped.setdefault(outlet, []).append(group)
        counts = {outlet: sum(g.articles for g in groups) for outlet, groups in grouped.items()}
        return dict(sorted(grouped.items(), key=lambda item: (-counts[item[0]], item[0])))

    def sources_of(self, outlets: Sequence[str] | None) -> tuple[str, ...]:
        """The article sources of the chosen outlets, for :class:`Filters`.

        Chosen outlets that hold no article (any more) match nothing, never everything.
        """
        if not outlets:
            return ()
        grouped = self.outlets()
        chosen = [group for outlet in outlets for group in grouped.get(outlet, ())]
        return tuple(self.assistant.records.sources_in(chosen)) or (NO_SOURCE,)

    def source_choices(self) -> list[tuple[str, str]]:
        """(outlet with its article count, outlet) for the sources filter."""
        return [
            (f"{outlet} ({sum(g.articles for g in groups)})", outlet)
            for outlet, groups in self.outlets().items()
        ]

    def refresh(self) -> tuple[str, Any]:
        """Stats and source filter choices, as they are now."""
        return (stats_markdown(self.assistant), gr.update(choices=self.source_choices()))

    # -- the articles table --------------------------------------------------------------

    def library_table(
        self, query: str = "", sort: str = "published", page: int = 1
    ) -> tuple[list[list[str | int]], str, list[str], int]:
        """(table rows, "page x of y" line, the rows' article ids, the page shown).

        One page is read from the database, searched and sorted there.
        """
        shown = library_page(self.assistant.index, query, sort, page, outlet=self.outlet_of)
        table: list[list[str | int]] = [
            [
                *_row_head(r.title, r.outlet, r.published),
                f"{r.added:%Y-%m-%d %H:%M}" if r.added else "",
                r.chunks,
            ]
            for r in shown.rows
        ]
        line = (
            f"Page {shown.page:,} of {shown.pages:,} · {shown.total:,} "
            f"{_plural(shown.total, 'article')}"
        )
        return table, line, [r.article_id for r in shown.rows], shown.page

    def row_article(
        self, ids: Sequence[str], row: int, clicked: Sequence[Any] | str | None
    ) -> str | None:
        """The article of the table row a reader clicked: ``ids`` are the rows' article
        ids as the server holds them, ``clicked`` the values of the row clicked (its
        title, outlet and date as shown; a title alone is accepted too).

        A search's or page's reply can reach the server between the click and its
        handling: ``ids`` then belong to the new page, and its row ``row`` to another
        article. The clicked row says which one was meant: the article of the new page
        shown with the same title, outlet and date (two outlets' copies of a story share
        a title), or None when the new page no longer holds it.
        """
        if not 0 <= row < len(ids):
            return None
        if clicked is None:
            return ids[row]
        wanted = (clicked,) if isinstance(clicked, str) else tuple(str(v) for v in clicked[:3])
        records = self.assistant.records.get_records(ids)

        def shown(article_id: str) -> tuple[str, ...] | None:
            record = records.get(article_id)
            if record is None:
                return None
            return _row_head(record.title, self.outlet_of(record), record.published)[: len(wanted)]

        if shown(ids[row]) == wanted:
            return ids[row]
        return next((i for i in ids if shown(i) == wanted), None)

    def read_article(self, article_id: str) -> str:
        """The article in full, as HTML (escaped): title, outlet, dates, paragraphs."""
        record = self.assistant.records.get_records([article_id]).get(article_id)
        text = library_text(self.assistant.index, article_id) if record else None
        if record is None or text is None:
            return "<p class='empty'>That article is no longer in the library.</p>"
        meta = [html.escape(self.outlet_of(record))]
        meta.append(record.published.isoformat() if record.published else "date unknown")
        href = _safe_href(record.url)
        if href:
            link = html.escape(href, quote=True)
            meta.append(f'<a href="{link}" target="_blank" rel="noopener noreferrer">{link}</a>')
        else:
            meta.append(html.escape(self.display_path(record.source)))
        paragraphs = "".join(
            f"<p>{html.escape(part.strip())}</p>"
            for part in re.split(r"\n\s*\n", text)
            if part.strip()
        )
        return (
            f"<article class='reader'><h3>{html.escape(record.title)}</h3>"
            f"<div class='meta'>{' · '.join(meta)} · {record.n_chunks} "
            f"{_plural(record.n_chunks, 'chunk')}</div>{paragraphs}</article>"
        )

    def delete_keeping(self, article_id: str) -> tuple[str, Article | None]:
        """Delete an article, keeping what is needed to undo it: (message, its snapshot)."""
        record = self.assistant.records.get_records([article_id]).get(article_id)
        if record is None:
            return "That article was not in the library.", None
        kept = snapshot(self.assistant.index, record)
        try:
            self.assistant.delete_article(article_id)
        except NewsragError as exc:
            return f"⚠ {self.scrub(str(exc))}", None
        return f"Deleted “{record.title}”.", kept

    def undo_delete(self, article: Article) -> str:
        """Put a deleted article back (same id, text, source and dates)."""
        try:
            with disk_full_as_error(
                "restoring the article", f"the library in {self.settings.data_dir}"
            ):
                self.assistant.ingestor().ingest_articles([article])
        except NewsragError as exc:
            return f"⚠ {self.scrub(str(exc))}"
        return f"Restored “{article.title}”."

    def upload(
        self, files: Sequence[str | Path] | None, progress: gr.Progress | None = None
    ) -> tuple[str, str, Any, Any]:
        """Ingest uploaded files: (report, stats, sources, cleared file input)."""
        if not files:
            return ("Choose files to upload first.", *self.refresh(), gr.update())
        try:
            where = f"upload folder {self.upload_dir}"
            try:
                with disk_full_as_error("saving the upload", where):
                    paths, rejected = save_uploads(
                        files, self.upload_dir, self.settings.upload_max_mb
                    )
            except NewsragError as exc:
                return (
                    f"**⚠ {escape_markdown(self.scrub(str(exc)))}**",
                    *self.refresh(),
                    gr.update(),
                )
            lines = []
            if paths:
                try:
                    report = self.assistant.ingest(paths, progress=_progress_callback(progress))
                except NewsragError as exc:
                    lines.append(f"**⚠ {escape_markdown(self.scrub(str(exc)))}**")
                    lines += [f"- failed: {escape_markdown(r)}" for r in rejected]
                else:
                    # Refused files are failures too: listed with the others, above the titles.
                    lines.append(report_markdown(report, self.scrub, rejected))
                self._remove_unused(paths)
            else:
                lines.append("**Nothing was ingested.**")
                lines += [f"- failed: {escape_markdown(r)}" for r in rejected]
        finally:
            # Whatever happened, Gradio's copy is no longer needed: repeated uploads of
            # rejected 50 MB files must not fill its temp dir.
            remove_gradio_copies(files, self.temp_dir)
        return ("\n".join(lines), *self.refresh(), gr.update(value=None))

    def _remove_unused(self, paths: Sequence[Path]) -> None:
        """Delete saved uploads that no indexed article comes from (rejected ones)."""
        used = {r.origin for r in self.assistant.records.get_records().values()}
        for path in paths:
            if os.path.realpath(path) not in used:
                path.unlink(missing_ok=True)
                with contextlib.suppress(OSError):  # other uploads share the name's dir
                    path.parent.rmdir()

    def paste(
        self,
        title: str,
        text: str,
        source: str = "",
        published: str = "",
        progress: gr.Progress | None = None,
    ) -> tuple[Any, Any, Any, Any, Any, str]:
        """Ingest a pasted article: (report, stats, sources, title, text, date message).

        A published date that is no date gets a message next to its field; nothing is
        ingested and every field keeps its text, to be fixed and sent again.
        """
        day, date_message = check_day(published)
        if date_message:
            kept = gr.update()
            return (kept, kept, kept, kept, kept, render_field_message(date_message))
        try:
            report = self.assistant.add_text(
                title,
                text,
                source=source.strip() or None,
                published=day,
                progress=_progress_callback(progress),
            )
        except NewsragError as exc:
            message = f"**⚠ {escape_markdown(self.scrub(str(exc)))}**"
            return (message, *self.refresh(), gr.update(), gr.update(), "")
        return (
            report_markdown(report, self.scrub),
            *self.refresh(),
            gr.update(value=""),
            gr.update(value=""),
            "",
        )

    def reseed(self, progress: gr.Progress | None = None) -> tuple[str, str, Any]:
        """Re-ingest ``seeds_dir`` (unchanged articles are skipped)."""
        seeds = self.settings.seeds_dir
        if not seeds.exists():
            return (
                f"**⚠ {escape_markdown(self.scrub(f'{seeds} does not exist'))}**",
                *self.refresh(),
            )
        try:
            report = self.assistant.ingest([seeds], progress=_progress_callback(progress))
        except NewsragError as exc:
            return (f"**⚠ {escape_markdown(self.scrub(str(exc)))}**", *self.refresh())
        return (report_markdown(report, self.scrub), *self.refresh())

    # -- web pages and feeds ---------------------------------------------------------

    @property
    def web(self) -> WebLibrary:
        """The library's pages and feeds (opened on first use, kept while the app runs)."""
        with self._web_lock:
            if self._web is None:
                self._web = WebLibrary.open(self.assistant.ingestor(), self.settings)
            return self._web

    def add_url(self, url: str) -> tuple[str, str, Any, Any]:
        """Fetch and ingest the page at ``url``: (report, stats, sources, URL box)."""
        if not url or not url.strip():
            return ("Paste the address of a news page first.", *self.refresh(), gr.update())
        outcome = self.web.add_page(url)
        report = url_report_markdown([outcome], "Page")
        box = gr.update() if outcome.status == "failed" else gr.update(value="")
        return (self.scrub(report), *self.refresh(), box)

    def follow_feed(self, url: str) -> tuple[str, str, Any, Any, str, Any]:
        """Follow the feed at ``url`` and ingest its items: (report, stats, sources, feed
        box, the feeds table, the feed choices)."""
        if not url or not url.strip():
            report = "Paste the address of an RSS or Atom feed first."
            return (report, *self.refresh(), gr.update(), *self.feeds_view())
        result = self.web.follow(url)
        if result.already:
            report = f"**Already following {escape_markdown(result.url)}.**"
        elif result.poll is None:
            reason = result.error or "unknown error"
            report = f"**⚠ Not followed: {escape_markdown(result.url)}: {escape_markdown(reason)}**"
        else:
            name = result.poll.title or result.url
            head = f"Following {name}: {result.poll.new_articles} new articles"
            report = url_report_markdown(result.poll.outcomes, head)
            report += "".join(
                f"\n- broken item: {escape_markdown(p)}" for p in result.poll.problems
            )
        box = gr.update() if result.poll is None and not result.already else gr.update(value="")
        return (self.scrub(report), *self.refresh(), box, *self.feeds_view())

    def unfollow_feed(self, url: str | None) -> tuple[str, str, Any]:
        """Stop following a feed: (report, the feeds table, the feed choices)."""
        if not url:
            return ("Choose a feed to stop following.", *self.feeds_view())
        if self.web.unfollow(url):
            report = f"Stopped following {escape_markdown(url)} (its articles stay)."
        else:
            report = f"{escape_markdown(url)} was not followed."
        return (report, *self.feeds_view())

    def poll_feeds(self) -> tuple[str, str, Any, str, Any]:
        """Fetch every followed feed now: (report, stats, sources, feeds table, choices)."""
        polls = self.web.poll_all()
        if not polls:
            report = "No feeds followed yet."
        else:
            lines = [f"**Feeds fetched: {sum(p.new_articles for p in polls)} new articles**", ""]
            lines += [f"- {escape_markdown(line.strip())}" for p in polls for line in p.lines()]
            report = "\n".join(lines)
        return (self.scrub(report), *self.refresh(), *self.feeds_view())

    def feeds_view(self) -> tuple[str, Any]:
        """The feeds table and the choices of the "stop following" list."""
        feeds = self.web.feeds()
        choices = [(feed.title or feed.url, feed.url) for feed in feeds]
        return render_feeds(feeds), gr.update(choices=choices, value=None)


def build_ui(assistant: Assistant, upload_dir: Path | None = None) -> gr.Blocks:
    """The chat, its source cards and the library panel.

    Uploads are kept in ``upload_dir`` (default ``<data_dir>/uploads``), so their
    articles keep a file next to the index. Launch with :func:`launch_options`.
    """
    chat = ChatApp(assistant, (upload_dir or assistant.settings.data_dir / "uploads").resolve())
    settings = assistant.settings
    no_latex: list[dict[str, str | bool]] = []  # "$$" in an article is not a formula

    with gr.Blocks(title="newsrag") as demo:
        gr.HTML(
            "<div class='app-header'><h1>newsrag — ask your news articles</h1>"
            "<span class='mode-badge' id='mode'>Answer mode: "
            f"<strong>{html.escape(assistant.mode_label)}</strong></span></div>",
            elem_id="header",
        )
        # Which saved conversations are this browser's: a random id in its localStorage
        # (encrypted with a key of this library, so it survives a server restart).
        secret = chat.conversations.browser_secret(settings.data_dir / ".browser-secret")
        browser_id = gr.BrowserState("", storage_key="newsrag-browser", secret=secret)
        open_id = gr.BrowserState("", storage_key="newsrag-open", secret=secret)
        with gr.Sidebar(label="Conversations", open=True, elem_id="sidebar", width=280):
            new_chat = gr.Button("New chat", size="sm", elem_id="new-chat")
            conversation_list = gr.Radio(
                choices=[], label="Saved conversations", elem_id="conversations"
            )
            with gr.Accordion("Rename, delete, export", open=False, elem_id="conversation-tools"):
                rename_box = gr.Textbox(
                    label="Title of the open conversation", elem_id="rename", max_length=120
                )
                with gr.Row():
                    rename_btn = gr.Button("Rename", size="sm", elem_id="rename-save")
                    delete_conversation = gr.Button(
                        "Delete", size="sm", variant="stop", elem_id="delete-conversation"
                    )
                export_btn = gr.Button("Export as Markdown", size="sm", elem_id="export")
                export_file = gr.File(
                    label="Markdown export", visible=False, elem_id="export-file", interactive=False
                )
        with gr.Row(equal_height=False):
            with gr.Column(scale=5, min_width=340, elem_id="chat-column"):
                chatbot = gr.Chatbot(
                    label="Chat",
                    show_label=False,
                    elem_id="chat",
                    height=520,
                    sanitize_html=True,
                    latex_delimiters=no_latex,
                    buttons=[],
                    placeholder=(
                        "**Ask a question about the articles.**\n\n"
                        "Every sentence of an answer ends with `[n]`: click it to see the "
                        "article and the quoted passage."
                    ),
                )
                # The chips, the question box and the status line: on a phone this bar
                # is pinned to the bottom of the screen (see CSS).
                with gr.Column(elem_id="ask-bar"):
                    # Active filters, visible with the panel closed; a click removes one.
                    with gr.Row(elem_id="filter-chips", equal_height=True):
                        chips = {
                            key: gr.Button(
                                "",
                                visible=False,
                                size="sm",
                                variant="secondary",
                                elem_id=f"chip-{key.replace('_', '-')}",
                                elem_classes=["chip"],
                                min_width=60,
                                scale=0,
                            )
                            for key in ("sources", "date_from", "date_to", "as_of")
                        }
                    with gr.Row(equal_height=True, elem_id="ask-row"):
                        question = gr.Textbox(
                            placeholder="Ask a question, e.g. what did Meloni propose?",
                            show_label=False,
                            scale=5,
                            min_width=160,
                            elem_id="question",
                            autofocus=True,
                            max_length=settings.max_question_chars,
                        )
                        send = gr.Button(
                            "Ask", variant="primary", scale=1, min_width=70, elem_id="ask"
                        )
                        stop = gr.Button(
                            "Stop",
                            variant="stop",
                            scale=0,
                            min_width=60,
                            elem_id="stop",
                            visible=False,
                        )
                    status = gr.HTML("", elem_id="chat-status")
                rated = gr.State(None)  # the id of the rating a comment is for
                with gr.Column(
                    visible=False, elem_id="feedback-box", variant="panel"
                ) as feedback_box:
                    feedback_note = gr.HTML("", elem_id="feedback-note")
                    feedback_comment = gr.Textbox(
                        label="Comment (optional)",
                        elem_id="feedback-comment",
                        max_length=2000,
                        lines=2,
                    )
                    feedback_right = gr.Dropdown(
                        choices=[],
                        label="Which source was the right one? (optional)",
                        elem_id="feedback-right",
                        visible=False,
                    )
                    feedback_send = gr.Button("Send comment", size="sm", elem_id="feedback-send")
                with gr.Accordion(
                    "Answer settings and filters", open=False, elem_id="filters"
                ) as panel:
                    # What answers the next questions (a change applies from the next one,
                    # or to the last one with its Retry button).
                    with gr.Row(equal_height=True):
                        modes = assistant.answer_modes
                        answer_mode = gr.Radio(
                            choices=[(_MODE_LABELS[m](assistant), m) for m in modes],
                            value=modes[-1],
                            label="Answer mode",
                            elem_id="answer-mode",
                            visible=len(modes) > 1,
                            scale=2,
                        )
                        top_k = gr.Slider(
                            minimum=1,
                            maximum=max(10, settings.top_k),
                            step=1,
                            value=settings.top_k,
                            label="Number of sources",
                            elem_id="top-k",
                            scale=1,
                            min_width=160,
                        )
                    if len(modes) == 1:
                        gr.HTML(
                            "<p class='mode-note'>Answers quote the articles. No LLM is "
                            "configured (set LLM_PROVIDER and LLM_MODEL for written answers)."
                            "</p>",
                            elem_id="mode-note",
                        )
                    # No library data in the page as built: Gradio shows the page's API
                    # description (choices included) to visitors who have not logged in.
                    # The choices, stats and article list are loaded with the page.
                    as_of = gr.Textbox(
                        label="As of (the date the question is asked; empty: today)",
                        placeholder="YYYY-MM-DD",
                        elem_id="as-of",
                        min_width=120,
                    )
                    as_of_msg = gr.HTML("", elem_id="as-of-msg")
                    source_filter = gr.Dropdown(
                        choices=[],
                        multiselect=True,
                        label="Only these sources",
                        elem_id="source-filter",
                    )
                    with gr.Row():
                        with gr.Column(min_width=120):
                            date_from = gr.Textbox(
                                label="Published from",
                                placeholder="YYYY-MM-DD",
                                elem_id="date-from",
                                min_width=120,
                            )
                            date_from_msg = gr.HTML("", elem_id="date-from-msg")
                        with gr.Column(min_width=120):
                            date_to = gr.Textbox(
                                label="Published to",
                                placeholder="YYYY-MM-DD",
                                elem_id="date-to",
                                min_width=120,
                            )
                            date_to_msg = gr.HTML("", elem_id="date-to-msg")
            with gr.Column(scale=4, min_width=300):
                gr.Markdown("### Sources")
                sources_html = gr.HTML(render_source_panel([]), elem_id="sources")
            with gr.Column(scale=3, min_width=280, elem_id="library"):
                gr.Markdown("### Library")
                stats = gr.Markdown("", elem_id="stats", latex_delimiters=no_latex)
                files = gr.File(
                    label=f"Upload articles (up to {settings.upload_max_mb:g} MB each)",
                    file_count="multiple",
                    file_types=list(SUPPORTED_SUFFIXES),
                    type="filepath",
                    elem_id="upload",
                    height=150,
                )
                with gr.Accordion("Paste an article", open=False, elem_id="paste"):
                    paste_title = gr.Textbox(label="Title", elem_id="paste-title")
                    paste_text = gr.Textbox(label="Text", lines=6, elem_id="paste-text")
                    with gr.Row():
                        paste_source = gr.Textbox(
                            label="Source or URL (optional)", elem_id="paste-source"
                        )
                        with gr.Column(min_width=120):
                            paste_date = gr.Textbox(
                                label="Published (optional)",
                                placeholder="YYYY-MM-DD",
                                elem_id="paste-date",
                            )
                            paste_date_msg = gr.HTML("", elem_id="paste-date-msg")
                    paste_btn = gr.Button("Add article", elem_id="paste-add")
                with gr.Accordion("Web pages and feeds", open=False, elem_id="web"):
                    with gr.Row(equal_height=True):
                        url_box = gr.Textbox(
                            label="Add a page (its web address)",
                            placeholder="https://…",
                            elem_id="url",
                            scale=3,
                            max_length=2000,
                        )
                        url_btn = gr.Button(
                            "Add page", elem_id="url-add", scale=1, min_width=90, size="sm"
                        )
                    with gr.Row(equal_height=True):
                        feed_box = gr.Textbox(
                            label="Follow a feed (RSS or Atom address)",
                            placeholder="https://…/rss",
                            elem_id="feed-url",
                            scale=3,
                            max_length=2000,
                        )
                        feed_btn = gr.Button(
                            "Follow", elem_id="feed-add", scale=1, min_width=90, size="sm"
                        )
                    feeds_html = gr.HTML("", elem_id="feeds")
                    with gr.Row(equal_height=True):
                        feed_choice = gr.Dropdown(
                            choices=[], label="Followed feed", elem_id="feed-choice", scale=2
                        )
                        feed_remove = gr.Button(
                            "Stop following", elem_id="feed-remove", size="sm", scale=1
                        )
                    feed_poll = gr.Button("Fetch the feeds now", elem_id="feed-poll", size="sm")
                report = gr.Markdown(elem_id="report", latex_delimiters=no_latex)
                reseed_btn = gr.Button("Re-ingest seeds/", elem_id="reseed", size="sm")
        with gr.Accordion("Articles in the library", open=False, elem_id="library-view"):
            with gr.Row(equal_height=True):
                lib_search = gr.Textbox(
                    label="Search titles, outlets and bylines", elem_id="lib-search", scale=3
                )
                lib_sort = gr.Dropdown(
                    choices=[(label, key) for key, label in SORTS.items()],
                    value="published",
                    label="Sort by",
                    elem_id="lib-sort",
                    scale=1,
                )
            lib_table = gr.Dataframe(
                headers=["Title", "Outlet", "Published", "Added", "Chunks"],
                datatype=["str", "str", "str", "str", "number"],
                interactive=False,
                elem_id="lib-table",
            )
            with gr.Row(equal_height=True):
                lib_prev = gr.Button("← Previous", size="sm", elem_id="lib-prev", scale=0)
                lib_line = gr.HTML("", elem_id="lib-page")
                lib_next = gr.Button("Next →", size="sm", elem_id="lib-next", scale=0)
            lib_ids = gr.State([])
            lib_page_no = gr.State(1)
            lib_open = gr.State(None)
            lib_deleted = gr.State(None)
            with gr.Column(visible=False, elem_id="reader-box") as reader_box:
                reader = gr.HTML("", elem_id="reader")
                with gr.Row():
                    lib_delete = gr.Button(
                        "Delete this article", variant="stop", size="sm", elem_id="lib-delete"
                    )
                    lib_close = gr.Button("Close", size="sm", elem_id="lib-close")
            with gr.Row(visible=False, elem_id="lib-confirm") as confirm_row:
                confirm_note = gr.HTML("", elem_id="lib-confirm-note")
                confirm_yes = gr.Button(
                    "Yes, delete", variant="stop", size="sm", elem_id="lib-confirm-yes"
                )
                confirm_no = gr.Button("Cancel", size="sm", elem_id="lib-confirm-no")
            with gr.Row(visible=False, elem_id="lib-undo-row") as undo_row:
                undo_note = gr.HTML("", elem_id="lib-undo-note")
                undo_btn = gr.Button("Undo", size="sm", elem_id="lib-undo")

        fields = {"as_of": as_of, "date_from": date_from, "date_to": date_to}
        messages = {"as_of": as_of_msg, "date_from": date_from_msg, "date_to": date_to_msg}
        filter_inputs: list[Any] = [source_filter, date_from, date_to, as_of]

        def field_messages(problems: dict[str, str]) -> list[str]:
            return [render_field_message(problems.get(key)) for key in messages]

        answer_inputs: list[Any] = [answer_mode, top_k]

        def on_ask(
            message: str,
            sources: list[str] | None,
            low: str,
            high: str,
            asked_on: str,
            mode: AnswerMode | None,
            k: float | None,
            request: gr.Request,
        ) -> list[Any]:
            problems = chat.enqueue(
                request.session_hash or "",
                message,
                sources,
                low,
                high,
                asked_on,
                int(k) if k else None,
                mode,
            )
            if problems:  # the question stays in the input; each field says what is wrong
                return [gr.update(), *field_messages(problems), gr.update(open=True)]
            return [gr.update(value=""), *field_messages({}), gr.update()]

        def on_drain(request: gr.Request) -> Iterator[list[Any]]:
            key = request.session_hash or ""
            saves = chat.session(key).saves
            for session in chat.drain(key):
                if session is None:  # this tab's questions are being answered already
                    yield [gr.skip()] * 7
                    continue
                busy = session.current is not None
                listed: list[Any] = [gr.skip(), gr.skip()]
                if session.saves != saves:  # a turn was saved: the list and open id change
                    saves = session.saves
                    listed = [
                        gr.update(
                            choices=chat.conversation_choices(key), value=session.conversation_id
                        ),
                        session.conversation_id or "",
                    ]
                yield [
                    [*session.history],
                    render_source_panel(session.turns),
                    render_status(session),
                    gr.update(value="Queue" if busy else "Ask"),
                    gr.update(visible=busy),
                    *listed,
                ]

        drain_outputs = [chatbot, sources_html, status, send, stop, conversation_list, open_id]
        for trigger in (question.submit, send.click):
            trigger(
                on_ask,
                [question, *filter_inputs, *answer_inputs],
                [question, *messages.values(), panel],
                queue=False,
                trigger_mode="multiple",
                show_progress="hidden",
            ).then(
                on_drain,
                None,
                drain_outputs,
                show_progress="hidden",
                concurrency_id="chat",
                trigger_mode="multiple",
            )

        def on_retry(
            sources: list[str] | None,
            low: str,
            high: str,
            asked_on: str,
            mode: AnswerMode | None,
            k: float | None,
            request: gr.Request,
        ) -> list[Any]:
            key = request.session_hash or ""
            problems = chat.regenerate(
                key, sources, low, high, asked_on, int(k) if k else None, mode
            )
            return [*field_messages(problems), gr.update(open=True) if problems else gr.update()]

        # The Retry button under the last answer: answered again with the settings now.
        chatbot.retry(
            on_retry,
            [*filter_inputs, *answer_inputs],
            [*messages.values(), panel],
            queue=False,
            show_progress="hidden",
        ).then(
            on_drain,
            None,
            drain_outputs,
            show_progress="hidden",
            concurrency_id="chat",
            trigger_mode="multiple",
        )

        def on_stop(request: gr.Request) -> None:
            chat.request_stop(request.session_hash or "")

        stop.click(on_stop, None, None, queue=False)

        def owner_of(request: gr.Request, stored: str) -> str:
            # With login, conversations follow the user to any browser.
            return f"user:{request.username}" if request.username else f"browser:{stored}"

        def show(key: str) -> list[Any]:
            session = chat.session(key)
            return [
                [*session.history],
                render_source_panel(session.turns),
                "",
                gr.update(choices=chat.conversation_choices(key), value=session.conversation_id),
                session.conversation_id or "",
            ]

        shown = [chatbot, sources_html, status, conversation_list, open_id]

        def on_load(stored_id: str, open_conversation: str, request: gr.Request) -> list[Any]:
            stored_id = stored_id or new_owner_id()
            key = request.session_hash or ""
            chat.open_session(key, owner_of(request, stored_id), open_conversation or None)
            return [stored_id, *show(key)]

        demo.load(
            on_load,
            [browser_id, open_id],
            [browser_id, *shown],
            queue=False,
            show_progress="hidden",
        )

        def on_new(request: gr.Request) -> list[Any]:
            key = request.session_hash or ""
            chat.new_conversation(key)
            return [*show(key), ""]

        new_chat.click(on_new, None, [*shown, rename_box], queue=False)

        def on_clear(request: gr.Request) -> list[Any]:
            return on_new(request)

        chatbot.clear(on_clear, None, [*shown, rename_box], queue=False)

        def on_open(conversation_id: str | None, request: gr.Request) -> list[Any]:
            key = request.session_hash or ""
            if conversation_id:
                chat.open_conversation(key, conversation_id)
            return [*show(key), ""]

        conversation_list.input(on_open, [conversation_list], [*shown, rename_box], queue=False)

        def on_rename(title: str, request: gr.Request) -> list[Any]:
            key = request.session_hash or ""
            chat.rename_conversation(key, title)
            return [gr.update(choices=chat.conversation_choices(key)), ""]

        rename_btn.click(on_rename, [rename_box], [conversation_list, rename_box], queue=False)
        rename_box.submit(on_rename, [rename_box], [conversation_list, rename_box], queue=False)

        def on_delete_conversation(request: gr.Request) -> list[Any]:
            key = request.session_hash or ""
            chat.delete_conversation(key)
            return show(key)

        delete_conversation.click(on_delete_conversation, None, shown, queue=False)

        def on_like(data: gr.LikeData, request: gr.Request) -> list[Any]:
            index = data.index if isinstance(data.index, int) else -1
            rated_answer = chat.rate(request.session_hash or "", index, data.liked)
            if rated_answer is None:
                return [None, gr.update(visible=False), "", gr.update(), gr.update()]
            feedback_id, answer = rated_answer
            up = data.liked is True
            note = "Thanks: marked as helpful." if up else "Thanks: marked as not helpful."
            sources = [(f"[{s.number}] {s.title}"[:100], s.article_id) for s in answer.sources]
            return [
                feedback_id,
                gr.update(visible=True),
                f"<p class='feedback-note'>{note}</p>",
                gr.update(value=""),
                gr.update(choices=sources, value=None, visible=not up and bool(sources)),
            ]

        chatbot.like(
            on_like,
            None,
            [rated, feedback_box, feedback_note, feedback_comment, feedback_right],
            queue=False,
        )

        def on_comment(
            feedback_id: int | None, comment: str, right: str | None, request: gr.Request
        ) -> list[Any]:
            if feedback_id is not None:
                chat.comment_feedback(request.session_hash or "", feedback_id, comment, right)
            return [None, gr.update(visible=False)]

        feedback_send.click(
            on_comment,
            [rated, feedback_comment, feedback_right],
            [rated, feedback_box],
            queue=False,
        )

        def on_export(request: gr.Request) -> Any:
            path = chat.export_conversation(request.session_hash or "")
            return gr.update(value=str(path) if path else None, visible=path is not None)

        export_btn.click(on_export, None, export_file)

        def on_unload(request: gr.Request) -> None:
            chat.forget(request.session_hash or "")

        demo.unload(on_unload)

        def show_chips(sources: list[str] | None, low: str, high: str, asked_on: str) -> list[Any]:
            labels = filter_chips(sources, low, high, asked_on)
            return [gr.update(value=labels.get(key, ""), visible=key in labels) for key in chips]

        for component in filter_inputs:
            component.change(
                show_chips, filter_inputs, list(chips.values()), queue=False, show_progress="hidden"
            )
        chips["sources"].click(lambda: [], None, source_filter, queue=False)
        for key, box in fields.items():
            chips[key].click(lambda: "", None, box, queue=False)

        def check_dates(asked_on: str, low: str, high: str) -> list[str]:
            return field_messages(check_filter_fields(asked_on, low, high))

        for box in fields.values():
            # On leaving a field (not on each keystroke: "2025-0" is on its way to a date).
            box.blur(
                check_dates,
                [as_of, date_from, date_to],
                list(messages.values()),
                queue=False,
                show_progress="hidden",
            )

        library = [report, stats, source_filter]
        # One ingest at a time: two batches must not plan against the same manifest.
        ingest_options: dict[str, Any] = {
            "concurrency_limit": 1,
            "concurrency_id": "library",
            # One progress display, where the report appears (not one per output).
            "show_progress_on": [report],
        }

        def on_upload(
            paths: list[str] | None, progress: gr.Progress = _PROGRESS
        ) -> tuple[str, str, Any, Any]:
            return chat.upload(paths, progress)

        def on_paste(
            title: str,
            text: str,
            source: str,
            published: str,
            progress: gr.Progress = _PROGRESS,
        ) -> tuple[Any, Any, Any, Any, Any, str]:
            return chat.paste(title, text, source, published, progress)

        paste_date.blur(
            lambda text: render_field_message(check_day(text)[1]),
            [paste_date],
            [paste_date_msg],
            queue=False,
            show_progress="hidden",
        )

        def on_reseed(progress: gr.Progress = _PROGRESS) -> tuple[str, str, Any]:
            return chat.reseed(progress)

        after_ingest = [
            files.upload(on_upload, [files], [*library, files], **ingest_options),
            paste_btn.click(
                on_paste,
                [paste_title, paste_text, paste_source, paste_date],
                [*library, paste_title, paste_text, paste_date_msg],
                **ingest_options,
            ),
            reseed_btn.click(on_reseed, None, library, **ingest_options),
        ]
        # Web pages and feeds: fetched and ingested one batch at a time, as uploads.
        feed_outputs = [feeds_html, feed_choice]
        for trigger in (url_btn.click, url_box.submit):
            after_ingest.append(
                trigger(chat.add_url, [url_box], [*library, url_box], **ingest_options)
            )
        for trigger in (feed_btn.click, feed_box.submit):
            after_ingest.append(
                trigger(
                    chat.follow_feed,
                    [feed_box],
                    [*library, feed_box, *feed_outputs],
                    **ingest_options,
                )
            )
        after_ingest.append(
            feed_poll.click(chat.poll_feeds, None, [*library, *feed_outputs], **ingest_options)
        )
        feed_remove.click(
            chat.unfollow_feed,
            [feed_choice],
            [report, *feed_outputs],
            concurrency_limit=1,
            concurrency_id="library",
            show_progress="hidden",
        )
        demo.load(chat.feeds_view, None, feed_outputs, show_progress="hidden")
        # The library as it is now (never part of the page as built, see above).
        demo.load(chat.refresh, None, [stats, source_filter], show_progress="hidden")

        # -- the articles table ---------------------------------------------------------
        table_outputs = [lib_table, lib_line, lib_ids, lib_page_no]

        def show_table(query: str, sort: str, page: int) -> tuple[Any, ...]:
            return chat.library_table(query or "", sort or "published", page)

        def first_page(query: str, sort: str) -> tuple[Any, ...]:
            return show_table(query, sort, 1)

        table_inputs = [lib_search, lib_sort]
        lib_search.change(first_page, table_inputs, table_outputs, show_progress="hidden")
        lib_sort.change(first_page, table_inputs, table_outputs, show_progress="hidden")
        lib_prev.click(
            lambda q, s, n: show_table(q, s, n - 1),
            [*table_inputs, lib_page_no],
            table_outputs,
            show_progress="hidden",
        )
        lib_next.click(
            lambda q, s, n: show_table(q, s, n + 1),
            [*table_inputs, lib_page_no],
            table_outputs,
            show_progress="hidden",
        )
        demo.load(show_table, [*table_inputs, lib_page_no], table_outputs, show_progress="hidden")
        for ingest_event in after_ingest:
            ingest_event.then(
                show_table, [*table_inputs, lib_page_no], table_outputs, show_progress="hidden"
            )
        delete_options: dict[str, Any] = {
            "concurrency_limit": 1,
            "concurrency_id": "library",
            "show_progress": "hidden",
        }

        def on_row(ids: list[str], event: gr.SelectData) -> list[Any]:
            row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
            clicked = event.row_value or None
            article_id = chat.row_article(ids, row, clicked) if isinstance(row, int) else None
            if article_id is None:
                return [gr.skip(), gr.skip(), gr.skip(), gr.skip()]
            return [
                article_id,
                chat.read_article(article_id),
                gr.update(visible=True),
                gr.update(visible=False),
            ]

        lib_table.select(
            on_row, [lib_ids], [lib_open, reader, reader_box, confirm_row], show_progress="hidden"
        )
        lib_close.click(
            lambda: [None, gr.update(visible=False), gr.update(visible=False)],
            None,
            [lib_open, reader_box, confirm_row],
            queue=False,
        )

        def ask_to_delete(article_id: str | None) -> list[Any]:
            if not article_id:
                return [gr.update(visible=False), ""]
            record = chat.assistant.records.get_records([article_id]).get(article_id)
            title = record.title if record else ""
            note = (
                f"<p>Delete “{html.escape(title)}” from the library? Answers will no longer "
                "cite it.</p>"
            )
            return [gr.update(visible=True), note]

        lib_delete.click(ask_to_delete, [lib_open], [confirm_row, confirm_note], queue=False)
        confirm_no.click(lambda: gr.update(visible=False), None, confirm_row, queue=False)

        def on_confirm(article_id: str | None, query: str, sort: str, page: int) -> list[Any]:
            message, kept = chat.delete_keeping(article_id or "")
            return [
                gr.update(visible=False),
                gr.update(visible=False),
                None,
                kept,
                gr.update(visible=True),
                f"<p>{html.escape(message)}</p>",
                gr.update(visible=kept is not None),
                *chat.refresh(),
                *show_table(query, sort, page),
            ]

        confirm_yes.click(
            on_confirm,
            [lib_open, *table_inputs, lib_page_no],
            [
                confirm_row,
                reader_box,
                lib_open,
                lib_deleted,
                undo_row,
                undo_note,
                undo_btn,
                stats,
                source_filter,
                *table_outputs,
            ],
            **delete_options,
        )

        def on_undo(kept: Article | None, query: str, sort: str, page: int) -> list[Any]:
            message = chat.undo_delete(kept) if kept is not None else "Nothing to undo."
            return [
                None,
                f"<p>{html.escape(message)}</p>",
                gr.update(visible=False),
                *chat.refresh(),
                *show_table(query, sort, page),
            ]

        undo_btn.click(
            on_undo,
            [lib_deleted, *table_inputs, lib_page_no],
            [lib_deleted, undo_note, undo_btn, stats, source_filter, *table_outputs],
            **delete_options,
        )
    return demo


class LoginThrottle:
    """ASGI middleware: a client that fails too many logins is refused for a while.

    Gradio's ``/login`` answers 400 to wrong credentials; after ``max_failures`` of
    them from one client address within ``window`` seconds, every login attempt from
    that address gets 429 for ``lockout_seconds``, right password or not. Behind a
    reverse proxy all clients share the proxy's address (and its lockout).

    >>> from fastapi import FastAPI
    >>> from starlette.middleware import Middleware
    >>> api = FastAPI(middleware=[Middleware(LoginThrottle, max_failures=5)])
    """

    def __init__(
        self,
        app: Any,
        *,
        max_failures: int = 5,
        lockout_seconds: float = 300.0,
        window: float = 60.0,
    ) -> None:
        self.app = app
        self.max_failures = max_failures
        self.lockout_seconds = lockout_seconds
        self.window = window
        self._failures: dict[str, list[float]] = {}
        self._locked_until: dict[str, float] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = str(scope.get("path", ""))
        if (
            scope.get("type") != "http"
            or scope.get("method") != "POST"
            or not path.rstrip("/").endswith("/login")
        ):
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("unknown", 0))[0]
        now = time.monotonic()
        wait = self._locked_until.get(client, 0.0) - now
        if wait > 0:
            await _refuse(send, wait)
            return
        status = 0

        async def watch(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        await self.app(scope, receive, watch)
        if status == 400:
            self._failed(client, time.monotonic())
        elif status == 200:
            self._failures.pop(client, None)

    def _failed(self, client: str, now: float) -> None:
        recent = [t for t in self._failures.get(client, []) if now - t < self.window]
        recent.append(now)
        self._failures[client] = recent
        if len(recent) >= self.max_failures:
            self._locked_until[client] = now + self.lockout_seconds
            self._failures.pop(client, None)
            logger.warning(
                "%d failed logins from %s within %g s: refusing its logins for %g s",
                len(recent),
                client,
                self.window,
                self.lockout_seconds,
            )
        if len(self._failures) + len(self._locked_until) > 10_000:
            self._forget_old(now)  # many addresses: keep the memory bounded

    def _forget_old(self, now: float) -> None:
        self._failures = {
            c: ts for c, ts in self._failures.items() if ts and now - ts[-1] < self.window
        }
        self._locked_until = {c: t for c, t in self._locked_until.items() if t > now}


async def _refuse(send: Any, wait: float) -> None:
    seconds = max(1, round(wait))
    body = json.dumps(
        {"detail": f"Too many failed logins from your address; try again in {seconds} s."}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(seconds).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def launch_options(settings: Settings) -> dict[str, Any]:
    """The ``launch()`` arguments the chat needs: CSS, the marker script, the upload
    limit, and the login (with its throttling) when ``NEWSRAG_AUTH_*`` are set."""
    options: dict[str, Any] = {
        "css": CSS,
        "head": HEAD,
        # Bytes: Gradio's "<n>mb" strings take whole numbers only.
        "max_file_size": int(settings.upload_max_mb * 1024 * 1024),
        "footer_links": [],
    }
    if settings.auth_username and settings.auth_password:
        options["auth"] = (settings.auth_username, settings.auth_password.get_secret_value())
        throttle = Middleware(
            LoginThrottle,
            max_failures=settings.login_max_failures,
            lockout_seconds=settings.login_lockout_seconds,
        )
        options["app_kwargs"] = {"middleware": [throttle]}
    return options


def first_run_line(report: IngestReport, seeds_dir: Path) -> str:
    """What the first run did with ``seeds/``, in one line for the terminal.

    >>> from ingest.pipeline import IngestReport
    >>> first_run_line(IngestReport(added=["a"], chunks_written=4, seconds=0.31), Path("seeds"))
    'First run: the library was empty, so it now holds the 1 article of seeds (4 chunks, 0.3 s).'
    """
    added = len(report.added) + len(report.updated)
    line = (
        f"First run: the library was empty, so it now holds the {added} "
        f"{_plural(added, 'article')} of {seeds_dir} ({report.chunks_written} "
        f"{_plural(report.chunks_written, 'chunk')}, {report.seconds:.1f} s)."
    )
    if report.failed:
        line += f" {len(report.failed)} could not be read: `newsrag ingest {seeds_dir}` says why."
    return line


def launch(
    settings: Settings | None = None,
    *,
    host: str | None = None,
    port: int | None = None,
    open_browser: bool = True,
) -> None:
    """Open the chat: ingest ``seeds/`` on first run, then serve on 127.0.0.1 by default.

    Refuses (:class:`rag.errors.ConfigError`) to serve beyond this machine without login
    unless ``NEWSRAG_ALLOW_OPEN=true`` (see :meth:`Settings.check_exposure`).
    """
    settings = settings or Settings()
    host = host or settings.host
    warning = settings.check_exposure(host)  # before any work: a refusal costs nothing
    if warning:
        logger.warning(warning)
    settings.apply_privacy_defaults()
    assistant = Assistant.from_settings(settings)
    seeded = assistant.ensure_seeded()
    if seeded is not None:
        # Expected on a first run: one plain line (the CLI shows user-facing INFO lines).
        logger.info("%s", first_run_line(seeded, settings.seeds_dir), extra={"user_facing": True})
    demo = build_ui(assistant)
    demo.queue(default_concurrency_limit=4).launch(
        server_name=host,
        server_port=port or settings.port,
        inbrowser=open_browser,
        **launch_options(settings),
    )


if __name__ == "__main__":
    launch()
