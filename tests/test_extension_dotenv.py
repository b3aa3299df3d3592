"""extension/dotenv.py: .env files read as firebase-tools reads them (spec 11), firebase.json's `extensions` section,
an instance's params files and the project values `${param:PROJECT_ID}` and its kin stand for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from image_pipeline.errors import ConfigurationError, UsageError
from image_pipeline.extension.dotenv import (
    ManifestEntry,
    instance_params,
    manifest_entries,
    parse_env,
    project_references,
    project_values,
    read_env_file,
    substitute,
    version_tuple,
)

# What `firebase ext:export` writes: sorted KEY=value lines, the location system param, the event settings.
EXPORTED = """\
ALLOWED_EVENT_TYPES=firebase.extensions.storage-resize-images.v1.onSuccess,firebase.extensions.storage-resize-images.v1.onError
DELETE_ORIGINAL_FILE=false
EVENTARC_CHANNEL=projects/${param:PROJECT_ID}/locations/us-central1/channels/firebase
FUNCTION_MEMORY=1024
IMAGE_TYPE=webp
IMG_BUCKET=${param:PROJECT_ID}.appspot.com
IMG_SIZES=200x200,400x400
IS_ANIMATED=true
MAKE_PUBLIC=false
REGENERATE_TOKEN=true
RESIZED_IMAGES_PATH=thumbnails
firebaseextensions.v1beta.function/location=us-central1"""

# The extension's own emulator configuration (_emulator/extensions/storage-resize-images.env.local, spec 12.7).
EMULATOR = """\
IMG_SIZES=300x300
RESIZED_IMAGES_PATH=thumbnails
FAILED_IMAGES_PATH=failed
IMAGE_TYPE=webp
DELETE_ORIGINAL_FILE=true
MAKE_PUBLIC=true
IS_ANIMATED=true
REGENERATE_TOKEN=true
SHARP_OPTIONS='{"fit":"cover", "position": "top", "animated": false}'
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("KEY=value", {"KEY": "value"}, id="plain"),
        pytest.param("export KEY=value\n", {"KEY": "value"}, id="export"),
        pytest.param("  export\tKEY = value  \n", {"KEY": "value"}, id="spaces around"),
        pytest.param("export=1", {"export": "1"}, id="a key named export"),
        pytest.param("KEY=", {"KEY": ""}, id="empty"),
        pytest.param("KEY=a b  c ", {"KEY": "a b  c"}, id="unquoted, trimmed"),
        pytest.param("KEY=value # a comment", {"KEY": "value"}, id="comment after an unquoted value"),
        pytest.param("KEY=a#b", {"KEY": "a"}, id="an unquoted value stops at #"),
        pytest.param("# a comment\n\n   \nKEY=v\n  # indented comment", {"KEY": "v"}, id="comments and blanks"),
        pytest.param("KEY='a # b'", {"KEY": "a # b"}, id="single quotes keep #"),
        pytest.param(r"KEY='a\nb'", {"KEY": r"a\nb"}, id="single quotes are literal"),
        pytest.param(r"KEY='it\'s'", {"KEY": r"it\'s"}, id="an escaped single quote does not close"),
        pytest.param("KEY='line 1\nline 2'", {"KEY": "line 1\nline 2"}, id="single quotes across lines"),
        pytest.param(r'KEY="a\nb\tc\rd\ve"', {"KEY": "a\nb\tc\rd\ve"}, id="double-quote escapes"),
        pytest.param(r'KEY="say \"hi\" it\'s \\ ok"', {"KEY": "say \"hi\" it's \\ ok"}, id="escaped quotes"),
        pytest.param(r'KEY="C:\dir\x"', {"KEY": r"C:\dir\x"}, id="unknown escapes stay"),
        pytest.param(r'KEY="ends with \\"', {"KEY": "ends with \\"}, id="an escaped backslash before the quote"),
        pytest.param('KEY="line 1\nline 2"\nNEXT=2', {"KEY": "line 1\nline 2", "NEXT": "2"}, id="multi-line"),
        pytest.param('KEY="a" # comment', {"KEY": "a"}, id="comment after quotes"),
        pytest.param('KEY=  "a"  ', {"KEY": "a"}, id="spaces around quotes"),
        pytest.param("KEY=1\nKEY=2", {"KEY": "2"}, id="the later wins"),
        pytest.param("A=1\r\nB=2\r\n", {"A": "1", "B": "2"}, id="CRLF"),
        pytest.param("firebaseextensions.v1beta.function/location=europe-west1",
                     {"firebaseextensions.v1beta.function/location": "europe-west1"}, id="a system param"),
        pytest.param("""SHARP_OPTIONS='{"fit":"cover", "position": "top", "animated": false}'""",
                     {"SHARP_OPTIONS": '{"fit":"cover", "position": "top", "animated": false}'}, id="JSON"),
    ],
)  # fmt: skip
def test_parse_env(text: str, expected: dict[str, str]) -> None:
    assert parse_env(text, "x.env") == expected


def test_an_ext_export_file() -> None:
    values = parse_env(EXPORTED, "storage-resize-images.env")
    assert list(values) == sorted(values)
    assert values["firebaseextensions.v1beta.function/location"] == "us-central1"
    assert values["EVENTARC_CHANNEL"] == "projects/${param:PROJECT_ID}/locations/us-central1/channels/firebase"
    assert values["ALLOWED_EVENT_TYPES"].split(",") == [
        "firebase.extensions.storage-resize-images.v1.onSuccess",
        "firebase.extensions.storage-resize-images.v1.onError",
    ]
    assert len(values) == 12


def test_the_emulator_env() -> None:
    values = parse_env(EMULATOR, "storage-resize-images.env.local")
    assert values["SHARP_OPTIONS"] == '{"fit":"cover", "position": "top", "animated": false}'
    assert json.loads(values["SHARP_OPTIONS"]) == {"fit": "cover", "position": "top", "animated": False}
    assert (values["IMG_SIZES"], values["DELETE_ORIGINAL_FILE"], values["FAILED_IMAGES_PATH"]) == (
        "300x300",
        "true",
        "failed",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("A=1\nnot an assignment\n", "x.env: line 2: not KEY=value: 'not an assignment'"),
        ("A=1\nKEY-WITH-DASH=1", "x.env: line 2: not KEY=value: 'KEY-WITH-DASH=1'"),
        ('A=1\n\nB="never closed\nC=3', 'x.env: line 3: the " quote is never closed'),
        ("A='never closed", "x.env: line 1: the ' quote is never closed"),
        ('A="a" b', "x.env: line 1: text after the closing \" quote: 'b'"),
        ("A='a'b", "x.env: line 1: text after the closing ' quote: 'b'"),
    ],
)
def test_lines_it_cannot_read_are_refused_naming_the_file_and_line(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse_env(text, "x.env")
    assert str(raised.value) == message


def test_reading_a_file(tmp_path: Path) -> None:
    path = tmp_path / "x.env"
    path.write_text(EMULATOR)
    assert read_env_file(path)["IMAGE_TYPE"] == "webp"
    with pytest.raises(UsageError, match=r"missing\.env: cannot read it: No such file or directory"):
        read_env_file(tmp_path / "missing.env")
    path.write_bytes(b"A=\xff\n")
    with pytest.raises(ConfigurationError, match=r"x\.env: not UTF-8 text"):
        read_env_file(path)


# ---------------------------------------------------------------------------------------------------------------------
# firebase.json


def write_firebase_json(folder: Path, extensions: object) -> Path:
    path = folder / "firebase.json"
    path.write_text(json.dumps({"storage": {"rules": "storage.rules"}, "extensions": extensions}))
    return path


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("firebase/storage-resize-images@0.3.3", (True, "0.3.3")),
        ("firebase/storage-resize-images@^0.2.0", (True, "^0.2.0")),
        ("firebase/storage-resize-images@latest", (True, "latest")),
        ("firebase/storage-resize-images", (True, None)),
        ("firebase/firestore-bigquery-export@0.1.50", (False, "0.1.50")),
        ("someone/storage-resize-images@1.0.0", (False, "1.0.0")),
        ("not a ref", (False, None)),
    ],
)
def test_refs(tmp_path: Path, source: str, expected: tuple[bool, str | None]) -> None:
    assert ManifestEntry("x", source, tmp_path).resize_images_version() == expected


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            "# Copyright\nname: storage-resize-images\nversion: 0.3.3  # released\nparams:\n  - param: X\n",
            (True, "0.3.3"),
        ),
        ("name: firestore-send-email\nversion: 0.1.0\n", (False, "0.1.0")),
        ("resources:\n  - name: storage-resize-images\n", (False, None)),
        (None, (False, None)),
    ],
)
def test_local_sources_are_read_from_their_extension_yaml(tmp_path: Path, spec: str | None, expected) -> None:
    folder = tmp_path / "extension"
    folder.mkdir()
    if spec is not None:
        (folder / "extension.yaml").write_text(spec)
    project = tmp_path / "project"
    project.mkdir()
    entry = ManifestEntry("resize", "../extension", project)
    assert entry.is_local
    assert entry.resize_images_version() == expected


@pytest.mark.parametrize("source", [".", "..", "./x", "../x", "/abs/x", "~/x"])
def test_local_paths_are_recognised_as_firebase_tools_does(tmp_path: Path, source: str) -> None:
    assert ManifestEntry("x", source, tmp_path).is_local


def test_manifest_entries_in_file_order(tmp_path: Path) -> None:
    path = write_firebase_json(
        tmp_path, {"resize": "firebase/storage-resize-images@0.3.3", "bq": "firebase/firestore-bigquery-export@0.1.50"}
    )
    assert manifest_entries(path) == (
        ManifestEntry("resize", "firebase/storage-resize-images@0.3.3", tmp_path),
        ManifestEntry("bq", "firebase/firestore-bigquery-export@0.1.50", tmp_path),
    )


def test_a_firebase_json_without_extensions_lists_none(tmp_path: Path) -> None:
    path = tmp_path / "firebase.json"
    path.write_text('{"hosting": {}}')
    assert manifest_entries(path) == ()


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("{", ConfigurationError, "firebase.json: not valid JSON: "),
        ('{"extensions": ["x"]}', ConfigurationError, 'firebase.json: "extensions" must map instance ids'),
        ('{"extensions": {"x": 1}}', ConfigurationError, 'firebase.json: "extensions" must map instance ids'),
        (None, UsageError, "firebase.json: cannot read it: "),
    ],
)
def test_a_firebase_json_it_cannot_use(tmp_path: Path, text: str | None, error: type[Exception], message: str) -> None:
    path = tmp_path / "firebase.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(error) as raised:
        manifest_entries(path)
    assert str(raised.value).startswith(f"{tmp_path}/{message}")


@pytest.mark.parametrize(
    ("version", "expected"),
    [("0.3.3", (0, 3, 3)), ("0.2.10", (0, 2, 10)), ("^0.2.0", None), ("latest", None), (None, None), ("1.0", None)],
)
def test_version_tuple(version: str | None, expected) -> None:
    assert version_tuple(version) == expected


# ---------------------------------------------------------------------------------------------------------------------
# An instance's params files


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "extensions").mkdir()
    (tmp_path / "extensions" / "resize.env").write_text("IMG_SIZES=200x200\nIMAGE_TYPE=webp\nMAKE_PUBLIC=false\n")
    (tmp_path / "extensions" / "resize.env.demo-x").write_text("IMAGE_TYPE=avif\nCACHE_CONTROL_HEADER=max-age=60\n")
    # firebase-tools reads these too, in some modes; this reader does not (see instance_params).
    (tmp_path / "extensions" / "resize.env.local").write_text("IMAGE_TYPE=png\n")
    (tmp_path / "extensions" / "resize.env.staging").write_text("IMAGE_TYPE=jpeg\n")
    return tmp_path


def test_the_project_s_file_overrides_key_by_key(project: Path) -> None:
    params = instance_params(project, "resize", "demo-x")
    folder = project / "extensions"
    assert params.values == {
        "IMG_SIZES": "200x200",
        "IMAGE_TYPE": "avif",
        "MAKE_PUBLIC": "false",
        "CACHE_CONTROL_HEADER": "max-age=60",
    }
    assert params.origins["IMAGE_TYPE"] == folder / "resize.env.demo-x"
    assert params.origins["IMG_SIZES"] == folder / "resize.env"
    assert params.files == (folder / "resize.env", folder / "resize.env.demo-x")


@pytest.mark.parametrize("project_id", [None, "other-project"])
def test_without_the_project_s_file_only_the_env_is_read(project: Path, project_id: str | None) -> None:
    params = instance_params(project, "resize", project_id)
    assert params.values == {"IMG_SIZES": "200x200", "IMAGE_TYPE": "webp", "MAKE_PUBLIC": "false"}
    assert params.files == (project / "extensions" / "resize.env",)


def test_the_project_s_file_alone_is_enough(project: Path) -> None:
    (project / "extensions" / "resize.env").unlink()
    assert instance_params(project, "resize", "demo-x").values == {
        "IMAGE_TYPE": "avif",
        "CACHE_CONTROL_HEADER": "max-age=60",
    }


def test_an_instance_without_a_params_file(project: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"no params file for instance 'other': .*other\.env does not exist"):
        instance_params(project, "other", "demo-x")


# ---------------------------------------------------------------------------------------------------------------------
# ${param:PROJECT_ID} and its kin


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("${param:PROJECT_ID}.appspot.com", "demo-x.appspot.com"),
        ("${PROJECT_ID}.appspot.com", "demo-x.appspot.com"),
        ("projects/${param:PROJECT_ID}/channels/${PROJECT_ID}", "projects/demo-x/channels/demo-x"),
        ("${STORAGE_BUCKET}", "demo-x.appspot.com"),
        ("${param:DATABASE_URL}", "https://demo-x.firebaseio.com"),
        ("${param:DATABASE_INSTANCE}", "demo-x"),
        ("${param:FIREBASE_CONFIG}", '{"projectId":"demo-x","databaseURL":"https://demo-x.firebaseio.com","storageBucket":"demo-x.appspot.com"}'),
        ("${param:IMG_SIZES}", "${param:IMG_SIZES}"),
        ("${param:EXT_INSTANCE_ID}", "${param:EXT_INSTANCE_ID}"),
        ("${param:PROJECT_NUMBER}", "${param:PROJECT_NUMBER}"),
        ("$PROJECT_ID", "$PROJECT_ID"),
    ],
)  # fmt: skip
def test_substitute(value: str, expected: str) -> None:
    assert substitute(value, project_values("demo-x")) == expected


def test_project_references() -> None:
    values = {
        "IMG_BUCKET": "${param:PROJECT_ID}.appspot.com",
        "EVENTARC_CHANNEL": "projects/${PROJECT_NUMBER}/channels/${param:PROJECT_ID}",
        "IMG_SIZES": "${param:IMG_SIZES}",
        "IMAGE_TYPE": "webp",
    }
    assert project_references(values) == {
        "IMG_BUCKET": ("PROJECT_ID",),
        "EVENTARC_CHANNEL": ("PROJECT_NUMBER", "PROJECT_ID"),
    }
