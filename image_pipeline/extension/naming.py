"""The names the Resize Images extension gives its outputs and failed copies, and their Content-Type.

An output is named `{name}_{size}{ext}` beside the original, or under RESIZED_IMAGES_PATH relative to the
original's folder: `images/a.jpg` at 200x200 as webp under `thumbs` is `images/thumbs/a_200x200.webp`. The result is
normalised but not confined, as the extension's is: `..` in RESIZED_IMAGES_PATH or in the object's name can lead
above the original's folder, or above the bucket's root (`../x/img_200x200.gif`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

KEEP_ORIGINAL_TYPE = "false"
# Compared lower-cased: `.JPG` is as recognised as `.jpg`.
RECOGNISED_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".gif", ".avif", ".jfif"})
CONTENT_TYPES = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    # The extension says "image/tif", which is no media type; the legacy value `tif` gets the real one here.
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "webp": "image/webp",
    "gif": "image/gif",
    "avif": "image/avif",
    "jfif": "image/jpeg",
}
_UTF8_FILENAME = re.compile(r"filename\*=utf-8''[^;\s]+")


@dataclass(frozen=True)
class Output:
    """One object the extension makes from an upload."""

    image_type: str  # the IMAGE_TYPE entry; "false" keeps the original's format
    size: str  # the IMG_SIZES entry as written: it names the output whatever the pixel size turns out to be
    path: str


def planned_outputs(
    object_name: str, image_types: Sequence[str], sizes: Sequence[str], resized_images_path: str | None
) -> tuple[Output, ...]:
    """Every output: each IMAGE_TYPE entry at each IMG_SIZES entry, formats outer and sizes inner, repeats once.

    Two outputs may still share a path (`false,jpeg` on a `.jpeg` upload): which one is kept is the caller's choice.
    """
    return tuple(
        Output(image_type, size, output_path(object_name, size, image_type, resized_images_path))
        for image_type in dict.fromkeys(image_types)
        for size in dict.fromkeys(sizes)
    )


def output_path(object_name: str, size: str, image_type: str, resized_images_path: str | None) -> str:
    """The output's object name; an empty RESIZED_IMAGES_PATH is unset (the original's folder)."""
    folder, stem, extension = _split_name(object_name)
    if extension.lower() in RECOGNISED_EXTENSIONS:
        new_extension = extension if image_type == KEEP_ORIGINAL_TYPE else "." + image_type
        file_name = f"{stem}_{size}{new_extension}"
    else:
        # An extension it does not know (`.heic`, none, `photo.`) stays in the stem and no new one is added.
        file_name = f"{stem}{extension}_{size}"
    joined = "/".join(part for part in (folder, resized_images_path, file_name) if part)
    # Separators are made `/` after normalising, as the extension does, so a `\` never resolves a `..`.
    return normalise(joined).replace("\\", "/")


def output_content_type(original_content_type: str | None, image_type: str) -> str | None:
    """The output's Content-Type: the original's when its format is kept, else the converted format's.

    None for a format the extension does not know: the uploader then picks the type (the extension's storage client
    guesses it from the object name).
    """
    if image_type == KEEP_ORIGINAL_TYPE:
        return original_content_type
    return CONTENT_TYPES.get(image_type)


def failed_copy_path(object_name: str, failed_images_path: str | None) -> str | None:
    """Where a failed upload's copy goes (FAILED_IMAGES_PATH under its folder, same file name), or None for none.

    None when FAILED_IMAGES_PATH is unset or empty, and when the copy would leave the folder the object name is
    written in: an upload named `u/images/../../../config.json` must not overwrite `failed/config.json`.
    """
    if not failed_images_path or "/../" in failed_images_path:
        return None
    written_folder = object_name[: object_name.rfind("/") + 1]
    folder, stem, extension = _split_name(object_name)
    destination = normalise("/".join(part for part in (folder, failed_images_path, stem + extension) if part))
    return destination if destination.startswith(written_folder) else None


def rewrite_content_disposition(value: str, output_file_name: str) -> str:
    """The original's Content-Disposition with its first `filename*=utf-8''…` naming the output instead.

    Only that lower-case spelling is rewritten, and the name is not percent-encoded, as the extension does;
    `filename="…"` and `filename*=UTF-8''…` stay as they are.
    """
    return _UTF8_FILENAME.sub(lambda _: f"filename*=utf-8''{output_file_name}", value, count=1)


def _split_name(object_name: str) -> tuple[str, str, str]:
    """Folder, stem and extension as Node's `path.parse` splits them: trailing slashes ignored, the extension from
    the base name's last dot (just `.` for `photo.`), none for a name whose only dot starts it (`.png`)."""
    trimmed = object_name.rstrip("/")
    folder, _, base = trimmed.rpartition("/")
    if not folder and trimmed.startswith("/"):
        folder = "/"
    dot = base.rfind(".")
    if dot <= 0:
        return folder, base, ""
    return folder, base[:dot], base[dot:]


def normalise(path: str) -> str:
    """`.` and empty segments dropped, `..` resolved; leading `..` kept on a relative path, dropped at the root."""
    absolute = path.startswith("/")
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments and segments[-1] != "..":
                segments.pop()
            elif not absolute:
                segments.append(segment)
        elif segment not in ("", "."):
            segments.append(segment)
    return ("/" if absolute else "") + "/".join(segments)
