"""The newsrag error hierarchy.

Every error a user can cause or fix derives from :class:`NewsragError`, so the CLI and
the UI can show its one-line message instead of a traceback.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager


class NewsragError(Exception):
    """Base class for errors whose message is meant for the user."""


class ConfigError(NewsragError):
    """A setting is missing, unknown or inconsistent (e.g. an unknown LLM provider)."""


class MissingDependencyError(ConfigError):
    """An optional component needs a package that is not installed."""


class LoaderError(NewsragError):
    """A file could not be turned into an article (empty, binary, corrupt...)."""


class FetchError(NewsragError):
    """A URL could not be fetched (refused address, robots.txt, timeout, too large...)."""


class StoreError(NewsragError):
    """The index (Chroma or the local record database) cannot be read or written."""


class StoreUnavailableError(StoreError):
    """The Chroma server cannot be reached."""


class QuestionError(NewsragError):
    """The question cannot be asked as given (empty, only punctuation...)."""


class StoreBusyError(StoreError):
    """Another process has held the library for writing longer than we wait."""


class DiskFullError(StoreError):
    """No space was left on the disk for a write (the index, the record database, a file)."""


# How a full disk shows: SQLite's SQLITE_FULL, the OS's ENOSPC (also inside messages of
# Chroma's Rust core, "(os error 28)"), Chroma wrapping either in an InternalError.
_DISK_FULL_MESSAGES = (
    "database or disk is full",
    "no space left on device",
    "disk is full",
    "disk full",
    "os error 28",
)


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc``, or an exception it was raised from or during, says the disk is full.

    >>> import errno
    >>> is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    True
    >>> is_disk_full(ValueError("bad value"))
    False
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno == errno.ENOSPC:
            return True
        if any(m in str(current).lower() for m in _DISK_FULL_MESSAGES):
            return True
        current = current.__cause__ or current.__context__
    return False


@contextmanager
def disk_full_as_error(action: str, where: str) -> Iterator[None]:
    """Turn a write failing on a full disk into one clear :class:`DiskFullError`.

    ``action`` says what stopped (``"ingesting"``), ``where`` where the data lives.
    Any other exception passes through unchanged.

    >>> with disk_full_as_error("ingesting", "data/"):  # doctest: +ELLIPSIS
    ...     raise OSError(28, "No space left on device")
    Traceback (most recent call last):
    ...
    rag.errors.DiskFullError: no space left on the disk while ingesting (data/): free ...
    """
    try:
        yield
    except DiskFullError:
        raise
    except Exception as exc:
        if not is_disk_full(exc):
            raise
        msg = f"no space left on the disk while {action} ({where}): free some space, then try again"
        raise DiskFullError(msg) from exc
