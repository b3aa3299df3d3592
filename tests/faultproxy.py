"""A fault-injecting HTTP proxy for the Storage emulator: rules pick requests by method and path, by position or by
chance, and answer them with an error status, a connection reset, a stall past the client's timeout or a body cut
midway."""

from __future__ import annotations

import http.client
import random
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}
UPSTREAM_TIMEOUT_S = 30
MAX_STALL_S = 60


class Fault(str, Enum):
    """What the proxy does to a request a rule picked."""

    STATUS = "status"  # answer `status` (503, 429, ...) without forwarding
    RESET = "reset"  # reset the connection without forwarding or answering
    STALL = "stall"  # answer nothing until released (past any client timeout), then reset; never forwarded
    HOLD = "hold"  # wait until released, then forward and answer normally: a slow backend the test controls
    CUT = "cut"  # forward, answer the headers and half the body, then reset
    CORRUPT = "corrupt"  # forward, answer with a few bytes of the body flipped (same length: damaged in transit)
    LOSE_RESPONSE = "lose_response"  # forward (the write happens), then reset instead of answering


@dataclass(frozen=True)
class Match:
    """Which requests a rule looks at: the method ('*' for any) and a regex searched in the request target."""

    method: str
    pattern: str

    def __call__(self, method: str, target: str) -> bool:
        """Whether a request with this method and target (path and query) matches."""
        return self.method in ("*", method) and re.search(self.pattern, target) is not None


ANY = Match("*", "")
DOWNLOAD = Match("GET", r"[?&]alt=media")
UPLOAD = Match("POST", r"^/upload/")
METADATA = Match("GET", r"^/storage/v1/b/[^/?]+/o/[^?]+(\?(?!.*alt=media).*)?$")


@dataclass
class Rule:
    """Inject `fault` into the `nth` matching requests (1-based), or else into a `fraction` of those after the first
    `skip`, at most `limit` times."""

    match: Match
    fault: Fault
    status: int = 503
    nth: frozenset[int] = frozenset()
    skip: int = 0
    fraction: float = 1.0
    limit: int | None = None
    seed: int = 0
    matched: int = 0
    injected: int = 0
    _random: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def pick(self, method: str, target: str) -> bool:
        """Count a request that matches and say whether to inject the fault into it."""
        if not self.match(method, target):
            return False
        self.matched += 1
        if self.matched <= self.skip or (self.limit is not None and self.injected >= self.limit):
            return False
        chosen = self.matched in self.nth if self.nth else self._random.random() < self.fraction
        self.injected += chosen
        return chosen


@dataclass(frozen=True)
class Seen:
    """One request the proxy handled, and what it did: 'forwarded' or the fault's value."""

    method: str
    target: str
    action: str


def flipped(payload: bytes) -> bytes:
    """The payload with every bit of a few bytes in its middle inverted."""
    middle = len(payload) // 2
    return payload[:middle] + bytes(byte ^ 0xFF for byte in payload[middle : middle + 8]) + payload[middle + 8 :]


class FaultProxy:
    """An HTTP proxy in front of fake-gcs-server; rules inject faults, `failing` answers 503 to everything while set."""

    def __init__(self, upstream_port: int) -> None:
        self.failing = threading.Event()
        self.refused = 0
        self.seen: list[Seen] = []
        self._rules: list[Rule] = []
        self._released = threading.Event()
        self._changed = threading.Condition()
        self._upstream_port = upstream_port
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._server.handle_error = lambda request, address: None  # resets are the point; no tracebacks
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """Where clients should send Storage requests."""
        return f"http://127.0.0.1:{self.port}"

    def inject(self, match: Match, fault: Fault, **options: Any) -> Rule:
        """Add a rule (checked in the order added; the first rule that picks a request applies) and return it."""
        rule = Rule(match, fault, **options)
        with self._changed:
            self._rules.append(rule)
        return rule

    def release(self) -> None:
        """Let every held or stalled request go on (held ones are forwarded, stalled ones reset)."""
        self._released.set()

    def reset(self) -> None:
        """Remove every rule, release what is held, stop failing and forget what was seen."""
        self.release()
        with self._changed:
            self._rules.clear()
            self.seen.clear()
            self._released = threading.Event()
        self.failing.clear()

    def wait_for(self, rule: Rule, injected: int = 1, timeout_s: float = 30) -> bool:
        """Block until `rule` has injected its fault `injected` times; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: rule.injected >= injected, timeout_s)

    def actions(self, match: Match = ANY) -> list[str]:
        """What was done to each matching request, in order."""
        with self._changed:
            return [seen.action for seen in self.seen if match(seen.method, seen.target)]

    def close(self) -> None:
        """Release everything and stop serving."""
        self.release()
        self._server.shutdown()
        self._server.server_close()

    def _decide(self, method: str, target: str) -> tuple[Rule | None, threading.Event]:
        """The rule whose fault applies to this request (None: forward it), recorded and announced to waiters."""
        with self._changed:
            chosen = next((rule for rule in self._rules if rule.pick(method, target)), None)
            self.seen.append(Seen(method, target, chosen.fault.value if chosen else "forwarded"))
            self._changed.notify_all()
            return chosen, self._released

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        """The request handler, bound to this proxy."""
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if proxy.failing.is_set():
                    proxy.refused += 1
                    self._answer(503, b"")
                    return
                rule, released = proxy._decide(self.command, self.path)
                fault = rule.fault if rule else None
                if fault is Fault.STATUS:
                    message = b'{"error": {"code": %d, "message": "injected by the fault proxy"}}' % rule.status
                    self._answer(rule.status, message, [("Content-Type", "application/json")])
                elif fault is Fault.RESET:
                    self._reset()
                elif fault is Fault.STALL:
                    released.wait(MAX_STALL_S)
                    self._reset()
                else:
                    if fault is Fault.HOLD:
                        released.wait(MAX_STALL_S)
                    status, headers, payload = self._forward(body)
                    if fault is Fault.LOSE_RESPONSE:
                        self._reset()
                    elif fault is Fault.CUT:
                        self._answer(status, payload, headers, cut=True)
                    elif fault is Fault.CORRUPT:
                        self._answer(status, flipped(payload), headers)
                    else:
                        self._answer(status, payload, headers)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_any

            def _forward(self, body: bytes | None) -> tuple[int, list[tuple[str, str]], bytes]:
                """Send the request to fake-gcs-server and read the whole answer."""
                upstream = http.client.HTTPConnection("127.0.0.1", proxy._upstream_port, timeout=UPSTREAM_TIMEOUT_S)
                try:
                    headers = {key: value for key, value in self.headers.items() if key.lower() not in HOP_BY_HOP}
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    kept = [(key, value) for key, value in response.getheaders() if key.lower() not in HOP_BY_HOP]
                    return response.status, kept, response.read()
                finally:
                    upstream.close()

            def _answer(
                self, status: int, payload: bytes, headers: list[tuple[str, str]] = (), cut: bool = False
            ) -> None:
                """Answer with the full Content-Length; with `cut`, send half the body and reset the connection."""
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if not cut:
                    self.wfile.write(payload)
                    return
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
                time.sleep(0.05)  # let the client read what was sent before the reset discards it
                self._reset()

            def _reset(self) -> None:
                """Close the client's connection with a TCP reset."""
                self.close_connection = True
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()

            def log_message(self, *args: Any) -> None:
                """Quiet: the test output is for assertions."""

        return Handler
