"""deploy.sh with background removal, offline: the model's upload outside every route, the settings, the sizing, the
read role on another bucket; the dry run shows it all and a real run (fake gcloud) does the same. The checksum, the
object's name, the sizing's limits and the refusals are tested in tests/test_deploy_plan.py."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.test_deploy import (
    BUCKET,
    RUNTIME,
    _normalise,
    commands,
    dry,
    env_file,
    find,
    flag,
    real_run,
    source,  # noqa: F401  (a fixture used below)
    with_routes,
)

MODEL_BYTES = b"not really an onnx model, but a file with a checksum"
SHA = hashlib.sha256(MODEL_BYTES).hexdigest()
OBJECT = f"models/isnet-anime-{SHA[:12]}.onnx"
OTHER_MODEL = "gs://shared-models/isnet/isnet-anime.onnx"
CUTOUT_ROUTE = """
[[route]]
name = "cutout"
match = "raw-uploads/{uid}/{characterId}/{file}"
document = "characters/{characterId}"
field = "visuals.showcase"
output = "showcase-images/{uid}/{characterId}/"
[route.variants]
large = 2048
[route.cutout]
family = "isnet"
uri = "MODEL_URI"
sha256 = "SHA"
""".replace("SHA", "ab" * 32)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "isnet-anime.onnx"
    path.write_bytes(MODEL_BYTES)
    return path


@pytest.fixture(scope="module")
def plan(tmp_path_factory, model):
    result = dry(tmp_path_factory.mktemp("plan"), "--cutout-model", str(model), "--cutout-family", "isnet")
    assert result.returncode == 0, result.stderr
    return result


def test_a_model_file_is_uploaded_outside_every_route_under_a_name_holding_its_checksum(plan, model) -> None:
    [upload] = find(commands(plan.stdout), "gcloud", "storage", "cp")
    assert upload[3:5] == [str(model), f"gs://{BUCKET}/{OBJECT}"]
    assert "--no-clobber" in upload  # a re-run uploads nothing: the name holds the checksum
    assert f"sha256 {SHA}" in plan.stdout


def test_the_settings_name_the_uploaded_model_and_its_checksum(plan) -> None:
    settings = env_file(plan.stdout)

    assert (settings["CUTOUT_FAMILY"], settings["CUTOUT_MODEL_URI"], settings["CUTOUT_MODEL_SHA256"]) == (
        "isnet", f"gs://{{bucket}}/{OBJECT}", SHA
    )  # fmt: skip


def test_the_model_is_uploaded_before_the_function_is_deployed(plan) -> None:
    steps = [" ".join(cmd[:3]) for cmd in commands(plan.stdout)]

    assert steps.index("gcloud storage cp") < steps.index("gcloud functions deploy")


def test_background_removal_sizes_the_function(plan) -> None:
    [deploy] = find(commands(plan.stdout), "gcloud", "functions", "deploy")

    assert (flag(deploy, "--memory"), flag(deploy, "--cpu"), flag(deploy, "--timeout")) == (["4Gi"], ["2"], ["120s"])


def test_a_model_in_another_bucket_gets_read_access_on_that_bucket_only(tmp_path) -> None:
    result = dry(tmp_path, "--cutout-model", OTHER_MODEL, "--cutout-family", "isnet", "--cutout-sha256", SHA)
    assert result.returncode == 0, result.stderr

    cmds = commands(result.stdout)
    assert not find(cmds, "gcloud", "storage", "cp")
    [grant] = [cmd for cmd in cmds if "roles/storage.objectViewer" in " ".join(cmd)]
    assert grant[:5] == ["gcloud", "storage", "buckets", "add-iam-policy-binding", "gs://shared-models"]
    assert flag(grant, "--member") == [f"serviceAccount:{RUNTIME}"]
    assert env_file(result.stdout)["CUTOUT_MODEL_URI"] == OTHER_MODEL


def test_models_named_by_a_routes_file_in_another_bucket_get_read_access(tmp_path, source: Path) -> None:  # noqa: F811
    with_routes(source, CUTOUT_ROUTE.replace("MODEL_URI", OTHER_MODEL))

    result = dry(tmp_path, env={"ROUTES_FILE": "routes.toml"}, script=source / "deploy.sh")

    assert result.returncode == 0, result.stderr
    cmds = commands(result.stdout)
    assert [cmd[4] for cmd in cmds if "roles/storage.objectViewer" in " ".join(cmd)] == ["gs://shared-models"]
    [deploy] = find(cmds, "gcloud", "functions", "deploy")
    assert (flag(deploy, "--memory"), flag(deploy, "--cpu")) == (["4Gi"], ["2"])


def test_the_backfill_job_gets_the_same_model_settings(tmp_path, model) -> None:
    result = dry(tmp_path, "backfill-job", "--cutout-model", str(model), "--cutout-family", "isnet")

    assert result.returncode == 0, result.stderr
    assert env_file(result.stdout)["CUTOUT_MODEL_URI"] == f"gs://{{bucket}}/{OBJECT}"
    assert not find(commands(result.stdout), "gcloud", "storage", "cp")  # the deploy uploads it


def test_a_real_run_matches_the_dry_run_plan(tmp_path, model) -> None:
    args = ("--cutout-model", str(model), "--cutout-family", "isnet")
    result, calls = real_run(tmp_path, *args)
    assert result.returncode == 0, result.stderr

    planned = dry(tmp_path, *args, env={"QUALITY": "72"})
    assert [_normalise(call["args"]) for call in calls] == [_normalise(cmd[1:]) for cmd in commands(planned.stdout)]
    [deploy] = [call for call in calls if call["args"][:2] == ["functions", "deploy"]]
    assert f"CUTOUT_MODEL_SHA256: '{SHA}'" in deploy["env_file"]
