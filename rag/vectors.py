"""The vector index: chunk vectors in a Chroma collection, embedded or on a server.

One class owns every call to Chroma, so the rules that keep vectors whole live in one
place:

- **Embedded Chroma keeps a private copy per process.** ``PersistentClient`` loads each
  collection's HNSW index into memory and later persists that copy over the files on
  disk. A process that wrote after another one had (a long-lived chat, two CLI ingests)
  used to persist a stale copy and lose the other's vectors without an error. So a
  process reloads its copy (:meth:`ChromaVectorIndex.refresh`) whenever the library's
  write generation moved since it last loaded, and only under the library lock
  (:mod:`rag.locking`); :class:`rag.writer.LibraryWriter` decides when.
- **A collection can vanish** (a Chroma server restarted on an empty path): the next
  call re-creates it, and :meth:`missing` reports which stored ids have no vector, so
  ingest and ``newsrag check --repair`` write them again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from rag.errors import StoreError, StoreUnavailableError

logger = logging.getLogger(__name__)

ClientFactory = Callable[[], Any]
"""Opens a Chroma client (``chromadb.PersistentClient`` or ``chromadb.HttpClient``)."""

_GET_BATCH = 1000
_UPSERT_BATCH = 2000


@dataclass
class _SharedClient:
    """One embedded Chroma client per path and process, shared by every index on it.

    Chroma itself shares one in-memory "system" per path; reloading it means closing the
    last client of that path, so the indexes of one process must hold the same client.
    """

    factory: ClientFactory
    client: Any = None
    epoch: int = 0  # bumped at each reload: collections fetched before are stale
    lock: threading.RLock = field(default_factory=threading.RLock)

    def get(self) -> Any:
        if self.client is None:
            self.client = self.factory()
        return self.client

    def reload(self) -> None:
        if self.client is not None:
            close = getattr(self.client, "close", None)
            if close is not None:
                close()
            self.client = None
        self.epoch += 1


_SHARED: dict[str, _SharedClient] = {}
_SHARED_LOCK = threading.Lock()


def _shared_client(key: str, factory: ClientFactory) -> _SharedClient:
    with _SHARED_LOCK:
        shared = _SHARED.get(key)
        if shared is None:
            shared = _SHARED[key] = _SharedClient(factory)
        return shared


class VectorIndex(Protocol):
    """The vector index's interface: chunk vectors with the metadata their filters need,
    under the chunk ids of the record store.

    Every implementation passes the vector-index suite of tests/test_parts.py.
    """

    name: str
    embedded: bool  # a private copy per process, reloaded by refresh()
    recreated: bool  # the collection was missing and has been created empty

    def refresh(self) -> None: ...
    def upsert(
        self,
        ids: Sequence[str],
        vectors: np.ndarray,
        metadatas: Sequence[dict[str, Any]],
    ) -> None: ...
    def delete(self, ids: Sequence[str]) -> None: ...
    def delete_where(self, where: dict[str, Any]) -> None: ...
    def reset(self) -> None: ...
    def count(self) -> int: ...
    def ids(self, where: dict[str, Any] | None = None) -> list[str]: ...
    def missing(self, ids: Sequence[str]) -> list[str]: ...
    def query(
        self, vector: Sequence[float], k: int, where: dict[str, Any] | None = None
    ) -> list[tuple[str, float]]: ...
    def export(
        self, batch: int = ...
    ) -> Iterator[tuple[list[str], np.ndarray, list[dict[str, Any]]]]: ...


class ChromaVectorIndex:
    """Chunk vectors and their metadata in one Chroma collection.

    ``client_factory`` opens the client; ``location`` names it (the embedded path, or
    ``host:port``). With ``embedded=True`` every index of one process on that path shares
    one client, and :meth:`refresh` reloads it from disk.

    Example:
        >>> import chromadb  # doctest: +SKIP
        >>> vectors = ChromaVectorIndex(
        ...     lambda: chromadb.PersistentClient("data/chroma"), "data/chroma", "news",
        ...     embedded=True)  # doctest: +SKIP
        >>> vectors.upsert(["a:0"], np.ones((1, 384)), [{"article_id": "a"}])  # doctest: +SKIP
        >>> vectors.missing(["a:0", "b:0"])  # doctest: +SKIP
        ['b:0']
    """

    def __init__(
        self, client_factory: ClientFactory, location: str, name: str, *, embedded: bool
    ) -> None:
        self.location = location
        self.name = name
        self.embedded = embedded
        key = location if embedded else f"{location}#{id(self)}"
        self._shared = _shared_client(key, client_factory)
        self._collection: Any = None
        self._epoch = -1
        self.recreated = False  # the collection was missing and has been created empty
        with self._calls("open the collection"):
            self._get_collection()

    # -- connection ------------------------------------------------------------------

    def _get_collection(self) -> Any:
        if self._collection is None or self._epoch != self._shared.epoch:
            client = self._shared.get()
            try:
                self._collection = client.get_collection(self.name)
            except Exception as exc:
                if not _is_not_found(exc):
                    raise
                try:
                    self._collection = client.create_collection(
                        self.name, metadata={"hnsw:space": "cosine"}, embedding_function=None
                    )
                except Exception as race:
                    # Another process (sharing the server) created it since the lookup.
                    if "already exists" not in str(race).lower():
                        raise
                    self._collection = client.get_collection(self.name)
                if self._epoch != -1:  # it existed when this process opened it
                    logger.warning(
                        "the Chroma collection %s at %s was missing and has been re-created "
                        "empty: run `newsrag ingest` or `newsrag check --repair` to restore "
                        "its vectors",
                        self.name,
                        self.location,
                    )
                self.recreated = True
            self._epoch = self._shared.epoch
        return self._collection

    def refresh(self) -> None:
        """Drop this process's copy of the index and read it again from its store.

        Embedded: reloads the shared client (every index of this path sees the reload).
        Server: fetches the collection again (it may have been re-created).
        """
        with self._shared.lock:
            if self.embedded:
                self._shared.reload()
            else:
                self._collection = None
            with self._calls("reload the collection"):
                self._get_collection()

    @contextmanager
    def _calls(self, action: str) -> Iterator[None]:
        """Serialise calls on an embedded client (a reload must not pull it away from a
        running query) and turn Chroma's exceptions into newsrag's."""
        with self._shared.lock if self.embedded else _nothing():
            try:
                yield
            except Exception as exc:
                raise _translate(exc, action, self.location) from exc

    def _call(self, action: str, method: str, **kwargs: Any) -> Any:
        """Call ``collection.<method>(**kwargs)``; a collection that vanished (a server
        restarted on an empty path) is re-created once and the call repeated."""
        with self._calls(action):
            try:
                return getattr(self._get_collection(), method)(**kwargs)
            except Exception as exc:
                if not _is_not_found(exc):
                    raise
                self._collection = None
                return getattr(self._get_collection(), method)(**kwargs)

    # -- writes ----------------------------------------------------------------------

    def upsert(
        self,
        ids: Sequence[str],
        vectors: np.ndarray,
        metadatas: Sequence[dict[str, Any]],
    ) -> None:
        """Store vectors under ``ids`` (replacing any with the same id)."""
        matrix = np.asarray(vectors, dtype=np.float32)
        for start in range(0, len(ids), _UPSERT_BATCH):
            end = start + _UPSERT_BATCH
            self._call(
                "store chunks",
                "upsert",
                ids=list(ids[start:end]),
                embeddings=matrix[start:end],
                metadatas=list(metadatas[start:end]),
            )

    def delete(self, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), _GET_BATCH):
            part = list(ids[start : start + _GET_BATCH])
            self._call("delete chunks", "delete", ids=part)

    def delete_where(self, where: dict[str, Any]) -> None:
        self._call("delete chunks", "delete", where=where)

    def reset(self) -> None:
        """Remove every vector of the collection."""
        while ids := self._call("reset the collection", "get", limit=5000, include=[])["ids"]:
            self.delete(ids)

    # -- reads -----------------------------------------------------------------------

    def count(self) -> int:
        return int(self._call("count chunks", "count"))

    def ids(self, where: dict[str, Any] | None = None) -> list[str]:
        """Ids stored in the collection (all, or those matching ``where``)."""
        found: list[str] = []
        offset = 0
        while True:
            page = self._call(
                "list chunks", "get", where=where, include=[], limit=5000, offset=offset
            )["ids"]
            found += page
            if len(page) < 5000:
                return found
            offset += len(page)

    def missing(self, ids: Sequence[str]) -> list[str]:
        """The ``ids`` that have no readable vector: not stored, or stored without one.

        This reads every vector back, the only check that catches a vector lost behind
        an id that Chroma still lists (ids and counts then look normal).
        """
        lost: list[str] = []
        for start in range(0, len(ids), _GET_BATCH):
            lost += self._missing_in(list(ids[start : start + _GET_BATCH]))
        return lost

    def _missing_in(self, ids: list[str]) -> list[str]:
        if not ids:
            return []
        try:
            got = self._call("read vectors", "get", ids=ids, include=["embeddings"])
        except StoreUnavailableError:
            raise
        except StoreError:
            # Chroma fails the whole read when one id has lost its vector ("Error
            # finding id"): halve until the lost ones are found.
            if len(ids) == 1:
                return ids
            middle = len(ids) // 2
            return self._missing_in(ids[:middle]) + self._missing_in(ids[middle:])
        embeddings = got.get("embeddings")
        readable = {
            i
            for n, i in enumerate(got["ids"])
            if embeddings is not None and n < len(embeddings) and _has_vector(embeddings[n])
        }
        return [i for i in ids if i not in readable]

    def query(
        self, vector: Sequence[float], k: int, where: dict[str, Any] | None = None
    ) -> list[tuple[str, float]]:
        """Ids and cosine similarities of the ``k`` nearest vectors."""
        result = self._call(
            "search",
            "query",
            query_embeddings=[list(vector)],
            n_results=k,
            where=where,
            include=["distances"],
        )
        ids = result["ids"][0]
        distances = result["distances"][0] if result.get("distances") else [1.0] * len(ids)
        return [(i, 1.0 - float(d)) for i, d in zip(ids, distances, strict=True)]

    def export(
        self, batch: int = _GET_BATCH
    ) -> Iterator[tuple[list[str], np.ndarray, list[dict[str, Any]]]]:
        """Every vector of the collection with its id and metadata, ``batch`` at a time
        (to copy a collection elsewhere: ``newsrag migrate``)."""
        offset = 0
        while True:
            page = self._call(
                "read vectors",
                "get",
                include=["embeddings", "metadatas"],
                limit=batch,
                offset=offset,
            )
            ids = list(page["ids"])
            if not ids:
                return
            yield ids, np.asarray(page["embeddings"], dtype=np.float32), list(page["metadatas"])
            if len(ids) < batch:
                return
            offset += len(ids)

    def get_metadatas(self, where: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        got = self._call("read chunks", "get", where=where, include=["metadatas"])
        return list(got["metadatas"])


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _has_vector(value: Any) -> bool:
    if value is None:
        return False
    try:
        return len(value) > 0
    except TypeError:
        return False


def _is_not_found(exc: Exception) -> bool:
    name = type(exc).__name__
    text = str(exc)
    return "NotFound" in name or "does not exist" in text or "not found" in text.lower()


def _translate(exc: Exception, action: str, location: str) -> Exception:
    if isinstance(exc, StoreError):
        return exc
    name = type(exc).__name__
    if any(k in name for k in ("Connect", "Timeout", "Network", "Transport")):
        msg = f"the Chroma server at {location} is unreachable while trying to {action} ({exc})"
        return StoreUnavailableError(msg)
    if "disk" in str(exc).lower() and "full" in str(exc).lower():
        msg = f"the disk is full: could not {action} in {location}; free some space and retry"
        return StoreError(msg)
    msg = f"Chroma failed to {action} ({name}: {exc})"
    return StoreError(msg)
