"""Two real processes on one embedded library (Chroma's default persist threshold), then
every stored chunk's vector read back through Chroma's own API in a fresh process.

    python bench/reliability.py long WORKDIR   # a running assistant (the chat) ingests 50,
                                               # `newsrag ingest` adds 1,200 from another
                                               # process, the assistant ingests 1,100 more
                                               # and is asked about an article the CLI added
    python bench/reliability.py pair WORKDIR   # two `newsrag ingest` of 1,100 at once
    python bench/reliability.py edits WORKDIR  # one ingest edits 600 articles while
                                               # another adds 600

Short synthetic articles of one chunk each; see docs/RELIABILITY.md. The readback also
checks the embedding cache: every chunk names a row with its sentence vectors, and no row
outlives the chunks that named it.
"""

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
WORDS = (
    "harbor council bridge budget school river festival market station museum park "
    "library clinic airport stadium ferry tower garden theatre factory"
).split()


def articles(prefix, n, start=0):
    rng = random.Random(prefix)
    out = []
    for i in range(start, start + n):
        town = f"{prefix} town {i}"
        place = rng.choice(WORDS)
        filler = " ".join(rng.choice(WORDS) for _ in range(25))
        out.append(
            {
                "id": f"{prefix}-{i}",
                "title": f"{town} opens a new {place}",
                "published": f"2024-05-0{1 + i % 9}",
                "source": f"{prefix}.example",
                "url": f"https://{prefix}.example/{i}",
                "text": f"The people of {town} opened {prefix} {place} {i} on Monday. "
                f"Officials said the {place} cost {i} thousand dollars. {filler}.",
            }
        )
    return out


def write(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def cli_ingest(data, file):
    return subprocess.Popen(
        [PY, "-m", "rag.cli", "--data-dir", str(data), "ingest", str(file)],
        env=ENV,
        cwd=str(ROOT),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


READBACK = r"""
import sys, sqlite3, chromadb
from chromadb.config import Settings
data = sys.argv[1]
ids = [r[0] for r in sqlite3.connect(f"{data}/news.sqlite3").execute("select chunk_id from chunks")]
client = chromadb.PersistentClient(f"{data}/chroma", settings=Settings(anonymized_telemetry=False))
col = client.get_collection("news")
missing = 0
for i in range(0, len(ids), 200):
    batch = ids[i:i+200]
    try:
        got = col.get(ids=batch, include=["embeddings"])
        have = {k for k, e in zip(got["ids"], got["embeddings"]) if e is not None and len(e) == 384}
        missing += len(set(batch) - have)
    except Exception:
        for one in batch:
            try:
                g = col.get(ids=[one], include=["embeddings"])
                missing += 0 if g["ids"] and len(g["embeddings"][0]) == 384 else 1
            except Exception:
                missing += 1
db = sqlite3.connect(f"{data}/news.sqlite3")
dangling, bare = db.execute(
    "select count(*) - count(e.key), count(e.key) - count(e.sentences) from chunks c "
    "left join embedding_cache e on e.key = c.embedding_key"
).fetchone()
unused = db.execute(
    "select count(*) from embedding_cache e where not exists "
    "(select 1 from chunks c where c.embedding_key = e.key)"
).fetchone()[0]
print(f"chunks in records {len(ids)}, vectors in chroma {col.count()}, missing {missing}; "
      f"cache: {dangling} chunks name no row, {bare} rows without sentence vectors, "
      f"{unused} rows no chunk names")
"""


def readback(data):
    return subprocess.run(
        [PY, "-c", READBACK, str(data)], env=ENV, capture_output=True, text=True
    ).stdout.strip()


def long_scenario(work):
    data = work / "data"
    a = write(work / "a.jsonl", articles("alpha", 50))
    b = write(work / "b.jsonl", articles("beta", 1200))
    c = write(work / "c.jsonl", articles("gamma", 1100))
    # The long-lived process: an Assistant, as the chat holds one.
    chat = subprocess.Popen(
        [
            PY,
            "-c",
            r"""
import sys
from rag.settings import Settings
from rag.assistant import Assistant
a = Assistant.from_settings(Settings(data_dir=sys.argv[1]))
print("ingested", len(a.ingest([sys.argv[2]]).added), flush=True)
question = input()
print("ingested", len(a.ingest([sys.argv[3]]).added), flush=True)
ans = a.ask(question)
print("ANSWER", ans.found, [s.title for s in ans.sources][:2], flush=True)
print(ans.text[:160].replace("\n", " "), flush=True)
hits = a.search(question, top_k=5)
print("DENSE", [(h.title, h.chunks[0].dense_rank) for h in hits][:3], flush=True)
""",
            str(data),
            str(a),
            str(c),
        ],
        env=ENV,
        cwd=str(ROOT),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    print("chat:", chat.stdout.readline().strip(), flush=True)
    p = cli_ingest(data, b)
    out = p.communicate()[0]
    print("cli ingest exit", p.returncode, out.strip().splitlines()[-1:] if out else "")
    place = articles("beta", 1200)[777]["title"].split()[-1]
    question = f"Which town opened beta {place} 777?"
    print("asked the running chat:", question)
    chat.stdin.write(question + "\n")
    chat.stdin.flush()
    rest = chat.communicate()[0]
    print(rest.strip())
    print("readback:", readback(data))


def pair_scenario(work):
    data = work / "data"
    x = write(work / "x.jsonl", articles("delta", 1100))
    y = write(work / "y.jsonl", articles("epsilon", 1100))
    p, q = cli_ingest(data, x), cli_ingest(data, y)
    for name, proc in (("x", p), ("y", q)):
        out = proc.communicate()[0]
        print(name, "exit", proc.returncode, out.strip().splitlines()[-1:] if out else "")
    print("readback:", readback(data))


def edits_scenario(work):
    """One `newsrag ingest` replaces 600 articles with edited texts (their old cached
    vectors are released) while another adds 600 new ones."""
    data = work / "data"
    first = articles("zeta", 600)
    p = cli_ingest(data, write(work / "z.jsonl", first))
    print("z exit", p.wait())
    edited = [{**a, "text": a["text"] + " The council met again on Friday."} for a in first]
    p = cli_ingest(data, write(work / "z2.jsonl", edited))
    q = cli_ingest(data, write(work / "w.jsonl", articles("eta", 600)))
    for name, proc in (("z edited", p), ("w", q)):
        out = proc.communicate()[0]
        print(name, "exit", proc.returncode, out.strip().splitlines()[-1:] if out else "")
    print("readback:", readback(data))


if __name__ == "__main__":
    work = Path(sys.argv[2]).resolve()
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    {"long": long_scenario, "pair": pair_scenario, "edits": edits_scenario}[sys.argv[1]](work)
    print(f"{time.time() - started:.0f} s")
