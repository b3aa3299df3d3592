""".gcloudignore: what `gcloud functions deploy --source=.` and `gcloud run jobs deploy --source=.` upload (the
function's code and the routes file, nothing else); checked with gcloud itself where it is installed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GCLOUDIGNORE = ROOT / ".gcloudignore"
UPLOADED = [
    "main.py",
    "requirements.txt",
    "image_pipeline/__init__.py",
    "image_pipeline/imaging/pipeline.py",
    "routes.toml",
    "routes/apps.toml",
]
NOT_UPLOADED = [
    "tests/test_x.py",
    "benchmarks/bench.py",
    ".venv/lib/site.py",
    ".git/HEAD",
    ".ci/run",
    "README.md",
    "storage.rules",
    "firestore.rules",
    "firebase.json",
    "deploy.sh",
    "demo-output/index.html",
    "requirements-dev.txt",
    ".pytest_cache/v",
    "image_pipeline/__pycache__/settings.cpython-312.pyc",
    "image_pipeline/sample/photo.jpg",
    "image_pipeline/tests/test_y.py",
    "image_pipeline/NOTES.md",
    "image_pipeline/assets/sample.png",
    ".hypothesis/x",
    ".cache/npm-clients/node_modules/firebase/package.json",
    "examples/routes.toml",
    "docs/routes.md",
]


def test_gcloudignore_patterns():
    lines = {line.strip() for line in GCLOUDIGNORE.read_text().splitlines()}
    assert "/*" in lines
    for keep in ("!/main.py", "!/requirements.txt", "!/image_pipeline/", "!/routes.toml", "!/routes/"):
        assert keep in lines
    for gone in (
        "tests/",
        "benchmarks/",
        ".venv/",
        ".git/",
        ".ci/",
        "*.md",
        "__pycache__/",
        "demo-output/",
        "storage.rules",
        "firestore.rules",
        "/image_pipeline/sample/",
    ):
        assert gone in lines


def _gcloud_lists_files() -> bool:
    return shutil.which("gcloud") is not None


@pytest.mark.skipif(not _gcloud_lists_files(), reason="gcloud not installed")
def test_gcloudignore_with_gcloud_on_a_sample_tree(tmp_path):
    tree = tmp_path / "tree"
    for name in UPLOADED + NOT_UPLOADED:
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text("x")
    shutil.copy(GCLOUDIGNORE, tree / ".gcloudignore")
    result = subprocess.run(
        ["gcloud", "meta", "list-files-for-upload", str(tree)],
        capture_output=True,
        text=True,
        env=_clean_env(tmp_path),
        check=True,
        timeout=60,
    )
    assert sorted(result.stdout.split()) == sorted(UPLOADED)


@pytest.mark.skipif(not _gcloud_lists_files(), reason="gcloud not installed")
def test_gcloudignore_on_this_repository(tmp_path):
    result = subprocess.run(
        ["gcloud", "meta", "list-files-for-upload", str(ROOT)],
        capture_output=True,
        text=True,
        env=_clean_env(tmp_path),
        check=True,
        timeout=60,
    )
    files = result.stdout.split()
    assert "requirements.txt" in files
    assert "image_pipeline/__init__.py" in files
    assert "image_pipeline/settings.py" in files
    if (ROOT / "main.py").exists():
        assert "main.py" in files
    for name in files:
        assert name in ("main.py", "requirements.txt", "routes.toml") or name.startswith(("image_pipeline/", "routes/"))
        assert "/tests/" not in name and "__pycache__" not in name and not name.endswith(".md"), name


def _clean_env(tmp_path: Path) -> dict[str, str]:
    # Nothing from the developer's shell (a gcloud configuration, CLOUDSDK_ variables) leaks in.
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "LANG": "C.UTF-8"}
