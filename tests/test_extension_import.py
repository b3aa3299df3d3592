"""`routes import-extension`: a Resize Images instance's .env (or firebase.json's instances) as a routes file, through
the CLI's own entry point: the TOML it prints (parsed back with tomllib), the deploy.sh flags it comments, its exit
codes and its one-line errors."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from image_pipeline.__main__ import main
from image_pipeline.extension.dotenv import parse_env
from image_pipeline.extension.params import PARAMS, ExtensionParams, ParamKind
from tests.test_extension_dotenv import EMULATOR, EXPORTED
from tests.test_settings_registry import run_with_stdlib_only

ROOT = Path(__file__).resolve().parent.parent
ERROR = "python -m image_pipeline routes: error: "
ON_SUCCESS = "firebase.extensions.storage-resize-images.v1.onSuccess"
DEPLOYMENT = {param.name for param in PARAMS if param.kind is ParamKind.DEPLOYMENT}
# The parameters every extension route spells, set or not, with extension.yaml's declared defaults.
WRITTEN_DEFAULTS = {
    param.name: param.default for param in PARAMS if param.kind in (ParamKind.BEHAVIOUR, ParamKind.UNSUPPORTED)
}
# firebase-tools' own emulator test of this extension (scripts/extensions-emulator-tests, spec 7.4).
FIREBASE_TOOLS_TEST = """\
IMG_BUCKET=${param:PROJECT_ID}.appspot.com
EVENTARC_CHANNEL=projects/${param:PROJECT_ID}/locations/us-west1/channels/firebase
ALLOWED_EVENT_TYPES=firebase.extensions.storage-resize-images.v1.complete
"""


@pytest.fixture(autouse=True)
def no_project_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["routes", "import-extension", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def imported(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[list[dict[str, Any]], str]:
    """The routes printed, parsed back, and the text; the command must have succeeded quietly."""
    code, out, err = run(capsys, *argv)
    assert (code, err) == (0, "")
    return tomllib.loads(out)["route"], out


def refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The one line a refused import prints, without its prefix."""
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert err.startswith(ERROR) and err.count("\n") == 1
    return err.removeprefix(ERROR).rstrip("\n")


def env_file(folder: Path, text: str, name: str = "storage-resize-images.env") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def parameters(route: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in route.items() if key not in ("name", "extension")}


def comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if line.startswith("#"))


def project(folder: Path, extensions: dict[str, str], env_files: dict[str, str]) -> Path:
    (folder / "extensions").mkdir()
    for name, text in env_files.items():
        (folder / "extensions" / name).write_text(text)
    path = folder / "firebase.json"
    path.write_text(json.dumps({"extensions": extensions}))
    return path


# ---------------------------------------------------------------------------------------------------------------------
# One .env


def test_an_ext_export_file_becomes_one_route(capsys, tmp_path: Path) -> None:
    path = env_file(tmp_path, EXPORTED)
    (route,), text = imported(capsys, str(path), "--project", "demo-x")
    assert (route["name"], route["extension"]) == ("storage-resize-images", "storage-resize-images")
    assert route["EVENTARC_CHANNEL"] == "projects/demo-x/locations/us-central1/channels/firebase"
    assert route["ALLOWED_EVENT_TYPES"] == f"{ON_SUCCESS},firebase.extensions.storage-resize-images.v1.onError"
    assert (route["IMG_SIZES"], route["IMAGE_TYPE"], route["RESIZED_IMAGES_PATH"]) == (
        "200x200,400x400",
        "webp",
        "thumbnails",
    )
    assert not DEPLOYMENT & set(route)
    deploy_line = "./deploy.sh --project demo-x --bucket demo-x.appspot.com --memory 1Gi --region us-central1"
    assert f"#   ROUTES_FILE=routes.toml {deploy_line}\n" in text


def test_every_parameter_the_file_sets_is_a_route_key_or_explained(capsys, tmp_path: Path) -> None:
    path = env_file(tmp_path, EXPORTED + "\nDO_BACKFILL=true\nBACKFILL_BATCH_SIZE=3\nLOCATION=us-central1\n")
    (route,), text = imported(capsys, str(path), "--project", "demo-x")
    keys = parse_env(path.read_text(), "x.env")
    assert len(keys) == 15
    for key in keys:
        assert key in route or f"\n#   {key}=" in comments(text), key


def test_the_route_reads_back_as_the_file_s_parameters(capsys, tmp_path: Path) -> None:
    path = env_file(tmp_path, EMULATOR)
    (route,), _ = imported(capsys, str(path))
    from_route = ExtensionParams.from_mapping(parameters(route))
    assert from_route == ExtensionParams.from_mapping(parse_env(EMULATOR, "emulator.env"))
    assert route["SHARP_OPTIONS"] == '{"fit":"cover", "position": "top", "animated": false}'
    assert (from_route.delete_original.value, from_route.fit.value, from_route.position.value) == (
        "always",
        "cover",
        "north",
    )


@pytest.mark.parametrize(("name", "default"), WRITTEN_DEFAULTS.items())
def test_unset_parameters_are_written_with_extension_yaml_s_declared_default(capsys, tmp_path, name, default) -> None:
    path = env_file(tmp_path, "IMG_SIZES=\n" if name != "IMG_SIZES" else "IMAGE_TYPE=webp\n")
    (route,), text = imported(capsys, str(path))
    assert route[name] == default
    assert f"{name} = {json.dumps(default)}  # extension.yaml's default\n" in text


def test_only_the_event_settings_given_are_written(capsys, tmp_path: Path) -> None:
    (route,), _ = imported(capsys, str(env_file(tmp_path, "IMG_SIZES=100x100\n")))
    assert set(parameters(route)) == set(WRITTEN_DEFAULTS)
    path = env_file(tmp_path, "EVENTARC_CHANNEL=firebase\nEXT_SELECTED_EVENTS=\nEVENTARC_CLOUD_EVENT_SOURCE=s\n")
    (route,), _ = imported(capsys, str(path))
    assert (route["EVENTARC_CHANNEL"], route["EXT_SELECTED_EVENTS"], route["EVENTARC_CLOUD_EVENT_SOURCE"]) == (
        "firebase",
        "",
        "s",
    )
    assert ExtensionParams.from_mapping(parameters(route)).events.types == ()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"max-age=60, \\"quoted\\" \\\\ back"', 'max-age=60, "quoted" \\ back'),
        ("'pâté/漢字'", "pâté/漢字"),
        ("'a # b'", "a # b"),
    ],
)
def test_values_survive_toml(capsys, tmp_path: Path, value: str, expected: str) -> None:
    (route,), _ = imported(capsys, str(env_file(tmp_path, f"RESIZED_IMAGES_PATH={value}\n")))
    assert route["RESIZED_IMAGES_PATH"] == expected


def test_a_placeholder_path_is_kept_with_a_note(capsys, tmp_path: Path) -> None:
    (route,), text = imported(capsys, str(env_file(tmp_path, "PLACEHOLDER_IMAGE_PATH=p/blocked.png\n")))
    assert route["PLACEHOLDER_IMAGE_PATH"] == "p/blocked.png"
    assert 'PLACEHOLDER_IMAGE_PATH = "p/blocked.png"  # no effect: the content filter is off\n' in text


def test_event_types_without_a_channel_are_noted(capsys, tmp_path: Path) -> None:
    _, text = imported(capsys, str(env_file(tmp_path, f"ALLOWED_EVENT_TYPES={ON_SUCCESS}\n")))
    assert f'ALLOWED_EVENT_TYPES = "{ON_SUCCESS}"  # no event is published without EVENTARC_CHANNEL\n' in text


# ---------------------------------------------------------------------------------------------------------------------
# Refusals: one line, exit 2


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("CONTENT_FILTER_LEVEL=BLOCK_ONLY_HIGH", "CONTENT_FILTER_LEVEL='BLOCK_ONLY_HIGH' has no counterpart here: "),
        ("CONTENT_FILTER_LEVEL=BLOCK_LOW_AND_ABOVE", "CONTENT_FILTER_LEVEL='BLOCK_LOW_AND_ABOVE' has no counterpart "),
        ('CUSTOM_FILTER_PROMPT="Does this image\\ncontain a cat?"', "CUSTOM_FILTER_PROMPT='Does this image\\ncontain"),
        ("IMG_SIZES=200x200, 400x400", "IMG_SIZES takes comma-separated WIDTHxHEIGHT boxes"),
        ("FUNCTION_MEMORY=1000", "FUNCTION_MEMORY takes 512, 1024, 2048, 4096 or 8192; got '1000'"),
        ('SHARP_OPTIONS={"fit": "fill"}', 'SHARP_OPTIONS: fit "fill" has no counterpart here'),
        ('OUTPUT_OPTIONS={"png": {"palette": true}}', "OUTPUT_OPTIONS: png.palette true has no counterpart here"),
        ("IMG_SIZE=200x200", "'IMG_SIZE' is not a parameter of the Resize Images extension"),
    ],
)
def test_a_parameter_without_a_counterpart_is_one_line_naming_it(capsys, tmp_path, line: str, message: str) -> None:
    path = env_file(tmp_path, f"IMG_BUCKET=b\n{line}\n")
    assert refused(capsys, str(path)).startswith(f"{path}: {message}")


def test_the_content_filter_refusal_says_why(capsys, tmp_path: Path) -> None:
    error = refused(capsys, str(env_file(tmp_path, "CONTENT_FILTER_LEVEL=BLOCK_MEDIUM_AND_ABOVE\n")))
    assert "Gemini" in error and error.endswith("this pipeline has no content filter, so only OFF is accepted")


def test_a_bad_line_names_the_file_and_line(capsys, tmp_path: Path) -> None:
    path = env_file(tmp_path, "IMG_SIZES=200x200\nthis is not a setting\n")
    assert refused(capsys, str(path)) == f"{path}: line 2: not KEY=value: 'this is not a setting'"


def test_a_missing_file(capsys, tmp_path: Path) -> None:
    assert (
        refused(capsys, str(tmp_path / "x.env")) == f"{tmp_path / 'x.env'}: cannot read it: No such file or directory"
    )


# ---------------------------------------------------------------------------------------------------------------------
# ${param:PROJECT_ID}


def test_project_references_need_a_project(capsys, tmp_path: Path) -> None:
    path = env_file(tmp_path, "IMG_BUCKET=${param:PROJECT_ID}.appspot.com\n")
    assert refused(capsys, str(path)) == (
        f"{path}: IMG_BUCKET refers to the project's PROJECT_ID (${{param:PROJECT_ID}}): "
        "give --project ID or set GOOGLE_CLOUD_PROJECT"
    )


@pytest.mark.parametrize(
    ("argv", "environment", "bucket"),
    [
        (["--project", "flag-x"], None, "flag-x.appspot.com"),
        ([], "env-x", "env-x.appspot.com"),
        (["--project", "flag-x"], "env-x", "flag-x.appspot.com"),
    ],
)
def test_the_project_comes_from_the_flag_then_the_environment(capsys, monkeypatch, tmp_path, argv, environment, bucket):
    if environment:
        monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", environment)
    path = env_file(tmp_path, "IMG_BUCKET=${PROJECT_ID}.appspot.com\n")
    _, text = imported(capsys, str(path), *argv)
    assert f"#   IMG_BUCKET={bucket}: --bucket {bucket}\n" in text


def test_a_file_without_references_needs_no_project(capsys, tmp_path: Path) -> None:
    imported(capsys, str(env_file(tmp_path, "IMG_BUCKET=my-bucket\n")))


def test_the_project_number_cannot_be_looked_up(capsys, tmp_path: Path) -> None:
    path = env_file(tmp_path, "IMG_BUCKET=b-${param:PROJECT_NUMBER}\n")
    assert refused(capsys, str(path), "--project", "demo-x").startswith(
        f"{path}: IMG_BUCKET refers to the project number (${{param:PROJECT_NUMBER}}), which only an API call"
    )


# ---------------------------------------------------------------------------------------------------------------------
# The route's name


@pytest.mark.parametrize(
    ("file_name", "argv", "name"),
    [
        ("storage-resize-images.env", [], "storage-resize-images"),
        ("thumbs.env.demo-x", [], "thumbs"),
        ("storage-resize-images.env", ["--instance-id", "avatars"], "avatars"),
    ],
)
def test_the_route_is_named_after_the_instance(capsys, tmp_path, file_name: str, argv: list[str], name: str) -> None:
    (route,), text = imported(capsys, str(env_file(tmp_path, "IMG_SIZES=64x64\n", file_name)), *argv)
    assert route["name"] == name
    assert f"# Instance {name!r}, from " in text


@pytest.mark.parametrize(
    ("file_name", "argv", "problem"),
    [
        ("Resize_Images.env", [], "'Resize_Images' (from the file name Resize_Images.env)"),
        (".env", [], "'' (from the file name .env)"),
        ("x.env", ["--instance-id", "a" * 33], f"'{'a' * 33}' (given with --instance-id)"),
    ],
)
def test_an_instance_id_that_cannot_name_a_route_is_refused_with_a_suggestion(
    capsys, tmp_path, file_name, argv, problem
):
    suggestion = {"Resize_Images.env": "resize-images", ".env": "storage-resize-images", "x.env": "a" * 32}[file_name]
    error = refused(capsys, str(env_file(tmp_path, "IMG_SIZES=64x64\n", file_name)), *argv)
    assert error == (
        f"the instance id {problem} cannot name a route (1-32 of a-z 0-9 -): give --instance-id {suggestion}"
    )


# ---------------------------------------------------------------------------------------------------------------------
# Deployment parameters: deploy.sh's flags


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ("FUNCTION_MEMORY=512", "#   FUNCTION_MEMORY=512: --memory 512Mi"),
        ("FUNCTION_MEMORY=8192", "#   FUNCTION_MEMORY=8192: --memory 8Gi"),
        ("LOCATION=europe-west1", "#   LOCATION=europe-west1: --region europe-west1"),
        ("firebaseextensions.v1beta.function/timeoutSeconds=120",
         "#   firebaseextensions.v1beta.function/timeoutSeconds=120: --timeout 120s"),
        ("firebaseextensions.v1beta.function/minInstances=0",
         "#   firebaseextensions.v1beta.function/minInstances=0: --min-instances 0"),
        ("firebaseextensions.v1beta.function/maxInstances=3000",
         "#   firebaseextensions.v1beta.function/maxInstances=3000: --max-instances 3000"),
        ("firebaseextensions.v1beta.function/labels=team:web",
         "#   firebaseextensions.v1beta.function/labels=team:web: deploy.sh has no flag for it"),
        ("DO_BACKFILL=true",
         "#   DO_BACKFILL=true: after deploying, BUCKET=b python -m image_pipeline backfill --route "
         "storage-resize-images"),
        ("DO_BACKFILL=false", "#   DO_BACKFILL=false: nothing to do"),
        ("BACKFILL_BATCH_SIZE=10", "#   BACKFILL_BATCH_SIZE=10: not needed; the backfill pages through the bucket"),
        ("FUNCTION_MEMORY=1024\nfirebaseextensions.v1beta.function/memory=4096",
         "#   ROUTES_FILE=routes.toml ./deploy.sh --bucket b --memory 4Gi\n"),
        ("LOCATION=us-east1\nfirebaseextensions.v1beta.function/location=europe-west1",
         "#   ROUTES_FILE=routes.toml ./deploy.sh --bucket b --region europe-west1\n"),
    ],
)  # fmt: skip
def test_deployment_parameters_become_deploy_sh_flags(capsys, tmp_path: Path, lines: str, expected: str) -> None:
    (route,), text = imported(capsys, str(env_file(tmp_path, f"IMG_BUCKET=b\n{lines}\n")))
    assert expected in comments(text) + "\n"
    assert not DEPLOYMENT & set(route)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], "#   IMG_BUCKET unset: extension.yaml's default ${STORAGE_BUCKET}, your project's default bucket: "
             "--bucket BUCKET"),
        (["--project", "demo-x"], "#   IMG_BUCKET unset: extension.yaml's default ${STORAGE_BUCKET}, here "
         "firebase-tools' fallback name (newer projects' default bucket is demo-x.firebasestorage.app): "
         "--bucket demo-x.appspot.com"),
    ],
)  # fmt: skip
def test_deploy_sh_needs_a_bucket_even_when_the_file_names_none(capsys, tmp_path, argv, expected) -> None:
    _, text = imported(capsys, str(env_file(tmp_path, "IMG_SIZES=64x64\n")), *argv)
    assert expected in comments(text).splitlines()


# ---------------------------------------------------------------------------------------------------------------------
# --firebase-json


def test_every_resize_images_instance_of_firebase_json_is_imported(capsys, tmp_path: Path) -> None:
    path = project(
        tmp_path,
        {
            "storage-resize-images": "firebase/storage-resize-images@0.3.3",
            "bq": "firebase/firestore-bigquery-export@0.1.50",
            "thumbs": "firebase/storage-resize-images@0.3.2",
        },
        {"storage-resize-images.env": EXPORTED, "thumbs.env": "IMG_SIZES=64x64\nIMG_BUCKET=thumbs-bucket\n"},
    )
    routes, text = imported(capsys, "--firebase-json", str(path), "--project", "demo-x")
    assert [route["name"] for route in routes] == ["storage-resize-images", "thumbs"]
    assert (
        "# Skipped: instance 'bq' (firebase/firestore-bigquery-export@0.1.50) is not storage-resize-images.\n" in text
    )
    assert "# These instances watch different buckets: deploy one function per bucket, each with its routes.\n" in text
    assert "# Events:" not in text
    assert (
        f"# Instance 'thumbs' (firebase/storage-resize-images@0.3.2), from {tmp_path}/extensions/thumbs.env\n" in text
    )


def test_text_from_firebase_json_cannot_break_the_toml(capsys, tmp_path: Path) -> None:
    path = project(
        tmp_path,
        {"resize": "firebase/storage-resize-images@0.3.3", "odd": "./x\n[[route]]\nname = 'injected'"},
        {"resize.env": ""},
    )
    routes, text = imported(capsys, "--firebase-json", str(path))
    assert [route["name"] for route in routes] == ["resize"]
    assert "# Skipped: \"instance 'odd' (./x\\n[[route]]\\nname = 'injected') is not storage-resize-images\"." in text


def test_firebase_tools_own_emulator_test_instance(capsys, tmp_path: Path) -> None:
    path = project(
        tmp_path, {"resize-images": "firebase/storage-resize-images@0.1.28"}, {"resize-images.env": FIREBASE_TOOLS_TEST}
    )
    (route,), text = imported(capsys, "--firebase-json", str(path), "--project", "demo-x")
    assert route["name"] == "resize-images"
    assert route["EVENTARC_CHANNEL"] == "projects/demo-x/locations/us-west1/channels/firebase"
    assert (
        'ALLOWED_EVENT_TYPES = "firebase.extensions.storage-resize-images.v1.complete"  # '
        "firebase.extensions.storage-resize-images.v1.complete is not published since 0.2.1: onSuccess replaced it\n"
    ) in text
    assert "#   ROUTES_FILE=routes.toml ./deploy.sh --project demo-x --bucket demo-x.appspot.com\n" in text


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("0.3.3", []),
        ("0.3.1", []),
        ("0.3.0", ["predates 0.3.1", "onStart", "onStartResize"]),
        ("0.2.5", ["predates 0.3.1", "onStart", "onStartResize", "{status, value}"]),
        ("0.1.28", ["predates 0.3.1", "onStart", "onStartResize", "{status, value}", "`complete`"]),
        ("^0.2.0", ["version '^0.2.0' is not an exact one", "onStartResize", "{status, value}", "`complete`"]),
        (None, ["no version is given", "onStartResize", "`complete`"]),
    ],
)
def test_an_instance_older_than_0_3_1_says_what_changed_in_events(capsys, tmp_path, version, expected) -> None:
    ref = "firebase/storage-resize-images" + (f"@{version}" if version else "")
    path = project(tmp_path, {"resize": ref}, {"resize.env": "IMG_SIZES=64x64\n"})
    _, text = imported(capsys, "--firebase-json", str(path))
    events = [line for line in comments(text).splitlines() if line.startswith(("# Events:", "#   - "))]
    assert all(any(part in line for line in events) for part in expected)
    assert bool(events) == bool(expected)


def test_the_project_s_params_file_is_read_over_the_instance_s_with_project(capsys, tmp_path: Path) -> None:
    path = project(
        tmp_path,
        {"resize": "firebase/storage-resize-images@0.3.3"},
        {"resize.env": "IMG_SIZES=64x64\nIMAGE_TYPE=webp\n", "resize.env.demo-x": "IMAGE_TYPE=avif\n"},
    )
    (route,), text = imported(capsys, "--firebase-json", str(path), "--project", "demo-x")
    assert (route["IMG_SIZES"], route["IMAGE_TYPE"]) == ("64x64", "avif")
    assert f"from {tmp_path}/extensions/resize.env, {tmp_path}/extensions/resize.env.demo-x\n" in text
    (route,), _ = imported(capsys, "--firebase-json", str(path))
    assert route["IMAGE_TYPE"] == "webp"


def test_an_error_names_the_file_that_set_the_parameter(capsys, tmp_path: Path) -> None:
    path = project(
        tmp_path,
        {"resize": "firebase/storage-resize-images@0.3.3"},
        {"resize.env": "IMG_SIZES=64x64\n", "resize.env.demo-x": "CONTENT_FILTER_LEVEL=BLOCK_ONLY_HIGH\n"},
    )
    error = refused(capsys, "--firebase-json", str(path), "--project", "demo-x")
    assert error.startswith(f"{tmp_path}/extensions/resize.env.demo-x: CONTENT_FILTER_LEVEL='BLOCK_ONLY_HIGH' ")


def test_a_local_extension_is_imported_with_its_own_version(capsys, tmp_path: Path) -> None:
    (tmp_path / "storage-resize-images").mkdir()
    (tmp_path / "storage-resize-images" / "extension.yaml").write_text("name: storage-resize-images\nversion: 0.2.8\n")
    (tmp_path / "app").mkdir()
    path = project(tmp_path / "app", {"resize": "../storage-resize-images"}, {"resize.env": "IMG_SIZES=64x64\n"})
    (route,), text = imported(capsys, "--firebase-json", str(path))
    assert route["name"] == "resize"
    assert "# Instance 'resize' (../storage-resize-images), from " in text
    assert "# Events: version 0.2.8 predates 0.3.1;" in text


@pytest.mark.parametrize(
    ("extensions", "argv", "message"),
    [
        ({"bq": "firebase/firestore-bigquery-export@0.1.50"}, [],
         'no storage-resize-images instance in "extensions" (instances: bq)'),
        ({}, [], 'no storage-resize-images instance in "extensions" (instances: none)'),
        ({"c": "firebase/storage-resize-images@0.3.3"}, [],
         "no params file for instance 'c': {folder}/extensions/c.env does not exist"),
        ({"a": "firebase/storage-resize-images@0.3.3", "b": "firebase/storage-resize-images@0.3.3"},
         ["--instance-id", "c"],
         "--instance-id names one route, and {path} lists 2 storage-resize-images instances (a, b)"),
    ],
)  # fmt: skip
def test_firebase_json_refusals(capsys, tmp_path: Path, extensions, argv, message: str) -> None:
    path = project(tmp_path, extensions, {"a.env": "", "b.env": ""})
    error = refused(capsys, "--firebase-json", str(path), *argv)
    assert error.endswith(message.format(path=path, folder=tmp_path))


def test_instance_id_renames_the_only_instance(capsys, tmp_path: Path) -> None:
    path = project(tmp_path, {"Resize_Images": "firebase/storage-resize-images@0.3.3"}, {"Resize_Images.env": ""})
    assert refused(capsys, "--firebase-json", str(path)) == (
        f"the instance id 'Resize_Images' (in {path}) cannot name a route (1-32 of a-z 0-9 -): "
        "give --instance-id resize-images"
    )
    (route,), _ = imported(capsys, "--firebase-json", str(path), "--instance-id", "resize-images")
    assert route["name"] == "resize-images"


def test_one_of_several_instances_with_a_bad_id_is_imported_alone(capsys, tmp_path: Path) -> None:
    path = project(
        tmp_path,
        {"ok": "firebase/storage-resize-images@0.3.3", "Not_OK": "firebase/storage-resize-images@0.3.3"},
        {"ok.env": "", "Not_OK.env": ""},
    )
    assert refused(capsys, "--firebase-json", str(path)).endswith(
        f"import it alone: routes import-extension {tmp_path}/extensions/Not_OK.env --instance-id not-ok"
    )


def test_a_file_and_firebase_json_exclude_each_other(capsys, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["routes", "import-extension", "x.env", "--firebase-json", "firebase.json"])
    assert raised.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_the_command_needs_only_the_standard_library(tmp_path: Path) -> None:
    path = env_file(tmp_path, EMULATOR)
    result = run_with_stdlib_only("routes", "import-extension", str(path))
    assert result.returncode == 0, result.stderr
    assert tomllib.loads(result.stdout)["route"][0]["IMG_SIZES"] == "300x300"


def test_the_imported_file_is_a_routes_file_the_function_loads(capsys, tmp_path: Path) -> None:
    assert main(["routes", "import-extension", str(env_file(tmp_path, EXPORTED)), "--project", "demo-x"]) == 0
    routes = tmp_path / "routes.toml"
    routes.write_text(capsys.readouterr().out)

    assert main(["routes", "check", str(routes)]) == 0

    checked = capsys.readouterr().out
    assert "1 extension route from" in checked
    assert "projects/demo-x/locations/us-central1/channels/firebase" in checked
