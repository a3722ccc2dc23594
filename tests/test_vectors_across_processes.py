"""Vectors survive several processes writing one library (issue 11, part 1).

Each scenario is checked the way a user loses data: every stored chunk id's vector is read
back through Chroma's own API, id by id, in a fresh process (ids and counts looked normal
while a third of the vectors were gone).

Chroma persists its in-memory vector index every ``hnsw:sync_threshold`` writes (1,000 by
default); the tests create the collection with a threshold of 50 first, so that the stale
copy a process used to persist over the others' vectors is persisted within a few hundred
chunks, not a few thousand. newsrag opens an existing collection as it finds it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from rag.assistant import Assistant
from rag.search import DenseSearch
from rag.store import Filters
from tests.conftest import SEEDS, ChromaServer, make_settings

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "rag.cli"]
SMALL_CHUNKS = {"NEWSRAG_CHUNK_TOKENS": "64", "NEWSRAG_CHUNK_OVERLAP_TOKENS": "8"}
TOWNS = ["Ashford", "Bexley", "Carden", "Dunmore", "Elston", "Farleigh", "Glenrock", "Hadley"]


def _write_corpus(path: Path, prefix: str, n: int) -> None:
    """``n`` short articles, each about its own numbered library in one of a few towns."""
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            town = TOWNS[i % len(TOWNS)]
            record = {
                "id": f"{prefix}-{i:04d}",
                "url": f"https://{prefix}.example/{i}",
                "title": f"{town} opens {prefix} library {i}",
                "published": "2024-05-01",
                "source": f"{prefix}.example",
                "text": f"The town of {town} opened {prefix} library number {i} on Monday. "
                f"The {prefix} library {i} lends books, maps and tools to residents.",
            }
            fh.write(json.dumps(record) + "\n")


def _create_collection(chroma_dir: Path, sync_threshold: int = 50) -> None:
    """Create the library's collection with a small persist threshold (see module doc)."""
    script = textwrap.dedent(
        f"""
        import chromadb
        from chromadb.config import Settings
        client = chromadb.PersistentClient({str(chroma_dir)!r},
                                           settings=Settings(anonymized_telemetry=False))
        client.create_collection("news", metadata={{"hnsw:space": "cosine",
            "hnsw:sync_threshold": {sync_threshold}, "hnsw:batch_size": {sync_threshold}}})
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True)


def _vector_report(data_dir: Path) -> tuple[int, list[str]]:
    """Chunk ids the records list as complete, and those whose vector Chroma cannot give
    back, read id by id in a fresh process."""
    con = sqlite3.connect(data_dir / "news.sqlite3")
    ids = [
        r[0]
        for r in con.execute(
            "SELECT c.chunk_id FROM chunks c JOIN articles a ON a.article_id = c.article_id "
            "WHERE a.status = 'complete'"
        )
    ]
    con.close()
    script = textwrap.dedent(
        f"""
        import json, sys
        import chromadb
        from chromadb.config import Settings
        client = chromadb.PersistentClient({str(data_dir / "chroma")!r},
                                           settings=Settings(anonymized_telemetry=False))
        collection = client.get_collection("news")
        lost = []
        for chunk_id in json.load(sys.stdin):
            try:
                got = collection.get(ids=[chunk_id], include=["embeddings"])
                ok = got["ids"] == [chunk_id] and len(got["embeddings"][0]) == 384
            except Exception:
                ok = False
            if not ok:
                lost.append(chunk_id)
        print(json.dumps(lost))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(ids),
        capture_output=True,
        text=True,
        check=True,
    )
    return len(ids), json.loads(out.stdout.strip().splitlines()[-1])


def _cli_env() -> dict[str, str]:
    return {**os.environ, **SMALL_CHUNKS}


def test_a_long_lived_process_keeps_every_vector_another_process_added(
    tmp_path: Path, assistant_factory: Callable[..., Assistant]
) -> None:
    data = tmp_path / "data"
    _create_collection(data / "chroma")
    first, other, more = tmp_path / "first.jsonl", tmp_path / "other.jsonl", tmp_path / "more.jsonl"
    _write_corpus(first, "alpha", 30)
    _write_corpus(other, "beta", 120)
    _write_corpus(more, "gamma", 150)
    chat = assistant_factory(make_settings(data, chunk_tokens=64, chunk_overlap_tokens=8))
    assert len(chat.ingest([first]).added) == 30

    cli = subprocess.run(
        [*CLI, "--data-dir", str(data), "ingest", str(other)],
        env=_cli_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert cli.returncode == 0, cli.stderr

    # The running process searches the other's vectors (dense search, not keywords).
    vector = chat.embeddings.embed_query("Which town opened beta library 77?")
    nearest = DenseSearch.of(chat.index).search(vector, 10, Filters())
    assert any(chunk_id.startswith(_article_id(data, "beta-0077")) for chunk_id, _ in nearest)

    # Without the reload, all 120 of the other process's vectors were lost here.
    assert len(chat.ingest([more]).added) == 150
    stored, lost = _vector_report(data)
    assert stored >= 300
    assert lost == [], f"{len(lost)} of {stored} stored chunks lost their vector"


def test_two_ingests_at_once_on_one_data_dir_lose_no_vector(tmp_path: Path) -> None:
    # 400 articles each: two writes per process, enough to interleave (without the library
    # lock, 189 of the 800 vectors were lost in this test).
    data = tmp_path / "data"
    _create_collection(data / "chroma")
    batches = [tmp_path / "one.jsonl", tmp_path / "two.jsonl"]
    _write_corpus(batches[0], "north", 400)
    _write_corpus(batches[1], "south", 400)
    procs = [
        subprocess.Popen(
            [*CLI, "--data-dir", str(data), "ingest", str(batch)],
            env=_cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for batch in batches
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        assert "added 400" in out
    stored, lost = _vector_report(data)
    assert stored >= 800
    assert lost == [], f"{len(lost)} of {stored} stored chunks lost their vector"


def test_check_finds_lost_vectors_and_repair_restores_them(tmp_path: Path) -> None:
    data = tmp_path / "data"
    corpus = tmp_path / "c.jsonl"
    _write_corpus(corpus, "delta", 20)
    run = [*CLI, "--data-dir", str(data)]
    subprocess.run([*run, "ingest", str(corpus)], env=_cli_env(), check=True, timeout=600)
    stored, _ = _vector_report(data)
    # Lose a third of the vectors behind the library's back.
    script = textwrap.dedent(
        f"""
        import chromadb
        from chromadb.config import Settings
        client = chromadb.PersistentClient({str(data / "chroma")!r},
                                           settings=Settings(anonymized_telemetry=False))
        collection = client.get_collection("news")
        ids = sorted(collection.get(include=[])["ids"])
        collection.delete(ids=ids[::3])
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    _, lost = _vector_report(data)
    assert len(lost) == len(range(0, stored, 3))

    check = subprocess.run([*run, "check"], capture_output=True, text=True, env=_cli_env())
    assert check.returncode == 1
    assert f"{len(lost)} chunks without a readable vector" in check.stdout
    stats = subprocess.run([*run, "stats"], capture_output=True, text=True, env=_cli_env())
    assert f"vectors: {len(lost)} missing (whole library" in stats.stdout

    repair = subprocess.run(
        [*run, "check", "--repair"], capture_output=True, text=True, env=_cli_env()
    )
    assert repair.returncode == 0, repair.stdout + repair.stderr
    assert _vector_report(data) == (stored, [])
    stats = subprocess.run([*run, "stats"], capture_output=True, text=True, env=_cli_env())
    assert "vectors: none missing (whole library" in stats.stdout


def test_a_rerun_of_ingest_repairs_lost_vectors_instead_of_skipping(
    tmp_path: Path, assistant_factory: Callable[..., Assistant]
) -> None:
    data = tmp_path / "data"
    assistant = assistant_factory(make_settings(data))
    assistant.ingest([SEEDS])
    lost_ids = assistant.index.writer.vector_ids()[:2]
    assistant.index.vectors.delete(lost_ids)
    assert sorted(assistant.index.writer.missing_vectors()) == sorted(lost_ids)

    report = assistant.ingest([SEEDS])
    assert len(report.repaired) == 1 and report.vectors_restored == 2
    assert "repaired 1" in report.summary()
    assert report.chunks_embedded == 0, "restored from the embedding cache"
    assert assistant.index.writer.missing_vectors() == []


def test_an_unfinished_article_is_finished_by_the_next_ingest_of_anything(
    tmp_path: Path, assistant_factory: Callable[..., Assistant]
) -> None:
    data = tmp_path / "data"
    assistant = assistant_factory(make_settings(data))
    assistant.ingest([SEEDS])
    # An ingest that died between its two writes leaves the article "pending".
    con = sqlite3.connect(data / "news.sqlite3")
    con.execute("UPDATE articles SET status='pending'")
    con.commit()
    con.close()
    assert assistant.stats().pending == 1
    other = tmp_path / "other.txt"
    other.write_text("Harbour news\n\nThe harbour of Lowmere reopened after repairs on Friday.")

    report = assistant.ingest([other])
    assert len(report.added) == 1
    assert [a.title for a in report.unfinished_repaired] == [
        "Italian PM proposes extending NATO's Article 5 security umbrella to Ukraine"
    ]
    assert any("left unfinished by an earlier ingest" in line for line in report.details())
    assert assistant.stats().pending == 0
    assert "Article 5" in assistant.ask("what did Meloni propose?").text


def test_an_emptied_chroma_server_is_refilled_by_the_next_ingest(
    tmp_path: Path, assistant_factory: Callable[..., Assistant]
) -> None:
    server = ChromaServer(tmp_path / "server-a")
    server.start()
    try:
        settings = make_settings(
            tmp_path / "client", chroma_host="127.0.0.1", chroma_port=server.port
        )
        chat = assistant_factory(settings)
        chat.ingest([SEEDS])
        chunks = chat.stats().chunks
        server.stop()
        server.path = tmp_path / "server-b"  # restarted on an empty path, same port
        server.start()

        report = chat.ingest([SEEDS])
        assert len(report.repaired) == 1 and report.vectors_restored == chunks
        assert chat.index.writer.vector_count() == chunks
        assert chat.index.writer.missing_vectors() == []
        vector = chat.embeddings.embed_query("what did Meloni propose?")
        assert DenseSearch.of(chat.index).search(vector, 3, Filters()), "answers use vectors again"
    finally:
        server.stop()


def _article_id(data: Path, record_id: str) -> str:
    con = sqlite3.connect(data / "news.sqlite3")
    rows = con.execute("SELECT article_id, url FROM articles").fetchall()
    con.close()
    prefix, number = record_id.rsplit("-", 1)
    url = f"https://{prefix}.example/{int(number)}"
    return next(a for a, u in rows if u == url)


def test_a_write_lock_held_too_long_gives_one_line_and_exit_1(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run = [*CLI, "--data-dir", str(data)]
    subprocess.run([*run, "ingest", str(SEEDS)], env=_cli_env(), check=True, timeout=600)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time\n"
            f"fd = open({str(data / 'news.lock')!r}, 'w')\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        other = tmp_path / "other.txt"
        other.write_text("Harbour news\n\nThe harbour of Lowmere reopened after repairs.")
        env = {**_cli_env(), "NEWSRAG_LOCK_TIMEOUT": "1"}
        result = subprocess.run(
            [*run, "ingest", str(other)], env=env, capture_output=True, text=True, timeout=120
        )
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "another newsrag process has been writing" in lines[0], lines
    # Nothing was half-written: the next ingest adds the article.
    again = subprocess.run(
        [*run, "ingest", str(other)], env=_cli_env(), capture_output=True, text=True
    )
    assert again.returncode == 0 and "added 1" in again.stdout
