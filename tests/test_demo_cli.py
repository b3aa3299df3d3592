"""The demo's own checks, before any service starts: a bad setting is one line; a rerun starts from a clean page."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from image_pipeline.devtools.demo_page import RECORD, clear_previous

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("variable", "value"),
    [("LOG_LEVEL", "loud"), ("VARIANTS", "bad"), ("MAX_PIXELS", "99999999999"), ("ROUTES_FILE", "no/such.toml")],
)
def test_a_bad_setting_is_one_line_on_stderr_naming_it_and_exit_2(tmp_path: Path, variable: str, value: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "image_pipeline", "demo", "--out", str(tmp_path / "out")],
        cwd=REPO_ROOT,
        env={**os.environ, variable: value},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert (done.returncode, done.stdout) == (2, "")
    [line] = done.stderr.splitlines()
    assert line.startswith("python -m image_pipeline demo: error:") and variable in line
    assert not (tmp_path / "out").exists()


def test_a_rerun_removes_exactly_what_the_last_run_wrote(tmp_path: Path) -> None:
    for name in ("index.html", "sample_large.webp", "mine.jpg"):
        (tmp_path / name).write_text(name)
    (tmp_path / RECORD).write_text("index.html\nsample_large.webp\n../escape\n")

    clear_previous(tmp_path)

    assert sorted(path.name for path in tmp_path.iterdir()) == ["mine.jpg"]


def test_a_folder_the_demo_never_wrote_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "photo.jpg").write_text("x")

    clear_previous(tmp_path)
    clear_previous(tmp_path / "missing")

    assert [path.name for path in tmp_path.iterdir()] == ["photo.jpg"]
