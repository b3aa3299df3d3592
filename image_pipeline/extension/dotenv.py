"""An extension instance's configuration as firebase-tools reads it: `.env` files, firebase.json's `extensions`
section and `${param:PROJECT_ID}`-style references (spec 11). Our own reader; standard library only.

Where firebase-tools is lenient in ways that lose settings silently, this reader refuses instead, naming the file and
the line: a line it cannot read (firebase-tools skips a whole params file it cannot parse), and text after a closing
quote (firebase-tools then keeps the quotes as part of the value).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from image_pipeline.errors import ConfigurationError, UsageError
from image_pipeline.extension.params import EXTENSION

# `KEY=` with an optional `export`; keys may hold `.` and `/` (firebaseextensions.v1beta.function/location).
_ASSIGNMENT = re.compile(r"[ \t]*(?:export[ \t]+)?([A-Za-z0-9_./]+)[ \t]*=[ \t]*")
# Inside double quotes, these escapes are replaced; any other backslash stays as it is.
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", "'": "'", '"': '"'}
_ESCAPE = re.compile(r"\\([nrtv\\'\"])")
# firebase.json's reference to a published extension: publisher/extension@version (version optional).
_REF = re.compile(r"([^/@\n]+)/([^/@\n]+)(?:@([^\n]+))?")
_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")
# The project values firebase-tools substitutes as ${KEY} or ${param:KEY}; any other reference is left as it is.
_PROJECT_REFERENCE = re.compile(
    r"\$\{(?:param:)?(PROJECT_ID|PROJECT_NUMBER|DATABASE_URL|STORAGE_BUCKET|FIREBASE_CONFIG|DATABASE_INSTANCE)\}"
)


def parse_env(text: str, source: str) -> dict[str, str]:
    """The `KEY=value` pairs of a .env file, later keys winning; `source` names the file in errors.

    Unquoted values end at `#` and are trimmed; 'single quotes' are literal; "double quotes" take \\n \\r \\t \\v \\\\
    \\' \\" escapes; both kinds of quotes may span lines. Blank lines and `#` comments are skipped.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    values: dict[str, str] = {}
    position = 0
    while position < len(text):
        line_end = _line_end(text, position)
        line = text[position:line_end].strip()
        if not line or line.startswith("#"):
            position = line_end + 1
            continue
        number = text.count("\n", 0, position) + 1
        assignment = _ASSIGNMENT.match(text, position, line_end)
        if assignment is None:
            raise ConfigurationError(f"{source}: line {number}: not KEY=value: {line[:60]!r}")
        value, position = _value(text, assignment.end(), f"{source}: line {number}")
        values[assignment.group(1)] = value
    return values


def _line_end(text: str, position: int) -> int:
    end = text.find("\n", position)
    return len(text) if end == -1 else end


def _value(text: str, start: int, where: str) -> tuple[str, int]:
    """The value that starts at `start`, and where the next line starts."""
    quote = text[start : start + 1]
    if quote not in ("'", '"'):
        line_end = _line_end(text, start)
        return text[start:line_end].partition("#")[0].strip(), line_end + 1
    close = _closing_quote(text, start)
    if close == -1:
        raise ConfigurationError(f"{where}: the {quote} quote is never closed")
    line_end = _line_end(text, close)
    rest = text[close + 1 : line_end].strip()
    if rest and not rest.startswith("#"):
        raise ConfigurationError(f"{where}: text after the closing {quote} quote: {rest[:60]!r}")
    inside = text[start + 1 : close]
    if quote == '"':
        inside = _ESCAPE.sub(lambda escape: _ESCAPES[escape.group(1)], inside)
    return inside, line_end + 1


def _closing_quote(text: str, start: int) -> int:
    """The index of the quote closing the one at `start`, or -1. A backslash never lets its next character close the
    value: in double quotes it starts an escape; in single quotes \\' is kept as it is, but does not close either."""
    quote = text[start]
    index = start + 1
    while index < len(text):
        character = text[index]
        if character == "\\":
            index += 2
            continue
        if character == quote:
            return index
        index += 1
    return -1


def read_env_file(path: Path) -> dict[str, str]:
    """parse_env on a file; UsageError if it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"{path}: cannot read it: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"{path}: not UTF-8 text") from None
    return parse_env(text, str(path))


@dataclass(frozen=True)
class ManifestEntry:
    """One instance in firebase.json's `extensions`: its id and what it installs, a ref or a local folder."""

    instance_id: str
    source: str  # "firebase/storage-resize-images@0.3.3", or a local path such as "../storage-resize-images"
    project_dir: Path  # firebase.json's folder: local paths and extensions/<id>.env are relative to it

    @property
    def is_local(self) -> bool:
        """A local folder rather than a published ref (firebase-tools' rule)."""
        return self.source in (".", "..") or self.source.startswith(("./", "../", "/", "~/"))

    def resize_images_version(self) -> tuple[bool, str | None]:
        """Whether this installs storage-resize-images, and its version as written (None when not given)."""
        if self.is_local:
            return _local_extension(self.folder())
        ref = _REF.fullmatch(self.source)
        if ref is None:
            return False, None
        return ref.group(1) == "firebase" and ref.group(2) == EXTENSION, ref.group(3)

    def folder(self) -> Path:
        """A local source's folder (relative: to firebase.json's)."""
        return self.project_dir / Path(self.source).expanduser()


def _local_extension(folder: Path) -> tuple[bool, str | None]:
    """Whether a local extension folder holds storage-resize-images, and its version, from extension.yaml's top-level
    `name:` and `version:` lines (read with a pattern: the standard library has no YAML reader)."""
    try:
        spec = (folder / "extension.yaml").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False, None
    name = re.search(r"^name:[ \t]*([^\s#]+)", spec, re.MULTILINE)
    version = re.search(r"^version:[ \t]*([^\s#]+)", spec, re.MULTILINE)
    return name is not None and name.group(1) == EXTENSION, version.group(1) if version else None


def manifest_entries(firebase_json: Path) -> tuple[ManifestEntry, ...]:
    """Every instance in firebase.json's `extensions` section, in file order."""
    try:
        document = json.loads(firebase_json.read_text(encoding="utf-8"))
    except OSError as error:
        raise UsageError(f"{firebase_json}: cannot read it: {error.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigurationError(f"{firebase_json}: not valid JSON: {error}") from None
    extensions = document.get("extensions", {}) if isinstance(document, dict) else None
    if not isinstance(extensions, dict) or not all(isinstance(source, str) for source in extensions.values()):
        raise ConfigurationError(f'{firebase_json}: "extensions" must map instance ids to extension refs or paths')
    folder = firebase_json.parent
    return tuple(ManifestEntry(instance_id, source, folder) for instance_id, source in extensions.items())


def version_tuple(version: str | None) -> tuple[int, int, int] | None:
    """An exact version as numbers; None for a range, a tag such as latest, or no version."""
    exact = _VERSION.fullmatch(version or "")
    return (int(exact.group(1)), int(exact.group(2)), int(exact.group(3))) if exact else None


@dataclass(frozen=True)
class InstanceParams:
    """An instance's parameters, merged from its params files, and the file that set each."""

    values: Mapping[str, str]
    origins: Mapping[str, Path]
    files: tuple[Path, ...]  # the files read, in order


def instance_params(project_dir: Path, instance_id: str, project_id: str | None) -> InstanceParams:
    """`extensions/<id>.env`, then `extensions/<id>.env.<projectId>` overriding it key by key.

    firebase-tools also reads `.env.<alias>` for the aliases in .firebaserc, `.env.<projectNumber>`, and in the
    emulator `.env.local`. They are not read here: aliases and the project number need .firebaserc and an API call to
    resolve, and `.env.local` holds emulator-only values; name the file to import instead.
    """
    folder = project_dir / "extensions"
    candidates = [folder / f"{instance_id}.env"]
    if project_id:
        candidates.append(folder / f"{instance_id}.env.{project_id}")
    files = tuple(path for path in candidates if path.is_file())
    if not files:
        raise ConfigurationError(f"no params file for instance {instance_id!r}: {candidates[0]} does not exist")
    values: dict[str, str] = {}
    origins: dict[str, Path] = {}
    for path in files:
        for key, value in read_env_file(path).items():
            values[key] = value
            origins[key] = path
    return InstanceParams(values, origins, files)


def project_references(values: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """The values that refer to project values (${param:PROJECT_ID}, ${STORAGE_BUCKET}, ...): key -> their names."""
    found = {
        key: tuple(match.group(1) for match in _PROJECT_REFERENCE.finditer(value)) for key, value in values.items()
    }
    return {key: names for key, names in found.items() if names}


def project_values(project_id: str) -> dict[str, str]:
    """What firebase-tools substitutes for a project when its Firebase config cannot be asked: its fallbacks.

    PROJECT_NUMBER is not here: it can only be looked up. STORAGE_BUCKET's fallback is the legacy default bucket name;
    newer projects' default bucket is `<project>.firebasestorage.app`.
    """
    database_url = f"https://{project_id}.firebaseio.com"
    storage_bucket = f"{project_id}.appspot.com"
    config = {"projectId": project_id, "databaseURL": database_url, "storageBucket": storage_bucket}
    return {
        "PROJECT_ID": project_id,
        "DATABASE_URL": database_url,
        "STORAGE_BUCKET": storage_bucket,
        "FIREBASE_CONFIG": json.dumps(config, separators=(",", ":")),
        "DATABASE_INSTANCE": project_id,
    }


def substitute(value: str, known: Mapping[str, str]) -> str:
    """`value` with every ${KEY} and ${param:KEY} of a known project value replaced; others are left as they are."""
    return _PROJECT_REFERENCE.sub(lambda reference: known.get(reference.group(1), reference.group(0)), value)
