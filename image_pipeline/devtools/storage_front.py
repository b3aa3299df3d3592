"""The dev loop's Storage port: one address for both Storage APIs an app uses.

fake-gcs-server listens on an internal port; this front listens on the port `dev` prints. It serves Firebase's
client API (`/v0/...`, firebase_storage.py) itself, with the CORS a web app's page needs, and forwards every other
request to fake-gcs-server unchanged (the Cloud Storage JSON API of the Admin SDKs, google-cloud-storage, gsutil).
Standard library only; one thread per connection.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BufferedIOBase
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from image_pipeline.devtools.emulators import LOCALHOST, EmulatorError
from image_pipeline.devtools.firebase_storage import Answer, ApiError, FirebaseStorage, Request, Upstream

_log = logging.getLogger(__name__)

# Headers that belong to one connection, never forwarded; the length is recomputed for the body as sent.
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding",
     "upgrade", "expect", "content-length"}
)  # fmt: skip
# What a page's script may read of a /v0 answer: the resumable protocol's headers (the SDKs read them).
EXPOSED = (
    "X-Goog-Upload-URL",
    "X-Goog-Upload-Status",
    "X-Goog-Upload-Size-Received",
    "X-Goog-Upload-Chunk-Granularity",
    "Content-Range",
)
# Asked for when a preflight names no headers: what the SDKs send.
_SDK_HEADERS = (
    "Authorization, Content-Type, Range, X-Firebase-Storage-Version, X-Firebase-GMPID, X-Firebase-AppCheck, "
    "X-Goog-Upload-Protocol, X-Goog-Upload-Command, X-Goog-Upload-Offset, X-Goog-Upload-Header-Content-Length, "
    "X-Goog-Upload-Header-Content-Type, X-HTTP-Method-Override"
)
_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"


def is_firebase_path(path: str) -> bool:
    """Whether a request path belongs to Firebase's client API."""
    return path == "/v0" or path.startswith("/v0/")


def preflight(requested_headers: str | None) -> Answer:
    """The answer to a browser's CORS preflight for a /v0 call: any origin, the SDKs' methods, the headers asked."""
    return Answer(
        204,
        (
            ("Access-Control-Allow-Origin", "*"),
            ("Access-Control-Allow-Methods", _METHODS),
            ("Access-Control-Allow-Headers", requested_headers or _SDK_HEADERS),
            ("Access-Control-Max-Age", "3600"),
        ),
    )


def with_cors(answer: Answer) -> Answer:
    """A /v0 answer a page from any origin may read, resumable headers included."""
    cors = (("Access-Control-Allow-Origin", "*"), ("Access-Control-Expose-Headers", ", ".join(EXPOSED)))
    return Answer(answer.status, (*answer.headers, *cors), answer.body)


def read_chunked(stream: BufferedIOBase) -> bytes:
    """A request body sent with Transfer-Encoding: chunked (Node clients stream uploads so)."""
    body = bytearray()
    while True:
        size = int(stream.readline().split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while stream.readline() not in (b"\r\n", b"\n", b""):  # trailers, then the blank line
                pass
            return bytes(body)
        body += stream.read(size)
        stream.readline()


def forwarded(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The end-to-end headers of a request or an answer, in order."""
    return [(name, value) for name, value in headers if name.lower() not in _HOP_BY_HOP]


def make_handler(api: FirebaseStorage, upstream: Upstream, own_origin: str) -> type[BaseHTTPRequestHandler]:
    """The handler class: /v0 answered by `api`, the rest forwarded to `upstream`."""

    class FrontHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the SDKs and browsers reuse connections
        timeout = 300  # an idle kept-alive connection's thread ends after this
        server_version = "image-pipeline-storage-front"

        def do_GET(self) -> None:
            self._handle()

        do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

        def _handle(self) -> None:
            url = urlsplit(self.path)
            try:
                body = self._body()
                if not is_firebase_path(url.path):
                    answer = upstream.call(self.command, self.path, body, forwarded(self.headers.items()))
                elif self.command == "OPTIONS":
                    answer = preflight(self.headers.get("Access-Control-Request-Headers"))
                else:
                    request = Request(
                        self.command,
                        url.path,
                        dict(parse_qsl(url.query, keep_blank_values=True)),
                        {name.lower(): value for name, value in self.headers.items()},
                        body,
                    )
                    host = self.headers.get("Host")
                    answer = with_cors(api.handle(request, f"http://{host}" if host else own_origin))
            except ApiError as error:
                answer = with_cors(error.answer())
            except OSError as error:
                _log.warning("storage front: fake-gcs-server did not answer %s %s: %s", self.command, self.path, error)
                answer = with_cors(ApiError(502, f"fake-gcs-server did not answer: {error}").answer())
            self._send(answer)

        def _body(self) -> bytes:
            """The request's body; ApiError 400 when its framing is malformed."""
            try:
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    return read_chunked(self.rfile)
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                self.close_connection = True  # what follows on the connection cannot be found
                raise ApiError(400, "the request's Content-Length or chunked framing is malformed") from None
            return self.rfile.read(length) if length > 0 else b""

        def _send(self, answer: Answer) -> None:
            self.send_response_only(answer.status)
            for name, value in forwarded(answer.headers):
                self.send_header(name, value)
            if self.command == "HEAD":
                length = answer.header("Content-Length")
                if length is not None:
                    self.send_header("Content-Length", length)
            elif answer.status >= 200 and answer.status not in (204, 304):
                self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer.body)

        def log_message(self, format: str, *args: Any) -> None:
            # Every request at debug level: an app's uploads would otherwise fill dev's stderr.
            _log.debug("storage front: " + format, *args)

    return FrontHandler


class StorageFront:
    """The front, serving in a thread on 127.0.0.1:`port` until stopped."""

    def __init__(self, port: int, upstream: Upstream) -> None:
        self.port = port
        try:
            self._server = ThreadingHTTPServer(
                (LOCALHOST, port), make_handler(FirebaseStorage(upstream), upstream, self.url)
            )
        except OSError as error:
            raise EmulatorError(f"the Storage port {port} cannot be listened on: {error}") from None
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="storage-front", daemon=True).start()

    @property
    def url(self) -> str:
        """Where clients reach both APIs: STORAGE_EMULATOR_HOST."""
        return f"http://{LOCALHOST}:{self.port}"

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self._server.shutdown()
        self._server.server_close()
