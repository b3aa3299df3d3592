"""`demo [IMAGE] [--out DIR]`: the whole function on local services, from upload to the document the app reads."""

from __future__ import annotations

import argparse
import json
import mimetypes
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from image_pipeline.devtools.demo_upload import DemoUpload
    from image_pipeline.settings import Settings

SAMPLE = Path(__file__).resolve().parent.parent / "sample" / "sample.jpg"
REDELIVERIES = 5


def add_parser(subparsers: Any) -> None:
    """Register the `demo` command."""
    parser = subparsers.add_parser(
        "demo",
        help="run the function on the Firestore emulator and fake-gcs-server with one upload",
        description="Start the emulators and the function, upload IMAGE (a bundled sample by default) as the app "
        "would, deliver the event as Eventarc would, then print the document and save the variants with an HTML page.",
    )
    parser.add_argument("image", nargs="?", type=Path, default=SAMPLE, metavar="IMAGE", help="image to upload")
    parser.add_argument("--out", type=Path, default=Path("demo-output"), metavar="DIR", help="folder for the variants")
    parser.add_argument(
        "--route", metavar="NAME", help="upload where this route's match says (default: the first route)"
    )
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
        outcome = demonstrate(plan, args.image, args.out, function.url, settings)
        print("The function's log lines for the event:")
        print("\n".join(line for line in function.log_tail(20000).splitlines() if line.startswith("{")))
        return outcome


def demonstrate(plan: DemoUpload, image: Path, out_dir: Path, function_url: str, settings: Settings) -> int:
    """Seed, upload, deliver, wait, then show the result (the clients reach the emulators named in os.environ)."""
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
    print(f"Event answered {status} after {time.perf_counter() - started:.2f} s; the document is now:")
    print(json.dumps(document, indent=2, default=str, ensure_ascii=False))
    where = Where(route=plan.route.name, object=plan.name, document=plan.document, field=plan.route.field)
    page = save_variants(stored if isinstance(stored, dict) else {}, image, out_dir, where, document)
    if recorded.status != manifest.COMPLETE:
        error = f"{recorded.error_code}: {recorded.error_message}" if recorded.error_code else "no error recorded"
        print(f"The upload ended {recorded.status!r}: {error} (page: {page.resolve()})")
        return 1
    print(f"Variants and a side-by-side page written to {page.parent.resolve()}/ (open {page.resolve()})")
    return 0


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
