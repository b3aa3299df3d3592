"""A local stand-in for the Eventarc Publishing API, checking requests as the Firebase Eventarc emulator does.

It accepts `POST /projects/P/locations/L/channels/C:publishEvents` on 127.0.0.1 (a free port), answers 400 when the
body is not JSON with an `events` list or when an event lacks a `type` (as the emulator does), records what it
accepted, and can be told to answer a status instead (503, 400, ...) or to stall until it is closed. The `eventarc`
fixture (conftest.py) closes it after each test.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOST = "127.0.0.1"
PUBLISH_PATH = re.compile(r"/projects/([^/]+)/locations/([^/]+)/channels/([^/:]+):publishEvents")
# A stalled request gives up after this long even if nobody closes the stub.
STALL_LIMIT_S = 30.0


@dataclass(frozen=True)
class Received:
    """One request as it arrived, and the status it was answered."""

    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    status: int


@dataclass(frozen=True)
class Published:
    """One accepted request: the channel it named and its events."""

    channel: str
    events: list[dict[str, Any]]


class EventarcStub:
    """The stand-in server; `url` is its base URL, the value CLOUD_EVENTARC_EMULATOR_HOST takes."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.published: list[Published] = []
        self._answers: list[int] = []
        self._stalls = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._closed = False
        self._server = ThreadingHTTPServer((HOST, 0), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://{HOST}:{self.port}"
        # A short poll, so that closing (after every test) takes milliseconds rather than half a second.
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def answer(self, *statuses: int) -> None:
        """Answer the next requests with these statuses, in order, instead of checking and recording them."""
        with self._lock:
            self._answers.extend(statuses)

    def stall(self, requests: int = 1) -> None:
        """Leave the next `requests` unanswered until the stub is closed (a timeout for the client)."""
        with self._lock:
            self._stalls += requests

    def forget(self) -> None:
        """Drop what was received so far (a stub shared by a module's tests starts each one empty)."""
        with self._lock:
            self.received.clear()
            self.published.clear()

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every accepted event, in the order they arrived."""
        return [event for published in self.published for event in published.events]

    def close(self) -> None:
        """Stop serving: connections are refused from now on. Closing again does nothing."""
        if not self._closed:
            self._closed = True
            self._closing.set()
            self._server.shutdown()
            self._server.server_close()

    def _decide(self, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """The status and JSON answer for one request; accepted events are recorded."""
        with self._lock:
            scripted = self._answers.pop(0) if self._answers else None
        if scripted is not None:
            return scripted, _error(scripted, f"scripted answer {scripted}")
        match = PUBLISH_PATH.fullmatch(path)
        if match is None:
            return 404, _error(404, f"no such method: {path}")
        try:
            parsed = json.loads(body)
        except ValueError:
            return 400, _error(400, "the body is not JSON")
        events = parsed.get("events") if isinstance(parsed, dict) else None
        if not isinstance(events, list):
            return 400, _error(400, "the body has no events list")
        if not all(isinstance(event, dict) and event.get("type") for event in events):
            return 400, _error(400, "an event has no type")
        channel = f"projects/{match[1]}/locations/{match[2]}/channels/{match[3]}"
        with self._lock:
            self.published.append(Published(channel, events))
        return 200, {}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with stub._lock:
                    stalled = stub._stalls > 0
                    if stalled:
                        stub._stalls -= 1
                if stalled:
                    stub._closing.wait(STALL_LIMIT_S)
                    return
                status, answer = stub._decide(self.path, body)
                headers = {name.lower(): value for name, value in self.headers.items()}
                with stub._lock:
                    stub.received.append(Received(self.path, headers, body, status))
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler


def _error(status: int, message: str) -> dict[str, Any]:
    """A Google API error body."""
    return {"error": {"code": status, "message": message}}
