"""`python -m image_pipeline dev --free-ports` as a subprocess for end-to-end tests: its five ready lines, parsed,
and every process it started, found through /proc so a test can check that none outlives it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from image_pipeline.devtools import emulators

REPO_ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT_S = 120


@dataclass(frozen=True)
class DevLines:
    """The five lines `dev` prints once ready, and the running process."""

    firestore_host: str
    storage_url: str
    project: str
    bucket: str
    page_url: str
    process: subprocess.Popen[str]
    stderr_path: Path

    def client_env(self) -> dict[str, str]:
        """The variables the first three lines export."""
        return {
            "FIRESTORE_EMULATOR_HOST": self.firestore_host,
            "STORAGE_EMULATOR_HOST": self.storage_url,
            "GOOGLE_CLOUD_PROJECT": self.project,
        }


def parse_ready_lines(lines: Sequence[str], process: subprocess.Popen[str], stderr_path: Path) -> DevLines:
    """The ready lines in their contract's order; AssertionError naming the first that differs."""
    prefixes = (
        "export FIRESTORE_EMULATOR_HOST=",
        "export STORAGE_EMULATOR_HOST=",
        "export GOOGLE_CLOUD_PROJECT=",
        "bucket: ",
        "page: ",
    )
    assert len(lines) == len(prefixes), lines
    for line, prefix in zip(lines, prefixes, strict=True):
        assert line.startswith(prefix), f"expected {prefix!r}..., got {line!r}"
    values = [line.removeprefix(prefix) for line, prefix in zip(lines, prefixes, strict=True)]
    return DevLines(*values, process=process, stderr_path=stderr_path)


def skip_without_pubsub_emulator() -> None:
    """Skip the test, saying what to install, where the Pub/Sub emulator is missing."""
    try:
        emulators.pubsub_emulator_command()
    except emulators.EmulatorError as error:
        pytest.skip(str(error))


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (children, grandchildren, ...), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    """Whether a process with this id exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@contextmanager
def running_dev(extra_env: Mapping[str, str] | None = None, args: Sequence[str] = ()) -> Iterator[DevLines]:
    """Start `dev --free-ports`, yield its ready lines, then stop it with SIGTERM (and kill it if that fails)."""
    skip_without_pubsub_emulator()
    with tempfile.NamedTemporaryFile(prefix="dev-", suffix=".log", delete=False) as stderr_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "image_pipeline", "dev", "--free-ports", *args],
            cwd=REPO_ROOT,
            env={**os.environ, **(extra_env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr_file,
            text=True,
            start_new_session=True,
        )
    stderr_path = Path(stderr_file.name)
    try:
        yield parse_ready_lines(read_lines(process, 5, READY_TIMEOUT_S), process, stderr_path)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def read_lines(process: subprocess.Popen[str], count: int, timeout_s: float) -> list[str]:
    """The first `count` stdout lines; AssertionError with the process's stderr if they do not come in time."""
    assert process.stdout is not None
    stdout = process.stdout
    lines: list[str] = []

    def read() -> None:
        while len(lines) < count:
            line = stdout.readline()
            if not line:
                return
            lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout_s)
    assert len(lines) == count, f"dev printed {lines} within {timeout_s} s (exit code {process.poll()})"
    return lines
