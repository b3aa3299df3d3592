"""Helpers for the end-to-end tests: Eventarc-style deliveries, the real Storage and Firestore state, a fault proxy, test images."""

from __future__ import annotations

import http.client
import io
import json
import struct
import threading
import uuid
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
from google.cloud import firestore, storage
from PIL import Image, ImageDraw

from image_pipeline import emulators
from image_pipeline.ports import TOKEN_METADATA_KEY

BUCKET = "demo-image-pipeline.appspot.com"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


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
        self.firestore_client.collection(self.collection).document(character_id).set({"meta": {"userId": owner}, **fields})

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
        event_time = datetime.now(timezone.utc) - age
        return emulators.deliver_finalized(self.function_url, resource, event_id or uuid.uuid4().hex, event_time)

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


class FaultProxy:
    """An HTTP proxy in front of fake-gcs-server that answers 503 to everything while `failing` is set."""

    def __init__(self, upstream_port: int) -> None:
        self.failing = threading.Event()
        self.refused = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if proxy.failing.is_set():
                    proxy.refused += 1
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                upstream = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
                headers = {key: value for key, value in self.headers.items() if key.lower() not in HOP_BY_HOP}
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                payload = response.read()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                upstream.close()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_any

            def log_message(self, *args: Any) -> None:
                """Quiet: the test output is for assertions."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """Where clients should send Storage requests."""
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
