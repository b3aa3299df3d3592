"""What deploy.sh deploys, worked out before anything runs: the function's memory, CPU and timeout, its identities,
the env-vars file, the routes file's deployed path, the background-removal model and the buckets it is read from,
the Eventarc channels extension routes publish to (and the IAM policy edit that lets the function publish there), the
backfill job's arguments, and whether a bucket's location can serve the region.

deploy.sh parses its flags into the variables its --help names and hands them over in the environment
(`python -m image_pipeline deploy-plan`); it keeps only the orchestration of gcloud. Standard library only: deploy.sh
runs this with any python3 >= 3.11, without the project's dependencies. `read_settings` is the one function that
touches image_pipeline.settings; everything else works on what it returns.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from image_pipeline.builtin_route import TRUE
from image_pipeline.model_files import BUCKET_NAME

# Measured with benchmarks/bench_core.py (whole-process peak RSS): a 100 MP JPEG peaks at ~125 MiB (it is decoded at
# a reduced DCT scale); formats that must be decoded in full cost 6-18 bytes per pixel, so the core refuses any image
# whose estimated decode exceeds MAX_DECODE_MIB (default 512) as too_large. An image therefore gets 500 MiB, and the
# interpreter, functions-framework and the Google clients ~120 MiB: 620 MiB for one image at a time, which 1Gi
# covers. Those limits are shared by every route, so routes do not change the decode; only a variant box larger than
# the measured 2048 px adds output buffers (extra_image_mib).
MEASURED_IMAGE_MIB = 500
RUNTIME_MIB = 120
# The output buffers already inside the measured 500 MiB: a 2048 px box in one format (RGBA frame + encoded frame).
MEASURED_BUFFERS_MIB = 2048 * 2048 * 4 * 2 // 2**20
# Background removal, beyond an image's 500 MiB: ISNet at 1024 x 1024 with onnxruntime's arena on (it keeps its
# buffers between images) and memory patterns off peaks at 1.43-1.54 GiB over camera photos, the model's weights
# included (docs/cutout.md); about a tenth more per concurrent image.
CUTOUT_IMAGE_MIB = 1600
CUTOUT_MIN_MIB = 2048
CUTOUT_MIN_TIMEOUT_S = 120
# A whole CPU: what background removal needs, and what Cloud Functions 2nd gen needs for concurrency above 1.
WHOLE_CPU = 1000
MAX_TIMEOUT_S = 3600
MAX_TASKS = 10000
# Eventarc stops redelivering an event after 24 h.
EVENTARC_RETRY_S = 86400
# The variable the function reads its project from, for an extension route's channel or event source that names none.
PROJECT_VARIABLE = "GOOGLE_CLOUD_PROJECT"
# The slowest format to encode: a route that may encode it gets the longer default timeout.
AVIF = "avif"
# Settings written to the env-vars file even when unset, so the deployed configuration shows the contract with the
# app (the built-in route's only without ROUTES_FILE, which refuses them).
WRITTEN_DEFAULTS = MappingProxyType(
    {
        "SOURCE_PREFIX": "raw-uploads/",
        "OUTPUT_PREFIX": "showcase-images/",
        "FIRESTORE_COLLECTION": "characters",
        "LOG_LEVEL": "INFO",
    }
)
# The predefined dual-regions and the regions inside each.
DUAL_REGIONS = MappingProxyType(
    {
        "nam4": ("us-central1", "us-east1"),
        "eur4": ("europe-north1", "europe-west4"),
        "eur5": ("europe-west1", "europe-west2"),
        "asia1": ("asia-northeast1", "asia-northeast2"),
    }
)
# What .gcloudignore uploads of a routes file: routes.toml, or anything in routes/.
_DEPLOYED_ROUTES_FILE = re.compile(r"routes\.toml|routes/.+", re.DOTALL)

_PROJECT = re.compile(r"[a-z][a-z0-9:.-]{4,61}[a-z0-9]")
_REGION = re.compile(r"[a-z]+-[a-z]+[0-9]+")
_RESOURCE_NAME = re.compile(r"[a-z][a-z0-9-]{0,61}[a-z0-9]")
_ACCOUNT_ID = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]")
_WHOLE_NUMBER = re.compile(r"[0-9]+")
_MEMORY = re.compile(r"([0-9]+)([kKMG]i?)?[bB]?")
_BYTES_PER_UNIT = MappingProxyType(
    {"": 1, "k": 1000, "K": 1000, "Ki": 1024, "M": 1000**2, "Mi": 1024**2, "G": 1000**3, "Gi": 1024**3}
)
_MILLICPU = re.compile(r"([0-9]+)m")
_CPU = re.compile(r"([0-9]*)(?:\.([0-9]{1,3}))?")
_DURATION = re.compile(r"([0-9]+)([smh]?)")
_SECONDS_PER_UNIT = MappingProxyType({"": 1, "s": 1, "m": 60, "h": 3600})
_CLIENT_TIMEOUT = re.compile(r"([0-9]+)(?:\.[0-9]+)?")
_CHANNEL = re.compile(r"projects/([^/\s]+)/locations/([^/\s]+)/channels/([^/\s]+)")
_MEMBER = re.compile(r"[A-Za-z]+:[^\s:]\S*")
_ROLE = re.compile(r"(?:roles|(?:projects|organizations)/[^/\s]+/roles)/[A-Za-z0-9_.]+")


class PlanError(Exception):
    """Why deploy.sh cannot go on: a configuration that cannot be deployed as it is (exit status 1)."""

    status = 1


class FlagError(PlanError):
    """A flag or variable with a value deploy.sh refuses (exit status 2, with a pointer to --help)."""

    status = 2


class InvalidSettings(PlanError):
    """The function's own settings check refused them; the message is that check's."""


@dataclass(frozen=True)
class SettingVariable:
    """One variable the function's settings read."""

    name: str
    route_level: bool  # a variable of the built-in route: refused beside ROUTES_FILE


@dataclass(frozen=True)
class RouteSizing:
    """What sizes the function for one route, beyond the limits every route shares."""

    name: str
    box: tuple[int, int]  # the largest variant's box, width x height
    formats: tuple[str, ...]  # the formats it encodes, e.g. ("avif", "webp")
    model_uri: str | None  # its background-removal model; None: it removes none


@dataclass(frozen=True)
class EventChannel:
    """An Eventarc channel extension routes publish their events to: it must exist, and the function's runtime account
    needs roles/eventarc.publisher on it."""

    project: str
    location: str
    channel_id: str  # e.g. firebase
    routes: tuple[str, ...]  # the routes publishing there, in the routes file's order

    @property
    def name(self) -> str:
        """The channel's full name, as the Eventarc API and EVENTARC_CHANNEL spell it."""
        return f"projects/{self.project}/locations/{self.location}/channels/{self.channel_id}"


@dataclass(frozen=True)
class ProjectSettings:
    """What deploy.sh takes from the function's settings."""

    variables: tuple[SettingVariable, ...]  # in reading order
    routes: tuple[RouteSizing, ...]  # empty when no environment was read
    channels: tuple[EventChannel, ...] = ()  # where extension routes publish events, by name


@dataclass(frozen=True)
class Notice:
    """A finding about the configuration, in the order deploy.sh reports them."""

    message: str
    refused: bool  # True: a usage error; False: a warning, and the deploy goes on


@dataclass(frozen=True)
class ImageBudget:
    """The memory one concurrent image needs."""

    mib: int
    why: str  # what raises it above the measured 500 MiB; empty when nothing does


@dataclass(frozen=True)
class FunctionSizing:
    """The function's --memory, --cpu and --timeout, as given or defaulted for its routes."""

    memory: str
    cpu: str
    timeout: str

    @property
    def mib(self) -> int:
        """The memory in MiB."""
        return _checked(memory_mib(self.memory))

    @property
    def millicpu(self) -> int:
        """The CPU count in thousandths."""
        return _checked(millicpu(self.cpu))

    @property
    def timeout_s(self) -> int:
        """The timeout in seconds."""
        return _checked(duration_s(self.timeout))


def _checked(value: int | None) -> int:
    if value is None:
        raise ValueError("a size, CPU count or duration that was not checked")
    return value


@dataclass(frozen=True)
class Identity:
    """A service account the function runs or is invoked as."""

    email: str
    account_id: str  # the id to create it with when missing; empty for another project's account (used, never created)


@dataclass(frozen=True)
class ModelUpload:
    """A background-removal model file uploaded to the function's bucket, under a name that holds its checksum."""

    file: str
    sha256: str
    object_name: str

    @property
    def uri(self) -> str:
        """Where the function reads it: `{bucket}` is the event's bucket, the one it is uploaded to."""
        return f"gs://{{bucket}}/{self.object_name}"


@dataclass(frozen=True)
class ModelRead:
    """A model kept in another bucket: the runtime account gets read access on that bucket."""

    bucket: str
    uri: str


@dataclass(frozen=True)
class CheckedSettings:
    """The settings passed to the function (or the job), checked by its own code, and what they decide."""

    passed: Mapping[str, str]  # name -> value, in reading order: what the env-vars file holds
    routes: tuple[RouteSizing, ...]
    upload: ModelUpload | None
    channels: tuple[EventChannel, ...]


@dataclass(frozen=True)
class FunctionPlan:
    """Everything `deploy.sh deploy` needs beyond its own options."""

    bucket: str
    runtime: Identity
    trigger: Identity
    sizing: FunctionSizing
    build_service_account: str  # the full name for --build-service-account; empty: the default
    upload: ModelUpload | None
    model_reads: tuple[ModelRead, ...]
    channels: tuple[EventChannel, ...]
    env_file: tuple[str, ...]  # the env-vars file's lines


@dataclass(frozen=True)
class JobPlan:
    """Everything `deploy.sh backfill-job` needs beyond its own options."""

    bucket: str
    runtime_email: str
    args: str  # the job's --args: python's, comma-separated
    env_file: tuple[str, ...]


@dataclass(frozen=True)
class RulesPlan:
    """What `deploy.sh rules` deploys: the committed rules, or rules generated for the configured routes."""

    shaped_by: str  # the variable that makes the routes differ from the built-in defaults; empty: none does
    routes_file: str  # ROUTES_FILE as deployed (relative to the source root); empty when unset


# --- reading the function's settings --------------------------------------------------------------------------------


def read_settings(environ: Mapping[str, str] | None = None) -> ProjectSettings:
    """The variables the function's settings read and, given the function's environment, its routes' sizing and the
    channels its extension routes publish to.

    The only reader of image_pipeline.settings here, so that a change there has one place to follow here. The
    environment is validated by the function's own code (Settings.from_env): a bad value or routes file stops the
    deploy before anything changes.
    """
    from image_pipeline.errors import ConfigurationError
    from image_pipeline.extension.params import ImageType
    from image_pipeline.extension.route import CONVERTED_FORMATS, SOURCE_FORMATS
    from image_pipeline.settings import Settings

    variables = tuple(SettingVariable(variable.name, variable.route) for variable in Settings.variables())
    if environ is None:
        return ProjectSettings(variables, ())
    try:
        settings = Settings.from_env(environ)
    except ConfigurationError as error:
        raise InvalidSettings(str(error)) from None
    routes = tuple(
        RouteSizing(
            name=route.name,
            box=route.imaging.largest_variant.box,
            formats=tuple(encoding.format.value for encoding in route.imaging.encodings),
            model_uri=route.cutout.uri if route.cutout is not None else None,
        )
        for route in settings.routes
    )
    # An extension route writes `false` (the upload's own type) in the format the upload is read as.
    kept = tuple(dict.fromkeys(output_format.value for output_format in SOURCE_FORMATS.values()))
    extensions = []
    for extension in settings.extension_routes:
        types = extension.params.image_types
        converted = [CONVERTED_FORMATS[kind].value for kind in types if kind is not ImageType.ORIGINAL]
        formats = extension_formats(converted, kept if ImageType.ORIGINAL in types else ())
        box = largest_box((size.width, size.height) for size in extension.params.sizes)
        extensions.append(RouteSizing(extension.name, box, formats, None))
    publishers = tuple(
        (extension.name, extension.publishing.channel)
        for extension in settings.extension_routes
        if extension.publishing is not None
    )
    return ProjectSettings(variables, (*routes, *extensions), event_channels(publishers))


def largest_box(boxes: Iterable[tuple[int, int]]) -> tuple[int, int]:
    """The box with the most pixels (an extension route's IMG_SIZES entries, as width x height)."""
    return max(boxes, key=lambda box: box[0] * box[1])


def extension_formats(converted: Sequence[str], kept: Sequence[str]) -> tuple[str, ...]:
    """The formats an extension route encodes, at worst: the distinct ones IMAGE_TYPE converts to, and, when it keeps
    the upload's own type (`false`; `kept`: the formats an upload may be written back in, empty when it does not), the
    most expensive of those, since an upload may be of any type the extension reads: AVIF, the slowest encoder (it
    decides the default timeout), unless IMAGE_TYPE converts to AVIF already; then another, since an upload of any
    other type is one more format to encode (one more buffer in the memory budget)."""
    formats = tuple(dict.fromkeys(converted))
    costliest = sorted((kind for kind in kept if kind not in formats), key=lambda kind: kind != AVIF)
    return formats + tuple(costliest[:1])


def event_channels(publishers: Iterable[tuple[str, str]]) -> tuple[EventChannel, ...]:
    """The channels (route name, channel's full name) pairs publish to, by name, each with its routes."""
    routes: dict[str, list[str]] = {}
    for route, name in publishers:
        routes.setdefault(name, []).append(route)
    channels = []
    for name in sorted(routes):
        match = _CHANNEL.fullmatch(name)
        if match is None:  # the function's own check lets spaces through; no Eventarc name has one
            raise PlanError(f"route {routes[name][0]!r}: EVENTARC_CHANNEL {name!r} is not an Eventarc channel's name")
        channels.append(EventChannel(match[1], match[2], match[3], tuple(routes[name])))
    return tuple(channels)


def passed_settings(variables: Iterable[SettingVariable], environ: Mapping[str, str]) -> dict[str, str]:
    """The settings the function gets, in reading order: each one set, else its written default (none for the
    built-in route's variables beside ROUTES_FILE, which refuses them)."""
    beside_routes_file = bool(environ.get("ROUTES_FILE"))
    passed = {}
    for variable in variables:
        value = environ.get(variable.name) or (
            "" if beside_routes_file and variable.route_level else WRITTEN_DEFAULTS.get(variable.name, "")
        )
        if value:
            passed[variable.name] = value
    return passed


def env_file(settings: Mapping[str, str], extra: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The env-vars file's lines (YAML, each value single-quoted): the settings, then the extra pairs."""
    for name, value in settings.items():
        if "\n" in value:
            raise FlagError(f"{name} must be a single line")
    pairs = {**settings, **(extra or {})}
    return tuple(f"{name}: {_yaml_quoted(value)}" for name, value in pairs.items())


def _yaml_quoted(value: str) -> str:
    """A YAML single-quoted scalar: the quotes inside doubled."""
    escaped = value.replace("'", "''")
    return f"'{escaped}'"


def rules_shaped_by(variables: Iterable[SettingVariable], environ: Mapping[str, str]) -> str:
    """ROUTES_FILE when it is set, else the first built-in route variable that is: what makes the rules differ from
    the committed ones (the generator's output for the built-in route with its defaults)."""
    if environ.get("ROUTES_FILE"):
        return "ROUTES_FILE"
    return next((variable.name for variable in variables if variable.route_level and environ.get(variable.name)), "")


# --- sizes, CPU counts and durations, as gcloud takes them ------------------------------------------------------------


def memory_mib(size: str) -> int | None:
    """A memory size in MiB, rounded down (512M, 1Gi, 1024Mi, 2G, 1GiB...); None if it is not one."""
    match = _MEMORY.fullmatch(size)
    if match is None or (match[2] or "") not in _BYTES_PER_UNIT:
        return None
    return int(match[1]) * _BYTES_PER_UNIT[match[2] or ""] // 2**20


def millicpu(cpu: str) -> int | None:
    """A CPU count in thousandths (1 -> 1000, .5 -> 500, 2000m -> 2000); None if it is not one."""
    if match := _MILLICPU.fullmatch(cpu):
        return int(match[1])
    match = _CPU.fullmatch(cpu)
    if match is None or not (match[1] or match[2]):
        return None
    return int(match[1] or "0") * 1000 + int((match[2] or "").ljust(3, "0"))


def duration_s(duration: str) -> int | None:
    """A duration in seconds (60, 60s, 5m, 1h); None if it is not one."""
    match = _DURATION.fullmatch(duration)
    return None if match is None else int(match[1]) * _SECONDS_PER_UNIT[match[2]]


# --- sizing ---------------------------------------------------------------------------------------------------------


def removes_backgrounds(routes: Iterable[RouteSizing]) -> bool:
    """Whether any route runs a background-removal model."""
    return any(route.model_uri for route in routes)


def extra_image_mib(route: RouteSizing) -> int:
    """What a route's output buffers add to an image's measured 500 MiB: its largest box's RGBA frame for the
    resized image and one per format it encodes, less what the measured setup already had. An estimate, not a
    measurement; negative for boxes smaller than the measured one (which never lower the budget)."""
    width, height = route.box
    return width * height * 4 * (1 + len(route.formats)) // 2**20 - MEASURED_BUFFERS_MIB


def image_budget(routes: Sequence[RouteSizing]) -> ImageBudget:
    """The memory one concurrent image needs: the measured 500 MiB, the heaviest route's extra buffers, and
    background removal's model when a route runs one."""
    heaviest = max(routes, key=extra_image_mib, default=None)
    extra = max(0, extra_image_mib(heaviest)) if heaviest is not None else 0
    reasons = []
    if heaviest is not None and extra > 0:
        width, height = heaviest.box
        reasons.append(
            f"route '{heaviest.name}': largest variant box {width}x{height}, {len(heaviest.formats)} format(s)"
        )
    mib = MEASURED_IMAGE_MIB + extra
    if removes_backgrounds(routes):
        mib += CUTOUT_IMAGE_MIB
        reasons.append(f"background removal: {CUTOUT_IMAGE_MIB} MiB more per image")
    return ImageBudget(mib, "; ".join(reasons))


def default_sizing(routes: Sequence[RouteSizing]) -> FunctionSizing:
    """The sizing when MEMORY, CPU and TIMEOUT are unset: 1Gi, 1 CPU and 60 s; 4Gi, 2 CPUs and 120 s with background
    removal; 120 s when a route encodes AVIF.

    A 60 s attempt ends well inside the limit (the clients' own retries are bounded by CLIENT_TIMEOUT_S); anything
    longer is better handled by raising and letting Eventarc redeliver with backoff. AVIF takes several times WebP's
    CPU (sharp's defaults spend about 6.7 s of CPU on one 3 MP photo's three variants; ours is tuned to a fraction
    of that, but a 1-vCPU instance encoding two formats of a large source would leave 60 s little margin).
    """
    if removes_backgrounds(routes):
        return FunctionSizing(memory="4Gi", cpu="2", timeout="120s")
    timeout = "120s" if any("avif" in route.formats for route in routes) else "60s"
    return FunctionSizing(memory="1Gi", cpu="1", timeout=timeout)


def sizing_notices(
    sizing: FunctionSizing, concurrency: int, routes: Sequence[RouteSizing], *, allow_undersized: bool
) -> tuple[Notice, ...]:
    """What is wrong with a sizing for these routes, in the order deploy.sh reports it; with allow_undersized, a
    budget that is not met is a warning instead of a refusal."""
    notices = (
        cutout_notice(sizing, routes, allow_undersized=allow_undersized),
        concurrency_notice(sizing, concurrency),
        memory_notice(sizing, concurrency, routes, allow_undersized=allow_undersized),
    )
    return tuple(notice for notice in notices if notice is not None)


def cutout_notice(sizing: FunctionSizing, routes: Sequence[RouteSizing], *, allow_undersized: bool) -> Notice | None:
    """Background removal needs 2 GiB, a whole CPU and 120 s."""
    if not removes_backgrounds(routes):
        return None
    checks = (
        (sizing.mib < CUTOUT_MIN_MIB, f"MEMORY {sizing.memory} is below {CUTOUT_MIN_MIB} MiB"),
        (sizing.millicpu < WHOLE_CPU, f"CPU {sizing.cpu} is below 1"),
        (sizing.timeout_s < CUTOUT_MIN_TIMEOUT_S, f"TIMEOUT {sizing.timeout} is below {CUTOUT_MIN_TIMEOUT_S}s"),
    )
    problems = ", ".join(problem for failed, problem in checks if failed)
    if not problems:
        return None
    if allow_undersized:
        return Notice(f"background removal: {problems}", refused=False)
    return Notice(
        f"background removal needs at least {CUTOUT_MIN_MIB} MiB, 1 CPU and {CUTOUT_MIN_TIMEOUT_S}s: {problems} "
        "(defaults with a cutout: 4Gi, 2 CPUs, 120s; or pass --allow-undersized)",
        refused=True,
    )


def concurrency_notice(sizing: FunctionSizing, concurrency: int) -> Notice | None:
    """Cloud Functions 2nd gen serves more than one request at a time only with a whole CPU."""
    if concurrency > 1 and sizing.millicpu < WHOLE_CPU:
        return Notice(
            f"CONCURRENCY {concurrency} needs CPU >= 1 (Cloud Functions 2nd gen), got CPU {sizing.cpu}", refused=True
        )
    return None


def memory_notice(
    sizing: FunctionSizing, concurrency: int, routes: Sequence[RouteSizing], *, allow_undersized: bool
) -> Notice | None:
    """MEMORY must hold the runtime and CONCURRENCY images at their budget."""
    budget = image_budget(routes)
    needed = RUNTIME_MIB + concurrency * budget.mib
    if sizing.mib >= needed:
        return None
    why = f" ({budget.why})" if budget.why else ""
    if allow_undersized:
        return Notice(
            f"MEMORY {sizing.memory} ({sizing.mib} MiB) is below the {needed} MiB that CONCURRENCY {concurrency} "
            f"needs for 100 MP images{why}",
            refused=False,
        )
    return Notice(
        f"MEMORY {sizing.memory} ({sizing.mib} MiB) is too small for CONCURRENCY {concurrency}: 100-megapixel images "
        f"need about {RUNTIME_MIB} MiB + {concurrency} x {budget.mib} MiB = {needed} MiB{why}; raise MEMORY, lower "
        "CONCURRENCY, or pass --allow-undersized (e.g. with a lower MAX_PIXELS)",
        refused=True,
    )


def timing_notices(sizing: FunctionSizing, client_timeout_s: str, retry_window_s: str) -> tuple[Notice, ...]:
    """What is wrong with the settings' own timeouts (as given; empty: unset) against the function's."""
    notices = []
    client = _CLIENT_TIMEOUT.fullmatch(client_timeout_s)
    if client is not None and int(client[1]) * 2 >= sizing.timeout_s:
        notices.append(
            Notice(
                f"CLIENT_TIMEOUT_S ({client_timeout_s}) must be well under TIMEOUT ({sizing.timeout}): an attempt has "
                "to end before it is killed",
                refused=True,
            )
        )
    if _WHOLE_NUMBER.fullmatch(retry_window_s) and int(retry_window_s) >= EVENTARC_RETRY_S:
        notices.append(
            Notice(
                f"RETRY_WINDOW_S {retry_window_s}: Eventarc stops redelivering after 24 h, so the function could never "
                "record retries_exhausted",
                refused=False,
            )
        )
    return tuple(notices)


# --- names, identities and places ----------------------------------------------------------------------------------


def check_project(project: str) -> str:
    """The project id, checked."""
    if not _PROJECT.fullmatch(project):
        raise FlagError(f"'{project}' is not a project id")
    return project


def bucket_name(bucket: str, project: str) -> str:
    """The bucket's name, from NAME, gs://NAME or gs://NAME/."""
    if not bucket:
        raise FlagError(
            f"BUCKET is not set: pass --bucket NAME or set BUCKET (the Firebase Storage bucket, e.g. "
            f"{project}.firebasestorage.app or {project}.appspot.com)"
        )
    name = bucket.removeprefix("gs://").removesuffix("/")
    if not BUCKET_NAME.fullmatch(name):
        raise FlagError(f"'{name}' is not a bucket name")
    return name


def check_region(region: str) -> str:
    """The region, checked."""
    if not _REGION.fullmatch(region):
        raise FlagError(f"REGION '{region}' is not a region like us-central1")
    return region


def check_resource_name(variable: str, name: str) -> str:
    """A function's or job's name, checked."""
    if not _RESOURCE_NAME.fullmatch(name):
        raise FlagError(f"{variable} '{name}' must be lower-case letters, digits and dashes")
    return name


def whole_number(variable: str, value: str, low: int) -> int:
    """A variable's whole-number value, at least `low`."""
    if not _WHOLE_NUMBER.fullmatch(value):
        raise FlagError(f"{variable} must be a whole number, got '{value}'")
    if int(value) < low:
        raise FlagError(f"{variable} must be at least {low}, got {value}")
    return int(value)


def service_account_email(account: str, project: str) -> str:
    """An email as given; a bare account id becomes ID@PROJECT.iam.gserviceaccount.com."""
    if "@" in account:
        return account
    if not _ACCOUNT_ID.fullmatch(account):
        raise FlagError(f"service account id '{account}' must be 6-30 characters of a-z 0-9 -, starting with a letter")
    return f"{account}@{project}.iam.gserviceaccount.com"


def identity(account: str, project: str) -> Identity:
    """A service account, and the id to create it with if it is this project's."""
    email = service_account_email(account, project)
    own = f"@{project}.iam.gserviceaccount.com"
    return Identity(email, email.removesuffix(own) if email.endswith(own) else "")


def build_service_account(account: str, project: str) -> str:
    """--build-service-account's full name (projects/P/serviceAccounts/EMAIL); empty when none is given."""
    if not account or account.startswith("projects/"):
        return account
    return f"projects/{project}/serviceAccounts/{service_account_email(account, project)}"


def serves_region(location: str, region: str) -> bool:
    """Whether a trigger for a bucket in `location` can serve a function in `region`: the same location, the US, EU
    or ASIA multi-region containing it, or a predefined dual-region containing it."""
    location, region = location.lower(), region.lower()
    if location == region:
        return True
    if location == "us":
        return region.startswith("us-")
    if location == "eu":  # the UK and Switzerland are not in the EU multi-region
        return region.startswith("europe-") and region not in ("europe-west2", "europe-west6")
    if location == "asia":
        return region.startswith("asia-")
    return region in DUAL_REGIONS.get(location, ())


def trigger_location(location: str, region: str, bucket: str) -> str:
    """The trigger's --trigger-location for a bucket in `location`, refused when it cannot serve `region`."""
    if not serves_region(location, region):
        raise PlanError(
            f"bucket gs://{bucket} is in location '{location}', which is not compatible with region '{region}': a "
            "Cloud Storage trigger must be in the bucket's location, and the function's region must be that location "
            f"or inside it (e.g. us-central1 for US or NAM4). Deploy with --region set to a region in '{location}' "
            "(or move the bucket)."
        )
    return location.lower()


def deployed_routes_file(given: str, source_root: str) -> str:
    """ROUTES_FILE relative to the source root, which is how the deployed function reads it; empty when unset.

    Refused unless .gcloudignore uploads it (routes.toml, or anything in routes/).
    """
    if not given:
        return ""
    path = given if given.startswith("/") else f"{source_root}/{given}"
    if not os.path.isfile(path):
        raise PlanError(
            f"ROUTES_FILE '{given}': no such file (a relative path starts at the source root, {source_root})"
        )
    root = os.path.realpath(source_root)
    physical = f"{os.path.realpath(os.path.dirname(path))}/{os.path.basename(path)}"
    relative = physical.removeprefix(f"{root}/")
    if not _DEPLOYED_ROUTES_FILE.fullmatch(relative):
        raise PlanError(
            f"ROUTES_FILE '{given}' would not be deployed: Cloud Functions uploads only what .gcloudignore lets "
            "through (main.py, requirements.txt, image_pipeline/, routes.toml and routes/), so put it at routes.toml "
            f"or in routes/ under {root} (e.g. cp it to {root}/routes.toml and set ROUTES_FILE=routes.toml)"
        )
    return relative


# --- background removal's model ------------------------------------------------------------------------------------


def model_object_name(file: str, sha256: str) -> str:
    """Where a model file is uploaded: models/NAME-SHA12.onnx, outside every route's match and output; the name holds
    the checksum, so an object already there is this file."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", os.path.basename(file).removesuffix(".onnx"))
    return f"models/{name or 'model'}-{sha256[:12]}.onnx"


def file_sha256(file: str) -> str:
    """A file's SHA-256 in lower-case hex."""
    digest = hashlib.sha256()
    try:
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        raise PlanError(f"cannot read '{file}'") from None
    return digest.hexdigest()


def builtin_model(environ: Mapping[str, str]) -> ModelUpload | None:
    """--cutout-model (CUTOUT_MODEL) checked against the built-in route's other CUTOUT_ variables: a FILE to upload,
    or None (no model, or a gs:// one used where it is)."""
    model = environ.get("CUTOUT_MODEL", "")
    if not model:
        return None
    if environ.get("ROUTES_FILE"):
        raise FlagError(
            "--cutout-model sets the built-in route's model; with ROUTES_FILE, each route names its model in "
            "[route.cutout] (docs/cutout.md)"
        )
    if not environ.get("CUTOUT_FAMILY"):
        raise FlagError("--cutout-model needs --cutout-family (isnet or u2net)")
    if environ.get("CUTOUT_MODEL_URI"):
        raise FlagError("--cutout-model sets CUTOUT_MODEL_URI: set one of them, not both")
    given_sha256 = environ.get("CUTOUT_MODEL_SHA256", "")
    if model.startswith("gs://"):
        if not given_sha256:
            raise FlagError(
                f"--cutout-model {model} needs --cutout-sha256 (the object's SHA-256, e.g. gcloud storage cat {model} "
                "| sha256sum): it is not downloaded here"
            )
        return None
    if not os.path.isfile(model):
        raise FlagError(f"--cutout-model '{model}': no such file")
    sha256 = file_sha256(model)
    if given_sha256 and given_sha256.lower() != sha256:
        raise FlagError(f"--cutout-sha256 {given_sha256} is not the SHA-256 of {model} ({sha256})")
    return ModelUpload(model, sha256, model_object_name(model, sha256))


def model_settings(environ: Mapping[str, str], upload: ModelUpload | None) -> dict[str, str]:
    """The built-in route's CUTOUT_ settings that --cutout-model sets: the uploaded file's place and checksum, or the
    gs:// model as given."""
    if upload is not None:
        return {"CUTOUT_MODEL_URI": upload.uri, "CUTOUT_MODEL_SHA256": upload.sha256}
    model = environ.get("CUTOUT_MODEL", "")
    return {"CUTOUT_MODEL_URI": model} if model else {}


def model_reads(routes: Iterable[RouteSizing], bucket: str) -> tuple[ModelRead, ...]:
    """Each model kept in a bucket other than the function's (which the runtime account already reads and writes)."""
    reads = []
    for uri in sorted({route.model_uri for route in routes if route.model_uri}):
        if not uri.startswith("gs://"):
            continue
        other = uri.removeprefix("gs://").split("/", 1)[0]
        if other not in ("{bucket}", bucket):
            reads.append(ModelRead(other, uri))
    return tuple(reads)


# --- Eventarc channels: the runtime account's grant -------------------------------------------------------------------


def policy_with_member(policy: Mapping[str, Any], role: str, member: str) -> dict[str, Any] | None:
    """An IAM policy (as getIamPolicy returns it) with `member` in `role`'s unconditional binding, added to it or in a
    binding of its own; None when it is there already (nothing to set). Everything else is kept: the etag (so that
    setIamPolicy refuses the change if the policy changed since it was read), the version, conditional bindings."""
    bindings = policy.get("bindings", [])
    if not isinstance(bindings, list) or not all(
        isinstance(binding, dict)
        and isinstance(binding.get("role"), str)
        and isinstance(binding.get("members", []), list)
        for binding in bindings
    ):
        raise PlanError("the IAM policy's bindings are not a list of {role, members}")
    if not isinstance(policy.get("etag"), str) or not policy["etag"]:
        raise PlanError("the IAM policy has no etag: setting it would overwrite any change made since it was read")
    unconditional = [binding for binding in bindings if binding["role"] == role and "condition" not in binding]
    if any(member in binding.get("members", []) for binding in unconditional):
        return None
    if unconditional:
        first = unconditional[0]
        edited = [
            {**binding, "members": [*binding.get("members", []), member]} if binding is first else binding
            for binding in bindings
        ]
    else:
        edited = [*bindings, {"role": role, "members": [member]}]
    return {**policy, "bindings": edited}


def set_policy_request(answer: str, role: str, member: str) -> str:
    """setIamPolicy's request body (JSON) granting `role` to `member`, from getIamPolicy's answer; empty when the policy
    grants it already."""
    if not _ROLE.fullmatch(role):
        raise FlagError(f"'{role}' is not a role like roles/eventarc.publisher")
    if not _MEMBER.fullmatch(member):
        raise FlagError(f"'{member}' is not a member like serviceAccount:EMAIL")
    try:
        policy = json.loads(answer)
    except ValueError:
        raise PlanError("getIamPolicy's answer is not JSON") from None
    if not isinstance(policy, dict):
        raise PlanError("getIamPolicy's answer is not an IAM policy")
    edited = policy_with_member(policy, role, member)
    # No updateMask: the default, "bindings,etag", is what changes.
    return "" if edited is None else json.dumps({"policy": edited}, separators=(",", ":"))


# --- the plans --------------------------------------------------------------------------------------------------------


def plan_function(environ: Mapping[str, str], source_root: str, warn: Callable[[str], None]) -> FunctionPlan:
    """`deploy.sh deploy`'s plan from its options and the function's settings (both in `environ`), checked in the
    order deploy.sh reports problems; warnings go to `warn` as they are found."""
    project = check_project(environ.get("PROJECT_ID", ""))
    bucket = bucket_name(environ.get("BUCKET", ""), project)
    check_region(environ.get("REGION", ""))
    check_resource_name("FUNCTION_NAME", environ.get("FUNCTION_NAME", ""))
    concurrency = whole_number("CONCURRENCY", environ.get("CONCURRENCY", ""), 1)
    max_instances = whole_number("MAX_INSTANCES", environ.get("MAX_INSTANCES", ""), 1)
    min_instances = whole_number("MIN_INSTANCES", environ.get("MIN_INSTANCES", ""), 0)
    if min_instances > max_instances:
        raise FlagError(f"MIN_INSTANCES ({environ['MIN_INSTANCES']}) exceeds MAX_INSTANCES")
    memory, cpu, timeout = (environ.get(name, "") for name in ("MEMORY", "CPU", "TIMEOUT"))
    if memory and memory_mib(memory) is None:
        raise FlagError(f"MEMORY '{memory}' is not a size like 512Mi, 1Gi or 2G")
    if cpu and millicpu(cpu) is None:
        raise FlagError(f"CPU '{cpu}' is not a CPU count like 1, 2, .5 or 2000m")
    if timeout and duration_s(timeout) is None:
        raise FlagError(f"TIMEOUT '{timeout}' is not a duration like 60s or 5m")
    # The routes decide the per-image budget and the default sizing, so the settings are checked first.
    checked = check_settings(environ, source_root, project)
    defaults = default_sizing(checked.routes)
    sizing = FunctionSizing(memory or defaults.memory, cpu or defaults.cpu, timeout or defaults.timeout)
    if not 1 <= sizing.timeout_s <= MAX_TIMEOUT_S:
        raise FlagError(f"TIMEOUT must be between 1s and {MAX_TIMEOUT_S}s")
    allow_undersized = environ.get("ALLOW_UNDERSIZED", "").lower() in TRUE
    notices = sizing_notices(sizing, concurrency, checked.routes, allow_undersized=allow_undersized)
    notices += timing_notices(sizing, environ.get("CLIENT_TIMEOUT_S", ""), environ.get("RETRY_WINDOW_S", ""))
    for notice in notices:
        if notice.refused:
            raise FlagError(notice.message)
        warn(notice.message)
    runtime = identity(environ.get("RUNTIME_SA", ""), project)
    trigger = identity(environ.get("TRIGGER_SA", ""), project)
    if runtime.email == trigger.email:
        raise FlagError("RUNTIME_SA and TRIGGER_SA must be different accounts")
    return FunctionPlan(
        bucket=bucket,
        runtime=runtime,
        trigger=trigger,
        sizing=sizing,
        build_service_account=build_service_account(environ.get("BUILD_SERVICE_ACCOUNT", ""), project),
        upload=checked.upload,
        model_reads=model_reads(checked.routes, bucket),
        channels=checked.channels,
        # A channel or event source spelled without a project takes GOOGLE_CLOUD_PROJECT, which the Python runtime does
        # not set: the function gets the one its settings were checked with here.
        env_file=env_file(checked.passed, {PROJECT_VARIABLE: project} if checked.channels else None),
    )


def plan_job(environ: Mapping[str, str], source_root: str, backfill_args: Sequence[str]) -> JobPlan:
    """`deploy.sh backfill-job`'s plan from its options and the function's settings (both in `environ`)."""
    project = check_project(environ.get("PROJECT_ID", ""))
    bucket = bucket_name(environ.get("BUCKET", ""), project)
    check_region(environ.get("REGION", ""))
    check_resource_name("JOB_NAME", environ.get("JOB_NAME", ""))
    tasks = whole_number("TASKS", environ.get("TASKS", ""), 1)
    if tasks > MAX_TASKS:
        raise FlagError(f"TASKS must be at most {MAX_TASKS}, got {environ['TASKS']}")
    whole_number("PARALLELISM", environ.get("PARALLELISM", ""), 0)
    whole_number("MAX_RETRIES", environ.get("MAX_RETRIES", ""), 0)
    job_memory, job_cpu, task_timeout = (environ.get(name, "") for name in ("JOB_MEMORY", "JOB_CPU", "TASK_TIMEOUT"))
    if memory_mib(job_memory) is None:
        raise FlagError(f"JOB_MEMORY '{job_memory}' is not a size like 2Gi")
    if millicpu(job_cpu) is None:
        raise FlagError(f"JOB_CPU '{job_cpu}' is not a CPU count like 2")
    if duration_s(task_timeout) is None:
        raise FlagError(f"TASK_TIMEOUT '{task_timeout}' is not a duration like 3600s")
    # The same model settings as the function's (the deploy uploads the file; the job only reads it).
    checked = check_settings(environ, source_root, project)
    runtime_email = service_account_email(environ.get("RUNTIME_SA", ""), project)
    # The job needs the bucket (the function gets it from each event); it shards with CLOUD_RUN_TASK_INDEX and
    # CLOUD_RUN_TASK_COUNT, which Cloud Run sets for every task.
    lines = env_file(checked.passed, {"BUCKET": bucket, PROJECT_VARIABLE: project})
    return JobPlan(bucket, runtime_email, backfill_command(backfill_args), lines)


def plan_rules(environ: Mapping[str, str], source_root: str) -> RulesPlan:
    """`deploy.sh rules`'s plan: whether the configured routes need generated rules, and the routes file they read."""
    check_project(environ.get("PROJECT_ID", ""))
    shaped_by = rules_shaped_by(read_settings().variables, environ)
    routes_file = deployed_routes_file(environ.get("ROUTES_FILE", ""), source_root) if shaped_by else ""
    return RulesPlan(shaped_by, routes_file)


def check_settings(environ: Mapping[str, str], source_root: str, project: str) -> CheckedSettings:
    """The settings passed to the function, as --cutout-model and the deployed ROUTES_FILE make them, checked by the
    function's own code (in the environment it will have: these on top of what is already set here, and the project
    deployed to as GOOGLE_CLOUD_PROJECT, which the env-vars file gives it when an extension route publishes events)."""
    upload = builtin_model(environ)
    routes_file = deployed_routes_file(environ.get("ROUTES_FILE", ""), source_root)
    deployed = {**model_settings(environ, upload), **({"ROUTES_FILE": routes_file} if routes_file else {})}
    settings_env = {**environ, **deployed}
    passed = passed_settings(read_settings().variables, settings_env)
    read = read_settings({**settings_env, **passed, PROJECT_VARIABLE: project})
    return CheckedSettings(MappingProxyType(passed), read.routes, upload, read.channels)


def backfill_command(backfill_args: Sequence[str]) -> str:
    """The job's --args: `python -m image_pipeline backfill` and the extra arguments, comma-separated."""
    for argument in backfill_args:
        if "," in argument:
            raise FlagError(f"backfill arguments cannot contain commas: '{argument}'")
    return ",".join(("-m", "image_pipeline", "backfill", *backfill_args))


def help_setting_names(variables: Iterable[SettingVariable], width: int = 110) -> tuple[str, ...]:
    """The setting names for deploy.sh --help, with the defaults it writes, wrapped in indented lines."""
    lines, line = [], ""
    for variable in variables:
        default = WRITTEN_DEFAULTS.get(variable.name)
        name = f"{variable.name} ({default})" if default else variable.name
        if len(line) + len(name) >= width:
            lines.append(line)
            line = ""
        line = f"{line} {name}" if line else name
    return (*(f"  {line}" for line in lines), f"  {line}")
