"""deploy_plan: what deploy.sh deploys, worked out in Python and checked in-process: sizes and durations, the memory
budget, default sizing, every refusal and warning with its message, the env-vars file, identities, bucket locations,
the routes file's deployed path, background removal's model, the backfill job, the rules; and the deploy-plan command
as deploy.sh reads it. tests/test_deploy.py runs deploy.sh itself."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from image_pipeline import deploy_plan as plan
from image_pipeline.__main__ import main
from image_pipeline.deploy_plan import (
    EventChannel,
    FlagError,
    FunctionSizing,
    InvalidSettings,
    PlanError,
    RouteSizing,
    SettingVariable,
)
from image_pipeline.settings import Settings
from tests.test_settings_registry import run_with_stdlib_only

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "demo-app"
BUCKET = "demo-app.firebasestorage.app"
# What deploy.sh hands over with nothing but its defaults and a project and bucket (its configuration block).
SCRIPT_ENV = {
    "PROJECT_ID": PROJECT,
    "BUCKET": BUCKET,
    "REGION": "us-central1",
    "FUNCTION_NAME": "image-pipeline",
    "RUNTIME_SA": "image-pipeline-runtime",
    "TRIGGER_SA": "image-pipeline-trigger",
    "CONCURRENCY": "1",
    "MAX_INSTANCES": "10",
    "MIN_INSTANCES": "0",
    "ALLOW_UNDERSIZED": "0",
    "JOB_NAME": "image-pipeline-backfill",
    "TASKS": "10",
    "PARALLELISM": "0",
    "JOB_MEMORY": "2Gi",
    "JOB_CPU": "2",
    "TASK_TIMEOUT": "3600s",
    "MAX_RETRIES": "3",
}
MODEL_BYTES = b"not really an onnx model, but a file with a checksum"
SHA = hashlib.sha256(MODEL_BYTES).hexdigest()
OTHER_MODEL = "gs://shared-models/isnet/isnet-anime.onnx"

BUILT_IN = RouteSizing("showcase", (2048, 2048), ("webp",), None)
AVATAR = RouteSizing("avatar", (256, 256), ("avif", "webp"), None)
POSTER = RouteSizing("poster", (8192, 8192), ("webp", "jpeg"), None)
CUTOUT = RouteSizing("cutout", (2048, 2048), ("webp",), "gs://{bucket}/models/isnet.onnx")
# The formats an extension route may write an upload back in (IMAGE_TYPE=false), as the extension package reads them.
KEPT = ("jpeg", "png", "webp", "gif", "tiff", "avif")
FIREBASE_CHANNEL = f"projects/{PROJECT}/locations/us-central1/channels/firebase"
RUNTIME_MEMBER = f"serviceAccount:image-pipeline-runtime@{PROJECT}.iam.gserviceaccount.com"
PUBLISHER = "roles/eventarc.publisher"


def function_plan(env: dict[str, str] | None = None, warnings: list[str] | None = None) -> plan.FunctionPlan:
    return plan.plan_function(SCRIPT_ENV | (env or {}), str(ROOT), (warnings if warnings is not None else []).append)


def refusal(env: dict[str, str], kind: type[PlanError] = FlagError) -> str:
    with pytest.raises(kind) as error:
        function_plan(env)
    assert type(error.value) is kind
    return str(error.value)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "isnet-anime.onnx"
    path.write_bytes(MODEL_BYTES)
    return path


# --- sizes, CPU counts and durations ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "mib"),
    [
        ("512Mi", 512),
        ("1Gi", 1024),
        ("2GiB", 2048),
        ("2G", 1907),
        ("600M", 572),
        ("650000k", 619),
        ("640000K", 610),
        ("640Ki", 0),
        ("1073741824", 1024),
        ("1073741824b", 1024),
    ],
)
def test_memory_sizes_in_mib_rounded_down(size, mib):
    assert plan.memory_mib(size) == mib


@pytest.mark.parametrize("size", ["lots", "", "1ki", "2048mi", "1Ti", "1.5Gi", "-1Gi", "Gi"])
def test_memory_sizes_gcloud_does_not_take(size):
    assert plan.memory_mib(size) is None


@pytest.mark.parametrize(
    ("cpu", "millicpu"), [("1", 1000), ("2", 2000), (".5", 500), ("0.25", 250), ("1.5", 1500), ("2000m", 2000)]
)
def test_cpu_counts_in_thousandths(cpu, millicpu):
    assert plan.millicpu(cpu) == millicpu


@pytest.mark.parametrize("cpu", ["abc", "", "2.", ".", ".0001", "m", "1.5m"])
def test_cpu_counts_gcloud_does_not_take(cpu):
    assert plan.millicpu(cpu) is None


@pytest.mark.parametrize(("duration", "seconds"), [("60", 60), ("60s", 60), ("5m", 300), ("1h", 3600), ("0s", 0)])
def test_durations_in_seconds(duration, seconds):
    assert plan.duration_s(duration) == seconds


@pytest.mark.parametrize("duration", ["2x", "", "s", "1.5s", "-1", "1h30m"])
def test_durations_gcloud_does_not_take(duration):
    assert plan.duration_s(duration) is None


# --- the memory budget and the default sizing -------------------------------------------------------------------------


def test_the_measured_setup_adds_nothing():
    assert plan.extra_image_mib(BUILT_IN) == 0
    assert plan.image_budget([BUILT_IN]) == plan.ImageBudget(500, "")


def test_the_heaviest_route_decides_and_says_so():
    # 8192 x 8192 x 4 bytes x (1 + 2 formats) = 768 MiB, less the 32 MiB already in the measured 500
    assert plan.extra_image_mib(POSTER) == 736
    assert plan.image_budget([BUILT_IN, POSTER, AVATAR]) == plan.ImageBudget(
        1236, "route 'poster': largest variant box 8192x8192, 2 format(s)"
    )


def test_a_smaller_route_never_lowers_the_budget():
    assert plan.extra_image_mib(AVATAR) < 0
    assert plan.image_budget([AVATAR]).mib == 500


def test_background_removal_adds_its_model_per_image():
    assert plan.image_budget([CUTOUT]) == plan.ImageBudget(2100, "background removal: 1600 MiB more per image")
    assert plan.image_budget([POSTER, CUTOUT]).why == (
        "route 'poster': largest variant box 8192x8192, 2 format(s); background removal: 1600 MiB more per image"
    )


@pytest.mark.parametrize(
    ("routes", "sizing"),
    [
        ([BUILT_IN], FunctionSizing("1Gi", "1", "60s")),
        ([BUILT_IN, POSTER], FunctionSizing("1Gi", "1", "60s")),
        ([BUILT_IN, AVATAR], FunctionSizing("1Gi", "1", "120s")),  # AVIF takes several times WebP's CPU
        ([BUILT_IN, CUTOUT], FunctionSizing("4Gi", "2", "120s")),
    ],
)
def test_default_sizing(routes, sizing):
    assert plan.default_sizing(routes) == sizing


@pytest.mark.parametrize(
    ("env", "sizing"),
    [
        ({}, ("1Gi", "1", "60s")),
        ({"OUTPUT_FORMAT": "avif"}, ("1Gi", "1", "120s")),
        ({"OUTPUT_FORMAT": "AVIF", "TIMEOUT": "90s"}, ("1Gi", "1", "90s")),
        ({"MEMORY": "3Gi", "CONCURRENCY": "4", "CPU": "2"}, ("3Gi", "2", "60s")),
        ({"VARIANTS": "big:8192", "MEMORY": "2Gi"}, ("2Gi", "1", "60s")),
    ],
)
def test_the_function_is_sized_by_its_settings_unless_told(env, sizing):
    assert function_plan(env).sizing == FunctionSizing(*sizing)


def test_the_built_in_routes_largest_variant_raises_the_budget():
    message = refusal({"VARIANTS": "big:8192", "OUTPUT_FORMAT": "avif"})

    assert "120 MiB + 1 x 980 MiB = 1100 MiB (route 'showcase': largest variant box 8192x8192, 1 format(s))" in message


# --- refusals and warnings --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PROJECT_ID": "BAD"}, "'BAD' is not a project id"),
        ({"BUCKET": ""}, "BUCKET is not set: pass --bucket NAME or set BUCKET (the Firebase Storage bucket, e.g. "
                         "demo-app.firebasestorage.app or demo-app.appspot.com)"),
        ({"BUCKET": "Bad Bucket"}, "'Bad Bucket' is not a bucket name"),
        ({"REGION": "Mars"}, "REGION 'Mars' is not a region like us-central1"),
        ({"REGION": ""}, "REGION '' is not a region like us-central1"),
        ({"FUNCTION_NAME": "Bad_Name"}, "FUNCTION_NAME 'Bad_Name' must be lower-case letters, digits and dashes"),
        ({"CONCURRENCY": "abc"}, "CONCURRENCY must be a whole number, got 'abc'"),
        ({"CONCURRENCY": "0"}, "CONCURRENCY must be at least 1, got 0"),
        ({"MAX_INSTANCES": "0"}, "MAX_INSTANCES must be at least 1, got 0"),
        ({"MIN_INSTANCES": "-1"}, "MIN_INSTANCES must be a whole number, got '-1'"),
        ({"MIN_INSTANCES": "5", "MAX_INSTANCES": "2"}, "MIN_INSTANCES (5) exceeds MAX_INSTANCES"),
        ({"MEMORY": "lots"}, "MEMORY 'lots' is not a size like 512Mi, 1Gi or 2G"),
        ({"CPU": "abc"}, "CPU 'abc' is not a CPU count like 1, 2, .5 or 2000m"),
        ({"TIMEOUT": "5x"}, "TIMEOUT '5x' is not a duration like 60s or 5m"),
        ({"TIMEOUT": "2h"}, "TIMEOUT must be between 1s and 3600s"),
        ({"TIMEOUT": "0s"}, "TIMEOUT must be between 1s and 3600s"),
        ({"CONCURRENCY": "4"}, "MEMORY 1Gi (1024 MiB) is too small for CONCURRENCY 4: 100-megapixel images need about "
                               "120 MiB + 4 x 500 MiB = 2120 MiB; raise MEMORY, lower CONCURRENCY, or pass "
                               "--allow-undersized (e.g. with a lower MAX_PIXELS)"),
        ({"MEMORY": "512Mi"}, "120 MiB + 1 x 500 MiB = 620 MiB;"),
        ({"MEMORY": "650000k"}, "MEMORY 650000k (619 MiB) is too small for CONCURRENCY 1"),
        ({"CPU": ".5", "MEMORY": "2Gi", "CONCURRENCY": "2"},
         "CONCURRENCY 2 needs CPU >= 1 (Cloud Functions 2nd gen), got CPU .5"),
        ({"CLIENT_TIMEOUT_S": "45"}, "CLIENT_TIMEOUT_S (45) must be well under TIMEOUT (60s): an attempt has to end "
                                     "before it is killed"),
        ({"CLIENT_TIMEOUT_S": "30"}, "CLIENT_TIMEOUT_S (30) must be well under TIMEOUT (60s)"),
        ({"CLIENT_TIMEOUT_S": "7", "TIMEOUT": "14s"}, "CLIENT_TIMEOUT_S (7) must be well under TIMEOUT (14s)"),
        ({"RUNTIME_SA": "x"}, "service account id 'x' must be 6-30 characters of a-z 0-9 -, starting with a letter"),
        ({"TRIGGER_SA": "image-pipeline-runtime"}, "RUNTIME_SA and TRIGGER_SA must be different accounts"),
        ({"BUILD_SERVICE_ACCOUNT": "x"}, "service account id 'x'"),
    ],
)  # fmt: skip
def test_a_bad_value_is_refused_with_a_message_naming_it(env, message):
    assert message in refusal(env)


@pytest.mark.parametrize(
    "env",
    [{"CLIENT_TIMEOUT_S": "29.9"}, {"CLIENT_TIMEOUT_S": "7", "TIMEOUT": "15s"}, {"CLIENT_TIMEOUT_S": " 45"}],
)
def test_client_timeouts_well_under_the_timeout_pass(env):
    assert function_plan(env)


def test_a_setting_on_several_lines_is_refused():
    with pytest.raises(FlagError, match=r"^CUTOUT_MODEL_URI must be a single line$"):
        plan.env_file({"LOG_LEVEL": "INFO", "CUTOUT_MODEL_URI": "gs://b/m.onnx\nx"})


@pytest.mark.parametrize(("name", "value"), [("QUALITY", "500"), ("VARIANTS", "thumb"), ("OUTPUT_FORMAT", "bmp")])
def test_bad_function_settings_are_refused_by_the_functions_own_check(name, value):
    assert refusal({name: value}, InvalidSettings).startswith(name)


@pytest.mark.parametrize("allow", ["1", "true", "YES", "on"])
def test_allow_undersized_turns_the_budget_into_a_warning(allow):
    warnings: list[str] = []

    sized = function_plan({"CONCURRENCY": "4", "ALLOW_UNDERSIZED": allow}, warnings)

    assert sized.sizing.memory == "1Gi"
    assert warnings == ["MEMORY 1Gi (1024 MiB) is below the 2120 MiB that CONCURRENCY 4 needs for 100 MP images"]


def test_warnings_come_in_order_before_a_refusal():
    warnings: list[str] = []
    env = {"CONCURRENCY": "4", "ALLOW_UNDERSIZED": "1", "CLIENT_TIMEOUT_S": "45"}

    with pytest.raises(FlagError, match="CLIENT_TIMEOUT_S"):
        function_plan(env, warnings)

    assert warnings == ["MEMORY 1Gi (1024 MiB) is below the 2120 MiB that CONCURRENCY 4 needs for 100 MP images"]


@pytest.mark.parametrize(("window", "warned"), [("90000", True), ("86400", True), ("86399", False), ("", False)])
def test_a_retry_window_beyond_eventarcs_24_hours_is_a_warning(window, warned):
    warnings: list[str] = []

    function_plan({"RETRY_WINDOW_S": window} if window else {}, warnings)

    assert warnings == (
        [f"RETRY_WINDOW_S {window}: Eventarc stops redelivering after 24 h, so the function could never record "
         "retries_exhausted"] if warned else []
    )  # fmt: skip


# --- background removal -----------------------------------------------------------------------------------------------


def cutout_env(model: Path | str, **extra: str) -> dict[str, str]:
    return {"CUTOUT_MODEL": str(model), "CUTOUT_FAMILY": "isnet", **extra}


def test_a_model_file_is_uploaded_under_a_name_holding_its_checksum(model):
    planned = function_plan(cutout_env(model))

    assert planned.upload == plan.ModelUpload(str(model), SHA, f"models/isnet-anime-{SHA[:12]}.onnx")
    assert f"CUTOUT_MODEL_URI: 'gs://{{bucket}}/models/isnet-anime-{SHA[:12]}.onnx'" in planned.env_file
    assert f"CUTOUT_MODEL_SHA256: '{SHA}'" in planned.env_file
    assert "CUTOUT_FAMILY: 'isnet'" in planned.env_file
    assert planned.model_reads == ()


@pytest.mark.parametrize(
    ("file", "name"),
    [("isnet-anime.onnx", "isnet-anime"), ("dir/my model v2.ONNX", "my_model_v2_ONNX"), ("m/.onnx", "model")],
)
def test_the_uploaded_object_is_named_after_the_file(file, name):
    assert plan.model_object_name(file, SHA) == f"models/{name}-{SHA[:12]}.onnx"


def test_a_given_checksum_is_checked_in_any_case(model):
    assert function_plan(cutout_env(model, CUTOUT_MODEL_SHA256=SHA.upper())).upload.sha256 == SHA


def test_a_model_in_another_bucket_is_read_where_it_is():
    planned = function_plan(cutout_env(OTHER_MODEL, CUTOUT_MODEL_SHA256=SHA))

    assert planned.upload is None
    assert planned.model_reads == (plan.ModelRead("shared-models", OTHER_MODEL),)
    assert f"CUTOUT_MODEL_URI: '{OTHER_MODEL}'" in planned.env_file


@pytest.mark.parametrize(
    ("args", "sizing"),
    [
        ({}, ("4Gi", "2", "120s")),
        ({"MEMORY": "3Gi", "CPU": "1"}, ("3Gi", "1", "120s")),
        ({"TIMEOUT": "300s"}, ("4Gi", "2", "300s")),
    ],
)
def test_background_removal_sizes_the_function(model, args, sizing):
    assert function_plan(cutout_env(model, **args)).sizing == FunctionSizing(*sizing)


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ({"MEMORY": "1Gi"}, "background removal needs at least 2048 MiB, 1 CPU and 120s: MEMORY 1Gi is below 2048 MiB "
                            "(defaults with a cutout: 4Gi, 2 CPUs, 120s; or pass --allow-undersized)"),
        ({"CPU": ".5"}, "CPU .5 is below 1"),
        ({"TIMEOUT": "60s"}, "TIMEOUT 60s is below 120s"),
        ({"MEMORY": "1Gi", "CPU": ".5", "TIMEOUT": "60s"},
         "MEMORY 1Gi is below 2048 MiB, CPU .5 is below 1, TIMEOUT 60s is below 120s"),
        ({"MEMORY": "2Gi", "CONCURRENCY": "2"}, "120 MiB + 2 x 2100 MiB = 4320 MiB (background removal: 1600 MiB more "
                                                "per image)"),
    ],
)  # fmt: skip
def test_an_undersized_function_is_refused(model, args, problem):
    assert problem in refusal(cutout_env(model, **args))


def test_an_undersized_function_may_be_allowed_with_warnings(model):
    warnings: list[str] = []

    function_plan(cutout_env(model, MEMORY="1Gi", CPU=".5", ALLOW_UNDERSIZED="1"), warnings)

    assert warnings == [
        "background removal: MEMORY 1Gi is below 2048 MiB, CPU .5 is below 1",
        "MEMORY 1Gi (1024 MiB) is below the 2220 MiB that CONCURRENCY 1 needs for 100 MP images (background removal: "
        "1600 MiB more per image)",
    ]


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        pytest.param({"CUTOUT_FAMILY": ""}, "--cutout-model needs --cutout-family (isnet or u2net)", id="no-family"),
        pytest.param({"CUTOUT_MODEL": "no-such.onnx"}, "--cutout-model 'no-such.onnx': no such file",
                     id="missing-file"),
        pytest.param({"CUTOUT_MODEL": OTHER_MODEL}, f"--cutout-model {OTHER_MODEL} needs --cutout-sha256 (the "
                     f"object's SHA-256, e.g. gcloud storage cat {OTHER_MODEL} | sha256sum): it is not downloaded here",
                     id="gs-without-checksum"),
        pytest.param({"CUTOUT_MODEL_SHA256": "ab" * 32}, f"--cutout-sha256 {'ab' * 32} is not the SHA-256 of",
                     id="checksum-differs"),
        pytest.param({"CUTOUT_MODEL_URI": "gs://b/m.onnx"}, "--cutout-model sets CUTOUT_MODEL_URI: set one of them, "
                     "not both", id="uri-too"),
        pytest.param({"ROUTES_FILE": "examples/routes.toml"}, "--cutout-model sets the built-in route's model; with "
                     "ROUTES_FILE, each route names its model in [route.cutout] (docs/cutout.md)", id="routes-file"),
    ],
)  # fmt: skip
def test_bad_cutout_options_are_refused(model, env, problem):
    assert problem in refusal(cutout_env(model) | env)


def test_a_model_family_the_function_does_not_know_is_refused_by_its_settings(model):
    assert refusal(cutout_env(model, CUTOUT_FAMILY="rembg"), InvalidSettings).startswith("CUTOUT_FAMILY 'rembg'")


def test_an_unreadable_model_file_cannot_be_deployed(tmp_path):
    with pytest.raises(PlanError, match=r"^cannot read '"):
        plan.file_sha256(str(tmp_path))


@pytest.mark.parametrize(
    ("models", "reads"),
    [
        ([OTHER_MODEL], [("shared-models", OTHER_MODEL)]),
        ([OTHER_MODEL, OTHER_MODEL], [("shared-models", OTHER_MODEL)]),
        (["gs://zeta/b.onnx", "gs://alpha/a.onnx", "gs://alpha/c.onnx"],
         [("alpha", "gs://alpha/a.onnx"), ("alpha", "gs://alpha/c.onnx"), ("zeta", "gs://zeta/b.onnx")]),
        (["gs://{bucket}/models/m.onnx", f"gs://{BUCKET}/models/m.onnx", "models/m.onnx", None], []),
    ],
)  # fmt: skip
def test_models_in_other_buckets_are_read_there(models, reads):
    routes = [RouteSizing(f"r{i}", (2048, 2048), ("webp",), uri) for i, uri in enumerate(models)]

    assert plan.model_reads(routes, BUCKET) == tuple(plan.ModelRead(*read) for read in reads)


# --- the env-vars file ------------------------------------------------------------------------------------------------


def test_the_env_vars_file_writes_the_apps_contract_by_default():
    assert function_plan().env_file == (
        "SOURCE_PREFIX: 'raw-uploads/'",
        "OUTPUT_PREFIX: 'showcase-images/'",
        "FIRESTORE_COLLECTION: 'characters'",
        "LOG_LEVEL: 'INFO'",
    )


def test_the_env_vars_file_defaults_are_the_function_defaults():
    written = dict(line.split(": ", 1) for line in function_plan().env_file)

    assert Settings.from_env({name: value.strip("'") for name, value in written.items()}) == Settings.from_env({})


def test_settings_pass_through_in_reading_order_and_nothing_else():
    variables = plan.read_settings().variables
    given = {"LOG_LEVEL": "DEBUG", "QUALITY": "70", "MAX_DECODE_MIB": "1024", "SOME_SECRET": "hunter2", "X": ""}

    assert list(plan.passed_settings(variables, given).items()) == [
        ("SOURCE_PREFIX", "raw-uploads/"),
        ("OUTPUT_PREFIX", "showcase-images/"),
        ("FIRESTORE_COLLECTION", "characters"),
        ("QUALITY", "70"),
        ("MAX_DECODE_MIB", "1024"),
        ("LOG_LEVEL", "DEBUG"),
    ]


def test_beside_a_routes_file_the_built_in_routes_defaults_are_not_written():
    variables = plan.read_settings().variables

    assert plan.passed_settings(variables, {"ROUTES_FILE": "routes.toml"}) == {
        "LOG_LEVEL": "INFO",
        "ROUTES_FILE": "routes.toml",
    }


def test_env_vars_file_values_are_single_quoted_yaml():
    lines = plan.env_file({"PUBLIC_URL_BASE": "https://cdn.example.com/it's:tricky"}, {"BUCKET": BUCKET})

    assert lines == ("PUBLIC_URL_BASE: 'https://cdn.example.com/it''s:tricky'", f"BUCKET: '{BUCKET}'")


# --- identities -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("account", "identity"),
    [
        ("thumbs-rt", (f"thumbs-rt@{PROJECT}.iam.gserviceaccount.com", "thumbs-rt")),
        (f"thumbs-rt@{PROJECT}.iam.gserviceaccount.com", (f"thumbs-rt@{PROJECT}.iam.gserviceaccount.com", "thumbs-rt")),
        ("shared@infra-proj.iam.gserviceaccount.com", ("shared@infra-proj.iam.gserviceaccount.com", "")),
        ("123-compute@developer.gserviceaccount.com", ("123-compute@developer.gserviceaccount.com", "")),
    ],
)
def test_an_account_of_another_project_is_used_never_created(account, identity):
    assert plan.identity(account, PROJECT) == plan.Identity(*identity)


@pytest.mark.parametrize(
    ("account", "full"),
    [
        ("", ""),
        ("builder", f"projects/{PROJECT}/serviceAccounts/builder@{PROJECT}.iam.gserviceaccount.com"),
        ("b@other.iam.gserviceaccount.com", f"projects/{PROJECT}/serviceAccounts/b@other.iam.gserviceaccount.com"),
        ("projects/p/serviceAccounts/b@p.iam.gserviceaccount.com",
         "projects/p/serviceAccounts/b@p.iam.gserviceaccount.com"),
    ],
)  # fmt: skip
def test_the_build_service_account_is_named_in_full(account, full):
    assert plan.build_service_account(account, PROJECT) == full


def test_a_bucket_is_named_without_its_scheme():
    assert function_plan({"BUCKET": f"gs://{BUCKET}/"}).bucket == BUCKET


# --- bucket locations -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "region"),
    [
        ("US", "us-central1"),
        ("us", "us-east4"),
        ("US-CENTRAL1", "us-central1"),
        ("europe-west1", "europe-west1"),
        ("EU", "europe-west4"),
        ("ASIA", "asia-northeast1"),
        ("NAM4", "us-east1"),
        ("EUR4", "europe-north1"),
        ("EUR5", "europe-west2"),
        ("ASIA1", "asia-northeast2"),
    ],
)
def test_compatible_bucket_locations_give_the_trigger_location(location, region):
    assert plan.trigger_location(location, region, BUCKET) == location.lower()


@pytest.mark.parametrize(
    ("location", "region"),
    [
        ("EU", "us-central1"),
        ("US", "europe-west1"),
        ("US-EAST1", "us-central1"),
        ("EU", "europe-west2"),  # the UK is not in the EU multi-region
        ("EU", "europe-west6"),  # nor is Switzerland
        ("ASIA", "australia-southeast1"),
        ("NAM4", "us-west1"),
        ("EUR4", "europe-west1"),
        ("AUSTRALIA-SOUTHEAST1", "us-central1"),
        ("mars", "us-central1"),
    ],
)
def test_incompatible_bucket_locations_cannot_be_deployed(location, region):
    with pytest.raises(PlanError) as error:
        plan.trigger_location(location, region, BUCKET)

    assert type(error.value) is PlanError
    assert str(error.value).startswith(
        f"bucket gs://{BUCKET} is in location '{location}', which is not compatible with region '{region}': "
    )
    assert f"Deploy with --region set to a region in '{location}' (or move the bucket)." in str(error.value)


# --- the routes file --------------------------------------------------------------------------------------------------


@pytest.fixture
def source(tmp_path: Path) -> Path:
    root = tmp_path / "source"
    for name in ("routes.toml", "routes/apps.toml", "examples/routes.toml", "image_pipeline/routes.toml"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("")
    (tmp_path / "routes.toml").write_text("")
    return root


@pytest.mark.parametrize(
    ("given", "deployed"),
    [
        ("routes.toml", "routes.toml"),
        ("./routes.toml", "routes.toml"),
        ("routes/../routes.toml", "routes.toml"),
        ("routes/apps.toml", "routes/apps.toml"),
        ("ABSOLUTE/routes/apps.toml", "routes/apps.toml"),
        ("", ""),
    ],
)
def test_the_routes_file_is_passed_relative_to_the_source_root(source, given, deployed):
    given = given.replace("ABSOLUTE", str(source))

    assert plan.deployed_routes_file(given, str(source)) == deployed


def test_a_linked_source_root_is_followed(source, tmp_path):
    (tmp_path / "link").symlink_to(source)

    assert plan.deployed_routes_file("routes/apps.toml", str(tmp_path / "link")) == "routes/apps.toml"


@pytest.mark.parametrize("given", ["examples/routes.toml", "image_pipeline/routes.toml", "../routes.toml", "OUTSIDE"])
def test_a_routes_file_that_would_not_be_uploaded_is_refused(source, given):
    given = given.replace("OUTSIDE", str(source.parent / "routes.toml"))

    with pytest.raises(PlanError) as error:
        plan.deployed_routes_file(given, str(source))

    assert str(error.value) == (
        f"ROUTES_FILE '{given}' would not be deployed: Cloud Functions uploads only what .gcloudignore lets through "
        "(main.py, requirements.txt, image_pipeline/, routes.toml and routes/), so put it at routes.toml or in routes/ "
        f"under {source} (e.g. cp it to {source}/routes.toml and set ROUTES_FILE=routes.toml)"
    )


@pytest.mark.parametrize("given", ["routes/none.toml", "routes"])
def test_a_missing_routes_file_is_refused(source, given):
    with pytest.raises(
        PlanError, match=rf"^ROUTES_FILE '{given}': no such file \(a relative path starts at the source"
    ):
        plan.deployed_routes_file(given, str(source))


def test_the_routes_file_decides_the_routes_sizing():
    routes = plan.read_settings({"ROUTES_FILE": str(ROOT / "examples" / "routes.toml")}).routes

    assert routes == (
        RouteSizing("showcase", (2048, 2048), ("webp",), None),
        RouteSizing("avatar", (256, 256), ("avif", "webp"), None),
        RouteSizing("gallery", (1600, 1600), ("webp", "jpeg"), None),
    )
    assert plan.default_sizing(routes).timeout == "120s"


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A source root for a routes.toml: the folder the function's settings read a relative ROUTES_FILE from (deploy.sh
    runs the package from the folder it deploys)."""
    monkeypatch.setattr("image_pipeline.settings.SOURCE_ROOT", tmp_path)
    return tmp_path


def extension_routes(folder: Path, *routes: dict[str, str]) -> Path:
    """A source root holding routes.toml with these extension routes (each a name and its parameters)."""
    tables = [
        '[[route]]\nextension = "storage-resize-images"\n'
        + "".join(f"{key} = {json.dumps(value)}\n" for key, value in route.items())
        for route in routes
    ]
    (folder / "routes.toml").write_text("\n".join(tables))
    return folder


def extension_plan(folder: Path, *routes: dict[str, str], env: dict[str, str] | None = None) -> plan.FunctionPlan:
    source = extension_routes(folder, *routes)
    return plan.plan_function(SCRIPT_ENV | {"ROUTES_FILE": "routes.toml"} | (env or {}), str(source), [].append)


@pytest.mark.parametrize(
    ("converted", "kept", "formats"),
    [
        (["webp"], (), ("webp",)),
        (["jpeg", "jpeg", "webp"], (), ("jpeg", "webp")),  # jpeg and jpg: one format
        ([], KEPT, ("avif",)),  # the upload's own type: AVIF at worst, the slowest encoder
        (["webp"], KEPT, ("webp", "avif")),
        (["avif"], KEPT, ("avif", "jpeg")),  # any other type of upload is one more format
        (["avif", "webp"], ("webp", "avif"), ("avif", "webp")),  # no other type: nothing more
        (list(KEPT), KEPT, KEPT),
    ],
)
def test_an_extension_routes_formats_assume_the_costliest_upload(converted, kept, formats):
    assert plan.extension_formats(converted, kept) == formats


def test_extension_routes_are_sized_by_their_largest_box_and_formats(tmp_path):
    extension_routes(
        tmp_path,
        {"name": "resize", "IMG_SIZES": "200x200,4000x3000,3400x3400", "IMAGE_TYPE": "webp,false,jpg,jpeg"},
        {"name": "thumbs", "IMG_SIZES": "64x64", "IMAGE_TYPE": "avif"},
        {"name": "defaults"},
    )

    routes = plan.read_settings({"ROUTES_FILE": str(tmp_path / "routes.toml")}).routes

    assert routes == (
        RouteSizing("resize", (4000, 3000), ("webp", "jpeg", "avif"), None),
        RouteSizing("thumbs", (64, 64), ("avif",), None),
        RouteSizing("defaults", (200, 200), ("avif",), None),  # IMAGE_TYPE=false, IMG_SIZES=200x200
    )


@pytest.mark.parametrize(("image_type", "timeout"), [("false", "120s"), ("webp,jpeg", "60s"), ("avif", "120s")])
def test_an_extension_route_that_may_encode_avif_gets_the_longer_timeout(folder, image_type, timeout):
    assert extension_plan(folder, {"name": "resize", "IMAGE_TYPE": image_type}).sizing.timeout == timeout


def test_an_extension_routes_largest_box_raises_the_budget(folder):
    with pytest.raises(FlagError) as error:
        extension_plan(folder, {"name": "resize", "IMG_SIZES": "100x100,8192x8192", "IMAGE_TYPE": "webp,jpeg"})

    assert "120 MiB + 1 x 1236 MiB = 1356 MiB (route 'resize': largest variant box 8192x8192, 2 format(s))" in str(
        error.value
    )


@pytest.mark.parametrize(
    "env",
    [{}, {"GOOGLE_CLOUD_PROJECT": "elsewhere"}, {"GCLOUD_PROJECT": "elsewhere"}],
    ids=["unset", "GOOGLE", "GCLOUD"],
)
def test_a_publishing_extension_route_gets_the_deployed_project(folder, env):
    function = extension_plan(folder, {"name": "resize", "EVENTARC_CHANNEL": "firebase"}, env=env)

    assert function.channels == (EventChannel(PROJECT, "us-central1", "firebase", ("resize",)),)
    assert function.channels[0].name == FIREBASE_CHANNEL
    assert function.env_file[-1] == f"GOOGLE_CLOUD_PROJECT: '{PROJECT}'"


def test_channels_are_listed_once_each_with_their_routes(folder):
    shared = "projects/shared-events/locations/europe-west1/channels/app-events"
    function = extension_plan(
        folder,
        {"name": "resize", "EVENTARC_CHANNEL": "locations/us-central1/channels/firebase"},
        {"name": "quiet", "INCLUDE_PATH_LIST": "/quiet"},
        {"name": "shared", "EVENTARC_CHANNEL": shared, "INCLUDE_PATH_LIST": "/shared"},
        {"name": "again", "EVENTARC_CHANNEL": "firebase", "INCLUDE_PATH_LIST": "/again"},
    )

    assert function.channels == (
        EventChannel(PROJECT, "us-central1", "firebase", ("resize", "again")),
        EventChannel("shared-events", "europe-west1", "app-events", ("shared",)),
    )
    assert [channel.name for channel in function.channels] == [FIREBASE_CHANNEL, shared]


def test_without_a_channel_nothing_is_published_and_no_project_is_written(folder):
    function = extension_plan(folder, {"name": "resize"}, env={"GOOGLE_CLOUD_PROJECT": PROJECT})

    assert function.channels == ()
    assert not any(line.startswith("GOOGLE_CLOUD_PROJECT") for line in function.env_file)


def test_a_channel_name_eventarc_cannot_have_is_refused(folder):
    with pytest.raises(PlanError) as error:
        extension_plan(folder, {"name": "resize", "EVENTARC_CHANNEL": "fire base"})

    assert str(error.value) == (
        "route 'resize': EVENTARC_CHANNEL 'projects/demo-app/locations/us-central1/channels/fire base' is not an "
        "Eventarc channel's name"
    )


def test_the_job_reads_a_publishing_route_with_the_deployed_project(folder):
    source = extension_routes(folder, {"name": "resize", "EVENTARC_CHANNEL": "firebase"})

    job = plan.plan_job(SCRIPT_ENV | {"ROUTES_FILE": "routes.toml"}, str(source), [])

    assert job.env_file[-2:] == (f"BUCKET: '{BUCKET}'", f"GOOGLE_CLOUD_PROJECT: '{PROJECT}'")


def test_a_bad_routes_file_is_the_settings_refusal(tmp_path):
    broken = tmp_path / "routes.toml"
    broken.write_text((ROOT / "examples" / "routes.toml").read_text().replace('fit = "cover"', 'fit = "fill"'))

    with pytest.raises(InvalidSettings, match="route 'avatar'"):
        plan.read_settings({"ROUTES_FILE": str(broken)})


# --- Eventarc channels: the policy edit -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "bindings"),
    [
        ({"etag": "ACAB"}, [{"role": PUBLISHER, "members": [RUNTIME_MEMBER]}]),  # getIamPolicy's empty policy
        (
            {"version": 1, "etag": "BwX1", "bindings": [{"role": "roles/eventarc.admin", "members": ["user:a@x.com"]}]},
            [
                {"role": "roles/eventarc.admin", "members": ["user:a@x.com"]},
                {"role": PUBLISHER, "members": [RUNTIME_MEMBER]},
            ],
        ),
        (
            {"version": 1, "etag": "BwX1", "bindings": [{"role": PUBLISHER, "members": ["user:a@x.com"]}]},
            [{"role": PUBLISHER, "members": ["user:a@x.com", RUNTIME_MEMBER]}],
        ),
        (  # a conditional grant is not the grant: the unconditional binding gets the member, the condition stays
            {
                "version": 3,
                "etag": "BwX2",
                "bindings": [
                    {"role": PUBLISHER, "members": [RUNTIME_MEMBER], "condition": {"title": "t", "expression": "e"}},
                    {"role": PUBLISHER, "members": ["group:g@x.com"]},
                ],
            },
            [
                {"role": PUBLISHER, "members": [RUNTIME_MEMBER], "condition": {"title": "t", "expression": "e"}},
                {"role": PUBLISHER, "members": ["group:g@x.com", RUNTIME_MEMBER]},
            ],
        ),
    ],
    ids=["empty", "other role", "other member", "conditional"],
)
def test_the_policy_edit_adds_the_member_and_keeps_the_rest(policy, bindings):
    request = json.loads(plan.set_policy_request(json.dumps(policy), PUBLISHER, RUNTIME_MEMBER))

    assert request == {"policy": {**policy, "bindings": bindings}}  # the etag and version as read


@pytest.mark.parametrize(
    "bindings",
    [
        [{"role": PUBLISHER, "members": [RUNTIME_MEMBER]}],
        [
            {"role": "roles/viewer", "members": ["user:a@x.com"]},
            {"role": PUBLISHER, "members": ["x:y", RUNTIME_MEMBER]},
        ],
    ],
)
def test_the_policy_edit_sets_nothing_when_the_member_has_the_role(bindings):
    answer = json.dumps({"version": 1, "etag": "BwX1", "bindings": bindings})

    assert plan.set_policy_request(answer, PUBLISHER, RUNTIME_MEMBER) == ""


@pytest.mark.parametrize(
    ("answer", "role", "member", "kind", "message"),
    [
        ("{}", PUBLISHER, RUNTIME_MEMBER, PlanError,
         "the IAM policy has no etag: setting it would overwrite any change made since it was read"),
        ('{"etag": "", "bindings": []}', PUBLISHER, RUNTIME_MEMBER, PlanError,
         "the IAM policy has no etag: setting it would overwrite any change made since it was read"),
        ('{"etag": "e", "bindings": {}}', PUBLISHER, RUNTIME_MEMBER, PlanError,
         "the IAM policy's bindings are not a list of {role, members}"),
        ('{"etag": "e", "bindings": [{"members": []}]}', PUBLISHER, RUNTIME_MEMBER, PlanError,
         "the IAM policy's bindings are not a list of {role, members}"),
        ('{"etag": "e", "bindings": [{"role": "r", "members": "m"}]}', PUBLISHER, RUNTIME_MEMBER, PlanError,
         "the IAM policy's bindings are not a list of {role, members}"),
        ("<html>403</html>", PUBLISHER, RUNTIME_MEMBER, PlanError, "getIamPolicy's answer is not JSON"),
        ("[]", PUBLISHER, RUNTIME_MEMBER, PlanError, "getIamPolicy's answer is not an IAM policy"),
        ("{}", "eventarc.publisher", RUNTIME_MEMBER, FlagError,
         "'eventarc.publisher' is not a role like roles/eventarc.publisher"),
        ("{}", PUBLISHER, "image-pipeline-runtime@x.iam.gserviceaccount.com", FlagError,
         "'image-pipeline-runtime@x.iam.gserviceaccount.com' is not a member like serviceAccount:EMAIL"),
    ],
)  # fmt: skip
def test_the_policy_edit_refuses_what_it_cannot_edit_safely(answer, role, member, kind, message):
    with pytest.raises(kind) as error:
        plan.set_policy_request(answer, role, member)

    assert type(error.value) is kind
    assert str(error.value) == message


# --- the backfill job and the rules -----------------------------------------------------------------------------------


def test_the_job_runs_the_backfill_with_the_functions_settings_and_its_bucket():
    job = plan.plan_job(SCRIPT_ENV, str(ROOT), ["--force", "--limit=10"])

    assert job == plan.JobPlan(
        bucket=BUCKET,
        runtime_email=f"image-pipeline-runtime@{PROJECT}.iam.gserviceaccount.com",
        args="-m,image_pipeline,backfill,--force,--limit=10",
        env_file=(*function_plan().env_file, f"BUCKET: '{BUCKET}'", f"GOOGLE_CLOUD_PROJECT: '{PROJECT}'"),
    )


@pytest.mark.parametrize(
    ("env", "args", "message"),
    [
        ({"TASKS": "0"}, [], "TASKS must be at least 1, got 0"),
        ({"TASKS": "20000"}, [], "TASKS must be at most 10000, got 20000"),
        ({"PARALLELISM": "x"}, [], "PARALLELISM must be a whole number, got 'x'"),
        ({"MAX_RETRIES": "-1"}, [], "MAX_RETRIES must be a whole number, got '-1'"),
        ({"JOB_NAME": "Bad"}, [], "JOB_NAME 'Bad' must be lower-case letters, digits and dashes"),
        ({"JOB_MEMORY": "lots"}, [], "JOB_MEMORY 'lots' is not a size like 2Gi"),
        ({"JOB_CPU": "x"}, [], "JOB_CPU 'x' is not a CPU count like 2"),
        ({"TASK_TIMEOUT": "x"}, [], "TASK_TIMEOUT 'x' is not a duration like 3600s"),
        ({}, ["--prefix=a,b"], "backfill arguments cannot contain commas: '--prefix=a,b'"),
    ],
)
def test_bad_job_options_are_refused(env, args, message):
    with pytest.raises(FlagError) as error:
        plan.plan_job(SCRIPT_ENV | env, str(ROOT), args)

    assert str(error.value) == message


def test_the_job_ignores_the_functions_own_sizing():
    assert plan.plan_job(SCRIPT_ENV | {"MEMORY": "lots", "CONCURRENCY": "0"}, str(ROOT), [])


@pytest.mark.parametrize(
    ("env", "shaped_by"),
    [
        ({}, ""),
        ({"LOG_LEVEL": "debug"}, ""),
        ({"SOURCE_PREFIX": "uploads/"}, "SOURCE_PREFIX"),
        ({"QUALITY": "70", "SOURCE_PREFIX": "uploads/"}, "SOURCE_PREFIX"),  # the first in reading order
        ({"ROUTES_FILE": "routes.toml", "QUALITY": "70"}, "ROUTES_FILE"),
    ],
)
def test_rules_are_generated_when_the_routes_differ_from_the_built_in_defaults(env, shaped_by):
    assert plan.rules_shaped_by(plan.read_settings().variables, env) == shaped_by


def test_help_lists_every_setting_with_the_defaults_written():
    variables = plan.read_settings().variables

    lines = plan.help_setting_names(variables)

    assert all(line.startswith("  ") and len(line) <= 112 for line in lines)
    words = " ".join(lines).split()
    assert [word for word in words if not word.startswith("(")] == [variable.name for variable in variables]
    assert "LOG_LEVEL (INFO)" in " ".join(lines)


def test_help_wraps_before_the_width():
    variables = [SettingVariable(name, route_level=False) for name in ("AAAA", "BBBB", "CCCC")]

    assert plan.help_setting_names(variables, width=8) == ("  AAAA", "  BBBB", "  CCCC")


# --- the command, as deploy.sh reads it -------------------------------------------------------------------------------


def run_command(capsys, monkeypatch, kind: str, env: dict[str, str], *args: str) -> tuple[int, str, str]:
    for name, value in (SCRIPT_ENV | env).items():
        monkeypatch.setenv(name, value)
    code = main(["deploy-plan", "--source-root", str(ROOT), kind, *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_function_plan_is_one_key_per_line(capsys, monkeypatch, model):
    code, out, err = run_command(capsys, monkeypatch, "function", cutout_env(model, RETRY_WINDOW_S="90000"))

    assert (code, err) == (0, "deploy.sh: warning: RETRY_WINDOW_S 90000: Eventarc stops redelivering after 24 h, so "
                              "the function could never record retries_exhausted\n")  # fmt: skip
    keys = [line.partition("=")[0] for line in out.splitlines()]
    assert keys == [
        "BUCKET", "RUNTIME_EMAIL", "RUNTIME_ACCOUNT_ID", "TRIGGER_EMAIL", "TRIGGER_ACCOUNT_ID", "MEMORY", "CPU",
        "TIMEOUT", "BUILD_SERVICE_ACCOUNT", "CUTOUT_OBJECT", "CUTOUT_SHA256", *["ENV"] * (len(keys) - 11),
    ]  # fmt: skip
    assert f"CUTOUT_OBJECT=models/isnet-anime-{SHA[:12]}.onnx" in out.splitlines()
    assert "ENV=LOG_LEVEL: 'INFO'" in out.splitlines()


def test_models_read_elsewhere_are_listed_by_bucket_then_uri(capsys, monkeypatch):
    _, out, _ = run_command(capsys, monkeypatch, "function", cutout_env(OTHER_MODEL, CUTOUT_MODEL_SHA256=SHA))

    assert f"MODEL_READ=shared-models {OTHER_MODEL}" in out.splitlines()


@pytest.mark.parametrize(
    ("kind", "env", "args", "code", "err"),
    [
        ("function", {"MEMORY": "lots"}, [], 2,
         "deploy.sh: error: MEMORY 'lots' is not a size like 512Mi, 1Gi or 2G (see deploy.sh --help)\n"),
        ("function", {"QUALITY": "500"}, [], 1,
         "python -m image_pipeline settings: error: QUALITY '500': must be a whole number from 1 to 100, got 500\n"
         "deploy.sh: error: invalid function settings (see above)\n"),
        ("location", {"REGION": "us-central1"}, ["EU"], 1,
         "deploy.sh: error: bucket gs://demo-app.firebasestorage.app is in location 'EU', which is not compatible "
         "with region 'us-central1': a Cloud Storage trigger must be in the bucket's location, and the function's "
         "region must be that location or inside it (e.g. us-central1 for US or NAM4). Deploy with --region set to a "
         "region in 'EU' (or move the bucket).\n"),
        ("job", {}, ["--", "--prefix=a,b"], 2,
         "deploy.sh: error: backfill arguments cannot contain commas: '--prefix=a,b' (see deploy.sh --help)\n"),
    ],
)  # fmt: skip
def test_problems_are_reported_as_deploy_sh_reports_its_own(capsys, monkeypatch, kind, env, args, code, err):
    assert run_command(capsys, monkeypatch, kind, env, *args) == (code, "", err)


def test_each_channel_is_one_line_with_its_parts_and_routes(capsys, monkeypatch, folder):
    source = extension_routes(
        folder,
        {"name": "resize", "EVENTARC_CHANNEL": "firebase"},
        {"name": "again", "EVENTARC_CHANNEL": "firebase", "INCLUDE_PATH_LIST": "/again"},
    )
    for name, value in (SCRIPT_ENV | {"ROUTES_FILE": "routes.toml"}).items():
        monkeypatch.setenv(name, value)

    code = main(["deploy-plan", "--source-root", str(source), "function"])

    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert [line for line in out.splitlines() if line.startswith("CHANNEL=")] == [
        f"CHANNEL={FIREBASE_CHANNEL} {PROJECT} us-central1 firebase resize,again"
    ]
    assert out.splitlines()[-1] == f"ENV=GOOGLE_CLOUD_PROJECT: '{PROJECT}'"


@pytest.mark.parametrize(
    ("policy", "out"),
    [
        ({"etag": "ACAB"}, '{"policy":{"etag":"ACAB","bindings":[{"role":"roles/eventarc.publisher","members":'
                           f'["{RUNTIME_MEMBER}"]}}]}}}}\n'),
        ({"etag": "ACAB", "bindings": [{"role": PUBLISHER, "members": [RUNTIME_MEMBER]}]}, ""),
    ],
)  # fmt: skip
def test_the_channel_policy_is_the_set_request_or_nothing(capsys, monkeypatch, tmp_path, policy, out):
    answer = tmp_path / "policy.json"
    answer.write_text(json.dumps(policy))
    argv = [f"--member={RUNTIME_MEMBER}", f"--role={PUBLISHER}", str(answer)]

    assert run_command(capsys, monkeypatch, "channel-policy", {}, *argv) == (0, out, "")


def test_an_unreadable_policy_is_reported_as_deploy_sh_reports_its_own(capsys, monkeypatch, tmp_path):
    argv = [f"--member={RUNTIME_MEMBER}", f"--role={PUBLISHER}", str(tmp_path / "none.json")]

    assert run_command(capsys, monkeypatch, "channel-policy", {}, *argv) == (
        1, "", f"deploy.sh: error: cannot read '{tmp_path}/none.json'\n"
    )  # fmt: skip


def test_the_trigger_location(capsys, monkeypatch):
    assert run_command(capsys, monkeypatch, "location", {}, "NAM4") == (0, "TRIGGER_LOCATION=nam4\n", "")


def test_the_job_plan(capsys, monkeypatch):
    code, out, err = run_command(capsys, monkeypatch, "job", {}, "--", "--force")

    assert (code, err) == (0, "")
    assert [line for line in out.splitlines() if not line.startswith("ENV=")] == [
        f"BUCKET={BUCKET}",
        f"RUNTIME_EMAIL=image-pipeline-runtime@{PROJECT}.iam.gserviceaccount.com",
        "ARGS=-m,image_pipeline,backfill,--force",
    ]


def test_the_rules_plan(capsys, monkeypatch):
    assert run_command(capsys, monkeypatch, "rules", {"SOURCE_PREFIX": "uploads/"}) == (
        0, "SHAPED_BY=SOURCE_PREFIX\nROUTES_FILE=\n", ""
    )  # fmt: skip


def test_the_command_needs_only_the_standard_library():
    result = run_with_stdlib_only(
        "deploy-plan", "--source-root", str(ROOT), "function", env={**SCRIPT_ENV, "OUTPUT_FORMAT": "avif"}
    )

    assert result.returncode == 0, result.stderr
    assert "TIMEOUT=120s" in result.stdout.splitlines()
