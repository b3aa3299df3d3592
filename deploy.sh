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
# `internal-only`, a dedicated runtime identity with object access on this one bucket and Firestore access,
# a dedicated trigger identity that may invoke this one function, no service-account keys and no secrets:
# the runtime identity is the credential.
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
format already has in the measured 500; the heaviest route decides ('python3 -m image_pipeline settings
--route-sizes' lists each route's largest box and formats). A routes file never lowers the budget. AVIF encodes
take several times the CPU of WebP, so when any route encodes AVIF the default TIMEOUT is 120s instead of 60s.

Requires: gcloud (firebase for 'rules'), and Python >= 3.11 (PYTHON, default python3; standard library only):
the function's own code lists and checks the settings (and reads ROUTES_FILE with tomllib) before anything changes.

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

# python_problem: why PYTHON cannot run the package's settings command (nothing when it can). The settings
# code is standard library only, but needs Python >= 3.11 (the routes file is read with tomllib).
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

# help_setting_names: the setting names for --help, wrapped, with the defaults this script writes; a note
# instead when Python cannot list them (help works without it).
help_setting_names() {
  local names=() name line=""
  if [[ -n $(python_problem) ]] || ! mapfile -t names < <(pipeline_cli settings --names 2>/dev/null) ||
    ((${#names[@]} == 0)); then
    printf '  (needs Python >= 3.11 to list them: python3 -m image_pipeline settings --names)'
    return
  fi
  for name in "${names[@]}"; do
    [[ -z ${SETTING_DEFAULTS[$name]:-} ]] || name+=" (${SETTING_DEFAULTS[$name]})"
    if ((${#line} + ${#name} >= 110)); then
      printf '  %s\n' "$line"
      line=""
    fi
    line+=${line:+ }$name
  done
  printf '  %s' "$line"
}

# ---------------------------------------------------------------------------------------------------------
# Configuration: environment first, flags override.
# ---------------------------------------------------------------------------------------------------------
SUBCOMMAND=""
PROJECT_ID=${PROJECT_ID:-${GOOGLE_CLOUD_PROJECT:-}}
REGION=${REGION:-us-central1}
BUCKET=${BUCKET:-}
BUCKET_LOCATION=${BUCKET_LOCATION:-}
FUNCTION_NAME=${FUNCTION_NAME:-image-pipeline}
RUNTIME_SA=${RUNTIME_SA:-image-pipeline-runtime}
TRIGGER_SA=${TRIGGER_SA:-image-pipeline-trigger}
# Sizing, measured with benchmarks/bench_core.py (whole-process peak RSS): a 100 MP JPEG peaks at ~125 MiB
# (it is decoded at a reduced DCT scale); formats that must be decoded in full cost 6-18 bytes per pixel
# (a 100 MP WebP would need ~1.6 GiB), so the core refuses any image whose estimated decode exceeds
# MAX_DECODE_MIB (default 512) as too_large. We therefore budget 500 MiB per concurrent image plus ~120 MiB
# for the interpreter, functions-framework and the Google clients: MEMORY >= 120 MiB + CONCURRENCY x 500 MiB,
# 620 MiB for the default CONCURRENCY=1, which 1Gi covers. Concurrency 2 wants 2Gi (and >= 1 CPU on 2nd gen).
# Those limits are global, so routes do not change the decode; only a route with variants larger than the
# measured 2048 px adds its output buffers (image_budget_mib).
# Empty until the routes are known: background removal defaults to 4Gi and 2 CPUs (default_sizing).
MEMORY=${MEMORY:-}
CPU=${CPU:-}
CONCURRENCY=${CONCURRENCY:-1}
# 60 s: an attempt must end well inside it (the clients' own retries are bounded by CLIENT_TIMEOUT_S);
# anything longer is better handled by raising and letting Eventarc redeliver with backoff. Empty until the
# routes are known: a route that encodes AVIF gets 120 s (default_timeout).
TIMEOUT=${TIMEOUT:-}
# The cost ceiling: at most MAX_INSTANCES x CONCURRENCY images in flight. Every output we write triggers the
# function again (and is skipped cheaply), so a bulk upload produces a burst; excess events are retried.
MAX_INSTANCES=${MAX_INSTANCES:-10}
MIN_INSTANCES=${MIN_INSTANCES:-0}
BUILD_SERVICE_ACCOUNT=${BUILD_SERVICE_ACCOUNT:-}
# A model file (uploaded to the bucket) or gs:// object for the built-in route's background removal.
CUTOUT_MODEL=${CUTOUT_MODEL:-}
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

# The function's settings that are passed through: the names Settings.from_env reads, listed by the package
# itself (load_setting_names), so this script never holds a copy that could drift.
SETTING_NAMES=()
# The built-in route's variables (settings --names --route-level): refused by the function beside ROUTES_FILE.
declare -A ROUTE_LEVEL=()
# Per route, from settings --route-sizes: NAME<TAB>WIDTHxHEIGHT of its largest variant box<TAB>FORMATS<TAB>MODEL (or -).
ROUTE_SIZES=()
# Defaults written explicitly so the deployed configuration shows the contract with the app (the route-level
# ones only without ROUTES_FILE).
declare -A SETTING_DEFAULTS=(
  [SOURCE_PREFIX]=raw-uploads/
  [OUTPUT_PREFIX]=showcase-images/
  [FIRESTORE_COLLECTION]=characters
  [LOG_LEVEL]=INFO
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
  case $arg in
    --*=*)
      value=${arg#*=}
      arg=${arg%%=*}
      ;;
  esac
  case $arg in
    -h | --help | help)
      usage
      exit 0
      ;;
    deploy | backfill-job | rules)
      [[ -z $SUBCOMMAND ]] || usage_error "more than one subcommand: $SUBCOMMAND and $arg"
      SUBCOMMAND=$arg
      continue
      ;;
    --dry-run) DRY_RUN=1 ;;
    --skip-apis) SKIP_APIS=1 ;;
    --allow-undersized) ALLOW_UNDERSIZED=1 ;;
    --no-execute) EXECUTE=0 ;;
    --wait) WAIT=1 ;;
    --project | --region | --bucket | --bucket-location | --function-name | --runtime-sa | --trigger-sa | \
      --memory | --cpu | --concurrency | --timeout | --max-instances | --min-instances | \
      --build-service-account | --job-name | --tasks | --parallelism | --job-memory | --job-cpu | \
      --task-timeout | --max-retries | --backfill-arg | --cutout-model | --cutout-family | --cutout-sha256)
      if [[ -z $value ]]; then
        (($#)) || usage_error "$arg needs a value"
        value=$1
        shift
      fi
      case $arg in
        --project) PROJECT_ID=$value ;;
        --region) REGION=$value ;;
        --bucket) BUCKET=$value ;;
        --bucket-location) BUCKET_LOCATION=$value ;;
        --function-name) FUNCTION_NAME=$value ;;
        --runtime-sa) RUNTIME_SA=$value ;;
        --trigger-sa) TRIGGER_SA=$value ;;
        --memory) MEMORY=$value ;;
        --cpu) CPU=$value ;;
        --concurrency) CONCURRENCY=$value ;;
        --timeout) TIMEOUT=$value ;;
        --max-instances) MAX_INSTANCES=$value ;;
        --min-instances) MIN_INSTANCES=$value ;;
        --build-service-account) BUILD_SERVICE_ACCOUNT=$value ;;
        --job-name) JOB_NAME=$value ;;
        --tasks) TASKS=$value ;;
        --parallelism) PARALLELISM=$value ;;
        --job-memory) JOB_MEMORY=$value ;;
        --job-cpu) JOB_CPU=$value ;;
        --task-timeout) TASK_TIMEOUT=$value ;;
        --max-retries) MAX_RETRIES=$value ;;
        --backfill-arg) BACKFILL_EXTRA+=("$value") ;;
        --cutout-model) CUTOUT_MODEL=$value ;;
        --cutout-family) CUTOUT_FAMILY=$value ;;
        --cutout-sha256) CUTOUT_MODEL_SHA256=$value ;;
      esac
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
# Validation helpers.
# ---------------------------------------------------------------------------------------------------------
require_integer() { # NAME VALUE MIN
  [[ $2 =~ ^[0-9]+$ ]] || usage_error "$1 must be a whole number, got '$2'"
  (($2 >= $3)) || usage_error "$1 must be at least $3, got $2"
}

# memory_mib SIZE: the size in MiB (rounded down), from the forms gcloud accepts: 512M, 1Gi, 1024Mi, 2G...
memory_mib() {
  local size=$1 number unit
  [[ $size =~ ^([0-9]+)([kKMG]i?)?[bB]?$ ]] || return 1
  number=${BASH_REMATCH[1]}
  unit=${BASH_REMATCH[2]:-}
  case $unit in
    "") echo $((number / 1048576)) ;;
    k | K) echo $((number * 1000 / 1048576)) ;;
    Ki) echo $((number / 1024)) ;;
    M) echo $((number * 1000000 / 1048576)) ;;
    Mi) echo "$number" ;;
    G) echo $((number * 1000000000 / 1048576)) ;;
    Gi) echo $((number * 1024)) ;;
    *) return 1 ;;
  esac
}

# millicpu CPU: 1 -> 1000, .5 -> 500, 2000m -> 2000.
millicpu() {
  local cpu=$1
  if [[ $cpu =~ ^([0-9]+)m$ ]]; then
    echo "${BASH_REMATCH[1]}"
  elif [[ $cpu =~ ^([0-9]*)(\.([0-9]{1,3}))?$ && -n ${BASH_REMATCH[1]}${BASH_REMATCH[3]} ]]; then
    local whole=${BASH_REMATCH[1]:-0} frac=${BASH_REMATCH[3]:-}
    frac=$(printf '%-3s' "$frac")
    frac=${frac// /0}
    echo $((10#$whole * 1000 + 10#$frac))
  else
    return 1
  fi
}

# seconds DURATION: 60, 60s, 5m, 1h -> seconds.
seconds() {
  [[ $1 =~ ^([0-9]+)([smh]?)$ ]] || return 1
  case ${BASH_REMATCH[2]} in
    "" | s) echo $((10#${BASH_REMATCH[1]})) ;;
    m) echo $((10#${BASH_REMATCH[1]} * 60)) ;;
    h) echo $((10#${BASH_REMATCH[1]} * 3600)) ;;
  esac
}

# sa_email NAME|EMAIL: a bare account id becomes NAME@PROJECT.iam.gserviceaccount.com.
sa_email() {
  if [[ $1 == *@* ]]; then
    echo "$1"
  else
    [[ $1 =~ ^[a-z][a-z0-9-]{4,28}[a-z0-9]$ ]] ||
      usage_error "service account id '$1' must be 6-30 characters of a-z 0-9 -, starting with a letter"
    echo "$1@$PROJECT_ID.iam.gserviceaccount.com"
  fi
}

# location_compatible BUCKET_LOCATION REGION: whether a trigger for the bucket can serve a function in REGION.
# Equal locations, the US/EU/ASIA multi-regions containing the region, or a predefined dual-region
# containing it.
location_compatible() {
  local location=${1,,} region=${2,,}
  [[ $location == "$region" ]] && return 0
  case $location in
    us) [[ $region == us-* ]] ;;
    eu) [[ $region == europe-* && $region != europe-west2 && $region != europe-west6 ]] ;; # UK and CH are not in EU
    asia) [[ $region == asia-* ]] ;;
    nam4) [[ $region == us-central1 || $region == us-east1 ]] ;;
    eur4) [[ $region == europe-north1 || $region == europe-west4 ]] ;;
    eur5) [[ $region == europe-west1 || $region == europe-west2 ]] ;;
    asia1) [[ $region == asia-northeast1 || $region == asia-northeast2 ]] ;;
    *) return 1 ;;
  esac
}

check_location() { # LOCATION
  location_compatible "$1" "$REGION" || die "bucket gs://$BUCKET is in location '$1', which is not compatible \
with region '$REGION': a Cloud Storage trigger must be in the bucket's location, and the function's region \
must be that location or inside it (e.g. us-central1 for US or NAM4). Deploy with --region set to a region \
in '$1' (or move the bucket)."
}

# ---------------------------------------------------------------------------------------------------------
# The env-vars file for the function (and the job).
# ---------------------------------------------------------------------------------------------------------
WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/image-pipeline-deploy.XXXXXX")
trap 'rm -rf -- "$WORK_DIR"' EXIT

yaml_quote() { # VALUE -> 'VALUE' with single quotes doubled
  local value=$1
  printf "'%s'" "${value//\'/\'\'}"
}

# write_env_file PATH [KEY=VALUE...]: the settings that are set (or defaulted), then the extra pairs.
write_env_file() {
  local path=$1 name value pair
  shift
  : >"$path"
  for name in "${SETTING_NAMES[@]}"; do
    value=$(setting_value "$name")
    [[ -n $value ]] || continue
    [[ $value != *$'\n'* ]] || usage_error "$name must be a single line"
    printf '%s: %s\n' "$name" "$(yaml_quote "$value")" >>"$path"
  done
  for pair in "$@"; do
    printf '%s: %s\n' "${pair%%=*}" "$(yaml_quote "${pair#*=}")" >>"$path"
  done
}

show_env_file() { # PATH: in a dry run, its contents as notes
  local line
  if ((DRY_RUN)); then
    printf '# env-vars file %s (deleted on exit):\n' "$1"
    while IFS= read -r line; do
      printf '#   %s\n' "$line"
    done <"$1"
  fi
}

# setting_value NAME: the value passed for a setting: the operator's, else this script's default; a route-level
# setting gets no default beside ROUTES_FILE (the function refuses it there).
setting_value() {
  local name=$1
  if [[ -n ${!name:-} ]]; then
    printf '%s' "${!name}"
  elif [[ -z ${ROUTES_FILE:-} || -z ${ROUTE_LEVEL[$name]:-} ]]; then
    printf '%s' "${SETTING_DEFAULTS[$name]:-}"
  fi
}

# load_setting_names: SETTING_NAMES and ROUTE_LEVEL from the package; fails clearly without a suitable Python.
load_setting_names() {
  local problem names name
  problem=$(python_problem)
  [[ -z $problem ]] || die "Python >= 3.11 is needed to read the function's settings ($problem): install it, or \
set PYTHON to one (e.g. PYTHON=python3.12)"
  names=$(pipeline_cli settings --names) || die "cannot list the function's settings with $PYTHON (see above)"
  mapfile -t SETTING_NAMES <<<"$names"
  names=$(pipeline_cli settings --names --route-level) || die "cannot list the route-level settings with $PYTHON"
  for name in $names; do
    ROUTE_LEVEL[$name]=1
  done
}

# resolve_routes_file: ROUTES_FILE made relative to the source root, which is how the deployed function reads it;
# refused unless .gcloudignore uploads it (routes.toml, or anything in routes/).
resolve_routes_file() {
  [[ -n ${ROUTES_FILE:-} ]] || return 0
  local given=$ROUTES_FILE path root relative
  path=$given
  [[ $path == /* ]] || path=$SCRIPT_DIR/$path
  [[ -f $path ]] || die "ROUTES_FILE '$given': no such file (a relative path starts at the source root, $SCRIPT_DIR)"
  root=$(cd -P -- "$SCRIPT_DIR" && pwd -P)
  relative=$(cd -P -- "$(dirname -- "$path")" && pwd -P)/$(basename -- "$path")
  relative=${relative#"$root"/}
  [[ $relative == routes.toml || $relative == routes/?* ]] || die "ROUTES_FILE '$given' would not be deployed: \
Cloud Functions uploads only what .gcloudignore lets through (main.py, requirements.txt, image_pipeline/, \
routes.toml and routes/), so put it at routes.toml or in routes/ under $root (e.g. cp it to $root/routes.toml and \
set ROUTES_FILE=routes.toml)"
  ROUTES_FILE=$relative
}

# validate_settings: list the function's settings and let its own parser reject bad values (and a bad routes
# file) now, rather than at the first event after a three-minute build; keep each route's sizes for the budget.
validate_settings() {
  local assignments=() name value sizes
  load_setting_names
  resolve_routes_file
  for name in "${SETTING_NAMES[@]}"; do
    value=$(setting_value "$name")
    [[ -z $value ]] || assignments+=("$name=$value")
  done
  sizes=$(env "${assignments[@]}" PYTHONPATH="$SCRIPT_DIR" "$PYTHON" -P -m image_pipeline settings --route-sizes) ||
    die "invalid function settings (see above)"
  mapfile -t ROUTE_SIZES <<<"$sizes"
}

# image_budget_mib: two lines: the MiB one concurrent image needs, then which route raises it above the measured
# 500 MiB (empty when none does). Beyond the measured setup (largest box 2048 px, one format:
# 2048 x 2048 x 4 bytes x 2 = 32 MiB of output buffers), a route adds its largest box's RGBA frame for the
# resized image and one per format it encodes: an estimate, not a measurement, and never a reduction.
MEASURED_IMAGE_MIB=500
image_budget_mib() {
  local line name box formats commas count estimate extra=0 why=""
  for line in "${ROUTE_SIZES[@]}"; do
    IFS=$'\t' read -r name box formats _ <<<"$line"
    [[ $box =~ ^([0-9]+)x([0-9]+)$ ]] || die "unexpected route size line from settings --route-sizes: '$line'"
    commas=${formats//[^,]/}
    count=$((${#commas} + 1))
    estimate=$((BASH_REMATCH[1] * BASH_REMATCH[2] * 4 * (1 + count) / 1048576 - 32))
    if ((estimate > extra)); then
      extra=$estimate
      why="route '$name': largest variant box $box, $count format(s)"
    fi
  done
  echo $((MEASURED_IMAGE_MIB + extra))
  echo "$why"
}

# default_timeout: 60s, or 120s when a route encodes AVIF. AVIF takes several times WebP's CPU (sharp's defaults
# spend about 6.7 s of CPU on one 3 MP photo's three variants; ours is tuned to a fraction of that, but a
# 1-vCPU instance encoding two formats of a large source would leave 60 s little margin).
default_timeout() {
  local line name box formats
  [[ -z $(cutout_models) ]] || {
    echo 120s
    return
  }
  for line in "${ROUTE_SIZES[@]}"; do
    IFS=$'\t' read -r name box formats _ <<<"$line"
    if [[ ,$formats, == *,avif,* ]]; then
      echo 120s
      return
    fi
  done
  echo 60s
}

# ---------------------------------------------------------------------------------------------------------
# Background removal: the model, its checksum, where it is read from, and what the function needs for it.
# ---------------------------------------------------------------------------------------------------------
# Beyond an image's 500 MiB: ISNet at 1024 x 1024 with onnxruntime's arena and memory patterns off peaks at about
# 1.1 GiB (1.85 GiB with them), the model's weights included; rounded up to 1230 MiB per concurrent image.
CUTOUT_IMAGE_MIB=1230
CUTOUT_MIN_MIB=2048
CUTOUT_MIN_TIMEOUT_S=120
# The object a model FILE is uploaded to (models/NAME-SHA12.onnx), empty when none is uploaded.
CUTOUT_OBJECT=""

# sha256_of FILE: the file's SHA-256 in lower-case hex (with the Python the script already needs).
sha256_of() {
  "$PYTHON" -c 'import hashlib, sys
digest = hashlib.sha256()
with open(sys.argv[1], "rb") as handle:
    for block in iter(lambda: handle.read(1 << 20), b""):
        digest.update(block)
print(digest.hexdigest())' "$1"
}

# prepare_cutout: --cutout-model turned into the built-in route's CUTOUT_ settings (checked with the others after).
prepare_cutout() {
  [[ -n $CUTOUT_MODEL ]] || return 0
  local sha name
  [[ -z ${ROUTES_FILE:-} ]] || usage_error "--cutout-model sets the built-in route's model; with ROUTES_FILE, \
each route names its model in [route.cutout] (docs/cutout.md)"
  [[ -n ${CUTOUT_FAMILY:-} ]] || usage_error "--cutout-model needs --cutout-family (isnet or u2net)"
  [[ -z ${CUTOUT_MODEL_URI:-} ]] || usage_error "--cutout-model sets CUTOUT_MODEL_URI: set one of them, not both"
  if [[ $CUTOUT_MODEL == gs://* ]]; then
    [[ -n ${CUTOUT_MODEL_SHA256:-} ]] || usage_error "--cutout-model $CUTOUT_MODEL needs --cutout-sha256 (the \
object's SHA-256, e.g. gcloud storage cat $CUTOUT_MODEL | sha256sum): it is not downloaded here"
    CUTOUT_MODEL_URI=$CUTOUT_MODEL
    return
  fi
  [[ -f $CUTOUT_MODEL ]] || usage_error "--cutout-model '$CUTOUT_MODEL': no such file"
  sha=$(sha256_of "$CUTOUT_MODEL") || die "cannot read '$CUTOUT_MODEL'"
  if [[ -n ${CUTOUT_MODEL_SHA256:-} && ${CUTOUT_MODEL_SHA256,,} != "$sha" ]]; then
    usage_error "--cutout-sha256 $CUTOUT_MODEL_SHA256 is not the SHA-256 of $CUTOUT_MODEL ($sha)"
  fi
  CUTOUT_MODEL_SHA256=$sha
  name=$(basename -- "$CUTOUT_MODEL")
  name=${name%.onnx}
  name=${name//[^A-Za-z0-9_-]/_}
  CUTOUT_OBJECT="models/${name:-model}-${sha:0:12}.onnx"
  CUTOUT_MODEL_URI="gs://{bucket}/$CUTOUT_OBJECT"
}

# cutout_models: the model URI of each route that removes backgrounds, one per line (nothing when none does).
cutout_models() {
  local line name box formats model
  for line in "${ROUTE_SIZES[@]}"; do
    IFS=$'\t' read -r name box formats model <<<"$line"
    [[ -z $model || $model == - ]] || printf '%s\n' "$model"
  done
}

# check_cutout_sizing MIB MILLICPU TIMEOUT_S: background removal needs 2 GiB, a whole CPU and 120 s.
check_cutout_sizing() {
  [[ -n $(cutout_models) ]] || return 0
  local problem=""
  (($1 >= CUTOUT_MIN_MIB)) || problem="MEMORY $MEMORY is below ${CUTOUT_MIN_MIB} MiB"
  (($2 >= 1000)) || problem+="${problem:+, }CPU $CPU is below 1"
  (($3 >= CUTOUT_MIN_TIMEOUT_S)) || problem+="${problem:+, }TIMEOUT $TIMEOUT is below ${CUTOUT_MIN_TIMEOUT_S}s"
  [[ -n $problem ]] || return 0
  if is_true "$ALLOW_UNDERSIZED"; then
    note "warning: background removal: $problem"
  else
    usage_error "background removal needs at least ${CUTOUT_MIN_MIB} MiB, 1 CPU and ${CUTOUT_MIN_TIMEOUT_S}s: \
$problem (defaults with a cutout: 4Gi, 2 CPUs, 120s; or pass --allow-undersized)"
  fi
}

# provision_cutout RUNTIME_EMAIL: upload the model file (unless already there), and let the runtime account read
# each model kept in another bucket (it already reads and writes this one).
provision_cutout() {
  local runtime_email=$1 model bucket
  if [[ -n $CUTOUT_OBJECT ]]; then
    comment "background removal: $CUTOUT_MODEL (sha256 $CUTOUT_MODEL_SHA256) to gs://$BUCKET/$CUTOUT_OBJECT, \
outside every route's match; --no-clobber: the name holds the checksum, so an existing object is this file"
    run gcloud storage cp "$CUTOUT_MODEL" "gs://$BUCKET/$CUTOUT_OBJECT" --no-clobber \
      --content-type=application/octet-stream --project="$PROJECT_ID" --quiet
  fi
  while IFS= read -r model; do
    [[ $model == gs://* ]] || continue
    bucket=${model#gs://}
    bucket=${bucket%%/*}
    [[ $bucket != "{bucket}" && $bucket != "$BUCKET" ]] || continue
    comment "background removal: the model $model is read from gs://$bucket (objects only, that bucket only)"
    run_retry gcloud storage buckets add-iam-policy-binding "gs://$bucket" --project="$PROJECT_ID" \
      --member="serviceAccount:$runtime_email" --role=roles/storage.objectViewer --format=none --quiet
  done < <(cutout_models | sort -u)
}

# ---------------------------------------------------------------------------------------------------------
# Steps.
# ---------------------------------------------------------------------------------------------------------
resolve_project() {
  if [[ -z $PROJECT_ID ]]; then
    if ((DRY_RUN)); then
      usage_error "PROJECT_ID is not set: pass --project or set PROJECT_ID (a dry run does not ask gcloud)"
    fi
    command -v gcloud >/dev/null 2>&1 || die "gcloud not found: install the Google Cloud CLI"
    printf '+ %s\n' "gcloud config get-value project" >&2
    PROJECT_ID=$(gcloud config get-value project 2>/dev/null || true)
    [[ -n $PROJECT_ID && $PROJECT_ID != "(unset)" ]] ||
      usage_error "PROJECT_ID is not set: pass --project, set PROJECT_ID or run 'gcloud config set project ID'"
  fi
  [[ $PROJECT_ID =~ ^[a-z][a-z0-9:.-]{4,61}[a-z0-9]$ ]] || usage_error "'$PROJECT_ID' is not a project id"
  if ((!DRY_RUN)); then
    command -v gcloud >/dev/null 2>&1 || die "gcloud not found: install the Google Cloud CLI"
  fi
}

require_bucket() {
  [[ -n $BUCKET ]] || usage_error "BUCKET is not set: pass --bucket NAME or set BUCKET (the Firebase Storage \
bucket, e.g. $PROJECT_ID.firebasestorage.app or $PROJECT_ID.appspot.com)"
  BUCKET=${BUCKET#gs://}
  BUCKET=${BUCKET%/}
  [[ $BUCKET =~ ^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$ ]] || usage_error "'$BUCKET' is not a bucket name"
}

validate_function_config() {
  [[ $REGION =~ ^[a-z]+-[a-z]+[0-9]+$ ]] || usage_error "REGION '$REGION' is not a region like us-central1"
  [[ $FUNCTION_NAME =~ ^[a-z][a-z0-9-]{0,61}[a-z0-9]$ ]] ||
    usage_error "FUNCTION_NAME '$FUNCTION_NAME' must be lower-case letters, digits and dashes"
  require_integer CONCURRENCY "$CONCURRENCY" 1
  require_integer MAX_INSTANCES "$MAX_INSTANCES" 1
  require_integer MIN_INSTANCES "$MIN_INSTANCES" 0
  ((MIN_INSTANCES <= MAX_INSTANCES)) || usage_error "MIN_INSTANCES ($MIN_INSTANCES) exceeds MAX_INSTANCES"
  local mib milli timeout_s needed budget per_image why
  [[ -z $MEMORY ]] || memory_mib "$MEMORY" >/dev/null ||
    usage_error "MEMORY '$MEMORY' is not a size like 512Mi, 1Gi or 2G"
  [[ -z $CPU ]] || millicpu "$CPU" >/dev/null || usage_error "CPU '$CPU' is not a CPU count like 1, 2, .5 or 2000m"
  [[ -z $TIMEOUT ]] || seconds "$TIMEOUT" >/dev/null ||
    usage_error "TIMEOUT '$TIMEOUT' is not a duration like 60s or 5m"
  prepare_cutout
  # The routes decide the per-image budget and the default sizing, so the settings are checked first.
  validate_settings
  if [[ -n $(cutout_models) ]]; then
    MEMORY=${MEMORY:-4Gi}
    CPU=${CPU:-2}
  else
    MEMORY=${MEMORY:-1Gi}
    CPU=${CPU:-1}
  fi
  mib=$(memory_mib "$MEMORY")
  milli=$(millicpu "$CPU")
  [[ -n $TIMEOUT ]] || TIMEOUT=$(default_timeout)
  timeout_s=$(seconds "$TIMEOUT")
  ((timeout_s >= 1 && timeout_s <= 3600)) || usage_error "TIMEOUT must be between 1s and 3600s"
  check_cutout_sizing "$mib" "$milli" "$timeout_s"
  if ((CONCURRENCY > 1 && milli < 1000)); then
    usage_error "CONCURRENCY $CONCURRENCY needs CPU >= 1 (Cloud Functions 2nd gen), got CPU $CPU"
  fi
  budget=$(image_budget_mib)
  per_image=${budget%%$'\n'*}
  why=${budget#*$'\n'}
  if [[ -n $(cutout_models) ]]; then
    per_image=$((per_image + CUTOUT_IMAGE_MIB))
    why+="${why:+; }background removal: $CUTOUT_IMAGE_MIB MiB more per image"
  fi
  needed=$((120 + CONCURRENCY * per_image))
  if ((mib < needed)); then
    if is_true "$ALLOW_UNDERSIZED"; then
      note "warning: MEMORY $MEMORY ($mib MiB) is below the $needed MiB that CONCURRENCY $CONCURRENCY needs for 100 MP images${why:+ ($why)}"
    else
      usage_error "MEMORY $MEMORY ($mib MiB) is too small for CONCURRENCY $CONCURRENCY: 100-megapixel images need \
about 120 MiB + $CONCURRENCY x $per_image MiB = $needed MiB${why:+ ($why)}; raise MEMORY, lower CONCURRENCY, or \
pass --allow-undersized (e.g. with a lower MAX_PIXELS)"
    fi
  fi
  if [[ -n ${CLIENT_TIMEOUT_S:-} && $CLIENT_TIMEOUT_S =~ ^[0-9]+([.][0-9]+)?$ ]]; then
    ((${CLIENT_TIMEOUT_S%.*} * 2 < timeout_s)) ||
      usage_error "CLIENT_TIMEOUT_S ($CLIENT_TIMEOUT_S) must be well under TIMEOUT ($TIMEOUT): an attempt has to end before it is killed"
  fi
  if [[ ${RETRY_WINDOW_S:-} =~ ^[0-9]+$ ]] && ((RETRY_WINDOW_S >= 86400)); then
    note "warning: RETRY_WINDOW_S $RETRY_WINDOW_S: Eventarc stops redelivering after 24 h, so the function could never record retries_exhausted"
  fi
}

enable_apis() {
  if is_true "$SKIP_APIS"; then
    comment "skipping 'gcloud services enable' (--skip-apis)"
    return
  fi
  run gcloud services enable "${APIS[@]}" --project="$PROJECT_ID" --quiet
}

# The trigger must live in the bucket's location; check it before changing anything.
TRIGGER_LOCATION=""
check_bucket_location() {
  local describe=(gcloud storage buckets describe "gs://$BUCKET" --project="$PROJECT_ID" --format='value(location)')
  if ((DRY_RUN)); then
    run "${describe[@]}"
    if [[ -n $BUCKET_LOCATION ]]; then
      comment "assuming bucket location ${BUCKET_LOCATION^^} (--bucket-location); a real run uses the answer above"
      check_location "$BUCKET_LOCATION"
      TRIGGER_LOCATION=${BUCKET_LOCATION,,}
    else
      comment "bucket location unknown in a dry run: region check skipped and --trigger-location omitted \
(pass --bucket-location to check it); a real run checks it and sets --trigger-location"
    fi
    return
  fi
  local location
  printf '+ %s\n' "$(quote "${describe[@]}")" >&2
  location=$("${describe[@]}") || die "cannot read gs://$BUCKET in project $PROJECT_ID: does it exist, and may you \
see it? (a Firebase project's default bucket is $PROJECT_ID.firebasestorage.app or $PROJECT_ID.appspot.com)"
  location=${location//[[:space:]]/}
  [[ -n $location ]] || die "gcloud returned no location for gs://$BUCKET"
  if [[ -n $BUCKET_LOCATION && ${BUCKET_LOCATION,,} != "${location,,}" ]]; then
    die "--bucket-location ${BUCKET_LOCATION} does not match gs://$BUCKET's actual location $location"
  fi
  note "bucket gs://$BUCKET is in $location"
  check_location "$location"
  TRIGGER_LOCATION=${location,,}
}

# ensure_service_account EMAIL DISPLAY_NAME DESCRIPTION: describe first; create only when missing.
ensure_service_account() {
  local email=$1 display=$2 description=$3 account_id
  local describe=(gcloud iam service-accounts describe "$email" --project="$PROJECT_ID" --format='value(email)')
  if [[ $email != *@"$PROJECT_ID".iam.gserviceaccount.com ]]; then
    # An account from elsewhere (another project, or a default account): use it, never create it.
    run "${describe[@]}"
    return
  fi
  account_id=${email%@*}
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

grant_project_role() { # MEMBER ROLE
  run_retry gcloud projects add-iam-policy-binding "$PROJECT_ID" --member="$1" --role="$2" \
    --condition=None --format=none --quiet
}

cmd_deploy() {
  resolve_project
  require_bucket
  validate_function_config
  local runtime_email trigger_email env_file
  runtime_email=$(sa_email "$RUNTIME_SA")
  trigger_email=$(sa_email "$TRIGGER_SA")
  [[ $runtime_email != "$trigger_email" ]] || usage_error "RUNTIME_SA and TRIGGER_SA must be different accounts"

  comment "deploy $FUNCTION_NAME to project $PROJECT_ID, region $REGION, bucket gs://$BUCKET"
  check_bucket_location
  enable_apis

  # Identities: one that runs the code, one that Eventarc uses to invoke it.
  ensure_service_account "$runtime_email" "image-pipeline runtime" \
    "Runs the image-pipeline function: reads uploads and writes variants in gs://$BUCKET, updates Firestore"
  ensure_service_account "$trigger_email" "image-pipeline trigger" \
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

  env_file=$WORK_DIR/env.yaml
  write_env_file "$env_file"
  show_env_file "$env_file"

  local deploy=(gcloud functions deploy "$FUNCTION_NAME" --gen2 --project="$PROJECT_ID" --region="$REGION"
    --runtime=python312 --source=. --entry-point=process_image
    --trigger-event-filters=type=google.cloud.storage.object.v1.finalized
    --trigger-event-filters=bucket="$BUCKET")
  [[ -z $TRIGGER_LOCATION ]] || deploy+=(--trigger-location="$TRIGGER_LOCATION")
  deploy+=(--retry
    --service-account="$runtime_email" --trigger-service-account="$trigger_email"
    --memory="$MEMORY" --cpu="$CPU" --concurrency="$CONCURRENCY" --timeout="$TIMEOUT"
    --max-instances="$MAX_INSTANCES" --min-instances="$MIN_INSTANCES"
    --ingress-settings=internal-only --no-allow-unauthenticated
    --env-vars-file="$env_file")
  if [[ -n $BUILD_SERVICE_ACCOUNT ]]; then
    local build_sa=$BUILD_SERVICE_ACCOUNT
    [[ $build_sa == projects/* ]] || build_sa="projects/$PROJECT_ID/serviceAccounts/$(sa_email "$build_sa")"
    deploy+=(--build-service-account="$build_sa")
  fi
  deploy+=(--quiet)
  run "${deploy[@]}"

  # Only the trigger identity may invoke the function (its Cloud Run service); nobody else, no allUsers.
  run_retry gcloud functions add-invoker-policy-binding "$FUNCTION_NAME" --project="$PROJECT_ID" \
    --region="$REGION" --member="serviceAccount:$trigger_email" --format=none --quiet

  comment "done. Logs: gcloud functions logs read $FUNCTION_NAME --gen2 --project=$PROJECT_ID --region=$REGION --limit=50"
}

cmd_backfill_job() {
  resolve_project
  require_bucket
  [[ $REGION =~ ^[a-z]+-[a-z]+[0-9]+$ ]] || usage_error "REGION '$REGION' is not a region like us-central1"
  [[ $JOB_NAME =~ ^[a-z][a-z0-9-]{0,61}[a-z0-9]$ ]] ||
    usage_error "JOB_NAME '$JOB_NAME' must be lower-case letters, digits and dashes"
  require_integer TASKS "$TASKS" 1
  ((TASKS <= 10000)) || usage_error "TASKS must be at most 10000, got $TASKS"
  require_integer PARALLELISM "$PARALLELISM" 0
  require_integer MAX_RETRIES "$MAX_RETRIES" 0
  memory_mib "$JOB_MEMORY" >/dev/null || usage_error "JOB_MEMORY '$JOB_MEMORY' is not a size like 2Gi"
  millicpu "$JOB_CPU" >/dev/null || usage_error "JOB_CPU '$JOB_CPU' is not a CPU count like 2"
  seconds "$TASK_TIMEOUT" >/dev/null || usage_error "TASK_TIMEOUT '$TASK_TIMEOUT' is not a duration like 3600s"
  # The same model settings as the function's (the deploy uploads the file; the job only reads it).
  prepare_cutout
  validate_settings
  local runtime_email env_file extra args
  runtime_email=$(sa_email "$RUNTIME_SA")

  comment "backfill job $JOB_NAME in project $PROJECT_ID, region $REGION, bucket gs://$BUCKET, $TASKS tasks"
  local describe=(gcloud iam service-accounts describe "$runtime_email" --project="$PROJECT_ID" --format='value(email)')
  if ((DRY_RUN)); then
    run "${describe[@]}"
  else
    printf '+ %s\n' "$(quote "${describe[@]}")" >&2
    "${describe[@]}" >/dev/null 2>&1 ||
      die "service account $runtime_email not found: run '$PROG deploy' first (it creates it and grants its IAM)"
  fi

  # The job needs the bucket (the function gets it from each event); it shards with CLOUD_RUN_TASK_INDEX
  # and CLOUD_RUN_TASK_COUNT, which Cloud Run sets for every task.
  env_file=$WORK_DIR/job-env.yaml
  write_env_file "$env_file" "BUCKET=$BUCKET" "GOOGLE_CLOUD_PROJECT=$PROJECT_ID"
  show_env_file "$env_file"

  args="-m,image_pipeline,backfill"
  for extra in "${BACKFILL_EXTRA[@]}"; do
    [[ $extra != *,* ]] || usage_error "backfill arguments cannot contain commas: '$extra'"
    args+=",$extra"
  done
  local deploy=(gcloud run jobs deploy "$JOB_NAME" --project="$PROJECT_ID" --region="$REGION" --source=.
    --tasks="$TASKS")
  ((PARALLELISM == 0)) || deploy+=(--parallelism="$PARALLELISM")
  deploy+=(--max-retries="$MAX_RETRIES" --task-timeout="$TASK_TIMEOUT"
    --memory="$JOB_MEMORY" --cpu="$JOB_CPU" --service-account="$runtime_email"
    --env-vars-file="$env_file" --command=python --args="$args" --quiet)
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

RULES_CONFIG=""
# rules_config: RULES_CONFIG, the firebase.json to deploy the rules with. The committed rules are the generator's output for the
# built-in route with its defaults; when ROUTES_FILE or a built-in route variable is set, the rules are generated
# for those routes (by the function's own code) into the work folder, beside a firebase.json naming them.
rules_config() {
  local name shaped="${ROUTES_FILE:+ROUTES_FILE}" out=$WORK_DIR/rules
  load_setting_names
  for name in "${!ROUTE_LEVEL[@]}"; do
    [[ -n $shaped || -z ${!name:-} ]] || shaped=$name
  done
  if [[ -z $shaped ]]; then
    comment "the committed storage.rules and firestore.rules (the built-in route with its default folders)"
    RULES_CONFIG=$SCRIPT_DIR/firebase.json
    return
  fi
  resolve_routes_file
  pipeline_cli rules --out "$out" >&2 || die "cannot generate the rules for these settings (see above)"
  printf '{"firestore": {"rules": "firestore.rules"}, "storage": {"rules": "storage.rules"}}\n' >"$out/firebase.json"
  comment "rules generated for the configured routes ($shaped is set): python3 -m image_pipeline rules --out $out \
(deleted on exit)"
  RULES_CONFIG=$out/firebase.json
}

cmd_rules() {
  resolve_project
  local firebase=${FIREBASE:-firebase}
  if ((!DRY_RUN)); then
    command -v "${firebase%% *}" >/dev/null 2>&1 ||
      die "firebase CLI not found: npm install -g firebase-tools (or set FIREBASE='npx --yes firebase-tools')"
  fi
  rules_config
  comment "storage.rules go to the project's default Storage bucket (firebase.json); firestore.rules to (default)"
  # shellcheck disable=SC2086 # FIREBASE may be a command with arguments, e.g. 'npx --yes firebase-tools'
  run $firebase deploy --only storage,firestore:rules --project="$PROJECT_ID" --config="$RULES_CONFIG"
}

cd -- "$SCRIPT_DIR"
case $SUBCOMMAND in
  deploy) cmd_deploy ;;
  backfill-job) cmd_backfill_job ;;
  rules) cmd_rules ;;
esac
