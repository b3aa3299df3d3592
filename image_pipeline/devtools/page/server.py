"""The local page's HTTP handler: the static page, the configured routes, uploads as an app makes them, documents,
and the feed of every upload the relay delivers, whoever made it.

The browser talks only to this server; it talks to the emulators (fake-gcs-server's JSON API, the Firestore
emulator's REST API) on the browser's behalf, so neither needs CORS. Standard library only.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

from image_pipeline.devtools import emulators
from image_pipeline.devtools.demo_upload import DemoUpload, demo_folder
from image_pipeline.devtools.feed import FeedEntry, UploadFeed
from image_pipeline.uploads import Upload, classify

if TYPE_CHECKING:
    from image_pipeline.devtools.stack import StackInfo
    from image_pipeline.ports import DocumentStore
    from image_pipeline.routes import Route

_log = logging.getLogger(__name__)

PAGE_DIR = Path(__file__).resolve().parent
# The files the page is made of, by URL path: nothing else under the package is served.
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/page.css": ("page.css", "text/css; charset=utf-8"),
    "/hashes.js": ("hashes.js", "text/javascript; charset=utf-8"),
    "/page.js": ("page.js", "text/javascript; charset=utf-8"),
}
MAX_UPLOAD_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class PageUpload:
    """Where one dropped file goes for a route, and the document it updates."""

    route: str
    object_name: str
    document: str
    field: str
    generation: str
    seeded: bool  # whether the page created the document the route requires

    def as_json(self) -> dict[str, Any]:
        """The upload endpoint's answer."""
        return {
            "route": self.route,
            "object": self.object_name,
            "document": self.document,
            "field": self.field,
            "generation": self.generation,
            "seeded": self.seeded,
        }


class PageBackend:
    """What the page's endpoints do, against the stack `info` describes."""

    def __init__(
        self, info: StackInfo, documents: DocumentStore, deliver_events: bool = False, feed: UploadFeed | None = None
    ) -> None:
        # deliver_events: post the finalize CloudEvent to the function after each upload, for a stack whose storage
        # emulator publishes no notifications (the tests' stack); `dev`'s relay does it otherwise, reporting every
        # event it delivers to `feed` (None: no relay, the page lists only what is dropped on it).
        self.info = info
        self.deliver_events = deliver_events
        self.routes: dict[str, Route] = {route.name: route for route in info.settings.routes}
        self.documents = documents
        self.feed = feed

    def routes_json(self) -> dict[str, Any]:
        """The configured routes, where the page uploads for each (capture values as the demo's), whether a feed."""
        listed = [
            {
                "name": route.name,
                "match": route.match.text,
                "document": route.document.text,
                "field": route.field,
                "missing": route.missing.value,
                "require": {path: template.text for path, template in route.require.items()},
                "folder": demo_folder(route),
                "formats": [encoding.format.value for encoding in route.imaging.encodings],
                "variants": {variant.name: list(variant.box) for variant in route.imaging.variants},
                "cutout": route.cutout is not None,
            }
            for route in self.routes.values()
        ]
        return {
            "project": self.info.project,
            "bucket": self.info.bucket,
            "routes": listed,
            "feed": self.feed is not None,
        }

    def upload(self, route_name: str, file_name: str, content_type: str, data: bytes) -> PageUpload:
        """Create the document the route requires (unless it creates its own), then upload as the app would."""
        route = self.routes.get(route_name)
        if route is None:
            raise LookupError(f"no route named {route_name!r}")
        plan = DemoUpload.of(route, Path(file_name).name, self.info.settings.routes)
        plan.seed_document(self.documents)
        resource = self._store(plan.name, content_type, data)
        if self.deliver_events:
            threading.Thread(target=self._deliver, args=(resource,), daemon=True).start()
        return PageUpload(
            route.name, plan.name, plan.document, route.field, str(resource["generation"]), plan.seed is not None
        )

    def uploads_json(self, since: int) -> dict[str, Any]:
        """The events whose delivery changed after change number `since`, oldest first, and the latest change."""
        if self.feed is None:
            return {"change": since, "uploads": []}
        page = self.feed.since(since)
        return {"change": page.change, "uploads": [self._upload_json(entry, page.now) for entry in page.entries]}

    def _upload_json(self, entry: FeedEntry, now: float) -> dict[str, Any]:
        """One event as the page lists it: the object, where its route records it (or why it is skipped), delivery."""
        data = entry.event.data
        name, generation = str(data.get("name")), str(data.get("generation"))
        found = classify(entry.event.id, None, dict(data), self.info.settings.routes)
        where = (
            {"route": found.route.name, "document": found.document, "field": found.route.field}
            if isinstance(found, Upload)
            else {"skipped": found.reason}
        )
        return {
            "id": entry.event.id,
            "object": name,
            "generation": generation,
            "ageS": round(now - entry.received_at, 3),
            # The browser loads it from fake-gcs-server directly, as it does the variants: an <img> needs no CORS.
            "originalUrl": f"{self.info.storage_url}/storage/v1/b/{quote(self.info.bucket, safe='')}/o/"
            f"{quote(name, safe='')}?alt=media&generation={quote(generation)}",
            "delivery": {
                "state": entry.state.value,
                "status": entry.status,
                "attempts": entry.attempts,
                "seconds": entry.seconds,
                "retryInS": entry.retry_in_s,
            },
            **where,
        }

    def document(self, path: str) -> Mapping[str, Any] | None:
        """The document's fields, or None while it does not exist."""
        return self.documents.get(path)

    def _store(self, name: str, content_type: str, data: bytes) -> dict[str, Any]:
        """A simple media upload through the Storage JSON API; the object resource it answers."""
        url = (
            f"{self.info.storage_url}/upload/storage/v1/b/{quote(self.info.bucket, safe='')}/o"
            f"?uploadType=media&name={quote(name, safe='')}"
        )
        answer = emulators.request("POST", url, data, {"Content-Type": content_type})
        resource: dict[str, Any] = json.loads(answer)
        return resource

    def _deliver(self, resource: Mapping[str, object]) -> None:
        """Post the finalize event as Eventarc would, redelivering a few times after a 5xx."""
        event_id, event_time = uuid.uuid4().hex, datetime.now(UTC)
        for _ in range(3):
            if emulators.deliver_finalized(self.info.function_url, resource, event_id, event_time) < 500:
                return
        _log.warning("the function kept failing event %s for %s", event_id, resource.get("name"))


def make_handler(
    info: StackInfo, documents: DocumentStore, deliver_events: bool = False, feed: UploadFeed | None = None
) -> type[BaseHTTPRequestHandler]:
    """The request handler class serving the page for the stack `info` describes (documents, the relay's feed)."""
    backend = PageBackend(info, documents, deliver_events, feed)

    class PageHandler(BaseHTTPRequestHandler):
        server_version = "image-pipeline-page"

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            if url.path in STATIC:
                name, content_type = STATIC[url.path]
                self._send(HTTPStatus.OK, (PAGE_DIR / name).read_bytes(), content_type)
            elif url.path == "/api/routes":
                self._json(HTTPStatus.OK, backend.routes_json())
            elif url.path == "/api/document" and query.get("path"):
                self._answer(lambda: {"data": backend.document(query["path"][0])})
            elif url.path == "/api/uploads":
                since = (query.get("since") or ["0"])[0]
                if since.isdigit():
                    self._json(HTTPStatus.OK, backend.uploads_json(int(since)))
                else:
                    self._json(HTTPStatus.BAD_REQUEST, {"error": "GET /api/uploads?since=CHANGE (a whole number)"})
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"nothing at {url.path}"})

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            if url.path != "/api/upload" or not query.get("route") or not query.get("name"):
                self._json(HTTPStatus.NOT_FOUND, {"error": "POST /api/upload?route=NAME&name=FILE"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_UPLOAD_BYTES:
                self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"{length} bytes: empty or too large"})
                return
            data = self.rfile.read(length)
            content_type = self.headers.get("Content-Type") or "application/octet-stream"
            self._answer(lambda: backend.upload(query["route"][0], query["name"][0], content_type, data).as_json())

        def _answer(self, work: Callable[[], dict[str, Any]]) -> None:
            """Answer with what `work` returns, or its failure as a JSON error the page shows."""
            from image_pipeline.errors import ConfigurationError

            try:
                self._json(HTTPStatus.OK, work())
            except (LookupError, ConfigurationError) as error:
                self._json(HTTPStatus.BAD_REQUEST, {"error": str(error)})
            except emulators.EmulatorError as error:
                self._json(HTTPStatus.BAD_GATEWAY, {"error": str(error)})

        def _json(self, status: HTTPStatus, body: Mapping[str, Any]) -> None:
            # Timestamps (and any other client type) as their text, as the page shows them.
            text = json.dumps(body, ensure_ascii=False, default=str)
            self._send(status, text.encode(), "application/json; charset=utf-8")

        def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            # Requests go to the debug log, not to stderr line by line: the page polls several times a second.
            _log.debug("page: " + format, *args)

    return PageHandler
