"""End-to-end latency on the local stack: event posted (Eventarc-style) -> document 'complete'.

Run from the repository root: `python benchmarks/bench_e2e.py [IMAGE ...]`. Without arguments it uses generated
images. Each image is uploaded and processed RUNS times (a new generation each time); prints one JSON line per image.
"""

from __future__ import annotations

import io
import json
import mimetypes
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from image_pipeline.devtools import emulators

BUCKET = "bench.appspot.com"
RUNS = 3


def generated() -> dict[str, tuple[bytes, str]]:
    """Synthetic photos of a few sizes: name -> (bytes, content type)."""
    from PIL import Image, ImageDraw

    images = {}
    for width, height, fmt in ((640, 480, "JPEG"), (1600, 1200, "JPEG"), (4000, 3000, "JPEG"), (2048, 2048, "PNG")):
        image = Image.radial_gradient("L").resize((width, height)).convert("RGB")
        ImageDraw.Draw(image).ellipse((width // 5, height // 5, width // 2, height // 2), fill=(200, 60, 30))
        out = io.BytesIO()
        image.save(out, fmt, quality=88) if fmt == "JPEG" else image.save(out, fmt)
        images[f"generated_{width}x{height}.{fmt.lower()}"] = (out.getvalue(), f"image/{fmt.lower()}")
    return images


def from_files(paths: list[str]) -> dict[str, tuple[bytes, str]]:
    """The given image files: name -> (bytes, content type)."""
    return {
        Path(p).name: (Path(p).read_bytes(), mimetypes.guess_type(p)[0] or "application/octet-stream") for p in paths
    }


def measure(function_url: str, bucket, characters, name: str, data: bytes, content_type: str) -> float:
    """Upload once, deliver the event, and return seconds until the document says 'complete'."""
    character = uuid.uuid4().hex
    characters.document(character).set({"meta": {"userId": "bench"}})
    blob = bucket.blob(f"raw-uploads/bench/{character}/{name}")
    blob.upload_from_string(data, content_type=content_type)
    started = time.perf_counter()
    status = emulators.deliver_finalized(function_url, dict(blob._properties), uuid.uuid4().hex, datetime.now(UTC))
    while characters.document(character).get().to_dict()["visuals"]["showcaseProcessingStatus"] == "finalizing":
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    state = characters.document(character).get().to_dict()["visuals"]["showcaseProcessingStatus"]
    if status != 200 or state != "complete":
        raise RuntimeError(f"{name}: HTTP {status}, status {state}")
    return elapsed


def main() -> None:
    """Start the stack and the function, warm it up with one event, then measure every image."""
    images = from_files(sys.argv[1:]) if len(sys.argv) > 1 else generated()
    with emulators.local_stack() as stack:
        os.environ.update(stack.client_env())
        emulators.create_bucket(stack.storage.url, BUCKET)
        function = emulators.start_function(stack.client_env())
        stack.services.append(function)
        from google.cloud import firestore, storage

        bucket = storage.Client().bucket(BUCKET)
        characters = firestore.Client().collection("characters")
        first_name, (first_data, first_type) = next(iter(images.items()))
        cold = measure(function.url, bucket, characters, first_name, first_data, first_type)
        print(json.dumps({"cold_first_event_s": round(cold, 3), "image": first_name}), flush=True)
        for name, (data, content_type) in images.items():
            samples = [measure(function.url, bucket, characters, name, data, content_type) for _ in range(RUNS)]
            timings = {
                "image": name,
                "bytes": len(data),
                "median_s": round(statistics.median(samples), 3),
                "min_s": round(min(samples), 3),
                "max_s": round(max(samples), 3),
            }
            print(json.dumps(timings), flush=True)


if __name__ == "__main__":
    main()
