"""The demo's own checks, before any service starts: a bad setting is one line; a rerun starts from a clean page.
Then what it prints: a summary of the document (the function run on the session's emulators), or with --json the
whole document.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from image_pipeline.commands.demo import SAMPLE, demonstrate, summary
from image_pipeline.devtools.demo_page import RECORD, clear_previous
from image_pipeline.devtools.demo_upload import DemoUpload
from image_pipeline.settings import Settings
from tests.conftest import ROUTES_FILE

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


# --- what the demo prints: a summary of the document (or, with --json, the whole document) -------------------------


def avatar_plan() -> DemoUpload:
    """The demo's upload for the example routes file's avatar route (AVIF first, then WebP)."""
    settings = Settings.from_env({"ROUTES_FILE": ROUTES_FILE})
    route = next(route for route in settings.routes if route.name == "avatar")
    return DemoUpload.of(route, "me.png", settings.routes)


def stored(path: str, size: int, **extra: str) -> dict:
    return {"path": path, "url": f"http://x/{path}", "bytes": size, "contentType": "image/x", **extra}


def test_the_summary_names_each_variant_in_each_format_the_placeholder_and_the_page() -> None:
    small = {"avif": stored("s.avif", 2048), "webp": stored("s.webp", 2662)}
    tiny = {"webp": stored("s.webp", 2662, sameAs="small"), "avif": stored("t.avif", 736)}
    manifest = {
        "status": "complete",
        "source": {"path": "users/demo-user/avatar/me.png", "generation": "7", "contentType": "image/png"}
        | {"bytes": 3 * 1024 * 1024, "format": "PNG", "width": 3000, "height": 2000},
        "variants": {
            "tiny": {**tiny["avif"], "width": 64, "height": 64, "formats": tiny},
            "small": {**small["avif"], "width": 256, "height": 256, "formats": small},
        },
        "placeholder": {"thumbhash": "2sYJ", "blurhash": "LfBX", "dominantColor": "#727eab"},
        "cutout": {"applied": True, "model": "isnet:0123", "coverage": 0.42},
        "error": None,
    }

    lines = summary({"avatar": manifest}, avatar_plan(), Path("/out/index.html"))

    assert lines == [
        "status       complete",
        "recorded in  users/demo-user, field avatar (route avatar)",
        "source       PNG 3000×2000, 3.00 MiB",
        "variants     small  256×256  avif 2.0 KiB · webp 2.6 KiB",
        "             tiny     64×64  avif 736 B · webp = small",
        "placeholder  #727eab · BlurHash LfBX · ThumbHash 2sYJ",
        "cutout       applied, isnet:0123, subject covers 42%",
        "page         /out/index.html (open it; the variants are beside it)",
    ]


@pytest.mark.parametrize(
    ("document", "status"),
    [
        (
            {"avatar": {"status": "failed", "variants": {}, "error": {"code": "too_large", "message": "9 GB"}}},
            "status       failed: too_large: 9 GB",
        ),
        ({"name": "no manifest yet"}, "status       no manifest (the function's log lines say why)"),
    ],
)
def test_a_summary_without_a_result_says_why_and_where_the_page_is(document: dict, status: str) -> None:
    lines = summary(document, avatar_plan(), Path("/out/index.html"))

    assert lines == [
        status,
        "recorded in  users/demo-user, field avatar (route avatar)",
        "page         /out/index.html (open it)",
    ]


@pytest.mark.parametrize("as_json", [False, True], ids=["summary", "json"])
def test_the_demo_sums_up_the_document_or_prints_it_whole(backend, capsys, tmp_path: Path, as_json: bool) -> None:
    settings = Settings.from_env({})
    plan = DemoUpload.of(settings.routes[0], SAMPLE.name, settings.routes)

    code = demonstrate(plan, SAMPLE, tmp_path / "out", backend.function_url, settings, as_json)

    out = capsys.readouterr().out.splitlines()
    manifest = backend.document("demo-character")["visuals"]["showcase"]
    answered = next(index for index, line in enumerate(out) if line.startswith("Event answered 200 after "))
    printed = out[answered + 1 :]
    assert code == 0 and (tmp_path / "out" / "index.html").is_file()
    if as_json:
        document = json.loads("\n".join(printed[:-1]))
        assert document["visuals"]["showcase"]["variants"] == manifest["variants"]
        assert printed[-1].startswith("Variants and a side-by-side page written to ")
        return
    assert len(printed) <= 10 and printed[0] == "status       complete"
    for name, variant in manifest["variants"].items():
        [line] = [line for line in printed if f" {name} " in line]
        assert f"{variant['width']}×{variant['height']}  webp " in line
    assert manifest["placeholder"]["blurhash"] in next(line for line in printed if line.startswith("placeholder"))
    page = (tmp_path / "out" / "index.html").resolve()
    assert printed[-1] == f"page         {page} (open it; the variants are beside it)"
