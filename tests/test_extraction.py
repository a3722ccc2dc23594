"""News pages give their headline, story, date, author and outlet, without page furniture."""

from __future__ import annotations

from datetime import date

import pytest

from ingest.loaders import decode_html, extract_html
from rag.errors import LoaderError

_PARAGRAPHS = [
    "The city council of Lakeview voted on Tuesday to rebuild the old harbour bridge, "
    "closed since a storm cracked two of its pillars last winter.",
    "Engineers said the new bridge would carry trams as well as cars, and that the work "
    "should take about three years if the regional grant arrives in spring.",
    "Shop owners near the harbour welcomed the vote, saying the closure had cut the number "
    "of visitors to the old town by almost a third over the summer months.",
    "Opponents argued that the money would be better spent on the ferry service, which "
    "already links both banks of the river every twenty minutes.",
]

_NEWS_PAGE = f"""<!doctype html>
<html lang="en"><head>
<meta charset="utf-8">
<title>Lakeview will rebuild its harbour bridge | The Lakeview Courier</title>
<meta property="og:title" content="Lakeview will rebuild its harbour bridge">
<meta property="og:site_name" content="The Lakeview Courier">
<meta name="author" content="Dana Whitfield">
<meta property="article:published_time" content="2024-09-17T08:15:00Z">
<link rel="canonical" href="https://courier.example/news/harbour-bridge">
</head><body>
<header><a href="/">The Lakeview Courier</a><nav><a href="/news">News</a>
<a href="/sport">Sport</a><a href="/weather">Weather</a></nav></header>
<main><article>
<h1>Lakeview will rebuild its harbour bridge</h1>
<p class="byline">By Dana Whitfield</p>
{"".join(f"<p>{p}</p>" for p in _PARAGRAPHS[:2])}
<p>Advertisement</p>
{"".join(f"<p>{p}</p>" for p in _PARAGRAPHS[2:])}
<p>Share this article</p>
<div class="comments"><h3>12 Comments</h3>
<p>Great news, finally!</p></div>
</article>
<aside><h2>Most read</h2><ul><li><a href="/a">Storm warning for the weekend</a></li>
<li><a href="/b">Local team wins the cup</a></li></ul></aside>
</main>
<footer>Copyright The Lakeview Courier. All rights reserved.</footer>
</body></html>"""


def test_a_news_page_gives_its_headline_date_author_outlet_and_url() -> None:
    page = extract_html(_NEWS_PAGE)

    assert page.title == "Lakeview will rebuild its harbour bridge"
    assert page.published == date(2024, 9, 17)
    assert page.author == "Dana Whitfield"
    assert page.site_name == "The Lakeview Courier"
    assert page.url == "https://courier.example/news/harbour-bridge"
    assert page.method == "trafilatura"


def test_a_news_page_keeps_every_story_paragraph_and_drops_the_furniture() -> None:
    page = extract_html(_NEWS_PAGE)

    for paragraph in _PARAGRAPHS:
        assert paragraph in page.text
    for furniture in ("Advertisement", "Share this", "Most read", "Storm warning", "Copyright"):
        assert furniture not in page.text
    assert "Sport" not in page.text
    assert page.text.index(_PARAGRAPHS[0]) < page.text.index(_PARAGRAPHS[3])


def test_a_page_too_small_for_trafilatura_falls_back_to_the_heuristic() -> None:
    page = extract_html("<body><article><p>Short note.</p></article></body>")

    assert page.text == "Short note."
    assert page.method == "heuristic"


def test_a_page_with_only_navigation_has_no_article() -> None:
    with pytest.raises(LoaderError, match="no text in HTML"):
        extract_html("<body><nav><a href='/'>Home</a></nav><footer>(c)</footer></body>")


def test_a_page_is_decoded_with_its_declared_charset_before_guessing() -> None:
    latin = '<meta charset="iso-8859-1"><p>Caf\xe9 cr\xe8me</p>'.encode("latin-1")

    assert "Café crème" in decode_html(latin)
    assert decode_html("Café".encode(), charset="utf-8") == "Café"
    assert decode_html("Caf\xe9".encode("cp1252")) == "Café"  # no declaration, not UTF-8
