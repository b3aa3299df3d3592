#!/usr/bin/env bash
# deploy.sh - deploy image-pipeline to Cloud Functions (2nd gen), safely and idempotently.
#
#   ./deploy.sh [deploy]      the function, its identities and their IAM (default)
#   ./deploy.sh backfill-job  a Cloud Run job running `python -m image_pipeline backfill`, sharded over tasks
#   ./deploy.sh rules         `firebase deploy --only storage,firestore:rules` (rules generated for ROUTES_FILE)
#
# Every step is safe to re-run: services are enabled (a no-op when on), service accounts are created only
# when `describe` says they are missing, IAM bindings are added (adding an existing binding changes
# nothing) and `gcloud functions deploy` creates or updates. `--dry-run` prints every command, in order,
# one per line (lines starting with `#` are notes), and runs nothing, not even read-only lookups.
#
# Security posture (what the original CharaForge worker got wrong): no `--allow-unauthenticated`, ingress
# `internal-only`, a dedicated runtime identity with object access on this one bucket and Firestore access (and, when
# extension routes publish events, roles/eventarc.publisher on their channels only), a dedicated trigger identity that
# may invoke this one function, no service-account keys and no secrets: the runtime identity is the credential.
set -euo pipefail

PROG=${0##*/}
SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)

usage() {
  cat <<EOF
Usage: $PROG [deploy|backfill-job|rules] [options]

Subcommands:
  deploy          (default) enable APIs, check the bucket location, create the runtime and trigger service
                  accounts if missing, grant least-privilege IAM, deploy the function (gen2, Python 3.12,
                  trigger google.cloud.storage.object.v1.finalized on BUCKET, retries on, ingress
                  internal-only, no unauthenticated access) and let only the trigger identity invoke it.
                  When extension routes publish events (EVENTARC_CHANNEL), each channel must exist (checked
                  first) and the runtime account gets roles/eventarc.publisher on it (see "Events" below).
  backfill-job    deploy (from source) and execute a Cloud Run job running
                  'python -m image_pipeline backfill' as the runtime service account, with TASKS tasks;
                  each task processes its shard (CLOUD_RUN_TASK_INDEX of CLOUD_RUN_TASK_COUNT).
                  Run 'deploy' first: the job reuses its service account and IAM.
  rules           deploy storage.rules and firestore.rules: firebase deploy --only storage,firestore:rules.
                  With ROUTES_FILE (or a built-in route variable such as SOURCE_PREFIX) set, the rules are
                  generated for the configured routes ('python3 -m image_pipeline rules --out DIR'); otherwise
                  the committed files, which are what the generator makes for the built-in route.

Options (each has an environment variable; flags win):
  --project ID              PROJECT_ID (or GOOGLE_CLOUD_PROJECT; else 'gcloud config get-value project')
  --region REGION           REGION, default us-central1 (the function's and the job's region)
  --bucket NAME             BUCKET (required for deploy and backfill-job), e.g. my-app.firebasestorage.app
  --bucket-location LOC     BUCKET_LOCATION: assume this location instead of looking it up in a dry run;
                            a real run looks it up and fails if it differs
  --function-name NAME      FUNCTION_NAME, default image-pipeline
  --runtime-sa NAME|EMAIL   RUNTIME_SA, default image-pipeline-runtime (created in PROJECT if missing)
  --trigger-sa NAME|EMAIL   TRIGGER_SA, default image-pipeline-trigger (created in PROJECT if missing)
  --memory SIZE             MEMORY, default 1Gi; 4Gi with background removal (see "Sizing" below)
  --cpu N                   CPU, default 1; 2 with background removal
  --concurrency N           CONCURRENCY, default 1  (requests per instance; >1 needs CPU >= 1 and ~500 MiB each)
  --timeout DURATION        TIMEOUT, default 60s; 120s when a route encodes AVIF or removes backgrounds
  --max-instances N         MAX_INSTANCES, default 10 (the cost ceiling: MAX_INSTANCES x CONCURRENCY images)
  --min-instances N         MIN_INSTANCES, default 0
  --build-service-account SA  BUILD_SERVICE_ACCOUNT, optional: Cloud Build identity (email or full name)
  --allow-undersized        ALLOW_UNDERSIZED=1: deploy even if MEMORY is below the budget (see "Sizing")
  --cutout-model FILE|gs://BUCKET/OBJECT
                            CUTOUT_MODEL: background removal for the built-in route (see "Background removal")
  --cutout-family FAMILY    CUTOUT_FAMILY: isnet or u2net, the model's family
  --cutout-sha256 HEX       CUTOUT_MODEL_SHA256: required for a gs:// model; checked against a FILE's
  --skip-apis               SKIP_APIS=1: do not run 'gcloud services enable'
  --dry-run                 DRY_RUN=1: print the commands, run nothing
  -h, --help                this help

backfill-job options:
  --job-name NAME           JOB_NAME, default image-pipeline-backfill
  --tasks N                 TASKS, default 10 (shards; each task gets CLOUD_RUN_TASK_INDEX/COUNT)
  --parallelism N           PARALLELISM, default 0 (= as many tasks at once as Cloud Run allows)
  --job-memory SIZE         JOB_MEMORY, default 2Gi
  --job-cpu N               JOB_CPU, default 2
  --task-timeout DURATION   TASK_TIMEOUT, default 3600s
  --max-retries N           MAX_RETRIES, default 3 (a retried task resumes: the backfill skips what is done)
  --backfill-arg ARG        BACKFILL_ARGS (space-separated): extra arguments for the backfill command,
                            e.g. --backfill-arg=--force; repeatable; no commas
  --no-execute              EXECUTE=0: deploy the job but do not execute it
  --wait                    WAIT=1: wait for the execution to finish

Function settings, written to an --env-vars-file (only those set are passed, plus the defaults shown),
as the function's own code lists them ('python3 -m image_pipeline settings --markdown' describes each):
$(help_setting_names)

Routes: ROUTES_FILE names a routes file (TOML; see docs/routes.md and examples/routes.toml). Cloud Functions
uploads this folder as filtered by .gcloudignore, which ships only main.py, requirements.txt, image_pipeline/,
routes.toml and routes/: so the file must be routes.toml or inside routes/ here (a path relative to this folder,
or an absolute path inside it); anything else is refused. It is validated with the function's own code before
anything changes (a bad file stops the deploy with one line naming the route and the key) and passed as a
relative path. Beside it, the built-in route's variables ('python3 -m image_pipeline settings --names
--route-level': SOURCE_PREFIX, VARIANTS, ...) are neither defaulted nor allowed: the routes file says what they
said.

Events: an extension route with EVENTARC_CHANNEL publishes the Resize Images extension's events there. The channel
must exist: Firebase creates channels/firebase when an extension with events is installed; otherwise create it with
'gcloud eventarc channels create ID --location=LOCATION --project=PROJECT'. The deploy checks it with 'gcloud eventarc
channels describe' before changing any IAM, enables eventarcpublishing.googleapis.com, and grants the runtime account
roles/eventarc.publisher on each channel (on the channel only, not the project). gcloud has no command for a channel's
IAM policy, so the grant goes through the Eventarc API with curl and 'gcloud auth print-access-token': getIamPolicy,
the binding added by 'python3 -m image_pipeline deploy-plan channel-policy' (nothing is set when it is there), and
setIamPolicy with the policy's etag (read again and retried when another change got in first: HTTP 409). The env-vars
file then also gets GOOGLE_CLOUD_PROJECT (the project deployed to), so a channel or event source spelled without a
project names the same one in the cloud as in the checks here.

Background removal (docs/cutout.md): --cutout-model FILE --cutout-family isnet computes the file's SHA-256 and
uploads it to gs://BUCKET/models/NAME-SHA12.onnx (only if that object is not there yet: the name holds the checksum,
so a re-run uploads nothing), outside every route's match and output (the function's own settings check refuses a
model where an upload of it would be processed); the function reads it from there once per instance. It is not
shipped with the source: a 176 MB model would slow every build and deploy, and Cloud Functions limits the source
size. A gs:// model in another bucket is used where it is: the runtime account gets roles/storage.objectViewer on
that bucket only (it already reads and writes this one). With ROUTES_FILE, [route.cutout] names each route's model
(upload it yourself); the other buckets named there get the same role. Background removal sizes the function:
at least 2Gi, 1 CPU and a 120s timeout; 4Gi and 2 CPUs unless MEMORY and CPU say otherwise.

Sizing: an image's memory is bounded by the limits every route shares (MAX_DECODE_MIB, MAX_PIXELS): measured,
about 500 MiB per concurrent image with variants up to 2048 px, plus ~120 MiB for the runtime, so MEMORY must be
at least 120 MiB + CONCURRENCY x 500 MiB. A route whose largest variant box is bigger adds, per image, an estimate
of its RGBA buffers: box pixels x 4 bytes x (1 + its number of formats), beyond the 32 MiB a 2048 px box in one
format already has in the measured 500; the heaviest route decides ('python3 -m image_pipeline routes check'
lists each route's variants and formats). An extension route's box is its largest IMG_SIZES entry and its formats
those IMAGE_TYPE names; 'false' (the upload's own type, which may be any) counts as the costliest: AVIF, or one
more format when AVIF is named already. A routes file never lowers the budget. AVIF encodes
take several times the CPU of WebP, so when any route encodes AVIF the default TIMEOUT is 120s instead of 60s.

Requires: gcloud (firebase for 'rules'; curl when extension routes publish events), and Python >= 3.11 (PYTHON,
default python3; standard library only): the function's own code lists and checks the settings (and reads ROUTES_FILE
with tomllib) before anything changes.

Examples:
  PROJECT_ID=my-app BUCKET=my-app.firebasestorage.app ./deploy.sh
  ./deploy.sh --dry-run --project my-app --bucket my-app.firebasestorage.app --bucket-location US
  ./deploy.sh backfill-job --project my-app --bucket my-app.firebasestorage.app --tasks 50
EOF
}

note() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
  printf '%s: error: %s\n' "$PROG" "$*" >&2
  exit 1
}
usage_error() {
  printf '%s: error: %s (see %s --help)\n' "$PROG" "$*" "$PROG" >&2
  exit 2
}

# python_problem: why PYTHON cannot run the package's commands (nothing when it can). The code they run is standard
# library only, but needs Python >= 3.11 (the routes file is read with tomllib).
python_problem() {
  if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "'$PYTHON' not found"
  elif ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
    echo "'$PYTHON' is $("$PYTHON" -V 2>&1 || echo 'not runnable')"
  fi
}

# pipeline_cli ARGS...: python -m image_pipeline ARGS from this checkout (-P: never a package in the current folder).
pipeline_cli() {
  PYTHONPATH="$SCRIPT_DIR" "$PYTHON" -P -m image_pipeline "$@"
}

# deploy_plan KIND [ARG...]: `python -m image_pipeline deploy-plan KIND`, which works out what this script deploys
# from its options (handed over by their variables' names) and the function's settings in the environment.
deploy_plan() {
  local name options=()
  for name in "${PLAN_OPTIONS[@]}"; do
    options+=("$name=${!name}")
  done
  env "${options[@]}" PYTHONPATH="$SCRIPT_DIR" "$PYTHON" -P -m image_pipeline deploy-plan --prog "$PROG" \
    --source-root "$SCRIPT_DIR" "$@"
}

# help_setting_names: the setting names for --help, wrapped, with the defaults the env-vars file gets; a note
# instead when Python cannot list them (help works without it).
help_setting_names() {
  local names
  if [[ -z $(python_problem) ]] && names=$(deploy_plan setting-names 2>/dev/null); then
    printf '%s' "$names"
  else
    printf '  (needs Python >= 3.11 to list them: python3 -m image_pipeline settings --names)'
  fi
}

# ---------------------------------------------------------------------------------------------------------
# Configuration: environment first, flags override. deploy-plan checks every value and works out the rest.
# ---------------------------------------------------------------------------------------------------------
SUBCOMMAND=""
PROJECT_ID=${PROJECT_ID:-${GOOGLE_CLOUD_PROJECT:-}}
REGION=${REGION:-us-central1}
BUCKET=${BUCKET:-}
BUCKET_LOCATION=${BUCKET_LOCATION:-}
FUNCTION_NAME=${FUNCTION_NAME:-image-pipeline}
RUNTIME_SA=${RUNTIME_SA:-image-pipeline-runtime}
TRIGGER_SA=${TRIGGER_SA:-image-pipeline-trigger}
# Empty until deploy-plan sizes the function for its routes (image_pipeline/deploy_plan.py says how and why).
MEMORY=${MEMORY:-}
CPU=${CPU:-}
CONCURRENCY=${CONCURRENCY:-1}
TIMEOUT=${TIMEOUT:-}
# The cost ceiling: at most MAX_INSTANCES x CONCURRENCY images in flight. Every output we write triggers the
# function again (and is skipped cheaply), so a bulk upload produces a burst; excess events are retried.
MAX_INSTANCES=${MAX_INSTANCES:-10}
MIN_INSTANCES=${MIN_INSTANCES:-0}
BUILD_SERVICE_ACCOUNT=${BUILD_SERVICE_ACCOUNT:-}
# A model file (uploaded to the bucket) or gs:// object for the built-in route's background removal.
CUTOUT_MODEL=${CUTOUT_MODEL:-}
CUTOUT_FAMILY=${CUTOUT_FAMILY:-}
CUTOUT_MODEL_SHA256=${CUTOUT_MODEL_SHA256:-}
ALLOW_UNDERSIZED=${ALLOW_UNDERSIZED:-0}
SKIP_APIS=${SKIP_APIS:-0}
DRY_RUN=${DRY_RUN:-0}
JOB_NAME=${JOB_NAME:-image-pipeline-backfill}
TASKS=${TASKS:-10}
PARALLELISM=${PARALLELISM:-0}
JOB_MEMORY=${JOB_MEMORY:-2Gi}
JOB_CPU=${JOB_CPU:-2}
TASK_TIMEOUT=${TASK_TIMEOUT:-3600s}
MAX_RETRIES=${MAX_RETRIES:-3}
EXECUTE=${EXECUTE:-1}
WAIT=${WAIT:-0}
BACKFILL_EXTRA=()
if [[ -n ${BACKFILL_ARGS:-} ]]; then
  read -r -a BACKFILL_EXTRA <<<"$BACKFILL_ARGS"
fi

PYTHON=${PYTHON:-python3}

# What deploy-plan reads of the above (the function's settings it reads from the environment).
PLAN_OPTIONS=(PROJECT_ID REGION BUCKET FUNCTION_NAME RUNTIME_SA TRIGGER_SA MEMORY CPU CONCURRENCY TIMEOUT MAX_INSTANCES
  MIN_INSTANCES BUILD_SERVICE_ACCOUNT CUTOUT_MODEL CUTOUT_FAMILY CUTOUT_MODEL_SHA256 ALLOW_UNDERSIZED JOB_NAME TASKS
  PARALLELISM JOB_MEMORY JOB_CPU TASK_TIMEOUT MAX_RETRIES)

# The options that take a value, and the variable each sets (--backfill-arg adds to BACKFILL_EXTRA).
declare -A VALUE_OPTIONS=(
  [--project]=PROJECT_ID [--region]=REGION [--bucket]=BUCKET [--bucket-location]=BUCKET_LOCATION
  [--function-name]=FUNCTION_NAME [--runtime-sa]=RUNTIME_SA [--trigger-sa]=TRIGGER_SA [--memory]=MEMORY [--cpu]=CPU
  [--concurrency]=CONCURRENCY [--timeout]=TIMEOUT [--max-instances]=MAX_INSTANCES [--min-instances]=MIN_INSTANCES
  [--build-service-account]=BUILD_SERVICE_ACCOUNT [--job-name]=JOB_NAME [--tasks]=TASKS [--parallelism]=PARALLELISM
  [--job-memory]=JOB_MEMORY [--job-cpu]=JOB_CPU [--task-timeout]=TASK_TIMEOUT [--max-retries]=MAX_RETRIES
  [--backfill-arg]=BACKFILL_EXTRA [--cutout-model]=CUTOUT_MODEL [--cutout-family]=CUTOUT_FAMILY
  [--cutout-sha256]=CUTOUT_MODEL_SHA256
)

# The APIs a 2nd-gen function with a Cloud Storage trigger (and the backfill job) needs.
APIS=(
  cloudfunctions.googleapis.com run.googleapis.com eventarc.googleapis.com cloudbuild.googleapis.com
  artifactregistry.googleapis.com pubsub.googleapis.com storage.googleapis.com firestore.googleapis.com
  iam.googleapis.com
)

while (($#)); do
  arg=$1
  shift
  value=""
  if [[ $arg == --*=* ]]; then
    value=${arg#*=}
    arg=${arg%%=*}
  fi
  case $arg in
    -h | --help | help)
      usage
      exit 0
      ;;
    deploy | backfill-job | rules)
      [[ -z $SUBCOMMAND ]] || usage_error "more than one subcommand: $SUBCOMMAND and $arg"
      SUBCOMMAND=$arg
      ;;
    --dry-run) DRY_RUN=1 ;;
    --skip-apis) SKIP_APIS=1 ;;
    --allow-undersized) ALLOW_UNDERSIZED=1 ;;
    --no-execute) EXECUTE=0 ;;
    --wait) WAIT=1 ;;
    --*)
      name=${VALUE_OPTIONS[$arg]:-}
      [[ -n $name ]] || usage_error "unknown argument: $arg"
      if [[ -z $value ]]; then
        (($#)) || usage_error "$arg needs a value"
        value=$1
        shift
      fi
      if [[ $name == BACKFILL_EXTRA ]]; then
        BACKFILL_EXTRA+=("$value")
      else
        printf -v "$name" '%s' "$value"
      fi
      ;;
    *) usage_error "unknown argument: $arg" ;;
  esac
done
SUBCOMMAND=${SUBCOMMAND:-deploy}

is_true() { [[ ${1,,} =~ ^(1|true|yes|on)$ ]]; }
if is_true "$DRY_RUN"; then DRY_RUN=1; else DRY_RUN=0; fi

# ---------------------------------------------------------------------------------------------------------
# Running commands: print in a dry run, echo to stderr and execute otherwise.
# ---------------------------------------------------------------------------------------------------------
# quote WORD...: the words as one shell-readable line; a word with special characters is single-quoted.
quote() {
  local out="" word q="'"
  for word in "$@"; do
    if [[ $word =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then
      out+="$word "
    else
      out+="'${word//$q/$q\\$q$q}' "
    fi
  done
  printf '%s' "${out% }"
}

# run CMD...: a command that changes something (or the final deploy).
run() {
  if ((DRY_RUN)); then
    printf '%s\n' "$(quote "$@")"
  else
    printf '+ %s\n' "$(quote "$@")" >&2
    "$@"
  fi
}

# run_retry CMD...: like run, retried a few times; IAM is eventually consistent, so a binding for a service
# account created seconds ago can fail with "does not exist" before it succeeds.
run_retry() {
  if ((DRY_RUN)); then
    run "$@"
    return
  fi
  local attempt
  for attempt in 1 2 3 4 5 6; do
    printf '+ %s\n' "$(quote "$@")" >&2
    if "$@"; then
      return 0
    fi
    ((attempt < 6)) || break
    note "attempt $attempt failed; retrying in $((attempt * 5)) s (IAM changes take a moment to propagate)"
    sleep $((attempt * 5))
  done
  die "giving up after 6 attempts: $(quote "$@")"
}

# comment TEXT: a note that is part of the dry-run plan (stdout), or a message on stderr otherwise.
comment() {
  if ((DRY_RUN)); then
    printf '# %s\n' "$*"
  else
    note "$*"
  fi
}

# ---------------------------------------------------------------------------------------------------------
# The plan: what deploy-plan worked out, and the env-vars file it holds.
# ---------------------------------------------------------------------------------------------------------
WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/image-pipeline-deploy.XXXXXX")
trap 'rm -rf -- "$WORK_DIR"' EXIT

# PLAN[KEY]: each KEY=value line of deploy-plan; the lines that repeat go to ENV_LINES (the env-vars file's),
# MODEL_READS ('BUCKET URI' of each model kept in another bucket) and CHANNELS ('NAME PROJECT LOCATION ID ROUTES' of
# each Eventarc channel extension routes publish to; ROUTES comma-separated).
declare -A PLAN=()
ENV_LINES=()
MODEL_READS=()
CHANNELS=()

# load_plan KIND [ARG...]: run deploy-plan; its messages are this script's, and its failure ends the script with
# its exit status (2 for a usage error, 1 otherwise).
load_plan() {
  local problem output line
  problem=$(python_problem)
  [[ -z $problem ]] || die "Python >= 3.11 is needed to read the function's settings ($problem): install it, or \
set PYTHON to one (e.g. PYTHON=python3.12)"
  output=$(deploy_plan "$@") || exit
  while IFS= read -r line; do
    case ${line%%=*} in
      ENV) ENV_LINES+=("${line#*=}") ;;
      MODEL_READ) MODEL_READS+=("${line#*=}") ;;
      CHANNEL) CHANNELS+=("${line#*=}") ;;
      *) PLAN[${line%%=*}]=${line#*=} ;;
    esac
  done <<<"$output"
}

# write_env_file PATH: the env-vars file of the plan; in a dry run, its contents as notes.
write_env_file() {
  local line
  printf '%s\n' "${ENV_LINES[@]}" >"$1"
  if ((DRY_RUN)); then
    printf '# env-vars file %s (deleted on exit):\n' "$1"
    for line in "${ENV_LINES[@]}"; do
      printf '#   %s\n' "$line"
    done
  fi
}

# ---------------------------------------------------------------------------------------------------------
# Steps.
# ---------------------------------------------------------------------------------------------------------
resolve_project() {
  if ((!DRY_RUN)); then
    command -v gcloud >/dev/null 2>&1 || die "gcloud not found: install the Google Cloud CLI"
  fi
  [[ -z $PROJECT_ID ]] || return 0
  ((!DRY_RUN)) || usage_error "PROJECT_ID is not set: pass --project or set PROJECT_ID (a dry run does not ask gcloud)"
  printf '+ %s\n' "gcloud config get-value project" >&2
  PROJECT_ID=$(gcloud config get-value project 2>/dev/null || true)
  [[ -n $PROJECT_ID && $PROJECT_ID != "(unset)" ]] ||
    usage_error "PROJECT_ID is not set: pass --project, set PROJECT_ID or run 'gcloud config set project ID'"
}

enable_apis() {
  if is_true "$SKIP_APIS"; then
    comment "skipping 'gcloud services enable' (--skip-apis)"
    return
  fi
  local apis=("${APIS[@]}")
  # The function publishes extension routes' events through the Eventarc Publishing API.
  ((${#CHANNELS[@]} == 0)) || apis+=(eventarcpublishing.googleapis.com)
  run gcloud services enable "${apis[@]}" --project="$PROJECT_ID" --quiet
}

# The trigger must live in the bucket's location; check it before changing anything.
TRIGGER_LOCATION=""
check_bucket_location() {
  local describe=(gcloud storage buckets describe "gs://$BUCKET" --project="$PROJECT_ID" --format='value(location)')
  local location=$BUCKET_LOCATION
  if ((DRY_RUN)); then
    run "${describe[@]}"
    if [[ -z $location ]]; then
      comment "bucket location unknown in a dry run: region check skipped and --trigger-location omitted \
(pass --bucket-location to check it); a real run checks it and sets --trigger-location"
      return
    fi
    comment "assuming bucket location ${location^^} (--bucket-location); a real run uses the answer above"
  else
    printf '+ %s\n' "$(quote "${describe[@]}")" >&2
    location=$("${describe[@]}") || die "cannot read gs://$BUCKET in project $PROJECT_ID: does it exist, and may \
you see it? (a Firebase project's default bucket is $PROJECT_ID.firebasestorage.app or $PROJECT_ID.appspot.com)"
    location=${location//[[:space:]]/}
    [[ -n $location ]] || die "gcloud returned no location for gs://$BUCKET"
    if [[ -n $BUCKET_LOCATION && ${BUCKET_LOCATION,,} != "${location,,}" ]]; then
      die "--bucket-location ${BUCKET_LOCATION} does not match gs://$BUCKET's actual location $location"
    fi
    note "bucket gs://$BUCKET is in $location"
  fi
  load_plan location "$location"
  TRIGGER_LOCATION=${PLAN[TRIGGER_LOCATION]}
}

# ensure_service_account EMAIL ACCOUNT_ID DISPLAY_NAME DESCRIPTION: describe first; create only when missing, and
# never an account of another project (ACCOUNT_ID empty).
ensure_service_account() {
  local email=$1 account_id=$2 display=$3 description=$4
  local describe=(gcloud iam service-accounts describe "$email" --project="$PROJECT_ID" --format='value(email)')
  if [[ -z $account_id ]]; then
    run "${describe[@]}"
    return
  fi
  local create=(gcloud iam service-accounts create "$account_id" --project="$PROJECT_ID"
    --display-name="$display" --description="$description" --quiet)
  if ((DRY_RUN)); then
    run "${describe[@]}"
    comment "only if the describe above reports it missing:"
    run "${create[@]}"
    return
  fi
  printf '+ %s\n' "$(quote "${describe[@]}")" >&2
  if "${describe[@]}" >/dev/null 2>&1; then
    note "service account $email exists"
  else
    run "${create[@]}"
  fi
}

STORAGE_AGENT=""
resolve_storage_agent() {
  local lookup=(gcloud storage service-agent --project="$PROJECT_ID")
  if ((DRY_RUN)); then
    run "${lookup[@]}"
    STORAGE_AGENT="service-PROJECT_NUMBER@gs-project-accounts.iam.gserviceaccount.com"
    comment "the answer above is the Cloud Storage service agent, written below as $STORAGE_AGENT"
    return
  fi
  printf '+ %s\n' "$(quote "${lookup[@]}")" >&2
  STORAGE_AGENT=$("${lookup[@]}") || die "cannot look up the Cloud Storage service agent of $PROJECT_ID"
  STORAGE_AGENT=${STORAGE_AGENT//[[:space:]]/}
  [[ $STORAGE_AGENT == *@* ]] || die "unexpected Cloud Storage service agent '$STORAGE_AGENT'"
}

# check_channels: each Eventarc channel extension routes publish to must exist (nothing creates it here: Firebase made
# channels/firebase for the extension, and a channel of another name is the app's own).
check_channels() {
  local entry name project location id routes describe create
  for entry in "${CHANNELS[@]}"; do
    read -r name project location id routes <<<"$entry"
    routes=${routes//,/, }
    describe=(gcloud eventarc channels describe "$id" --location="$location" --project="$project"
      --format='value(name)')
    create="gcloud eventarc channels create $id --location=$location --project=$project"
    comment "events: route(s) $routes publish to the Eventarc channel $name, which must exist (Firebase creates \
channels/firebase when an extension with events is installed; otherwise: $create)"
    if ((DRY_RUN)); then
      run "${describe[@]}"
      continue
    fi
    printf '+ %s\n' "$(quote "${describe[@]}")" >&2
    "${describe[@]}" >/dev/null || die "Eventarc channel $name not found (or not visible to you): route(s) $routes \
publish their events there (EVENTARC_CHANNEL), so it must exist before the deploy. Firebase creates channels/firebase \
when an extension with events is installed; otherwise create it: $create"
  done
}

# grant_channel_publisher RUNTIME_EMAIL: roles/eventarc.publisher on each channel, for the function's events. gcloud
# has no command for a channel's IAM policy, so it is read, edited and written back through the Eventarc API: the
# bearer token in a header file (never on a command line), getIamPolicy (version 3, so conditional bindings come back
# whole), the binding added by deploy-plan channel-policy (nothing to set when it is there) and setIamPolicy with the
# etag read, which fails with 409 when the policy changed meanwhile: then it is read again.
grant_channel_publisher() {
  ((${#CHANNELS[@]})) || return 0
  local member=serviceAccount:$1 role=roles/eventarc.publisher header=$WORK_DIR/eventarc-auth token
  if ((DRY_RUN)); then
    run gcloud auth print-access-token
    comment "the answer above is the bearer token curl sends below, from $header (deleted on exit)"
  else
    command -v curl >/dev/null 2>&1 ||
      die "curl not found: it grants $role on the Eventarc channels (gcloud has no command for a channel's IAM)"
    printf '+ %s\n' "gcloud auth print-access-token" >&2
    token=$(gcloud auth print-access-token) || die "cannot get an access token: run 'gcloud auth login'"
    (
      umask 077
      printf 'Authorization: Bearer %s\n' "$token" >"$header"
    )
  fi
  local entry name url policy=$WORK_DIR/channel-policy.json request=$WORK_DIR/channel-policy-request.json
  local reply=$WORK_DIR/channel-policy-reply.json get_policy edit_policy set_policy attempt status body
  for entry in "${CHANNELS[@]}"; do
    read -r name _ <<<"$entry"
    url=https://eventarc.googleapis.com/v1/$name
    get_policy=(curl --silent --show-error --header "@$header" --output "$policy" --write-out '%{http_code}'
      "$url:getIamPolicy?options.requestedPolicyVersion=3")
    edit_policy=(deploy-plan --prog "$PROG" --source-root "$SCRIPT_DIR" channel-policy --member="$member" --role="$role"
      "$policy")
    set_policy=(curl --silent --show-error --header "@$header" --header 'Content-Type: application/json'
      --data "@$request" --output "$reply" --write-out '%{http_code}' "$url:setIamPolicy")
    comment "events: $role for $member on $name (the channel only): its IAM policy, read, edited and written back"
    if ((DRY_RUN)); then
      run "${get_policy[@]}"
      run "$PYTHON" -m image_pipeline "${edit_policy[@]}"
      comment "its output, unless empty (the binding is there already), is $request, sent with its etag; on HTTP 409 \
(the policy changed meanwhile) the three steps are repeated"
      run "${set_policy[@]}"
      continue
    fi
    for attempt in 1 2 3 4 5 6; do
      printf '+ %s\n' "$(quote "${get_policy[@]}")" >&2
      status=$("${get_policy[@]}") || true
      [[ $status == 200 ]] || die "cannot read the IAM policy of $name (HTTP ${status:-000}): $(cat -- "$policy" \
2>/dev/null || true)"
      printf '+ %s\n' "$(quote "$PYTHON" -m image_pipeline "${edit_policy[@]}")" >&2
      body=$(pipeline_cli "${edit_policy[@]}") || exit
      if [[ -z $body ]]; then
        note "$member already has $role on $name"
        break
      fi
      printf '%s\n' "$body" >"$request"
      printf '+ %s\n' "$(quote "${set_policy[@]}")" >&2
      status=$("${set_policy[@]}") || true
      [[ $status != 200 ]] || break
      ((attempt < 6)) || die "giving up after 6 attempts to set the IAM policy of $name (HTTP $status): $(cat -- \
"$reply" 2>/dev/null || true)"
      if [[ $status == 409 ]]; then
        note "the IAM policy of $name changed since it was read (HTTP 409); reading it again"
      else
        # A service account created seconds ago can be refused as unknown until IAM catches up.
        note "setIamPolicy on $name failed (HTTP ${status:-000}); retrying in $((attempt * 5)) s (IAM changes take \
a moment to propagate)"
        sleep $((attempt * 5))
      fi
    done
  done
}

grant_project_role() { # MEMBER ROLE
  run_retry gcloud projects add-iam-policy-binding "$PROJECT_ID" --member="$1" --role="$2" \
    --condition=None --format=none --quiet
}

# provision_cutout RUNTIME_EMAIL: upload the model file (unless already there), and let the runtime account read
# each model kept in another bucket (it already reads and writes this one).
provision_cutout() {
  local runtime_email=$1 model_read
  if [[ -n ${PLAN[CUTOUT_OBJECT]} ]]; then
    comment "background removal: $CUTOUT_MODEL (sha256 ${PLAN[CUTOUT_SHA256]}) to gs://$BUCKET/${PLAN[CUTOUT_OBJECT]}, \
outside every route's match; --no-clobber: the name holds the checksum, so an existing object is this file"
    run gcloud storage cp "$CUTOUT_MODEL" "gs://$BUCKET/${PLAN[CUTOUT_OBJECT]}" --no-clobber \
      --content-type=application/octet-stream --project="$PROJECT_ID" --quiet
  fi
  for model_read in "${MODEL_READS[@]}"; do
    comment "background removal: the model ${model_read#* } is read from gs://${model_read%% *} (objects only, \
that bucket only)"
    run_retry gcloud storage buckets add-iam-policy-binding "gs://${model_read%% *}" --project="$PROJECT_ID" \
      --member="serviceAccount:$runtime_email" --role=roles/storage.objectViewer --format=none --quiet
  done
}

cmd_deploy() {
  resolve_project
  load_plan function
  BUCKET=${PLAN[BUCKET]}
  local runtime_email=${PLAN[RUNTIME_EMAIL]} trigger_email=${PLAN[TRIGGER_EMAIL]} env_file=$WORK_DIR/env.yaml

  comment "deploy $FUNCTION_NAME to project $PROJECT_ID, region $REGION, bucket gs://$BUCKET"
  check_bucket_location
  enable_apis
  check_channels

  # Identities: one that runs the code, one that Eventarc uses to invoke it.
  ensure_service_account "$runtime_email" "${PLAN[RUNTIME_ACCOUNT_ID]}" "image-pipeline runtime" \
    "Runs the image-pipeline function: reads uploads and writes variants in gs://$BUCKET, updates Firestore"
  ensure_service_account "$trigger_email" "${PLAN[TRIGGER_ACCOUNT_ID]}" "image-pipeline trigger" \
    "Eventarc trigger identity: receives Cloud Storage events and invokes the image-pipeline function"

  # Least privilege. Runtime: objects of this one bucket (get/list/create/delete, no bucket or IAM admin)
  # and Firestore documents. Trigger: receive events, and (after the deploy) invoke this one function.
  run_retry gcloud storage buckets add-iam-policy-binding "gs://$BUCKET" --project="$PROJECT_ID" \
    --member="serviceAccount:$runtime_email" --role=roles/storage.objectUser --format=none --quiet
  grant_project_role "serviceAccount:$runtime_email" roles/datastore.user
  grant_project_role "serviceAccount:$trigger_email" roles/eventarc.eventReceiver
  # Cloud Storage publishes its object notifications to Pub/Sub for Eventarc as its service agent.
  resolve_storage_agent
  grant_project_role "serviceAccount:$STORAGE_AGENT" roles/pubsub.publisher
  provision_cutout "$runtime_email"
  grant_channel_publisher "$runtime_email"

  write_env_file "$env_file"
  local deploy=(gcloud functions deploy "$FUNCTION_NAME" --gen2 --project="$PROJECT_ID" --region="$REGION"
    --runtime=python312 --source=. --entry-point=process_image
    --trigger-event-filters=type=google.cloud.storage.object.v1.finalized
    --trigger-event-filters=bucket="$BUCKET")
  [[ -z $TRIGGER_LOCATION ]] || deploy+=(--trigger-location="$TRIGGER_LOCATION")
  deploy+=(--retry
    --service-account="$runtime_email" --trigger-service-account="$trigger_email"
    --memory="${PLAN[MEMORY]}" --cpu="${PLAN[CPU]}" --concurrency="$CONCURRENCY" --timeout="${PLAN[TIMEOUT]}"
    --max-instances="$MAX_INSTANCES" --min-instances="$MIN_INSTANCES"
    --ingress-settings=internal-only --no-allow-unauthenticated
    --env-vars-file="$env_file")
  [[ -z ${PLAN[BUILD_SERVICE_ACCOUNT]} ]] || deploy+=(--build-service-account="${PLAN[BUILD_SERVICE_ACCOUNT]}")
  deploy+=(--quiet)
  run "${deploy[@]}"

  # Only the trigger identity may invoke the function (its Cloud Run service); nobody else, no allUsers.
  run_retry gcloud functions add-invoker-policy-binding "$FUNCTION_NAME" --project="$PROJECT_ID" \
    --region="$REGION" --member="serviceAccount:$trigger_email" --format=none --quiet

  comment "done. Logs: gcloud functions logs read $FUNCTION_NAME --gen2 --project=$PROJECT_ID --region=$REGION --limit=50"
}

cmd_backfill_job() {
  resolve_project
  # The same settings as the function's, the model's included (the deploy uploads the file; the job only reads it).
  load_plan job -- "${BACKFILL_EXTRA[@]}"
  BUCKET=${PLAN[BUCKET]}
  local runtime_email=${PLAN[RUNTIME_EMAIL]} env_file=$WORK_DIR/job-env.yaml

  comment "backfill job $JOB_NAME in project $PROJECT_ID, region $REGION, bucket gs://$BUCKET, $TASKS tasks"
  local describe=(gcloud iam service-accounts describe "$runtime_email" --project="$PROJECT_ID" --format='value(email)')
  if ((DRY_RUN)); then
    run "${describe[@]}"
  else
    printf '+ %s\n' "$(quote "${describe[@]}")" >&2
    "${describe[@]}" >/dev/null 2>&1 ||
      die "service account $runtime_email not found: run '$PROG deploy' first (it creates it and grants its IAM)"
  fi

  # The env-vars file adds BUCKET and GOOGLE_CLOUD_PROJECT; each task takes its shard by CLOUD_RUN_TASK_INDEX and
  # CLOUD_RUN_TASK_COUNT, which Cloud Run sets.
  write_env_file "$env_file"
  local deploy=(gcloud run jobs deploy "$JOB_NAME" --project="$PROJECT_ID" --region="$REGION" --source=.
    --tasks="$TASKS")
  ((PARALLELISM == 0)) || deploy+=(--parallelism="$PARALLELISM")
  deploy+=(--max-retries="$MAX_RETRIES" --task-timeout="$TASK_TIMEOUT"
    --memory="$JOB_MEMORY" --cpu="$JOB_CPU" --service-account="$runtime_email"
    --env-vars-file="$env_file" --command=python --args="${PLAN[ARGS]}" --quiet)
  run "${deploy[@]}"

  if is_true "$EXECUTE"; then
    local execute=(gcloud run jobs execute "$JOB_NAME" --project="$PROJECT_ID" --region="$REGION")
    if is_true "$WAIT"; then execute+=(--wait); else execute+=(--async); fi
    execute+=(--quiet)
    run "${execute[@]}"
    comment "follow it: gcloud run jobs executions list --job=$JOB_NAME --project=$PROJECT_ID --region=$REGION"
  else
    comment "not executed (--no-execute); start it with: gcloud run jobs execute $JOB_NAME --project=$PROJECT_ID --region=$REGION"
  fi
}

# The committed rules are the generator's output for the built-in route with its defaults; when ROUTES_FILE or a
# built-in route variable is set, the rules are generated for those routes (by the function's own code) into the
# work folder, beside a firebase.json naming them.
cmd_rules() {
  resolve_project
  local firebase=${FIREBASE:-firebase} config=$SCRIPT_DIR/firebase.json out=$WORK_DIR/rules
  if ((!DRY_RUN)); then
    command -v "${firebase%% *}" >/dev/null 2>&1 ||
      die "firebase CLI not found: npm install -g firebase-tools (or set FIREBASE='npx --yes firebase-tools')"
  fi
  load_plan rules
  if [[ -z ${PLAN[SHAPED_BY]} ]]; then
    comment "the committed storage.rules and firestore.rules (the built-in route with its default folders)"
  else
    ROUTES_FILE=${PLAN[ROUTES_FILE]} pipeline_cli rules --out "$out" >&2 ||
      die "cannot generate the rules for these settings (see above)"
    printf '{"firestore": {"rules": "firestore.rules"}, "storage": {"rules": "storage.rules"}}\n' >"$out/firebase.json"
    comment "rules generated for the configured routes (${PLAN[SHAPED_BY]} is set): python3 -m image_pipeline rules \
--out $out (deleted on exit)"
    config=$out/firebase.json
  fi
  comment "storage.rules go to the project's default Storage bucket (firebase.json); firestore.rules to (default)"
  # shellcheck disable=SC2086 # FIREBASE may be a command with arguments, e.g. 'npx --yes firebase-tools'
  run $firebase deploy --only storage,firestore:rules --project="$PROJECT_ID" --config="$config"
}

cd -- "$SCRIPT_DIR"
case $SUBCOMMAND in
  deploy) cmd_deploy ;;
  backfill-job) cmd_backfill_job ;;
  rules) cmd_rules ;;
esac
