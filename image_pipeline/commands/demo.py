"""`demo [IMAGE] [--out DIR]`: the whole function on local services, from upload to the document the app reads."""

from __future__ import annotations

import argparse
import json
import mimetypes
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

SAMPLE = Path(__file__).resolve().parent.parent / "sample" / "sample.jpg"
BUCKET = "demo-image-pipeline.appspot.com"
USER = "demo-user"
CHARACTER = "demo-character"
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
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo; exit 0 when the upload ends 'complete', 1 when it ends 'failed', 2 if the stack cannot start."""
    import os

    from image_pipeline.devtools import emulators

    if not args.image.is_file():
        print(f"error: {args.image} is not a file")
        return 2
    print("Starting the Firestore emulator and fake-gcs-server ...", flush=True)
    try:
        with emulators.local_stack() as stack:
            os.environ.update(stack.client_env())
            emulators.create_bucket(stack.storage.url, BUCKET)
            function = emulators.start_function(stack.client_env())
            stack.services.append(function)
            print(f"Function served by functions-framework at {function.url} (logs: {function.log_path})", flush=True)
            outcome = demonstrate(args.image, args.out, function.url)
            print("The function's log lines for the event:")
            print("\n".join(line for line in function.log_tail(20000).splitlines() if line.startswith("{")))
            return outcome
    except emulators.EmulatorError as error:
        print(f"error: {error}")
        return 2


def demonstrate(image: Path, out_dir: Path, function_url: str) -> int:
    """Seed, upload, deliver, wait, then show the result."""
    from google.cloud import firestore, storage

    from image_pipeline.devtools.demo_page import save_variants

    characters = firestore.Client().collection("characters")
    characters.document(CHARACTER).set({"meta": {"userId": USER}, "name": "Demo character"})
    resource = upload(storage.Client().bucket(BUCKET), image)
    print(f"Uploaded {image} to gs://{BUCKET}/{resource['name']} (generation {resource['generation']})", flush=True)
    started = time.perf_counter()
    status = deliver_until_acknowledged(function_url, resource)
    document = characters.document(CHARACTER).get().to_dict()
    visuals = document.get("visuals", {})
    print(f"Event answered {status} after {time.perf_counter() - started:.2f} s; the document is now:")
    print(json.dumps(document, indent=2, default=str, ensure_ascii=False))
    if visuals.get("showcaseProcessingStatus") != "complete":
        print(f"The upload ended {visuals.get('showcaseProcessingStatus')!r}: {visuals.get('showcase', {}).get('error')}")
        return 1
    page = save_variants(visuals["showcase"], image, out_dir)
    print(f"Variants and a side-by-side page written to {page.parent.resolve()}/ (open {page.resolve()})")
    return 0


def upload(bucket: Any, image: Path) -> dict[str, Any]:
    """Upload like the app: `raw-uploads/{uid}/{characterId}/{fileName}` with the file's content type."""
    blob = bucket.blob(f"raw-uploads/{USER}/{CHARACTER}/{image.name}")
    content_type = mimetypes.guess_type(image.name)[0] or "application/octet-stream"
    blob.upload_from_filename(str(image), content_type=content_type)
    # The event carries the object's JSON resource; Blob keeps it only here (no public to_api_repr), and rebuilding
    # it from the typed properties would change the timestamps' and numbers' text.
    return dict(blob._properties)


def deliver_until_acknowledged(function_url: str, resource: dict[str, Any]) -> int:
    """Deliver the event, redelivering after a 500 with a short backoff as Eventarc would."""
    from image_pipeline.devtools import emulators

    event_id = uuid.uuid4().hex
    event_time = datetime.now(timezone.utc)
    for attempt in range(REDELIVERIES):
        status = emulators.deliver_finalized(function_url, resource, event_id, event_time)
        if status < 500:
            return status
        print(f"The function answered {status}; redelivering (attempt {attempt + 2}) ...", flush=True)
        time.sleep(2**attempt)
    return status
