"""`process INPUT... --out DIR`: run the imaging core on local files, one JSON line per input on stdout."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from image_pipeline.imaging import ContentStep
    from image_pipeline.options import ImagingOptions
    from image_pipeline.results import EncodedImage, RenderedVariant
    from image_pipeline.routes import Route

_log = logging.getLogger(__name__)

# Settings about the bucket, the database and events: read and validated, but nothing a local file run uses.
CLOUD_ONLY = frozenset(
    {
        "SOURCE_PREFIX", "OUTPUT_PREFIX", "FIRESTORE_COLLECTION", "URL_MODE", "DELETE_ORIGINAL", "MAX_EVENT_AGE_S",
        "RETRY_WINDOW_S", "CLIENT_TIMEOUT_S", "CLIENT_RETRY_S", "DOWNLOAD_URL_BASE", "PUBLIC_URL_BASE", "WARM_UP",
    }
)  # fmt: skip
EXIT_CODES = """\
exit codes:
  0  every input made its variants
  1  at least one input was rejected (its line says why: unsupported_format, corrupt_image, too_large, empty, ...)
  2  usage error: a bad option or setting, an INPUT that is missing or a directory, an unusable --out"""


def help_epilog() -> str:
    """The settings the command reads, from the settings' own list (so it cannot drift), and the exit codes."""
    from image_pipeline.settings import Settings

    lines = [
        f"  {variable.name}={variable.default}  {variable.help.replace('`', '')}"
        for variable in Settings.variables()
        if variable.name not in CLOUD_ONLY
    ]
    return "\n".join(
        [
            "One JSON line per input on stdout; logs (JSON, LOG_LEVEL) on stderr.",
            "",
            "settings read from the environment (NAME=default; every other setting is validated too):",
            *lines,
            "",
            EXIT_CODES,
        ]
    )


def add_parser(subparsers: Any) -> None:
    """Register the `process` command."""
    parser = subparsers.add_parser(
        "process",
        help="make the variants of local image files",
        description="Make the variants of local image files, as the function would for an upload.",
        epilog=help_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files to process")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder for the variants")
    parser.add_argument("--route", metavar="NAME", help="make what this route makes (default: the first route)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Process every input; exit 0 if all succeeded, 1 if any was rejected."""
    from image_pipeline import logs
    from image_pipeline.commands.routes import chosen_route
    from image_pipeline.errors import ConfigurationError, ModelUnusable
    from image_pipeline.settings import Settings

    unusable = next((problem for problem in map(input_problem, args.inputs) if problem), None)
    if unusable is not None:
        print(f"python -m image_pipeline process: error: {unusable}", file=sys.stderr)
        return 2
    try:
        settings = Settings.from_env()
        route = chosen_route(settings.routes, args.route)
    except ConfigurationError as error:
        print(f"python -m image_pipeline process: error: {error}", file=sys.stderr)
        return 2
    logs.configure(stream=sys.stderr, level=settings.log_level.value)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(
            f"python -m image_pipeline process: error: cannot use --out {args.out}: {error.strerror}", file=sys.stderr
        )
        return 2
    try:
        steps = content_steps(route)
    except (ConfigurationError, ModelUnusable) as error:
        print(f"python -m image_pipeline process: error: {error}", file=sys.stderr)
        return 2
    stems = output_stems([Path(path) for path in args.inputs])
    results = [
        process_file(Path(path), stem, args.out, route.imaging, steps)
        for path, stem in zip(args.inputs, stems, strict=True)
    ]
    return 0 if all(result["ok"] for result in results) else 1


def content_steps(route: Route) -> tuple[ContentStep, ...]:
    """The route's cutout step, its model read from a local file (a gs:// model needs the function or a copy)."""
    from image_pipeline.errors import ConfigurationError, ModelUnusable
    from image_pipeline.models import ModelObject, available_cpus, model_location
    from image_pipeline.settings import SOURCE_ROOT

    if route.cutout is None:
        return ()
    location = model_location(route.cutout.uri)
    if isinstance(location, ModelObject):
        raise ConfigurationError(
            f"route {route.name!r}: its cutout model is {location}; process reads local model files only "
            "(download it and point the route's cutout.uri, or CUTOUT_MODEL_URI, at the file)"
        )
    from image_pipeline.imaging.cutout import cutout_step, load_matting

    path = location if location.is_absolute() else SOURCE_ROOT / location
    try:
        model = path.read_bytes()
    except OSError as error:
        raise ModelUnusable(f"cutout model {route.cutout.uri} ({route.cutout.label}): {error.strerror}") from None
    return (cutout_step(load_matting(model, route.cutout, available_cpus()), route.cutout.trim),)


def input_problem(path: str) -> str | None:
    """Why INPUT cannot be an image file at all (missing, a directory), or None."""
    if not Path(path).exists():
        return f"INPUT {path}: no such file"
    if Path(path).is_dir():
        return f"INPUT {path} is a directory, not an image file"
    return None


def output_stems(paths: list[Path]) -> list[str]:
    """One distinct output name stem per input: the file's stem, numbered when two inputs share it."""
    stems: list[str] = []
    seen: set[str] = set()
    for path in paths:
        stem, number = path.stem, 1
        while stem in seen:
            number += 1
            stem = f"{path.stem}-{number}"
        seen.add(stem)
        stems.append(stem)
    return stems


def process_file(
    path: Path, stem: str, out_dir: Path, imaging: ImagingOptions, steps: tuple[ContentStep, ...] = ()
) -> dict[str, Any]:
    """Process one file, write its variants as `<stem>_<variant>.<ext>`, print and return its JSON line."""
    from image_pipeline import logs
    from image_pipeline.errors import PermanentError
    from image_pipeline.imaging import make_variants

    started = time.perf_counter()
    try:
        data = read_bounded(path, imaging.max_input_bytes)
        logs.log(_log, logging.DEBUG, f"read {path}", input=str(path), bytes=len(data))
        processed = make_variants(data, imaging, content_steps=steps)
    except PermanentError as rejection:
        error = rejection.as_record()
        line = {"input": str(path), "ok": False, "error": error}
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        logs.log(_log, logging.WARNING, f"rejected: {path}", input=str(path), duration_ms=duration_ms, error=error)
    else:
        line = {
            "input": str(path),
            "ok": True,
            "source": vars(processed.source),
            "variants": [write_variant(stem, out_dir, variant) for variant in processed.variants],
            "placeholder": processed.placeholder.as_record(),
        }
        if processed.cutout is not None:
            line["cutout"] = processed.cutout.as_record()
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        logs.log(_log, logging.INFO, f"processed: {path}", input=str(path), duration_ms=duration_ms)
    print(json.dumps(line), flush=True)
    return line


def read_bounded(path: Path, limit: int) -> bytes:
    """Read a file, refusing it as too large or unreadable before reading more than `limit` bytes."""
    from image_pipeline.errors import ImageRejected, RejectionCode

    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as error:
        raise ImageRejected(RejectionCode.CORRUPT_IMAGE, f"cannot read {path}: {error.strerror}") from None
    if len(data) > limit:
        raise ImageRejected(RejectionCode.TOO_LARGE, f"the file is larger than the {limit}-byte limit")
    return data


def write_variant(stem: str, out_dir: Path, variant: RenderedVariant) -> dict[str, Any]:
    """Write one variant as `<stem>_<name>.<ext>`, once per format, and describe it by its primary format.

    With more than one format, `formats` lists every file written, the primary first.
    """
    written = [
        write_encoding(out_dir / f"{stem}_{variant.name}.{image.extension}", image) for image in variant.encodings
    ]
    primary = written[0]
    line = {
        "name": variant.name,
        "path": primary["path"],
        "format": primary["format"],
        "width": variant.width,
        "height": variant.height,
        "bytes": primary["bytes"],
        "contentType": primary["contentType"],
    }
    if len(written) > 1:
        line["formats"] = written
    return line


def write_encoding(target: Path, image: EncodedImage) -> dict[str, Any]:
    """Write one encoded image and describe the file."""
    target.write_bytes(image.data)
    return {
        "format": image.format,
        "path": str(target),
        "bytes": target.stat().st_size,
        "contentType": image.content_type,
    }
