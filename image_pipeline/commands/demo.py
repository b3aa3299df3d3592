"""`demo [IMAGE] [--out DIR]`: the whole function on local services, from upload to the document the app reads."""

from __future__ import annotations

import argparse
import json
import mimetypes
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from image_pipeline.routes import Route
    from image_pipeline.settings import Settings

SAMPLE = Path(__file__).resolve().parent.parent / "sample" / "sample.jpg"
BUCKET = "demo-image-pipeline.appspot.com"
USER = "demo-user"
CHARACTER = "demo-character"
# The upload's capture values: CharaForge's two as they always were, any other {name} becomes demo-{name}.
DEMO_VALUES = {"uid": USER, "characterId": CHARACTER}
REDELIVERIES = 5
# In --out, the names of the files the last run wrote: the next run removes exactly those, nothing of the user's.


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
    from image_pipeline.errors import ConfigurationError
    from image_pipeline.settings import Settings

    if not args.image.is_file():
        print(f"python -m image_pipeline demo: error: {args.image} is not a file", file=sys.stderr)
        return 2
    try:
        settings = Settings.from_env()
        plan = DemoUpload.of(chosen_route(settings.routes, args.route), args.image.name, settings)
    except ConfigurationError as error:
        print(f"python -m image_pipeline demo: error: {error}", file=sys.stderr)
        return 2
    clear_previous(args.out)
    print("Starting the Firestore emulator and fake-gcs-server ...", flush=True)
    try:
        with emulators.local_stack() as stack:
            os.environ.update(stack.client_env())
            emulators.create_bucket(stack.storage.url, BUCKET)
            function = emulators.start_function(stack.client_env())
            stack.services.append(function)
            print(f"Function served by functions-framework at {function.url} (logs: {function.log_path})", flush=True)
            outcome = demonstrate(plan, args.image, args.out, function.url)
            print("The function's log lines for the event:")
            print("\n".join(line for line in function.log_tail(20000).splitlines() if line.startswith("{")))
            return outcome
    except emulators.EmulatorError as error:
        print(f"python -m image_pipeline demo: error: {error}", file=sys.stderr)
        return 2


@dataclass(frozen=True)
class DemoUpload:
    """Where the demo uploads for one route, and the document it seeds as the app would."""

    route: Route
    name: str  # the object name: the route's match with demo capture values
    document: str
    seed: Mapping[str, Any] | None  # None: the route creates its document (missing = "create")

    @classmethod
    def of(cls, route: Route, file_name: str, settings: Settings) -> DemoUpload:
        """The demo upload for `route`; ConfigurationError if the function would not give it to that route."""
        from image_pipeline.errors import ConfigurationError
        from image_pipeline.objects import Upload, classify
        from image_pipeline.ports import nested_fields
        from image_pipeline.routes import MissingDocument

        folders = [
            segment if capture is None else DEMO_VALUES.get(capture, f"demo-{capture}")
            for segment, capture in zip(route.match.segments[:-1], route.match.captures[:-1], strict=True)
        ]
        name = "/".join([*folders, file_name])
        found = classify("demo", None, {"bucket": BUCKET, "name": name, "generation": "1", "size": "1"}, settings)
        if not isinstance(found, Upload) or found.route != route:
            taker = f"route {found.route.name!r}" if isinstance(found, Upload) else "no route"
            raise ConfigurationError(f"--route {route.name!r}: the demo upload {name!r} would be taken by {taker}")
        seed = None
        if route.missing is MissingDocument.WAIT:
            required = {path: template.render(found.values) for path, template in route.require.items()}
            collection = found.document.split("/")[-2]
            seed = {**nested_fields(required), "name": f"Demo {collection.removesuffix('s')}"}
        return cls(route, name, found.document, seed)


def demonstrate(plan: DemoUpload, image: Path, out_dir: Path, function_url: str) -> int:
    """Seed, upload, deliver, wait, then show the result."""
    from google.cloud import firestore, storage

    from image_pipeline.devtools.demo_page import Where, save_variants
    from image_pipeline.usecase import field_value

    documents = firestore.Client()
    if plan.seed is not None:
        documents.document(plan.document).set(dict(plan.seed))
    resource = upload(storage.Client().bucket(BUCKET), image, plan.name)
    print(f"Uploaded {image} to gs://{BUCKET}/{resource['name']} (generation {resource['generation']})", flush=True)
    started = time.perf_counter()
    status = deliver_until_acknowledged(function_url, resource)
    document = documents.document(plan.document).get().to_dict() or {}
    manifest = field_value(document, plan.route.field) or {}
    print(f"Event answered {status} after {time.perf_counter() - started:.2f} s; the document is now:")
    print(json.dumps(document, indent=2, default=str, ensure_ascii=False))
    where = Where(route=plan.route.name, object=plan.name, document=plan.document, field=plan.route.field)
    page = save_variants(manifest, image, out_dir, where, document)
    if manifest.get("status") != "complete":
        print(f"The upload ended {manifest.get('status')!r}: {manifest.get('error')} (page: {page.resolve()})")
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
