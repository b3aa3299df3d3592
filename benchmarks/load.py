"""Load on the local stack: N uploads over a mixed routes table, events delivered concurrently, every outcome checked.

Run from the repository root: `python benchmarks/load.py [--count 200] [--concurrency 8] [--threads 8] [--photos DIR]`.
Loopback only: starts the Firestore emulator, fake-gcs-server and the function (functions-framework, gunicorn with
THREADS threads) with a routes file of four routes, the uploads spread evenly over them:
- `showcase`: the built-in route, spelled out (WebP at 256, 1024 and 2048 px; the character document must exist);
- `avatar`: a route of ours writing AVIF and WebP (a 256x256 cover crop and 1024 px), its document created;
- `resize-images`: an extension route (Resize Images' parameters: 200x200 and 680x680, the original's type and WebP,
  failed images copied to `failed/`);
- `cutout`: a route of ours removing the background with a tiny u2net-family model (tests/cutout_models.py) read from
  the bucket, as deployed models are.
Each route gets a mix of photos (from ../shared/corpus/photos/ when present), generated images and invalid files
(non-image, truncated, bomb header); one Eventarc-style CloudEvent per upload is posted from `--concurrency` client
threads, redelivering after a 5xx with a short bounded backoff as Eventarc would.
Reports throughput, latency percentiles (first post -> acknowledgement; results are settled before the ack), the
function's peak RSS (VmHWM of its process tree), and checks every upload's end state: for our routes the document
ended 'complete' (with every variant in every format) or 'failed' with the expected code; for the extension route
every output exists with the `resizedImage` mark, or (an invalid file) no output and a failed copy. Prints a table and
one JSON line; exits 1 if any upload was lost, stuck or wrong.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import mimetypes
import os
import statistics
import struct
import sys
import tempfile
import threading
import time
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from image_pipeline.devtools import emulators
from image_pipeline.options import CutoutFamily
from tests.cutout_models import flat_background_model

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PHOTOS = REPO.parent / "shared" / "corpus" / "photos"
BUCKET = "load.appspot.com"
USER = "load-user"
MODEL_OBJECT = "models/tiny-u2net.onnx"
EXTENSION_SIZES = ("200x200", "680x680")
EXTENSION_TYPES = ("false", "webp")
ROUTES = """
[[route]]
name = "showcase"
match = "raw-uploads/{uid}/{characterId}/{file}"
document = "characters/{characterId}"
field = "visuals.showcase"
require = { "meta.userId" = "{uid}" }
missing = "wait"
owner = "{uid}"
output = "showcase-images/{uid}/{characterId}/"
formats = ["webp"]
[route.mirror]
status = "visuals.showcaseProcessingStatus"
url = "visuals.showcaseImageUrl"
ready = "visuals.isShowcaseProcessed"
[route.variants]
thumb = 256
medium = 1024
large = 2048

[[route]]
name = "avatar"
match = "avatars/{uid}/{file}"
document = "users/{uid}"
field = "avatar"
missing = "create"
output = "avatar-images/{uid}/"
formats = ["avif", "webp"]
[route.variants]
small = { box = "256x256", fit = "cover" }
large = 1024

[[route]]
name = "cutout"
match = "cutouts/{id}/{file}"
document = "cutouts/{id}"
field = "image"
missing = "create"
output = "cutout-images/{id}/"
formats = ["webp"]
[route.variants]
thumb = 256
large = 1024
[route.cutout]
family = "u2net"
uri = "gs://{bucket}/MODEL_OBJECT"
sha256 = "MODEL_SHA256"

[[route]]
name = "resize-images"
extension = "storage-resize-images"
IMG_SIZES = "EXTENSION_SIZES"
IMAGE_TYPE = "EXTENSION_TYPES"
INCLUDE_PATH_LIST = "/ext-uploads"
RESIZED_IMAGES_PATH = "thumbs"
FAILED_IMAGES_PATH = "failed"
"""
# Per route of ours: where its uploads go, its document and field, the manifest's status field, its variants and
# formats (what a complete manifest must hold).
OURS = {
    "showcase": ("raw-uploads/" + USER + "/{key}", "characters/{key}", "visuals.showcase", 3, ("webp",)),
    "avatar": ("avatars/{key}", "users/{key}", "avatar", 2, ("avif", "webp")),
    "cutout": ("cutouts/{key}", "cutouts/{key}", "image", 2, ("webp",)),
}
EXTENSION_ROUTE = "resize-images"
ROUTE_NAMES = (*OURS, EXTENSION_ROUTE)


@dataclass(frozen=True)
class Item:
    """One upload, the route it is for and what it must end as."""

    index: int
    route: str
    file_name: str
    data: bytes
    content_type: str
    expect_status: str
    expect_code: str | None = None

    @property
    def key(self) -> str:
        """The upload's own folder and document id (one per upload, so latencies are independent)."""
        return f"load-{self.index:05d}"

    @property
    def folder(self) -> str:
        """The folder the source object is uploaded to."""
        if self.route == EXTENSION_ROUTE:
            return f"ext-uploads/{self.key}"
        return OURS[self.route][0].format(key=self.key)

    @property
    def path(self) -> str:
        """The source object's name."""
        return f"{self.folder}/{self.file_name}"


@dataclass
class Delivery:
    """How one event was delivered: HTTP statuses of each attempt and the time from first post to final answer."""

    item: Item
    statuses: list[int] = field(default_factory=list)
    seconds: float = 0.0


def generated_images() -> list[tuple[str, bytes, str]]:
    """Synthetic images of mixed sizes and formats: (file name, bytes, content type)."""
    from PIL import Image, ImageDraw

    images = []
    for width, height, fmt in ((640, 480, "JPEG"), (1600, 1200, "JPEG"), (3000, 2000, "JPEG"),
                               (1200, 1200, "PNG"), (2048, 1536, "WEBP"), (800, 600, "GIF")):  # fmt: skip
        image = Image.radial_gradient("L").resize((width, height)).convert("RGB")
        draw = ImageDraw.Draw(image)
        draw.ellipse((width // 5, height // 5, width // 2, height // 2), fill=(200, 60, 30))
        draw.text((10, 10), f"{width}x{height}", fill=(255, 255, 255))
        out = io.BytesIO()
        image.save(out, fmt, quality=85) if fmt in ("JPEG", "WEBP") else image.save(out, fmt)
        images.append((f"gen_{width}x{height}.{fmt.lower()}", out.getvalue(), f"image/{fmt.lower()}"))
    return images


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A tiny PNG whose header declares a huge canvas."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 4096))
        + chunk(b"IEND", b"")
    )


def invalid_files(jpeg: bytes) -> list[tuple[str, bytes, str, str]]:
    """Uploads that must end 'failed': (file name, bytes, content type, expected code)."""
    return [
        ("notes.jpg", b"these are notes, not pixels\n" * 40, "image/jpeg", "unsupported_format"),
        ("truncated.jpg", jpeg[: len(jpeg) * 2 // 5], "image/jpeg", "corrupt_image"),
        ("bomb.png", png_bomb(), "image/png", "too_large"),
    ]


def workload(count: int, photos_dir: Path | None) -> list[Item]:
    """`count` uploads, every fourth to each route; of each route's: 2 in 10 photos (generated if there are none),
    1 in 10 invalid, the rest generated."""
    photos = []
    if photos_dir is not None and photos_dir.is_dir():
        photos = [
            (p.name, p.read_bytes(), mimetypes.guess_type(p.name)[0] or "application/octet-stream")
            for p in sorted(photos_dir.iterdir())
            if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".gif", ".webp")
        ]
    generated = generated_images()
    invalid = invalid_files(generated[1][1])
    items = []
    for index in range(count):
        route, nth = ROUTE_NAMES[index % len(ROUTE_NAMES)], index // len(ROUTE_NAMES)
        slot = nth % 10
        if slot == 3:
            name, data, content_type, code = invalid[(nth // 10) % len(invalid)]
            items.append(Item(index, route, name, data, content_type, "failed", code))
            continue
        pool = photos if slot in (0, 5) and photos else generated
        name, data, content_type = pool[(nth // 5 if pool is photos else nth) % len(pool)]
        items.append(Item(index, route, name, data, content_type, "complete"))
    return items


def seed_and_upload(items: list[Item], firestore_client: Any, storage_client_factory: Any) -> dict[int, dict[str, Any]]:
    """Create the showcase uploads' character documents and upload every source; return the resources by item index."""
    # The showcase route waits for its character document; the others create theirs or write none.
    showcases = [item for item in items if item.route == "showcase"]
    for start in range(0, len(showcases), 400):
        batch = firestore_client.batch()
        for item in showcases[start : start + 400]:
            batch.set(firestore_client.collection("characters").document(item.key), {"meta": {"userId": USER}})
        batch.commit()
    local = threading.local()

    def upload(item: Item) -> tuple[int, dict[str, Any]]:
        if not hasattr(local, "bucket"):
            local.bucket = storage_client_factory().bucket(BUCKET)
        blob = local.bucket.blob(item.path)
        blob.upload_from_string(item.data, content_type=item.content_type)
        return item.index, dict(blob._properties)

    with ThreadPoolExecutor(4) as pool:
        return dict(pool.map(upload, items))


def deliver(function_url: str, item: Item, resource: dict[str, Any], max_attempts: int) -> Delivery:
    """Post the event; after a 5xx (or a refused connection) redeliver with backoff, as Eventarc would."""
    delivery = Delivery(item)
    event_id, event_time = uuid.uuid4().hex, datetime.now(UTC)
    started = time.perf_counter()
    for attempt in range(max_attempts):
        try:
            status = emulators.deliver_finalized(function_url, resource, event_id, event_time)
        except OSError:
            status = 599
        delivery.statuses.append(status)
        if status < 500:
            break
        time.sleep(min(0.25 * 2**attempt, 4.0))
    delivery.seconds = time.perf_counter() - started
    return delivery


def check(delivery: Delivery, document: dict[str, Any] | None, objects: dict[str, dict[str, str]]) -> str | None:
    """None if the upload ended as expected; otherwise what is wrong (lost, stuck, wrong status, code or objects).

    `document` is the route's document (ours), `objects` the metadata of every object in the upload's folder."""
    if not delivery.statuses or delivery.statuses[-1] != 200:
        return f"not acknowledged: HTTP {delivery.statuses}"
    if delivery.item.route == EXTENSION_ROUTE:
        return check_extension(delivery.item, objects)
    return check_manifest(delivery.item, document)


def check_manifest(item: Item, document: dict[str, Any] | None) -> str | None:
    """A route of ours: its manifest settled as expected, a complete one with every variant in every format."""
    _, _, field_path, variants, formats = OURS[item.route]
    manifest: Any = document or {}
    for part in field_path.split("."):
        manifest = manifest.get(part) if isinstance(manifest, dict) else None
    if not manifest:
        return "lost: the document has no result"
    status = manifest.get("status")
    if status in ("finalizing", "removing-background"):
        return f"stuck in {status!r}"
    if status != item.expect_status:
        return f"ended {status!r}, expected {item.expect_status!r} ({manifest.get('error')})"
    if status == "failed":
        code = (manifest.get("error") or {}).get("code")
        return None if code == item.expect_code else f"failed with {manifest.get('error')}, expected {item.expect_code}"
    made = manifest.get("variants") or {}
    if len(made) != variants or any(set(variant.get("formats") or {}) != set(formats) for variant in made.values()):
        return f"complete without {variants} variants in {', '.join(formats)}"
    if item.route == "showcase" and not (document or {}).get("visuals", {}).get("showcaseImageUrl"):
        return "complete without the mirrored URL"
    if item.route == "cutout" and not manifest.get("cutout"):
        return "complete without the cutout record"
    return None


def check_extension(item: Item, objects: dict[str, dict[str, str]]) -> str | None:
    """The extension route: every output marked `resizedImage`, or for an invalid file none and a failed copy."""
    stem, suffix = item.file_name.rsplit(".", 1)
    outputs = {
        f"{item.folder}/thumbs/{stem}_{size}.{suffix if kind == 'false' else kind}"
        for size in EXTENSION_SIZES
        for kind in EXTENSION_TYPES
    }
    failed_copy = f"{item.folder}/failed/{item.file_name}"
    written = {name for name in objects if name != item.path}
    if item.expect_status == "complete":
        if written != outputs:
            return f"outputs {sorted(written)}, expected {sorted(outputs)}"
        unmarked = sorted(name for name in outputs if objects[name].get("resizedImage") != "true")
        return f"outputs without the resizedImage mark: {unmarked}" if unmarked else None
    if written != {failed_copy}:
        return f"objects {sorted(written)} after a failure, expected only {failed_copy}"
    return None if objects[failed_copy].get("resizeFailed") == "true" else "a failed copy without its resizeFailed mark"


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants, from /proc/*/task/*/children."""
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                pending.extend(int(child) for child in task.read_text().split())
            except OSError:
                continue
    return tree


def peak_rss_mib(pid: int) -> dict[str, float]:
    """VmHWM (peak resident set) of each process of the tree: the largest one and their sum, in MiB."""
    peaks = []
    for member in process_tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        peaks += [int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmHWM:")]
    return {"max": round(max(peaks, default=0), 1), "sum": round(sum(peaks), 1), "processes": len(peaks)}


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]


def run(args: argparse.Namespace) -> int:
    """Start the stack, upload, deliver, check and report."""
    items = workload(args.count, args.photos)
    model = flat_background_model(CutoutFamily.U2NET)
    with emulators.local_stack() as stack, tempfile.TemporaryDirectory() as scratch:
        os.environ.update(stack.client_env())
        emulators.create_bucket(stack.storage.url, BUCKET)
        routes = Path(scratch) / "routes.toml"
        routes.write_text(routes_toml(hashlib.sha256(model).hexdigest()))
        env = {**stack.client_env(), "CLIENT_TIMEOUT_S": "10", "CLIENT_RETRY_S": "5", "ROUTES_FILE": str(routes)}
        function = emulators.start_function(env, threads=args.threads)
        stack.services.append(function)
        from google.cloud import firestore, storage

        firestore_client = firestore.Client()
        storage_client = storage.Client()
        storage_client.bucket(BUCKET).blob(MODEL_OBJECT).upload_from_string(model, "application/octet-stream")
        resources = seed_and_upload(items, firestore_client, storage.Client)
        deadline = time.monotonic() + args.timeout
        started = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            futures = [
                pool.submit(deliver, function.url, item, resources[item.index], args.max_attempts) for item in items
            ]
            deliveries = [future.result(timeout=max(1.0, deadline - time.monotonic())) for future in futures]
        elapsed = time.perf_counter() - started
        rss = peak_rss_mib(function.process.pid)
        references = [firestore_client.document(document_path(item)) for item in items if item.route in OURS]
        documents = {snapshot.reference.path: snapshot.to_dict() for snapshot in firestore_client.get_all(references)}
        objects: dict[str, dict[str, dict[str, str]]] = {}
        for blob in storage_client.list_blobs(BUCKET, prefix="ext-uploads/"):
            objects.setdefault("/".join(blob.name.split("/")[:2]), {})[blob.name] = blob.metadata or {}
        log_text = function.log_tail(50_000_000)
    problems = {
        d.item.index: problem
        for d in deliveries
        if (problem := check(d, documents.get(document_path(d.item)), objects.get(d.item.folder, {})))
    }
    latencies = [d.seconds for d in deliveries]
    summary = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "events": len(items),
        "complete": sum(1 for d in deliveries if d.item.expect_status == "complete" and d.item.index not in problems),
        "failed_as_expected": sum(
            1 for d in deliveries if d.item.expect_status == "failed" and d.item.index not in problems
        ),
        "problems": len(problems),
        "as_expected_by_route": {
            route: f"{sum(1 for i in items if i.route == route and i.index not in problems)}/"
            f"{sum(1 for i in items if i.route == route)}"
            for route in ROUTE_NAMES
        },
        "concurrency": args.concurrency,
        "threads": args.threads,
        "photos": sum(
            1 for item in items if not item.file_name.startswith("gen_") and item.expect_status == "complete"
        ),
        "upload_mib": round(sum(len(item.data) for item in items) / 2**20, 1),
        "wall_s": round(elapsed, 2),
        "events_per_s": round(len(items) / elapsed, 2),
        "p50_s": round(percentile(latencies, 0.50), 3),
        "p95_s": round(percentile(latencies, 0.95), 3),
        "p99_s": round(percentile(latencies, 0.99), 3),
        "max_s": round(max(latencies), 3),
        "mean_s": round(statistics.fmean(latencies), 3),
        "redeliveries": sum(len(d.statuses) - 1 for d in deliveries),
        "peak_rss_mib": rss["max"],
        "peak_rss_tree_mib": rss["sum"],
        "tracebacks_in_log": log_text.count("Traceback"),
    }
    print_table(summary, problems, items)
    print(json.dumps(summary))
    return 1 if problems else 0


def routes_toml(model_sha256: str) -> str:
    """The routes file: ROUTES with the model's object and checksum and the extension route's sizes and types."""
    return (
        ROUTES.replace("MODEL_OBJECT", MODEL_OBJECT)
        .replace("MODEL_SHA256", model_sha256)
        .replace("EXTENSION_SIZES", ",".join(EXTENSION_SIZES))
        .replace("EXTENSION_TYPES", ",".join(EXTENSION_TYPES))
    )


def document_path(item: Item) -> str:
    """The document a route of ours records the upload in ("" for the extension route, which records none)."""
    return OURS[item.route][1].format(key=item.key) if item.route in OURS else ""


def print_table(summary: dict[str, Any], problems: dict[int, str], items: list[Item]) -> None:
    """A readable table of the figures, then each problem."""
    width = max(len(key) for key in summary)
    for key, value in summary.items():
        print(f"{key:<{width}}  {value}")
    for index, problem in sorted(problems.items()):
        print(f"PROBLEM {items[index].path}: {problem}")


def main() -> int:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="uploads (default 200)")
    parser.add_argument("--concurrency", type=int, default=8, help="events in flight (default 8)")
    parser.add_argument("--threads", type=int, default=8, help="functions-framework THREADS (default 8)")
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS if DEFAULT_PHOTOS.is_dir() else None)
    parser.add_argument("--max-attempts", type=int, default=6, help="deliveries per event at most (default 6)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds for the whole delivery phase (default 900)")
    args = parser.parse_args()
    if not 1 <= args.count <= 5000 or not 1 <= args.concurrency <= 64:
        parser.error("--count must be 1-5000 and --concurrency 1-64")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
