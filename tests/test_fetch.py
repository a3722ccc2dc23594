"""The fetcher is a good citizen: named, polite, bounded, robots-aware, no private hosts."""

from __future__ import annotations

import gzip
import itertools
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from ingest.fetch import Fetcher, FetchPolicy
from rag.errors import FetchError
from tests.webserver import LocalWeb, Route

_PAGE = b"<html><body><article><p>Hello from the local web.</p></article></body></html>"


@pytest.fixture
def web() -> Iterator[LocalWeb]:
    server = LocalWeb()
    yield server
    server.close()


def _fetcher(**overrides: object) -> Fetcher:
    values: dict[str, object] = {"allow_private": True, "host_delay": 0.0, "timeout": 5.0}
    values.update(overrides)
    return Fetcher(FetchPolicy(**values))  # type: ignore[arg-type]


def test_a_page_is_fetched_gzipped_with_a_user_agent_naming_newsrag(web: LocalWeb) -> None:
    web.routes["/page"] = Route(_PAGE, gzip=True, etag='"v1"')

    fetched = _fetcher().fetch(web.url("/page"))

    assert fetched.content == _PAGE
    assert fetched.content_type == "text/html"
    assert fetched.charset == "utf-8"
    assert fetched.etag == '"v1"'
    request = next(r for r in web.requests if r.path == "/page")
    assert request.headers["user-agent"].startswith("newsrag/")
    assert "gzip" in request.headers["accept-encoding"]


def test_loopback_and_private_addresses_are_refused_unless_allowed(web: LocalWeb) -> None:
    web.routes["/page"] = Route(_PAGE)
    strict = _fetcher(allow_private=False)

    for url in (web.url("/page"), "http://localhost/x", "http://10.0.0.1/x", "http://[::1]/x"):
        with pytest.raises(FetchError, match="private, loopback or link-local"):
            strict.fetch(url)
    with pytest.raises(FetchError, match="link-local"):
        strict.fetch("http://169.254.169.254/latest/meta-data/")
    assert web.requests == []  # refused before any connection
    assert _fetcher().fetch(web.url("/page")).content == _PAGE


def test_a_name_that_rebinds_to_loopback_after_the_check_is_refused_before_connecting(
    web: LocalWeb, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name's first answer is public, every later one is 127.0.0.1.

    A fetcher that checks one lookup and lets the connection look the name up again would
    reach the loopback server; the connection must go only to addresses it has checked.
    """
    web.routes["/page"] = Route(_PAGE)
    port = web.server.server_address[1]
    real = socket.getaddrinfo
    answers = iter(["93.184.216.34"])  # a public address, then the loopback forever

    def rebinding(host: object, *args: Any, **kwargs: Any) -> Any:
        if host != "news.rebind.test":
            return real(host, *args, **kwargs)  # type: ignore[arg-type]
        address = next(answers, "127.0.0.1")
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)

    with pytest.raises(FetchError) as refused:
        _fetcher(allow_private=False).fetch(f"http://news.rebind.test:{port}/page")

    assert str(refused.value) == (
        "refused: news.rebind.test is a private, loopback or link-local address (127.0.0.1); "
        "set NEWSRAG_FETCH_ALLOW_PRIVATE=true to allow it"
    )
    assert web.requests == []  # not even its robots.txt was asked for


def test_every_redirect_hop_is_checked_like_the_first_url(web: LocalWeb) -> None:
    web.routes["/go"] = Route(status=302, headers={"Location": "file:///etc/passwd"})
    web.routes["/robots.txt"] = Route(
        b"User-agent: *\nDisallow: /hidden", content_type="text/plain"
    )
    web.routes["/to-hidden"] = Route(status=301, headers={"Location": "/hidden"})
    web.routes["/hidden"] = Route(_PAGE)

    with pytest.raises(FetchError, match="not an http"):
        _fetcher().fetch(web.url("/go"))
    with pytest.raises(FetchError, match=r"robots\.txt"):
        _fetcher().fetch(web.url("/to-hidden"))
    assert web.hits("/hidden") == 0


def test_redirects_are_followed_up_to_the_cap(web: LocalWeb) -> None:
    web.routes["/a"] = Route(status=301, headers={"Location": "/b"})
    web.routes["/b"] = Route(status=302, headers={"Location": web.url("/page")})
    web.routes["/page"] = Route(_PAGE)
    web.routes["/loop"] = Route(status=302, headers={"Location": "/loop"})

    fetched = _fetcher().fetch(web.url("/a"))
    assert fetched.final_url == web.url("/page")
    assert fetched.content == _PAGE
    with pytest.raises(FetchError, match="too many redirects"):
        _fetcher(max_redirects=1).fetch(web.url("/a"))
    with pytest.raises(FetchError, match=r"too many redirects \(more than 3\)"):
        _fetcher(max_redirects=3).fetch(web.url("/loop"))
    assert web.hits("/loop") == 1 + 3  # the request, then the three redirects allowed


def test_robots_txt_disallow_is_honoured_for_newsrag(web: LocalWeb) -> None:
    web.routes["/robots.txt"] = Route(
        b"User-agent: newsrag\nDisallow: /private/\n\nUser-agent: *\nDisallow:\n",
        content_type="text/plain",
    )
    web.routes["/private/page"] = Route(_PAGE)
    web.routes["/public/page"] = Route(_PAGE)
    fetcher = _fetcher()

    with pytest.raises(FetchError, match=r"disallowed by robots\.txt"):
        fetcher.fetch(web.url("/private/page"))
    assert fetcher.fetch(web.url("/public/page")).content == _PAGE
    assert web.hits("/private/page") == 0
    assert web.hits("/robots.txt") == 1  # read once per host


def test_a_server_that_answers_too_slowly_times_out(web: LocalWeb) -> None:
    web.routes["/stall"] = Route(_PAGE, delay=3.0)
    web.routes["/trickle"] = Route(_PAGE * 20, trickle=0.1)

    with pytest.raises(FetchError, match="timed out"):
        _fetcher(timeout=0.5).fetch(web.url("/stall"))
    with pytest.raises(FetchError, match="too slow"):
        _fetcher(timeout=0.5).fetch(web.url("/trickle"))


def test_an_oversized_response_is_refused_even_when_it_arrives_compressed(
    web: LocalWeb,
) -> None:
    big = b"<p>" + b"a" * 300_000 + b"</p>"
    web.routes["/big"] = Route(big)
    web.routes["/bomb"] = Route(big, gzip=True)
    assert len(gzip.compress(big)) < 10_000

    for path in ("/big", "/bomb"):
        with pytest.raises(FetchError, match="too large"):
            _fetcher(max_bytes=100_000).fetch(web.url(path))


def test_an_error_status_and_an_unreachable_host_are_reported(web: LocalWeb) -> None:
    with pytest.raises(FetchError, match="HTTP 404"):
        _fetcher().fetch(web.url("/missing"))
    web.close()
    with pytest.raises(FetchError, match="cannot connect"):
        _fetcher().fetch(web.url("/page"))
    web.server = LocalWeb().server  # let the fixture's close succeed


def test_matching_validators_give_not_modified(web: LocalWeb) -> None:
    web.routes["/page"] = Route(_PAGE, etag='"v1"')
    fetcher = _fetcher()

    assert fetcher.fetch(web.url("/page"), etag='"v1"').not_modified
    assert not fetcher.fetch(web.url("/page"), etag='"v0"').not_modified
    request = web.requests[-1]
    assert request.headers["if-none-match"] == '"v0"'


def test_a_page_with_only_a_last_modified_date_is_asked_again_if_modified_since(
    web: LocalWeb,
) -> None:
    stamp = "Tue, 17 Sep 2024 08:15:00 GMT"
    web.routes["/dated"] = Route(_PAGE, last_modified=stamp)
    fetcher = _fetcher()
    first = fetcher.fetch(web.url("/dated"))
    assert (first.content, first.etag, first.last_modified) == (_PAGE, None, stamp)

    again = fetcher.fetch(web.url("/dated"), last_modified=first.last_modified)

    assert again.not_modified
    assert again.content == b""
    request = web.requests[-1]
    assert request.headers["if-modified-since"] == stamp
    assert "if-none-match" not in request.headers
    # Edited later: the same question gets the new page and its new date.
    edited = _PAGE.replace(b"Hello", b"Goodbye")
    web.routes["/dated"] = Route(edited, last_modified="Wed, 18 Sep 2024 10:00:00 GMT")
    changed = fetcher.fetch(web.url("/dated"), last_modified=stamp)
    assert (changed.status, changed.content) == (200, edited)
    assert changed.last_modified == "Wed, 18 Sep 2024 10:00:00 GMT"


def test_requests_to_one_host_are_spaced_by_the_host_delay(web: LocalWeb) -> None:
    web.routes["/robots.txt"] = Route(b"", content_type="text/plain")
    web.routes["/a"] = Route(_PAGE)
    web.routes["/b"] = Route(_PAGE)
    fetcher = _fetcher(host_delay=0.4)

    fetcher.fetch(web.url("/a"))
    fetcher.fetch(web.url("/b"))

    times = [r.at for r in web.requests]
    assert [r.path for r in web.requests] == ["/robots.txt", "/a", "/b"]
    assert all(later - earlier >= 0.35 for earlier, later in itertools.pairwise(times))
