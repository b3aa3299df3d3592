"""Helpers for the end-to-end tests.

Eventarc-style deliveries, the real Storage and Firestore state, test images (the fault proxy is in faultproxy.py).
"""

from __future__ import annotations

import io
import json
import random
import struct
import time
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from google.cloud import firestore, storage
from PIL import Image, ImageDraw

from image_pipeline.devtools import emulators
from image_pipeline.ports import TOKEN_METADATA_KEY
from tests.faultproxy import FaultProxy  # noqa: F401  (the storage_proxy fixture builds it from here)

BUCKET = "demo-image-pipeline.appspot.com"


def photo(width: int = 1600, height: int = 1200, fmt: str = "JPEG") -> bytes:
    """A gradient with shapes, encoded in `fmt`: cheap to make, meaningful to resize."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    draw = ImageDraw.Draw(image)
    draw.ellipse((width // 4, height // 4, width // 2, height // 2), fill=(220, 40, 40))
    draw.rectangle((width // 2, height // 2, width * 7 // 8, height * 7 // 8), fill=(40, 90, 220))
    out = io.BytesIO()
    image.save(out, fmt, quality=85) if fmt == "JPEG" else image.save(out, fmt)
    return out.getvalue()


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A tiny PNG that declares a huge canvas: a decompression bomb the core must refuse."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


@dataclass
class Backend:
    """The real services of one test: fake-gcs-server, the Firestore emulator and the served function."""

    function_url: str
    function_log: Path
    storage_url: str
    storage_client: storage.Client
    firestore_client: firestore.Client
    collection: str = "characters"

    @property
    def bucket(self) -> storage.Bucket:
        """The bucket the function is triggered for."""
        return self.storage_client.bucket(BUCKET)

    def seed_character(self, character_id: str, owner: str, **fields: Any) -> None:
        """Create `characters/{id}` owned by `owner`."""
        self.firestore_client.collection(self.collection).document(character_id).set(
            {"meta": {"userId": owner}, **fields}
        )

    def document(self, character_id: str) -> dict[str, Any] | None:
        """The character document as stored, or None."""
        snapshot = self.firestore_client.collection(self.collection).document(character_id).get()
        return snapshot.to_dict() if snapshot.exists else None

    def upload(
        self,
        name: str,
        data: bytes,
        content_type: str = "image/jpeg",
        metadata: dict[str, str] | None = None,
        content_encoding: str | None = None,
    ) -> dict[str, Any]:
        """Upload like the app does and return the object resource, as the event carries it."""
        blob = self.bucket.blob(name)
        blob.metadata = metadata
        blob.content_encoding = content_encoding
        blob.upload_from_string(data, content_type=content_type)
        return dict(blob._properties)

    def deliver(self, resource: dict[str, Any], event_id: str | None = None, age: timedelta = timedelta(0)) -> int:
        """POST a binary-mode CloudEvent exactly as Eventarc does; return the HTTP status."""
        event_time = datetime.now(UTC) - age
        return emulators.deliver_finalized(self.function_url, resource, event_id or uuid.uuid4().hex, event_time)

    def deliver_as_eventarc(self, resource: dict[str, Any], event_id: str, attempts: int = 4) -> int:
        """Deliver, and redeliver after a 5xx with jittered backoff as Eventarc does; the last status.

        The Firestore emulator locks pessimistically and aborts transactions racing on one document only after a
        10 s lock timeout (Firestore aborts one at once); jitter keeps the retries from racing in lockstep again.
        """
        jitter = random.Random(event_id)
        for attempt in range(attempts):
            status = self.deliver(resource, event_id)
            if status < 500:
                return status
            time.sleep(jitter.uniform(0.2, 1.0) * (attempt + 1))
        return status

    def objects(self, prefix: str) -> dict[str, storage.Blob]:
        """The stored objects under `prefix`, by name."""
        return {blob.name: blob for blob in self.storage_client.list_blobs(BUCKET, prefix=prefix)}

    def download_url(self, url: str) -> requests.Response:
        """GET a URL recorded in the document."""
        return requests.get(url, timeout=10)

    def summary_lines(self, event_id: str) -> list[dict[str, Any]]:
        """The function's JSON log lines about one event."""
        lines = self.function_log.read_text(errors="replace").splitlines()
        records = [json.loads(line) for line in lines if line.startswith("{") and event_id in line]
        return [record for record in records if record.get("eventId") == event_id]

    def wipe(self) -> None:
        """Delete every object in the bucket (the Firestore wipe is done through the emulator's REST API)."""
        for blob in self.storage_client.list_blobs(BUCKET):
            blob.delete()


def token_of(blob: storage.Blob) -> str:
    """The Firebase download token stored on an object."""
    return (blob.metadata or {})[TOKEN_METADATA_KEY]
