"""Shared fixtures: all state under tmp_path, one real MiniLM per session, real Chroma."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from rag.assistant import Assistant
from rag.components import build_embeddings, build_index
from rag.embeddings import LocalEmbeddings
from rag.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
SEED_FILE = SEEDS / "meloni-article5-ukraine.txt"

_ENV_PREFIXES = ("NEWSRAG_", "LLM_", "CHROMA_", "OPENAI_")


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where this session exports the ONNX model once (subprocesses inherit it)."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(autouse=True)
def _isolated_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_cache: Path
) -> None:
    """No test reads the developer's .env or writes outside its tmp_path."""
    for key in list(os.environ):
        if key.startswith(_ENV_PREFIXES):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("NEWSRAG_MODEL_CACHE_DIR", str(model_cache))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    monkeypatch.setenv("ANONYMIZED_TELEMETRY", "False")


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings that ignore any .env file, with the index under ``data_dir``."""
    values: dict[str, Any] = {"data_dir": data_dir, "seeds_dir": SEEDS}
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def embeddings(model_cache: Path) -> LocalEmbeddings:
    """The real bundled all-MiniLM-L6-v2 (default backend), loaded once for the session."""
    emb = build_embeddings(Settings(_env_file=None, model_cache_dir=model_cache))  # type: ignore[call-arg]
    emb.embed_query("warm up")
    return emb


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture
def assistant_factory(
    embeddings: LocalEmbeddings,
) -> Callable[..., Assistant]:
    def build(settings: Settings, chat_model: Any = None) -> Assistant:
        return Assistant(settings, build_index(settings, embeddings), embeddings, chat_model)

    return build


@pytest.fixture
def assistant(settings: Settings, assistant_factory: Callable[..., Assistant]) -> Assistant:
    """An assistant over an empty embedded Chroma index in tmp_path."""
    return assistant_factory(settings)


@pytest.fixture
def seeded(assistant: Assistant) -> Assistant:
    """An assistant whose index holds the seed article."""
    report = assistant.ingest([SEEDS])
    assert len(report.added) == 1, report.details()
    return assistant


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except Exception:
            time.sleep(0.25)
    msg = f"{url} did not answer within {timeout}s"
    raise TimeoutError(msg)


@contextmanager
def serve_chat(
    settings: Settings, assistant: Assistant, upload_dir: Path | None = None
) -> Iterator[str]:
    """The Gradio chat of ``assistant`` on a free loopback port, until the block ends;
    yields its URL."""
    import app  # Gradio: only the tests that serve the chat pay for its import

    demo = app.build_ui(assistant, upload_dir)
    port = free_port()
    demo.queue().launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        **app.launch_options(settings),
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_http(url)
        yield url
    finally:
        demo.close()


class ChromaServer:
    """A real ``chroma run`` subprocess on a free loopback port."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        chroma = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
        self.process = subprocess.Popen(
            [
                chroma,
                "run",
                "--path",
                str(self.path),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
        )
        wait_for_http(f"http://127.0.0.1:{self.port}/api/v2/heartbeat")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[ChromaServer]:
    server = ChromaServer(tmp_path / "chroma-server")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _postgres_bin() -> Path | None:
    """Debian's Postgres binaries (``apt-get install postgresql``), newest version."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


class PostgresServer:
    """A real Postgres cluster (``initdb`` + ``pg_ctl``) on a free loopback port, in a
    fresh directory owned by the ``postgres`` user when run as root."""

    def __init__(self, bindir: Path) -> None:
        import tempfile

        self.bindir = bindir
        # Not under pytest's tmp dir: its parents are private to root, and the server
        # runs as the postgres user.
        self.dir = Path(tempfile.mkdtemp(prefix="newsrag-pg-"))
        self.port = free_port()
        self._databases = 0

    def _run(self, *args: str) -> None:
        command = [str(a) for a in args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        data = self.dir / "data"
        self._run(self.bindir / "initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8")
        self._run(
            self.bindir / "pg_ctl",
            "-D",
            data,
            "-o",
            f"-p {self.port} -k {self.dir} -h 127.0.0.1",
            "-l",
            self.dir / "log",
            "-w",
            "start",
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        self._databases += 1
        name = f"newsrag_{self._databases}_{os.getpid()}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as con:
            con.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run(self.bindir / "pg_ctl", "-D", self.dir / "data", "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real Postgres for the session (skipped only where it cannot be installed)."""
    bindir = _postgres_bin()
    if bindir is None and os.geteuid() == 0:
        pytest.fail("no Postgres binaries: run `make postgres` (apt-get install postgresql)")
    if bindir is None:
        pytest.skip(
            "no Postgres binaries (/usr/lib/postgresql/*/bin): `make test` installs Debian's "
            "postgresql package when run as root"
        )
    server = PostgresServer(bindir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh empty database on the session's Postgres."""
    return postgres_server.create_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each record database newsrag supports: the embedded SQLite file and Postgres."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'records.sqlite3'}"
    return str(request.getfixturevalue("postgres_url"))
