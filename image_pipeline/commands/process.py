"""`process INPUT... --out DIR`: run the imaging core on local files, one JSON line per input on stdout."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from image_pipeline.options import ImagingOptions
    from image_pipeline.results import EncodedImage, RenderedVariant


def add_parser(subparsers: Any) -> None:
    """Register the `process` command."""
    parser = subparsers.add_parser("process", help="make the variants of local image files")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files to process")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder for the variants")
    parser.add_argument("--route", metavar="NAME", help="make what this route makes (default: the first route)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Process every input; exit 0 if all succeeded, 1 if any was rejected."""
    from image_pipeline import logs
    from image_pipeline.commands.routes import chosen_route
    from image_pipeline.errors import ConfigurationError
    from image_pipeline.settings import Settings

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
    stems = output_stems([Path(path) for path in args.inputs])
    results = [
        process_file(Path(path), stem, args.out, route.imaging) for path, stem in zip(args.inputs, stems, strict=True)
    ]
    return 0 if all(result["ok"] for result in results) else 1


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


def process_file(path: Path, stem: str, out_dir: Path, imaging: ImagingOptions) -> dict[str, Any]:
    """Process one file, write its variants as `<stem>_<variant>.<ext>`, print and return its JSON line."""
    from image_pipeline.errors import PermanentError
    from image_pipeline.imaging import make_variants

    try:
        data = read_bounded(path, imaging.max_input_bytes)
        processed = make_variants(data, imaging)
    except PermanentError as rejection:
        line = {"input": str(path), "ok": False, "error": rejection.as_record()}
    else:
        line = {
            "input": str(path),
            "ok": True,
            "source": vars(processed.source),
            "variants": [write_variant(stem, out_dir, variant) for variant in processed.variants],
            "placeholder": processed.placeholder.as_record(),
        }
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
