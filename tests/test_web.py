"""News from the web: URLs and RSS/Atom feeds ingested from a real server on 127.0.0.1."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import pytest

from ingest.feeds import FeedPoll, FeedWatcher, parse_feed
from ingest.fetch import Fetcher, FetchPolicy
from ingest.web import WebIngestor
from ingest.webstate import WebState
from rag.assistant import Assistant
from rag.cli import main
from rag.errors import FetchError
from rag.settings import Settings
from tests.conftest import make_settings
from tests.webserver import LocalWeb, Route

pytestmark = pytest.mark.slow


def _page(headline: str, paragraphs: list[str], published: str | None = None) -> bytes:
    meta = f'<meta property="article:published_time" content="{published}">' if published else ""
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{headline}</title>{meta}"
        f"<meta property='og:title' content='{headline}'></head><body>"
        "<nav><a href='/'>Home</a><a href='/world'>World</a></nav>"
        f"<article><h1>{headline}</h1>{body}</article>"
        "<footer>Copyright Local Web News</footer></body></html>"
    ).encode()


_BRIDGE = _page(
    "Lakeview will rebuild its harbour bridge",
    [
        "The city council of Lakeview voted on Tuesday to rebuild the old harbour bridge, "
        "closed since a storm cracked two of its pillars last winter.",
        "Engineers said the new bridge would carry trams as well as cars, and that the "
        "work should take about three years if the regional grant arrives in spring.",
        "Shop owners near the harbour welcomed the vote after a quiet summer.",
    ],
    "2024-09-17T08:15:00Z",
)
_ORCHARD = _page(
    "Apple harvest in the Vermeer valley is the largest in a decade",
    [
        "Growers in the Vermeer valley picked more apples this autumn than in any year "
        "since 2014, helped by a mild spring without frost.",
        "The cooperative said prices would fall slightly, and that it would hire forty "
        "seasonal workers more than last year to pack the fruit.",
    ],
)
_FERRY = _page(
    "Night ferry to Saltholm resumes after repairs",
    [
        "The night ferry between the harbour and the island of Saltholm sails again from "
        "Monday, after six weeks in the shipyard for a new engine.",
        "The operator said the crossing would take forty minutes, ten fewer than before.",
    ],
)


@pytest.fixture
def web() -> Iterator[LocalWeb]:
    server = LocalWeb()
    yield server
    server.close()


@pytest.fixture
def web_settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path / "data", fetch_allow_private=True, fetch_host_delay=0.0, fetch_timeout=2.0
    )


@pytest.fixture
def assistant(web_settings: Settings, assistant_factory: Callable[..., Assistant]) -> Assistant:
    return assistant_factory(web_settings)


def _web_ingestor(assistant: Assistant, settings: Settings) -> WebIngestor:
    fetcher = Fetcher(FetchPolicy.from_settings(settings))
    return WebIngestor(assistant.ingestor(), fetcher, WebState(assistant.index.records.engine))


def test_a_url_is_fetched_ingested_and_answers_cite_it(
    web: LocalWeb, assistant: Assistant, web_settings: Settings
) -> None:
    web.routes["/bridge"] = Route(_BRIDGE)
    ingestor = _web_ingestor(assistant, web_settings)

    outcome = ingestor.ingest_url(web.url("/bridge"))

    assert outcome.status == "added"
    assert outcome.title == "Lakeview will rebuild its harbour bridge"
    answer = assistant.ask("What will the new Lakeview bridge carry?", as_of=date(2024, 9, 20))
    assert answer.sources[0].url == web.url("/bridge")
    assert answer.sources[0].published == date(2024, 9, 17)
    assert "trams" in answer.text
    assert [a.article_id for a in assistant.articles()] == [outcome.article_id]


def test_an_unchanged_url_is_answered_304_and_adds_nothing(
    web: LocalWeb, assistant: Assistant, web_settings: Settings
) -> None:
    web.routes["/bridge"] = Route(_BRIDGE, etag='"bridge-1"')
    ingestor = _web_ingestor(assistant, web_settings)
    assert ingestor.ingest_url(web.url("/bridge")).status == "added"

    again = ingestor.ingest_url(web.url("/bridge"))

    assert again.status == "unchanged"
    assert "304" in again.reason
    assert web.requests[-1].headers["if-none-match"] == '"bridge-1"'
    assert len(assistant.articles()) == 1


def test_an_unchanged_url_with_only_a_last_modified_date_is_answered_304_and_adds_nothing(
    web: LocalWeb, assistant: Assistant, web_settings: Settings
) -> None:
    stamp = "Mon, 16 Sep 2024 06:00:00 GMT"
    web.routes["/ferry"] = Route(_FERRY, last_modified=stamp)
    assert _web_ingestor(assistant, web_settings).ingest_url(web.url("/ferry")).status == "added"
    chunks = assistant.stats().chunks

    # Another ingestor (a later run): the date comes from the library's database.
    again = _web_ingestor(assistant, web_settings).ingest_url(web.url("/ferry"))

    assert again.status == "unchanged"
    assert "304" in again.reason
    request = web.requests[-1]
    assert request.path == "/ferry"
    assert request.headers["if-modified-since"] == stamp
    assert "if-none-match" not in request.headers
    assert len(assistant.articles()) == 1
    assert assistant.stats().chunks == chunks


def test_without_validators_the_content_hash_skips_an_unchanged_page_and_updates_a_changed_one(
    web: LocalWeb, assistant: Assistant, web_settings: Settings
) -> None:
    web.routes["/bridge"] = Route(_BRIDGE)
    ingestor = _web_ingestor(assistant, web_settings)
    assert ingestor.ingest_url(web.url("/bridge")).status == "added"

    same = ingestor.ingest_url(web.url("/bridge"))
    web.routes["/bridge"] = Route(_BRIDGE.replace(b"three years", b"four years"))
    changed = ingestor.ingest_url(web.url("/bridge"))

    assert (same.status, same.reason) == ("unchanged", "same content")
    assert changed.status == "updated"
    assert len(assistant.articles()) == 1
    answer = assistant.ask("How long will the bridge work take?", as_of=date(2024, 9, 20))
    assert "four years" in answer.text


def test_a_batch_reports_each_failing_url_with_its_reason_and_ingests_the_rest(
    web: LocalWeb, assistant: Assistant, web_settings: Settings
) -> None:
    web.routes["/robots.txt"] = Route(
        b"User-agent: *\nDisallow: /members/", content_type="text/plain"
    )
    web.routes["/bridge"] = Route(_BRIDGE)
    web.routes["/members/ferry"] = Route(_FERRY)
    web.routes["/slow"] = Route(_FERRY, delay=4.0)
    web.routes["/huge"] = Route(b"<p>" + b"x" * 6_000_000 + b"</p>")
    web.routes["/report.pdf"] = Route(b"%PDF-1.4", content_type="application/pdf")
    web.routes["/moved"] = Route(status=301, headers={"Location": "/orchard"})
    web.routes["/orchard"] = Route(_ORCHARD)
    ingestor = _web_ingestor(assistant, web_settings)
    urls = [
        web.url(path)
        for path in ("/bridge", "/missing", "/members/ferry", "/slow", "/huge", "/report.pdf")
    ]

    report = ingestor.ingest_urls([*urls, web.url("/moved"), "ftp://files.example/a"])

    reasons = {o.url.removeprefix(web.base): (o.status, o.reason) for o in report.outcomes}
    assert reasons["/bridge"] == ("added", "")
    assert reasons["/moved"] == ("added", "")
    assert reasons["/missing"] == ("failed", "HTTP 404")
    assert reasons["/members/ferry"][1].startswith("disallowed by robots.txt")
    assert reasons["/slow"][1].startswith("timed out")
    assert reasons["/huge"][1].startswith("too large")
    assert reasons["/report.pdf"] == ("failed", "not a web page (application/pdf)")
    assert reasons["ftp://files.example/a"][1].startswith("not an http(s) URL")
    assert report.summary() == "added 2, updated 0, unchanged 0, duplicate 0, failed 6"
    assert {a.url for a in assistant.articles()} == {web.url("/bridge"), web.url("/orchard")}


def _rss(web: LocalWeb) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Lakeview Courier</title><link>{web.base}/</link>
<item><title>Harbour bridge</title><link>{web.url("/bridge")}</link>
<guid>bridge-1</guid><pubDate>Tue, 17 Sep 2024 08:15:00 GMT</pubDate></item>
<item><title>Orchard</title><link>/orchard</link><guid>orchard-1</guid>
<pubDate>Wed, 18 Sep 2024 09:00:00 GMT</pubDate></item>
<item><title>A broken item without a link</title><description>oops</description></item>
<item><title>Gone</title><link>{web.url("/gone")}</link><guid>gone-1</guid></item>
</channel></rss>""".encode()


def _atom(web: LocalWeb) -> bytes:
    return f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Island News</title>
<id>urn:island</id><updated>2024-09-19T10:00:00Z</updated>
<entry><title>Night ferry</title><id>urn:island:ferry</id>
<link href="{web.url("/ferry")}"/><updated>2024-09-19T10:00:00Z</updated></entry>
</feed>""".encode()


def test_feeds_rss_and_atom_bring_their_new_articles_once_and_survive_a_restart(
    web: LocalWeb, assistant: Assistant, web_settings: Settings
) -> None:
    web.routes["/rss"] = Route(_rss(web), content_type="application/rss+xml", etag='"rss-1"')
    web.routes["/atom"] = Route(_atom(web), content_type="application/atom+xml")
    for path, page in (("/bridge", _BRIDGE), ("/orchard", _ORCHARD), ("/ferry", _FERRY)):
        web.routes[path] = Route(page)
    web_ingestor = _web_ingestor(assistant, web_settings)
    watcher = FeedWatcher(web_ingestor, web_ingestor.state)
    assert watcher.add(web.url("/rss")).title == "Lakeview Courier"
    assert watcher.add(web.url("/atom")).title == "Island News"

    first = watcher.poll_all()

    assert [p.new_articles for p in first] == [2, 1]
    rss = first[0]
    assert rss.problems == ("item 3 'A broken item without a link' has no web link",)
    assert [(o.url.removeprefix(web.base), o.status) for o in rss.outcomes] == [
        ("/orchard", "added"),  # newest first
        ("/bridge", "added"),
        ("/gone", "failed"),
    ]
    ferry = next(a for a in assistant.articles() if a.url == web.url("/ferry"))
    assert ferry.published == date(2024, 9, 19)  # the page has no date: the feed's

    # A restart: new objects over the same database.
    restarted = _web_ingestor(assistant, web_settings)
    second = FeedWatcher(restarted, restarted.state).poll_all()

    assert second[0].not_modified  # the RSS feed answered 304 to its ETag
    assert second[1].outcomes == ()  # the Atom items were all seen
    assert web.hits("/bridge") == 1
    feeds = {f.url: f for f in WebState(assistant.index.records.engine).feeds()}
    assert feeds[web.url("/rss")].total_new == 2
    assert feeds[web.url("/atom")].last_new == 0
    assert feeds[web.url("/atom")].last_error is None


def _feed_of(web: LocalWeb, paths: list[str]) -> bytes:
    items = "".join(
        f"<item><title>{p}</title><link>{web.url(p)}</link><guid>{p}</guid></item>" for p in paths
    )
    return f"<rss version='2.0'><channel><title>Wire</title>{items}</channel></rss>".encode()


def test_two_watchers_sharing_a_library_ingest_each_new_item_once(
    web: LocalWeb,
    database_url: str,
    tmp_path: Path,
    assistant_factory: Callable[..., Assistant],
) -> None:
    # Two app hosts: their own objects and connections, one library database.
    settings = make_settings(
        tmp_path / "data",
        database_url=database_url,
        fetch_allow_private=True,
        fetch_host_delay=0.0,
        fetch_timeout=5.0,
    )
    watchers = []
    for _ in range(2):
        host = assistant_factory(settings)
        state = WebState(host.index.records.engine)
        fetcher = Fetcher(FetchPolicy.from_settings(settings))
        watchers.append(FeedWatcher(WebIngestor(host.ingestor(), fetcher, state), state))
    pages = {"/bridge": _BRIDGE, "/orchard": _ORCHARD, "/ferry": _FERRY}
    for path, page in pages.items():
        web.routes[path] = Route(page, delay=0.3)  # slow pages: the polls overlap
    web.routes["/wire"] = Route(_feed_of(web, ["/bridge", "/orchard"]))
    watchers[0].add(web.url("/wire"))

    def poll_together() -> list[FeedPoll]:
        start = threading.Barrier(2)

        def poll(watcher: FeedWatcher) -> FeedPoll:
            start.wait()
            return watcher.poll(web.url("/wire"))

        with ThreadPoolExecutor(2) as pool:
            return list(pool.map(poll, watchers))

    first = poll_together()
    web.routes["/wire"] = Route(_feed_of(web, ["/bridge", "/orchard", "/ferry"]))
    second = poll_together()

    assert [web.hits(path) for path in pages] == [1, 1, 1]
    assert sum(p.new_articles for p in first) == 2
    assert sum(p.new_articles for p in second) == 1
    assert sorted(
        a.url or "" for a in watchers[1].web.ingestor.index.records.get_records().values()
    ) == (sorted(web.url(path) for path in pages))
    [feed] = watchers[1].state.feeds()
    assert (feed.total_new, feed.last_error) == (3, None)


def test_a_failing_feed_is_recorded_with_its_error_and_the_others_still_polled(
    web: LocalWeb, assistant: Assistant, web_settings: Settings
) -> None:
    web.routes["/atom"] = Route(_atom(web), content_type="application/atom+xml")
    web.routes["/ferry"] = Route(_FERRY)
    web.routes["/news.xml"] = Route(_atom(web), content_type="application/atom+xml")
    web_ingestor = _web_ingestor(assistant, web_settings)
    watcher = FeedWatcher(web_ingestor, web_ingestor.state)
    watcher.add(web.url("/news.xml"))
    watcher.add(web.url("/atom"))
    del web.routes["/news.xml"]

    polls = watcher.poll_all()

    assert polls[0].error == "HTTP 404"
    assert polls[0].lines() == [f"feed failed: Island News ({web.url('/news.xml')}): HTTP 404"]
    assert polls[1].new_articles == 1
    state = web_ingestor.state.feed(web.url("/news.xml"))
    assert state is not None
    assert state.last_error == "HTTP 404"


def test_a_page_that_is_not_a_feed_cannot_be_followed(
    web: LocalWeb, assistant: Assistant, web_settings: Settings
) -> None:
    web.routes["/bridge"] = Route(_BRIDGE)
    web_ingestor = _web_ingestor(assistant, web_settings)

    with pytest.raises(FetchError, match="not an RSS or Atom feed"):
        FeedWatcher(web_ingestor, web_ingestor.state).add(web.url("/bridge"))
    assert web_ingestor.state.feeds() == []


def test_watch_intervals_read_as_durations() -> None:
    from rag.cli import _duration

    assert [_duration(t) for t in ("30m", "2h", "1h30m", "90s", "15")] == [
        1800,
        7200,
        5400,
        90,
        900,
    ]


def test_parse_feed_resolves_relative_links_and_reads_rss_dates() -> None:
    feed = parse_feed(
        b"<rss version='2.0'><channel><title>T</title><item><title>A</title><link>/a</link>"
        b"<pubDate>Tue, 17 Sep 2024 08:00:00 GMT</pubDate></item></channel></rss>",
        "https://news.example/feed",
    )

    assert feed.items[0].link == "https://news.example/a"
    assert feed.items[0].key == "https://news.example/a"  # no guid: the link
    assert feed.items[0].published == date(2024, 9, 17)


def test_the_cli_follows_a_feed_ingests_urls_and_answers_from_the_feeds_new_article(
    web: LocalWeb,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NEWSRAG_FETCH_ALLOW_PRIVATE", "true")
    monkeypatch.setenv("NEWSRAG_FETCH_HOST_DELAY", "0")
    web.routes["/atom"] = Route(_atom(web), content_type="application/atom+xml")
    web.routes["/ferry"] = Route(_FERRY)
    web.routes["/bridge"] = Route(_BRIDGE, etag='"b1"')
    data = ["--data-dir", str(tmp_path / "cli")]

    assert main([*data, "ingest", web.url("/bridge"), web.url("/missing")]) == 1
    out = capsys.readouterr().out
    assert f"added: {web.url('/bridge')} (Lakeview will rebuild its harbour bridge)" in out
    assert f"failed: {web.url('/missing')}: HTTP 404" in out
    assert main([*data, "ingest", web.url("/bridge")]) == 0
    assert "unchanged 1" in capsys.readouterr().out

    assert main([*data, "feeds", "add", web.url("/atom")]) == 0
    assert "following Island News (1 items)" in capsys.readouterr().out
    assert main([*data, "feeds", "add", web.url("/atom")]) == 0
    assert "already following" in capsys.readouterr().out
    assert main([*data, "watch", "--once"]) == 0
    assert "1 new of 1 items fetched" in capsys.readouterr().out
    # The feed's new article answers questions: the user's end of following a feed.
    question = "When does the night ferry to Saltholm sail again?"
    assert main([*data, "ask", question, "--as-of", "2024-09-20"]) == 0
    answer, _, sources = capsys.readouterr().out.partition("\nSources:\n")
    assert "from Monday" in answer
    cited = sources.splitlines()
    at = cited.index("[1] Night ferry to Saltholm resumes after repairs, 2024-09-19")
    assert cited[at + 1].strip() == web.url("/ferry")
    assert main([*data, "feeds", "list"]) == 0
    listing = capsys.readouterr().out
    assert web.url("/atom") in listing
    assert "new: 1 (1 in all)" in listing
    assert main([*data, "feeds", "remove", web.url("/atom")]) == 0
    assert main([*data, "feeds", "remove", web.url("/atom")]) == 1
    assert main([*data, "feeds", "list"]) == 0
    assert "no feeds" in capsys.readouterr().out
    with pytest.raises(SystemExit) as usage:
        main([*data, "watch", "--every", "soon"])
    assert usage.value.code == 2
