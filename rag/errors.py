"""The newsrag error hierarchy.

Every error a user can cause or fix derives from :class:`NewsragError`, so the CLI and
the UI can show its one-line message instead of a traceback.
"""

from __future__ import annotations


class NewsragError(Exception):
    """Base class for errors whose message is meant for the user."""


class ConfigError(NewsragError):
    """A setting is missing, unknown or inconsistent (e.g. an unknown LLM provider)."""


class MissingDependencyError(ConfigError):
    """An optional component needs a package that is not installed."""


class LoaderError(NewsragError):
    """A file could not be turned into an article (empty, binary, corrupt...)."""


class StoreError(NewsragError):
    """The index (Chroma or the local record database) cannot be read or written."""


class StoreUnavailableError(StoreError):
    """The Chroma server cannot be reached."""


class QuestionError(NewsragError):
    """The question cannot be asked as given (empty, only punctuation...)."""


class StoreBusyError(StoreError):
    """Another process has held the library for writing longer than we wait."""
