"""deploy.sh, offline: the dry-run plan, a real run against a fake `gcloud`, shellcheck.

The dry run prints one command per line (notes start with '#', the env-vars file is shown as '#   KEY: value'
notes); these tests parse the lines with shlex and check what would be deployed and granted. A real run is
exercised with a fake `gcloud` on PATH that records every call, so the plan and the real sequence are compared.
What deploy.sh works out with `python -m image_pipeline deploy-plan` (sizing, checks and their messages, the
env-vars file, locations, the routes file's path) is tested value by value in tests/test_deploy_plan.py; here, that
deploy.sh runs it and does what it says.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from image_pipeline.__main__ import main
from image_pipeline.extension.params import PARAMS
from image_pipeline.settings import Settings
from tests.test_extension_dotenv import EXPORTED

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy.sh"
PROJECT = "demo-app"
BUCKET = "demo-app.firebasestorage.app"
SA_DOMAIN = ".iam.gserviceaccount.com"
RUNTIME = f"image-pipeline-runtime@{PROJECT}{SA_DOMAIN}"
TRIGGER = f"image-pipeline-trigger@{PROJECT}{SA_DOMAIN}"
AGENT_PLACEHOLDER = "service-PROJECT_NUMBER@gs-project-accounts.iam.gserviceaccount.com"
EVENTARC_API = "https://eventarc.googleapis.com/v1"
FIREBASE_CHANNEL = f"projects/{PROJECT}/locations/us-central1/channels/firebase"
# A value other than its default for most settings (every_setting).
SETTINGS = {
    "VARIANTS": "thumb:256,large:2048", "OUTPUT_FORMAT": "avif", "QUALITY": "70", "MAX_INPUT_BYTES": "10485760",
    "MAX_PIXELS": "50000000", "MAX_FRAMES": "50", "MAX_DECODE_MIB": "1024", "KEEP_ANIMATION": "true",
    "SOURCE_PREFIX": "uploads/", "OUTPUT_PREFIX": "variants/", "FIRESTORE_COLLECTION": "avatars", "URL_MODE": "public",
    "DELETE_ORIGINAL": "on_success", "MAX_EVENT_AGE_S": "900", "RETRY_WINDOW_S": "7200", "CLIENT_TIMEOUT_S": "5",
    "LOG_LEVEL": "DEBUG",
}  # fmt: skip


def _base_env(tmp_path: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    # A clean environment: nothing from the developer's shell (PROJECT_ID, QUALITY...) leaks in.
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),
        "PYTHON": sys.executable,  # deploy.sh validates the settings with the package's own parser
        "LANG": "C.UTF-8",
    }
    env.update(extra or {})
    return env


def deploy(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, script: Path = DEPLOY
) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(script), *args],
        env=_base_env(tmp_path, env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def dry(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, location: str | None = "US", script: Path = DEPLOY
):
    base = ["--dry-run", "--project", PROJECT, "--bucket", BUCKET]
    if location:
        base += ["--bucket-location", location]
    return deploy(tmp_path, *args, *base, env=env, script=script)


def commands(stdout: str) -> list[list[str]]:
    return [shlex.split(line) for line in stdout.splitlines() if line.strip() and not line.startswith("#")]


def env_file(stdout: str) -> dict[str, str]:
    entries = {}
    for line in stdout.splitlines():
        if line.startswith("#   "):
            key, _, value = line[4:].partition(": ")
            assert value.startswith("'") and value.endswith("'"), line
            entries[key] = value[1:-1].replace("''", "'")
    return entries


def find(cmds: list[list[str]], *prefix: str) -> list[list[str]]:
    return [cmd for cmd in cmds if cmd[: len(prefix)] == list(prefix)]


def flag(cmd: list[str], name: str) -> list[str]:
    return [word.split("=", 1)[1] for word in cmd if word.startswith(name + "=")]


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    result = dry(tmp_path_factory.mktemp("plan"))
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def function_deploy(plan):
    (cmd,) = find(commands(plan.stdout), "gcloud", "functions", "deploy")
    return cmd


# --- help and usage errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("arg", ["--help", "-h", "help"])
def test_help(tmp_path, arg):
    result = deploy(tmp_path, arg)
    assert result.returncode == 0
    for word in ("deploy", "backfill-job", "rules", "--dry-run", "PROJECT_ID", "BUCKET", "REGION", "MEMORY"):
        assert word in result.stdout
    assert "gcloud functions deploy" not in result.stdout.splitlines()[0]


def test_help_lists_every_setting(tmp_path):
    result = deploy(tmp_path, "--help")
    assert result.returncode == 0
    listed = result.stdout.split("Function settings", 1)[1].split("\n\n", 1)[0].split()
    for variable in Settings.variables():
        assert variable.name in listed


def test_help_works_without_python(tmp_path):
    result = deploy(tmp_path, "--help", env={"PYTHON": str(tmp_path / "no-python")})
    assert result.returncode == 0
    assert "needs Python >= 3.11 to list them" in result.stdout


PYTHON_3_10 = """#!/bin/sh
case "$1" in -V | --version) echo "Python 3.10.12" ;; esac
exit 1
"""


@pytest.mark.parametrize(
    ("subcommand", "python", "shown"),
    [("deploy", "missing", "not found"), ("backfill-job", "old", "is Python 3.10.12")],
)
def test_python_3_11_is_required(tmp_path, subcommand, python, shown):
    fake = tmp_path / "python3.10"
    if python == "old":
        fake.write_text(PYTHON_3_10)
        fake.chmod(0o755)
    result = dry(tmp_path, subcommand, env={"PYTHON": str(fake)})
    assert result.returncode == 1
    assert "Python >= 3.11 is needed" in result.stderr and shown in result.stderr
    assert not find(commands(result.stdout), "gcloud", "functions", "deploy")
    assert not find(commands(result.stdout), "gcloud", "run", "jobs", "deploy")


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--dry-run", "--project", PROJECT], {}, "BUCKET is not set"),
        (["--dry-run", "--bucket", BUCKET], {}, "PROJECT_ID is not set"),
        (["backfill-job", "--dry-run", "--project", PROJECT], {}, "BUCKET is not set"),
        (["--frobnicate"], {}, "unknown argument: --frobnicate"),
        (["--dry-run", "--project"], {}, "--project needs a value"),
        (["deploy", "rules"], {}, "more than one subcommand"),
    ],
)
def test_usage_errors_are_clear_and_fail(tmp_path, args, env, message):
    result = deploy(tmp_path, *args, env=env)
    assert result.returncode == 2
    assert message in result.stderr
    assert "--help" in result.stderr
    assert not commands(result.stdout)


@pytest.mark.parametrize(
    ("extra", "env", "status", "message"),
    [
        (["--memory", "512Mi"], {}, 2, "deploy.sh: error: MEMORY 512Mi (512 MiB) is too small for CONCURRENCY 1: "
                                       "100-megapixel images need about 120 MiB + 1 x 500 MiB = 620 MiB; raise MEMORY, "
                                       "lower CONCURRENCY, or pass --allow-undersized (e.g. with a lower MAX_PIXELS) "
                                       "(see deploy.sh --help)"),
        (["--region", "Mars"], {}, 2, "deploy.sh: error: REGION 'Mars' is not a region like us-central1 (see "
                                      "deploy.sh --help)"),
        ([], {"QUALITY": "500"}, 1, "python -m image_pipeline settings: error: QUALITY '500': must be a whole number "
                                    "from 1 to 100, got 500\ndeploy.sh: error: invalid function settings (see above)"),
    ],
)  # fmt: skip
def test_configuration_problems_stop_the_deploy_before_anything_runs(tmp_path, extra, env, status, message):
    result = dry(tmp_path, *extra, env=env)
    assert (result.returncode, result.stderr, result.stdout) == (status, message + "\n", "")


def test_allow_undersized_deploys_with_a_warning(tmp_path):
    result = dry(tmp_path, "--concurrency", "4", "--allow-undersized")
    assert result.returncode == 0, result.stderr
    assert "warning" in result.stderr
    (cmd,) = find(commands(result.stdout), "gcloud", "functions", "deploy")
    assert "--concurrency=4" in cmd


# --- the dry run: what is deployed --------------------------------------------------------------------------


def test_dry_run_runs_nothing(tmp_path):
    fake = _fake_gcloud(tmp_path)
    result = dry(tmp_path, env={"PATH": f"{fake.parent}:{os.environ['PATH']}", "FAKE_LOG": str(tmp_path / "log")})
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "log").exists(), "a dry run must not call gcloud, not even for lookups"
    cmds = commands(result.stdout)
    assert cmds and all(cmd[0] == "gcloud" for cmd in cmds)
    assert not list(tmp_path.glob("image-pipeline-deploy.*")), "the temporary env-vars file is removed on exit"


def test_function_is_gen2_python312_with_storage_trigger(function_deploy):
    cmd = function_deploy
    assert cmd[3] == "image-pipeline"
    assert "--gen2" in cmd
    assert flag(cmd, "--runtime") == ["python312"]
    assert flag(cmd, "--region") == ["us-central1"]
    assert flag(cmd, "--project") == [PROJECT]
    assert flag(cmd, "--source") == ["."]
    assert flag(cmd, "--entry-point") == ["process_image"]
    assert flag(cmd, "--trigger-event-filters") == ["type=google.cloud.storage.object.v1.finalized", f"bucket={BUCKET}"]
    assert flag(cmd, "--trigger-location") == ["us"]
    assert "--retry" in cmd


def test_function_is_private(function_deploy):
    assert flag(function_deploy, "--ingress-settings") == ["internal-only"]
    assert "--allow-unauthenticated" not in function_deploy
    assert "--no-allow-unauthenticated" in function_deploy  # also removes allUsers from an existing function


def test_function_identities_and_default_sizing(function_deploy):
    assert flag(function_deploy, "--service-account") == [RUNTIME]
    assert flag(function_deploy, "--trigger-service-account") == [TRIGGER]
    for name, value in {"--memory": "1Gi", "--cpu": "1", "--concurrency": "1", "--timeout": "60s"}.items():
        assert flag(function_deploy, name) == [value]
    assert (flag(function_deploy, "--max-instances"), flag(function_deploy, "--min-instances")) == (["10"], ["0"])


def test_sizing_from_flags(tmp_path):
    sizing = {"--memory": "8Gi", "--cpu": "2", "--concurrency": "8", "--timeout": "120s", "--max-instances": "3"}
    result = dry(tmp_path, *(f"{name}={value}" for name, value in sizing.items()), "--min-instances", "1")
    assert result.returncode == 0, result.stderr
    (cmd,) = find(commands(result.stdout), "gcloud", "functions", "deploy")
    for name, value in {**sizing, "--min-instances": "1"}.items():
        assert flag(cmd, name) == [value]


def test_sizing_from_environment_and_flags_win(tmp_path):
    result = dry(tmp_path, "--memory", "4Gi", env={"MEMORY": "2Gi", "CPU": "2", "CONCURRENCY": "3"})
    assert result.returncode == 0, result.stderr
    (cmd,) = find(commands(result.stdout), "gcloud", "functions", "deploy")
    assert flag(cmd, "--memory") == ["4Gi"]
    assert flag(cmd, "--cpu") == ["2"]
    assert flag(cmd, "--concurrency") == ["3"]


def test_configuration_from_environment(tmp_path):
    env = {
        "PROJECT_ID": "other-proj",
        "BUCKET": "other-bucket",
        "REGION": "europe-west1",
        "BUCKET_LOCATION": "EU",
        "FUNCTION_NAME": "resizer",
        "DRY_RUN": "1",
    }
    result = deploy(tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    (cmd,) = find(commands(result.stdout), "gcloud", "functions", "deploy")
    assert cmd[3] == "resizer"
    assert flag(cmd, "--project") == ["other-proj"]
    assert flag(cmd, "--region") == ["europe-west1"]
    assert "--trigger-event-filters=bucket=other-bucket" in cmd
    assert flag(cmd, "--trigger-location") == ["eu"]
    assert flag(cmd, "--service-account") == ["image-pipeline-runtime@other-proj.iam.gserviceaccount.com"]


def test_custom_service_accounts(tmp_path):
    external = "shared-runner@infra-proj.iam.gserviceaccount.com"
    result = dry(tmp_path, "--runtime-sa", "thumbs-rt", "--trigger-sa", external, "--build-service-account", "builder")
    assert result.returncode == 0, result.stderr
    cmds = commands(result.stdout)
    (cmd,) = find(cmds, "gcloud", "functions", "deploy")
    assert flag(cmd, "--service-account") == [f"thumbs-rt@{PROJECT}.iam.gserviceaccount.com"]
    assert flag(cmd, "--trigger-service-account") == [external]
    assert flag(cmd, "--build-service-account") == [f"projects/{PROJECT}/serviceAccounts/builder@{PROJECT}{SA_DOMAIN}"]
    created = [c[4] for c in find(cmds, "gcloud", "iam", "service-accounts", "create")]
    assert created == ["thumbs-rt"], "an account of another project is used, never created"


# --- the dry run: identities and IAM ------------------------------------------------------------------------


def test_required_apis_are_enabled(plan):
    (cmd,) = find(commands(plan.stdout), "gcloud", "services", "enable")
    for api in (
        "cloudfunctions",
        "run",
        "eventarc",
        "cloudbuild",
        "artifactregistry",
        "pubsub",
        "storage",
        "firestore",
    ):
        assert f"{api}.googleapis.com" in cmd
    assert flag(cmd, "--project") == [PROJECT]


def test_skip_apis(tmp_path):
    result = dry(tmp_path, "--skip-apis")
    assert not find(commands(result.stdout), "gcloud", "services")


@pytest.mark.parametrize("email", [RUNTIME, TRIGGER])
def test_service_accounts_are_described_before_being_created(plan, email):
    cmds = commands(plan.stdout)
    describe = cmds.index(
        ["gcloud", "iam", "service-accounts", "describe", email, f"--project={PROJECT}", "--format=value(email)"]
    )
    (create,) = [
        i for i, c in enumerate(cmds) if c[:5] == ["gcloud", "iam", "service-accounts", "create", email.split("@")[0]]
    ]
    assert describe < create
    assert "# only if the describe above reports it missing:" in plan.stdout


@pytest.mark.parametrize(
    ("prefix", "member", "role"),
    [
        (
            ("gcloud", "storage", "buckets", "add-iam-policy-binding", f"gs://{BUCKET}"),
            RUNTIME,
            "roles/storage.objectUser",
        ),
        (("gcloud", "projects", "add-iam-policy-binding", PROJECT), RUNTIME, "roles/datastore.user"),
        (("gcloud", "projects", "add-iam-policy-binding", PROJECT), TRIGGER, "roles/eventarc.eventReceiver"),
        (("gcloud", "projects", "add-iam-policy-binding", PROJECT), AGENT_PLACEHOLDER, "roles/pubsub.publisher"),
        (("gcloud", "functions", "add-invoker-policy-binding", "image-pipeline"), TRIGGER, None),
    ],
)
def test_iam_bindings(plan, prefix, member, role):
    matches = [
        cmd
        for cmd in find(commands(plan.stdout), *prefix)
        if flag(cmd, "--member") == [f"serviceAccount:{member}"] and flag(cmd, "--role") == ([role] if role else [])
    ]
    assert len(matches) == 1, plan.stdout


def test_no_broad_roles_keys_or_secrets(plan):
    text = plan.stdout
    for forbidden in (
        "roles/editor",
        "roles/owner",
        "roles/storage.admin",
        "roles/run.admin",
        "allUsers",
        "allAuthenticatedUsers",
        "keys create",
        "secrets",
        "--set-secrets",
        "make_public",
    ):
        assert forbidden not in text
    runtime_project_roles = [
        flag(cmd, "--role")[0]
        for cmd in find(commands(text), "gcloud", "projects", "add-iam-policy-binding")
        if flag(cmd, "--member") == [f"serviceAccount:{RUNTIME}"]
    ]
    assert runtime_project_roles == ["roles/datastore.user"], "object access is granted on the bucket only"


def test_project_bindings_are_unconditional_and_non_interactive(plan):
    for cmd in find(commands(plan.stdout), "gcloud", "projects", "add-iam-policy-binding"):
        assert "--condition=None" in cmd
        assert "--quiet" in cmd


def test_storage_service_agent_is_looked_up(plan):
    cmds = commands(plan.stdout)
    lookup = cmds.index(["gcloud", "storage", "service-agent", f"--project={PROJECT}"])
    (grant,) = [i for i, c in enumerate(cmds) if "--role=roles/pubsub.publisher" in c]
    assert lookup < grant


def test_order_of_steps(plan):
    heads = [" ".join(cmd[:4]) for cmd in commands(plan.stdout)]

    def first(head: str) -> int:
        return next(i for i, h in enumerate(heads) if h.startswith(head))

    assert first("gcloud storage buckets describe") == 0, "the location is checked before anything changes"
    assert first("gcloud services enable") < first("gcloud iam service-accounts create")
    assert first("gcloud iam service-accounts create") < first("gcloud storage buckets add-iam-policy-binding")
    assert first("gcloud projects add-iam-policy-binding") < first("gcloud functions deploy")
    assert first("gcloud functions deploy") < first("gcloud functions add-invoker-policy-binding")
    assert heads[-1].startswith("gcloud functions add-invoker-policy-binding")


# --- the env-vars file ----------------------------------------------------------------------------------------


def test_env_vars_file_defaults(plan, function_deploy):
    (path,) = flag(function_deploy, "--env-vars-file")
    assert path.endswith(".yaml")
    assert f"# env-vars file {path}" in plan.stdout
    assert env_file(plan.stdout) == {
        "SOURCE_PREFIX": "raw-uploads/",
        "OUTPUT_PREFIX": "showcase-images/",
        "FIRESTORE_COLLECTION": "characters",
        "LOG_LEVEL": "INFO",
    }
    assert "--set-env-vars" not in " ".join(function_deploy)


def every_setting() -> dict[str, str]:
    """A valid value for every variable from_env reads that has a default: the sample values above, the shown
    default elsewhere (ROUTES_FILE, unset by default, excludes the route-level ones: see the routes tests)."""
    return {variable.name: variable.default for variable in Settings.variables() if variable.default} | SETTINGS


@pytest.mark.parametrize("subcommand", ["deploy", "backfill-job"])
def test_env_vars_file_holds_exactly_what_from_env_reads(tmp_path, subcommand):
    env = every_setting() | {"SOME_SECRET": "hunter2", "PROJECT_ID": "ignored-here"}
    result = dry(tmp_path, subcommand, env=env)
    assert result.returncode == 0, result.stderr
    extra = {"BUCKET": BUCKET, "GOOGLE_CLOUD_PROJECT": PROJECT} if subcommand == "backfill-job" else {}
    assert env_file(result.stdout) == every_setting() | extra
    assert "hunter2" not in result.stdout


# --- bucket location vs region --------------------------------------------------------------------------------


def test_a_compatible_bucket_location_sets_the_trigger_location(tmp_path):
    result = dry(tmp_path, "--region", "europe-west4", location="EU")
    assert result.returncode == 0, result.stderr
    (cmd,) = find(commands(result.stdout), "gcloud", "functions", "deploy")
    assert flag(cmd, "--trigger-location") == ["eu"]
    assert flag(cmd, "--region") == ["europe-west4"]


def test_an_incompatible_bucket_location_stops_before_anything_changes(tmp_path):
    result = dry(tmp_path, "--region", "us-central1", location="EU")
    assert result.returncode == 1
    assert "is in location 'EU', which is not compatible with region 'us-central1'" in result.stderr
    assert [" ".join(cmd[:4]) for cmd in commands(result.stdout)] == ["gcloud storage buckets describe"]


def test_unknown_location_in_dry_run_is_noted(tmp_path):
    result = dry(tmp_path, location=None)
    assert result.returncode == 0, result.stderr
    cmds = commands(result.stdout)
    assert cmds[0] == [
        "gcloud",
        "storage",
        "buckets",
        "describe",
        f"gs://{BUCKET}",
        f"--project={PROJECT}",
        "--format=value(location)",
    ]
    assert "region check skipped" in result.stdout
    (cmd,) = find(cmds, "gcloud", "functions", "deploy")
    assert not flag(cmd, "--trigger-location")


# --- backfill-job and rules -----------------------------------------------------------------------------------


def test_backfill_job(tmp_path):
    result = dry(tmp_path, "backfill-job", "--tasks", "50", "--parallelism", "10")
    assert result.returncode == 0, result.stderr
    cmds = commands(result.stdout)
    (job,) = find(cmds, "gcloud", "run", "jobs", "deploy")
    assert job[4] == "image-pipeline-backfill"
    assert flag(job, "--source") == ["."]
    assert flag(job, "--tasks") == ["50"]
    assert flag(job, "--parallelism") == ["10"]
    assert flag(job, "--command") == ["python"]
    assert flag(job, "--args") == ["-m,image_pipeline,backfill"]
    assert flag(job, "--service-account") == [RUNTIME]
    assert flag(job, "--region") == ["us-central1"]
    assert flag(job, "--env-vars-file")
    assert env_file(result.stdout)["BUCKET"] == BUCKET
    (execute,) = find(cmds, "gcloud", "run", "jobs", "execute")
    assert execute[4] == "image-pipeline-backfill"
    assert cmds.index(job) < cmds.index(execute)
    assert not find(cmds, "gcloud", "functions")


def test_backfill_job_options(tmp_path):
    result = dry(
        tmp_path,
        "backfill-job",
        "--no-execute",
        "--backfill-arg=--force",
        "--backfill-arg",
        "--limit=10",
        "--job-name",
        "reprocess",
    )
    assert result.returncode == 0, result.stderr
    cmds = commands(result.stdout)
    (job,) = find(cmds, "gcloud", "run", "jobs", "deploy")
    assert job[4] == "reprocess"
    assert flag(job, "--args") == ["-m,image_pipeline,backfill,--force,--limit=10"]
    assert not find(cmds, "gcloud", "run", "jobs", "execute")


def test_rules(tmp_path):
    result = deploy(tmp_path, "rules", "--dry-run", "--project", PROJECT)
    assert result.returncode == 0, result.stderr
    (cmd,) = commands(result.stdout)
    assert cmd[:4] == ["firebase", "deploy", "--only", "storage,firestore:rules"]
    assert f"--project={PROJECT}" in cmd


# --- routes (ROUTES_FILE) -----------------------------------------------------------------------------------------
# Each test deploys from a copy of the source folder in tmp_path, so routes files are written there, never into
# the checkout.

EXAMPLE_ROUTES = (ROOT / "examples" / "routes.toml").read_text()
ROUTE_LEVEL = [variable.name for variable in Settings.variables() if variable.route]


@pytest.fixture
def source(tmp_path) -> Path:
    """A copy of what deploy.sh deploys from: the script, the package, .gcloudignore and the rules."""
    tree = tmp_path / "source"
    tree.mkdir()
    for name in ("deploy.sh", ".gcloudignore", "firebase.json", "storage.rules", "firestore.rules"):
        shutil.copy2(ROOT / name, tree / name)
    shutil.copytree(ROOT / "image_pipeline", tree / "image_pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    return tree


def with_routes(tree: Path, text: str = EXAMPLE_ROUTES, name: str = "routes.toml") -> Path:
    path = tree / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize("subcommand", ["deploy", "backfill-job"])
def test_routes_file_is_passed_relative_without_route_level_variables(tmp_path, source, subcommand):
    path = with_routes(source, name="routes/apps.toml")
    result = dry(tmp_path, subcommand, env={"ROUTES_FILE": str(path)}, script=source / "deploy.sh")
    assert result.returncode == 0, result.stderr
    written = env_file(result.stdout)
    assert written["ROUTES_FILE"] == "routes/apps.toml"
    assert not set(written) & set(ROUTE_LEVEL), "the function refuses route-level variables beside ROUTES_FILE"
    if subcommand == "deploy":  # the avatar route encodes AVIF
        (cmd,) = find(commands(result.stdout), "gcloud", "functions", "deploy")
        assert flag(cmd, "--timeout") == ["120s"]


def test_an_invalid_routes_file_stops_the_deploy_with_one_line_naming_route_and_key(tmp_path, source):
    broken = EXAMPLE_ROUTES.replace('name = "gallery"', 'name = "gallery"\nsizes = [320]')
    with_routes(source, broken)
    result = dry(tmp_path, env={"ROUTES_FILE": "routes.toml"}, script=source / "deploy.sh")
    assert result.returncode == 1
    (message,) = [line for line in result.stderr.splitlines() if "settings: error:" in line]
    assert "route 'gallery'" in message and "'sizes'" in message
    assert "invalid function settings" in result.stderr
    assert not commands(result.stdout), "nothing is deployed, nothing is even looked up"


def test_a_missing_routes_file_is_refused(tmp_path, source):
    result = dry(tmp_path, env={"ROUTES_FILE": "routes/none.toml"}, script=source / "deploy.sh")
    assert result.returncode == 1
    assert "ROUTES_FILE 'routes/none.toml': no such file" in result.stderr


def test_a_route_level_variable_beside_the_routes_file_is_refused(tmp_path, source):
    with_routes(source)
    result = dry(
        tmp_path, env={"ROUTES_FILE": "routes.toml", "SOURCE_PREFIX": "raw-uploads/"}, script=source / "deploy.sh"
    )
    assert result.returncode == 1
    assert "ROUTES_FILE is set: the routes file says what these said; unset SOURCE_PREFIX" in result.stderr
    assert not commands(result.stdout)


# An extension route (a Resize Images instance) that publishes its events when given a channel.
EXTENSION_ROUTE = """\
[[route]]
name = "resize"
extension = "storage-resize-images"
IMG_SIZES = "200x200,680x680"
IMAGE_TYPE = "webp"
"""


def test_an_extension_route_s_channel_is_checked_and_the_runtime_account_may_publish_there(tmp_path, source):
    with_routes(source, EXTENSION_ROUTE + 'EVENTARC_CHANNEL = "firebase"\n')
    result = dry(tmp_path, env={"ROUTES_FILE": "routes.toml", "GOOGLE_CLOUD_PROJECT": "elsewhere"},
                 script=source / "deploy.sh")  # fmt: skip
    assert result.returncode == 0, result.stderr
    cmds = commands(result.stdout)
    describe = ["gcloud", "eventarc", "channels", "describe", "firebase", "--location=us-central1",
                f"--project={PROJECT}", "--format=value(name)"]  # fmt: skip
    assert describe in cmds
    assert "gcloud eventarc channels create firebase --location=us-central1 --project=demo-app" in result.stdout
    channel_url = f"{EVENTARC_API}/{FIREBASE_CHANNEL}"
    (get,) = [cmd for cmd in cmds if cmd[-1] == f"{channel_url}:getIamPolicy?options.requestedPolicyVersion=3"]
    (edit,) = [cmd for cmd in cmds if cmd[1:5] == ["-m", "image_pipeline", "deploy-plan", "--prog"]]
    (put,) = [cmd for cmd in cmds if cmd[-1] == f"{channel_url}:setIamPolicy"]
    assert get[0] == put[0] == "curl" and edit[0] == sys.executable
    policy = get[get.index("--output") + 1]
    assert edit[edit.index("channel-policy") + 1 :] == [
        f"--member=serviceAccount:{RUNTIME}", "--role=roles/eventarc.publisher", policy
    ]  # fmt: skip
    (token,) = find(cmds, "gcloud", "auth", "print-access-token")
    order = [cmds.index(cmd) for cmd in (describe, *find(cmds, "gcloud", "iam", "service-accounts", "create"), token,
                                         get, edit, put, *find(cmds, "gcloud", "functions", "deploy"))]  # fmt: skip
    assert order == sorted(order), "the channel is checked before any change, the grant made before the deploy"
    (enable,) = find(cmds, "gcloud", "services", "enable")
    assert "eventarcpublishing.googleapis.com" in enable
    assert env_file(result.stdout)["GOOGLE_CLOUD_PROJECT"] == PROJECT


def test_an_extension_route_without_a_channel_needs_no_eventarc_access(tmp_path, source):
    with_routes(source, EXTENSION_ROUTE)
    result = dry(tmp_path, env={"ROUTES_FILE": "routes.toml", "GOOGLE_CLOUD_PROJECT": PROJECT},
                 script=source / "deploy.sh")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert find(commands(result.stdout), "gcloud", "functions", "deploy")
    for absent in ("eventarc channels", "eventarc.publisher", "eventarcpublishing", "curl", "print-access-token"):
        assert absent not in result.stdout
    assert env_file(result.stdout) == {"LOG_LEVEL": "INFO", "ROUTES_FILE": "routes.toml"}


def test_the_deploy_command_an_import_prints_deploys_its_routes(tmp_path, source, capsys):
    exported = tmp_path / "storage-resize-images.env"
    exported.write_text(EXPORTED.replace("FUNCTION_MEMORY=1024", "FUNCTION_MEMORY=2048"))
    assert main(["routes", "import-extension", str(exported), "--project", "demo-x"]) == 0
    routes = capsys.readouterr().out
    with_routes(source, routes)
    (line,) = [line for line in routes.splitlines() if line.startswith("#   ROUTES_FILE=routes.toml ./deploy.sh ")]
    args = shlex.split(line.removeprefix("#   ROUTES_FILE=routes.toml ./deploy.sh "))
    result = deploy(tmp_path, *args, "--dry-run", "--bucket-location", "US", env={"ROUTES_FILE": "routes.toml"},
                    script=source / "deploy.sh")  # fmt: skip
    assert result.returncode == 0, result.stderr
    cmds = commands(result.stdout)
    (cmd,) = find(cmds, "gcloud", "functions", "deploy")
    assert (flag(cmd, "--project"), flag(cmd, "--memory"), flag(cmd, "--region")) == (
        ["demo-x"],
        ["2Gi"],
        ["us-central1"],
    )
    assert "--trigger-event-filters=bucket=demo-x.appspot.com" in cmd
    assert find(
        cmds, "gcloud", "eventarc", "channels", "describe", "firebase", "--location=us-central1", "--project=demo-x"
    )
    assert env_file(result.stdout)["GOOGLE_CLOUD_PROJECT"] == "demo-x"


def test_every_flag_an_import_names_is_deploy_sh_s(tmp_path):
    result = deploy(tmp_path, "--help")
    options = {line.split()[0] for line in result.stdout.splitlines() if line.startswith("  --")}
    named = {param.deploy_flag for param in PARAMS if param.deploy_flag}
    assert named == {"--bucket", "--memory", "--region", "--timeout", "--min-instances", "--max-instances"}
    assert named <= options


FAKE_FIREBASE = r"""#!/usr/bin/env bash
# Keeps a copy of the rules files the --config names.
for arg in "$@"; do
  case $arg in --config=*) cp "$(dirname "${arg#--config=}")"/*.rules "$FAKE_RULES_OUT"/ ;; esac
done
"""


def deploy_rules(tmp_path: Path, source: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess, Path]:
    """A real `deploy.sh rules` against a fake firebase; returns the folder holding the rules it deployed."""
    fake = tmp_path / "bin" / "firebase"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text(FAKE_FIREBASE)
    fake.chmod(0o755)
    out = tmp_path / "deployed"
    out.mkdir(exist_ok=True)
    env = env | {"PATH": f"{fake.parent}:{os.environ['PATH']}", "FAKE_RULES_OUT": str(out)}
    return deploy(tmp_path, "rules", "--project", PROJECT, env=env, script=source / "deploy.sh"), out


@pytest.mark.parametrize("env", [{"ROUTES_FILE": "routes.toml"}, {"SOURCE_PREFIX": "uploads/"}])
def test_rules_are_generated_for_the_configured_routes(tmp_path, source, env):
    with_routes(source)
    result, deployed = deploy_rules(tmp_path, source, env)
    assert result.returncode == 0, result.stderr
    expected = tmp_path / "expected"
    subprocess.run(
        [sys.executable, "-P", "-m", "image_pipeline", "rules", "--out", str(expected)],
        cwd=tmp_path, env=_base_env(tmp_path, env | {"PYTHONPATH": str(source)}), check=True
    )  # fmt: skip
    for name in ("storage.rules", "firestore.rules"):
        assert (deployed / name).read_text() == (expected / name).read_text()
    assert (deployed / "storage.rules").read_text() != (ROOT / "storage.rules").read_text()
    assert "rules generated for the configured routes" in result.stderr


def test_rules_without_routes_deploy_the_committed_files(tmp_path, source):
    result, deployed = deploy_rules(tmp_path, source, {})
    assert result.returncode == 0, result.stderr
    for name in ("storage.rules", "firestore.rules"):
        assert (deployed / name).read_text() == (ROOT / name).read_text()


def test_rules_with_an_invalid_routes_file_deploy_nothing(tmp_path, source):
    with_routes(source, EXAMPLE_ROUTES.replace('fit = "cover"', 'fit = "fill"'))
    result, deployed = deploy_rules(tmp_path, source, {"ROUTES_FILE": "routes.toml"})
    assert result.returncode == 1
    assert "route 'avatar'" in result.stderr and "cannot generate the rules" in result.stderr
    assert not list(deployed.iterdir())


def test_rules_dry_run_names_the_generated_config(tmp_path, source):
    with_routes(source)
    result = deploy(
        tmp_path, "rules", "--dry-run", "--project", PROJECT, env={"ROUTES_FILE": "routes.toml"},
        script=source / "deploy.sh"
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (cmd,) = commands(result.stdout)
    (config,) = flag(cmd, "--config")
    assert config.endswith("/rules/firebase.json") and not config.startswith(str(source))


# --- a real run, against a fake gcloud --------------------------------------------------------------------------

FAKE_GCLOUD = r"""#!/usr/bin/env bash
# Records each call as a JSON line; answers the lookups deploy.sh makes.
python3 - "$@" <<'PY' >>"$FAKE_LOG"
import json, sys, pathlib
args = sys.argv[1:]
record = {"args": args}
for arg in args:
    if arg.startswith("--env-vars-file="):
        record["env_file"] = pathlib.Path(arg.split("=", 1)[1]).read_text()
print(json.dumps(record))
PY
case "$1 $2 $3" in
  "storage buckets describe") echo "$FAKE_LOCATION" ;;
  "iam service-accounts describe") [[ ${FAKE_SA_EXISTS:-0} == 1 ]] || { echo "NOT_FOUND" >&2; exit 1; } ;;
  "storage service-agent "*) echo "service-123456@gs-project-accounts.iam.gserviceaccount.com" ;;
  "auth print-access-token "*) echo "fake-token" ;;
  "eventarc channels describe") [[ ${FAKE_CHANNEL_MISSING:-0} == 0 ]] || { echo "NOT_FOUND: $4" >&2; exit 1; } ;;
esac
exit 0
"""


def _fake_gcloud(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "gcloud"
    fake.write_text(FAKE_GCLOUD)
    fake.chmod(0o755)
    return fake


def real_run(
    tmp_path: Path,
    *args: str,
    location: str = "US",
    sa_exists: bool = False,
    env: dict[str, str] | None = None,
    script: Path = DEPLOY,
):
    fake = _fake_gcloud(tmp_path)
    log = tmp_path / "gcloud.log"
    log.unlink(missing_ok=True)
    env = {
        "PATH": f"{fake.parent}:{os.environ['PATH']}",
        "FAKE_LOG": str(log),
        "FAKE_LOCATION": location,
        "FAKE_SA_EXISTS": "1" if sa_exists else "0",
        # The function's settings: a value other than its default, unless given.
        **(env if env is not None else {"QUALITY": "72"}),
    }
    result = deploy(tmp_path, *args, "--project", PROJECT, "--bucket", BUCKET, env=env, script=script)
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return result, calls


def _normalise(cmd: list[str]) -> list[str]:
    out = []
    for word in cmd:
        if word.startswith("--env-vars-file="):
            word = "--env-vars-file=ENV_FILE"
        out.append(word.replace("service-123456@", "service-PROJECT_NUMBER@"))
    return out


def test_real_run_matches_the_dry_run_plan(tmp_path):
    result, calls = real_run(tmp_path)
    assert result.returncode == 0, result.stderr
    planned = dry(tmp_path, env={"QUALITY": "72"}, location="US")
    assert [_normalise(c["args"]) for c in calls] == [_normalise(cmd[1:]) for cmd in commands(planned.stdout)]
    (deploy_call,) = [c for c in calls if c["args"][:2] == ["functions", "deploy"]]
    assert "QUALITY: '72'" in deploy_call["env_file"]
    assert "SOURCE_PREFIX: 'raw-uploads/'" in deploy_call["env_file"]
    assert "--trigger-location=us" in deploy_call["args"]
    assert "+ gcloud functions deploy image-pipeline" in result.stderr


def test_real_rerun_is_idempotent(tmp_path):
    result, calls = real_run(tmp_path, sa_exists=True)
    assert result.returncode == 0, result.stderr
    heads = [" ".join(c["args"][:3]) for c in calls]
    assert "iam service-accounts create" not in heads
    assert heads.count("iam service-accounts describe") == 2
    assert "functions deploy image-pipeline" in heads
    assert "service account" in result.stderr and "exists" in result.stderr


def test_real_run_checks_the_actual_bucket_location_before_changing_anything(tmp_path):
    result, calls = real_run(tmp_path, "--region", "us-central1", location="EUROPE-WEST1")
    assert result.returncode == 1
    assert "is in location 'EUROPE-WEST1', which is not compatible with region 'us-central1'" in result.stderr
    assert [c["args"][:3] for c in calls] == [["storage", "buckets", "describe"]]


def test_real_run_rejects_a_wrong_bucket_location_flag(tmp_path):
    result, calls = real_run(tmp_path, "--bucket-location", "EU", location="US")
    assert result.returncode == 1
    assert "does not match" in result.stderr
    assert len(calls) == 1


def test_real_backfill_job_needs_the_runtime_account(tmp_path):
    result, calls = real_run(tmp_path, "backfill-job", sa_exists=False)
    assert result.returncode == 1
    assert "run 'deploy.sh deploy' first" in result.stderr
    assert [c["args"][:3] for c in calls] == [["iam", "service-accounts", "describe"]]

    result, calls = real_run(tmp_path, "backfill-job", sa_exists=True)
    assert result.returncode == 0, result.stderr
    (job,) = [c for c in calls if c["args"][:3] == ["run", "jobs", "deploy"]]
    assert f"BUCKET: '{BUCKET}'" in job["env_file"]
    assert [c["args"][:3] for c in calls][-1] == ["run", "jobs", "execute"]


FAKE_CURL = r"""#!PYTHON
# Records each call as a JSON line (its arguments, the header file's and the request's contents); answers getIamPolicy
# with FAKE_POLICY and each setIamPolicy with the next status of FAKE_SET_STATUSES, as `--write-out '%{http_code}'`.
import json, os, pathlib, sys

args = sys.argv[1:]
log = pathlib.Path(os.environ["FAKE_CURL_LOG"])
calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
call = {"args": args, "header": pathlib.Path(args[args.index("--header") + 1].removeprefix("@")).read_text()}
if "--data" in args:
    call["request"] = json.loads(pathlib.Path(args[args.index("--data") + 1].removeprefix("@")).read_text())
    status = os.environ["FAKE_SET_STATUSES"].split()[sum("request" in done for done in calls)]
    answer = "{}" if status == "200" else '{"error": {"code": %s}}' % status
else:
    status, answer = "200", os.environ["FAKE_POLICY"]
with log.open("a") as handle:
    handle.write(json.dumps(call) + "\n")
pathlib.Path(args[args.index("--output") + 1]).write_text(answer)
print(status, end="")
"""


def channel_run(tmp_path: Path, source: Path, policy: dict, set_statuses: str = "", channel_missing: bool = False):
    """A real deploy of an extension route publishing to channels/firebase, against a fake gcloud and a fake curl."""
    with_routes(source, EXTENSION_ROUTE + 'EVENTARC_CHANNEL = "firebase"\n')
    curl = tmp_path / "bin" / "curl"
    curl.parent.mkdir(exist_ok=True)
    curl.write_text(FAKE_CURL.replace("PYTHON", sys.executable, 1))
    curl.chmod(0o755)
    log = tmp_path / "curl.log"
    env = {
        "ROUTES_FILE": "routes.toml",
        "FAKE_CURL_LOG": str(log),
        "FAKE_POLICY": json.dumps(policy),
        "FAKE_SET_STATUSES": set_statuses,
        "FAKE_CHANNEL_MISSING": "1" if channel_missing else "0",
    }
    result, calls = real_run(tmp_path, env=env, script=source / "deploy.sh")
    curl_calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return result, calls, curl_calls


def test_real_run_stops_at_a_missing_channel_before_changing_any_iam(tmp_path, source):
    result, calls, curl_calls = channel_run(tmp_path, source, {"etag": "ACAB"}, channel_missing=True)
    assert result.returncode == 1
    assert "NOT_FOUND: firebase" in result.stderr, "gcloud's own answer is shown"
    assert (
        f"deploy.sh: error: Eventarc channel {FIREBASE_CHANNEL} not found (or not visible to you): route(s) resize "
        "publish their events there (EVENTARC_CHANNEL), so it must exist before the deploy. Firebase creates "
        "channels/firebase when an extension with events is installed; otherwise create it: gcloud eventarc channels "
        f"create firebase --location=us-central1 --project={PROJECT}\n"
    ) in result.stderr
    assert [call["args"][:3] for call in calls][-1] == ["eventarc", "channels", "describe"]
    assert not [call for call in calls if "add-iam-policy-binding" in call["args"]] and not curl_calls


def test_real_run_grants_on_the_channel_and_reads_again_after_a_conflict(tmp_path, source):
    policy = {"version": 1, "etag": "BwX1", "bindings": [{"role": "roles/eventarc.admin", "members": ["user:a@x.com"]}]}
    result, calls, curl_calls = channel_run(tmp_path, source, policy, set_statuses="409 200")
    assert result.returncode == 0, result.stderr
    url = f"{EVENTARC_API}/{FIREBASE_CHANNEL}"
    assert [call["args"][-1].removeprefix(url) for call in curl_calls] == [
        ":getIamPolicy?options.requestedPolicyVersion=3", ":setIamPolicy"
    ] * 2  # fmt: skip
    granted = {"role": "roles/eventarc.publisher", "members": [f"serviceAccount:{RUNTIME}"]}
    assert curl_calls[-1]["request"] == {"policy": {**policy, "bindings": [*policy["bindings"], granted]}}
    assert all(call["header"] == "Authorization: Bearer fake-token\n" for call in curl_calls)
    assert not any("fake-token" in word for call in curl_calls for word in call["args"]), "no token on a command line"
    assert "changed since it was read (HTTP 409); reading it again" in result.stderr
    assert ["auth", "print-access-token"] in [call["args"] for call in calls]
    assert [call["args"][:2] for call in calls][-2] == ["functions", "deploy"]


def test_real_run_sets_nothing_when_the_runtime_account_may_publish_already(tmp_path, source):
    policy = {
        "etag": "BwX1",
        "bindings": [{"role": "roles/eventarc.publisher", "members": [f"serviceAccount:{RUNTIME}"]}],
    }
    result, _, curl_calls = channel_run(tmp_path, source, policy)
    assert result.returncode == 0, result.stderr
    assert [call["args"][-1].rpartition(":")[2] for call in curl_calls] == [
        "getIamPolicy?options.requestedPolicyVersion=3"
    ]
    assert f"already has roles/eventarc.publisher on {FIREBASE_CHANNEL}" in result.stderr


# --- shellcheck -----------------------------------------------------------------------------------------------


@pytest.mark.skipif(
    shutil.which("shellcheck") is None, reason="shellcheck not installed (apt-get install -y shellcheck)"
)
def test_shellcheck_clean():
    result = subprocess.run(
        ["shellcheck", "--severity=style", str(DEPLOY)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_script_is_strict_and_executable():
    text = DEPLOY.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "\nset -euo pipefail\n" in text
    assert os.access(DEPLOY, os.X_OK)
