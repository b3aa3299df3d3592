"""`routes check [FILE]` and `routes explain OBJECT_PATH`: the route table as the function understands it;
`routes import-extension`: a Firebase Resize Images instance's configuration as a routes file.

Standard library only (no Pillow, no Google client): works wherever the routes file is written.
"""

from __future__ import annotations

import argparse
import mimetypes
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from image_pipeline.routes import Route
    from image_pipeline.settings import Settings

PROG = "python -m image_pipeline routes"
_MISSING = {"wait": "waited for while the event is young, if missing", "create": "created if missing"}
_SOURCE = {"never": "kept", "on_success": "deleted once its variants are recorded"}


def add_parser(subparsers: Any) -> None:
    """Register the `routes` command and its `check` and `explain` sub-commands."""
    parser = subparsers.add_parser(
        "routes",
        help="validate a routes file, or say which route takes an object path",
        description="Routes come from the TOML file in ROUTES_FILE; without it, one built-in route is made from "
        "SOURCE_PREFIX, OUTPUT_PREFIX, FIRESTORE_COLLECTION and the other settings. Exit 2 with one line naming "
        "the route and the key when the file is bad.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = actions.add_parser(
        "check",
        help="validate a routes file and print each route as understood",
        description="Validate FILE (default: $ROUTES_FILE, else the built-in route) as start-up does, "
        "loop safety included, and print every key of every route, defaults filled in.",
    )
    check.add_argument("file", nargs="?", type=Path, metavar="FILE", help="the routes file (default: $ROUTES_FILE)")
    check.set_defaults(run=run_check)
    explain = actions.add_parser(
        "explain",
        help="say which route takes an object path (or why none does) and what it would write",
        description="Apply the function's own classification to OBJECT_PATH: the first route whose match fits "
        "takes it. Print the route, its document and field, and the object names it would write; or, for "
        "each route, why it does not match. Exit 0 when a route takes it, 1 when none does, 2 for a bad file.",
    )
    explain.add_argument("path", metavar="OBJECT_PATH", help="an object name in the bucket, e.g. uploads/u1/photo.jpg")
    explain.add_argument(
        "--routes-file", type=Path, metavar="FILE", help="explain against this file (default: $ROUTES_FILE)"
    )
    explain.add_argument(
        "--generation", type=_generation, default=1, metavar="N", help="the source generation in output names (1)"
    )
    explain.add_argument(
        "--content-type",
        metavar="TYPE",
        help="the upload's Content-Type, which extension routes filter on (default: guessed from the name)",
    )
    explain.set_defaults(run=run_explain)
    _add_import_extension(actions)


def _add_import_extension(actions: Any) -> None:
    importing = actions.add_parser(
        "import-extension",
        help="print a routes file made from a Resize Images extension's configuration",
        description="Read a Firebase Resize Images (storage-resize-images) instance's parameters, as firebase-tools "
        "does, and print a routes file on stdout: one route per instance, named after its instance id, spelling every "
        "parameter of extension.yaml (the ones left unset with their declared default); deployment parameters become "
        "a comment with deploy.sh's flags. Exit 2 with one line naming a parameter that has no counterpart here.",
    )
    source = importing.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "env_file", nargs="?", type=Path, metavar="FILE.env", help="an instance's params file, e.g. extensions/x.env"
    )
    source.add_argument(
        "--firebase-json",
        type=Path,
        metavar="FILE",
        help="every storage-resize-images instance in the extensions section of this firebase.json",
    )
    importing.add_argument(
        "--project",
        metavar="ID",
        help="resolves ${param:PROJECT_ID} (default: $GOOGLE_CLOUD_PROJECT); with --firebase-json, "
        "extensions/<id>.env.<ID> is read over extensions/<id>.env",
    )
    importing.add_argument(
        "--instance-id",
        metavar="ID",
        help="the route's name (default: the instance id: the file name before .env, or firebase.json's)",
    )
    importing.set_defaults(run=run_import_extension)


def run_import_extension(args: argparse.Namespace) -> int:
    """Print the routes file; exit 2 with one line for a parameter, a file or an instance id that cannot be used."""
    from image_pipeline.extension.importer import import_env_file, import_firebase_json

    read = import_env_file if args.firebase_json is None else import_firebase_json
    routes = read(
        args.firebase_json or args.env_file,
        instance_id=args.instance_id,
        project=args.project,
        default_project=os.environ.get("GOOGLE_CLOUD_PROJECT") or None,
    )
    print(routes, end="")
    return 0


def run_check(args: argparse.Namespace) -> int:
    """Print every route as understood; exit 2 with one line if the table is unusable."""
    from image_pipeline.extension.route import describe as describe_extension

    settings, origin = load(args.file)
    routes, extensions = settings.routes, settings.extension_routes
    if routes:
        print(f"{len(routes)} route{'s' if len(routes) != 1 else ''} from {origin}, tried in this order:")
    for route in routes:
        print()
        print("\n".join(describe(route)))
    if extensions:
        print(f"{'' if not routes else chr(10)}{len(extensions)} extension route{'s' if len(extensions) != 1 else ''} "
              f"from {origin}, each taking every upload its filters pass:")  # fmt: skip
    for extension in extensions:
        print()
        print("\n".join(describe_extension(extension)))
    return 0


def run_explain(args: argparse.Namespace) -> int:
    """Say which route takes the path and what it would write; exit 0 either way (1 if no route takes it)."""
    from image_pipeline.extension.route import explain as explain_extension
    from image_pipeline.uploads import Upload, classify

    settings, origin = load(args.routes_file)
    routes = settings.routes
    content_type = args.content_type or mimetypes.guess_type(args.path)[0] or "application/octet-stream"
    resource = {"bucket": "bucket", "name": args.path, "generation": str(args.generation), "size": "1",
                "contentType": content_type}  # fmt: skip
    extension_lines = [line for route in settings.extension_routes for line in explain_extension(route, resource)]
    taken = any(" takes it " in line for line in extension_lines)
    found = classify("explain", None, resource, routes)
    if not routes:
        print(f"{args.path!r} as {content_type} ({origin}):")
    elif not isinstance(found, Upload):
        print(f"{args.path!r}: no route takes it ({origin}){'' if taken else '; the function skips it without work'}.")
        for route in routes:
            print(f"  route {route.name!r} ({route.match.text}): {mismatch(route, args.path)}")
        for route in routes:
            if _looks_like_output(route, args.path):
                shape = route.output.text + route.names.text
                print(f"  it has the shape of an output of route {route.name!r} ({shape}).")
    else:
        print("\n".join(explain_upload(found, routes, origin)))
    if extension_lines:
        print("\n".join(extension_lines))
    return 0 if taken or isinstance(found, Upload) else 1


def load(file: Path | None) -> tuple[Settings, str]:
    """The settings (routes) start-up would use with ROUTES_FILE=`file` (default: the environment's), and where the
    routes came from."""
    from image_pipeline.settings import Settings

    if file is not None:
        # Exactly as the function reads it, so that route-level variables set beside it are refused here too.
        return Settings.from_env({**os.environ, "ROUTES_FILE": str(file.absolute())}), str(file)
    configured = os.environ.get("ROUTES_FILE", "").strip()
    origin = f"ROUTES_FILE={configured}" if configured else "the built-in route (ROUTES_FILE is not set)"
    return Settings.from_env(), origin


def chosen_route(routes: Sequence[Route], name: str | None) -> Route:
    """The route named `name` (`--route`), or the first; ConfigurationError names the choices."""
    from image_pipeline.errors import ConfigurationError

    if not routes:
        raise ConfigurationError("the routes file has no route of ours, only extension routes: name one with --route")
    if name is None:
        return routes[0]
    for route in routes:
        if route.name == name:
            return route
    known = ", ".join(route.name for route in routes)
    raise ConfigurationError(f"--route {name!r} is not a configured route (routes: {known})")


def describe(route: Route) -> list[str]:
    """Every key of one route, defaults filled in, as `key  value` lines."""
    imaging = route.imaging
    lines = [
        ("match", f"{route.match.text}  (sources listed under {route.match.literal_prefix or 'the bucket root'})"),
        ("document", route.document.text),
        ("field", route.field),
        ("require", _pairs({path: template.text for path, template in route.require.items()}) or "(none)"),
        ("missing", route.missing.value),
        ("owner", f"{{{route.owner}}}" if route.owner else "(none: no client uploads in generated rules)"),
        ("output", f"{route.output.text}{route.names.text}{_overwritten(route)}"),
        ("formats", ", ".join(_encoding(encoding, index == 0) for index, encoding in enumerate(imaging.encodings))),
        ("variants", ", ".join(_variant(variant) for variant in imaging.variants)),
        ("mirror", _pairs({key: value for key, value in vars(route.mirror).items() if value}) or "(none)"),
        ("cache_control", route.cache_control),
        ("delete_original", route.delete_original.value),
        ("keep_animation", "true" if imaging.keep_animation else "false"),
        ("background", "#{:02x}{:02x}{:02x}".format(*imaging.background)),
    ]
    return [f"route {route.name!r}"] + [f"  {key:<16}{value}" for key, value in lines]


def explain_upload(upload: Any, routes: Sequence[Route], origin: str) -> list[str]:
    """What the function would do with one upload: its route, document, field and output names."""
    route = upload.route
    later = [other.name for other in routes[routes.index(route) + 1 :] if other.match.match(upload.name) is not None]
    lines = [f"{upload.name!r}: route {route.name!r} takes it ({origin}; the first route whose match fits)"]
    if later:
        lines.append(f"  (it also fits {', '.join(map(repr, later))}, which come later and are not used)")
    lines += [
        f"  {'captures':<16}{_pairs(dict(upload.values))}",
        f"  {'document':<16}{upload.document}  ({_MISSING[route.missing.value]})",
        f"  {'field':<16}{route.field}",
    ]
    if route.require:
        required = {path: template.render(upload.values) for path, template in route.require.items()}
        lines.append(f"  {'require':<16}{_pairs(required)}  (else not_owner: nothing written)")
    mirrored = {key: value for key, value in vars(route.mirror).items() if value}
    if mirrored:
        lines.append(f"  {'mirror':<16}{_pairs(mirrored)}")
    lines.append(f"  {'source':<16}{_SOURCE[route.delete_original.value]}")
    if route.names.has_generation:
        heading = f"outputs for generation {upload.generation} (one bigger than a larger one is not written: sameAs)"
    else:
        heading = "outputs (names without {generation}: each upload overwrites the one before's)"
    lines.append(f"  {heading}:")
    for variant in route.imaging.variants:
        for encoding in route.imaging.encodings:
            path = upload.output_path(variant.name, encoding.format.extension)
            lines.append(f"    {variant.name:<12}{encoding.format.value:<6}{path}")
    return lines


def mismatch(route: Route, name: str) -> str:
    """Why `name`, which does not fit `route`'s match pattern, does not: in the terms of the pattern's rules."""
    from image_pipeline.routes import CAPTURE_VALUE

    pattern = route.match
    parts = name.split("/")
    if len(parts) != len(pattern.segments):
        return f"the path has {len(parts)} segments, the match has {len(pattern.segments)}"
    folders = zip(parts[:-1], pattern.segments[:-1], pattern.captures[:-1], strict=True)
    for number, (part, segment, capture) in enumerate(folders, start=1):
        if capture is None and part != segment:
            return f"segment {number} is {part!r}, the match wants the literal {segment!r}"
        if capture is not None and not CAPTURE_VALUE.fullmatch(part):
            return f"segment {number} {part!r} is not a value for {{{capture}}} (1-128 of A-Z a-z 0-9 _ -)"
    return f"the file name {parts[-1]!r} is empty, '.' or '..', or has control characters"


def _looks_like_output(route: Route, name: str) -> bool:
    folder, _, file_name = name.rpartition("/")
    return route.output.as_pattern().fullmatch(folder + "/") is not None and route.names.could_make(file_name)


def _overwritten(route: Route) -> str:
    return "" if route.names.has_generation else "  (overwritten by each new upload: no {generation})"


def _pairs(values: Mapping[str, str]) -> str:
    return ", ".join(f"{key} = {value}" for key, value in values.items())


def _encoding(encoding: Any, primary: bool) -> str:
    quality = "lossless" if encoding.format.value == "png" else f"quality {encoding.quality}"
    return f"{encoding.format.value} ({quality}{', primary' if primary else ''})"


def _variant(variant: Any) -> str:
    width, height = variant.box
    return f"{variant.name} {width}x{height} {variant.fit.value}"


def _generation(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) < 2**63:
        raise argparse.ArgumentTypeError(f"must be a generation number (1 to 2^63-1), got {text!r}")
    return int(text)
