"""Which finalize events the Resize Images extension processes: content type, encoding, path lists, its own markers.

Path lists (INCLUDE_PATH_LIST, EXCLUDE_PATH_LIST) match the object's directory as the extension does: an entry
(trimmed) matches that directory and every directory below it, case-sensitively, and each `*` stands for any run of
ASCII letters, digits, `_ - + .`, whitespace or `/` (so it can span several levels, or none).

One deliberate difference: the extension pastes an entry into a regular expression unescaped, so there `.` matches
any character, `+ ( ) ?` act as operators and an entry such as `/c++` crashes the function on every image upload. Here
every character but `*` matches itself: `/c++` matches the folder `c++`, `/user.s` only `user.s`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from image_pipeline.extension.metadata import FAILED_COPY_MARKER, RESIZED_IMAGE_MARKER
from image_pipeline.extension.naming import normalise

SUPPORTED_CONTENT_TYPES = frozenset(
    {
        "image/jpg",
        "image/jpeg",
        "image/png",
        "image/tiff",
        "image/webp",
        "image/gif",
        "image/avif",
        # Not in the extension, which skips HEIC/HEIF: a deliberate improvement, since our decoder reads them.
        "image/heic",
        "image/heif",
    }
)
# The characters a `*` in a path-list entry stands for, any number of them.
_WILDCARD = r"[a-zA-Z0-9_\-+.\s/]*"

NO_NAME = "object has no name"
NO_CONTENT_TYPE = "object has no Content-Type"
NOT_AN_IMAGE = "Content-Type is not image/*"
GZIP_ENCODED = "object is gzip-encoded"
UNSUPPORTED_CONTENT_TYPE = "Content-Type is not a supported image type"
NOT_INCLUDED = "directory matches no INCLUDE_PATH_LIST entry"
EXCLUDED = "directory matches an EXCLUDE_PATH_LIST entry"
RESIZED_IMAGE = "object is a resized image (resizedImage metadata)"
FAILED_COPY = "object is a failed-image copy (resizeFailed metadata)"


def skip_reason(
    resource: Mapping[str, object], include_paths: Sequence[str] | None, exclude_paths: Sequence[str] | None
) -> str | None:
    """None when the extension would process this object resource (a storage event's data), else why not.

    The checks run in the extension's order, the first failing one giving the reason. None for a list means unset.
    """
    name = resource.get("name")
    if not isinstance(name, str):
        return NO_NAME
    content_type = resource.get("contentType")
    if not isinstance(content_type, str) or not content_type:
        return NO_CONTENT_TYPE
    if not content_type.startswith("image/"):
        return NOT_AN_IMAGE
    if resource.get("contentEncoding") == "gzip":
        return GZIP_ENCODED
    if content_type not in SUPPORTED_CONTENT_TYPES:
        return UNSUPPORTED_CONTENT_TYPE
    directory = object_directory(name)
    if include_paths is not None and not path_list_matches(include_paths, directory):
        return NOT_INCLUDED
    if exclude_paths is not None and path_list_matches(exclude_paths, directory):
        return EXCLUDED
    return _marker_reason(resource.get("metadata"))


def _marker_reason(metadata: object) -> str | None:
    """The extension's marks on its own outputs and failed copies, in the object's custom metadata."""
    if not isinstance(metadata, Mapping):
        return None
    if metadata.get(RESIZED_IMAGE_MARKER) == "true":
        return RESIZED_IMAGE
    # Any non-empty value, even "false": the extension tests the value's truthiness, not its text.
    if metadata.get(FAILED_COPY_MARKER):
        return FAILED_COPY
    return None


def object_directory(name: str) -> str:
    """The object's folder as an absolute, normalised path: `/` for a root object, `/a/c` for `a/b/../c/x.jpg`."""
    parent = name.rstrip("/").rpartition("/")[0]
    # Above the root is the root; `\\` is made `/` after normalising, as the extension does (it meant Windows
    # separators), so it never resolves a `..`.
    return normalise("/" + parent).replace("\\", "/")


def path_list_matches(entries: Sequence[str], directory: str) -> bool:
    """Whether any entry names this directory or one of its ancestors (an empty entry names every one)."""
    return any(_entry_pattern(entry).match(directory) for entry in entries)


def literal_folders(entry: str) -> str:
    """Where every object an entry matches starts: its folders up to the first one holding a `*`, as a listing prefix.

    `/users/*/photos` gives `users/`, `/images` gives `images/`, `/img*` and an empty entry give "" (everything).
    An object whose folder only normalises into the entry (`a/../images/x.jpg`, `./images/x.jpg`) starts elsewhere,
    so a listing under the prefix misses it.
    """
    folders: list[str] = []
    for part in entry.strip().split("/"):
        if "*" in part:
            break
        if part:
            folders.append(part)
    return "".join(f"{folder}/" for folder in folders)


def _entry_pattern(entry: str) -> re.Pattern[str]:
    """The entry, literal but for its wildcards, followed by the end of the directory or a deeper level."""
    literal_parts = (re.escape(part) for part in entry.strip().split("*"))
    return re.compile(_WILDCARD.join(literal_parts) + r"(?:/|\Z)")
