"""`process INPUT... --out DIR`: run the imaging core on local files, one JSON line per input on stdout."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from image_pipeline.extension.route import ExtensionRoute
    from image_pipeline.options import ImagingOptions
    from image_pipeline.results import EncodedImage, ProcessedImage, RenderedVariant
    from image_pipeline.routes import Route
    from image_pipeline.usecase import Cutouts

_log = logging.getLogger(__name__)

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
        if not variable.cloud
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
    parser.add_argument(
        "--route",
        metavar="NAME",
        help="make what this route makes (default: the first route); for an extension route, the outputs are named "
        "as the extension names them",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Process every input; exit 0 if all succeeded, 1 if any was rejected."""
    from image_pipeline import bootstrap, logs
    from image_pipeline.commands.routes import chosen_route
    from image_pipeline.errors import UsageError
    from image_pipeline.settings import Settings

    unusable = next((problem for problem in map(input_problem, args.inputs) if problem), None)
    if unusable is not None:
        raise UsageError(unusable)
    settings = Settings.from_env()
    extension = next((route for route in settings.extension_routes if route.name == args.route), None)
    if args.route is None and not settings.routes:
        extension = settings.extension_routes[0]  # a file of extension routes only: its first one
    logs.configure(stream=sys.stderr, level=settings.log_level.value)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot use --out {args.out}: {error.strerror}") from None
    paths = [Path(path) for path in args.inputs]
    if extension is not None:
        lines = [process_as_extension(path, args.out, extension) for path in paths]
        return 0 if all(line["ok"] for line in lines) else 1
    route = chosen_route(settings.routes, args.route)
    make = route_maker(route, bootstrap.cutouts(objects=None))
    results = [
        process_file(path, stem, args.out, route.imaging, make)
        for path, stem in zip(paths, output_stems(paths), strict=True)
    ]
    return 0 if all(result["ok"] for result in results) else 1


def route_maker(route: Route, cutouts: Cutouts) -> Callable[[bytes], ProcessedImage]:
    """What the route makes of an image's bytes; a cutout route's model is loaded once, now (a bad one: exit 2)."""
    from image_pipeline import bootstrap

    if route.cutout is None:
        return partial(bootstrap.make_variants, options=route.imaging)
    loaded = cutouts.load(route.cutout, "")
    return lambda data: cutouts.make_variants(data, route.imaging, loaded, lambda: None)


def process_as_extension(path: Path, out_dir: Path, route: ExtensionRoute) -> dict[str, Any]:
    """Make what an extension route makes of one file (its Content-Type guessed from its name), named as the extension
    names it under `out_dir` (as if uploaded at the bucket's root); print and return its JSON line."""
    import mimetypes

    from image_pipeline import bootstrap
    from image_pipeline.errors import PermanentError
    from image_pipeline.extension.route import SOURCE_FORMATS

    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    line: dict[str, Any] = {"input": str(path), "ok": False}
    # The folder filters are about the bucket; a local file is judged by its type alone.
    if content_type not in SOURCE_FORMATS:
        line["error"] = {"code": "unsupported_format", "message": f"the extension route skips {content_type} files"}
        print(json.dumps(line), flush=True)
        return line
    plan = route.plan(path.name, content_type)
    try:
        processed = bootstrap.make_variants(read_bounded(path, route.limits.max_input_bytes), plan.imaging)
    except PermanentError as rejection:
        line["error"] = rejection.as_record()
    else:
        outputs = []
        for output in plan.objects:
            variant, image = output.made(processed)
            # Inside --out whatever RESIZED_IMAGES_PATH says: a leading `..` would climb out of it.
            target = out_dir.joinpath(*(part for part in output.path.split("/") if part not in ("", "..")))
            target.parent.mkdir(parents=True, exist_ok=True)
            written = {**write_encoding(target, image), "contentType": output.content_type}
            outputs.append({"size": output.size.text, "width": variant.width, "height": variant.height, **written})
        line.update(ok=True, source=vars(processed.source), outputs=outputs)
    print(json.dumps(line), flush=True)
    return line


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
    path: Path, stem: str, out_dir: Path, imaging: ImagingOptions, make: Callable[[bytes], ProcessedImage]
) -> dict[str, Any]:
    """Process one file, write its variants as `<stem>_<variant>.<ext>`, print and return its JSON line."""
    from image_pipeline import logs
    from image_pipeline.errors import PermanentError

    started = time.perf_counter()
    try:
        data = read_bounded(path, imaging.max_input_bytes)
        logs.log(_log, logging.DEBUG, f"read {path}", input=str(path), bytes=len(data))
        processed = make(data)
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
        }
        if processed.placeholder is not None:
            line["placeholder"] = processed.placeholder.as_record()
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
