"""`routes import-extension`: a Resize Images instance's configuration (its .env, or firebase.json's instances) as a
routes file, TOML text the command prints. Standard library only.

Each instance becomes one `[[route]]` with `extension = "storage-resize-images"`, named after the instance id, that
spells every parameter of extension.yaml as the configuration does (${param:PROJECT_ID} resolved), the ones it leaves
unset with their declared default, and the event settings it sets. Deployment parameters are not route keys: they
become a comment giving deploy.sh's flags. A parameter with no faithful counterpart here stops the import.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from image_pipeline.errors import ConfigurationError, UsageError
from image_pipeline.extension.dotenv import (
    InstanceParams,
    instance_params,
    manifest_entries,
    project_references,
    project_values,
    read_env_file,
    substitute,
    version_tuple,
)
from image_pipeline.extension.params import (
    EVENT_PREFIX,
    EXTENSION,
    LEGACY_EVENT_NAMES,
    PARAMS,
    PARAMS_BY_NAME,
    ExtensionParams,
    ParamError,
    ParamKind,
)
from image_pipeline.routes_file import ROUTE_NAME

# Where 0.3.1 changed the events (spec 7.3): the route publishes those of 0.3.1 and later.
_EVENTS_SETTLED = (0, 3, 1)
_OUTPUTS_WRAPPED = (0, 2, 9)
_COMPLETE_REPLACED = (0, 2, 1)
_DEPLOYMENT = frozenset(param.name for param in PARAMS if param.kind is ParamKind.DEPLOYMENT)
DEPLOY_COMMAND = "ROUTES_FILE=routes.toml ./deploy.sh"
_BACKFILL_JOB = "./deploy.sh backfill-job --tasks N shares it between N tasks"


@dataclass(frozen=True)
class Instance:
    """One extension instance to import: the route's name, its parameters and where they came from."""

    name: str
    params: InstanceParams
    source: str | None = None  # firebase.json's ref or local path; None for a .env given alone
    version: str | None = None  # the version firebase.json (or a local extension.yaml) gives

    def origin(self, key: str) -> str:
        """The file that set `key` (errors name it), or every file read."""
        origin = self.params.origins.get(key)
        return str(origin) if origin else ", ".join(map(str, self.params.files))


def import_env_file(path: Path, *, instance_id: str | None, project: str | None, default_project: str | None) -> str:
    """The routes file for one .env; the route is named `instance_id`, by default the file name before `.env`.

    `project` (--project) resolves ${param:PROJECT_ID}-style references, else `default_project`
    (GOOGLE_CLOUD_PROJECT); an error names a reference neither can resolve.
    """
    values = read_env_file(path)
    name = instance_id if instance_id is not None else path.name.partition(".env")[0]
    where = "given with --instance-id" if instance_id is not None else f"from the file name {path.name}"
    _check_route_name(name, where, "give --instance-id")
    resolving = project or default_project
    params = _resolved(InstanceParams(values, dict.fromkeys(values, path), (path,)), resolving)
    return routes_toml([Instance(name, params)], resolving)


def import_firebase_json(
    path: Path, *, instance_id: str | None, project: str | None, default_project: str | None
) -> str:
    """The routes file for every storage-resize-images instance in firebase.json's `extensions`.

    Each reads `extensions/<id>.env`, then, with `project` (--project), `extensions/<id>.env.<project>` over it.
    `instance_id` renames the route, when firebase.json lists exactly one such instance.
    """
    resolving = project or default_project
    entries = manifest_entries(path)
    found = [(entry, *entry.resize_images_version()) for entry in entries]
    chosen = [(entry, version) for entry, is_resize_images, version in found if is_resize_images]
    skipped = [
        f"instance {entry.instance_id!r} ({entry.source}) is not {EXTENSION}" for entry, is_it, _ in found if not is_it
    ]
    if not chosen:
        listed = ", ".join(entry.instance_id for entry in entries) or "none"
        raise UsageError(f'{path}: no {EXTENSION} instance in "extensions" (instances: {listed})')
    if instance_id is not None and len(chosen) != 1:
        ids = ", ".join(entry.instance_id for entry, _ in chosen)
        raise UsageError(f"--instance-id names one route, and {path} lists {len(chosen)} {EXTENSION} instances ({ids})")
    instances = []
    for entry, version in chosen:
        name = instance_id if instance_id is not None else entry.instance_id
        env_file = entry.project_dir / "extensions" / f"{entry.instance_id}.env"
        hint = (
            "give --instance-id"
            if len(chosen) == 1
            else f"import it alone: routes import-extension {env_file} --instance-id"
        )
        _check_route_name(name, "given with --instance-id" if instance_id is not None else f"in {path}", hint)
        params = _resolved(instance_params(entry.project_dir, entry.instance_id, project), resolving)
        instances.append(Instance(name, params, entry.source, version))
    return routes_toml(instances, resolving, skipped)


def _check_route_name(name: str, where: str, hint: str) -> None:
    if ROUTE_NAME.fullmatch(name) is None:
        suggestion = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:32].strip("-") or EXTENSION
        raise UsageError(
            f"the instance id {name!r} ({where}) cannot name a route (1-32 of a-z 0-9 -): {hint} {suggestion}"
        )


def _resolved(params: InstanceParams, project: str | None) -> InstanceParams:
    """The parameters with ${param:PROJECT_ID} and the other project values resolved for `project`."""
    references = project_references(params.values)
    if not references:
        return params
    if project is None:
        key, names = next(iter(references.items()))
        raise UsageError(
            f"{params.origins[key]}: {key} refers to the project's {names[0]} (${{param:{names[0]}}}): "
            "give --project ID or set GOOGLE_CLOUD_PROJECT"
        )
    for key, names in references.items():
        if "PROJECT_NUMBER" in names:
            raise UsageError(
                f"{params.origins[key]}: {key} refers to the project number (${{param:PROJECT_NUMBER}}), which only "
                "an API call could look up: write the number in its place"
            )
    known = project_values(project)
    values = {key: substitute(value, known) for key, value in params.values.items()}
    return InstanceParams(values, params.origins, params.files)


def routes_toml(instances: Sequence[Instance], project: str | None, skipped: Sequence[str] = ()) -> str:
    """The routes file: a header, then one commented `[[route]]` per instance."""
    lines = [
        "# Routes for Firebase Resize Images instances, by `python -m image_pipeline routes import-extension`.",
        f'# A route with extension = "{EXTENSION}" takes every parameter of extension.yaml by its name, spelled',
        "# as in the .env; the ones the configuration left unset are written with extension.yaml's declared default.",
    ]
    lines += [f"# Skipped: {_one_line(reason)}." for reason in skipped]
    if len({_bucket(instance, project)[0] for instance in instances}) > 1:
        lines.append("# These instances watch different buckets: deploy one function per bucket, each with its routes.")
    for instance in instances:
        lines += ["", *_instance_lines(instance, project)]
    return "\n".join(lines) + "\n"


def _instance_lines(instance: Instance, project: str | None) -> list[str]:
    values = instance.params.values
    route_values = {key: value for key, value in values.items() if key not in _DEPLOYMENT}
    deployment = {key: value for key, value in values.items() if key in _DEPLOYMENT and value != ""}
    try:
        for key, value in deployment.items():
            PARAMS_BY_NAME[key].check(value)
        ExtensionParams.from_mapping(route_values)
    except ParamError as error:
        raise ConfigurationError(f"{instance.origin(error.param)}: {error}") from None
    files = _one_line(", ".join(map(str, instance.params.files)))
    installed = f" ({_one_line(instance.source)})" if instance.source else ""
    lines = [f"# Instance {instance.name!r}{installed}, from {files}"]
    if instance.source is not None:
        lines += _events_history(instance.version)
    lines += _deploy_lines(instance, deployment, project)
    lines += ["[[route]]", f"name = {_toml(instance.name)}", f"extension = {_toml(EXTENSION)}"]
    lines += _param_lines(route_values)
    return lines


def _param_lines(values: Mapping[str, str]) -> Iterator[str]:
    """Every behaviour and unsupported parameter (the default where unset or empty), and the event settings given."""
    for param in PARAMS:
        given = values.get(param.name)
        if param.kind is ParamKind.EVENTS:
            if given is not None:
                yield f"{param.name} = {_toml(given)}{_event_note(param.name, given, values)}"
        elif param.kind is not ParamKind.DEPLOYMENT:
            if not given:
                yield f"{param.name} = {_toml(param.default)}  # extension.yaml's default"
            elif param.name == "PLACEHOLDER_IMAGE_PATH":
                yield f"{param.name} = {_toml(given)}  # no effect: the content filter is off"
            else:
                yield f"{param.name} = {_toml(given)}"


def _event_note(name: str, value: str, values: Mapping[str, str]) -> str:
    """A comment for an event-type list that cannot do what it says."""
    if name not in ("ALLOWED_EVENT_TYPES", "EXT_SELECTED_EVENTS"):
        return ""
    if not values.get("EVENTARC_CHANNEL"):
        return "  # no event is published without EVENTARC_CHANNEL"
    legacy = [kind for kind in value.split(",") if kind.removeprefix(EVENT_PREFIX) in LEGACY_EVENT_NAMES]
    return f"  # {legacy[0]} is not published since 0.2.1: onSuccess replaced it" if legacy else ""


def _events_history(version: str | None) -> list[str]:
    """What changed in the events since `version`, if it is older than 0.3.1 or not exact (spec 7.3)."""
    exact = version_tuple(version)
    if exact is not None and exact >= _EVENTS_SETTLED:
        return []
    if exact is not None:
        since = f"version {version} predates 0.3.1"
    else:
        since = f"version {version!r} is not an exact one" if version else "no version is given"
    lines = [
        f"# Events: {since}; this route publishes the events of 0.3.1 and later, as the extension does now:",
        "#   - onStart on every finalize, with the object's metadata (declared since 0.2.1, first sent by 0.3.1).",
        "#   - onStartResize, new in 0.3.1, once an upload is to be resized, before its download.",
    ]
    if exact is None or exact < _OUTPUTS_WRAPPED:
        lines.append("#   - onSuccess's outputs are {status, value} results, beside contentFilterPassed (0.2.9).")
    if exact is None or exact < _COMPLETE_REPLACED:
        lines.append("#   - `complete` (0.1.28-0.2.0) is gone: onSuccess carries its {input, outputs}.")
    return lines


def _bucket(instance: Instance, project: str | None) -> tuple[str, str]:
    """The bucket deploy.sh needs, and how it was found."""
    bucket = instance.params.values.get("IMG_BUCKET", "")
    if bucket:
        return bucket, f"IMG_BUCKET={bucket}"
    default = PARAMS_BY_NAME["IMG_BUCKET"].default
    if project is None:
        return "BUCKET", f"IMG_BUCKET unset: extension.yaml's default {default}, your project's default bucket"
    resolved = substitute(default, project_values(project))
    return resolved, (
        f"IMG_BUCKET unset: extension.yaml's default {default}, here firebase-tools' fallback name "
        f"(newer projects' default bucket is {project}.firebasestorage.app)"
    )


def _deploy_lines(instance: Instance, deployment: Mapping[str, str], project: str | None) -> list[str]:
    """deploy.sh's flags for the deployment parameters (./deploy.sh --help), and what the others ask for."""
    bucket, bucket_reason = _bucket(instance, project)
    flags = {"--project": project} if project else {}
    flags["--bucket"] = bucket
    reasons = [f"{bucket_reason}: --bucket {bucket}"]
    for param in PARAMS:
        value = deployment.get(param.name)
        if value is None or param.name == "IMG_BUCKET":
            continue
        shown = f"{param.name}={_one_line(value)}"
        if param.deploy_flag:
            flags[param.deploy_flag] = _flag_value(param.deploy_flag, value)
            reasons.append(f"{shown}: {param.deploy_flag} {flags[param.deploy_flag]}")
        elif param.name == "DO_BACKFILL":
            reasons.append(_backfill(shown, value, bucket, instance.name))
        elif param.name == "BACKFILL_BATCH_SIZE":
            reasons.append(f"{shown}: not needed; the backfill pages through the bucket itself ({_BACKFILL_JOB})")
        else:
            reasons.append(f"{shown}: deploy.sh has no flag for it; set it with gcloud after deploying if you need it")
    command = " ".join([DEPLOY_COMMAND, *(f"{flag} {value}" for flag, value in flags.items())])
    return [
        "# Deployment parameters are deploy.sh flags, not route keys (later lines win for the same flag); with this",
        "# file saved as routes.toml beside deploy.sh:",
        f"#   {command}",
        *(f"#   {reason}" for reason in reasons),
    ]


def _backfill(shown: str, value: str, bucket: str, route: str) -> str:
    if value == "true":
        return f"{shown}: after deploying, BUCKET={bucket} python -m image_pipeline backfill --route {route}"
    return f"{shown}: nothing to do"


def _flag_value(flag: str, value: str) -> str:
    """deploy.sh's spelling: memory in Mi or Gi (the extension's is in MB), a timeout in seconds."""
    if flag == "--memory":
        megabytes = int(value)
        return f"{megabytes // 1024}Gi" if megabytes % 1024 == 0 else f"{megabytes}Mi"
    if flag == "--timeout":
        return f"{value}s"
    return value


def _toml(value: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, and TOML also wants DEL escaped."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def _one_line(value: str) -> str:
    """Text as a comment shows it: as it is, or quoted and escaped if it is not all printable (a TOML comment ends at
    a line break, and control characters are not allowed in one)."""
    return value if value.isprintable() else _toml(value)
