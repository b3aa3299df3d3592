"""Cold against warm on the local stack: a fresh function process per sample, its first event, then warm events.

Run from the repository root: `python benchmarks/bench_e2e.py [--samples 5] [--warm 3] [--image FILE]
[--routes FILE --route NAME] [--gap S] [--env NAME=VALUE ...] [--versus NAME=VALUE ...]`.
Without --image it generates an 8 MP photo-like JPEG. --versus alternates a second configuration with the first.

Per sample, one fresh functions-framework process (gunicorn, as deployed) serves:
- the first event posted the moment its port accepts connections (as a cold start's triggering event arrives),
  then --warm events of the same image: wall time from the POST to its answer (the function answers after the
  document is written), and the function's own `duration_ms` from its summary lines;
- in a second fresh process, one skipped event (our own output) at once: whether it waits for anything at start.
Then one fresh interpreter times each step of a first event on its own (the breakdown): imports (main, the imaging
core, the Google clients), client creation, the first Firestore RPC and Storage download (first connection), and
the first decode-to-encode, each beside its second run. Prints JSON lines: one per sample, then the medians.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from image_pipeline.commands.demo import BUCKET, DemoUpload  # noqa: E402
from image_pipeline.commands.routes import chosen_route  # noqa: E402
from image_pipeline.devtools import emulators  # noqa: E402
from image_pipeline.settings import Settings  # noqa: E402
from image_pipeline.usecase import field_value  # noqa: E402

SKIPPED_NAME = "showcase-images/bench/bench/bench-1-large.webp"


def photo_like_jpeg(width: int = 3264, height: int = 2448) -> bytes:
    """An 8 MP JPEG with a camera photo's entropy: smooth shapes under fine sensor-like noise, quality 90."""
    from PIL import Image, ImageDraw, ImageFilter

    base = Image.radial_gradient("L").resize((width, height))
    colour = Image.merge("RGB", (base, base.transpose(Image.Transpose.FLIP_LEFT_RIGHT), base.rotate(90)))
    draw = ImageDraw.Draw(colour)
    for index in range(12):
        left, top = (index * 397) % width, (index * 233) % height
        draw.ellipse((left, top, left + width // 4, top + height // 5), fill=(40 + index * 17, 200 - index * 11, 90))
    colour = colour.filter(ImageFilter.GaussianBlur(6))
    noise = Image.merge("RGB", [Image.effect_noise((width, height), 24 + 4 * band) for band in range(3)])
    photo = Image.blend(colour, noise, 0.22)
    out = io.BytesIO()
    photo.save(out, "JPEG", quality=90)
    return out.getvalue()


def read_image(path: str | None) -> tuple[str, bytes, str]:
    """(file name, bytes, content type) of --image, or of the generated photo."""
    if path is None:
        return "bench.jpg", photo_like_jpeg(), "image/jpeg"
    import mimetypes

    return Path(path).name, Path(path).read_bytes(), mimetypes.guess_type(path)[0] or "application/octet-stream"


class Uploader:
    """Uploads the image where the chosen route takes it (a new object per event) and checks the manifest."""

    def __init__(self, plan: DemoUpload, data: bytes, content_type: str) -> None:
        from google.cloud import firestore, storage

        self.plan = plan
        self.data = data
        self.content_type = content_type
        self.bucket = storage.Client().bucket(BUCKET)
        self.documents = firestore.Client()

    def upload(self) -> dict[str, Any]:
        """A new object (fresh name) under the route's folder, its document seeded as the app would."""
        if self.plan.seed is not None:
            self.documents.document(self.plan.document).set(dict(self.plan.seed))
        folder, _, file_name = self.plan.name.rpartition("/")
        stem, _, extension = file_name.rpartition(".")
        blob = self.bucket.blob(f"{folder}/{stem}-{uuid.uuid4().hex[:8]}.{extension}")
        blob.upload_from_string(self.data, content_type=self.content_type)
        return dict(blob._properties)

    def status(self) -> str | None:
        """The manifest's status in the route's document."""
        document = self.documents.document(self.plan.document).get().to_dict() or {}
        return (field_value(document, self.plan.route.field) or {}).get("status")


def post(function_url: str, resource: dict[str, Any]) -> tuple[float, int]:
    """Deliver one finalized event; (seconds until the function answered, HTTP status)."""
    started = time.perf_counter()
    status = emulators.deliver_finalized(function_url, resource, uuid.uuid4().hex, datetime.now(UTC))
    return time.perf_counter() - started, status


def processed(function_url: str, uploader: Uploader) -> float:
    """Upload, deliver and check: seconds until the function answered with the document complete."""
    elapsed, status = post(function_url, uploader.upload())
    state = uploader.status()
    if status != 200 or state != "complete":
        raise RuntimeError(f"HTTP {status}, manifest status {state!r}")
    return elapsed


def summary_durations_ms(service: emulators.Service) -> list[float]:
    """The function's own `duration_ms` of each event, in order, from its summary log lines."""
    durations = []
    for line in service.log_path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "outcome" in record and "duration_ms" in record:
            durations.append(float(record["duration_ms"]))
    return durations


def warm_up_ms(service: emulators.Service) -> float:
    """How long the process's background warm-up took (its log line), or -1 if it did not run."""
    for line in service.log_path.read_text(errors="replace").splitlines():
        if '"warmed up"' in line:
            return float(json.loads(line)["warmUpMs"])
    return -1.0


def started_function(env: dict[str, str]) -> tuple[emulators.Service, float]:
    """A fresh function process and the seconds from its spawn until its port accepted a connection."""
    started = time.perf_counter()
    service = emulators.start_function(env)
    return service, time.perf_counter() - started


def cold_sample(env: dict[str, str], uploader: Uploader, warm_events: int, gap_s: float) -> dict[str, Any]:
    """One fresh process: its first event at readiness (+ gap), then warm events of the same image."""
    resource = uploader.upload()
    service, ready_s = started_function(env)
    try:
        time.sleep(gap_s)
        first_s, status = post(service.url, resource)
        if status != 200 or uploader.status() != "complete":
            raise RuntimeError(f"first event: HTTP {status}\n{service.log_tail()}")
        warm = [processed(service.url, uploader) for _ in range(warm_events)]
        inside = summary_durations_ms(service)
    finally:
        service.stop()
    return {
        "ready_s": round(ready_s, 3),
        "first_s": round(first_s, 3),
        "warm_s": round(statistics.median(warm), 3),
        "first_minus_warm_s": round(first_s - statistics.median(warm), 3),
        "first_inside_ms": inside[0] if inside else None,
        "warm_inside_ms": statistics.median(inside[1:]) if len(inside) > 1 else None,
        "warm_up_ms": warm_up_ms(service),
    }


def skip_sample(env: dict[str, str]) -> dict[str, Any]:
    """One fresh process: a skipped event at readiness, then another; HTTP round trips in milliseconds."""
    resource = {"bucket": BUCKET, "name": SKIPPED_NAME, "generation": "1", "size": "10"}
    service, _ = started_function(env)
    try:
        first_s, _ = post(service.url, resource)
        second_s, _ = post(service.url, resource)
    finally:
        service.stop()
    return {"skip_first_ms": round(first_s * 1000, 1), "skip_second_ms": round(second_s * 1000, 1)}


PROBE = """
import json, sys, time
timings = {}
def timed(name, step):
    started = time.perf_counter()
    result = step()
    timings[name] = round((time.perf_counter() - started) * 1000, 1)
    return result
timed("import_main", lambda: __import__("main"))
import main
from image_pipeline import bootstrap
timed("import_imaging", lambda: __import__("image_pipeline.imaging"))
timed("import_clients", lambda: [__import__(f"image_pipeline.gateway.{name}") for name in ("storage", "firestore")])
dependencies = timed("create_clients", lambda: bootstrap.connect(main.SETTINGS))
bucket, name, generation, document = sys.argv[1:5]
for attempt in ("first", "second"):
    timed(f"firestore_rpc_{attempt}", lambda: dependencies.documents.get(document))
    data = timed(f"storage_download_{attempt}", lambda: dependencies.objects.download(bucket, name, int(generation)))
for attempt in ("first", "second"):
    timed(f"make_variants_{attempt}", lambda: dependencies.make_variants(data, main.SETTINGS.routes[0].imaging))
print(json.dumps(timings))
"""


def breakdown(env: dict[str, str], uploader: Uploader) -> dict[str, float]:
    """Each step of a first event timed in a fresh interpreter (milliseconds), next to its second run."""
    resource = uploader.upload()
    arguments = [resource["bucket"], resource["name"], str(resource["generation"]), uploader.plan.document]
    output = subprocess.run(
        [sys.executable, "-c", PROBE, *arguments],
        cwd=REPO,
        env={**os.environ, **env, "PYTHONPATH": str(REPO), "LOG_LEVEL": "WARNING"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def medians(rows: list[dict[str, Any]]) -> dict[str, float]:
    """The median of every numeric field across samples."""
    keys = [key for key in rows[0] if isinstance(rows[0][key], int | float)]
    return {key: round(statistics.median(row[key] for row in rows), 3) for key in keys}


def arguments() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5, help="fresh function processes (default 5)")
    parser.add_argument("--warm", type=int, default=3, help="warm events per process (default 3)")
    parser.add_argument("--image", help="an image file (default: a generated 8 MP photo-like JPEG)")
    parser.add_argument("--routes", help="a routes file for the function (ROUTES_FILE)")
    parser.add_argument("--route", help="the route to upload for (default: the first)")
    parser.add_argument("--gap", type=float, default=0.0, help="seconds between readiness and the first event")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="a setting for the function")
    parser.add_argument(
        "--versus",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="also measure with this setting, alternating with the other processes sample by sample",
    )
    return parser.parse_args()


def main() -> None:
    """Start the stack once, then a fresh function process per sample."""
    args = arguments()
    file_name, data, content_type = read_image(args.image)
    extra = dict(item.split("=", 1) for item in args.env)
    if args.routes:
        extra["ROUTES_FILE"] = str(Path(args.routes).resolve())
    with emulators.local_stack() as stack:
        env = {**stack.client_env(), **extra}
        os.environ.update(stack.client_env())
        emulators.create_bucket(stack.storage.url, BUCKET)
        settings = Settings.from_env({**os.environ, **extra})
        plan = DemoUpload.of(chosen_route(settings.routes, args.route), file_name, settings)
        uploader = Uploader(plan, data, content_type)
        print(json.dumps({"image": file_name, "bytes": len(data), "route": plan.route.name, "settings": extra}))
        versus = {**env, **dict(item.split("=", 1) for item in args.versus)}
        configurations = {"settings": env, "versus": versus} if args.versus else {"settings": env}
        rows: dict[str, list[dict[str, Any]]] = {label: [] for label in configurations}
        steps = []
        for _ in range(args.samples):
            for label, function_env in configurations.items():
                cold = cold_sample(function_env, uploader, args.warm, args.gap)
                rows[label].append({**cold, **skip_sample(function_env)})
                print(json.dumps({"configuration": label, **rows[label][-1]}), flush=True)
            steps.append(breakdown(env, uploader))
            print(json.dumps({"breakdown_ms": steps[-1]}), flush=True)
        for label, samples in rows.items():
            print(json.dumps({"configuration": label, "median": medians(samples)}))
        print(json.dumps({"median_breakdown_ms": medians(steps)}))


if __name__ == "__main__":
    main()
