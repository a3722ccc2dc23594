"""The library lock: one writer at a time across processes, readers wait while it writes.

Why a lock of our own: Chroma's embedded mode keeps an in-memory copy of each
collection's vector index per process and persists that copy over the files on disk. Two
processes writing one data dir, or a long-lived chat writing after another process
ingested, used to overwrite each other's vectors without an error (issue 11, part 1).
The lock serialises every write to the library (records and vectors together), and a
process reloads its Chroma copy under the lock before it reads or writes vectors that
another process changed (see :class:`rag.vectors.ChromaVectorIndex`).

The embedded default uses ``flock(2)`` on a file beside the record database: it is
released by the kernel when a process dies, so a killed ingest never leaves the library
locked. A library on Postgres, shared by processes on several hosts, uses a Postgres
advisory lock keyed by the collection (:class:`PostgresLibraryLock`): the server releases
it when the holder's session ends, killed or not.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

from rag.errors import StoreBusyError

logger = logging.getLogger(__name__)

_POLL_SECONDS = 0.05


class Lock(Protocol):
    """The library lock's interface: one writer at a time, readers wait while it writes."""

    timeout: float

    def exclusive(self, action: str) -> AbstractContextManager[None]: ...
    def shared(self, action: str) -> AbstractContextManager[None]: ...


class LibraryLock:
    """A cross-process reader/writer lock on one library (``flock`` on ``path``).

    Re-entrant within a thread for the exclusive side, so a write that calls another
    write does not deadlock itself. Threads of one process share the lock file's
    descriptor per mode, guarded by a thread lock.

    Example:
        >>> lock = LibraryLock(Path("/tmp/newsrag-doc.lock"), timeout=5)
        >>> with lock.exclusive("ingest"):
        ...     pass
    """

    def __init__(self, path: Path, timeout: float = 120.0) -> None:
        self.path = path
        self.timeout = timeout
        path.parent.mkdir(parents=True, exist_ok=True)
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    def _acquire(self, mode: int, action: str) -> int:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout
        waited = False
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                if waited:
                    logger.info("library lock acquired to %s", action)
                return fd
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    os.close(fd)
                    raise
            if time.monotonic() >= deadline:
                os.close(fd)
                msg = (
                    f"another newsrag process has been writing the library for over "
                    f"{self.timeout:g} s (lock {self.path}); could not {action}: try again "
                    "when it is done"
                )
                raise StoreBusyError(msg)
            if not waited:
                logger.info("waiting for another process's write to finish to %s", action)
                waited = True
            time.sleep(_POLL_SECONDS)

    @contextmanager
    def exclusive(self, action: str) -> Iterator[None]:
        """Hold the library for writing (waits up to ``timeout`` seconds)."""
        with self._thread_lock:
            if self._depth == 0:
                self._fd = self._acquire(fcntl.LOCK_EX, action)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._fd is not None:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
                    os.close(self._fd)
                    self._fd = None

    @contextmanager
    def shared(self, action: str) -> Iterator[None]:
        """Wait until no other process writes, and keep writers out meanwhile."""
        with self._thread_lock:
            if self._depth > 0:  # this thread holds the exclusive side already
                yield
                return
            fd = self._acquire(fcntl.LOCK_SH, action)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)


class PostgresLibraryLock:
    """The library lock of a library on Postgres: ``pg_advisory_lock`` keyed by the
    collection, held on a connection of its own for as long as the write lasts.

    Every process on every host that opens the same database and collection takes the
    same key, so writes are serialised across hosts; readers take the shared side.
    Re-entrant within a thread for the exclusive side, like :class:`LibraryLock`.

    Example:
        >>> lock = PostgresLibraryLock(engine, "news")  # doctest: +SKIP
        >>> with lock.exclusive("ingest"):  # doctest: +SKIP
        ...     pass
    """

    def __init__(self, engine: Any, name: str, timeout: float = 120.0) -> None:
        from rag.database import advisory_key

        self.engine = engine
        self.name = name
        self.key = advisory_key(f"library:{name}")
        self.timeout = timeout
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._con: Any = None

    def _acquire(self, function: str, action: str) -> Any:
        from sqlalchemy import text

        # A connection of its own, outside any pool: the lock lives as long as it does.
        con = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        deadline = time.monotonic() + self.timeout
        waited = False
        try:
            while True:
                if con.execute(text(f"SELECT {function}(:key)"), {"key": self.key}).scalar():
                    if waited:
                        logger.info("library lock acquired to %s", action)
                    return con
                if time.monotonic() >= deadline:
                    msg = (
                        f"another newsrag process has been writing the library for over "
                        f"{self.timeout:g} s (Postgres advisory lock of {self.name!r}); "
                        f"could not {action}: try again when it is done"
                    )
                    raise StoreBusyError(msg)
                if not waited:
                    logger.info("waiting for another process's write to finish to %s", action)
                    waited = True
                time.sleep(_POLL_SECONDS)
        except BaseException:
            con.close()
            raise

    def _release(self, con: Any, function: str) -> None:
        from sqlalchemy import text

        try:
            con.execute(text(f"SELECT {function}(:key)"), {"key": self.key})
        finally:
            con.close()

    @contextmanager
    def exclusive(self, action: str) -> Iterator[None]:
        """Hold the library for writing (waits up to ``timeout`` seconds)."""
        with self._thread_lock:
            if self._depth == 0:
                self._con = self._acquire("pg_try_advisory_lock", action)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._con is not None:
                    con, self._con = self._con, None
                    self._release(con, "pg_advisory_unlock")

    @contextmanager
    def shared(self, action: str) -> Iterator[None]:
        """Wait until no other process writes, and keep writers out meanwhile."""
        with self._thread_lock:
            if self._depth > 0:
                yield
                return
            con = self._acquire("pg_try_advisory_lock_shared", action)
            try:
                yield
            finally:
                self._release(con, "pg_advisory_unlock_shared")
