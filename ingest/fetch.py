"""Fetch web pages and feeds like a good citizen.

Every request names newsrag in its User-Agent, asks for gzip, has a timeout, a size cap
(counted after decompression) and a redirect cap, honours robots.txt, waits between two
requests to one host and never runs two at once to the same host. Private, loopback and
link-local addresses are refused unless ``allow_private`` is set, so a URL pasted by a user
or found in a feed cannot reach the local network. Every problem becomes a
:class:`~rag.errors.FetchError` with a one-line reason.

Redirects are followed here, one hop at a time, so each hop passes the same checks.

The address check is made twice: on the URL before anything is asked (a clear reason, and
no robots.txt request to a refused host), and again where the connection is opened, on the
very addresses it connects to (:class:`VettedBackend`). A name whose DNS answer changes
between the two ("DNS rebinding": public when checked, 127.0.0.1 when connecting) is
therefore still refused. Proxies set in the environment (``HTTPS_PROXY``) resolve names
themselves: through one, only the first check applies.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import threading
import time
import urllib.robotparser
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from rag.errors import FetchError

if TYPE_CHECKING:
    from rag.settings import Settings

logger = logging.getLogger(__name__)

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_ROBOTS_MAX_BYTES = 512_000


@dataclass(frozen=True)
class FetchPolicy:
    """How politely and how far the fetcher goes.

    >>> FetchPolicy(host_delay=0).max_redirects
    5
    """

    user_agent: str = "newsrag/0.1 (personal news reader)"
    timeout: float = 20.0
    max_bytes: int = 5_000_000
    max_redirects: int = 5
    host_delay: float = 1.0
    allow_private: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> FetchPolicy:
        """The policy of ``settings``' ``fetch_*`` fields."""
        return cls(
            user_agent=settings.fetch_user_agent,
            timeout=settings.fetch_timeout,
            max_bytes=int(settings.fetch_max_mb * 1_000_000),
            max_redirects=settings.fetch_max_redirects,
            host_delay=settings.fetch_host_delay,
            allow_private=settings.fetch_allow_private,
        )


@dataclass(frozen=True)
class Fetched:
    """One response: ``not_modified`` when the server answered 304 to the validators."""

    url: str
    final_url: str
    status: int
    content: bytes = b""
    content_type: str = ""
    charset: str | None = None
    etag: str | None = None
    last_modified: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def refuse_private(host: str, addresses: list[str]) -> None:
    """Raise :class:`FetchError` when any of ``host``'s addresses is not a public one.

    >>> refuse_private("example.org", ["93.184.216.34"])
    >>> refuse_private("router.local", ["192.168.1.1"])
    Traceback (most recent call last):
    ...
    rag.errors.FetchError: refused: router.local is a private, loopback or link-local \
address (192.168.1.1); set NEWSRAG_FETCH_ALLOW_PRIVATE=true to allow it
    """
    for text in addresses:
        address = ipaddress.ip_address(text.split("%")[0])
        if not address.is_global or address.is_multicast:
            where = "" if host == str(address) else f" ({address})"
            msg = (
                f"refused: {host} is a private, loopback or link-local "
                f"address{where}; set NEWSRAG_FETCH_ALLOW_PRIVATE=true to allow it"
            )
            raise FetchError(msg)


def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` has now, in the resolver's order (at least one, or
    :class:`FetchError`).

    >>> resolve("127.0.0.1", 80)
    ['127.0.0.1']
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError) as exc:
        msg = f"cannot resolve {host}: {exc}"
        raise FetchError(msg) from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class VettedBackend(httpcore.SyncBackend):
    """Opens connections only to addresses it has just checked.

    httpcore's own backend hands the name to ``socket.create_connection``, which looks it
    up again; this one looks it up once, refuses the lot if any address is private,
    loopback or link-local (unless ``allow_private``), and connects to those addresses by
    number. TLS still names the host (SNI and certificate check) and so does the request's
    Host header: httpcore takes both from the URL, not from the socket.
    """

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        if self.allow_private:
            return super().connect_tcp(host, port, timeout, local_address, socket_options)
        addresses = resolve(host, port)
        refuse_private(host, addresses)
        # As create_connection does: the first address that answers; the last one's
        # failure is the one reported.
        for address in addresses[:-1]:
            with contextlib.suppress(httpcore.ConnectError, httpcore.ConnectTimeout):
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
        return super().connect_tcp(addresses[-1], port, timeout, local_address, socket_options)


class VettedTransport(httpx.HTTPTransport):
    """httpx's transport, connecting through a :class:`VettedBackend`."""

    def __init__(self, allow_private: bool) -> None:
        super().__init__()
        # httpx builds its pool without a way to pass a network backend: the same pool
        # (httpx's defaults), with this one.
        limits = httpx.Limits()
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=VettedBackend(allow_private),
        )


class Fetcher:
    """A polite HTTP client for pages, feeds and their robots.txt.

    Example:
        >>> fetcher = Fetcher(FetchPolicy(host_delay=0))
        >>> fetcher.fetch("ftp://example.org/x")
        Traceback (most recent call last):
        ...
        rag.errors.FetchError: not an http(s) URL: ftp://example.org/x
    """

    def __init__(self, policy: FetchPolicy | None = None) -> None:
        self.policy = policy or FetchPolicy()
        self._client = httpx.Client(
            transport=VettedTransport(self.policy.allow_private),
            follow_redirects=False,
            timeout=httpx.Timeout(self.policy.timeout),
            headers={"User-Agent": self.policy.user_agent, "Accept-Encoding": "gzip, deflate"},
        )
        self._robots: dict[str, urllib.robotparser.RobotFileParser | None] = {}
        self._host_locks: dict[str, threading.Lock] = {}
        self._last_request: dict[str, float] = {}
        self._guard = threading.Lock()

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: str = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5",
    ) -> Fetched:
        """GET ``url``, following redirects; conditional when validators are given.

        Raises :class:`FetchError` with the reason when the URL is refused, blocked by
        robots.txt, fails, answers an error status, or is too slow or too large.
        """
        headers = {"Accept": accept}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        current = url
        for _hop in range(self.policy.max_redirects + 1):
            self._check_url(current)
            if not self._robots_allow(current):
                msg = f"disallowed by robots.txt of {urlsplit(current).netloc}"
                raise FetchError(msg)
            status, response_headers, content = self._get(current, headers)
            location = response_headers.get("location")
            if status in _REDIRECTS and location:
                current = urljoin(current, location)
                continue
            if status == 304:
                return Fetched(url, current, status)
            if status >= 400 or status < 200:
                msg = f"HTTP {status}"
                raise FetchError(msg)
            content_type = response_headers.get("content-type", "")
            return Fetched(
                url=url,
                final_url=current,
                status=status,
                content=content,
                content_type=content_type.split(";")[0].strip().lower(),
                charset=_charset(content_type),
                etag=response_headers.get("etag"),
                last_modified=response_headers.get("last-modified"),
            )
        msg = f"too many redirects (more than {self.policy.max_redirects})"
        raise FetchError(msg)

    # -- checks ----------------------------------------------------------------------

    def _check_url(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            msg = f"not an http(s) URL: {url}"
            raise FetchError(msg)
        if self.policy.allow_private:
            return
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            msg = f"cannot resolve {parts.hostname}: {exc}"
            raise FetchError(msg) from None
        # Checked again on connecting (VettedBackend): this early check gives the reason
        # before any request, robots.txt included.
        refuse_private(parts.hostname, resolve(parts.hostname, port))

    def _robots_allow(self, url: str) -> bool:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in self._robots:
            self._robots[origin] = self._read_robots(origin)
        parser = self._robots[origin]
        return parser is None or parser.can_fetch(self.policy.user_agent, url)

    def _read_robots(self, origin: str) -> urllib.robotparser.RobotFileParser | None:
        """The origin's robots.txt; None (all allowed) when it has none or is unreachable."""
        parser = urllib.robotparser.RobotFileParser(origin + "/robots.txt")
        try:
            status, _, content = self._get(origin + "/robots.txt", {}, _ROBOTS_MAX_BYTES)
        except FetchError as exc:
            logger.info("no robots.txt for %s (%s): all allowed", origin, exc)
            return None
        if status in (401, 403):
            parser.parse(["User-agent: *", "Disallow: /"])  # urllib's and crawlers' convention
            return parser
        if status >= 300:
            return None  # 404 and friends: no rules (a redirected robots.txt is not followed)
        parser.parse(content.decode("utf-8", "replace").splitlines())
        return parser

    # -- the request -----------------------------------------------------------------

    def _host_lock(self, host: str) -> threading.Lock:
        with self._guard:
            return self._host_locks.setdefault(host, threading.Lock())

    def _get(
        self, url: str, headers: dict[str, str], max_bytes: int | None = None
    ) -> tuple[int, httpx.Headers, bytes]:
        host = urlsplit(url).netloc.lower()
        limit = max_bytes if max_bytes is not None else self.policy.max_bytes
        with self._host_lock(host):
            wait = self._last_request.get(host, -1e9) + self.policy.host_delay - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                return self._read(url, headers, limit)
            finally:
                self._last_request[host] = time.monotonic()

    def _read(
        self, url: str, headers: dict[str, str], limit: int
    ) -> tuple[int, httpx.Headers, bytes]:
        deadline = time.monotonic() + self.policy.timeout
        try:
            with self._client.stream("GET", url, headers=headers) as response:
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise FetchError(_too_large(limit))
                body = bytearray()
                # Decompressed bytes are counted: a small gzip bomb is stopped too.
                for piece in response.iter_bytes():
                    body += piece
                    if len(body) > limit:
                        raise FetchError(_too_large(limit))
                    if time.monotonic() > deadline:
                        msg = f"too slow (over {self.policy.timeout:g} s)"
                        raise FetchError(msg)
                return response.status_code, response.headers, bytes(body)
        except httpx.TimeoutException:
            msg = f"timed out (over {self.policy.timeout:g} s)"
            raise FetchError(msg) from None
        except httpx.DecodingError as exc:
            msg = f"bad compressed response: {exc}"
            raise FetchError(msg) from None
        except httpx.HTTPError as exc:
            msg = f"cannot connect: {exc}" if str(exc) else f"cannot connect: {type(exc).__name__}"
            raise FetchError(msg) from None


def _too_large(limit: int) -> str:
    return f"too large (over {limit / 1_000_000:g} MB; the limit is NEWSRAG_FETCH_MAX_MB)"


def _charset(content_type: str) -> str | None:
    """``utf-8`` from ``text/html; charset=UTF-8``."""
    for part in content_type.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return value.strip().strip("\"'").lower()
    return None
