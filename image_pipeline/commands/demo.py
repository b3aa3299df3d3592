"""`demo [IMAGE] [--out DIR] [--json]`: the whole function on local services, from upload to the document the app
reads, summed up in a few lines (or the whole document).
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from image_pipeline.devtools.demo_upload import DemoUpload
    from image_pipeline.manifest import FormatRecord, Manifest
    from image_pipeline.settings import Settings

SAMPLE = Path(__file__).resolve().parent.parent / "sample" / "sample.jpg"
REDELIVERIES = 5


def add_parser(subparsers: Any) -> None:
    """Register the `demo` command."""
    parser = subparsers.add_parser(
        "demo",
        help="run the function on the Firestore emulator and fake-gcs-server with one upload",
        description="Start the emulators and the function, upload IMAGE (a bundled sample by default) as the app "
        "would, deliver the event as Eventarc would, then sum up the document (status, where, each variant, the "
        "placeholder) and save the variants with an HTML page.",
    )
    parser.add_argument("image", nargs="?", type=Path, default=SAMPLE, metavar="IMAGE", help="image to upload")
    parser.add_argument("--out", type=Path, default=Path("demo-output"), metavar="DIR", help="folder for the variants")
    parser.add_argument(
        "--route", metavar="NAME", help="upload where this route's match says (default: the first route)"
    )
    parser.add_argument("--json", action="store_true", help="print the whole document instead of its summary")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo; exit 0 when the upload ends 'complete', 1 when it ends 'failed', 2 if the stack cannot start."""
    import os

    from image_pipeline.commands.routes import chosen_route
    from image_pipeline.devtools import emulators
    from image_pipeline.devtools.demo_page import clear_previous
    from image_pipeline.devtools.demo_upload import BUCKET, DemoUpload
    from image_pipeline.errors import UsageError
    from image_pipeline.settings import Settings

    if not args.image.is_file():
        raise UsageError(f"{args.image} is not a file")
    settings = Settings.from_env()
    plan = DemoUpload.of(chosen_route(settings.routes, args.route), args.image.name, settings.routes)
    clear_previous(args.out)
    print("Starting the Firestore emulator and fake-gcs-server ...", flush=True)
    with emulators.local_stack() as stack:
        os.environ.update(stack.client_env())
        emulators.create_bucket(stack.storage.url, BUCKET)
        function = emulators.start_function(stack.client_env())
        stack.services.append(function)
        print(f"Function served by functions-framework at {function.url} (logs: {function.log_path})", flush=True)
        outcome = demonstrate(plan, args.image, args.out, function.url, settings, args.json)
        print("The function's log lines for the event:")
        print("\n".join(line for line in function.log_tail(20000).splitlines() if line.startswith("{")))
        return outcome


def demonstrate(
    plan: DemoUpload, image: Path, out_dir: Path, function_url: str, settings: Settings, as_json: bool = False
) -> int:
    """Seed, upload, deliver, wait, then show the result, summed up or (`as_json`) the whole document (the clients
    reach the emulators named in os.environ)."""
    from google.cloud import storage

    from image_pipeline import manifest
    from image_pipeline.bootstrap import connect
    from image_pipeline.devtools.demo_page import Where, save_variants
    from image_pipeline.devtools.demo_upload import BUCKET

    documents = connect(settings).documents
    plan.seed_document(documents)
    resource = upload(storage.Client().bucket(BUCKET), image, plan.name)
    print(f"Uploaded {image} to gs://{BUCKET}/{resource['name']} (generation {resource['generation']})", flush=True)
    started = time.perf_counter()
    status = deliver_until_acknowledged(function_url, resource)
    document = dict(documents.get(plan.document) or {})
    stored = manifest.field_value(document, plan.route.field)
    recorded = manifest.read(document, plan.route)
    answered = f"Event answered {status} after {time.perf_counter() - started:.2f} s"
    where = Where(route=plan.route.name, object=plan.name, document=plan.document, field=plan.route.field)
    if as_json:
        print(f"{answered}; the document is now:")
        print(json.dumps(document, indent=2, default=str, ensure_ascii=False))
    page = save_variants(stored if isinstance(stored, dict) else {}, image, out_dir, where, document)
    if not as_json:
        print(f"{answered}:")
        print("\n".join(summary(document, plan, page.resolve())))
        return 0 if recorded.status == manifest.COMPLETE else 1
    if recorded.status != manifest.COMPLETE:
        error = f"{recorded.error_code}: {recorded.error_message}" if recorded.error_code else "no error recorded"
        print(f"The upload ended {recorded.status!r}: {error} (page: {page.resolve()})")
        return 1
    print(f"Variants and a side-by-side page written to {page.parent.resolve()}/ (open {page.resolve()})")
    return 0


def summary(document: Mapping[str, object], plan: DemoUpload, page: Path) -> list[str]:
    """The result in about ten lines: status, where it is recorded, each variant and format, placeholder, page."""
    from image_pipeline import manifest

    recorded = manifest.read(document, plan.route)
    status = recorded.status or "no manifest (the function's log lines say why)"
    if recorded.error_code:
        status += f": {recorded.error_code}: {recorded.error_message}"
    lines = [
        ("status", status),
        ("recorded in", f"{plan.document}, field {plan.route.field} (route {plan.route.name})"),
    ]
    stored = manifest.field_value(document, plan.route.field)
    complete = recorded.status == manifest.COMPLETE and isinstance(stored, Mapping)
    if complete:
        # This run's function wrote it whole, as manifest.Manifest says.
        formats = [encoding.format.value for encoding in plan.route.imaging.encodings]
        lines += _result_lines(cast("Manifest", stored), formats)
    lines.append(("page", f"{page} (open it{'; the variants are beside it' if complete else ''})"))
    # A label repeated on consecutive lines (the variants) is printed on the first only.
    shown = [label if index == 0 or lines[index - 1][0] != label else "" for index, (label, _) in enumerate(lines)]
    return [f"{label:<13}{text}" for label, (_, text) in zip(shown, lines, strict=True)]


def _result_lines(result: Manifest, formats: list[str]) -> list[tuple[str, str]]:
    """The source, each variant (largest first) in each of `formats` (primary first), the placeholder and the cutout
    of a complete result."""
    source = result["source"]
    lines = [("source", f"{source['format']} {source['width']}×{source['height']}, {_size(source['bytes'])}")]
    variants = sorted(result["variants"].items(), key=lambda item: -item[1]["width"] * item[1]["height"])
    sizes = {name: f"{variant['width']}×{variant['height']}" for name, variant in variants}
    name_width, size_width = max(map(len, sizes), default=0), max(map(len, sizes.values()), default=0)
    for name, variant in variants:
        made = " · ".join(
            _stored_text(kind, variant["formats"][kind]) for kind in formats if kind in variant["formats"]
        )
        lines.append(("variants", f"{name:<{name_width}}  {sizes[name]:>{size_width}}  {made}"))
    placeholder = result["placeholder"] or {}
    kinds = (("dominantColor", ""), ("blurhash", "BlurHash "), ("thumbhash", "ThumbHash "))
    drawn = [f"{title}{placeholder[kind]}" for kind, title in kinds if placeholder.get(kind)]
    lines.append(("placeholder", " · ".join(drawn) or "none recorded"))
    if "cutout" in result:
        cutout = result["cutout"] or {}
        applied = f"applied, {cutout.get('model')}, subject covers {cutout.get('coverage', 0):.0%}"
        lines.append(("cutout", applied if cutout.get("applied") else f"not applied: {cutout.get('reason')}"))
    return lines


def _stored_text(kind: str, stored: FormatRecord) -> str:
    """`webp 26.3 KiB`, or `webp = large` where a smaller variant repeats a larger one's object."""
    return f"{kind} = {stored['sameAs']}" if "sameAs" in stored else f"{kind} {_size(stored['bytes'])}"


def _size(count: int) -> str:
    """Bytes as a person reads them (as the page shows them)."""
    if count < 1024:
        return f"{count} B"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KiB"
    return f"{count / 1024 / 1024:.2f} MiB"


def upload(bucket: Any, image: Path, name: str) -> dict[str, Any]:
    """Upload like the app: to `name` with the file's content type."""
    blob = bucket.blob(name)
    content_type = mimetypes.guess_type(image.name)[0] or "application/octet-stream"
    blob.upload_from_filename(str(image), content_type=content_type)
    # The event carries the object's JSON resource; Blob keeps it only here (no public to_api_repr), and rebuilding
    # it from the typed properties would change the timestamps' and numbers' text.
    return dict(blob._properties)


def deliver_until_acknowledged(function_url: str, resource: dict[str, Any]) -> int:
    """Deliver the event, redelivering after a 500 with a short backoff as Eventarc would."""
    from image_pipeline.devtools import emulators

    event_id = uuid.uuid4().hex
    event_time = datetime.now(UTC)
    for attempt in range(REDELIVERIES):
        status = emulators.deliver_finalized(function_url, resource, event_id, event_time)
        if status < 500:
            return status
        print(f"The function answered {status}; redelivering (attempt {attempt + 2}) ...", flush=True)
        time.sleep(2**attempt)
    return status
