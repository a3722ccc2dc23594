"""Many app processes, one library: Postgres for the records, a Chroma server for vectors.

Every process here is a real subprocess with a data dir of its own (they share no file):
what they share is ``NEWSRAG_DATABASE_URL`` (a real Postgres started by tests/conftest.py)
and a real ``chroma run`` server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select

from rag.components import build_index
from rag.database import ARTICLES, CHUNKS
from rag.search import LexicalSearch
from rag.store import Filters, open_record_store
from tests.conftest import ROOT, SEED_FILE, ChromaServer, make_settings
from tests.test_vectors_across_processes import TOWNS, _write_corpus

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "rag.cli"]

# A long-lived app process (what the chat is): commands in on stdin, JSON results out.
APP = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from rag.assistant import Assistant
    assistant = Assistant.from_settings()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        if "ask" in command:
            answer = assistant.ask(command["ask"])
            out = {"found": answer.found, "text": answer.text,
                   "cited": sorted({s.article_id for s in answer.sources})}
        elif "ingest" in command:
            report = assistant.ingest([Path(command["ingest"])])
            out = {"added": [a.article_id for a in report.added]}
        elif "delete" in command:
            out = {"deleted": assistant.delete_article(command["delete"])}
        else:
            out = {"articles": [r.article_id for r in assistant.articles()]}
        print(json.dumps(out), flush=True)
    """
)


def _env(data_dir: Path, database_url: str, chroma: ChromaServer) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "NEWSRAG_DATA_DIR": str(data_dir),
        "NEWSRAG_DATABASE_URL": database_url,
        "CHROMA_HOST": "127.0.0.1",
        "CHROMA_PORT": str(chroma.port),
        "NEWSRAG_CHUNK_TOKENS": "64",
        "NEWSRAG_CHUNK_OVERLAP_TOKENS": "8",
    }


class AppProcess:
    """One long-lived app process driven over stdin/stdout."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", APP],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        assert self.call_raw() == {"ready": True}

    def call_raw(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, f"the app process exited ({self.process.poll()})"
        return dict(json.loads(line))

    def call(self, **command: str) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self.call_raw()

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def apps(
    tmp_path: Path, postgres_url: str, chroma_server: ChromaServer, embeddings: object
) -> Iterator[tuple[AppProcess, AppProcess]]:
    a = AppProcess(_env(tmp_path / "a", postgres_url, chroma_server))
    b = AppProcess(_env(tmp_path / "b", postgres_url, chroma_server))
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def test_an_article_ingested_through_one_process_is_answered_and_cited_by_another(
    apps: tuple[AppProcess, AppProcess], tmp_path: Path
) -> None:
    a, b = apps
    question = "What did Meloni propose?"
    before = b.call(ask=question)
    assert not before["cited"]

    folder = tmp_path / "articles"
    folder.mkdir()
    (folder / SEED_FILE.name).write_text(SEED_FILE.read_text(encoding="utf-8"), encoding="utf-8")
    (article_id,) = a.call(ingest=str(folder))["added"]

    after = b.call(ask=question)  # the same running process: no restart
    assert after["found"] and "Article 5" in after["text"]
    assert after["cited"] == [article_id]
    assert b.call(articles="")["articles"] == [article_id]

    assert a.call(delete=article_id)["deleted"] is True
    gone = b.call(ask=question)
    assert article_id not in gone["cited"]
    assert "Article 5" not in gone["text"]
    assert b.call(articles="")["articles"] == []
    assert not (tmp_path / "b" / "news.sqlite3").exists(), "B keeps no records of its own"


def _unfinished(engine: Any, ids: set[str]) -> int:
    with engine.connect() as con:
        rows = con.execute(select(ARTICLES.c.article_id).where(ARTICLES.c.status != "complete"))
        return len({r[0] for r in rows} & ids)


def _complete(engine: Any) -> int:
    with engine.connect() as con:
        return int(
            con.execute(
                select(func.count()).select_from(ARTICLES).where(ARTICLES.c.status == "complete")
            ).scalar_one()
        )


def _split_corpus(tmp_path: Path, n: int) -> tuple[Path, Path, Path]:
    """All ``n`` articles, and two overlapping batches of them (the middle third in both)."""
    every = tmp_path / "all.jsonl"
    _write_corpus(every, "town", n)
    lines = every.read_text(encoding="utf-8").splitlines(keepends=True)
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_text("".join(lines[: 2 * n // 3]), encoding="utf-8")
    second.write_text("".join(lines[n // 3 :]), encoding="utf-8")
    return every, first, second


def test_overlapping_ingests_with_one_killed_midway_converge_to_a_fresh_single_ingest(
    tmp_path: Path, postgres_url: str, chroma_server: ChromaServer, embeddings: object
) -> None:
    n = 360
    every, first, second = _split_corpus(tmp_path, n)
    env_a = _env(tmp_path / "a", postgres_url, chroma_server)
    env_b = _env(tmp_path / "b", postgres_url, chroma_server)
    open_record_store(postgres_url).close()  # the tables exist before the two start
    engine = create_engine(postgres_url)

    a = subprocess.Popen([*CLI, "ingest", str(first)], env=env_a, stderr=subprocess.PIPE)
    b = subprocess.Popen([*CLI, "ingest", str(second)], env=env_b, stderr=subprocess.PIPE)
    # B is killed in the middle of its write: its own articles marked pending, their
    # vectors being stored, their records not yet complete.
    only_b = {f"town-{i:04d}" for i in range(2 * n // 3, n)}
    deadline = time.monotonic() + 300
    while not _unfinished(engine, only_b) and b.poll() is None:
        assert time.monotonic() < deadline, "B wrote nothing in 300 s"
        time.sleep(0.02)
    b.send_signal(signal.SIGKILL)
    assert b.wait(timeout=30) == -signal.SIGKILL, b.stderr.read() if b.stderr else ""
    assert a.wait(timeout=600) == 0, a.stderr.read() if a.stderr else ""
    assert _complete(engine) < n, "the kill left part of the library to the re-run"

    for args, env in (([str(second)], env_b), ([str(first)], env_a)):
        rerun = subprocess.run([*CLI, "ingest", *args], env=env, capture_output=True, text=True)
        assert rerun.returncode == 0, rerun.stderr

    shared = build_index(
        make_settings(
            tmp_path / "probe",
            database_url=postgres_url,
            chroma_host="127.0.0.1",
            chroma_port=chroma_server.port,
        )
    )
    with engine.connect() as con:
        chunk_ids = [r[0] for r in con.execute(select(CHUNKS.c.chunk_id))]
        statuses = {r[0] for r in con.execute(select(ARTICLES.c.status).distinct())}
    chroma_ids = shared.vectors.ids()
    assert len(chroma_ids) == len(set(chroma_ids)) and len(chunk_ids) == len(set(chunk_ids))
    assert sorted(chroma_ids) == sorted(chunk_ids), "Chroma ids equal the records' chunk ids"
    assert statuses == {"complete"} and _complete(engine) == n
    assert not shared.writer.missing_vectors(), "every chunk's vector reads back"

    fresh_dir = tmp_path / "fresh"
    single = subprocess.run(
        [*CLI, "--data-dir", str(fresh_dir), "ingest", str(every)],
        env={k: v for k, v in env_a.items() if k not in ("NEWSRAG_DATABASE_URL", "CHROMA_HOST")},
        capture_output=True,
        text=True,
    )
    assert single.returncode == 0, single.stderr
    fresh = build_index(make_settings(fresh_dir))
    assert sorted(fresh.records.chunk_ids_of()) == sorted(chunk_ids)
    for query in ("Ashford library 12", "maps and tools Glenrock", "town library number 300"):
        ours = LexicalSearch.of(shared).search(query, 20, Filters())
        reference = LexicalSearch.of(fresh).search(query, 20, Filters())
        assert [c for c, _ in ours] == [c for c, _ in reference]
        assert [s for _, s in ours] == pytest.approx([s for _, s in reference], rel=1e-5)


def test_a_stopped_postgres_is_one_line_and_a_running_process_resumes_after_restart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    from rag.cli import main
    from tests.conftest import PostgresServer, _postgres_bin

    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("no Postgres binaries: `make test` installs them when run as root")
    server = PostgresServer(bindir)
    server.start()
    try:
        url = server.create_database()
        data = tmp_path / "data"
        running = build_index(make_settings(data, database_url=url))
        monkeypatch.setenv("NEWSRAG_DATABASE_URL", url)
        assert main(["--data-dir", str(data), "stats"]) == 0
        assert f"records: postgresql+psycopg://postgres@127.0.0.1:{server.port}/" in (
            capsys.readouterr().out
        )

        server._run(bindir / "pg_ctl", "-D", server.dir / "data", "-m", "fast", "-w", "stop")
        assert main(["--data-dir", str(data), "stats"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("newsrag: error: cannot reach the record database")
        assert err.count("\n") == 1
        with pytest.raises(OperationalError):
            running.records.stats()

        server._run(
            bindir / "pg_ctl",
            "-D",
            server.dir / "data",
            "-o",
            f"-p {server.port} -k {server.dir} -h 127.0.0.1",
            "-l",
            server.dir / "log",
            "-w",
            "start",
        )
        assert running.records.stats().articles == 0, "the running process reconnects by itself"
        assert main(["--data-dir", str(data), "stats"]) == 0
    finally:
        server.stop()


def test_a_running_app_answers_while_another_process_ingests_200_articles_embedded(
    tmp_path: Path, embeddings: object
) -> None:
    """The embedded default (one data dir, no server): a long-lived app process keeps
    answering while `newsrag ingest` adds 200 articles, and then answers from them."""
    data = tmp_path / "data"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "NEWSRAG_DATA_DIR": str(data),
        "NEWSRAG_CHUNK_TOKENS": "64",
        "NEWSRAG_CHUNK_OVERLAP_TOKENS": "8",
    }
    first, more = tmp_path / "first.jsonl", tmp_path / "more.jsonl"
    _write_corpus(first, "seed", 20)
    _write_corpus(more, "harbor", 200)
    app = AppProcess(env)
    try:
        assert len(app.call(ingest=str(first))["added"]) == 20
        ingest = subprocess.Popen(
            [*CLI, "ingest", str(more)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        asked = 0
        while ingest.poll() is None:  # the chat keeps answering meanwhile
            answer = app.call(ask=f"Which town opened seed library {asked % 20}?")
            assert answer["found"] and answer["cited"], answer
            asked += 1
        out, err = ingest.communicate()
        assert ingest.returncode == 0, err.decode()
        assert b"added 200" in out
        assert asked > 0
        listed = set(app.call(articles="")["articles"])
        assert len(listed) == 220 and {f"harbor-{i:04d}" for i in range(200)} <= listed
        for i in range(13, 200, 19):  # numbers of two digits or more: one is no search word
            town = TOWNS[i % len(TOWNS)]
            answer = app.call(ask=f"What does harbor library {i} in {town} lend to residents?")
            assert f"harbor-{i:04d}" in answer["cited"], (i, answer)
    finally:
        app.close()
    index = build_index(make_settings(data, chunk_tokens=64, chunk_overlap_tokens=8))
    assert sorted(index.writer.vector_ids()) == sorted(index.records.chunk_ids_of())
    assert not index.writer.missing_vectors(), "no vector lost"
