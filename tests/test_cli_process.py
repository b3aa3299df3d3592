"""`python -m image_pipeline process INPUT... --out DIR`: one JSON line per input on stdout, exit 0/1/2."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest

from image_pipeline.bootstrap import make_variants
from tests.imaging_fixtures import (
    CANON_SIZE,
    RED,
    decode,
    encode,
    noise,
    oriented_bytes,
    solid,
)

REPO = Path(__file__).resolve().parent.parent
SETTING_VARIABLES = (
    "VARIANTS",
    "OUTPUT_FORMAT",
    "QUALITY",
    "MAX_INPUT_BYTES",
    "MAX_PIXELS",
    "MAX_FRAMES",
    "KEEP_ANIMATION",
    "ENCODE_THREADS",
    "SOURCE_PREFIX",
    "OUTPUT_PREFIX",
    "FIRESTORE_COLLECTION",
    "URL_MODE",
    "DELETE_ORIGINAL",
    "MAX_EVENT_AGE_S",
    "RETRY_WINDOW_S",
    "CLIENT_TIMEOUT_S",
)
CODES = {"unsupported_format", "corrupt_image", "too_large", "empty"}


def cli(*args: str, cwd: Path, **env_overrides: str) -> subprocess.CompletedProcess:
    """Run the CLI in a fresh interpreter with a clean settings environment plus `env_overrides`."""
    env = {key: value for key, value in os.environ.items() if key not in SETTING_VARIABLES}
    env["PYTHONPATH"] = str(REPO)
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "-m", "image_pipeline", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def result_lines(done: subprocess.CompletedProcess, count: int) -> list[dict]:
    """Parse stdout, which must hold exactly `count` result objects and nothing else."""
    lines = done.stdout.splitlines()
    assert len(lines) == count, f"stdout: {done.stdout!r}\nstderr: {done.stderr[-2000:]}"
    parsed = [json.loads(line) for line in lines]
    for line in parsed:
        assert isinstance(line, dict) and isinstance(line.get("ok"), bool) and "input" in line, line
    return parsed


def assert_success_shape(line: dict, out_dir: Path, names=("thumb", "medium", "large"), fmt="webp") -> None:
    """Check a success line against the contract and the files on disk (relative paths are from out_dir's test root)."""
    assert line["ok"] is True, line
    assert {"format", "width", "height"} <= set(line["source"])
    assert [variant["name"] for variant in line["variants"]] == list(names)
    for variant in line["variants"]:
        assert {"name", "path", "format", "width", "height", "bytes"} <= set(variant)
        path = Path(variant["path"])
        if not path.is_absolute():
            path = next(root for root in out_dir.parents if (root / path).exists()) / path
        assert path.is_file(), variant
        assert out_dir.resolve() in path.resolve().parents
        assert variant["bytes"] == path.stat().st_size
        assert variant["format"] == fmt
        image = decode(path.read_bytes())
        assert image.size == (variant["width"], variant["height"])
    placeholder = line["placeholder"]
    assert re.fullmatch(r"#[0-9a-f]{6}", placeholder["dominantColor"])
    assert isinstance(placeholder["blurhash"], str) and len(placeholder["blurhash"]) >= 6


def assert_rejection_shape(line: dict, code: str | None = None) -> None:
    """Check a rejection line is exactly {input, ok: false, error: {code, message}}."""
    assert set(line) == {"input", "ok", "error"}, line
    assert line["ok"] is False
    assert set(line["error"]) == {"code", "message"}
    assert line["error"]["code"] in CODES if code is None else line["error"]["code"] == code
    assert isinstance(line["error"]["message"], str) and line["error"]["message"].strip()


def test_all_inputs_succeed(tmp_path):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(oriented_bytes(6))
    picture = tmp_path / "picture.png"
    picture.write_bytes(encode(noise((500, 300)), "PNG"))
    out = tmp_path / "out"
    done = cli("process", str(photo), str(picture), "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    first, second = result_lines(done, 2)
    assert first["input"] == str(photo) and second["input"] == str(picture)
    for line in (first, second):
        assert_success_shape(line, out)
    assert (first["source"]["format"], first["source"]["width"], first["source"]["height"]) == ("JPEG", *CANON_SIZE)
    assert (second["source"]["format"], second["source"]["width"], second["source"]["height"]) == ("PNG", 500, 300)
    sizes = {variant["name"]: (variant["width"], variant["height"]) for variant in second["variants"]}
    assert sizes["medium"] == (500, 300) and abs(sizes["thumb"][1] - 154) <= 1 and sizes["thumb"][0] == 256
    if "bytes" in second["source"]:
        assert second["source"]["bytes"] == picture.stat().st_size


def test_relative_input_is_echoed_as_given_and_out_dir_is_created(tmp_path):
    (tmp_path / "a.png").write_bytes(encode(solid(RED), "PNG"))
    done = cli("process", "a.png", "--out", "nested/out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    (line,) = result_lines(done, 1)
    assert line["input"] == "a.png"
    assert_success_shape(line, tmp_path / "nested" / "out")


def test_any_rejection_exits_1_and_other_inputs_still_processed(tmp_path):
    good = tmp_path / "good.png"
    good.write_bytes(encode(solid(RED), "PNG"))
    fake = tmp_path / "fake.jpg"
    fake.write_text("this is not an image\n")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    half = tmp_path / "half.jpg"
    whole = encode(noise((64, 64)), "JPEG")
    half.write_bytes(whole[: len(whole) // 2])
    out = tmp_path / "out"
    done = cli("process", str(fake), str(good), str(empty), str(half), "--out", str(out), cwd=tmp_path)
    assert done.returncode == 1, done.stderr[-2000:]
    lines = result_lines(done, 4)
    assert [line["input"] for line in lines] == [str(fake), str(good), str(empty), str(half)]
    assert_rejection_shape(lines[0], "unsupported_format")
    assert_success_shape(lines[1], out)
    assert_rejection_shape(lines[2], "empty")
    assert_rejection_shape(lines[3], "corrupt_image")


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_a_missing_or_directory_input_is_a_usage_error_naming_it(tmp_path, kind):
    (tmp_path / "good.png").write_bytes(encode(solid(RED), "PNG"))
    odd = tmp_path / "nope.jpg"
    if kind == "directory":
        odd.mkdir()
    done = cli("process", "good.png", str(odd), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert (done.returncode, done.stdout) == (2, "")
    [line] = done.stderr.splitlines()
    assert str(odd) in line and ("directory" in line if kind == "directory" else "no such file" in line)
    assert not (tmp_path / "out").exists()


def test_each_input_is_logged_on_stderr_as_json(tmp_path):
    (tmp_path / "good.png").write_bytes(encode(solid(RED), "PNG"))
    (tmp_path / "fake.jpg").write_text("not an image")
    done = cli("process", "good.png", "fake.jpg", "--out", "out", cwd=tmp_path, LOG_LEVEL="debug")
    logged = [json.loads(line) for line in done.stderr.splitlines()]
    assert [(entry["severity"], entry["input"]) for entry in logged if entry["severity"] != "DEBUG"] == [
        ("INFO", "good.png"),
        ("WARNING", "fake.jpg"),
    ]
    assert {entry["input"] for entry in logged if entry["severity"] == "DEBUG"} == {"good.png", "fake.jpg"}


def test_help_lists_the_settings_it_reads_and_the_exit_codes(tmp_path):
    from image_pipeline.settings import Settings

    done = cli("process", "--help", cwd=tmp_path)
    assert done.returncode == 0
    listed = set(re.findall(r"^  ([A-Z][A-Z0-9_]+)=", done.stdout, re.MULTILINE))
    assert listed == {variable.name for variable in Settings.variables() if not variable.cloud}
    assert {"VARIANTS", "MAX_INPUT_BYTES", "LOG_LEVEL", "ROUTES_FILE"} <= listed
    assert not {"SOURCE_PREFIX", "URL_MODE", "CLIENT_TIMEOUT_S", "WARM_UP"} & listed
    assert re.findall(r"^  ([012])  ", done.stdout, re.MULTILINE) == ["0", "1", "2"]


def test_format_comes_from_bytes_not_name(tmp_path):
    disguised = tmp_path / "holiday.jpg"
    disguised.write_bytes(encode(solid(RED, (30, 20)), "PNG"))
    webp_as_gif = tmp_path / "anim.gif"
    webp_as_gif.write_bytes(encode(solid(RED, (30, 20)), "WEBP"))
    out = tmp_path / "out"
    done = cli("process", str(disguised), str(webp_as_gif), "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    first, second = result_lines(done, 2)
    assert first["source"]["format"] == "PNG" and second["source"]["format"] == "WEBP"


def test_same_file_name_in_two_folders_does_not_overwrite(tmp_path):
    for folder, size in (("a", (300, 200)), ("b", (40, 30))):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "photo.png").write_bytes(encode(noise(size, seed=len(folder)), "PNG"))
    out = tmp_path / "out"
    done = cli("process", "a/photo.png", "b/photo.png", "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    first, second = result_lines(done, 2)
    paths = [variant["path"] for line in (first, second) for variant in line["variants"]]
    assert len(set(paths)) == len(paths)
    for line in (first, second):
        assert_success_shape(line, out)


def test_environment_settings_apply(tmp_path):
    (tmp_path / "a.jpg").write_bytes(encode(noise((200, 100)), "JPEG"))
    out = tmp_path / "out"
    done = cli("process", "a.jpg", "--out", str(out), cwd=tmp_path, VARIANTS="small:64", OUTPUT_FORMAT="png")
    assert done.returncode == 0, done.stderr[-2000:]
    (line,) = result_lines(done, 1)
    assert_success_shape(line, out, names=("small",), fmt="png")
    (variant,) = line["variants"]
    assert variant["path"].endswith(".png") and (variant["width"], variant["height"]) == (64, 32)
    assert decode(Path(variant["path"]).read_bytes()).format == "PNG"


def test_byte_limit_from_environment(tmp_path):
    (tmp_path / "a.png").write_bytes(encode(noise((64, 64)), "PNG"))
    done = cli("process", "a.png", "--out", str(tmp_path / "out"), cwd=tmp_path, MAX_INPUT_BYTES="1000")
    assert done.returncode == 1
    (line,) = result_lines(done, 1)
    assert_rejection_shape(line, "too_large")


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("process",),
        ("process", "a.png"),
        ("process", "--out", "out"),
        ("process", "a.png", "--out"),
        ("nonsense", "a.png", "--out", "out"),
        ("process", "a.png", "--out", "out", "--no-such-flag"),
    ],
    ids=["no_command", "no_inputs", "no_out", "only_out", "out_without_dir", "unknown_command", "unknown_flag"],
)
def test_usage_errors_exit_2_with_nothing_on_stdout(tmp_path, args):
    (tmp_path / "a.png").write_bytes(encode(solid(RED), "PNG"))
    done = cli(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize(
    ("variable", "value"),
    [("QUALITY", "abc"), ("VARIANTS", "thumb"), ("OUTPUT_FORMAT", "gif"), ("MAX_PIXELS", "-1")],
)
def test_bad_setting_is_a_clear_usage_error(tmp_path, variable, value):
    (tmp_path / "a.png").write_bytes(encode(solid(RED), "PNG"))
    done = cli("process", "a.png", "--out", str(tmp_path / "out"), cwd=tmp_path, **{variable: value})
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stdout == ""
    assert variable in done.stderr
    assert "Traceback" not in done.stderr


def test_an_unusable_out_folder_is_a_usage_error(tmp_path):
    """--out naming an existing file: exit 2 with a message, nothing on stdout."""
    (tmp_path / "taken").write_text("a file, not a folder")
    (tmp_path / "in.png").write_bytes(encode(solid(RED, (8, 8)), "PNG"))
    completed = cli("process", "in.png", "--out", "taken", cwd=tmp_path)
    assert (completed.returncode, completed.stdout) == (2, "")
    assert "--out" in completed.stderr


def test_several_formats_write_one_file_each_and_list_them(tmp_path, capsys):
    """With more than one encoding, each variant's line describes the primary and lists every file under `formats`."""
    from image_pipeline.commands.process import process_file
    from image_pipeline.options import Encoding, ImagingOptions, OutputFormat, Variant

    source = tmp_path / "photo.png"
    source.write_bytes(encode(noise((200, 100)), "PNG"))
    encodings = (Encoding(OutputFormat.AVIF, 50), Encoding(OutputFormat.WEBP, 80), Encoding(OutputFormat.JPEG, 80))
    imaging = ImagingOptions(variants=(Variant("small", 64),), encodings=encodings)
    (tmp_path / "out").mkdir()
    line = process_file(source, "photo", tmp_path / "out", imaging, partial(make_variants, options=imaging))
    assert json.loads(capsys.readouterr().out) == line
    (variant,) = line["variants"]
    assert [entry["format"] for entry in variant["formats"]] == ["avif", "webp", "jpeg"]
    assert [Path(entry["path"]).name for entry in variant["formats"]] == [
        "photo_small.avif",
        "photo_small.webp",
        "photo_small.jpg",
    ]
    assert {key: variant[key] for key in ("path", "format", "bytes", "contentType")} == variant["formats"][0]
    for entry in variant["formats"]:
        path = Path(entry["path"])
        assert entry["bytes"] == path.stat().st_size and entry["contentType"] == f"image/{entry['format']}"
        assert decode(path.read_bytes()).size == (variant["width"], variant["height"]) == (64, 32)


def test_one_format_keeps_the_line_as_it_was(tmp_path, capsys):
    from image_pipeline.commands.process import process_file
    from image_pipeline.options import ImagingOptions, Variant

    source = tmp_path / "photo.png"
    source.write_bytes(encode(noise((200, 100)), "PNG"))
    small = ImagingOptions(variants=(Variant("s", 64),))
    line = process_file(source, "photo", tmp_path, small, partial(make_variants, options=small))
    capsys.readouterr()
    (variant,) = line["variants"]
    assert list(variant) == ["name", "path", "format", "width", "height", "bytes", "contentType"]
    assert (variant["name"], variant["format"], variant["contentType"]) == ("s", "webp", "image/webp")
    assert variant["path"] == str(tmp_path / "photo_s.webp")
