"""Shared helpers of the benchmark scripts: machine facts, percentiles, the report file."""

from __future__ import annotations

import json
import os
import platform
import resource
import shlex
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT.parent / "shared" / "eval" / "rtqa-dev"
REPORT = ROOT / "docs" / "BENCHMARKS.md"
PYTHON = sys.executable

if str(ROOT) not in sys.path:  # run as `python bench/x.py` from a fresh clone
    sys.path.insert(0, str(ROOT))


def machine() -> str:
    """One line: CPU model, cores, RAM, Python and the runtimes' versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f", {int(line.split()[1]) / 1024 / 1024:.0f} GB RAM"
    except OSError:
        pass
    versions = []
    for module in ("onnxruntime", "torch", "chromadb"):
        try:
            out = subprocess.run(
                [PYTHON, "-c", f"import {module}; print({module}.__version__)"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            versions.append(f"{module} {out.stdout.strip()}")
        except (OSError, subprocess.SubprocessError):
            continue
    return f"{cpu}, {os.cpu_count()} cores{ram}; Python {platform.python_version()}; " + ", ".join(
        versions
    )


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_http(url: str, timeout: float) -> None:
    """Poll ``url`` until it answers; TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except Exception:
            time.sleep(0.5)
    msg = f"{url} did not answer within {timeout:.0f}s"
    raise TimeoutError(msg)


def busy_note() -> str:
    """Other CPU-heavy processes during the run (they slow every figure alike)."""
    try:
        load1, _, _ = os.getloadavg()
    except OSError:
        return ""
    return f"load average at start {load1:.1f} on {os.cpu_count()} cores"


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_worker(args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``python <args>`` and return the JSON object on its last stdout line."""
    proc = subprocess.run(
        [PYTHON, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        msg = f"worker failed ({proc.returncode}): {' '.join(args)}"
        raise RuntimeError(msg)
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def command_line() -> str:
    return "python " + " ".join(
        shlex.quote(a) for a in [os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]]
    )


def append_report(section: str, title: str, table: str, notes: Sequence[str] = ()) -> None:
    """Print the table and add it, with machine, date and command, to docs/BENCHMARKS.md.

    The block goes at the end of the ``## <section>`` of the file (created when missing),
    so other sections, written by hand or by other tools, are left as they are.
    """
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"### {title} ({stamp})",
        "",
        f"- command: `{command_line()}`",
        f"- machine: {machine()}",
    ]
    lines += [f"- {n}" for n in notes if n]
    block = "\n".join([*lines, "", table, ""])
    print(block)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    text = REPORT.read_text(encoding="utf-8") if REPORT.exists() else "# Benchmarks\n"
    heading = f"## {section}"
    body = text.splitlines()
    if heading not in body:
        text = text.rstrip("\n") + f"\n\n{heading}\n\n{block}"
    else:
        start = body.index(heading)
        end = next((i for i in range(start + 1, len(body)) if body[i].startswith("## ")), len(body))
        while end > start + 1 and not body[end - 1].strip():
            end -= 1
        body[end:end] = ["", *block.splitlines()]
        text = "\n".join(body) + "\n"
    REPORT.write_text(text, encoding="utf-8")


def markdown(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)
