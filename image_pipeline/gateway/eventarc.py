"""EventPublisher over the Eventarc Publishing API's REST method `publishEvents`, called as firebase-admin calls it.

Only a route that publishes imports this module (through connect), so that skipped events and routes without events
never load google.auth.

- `POST {host}/{channel}:publishEvents` with `{"events": [...]}` (JSON, compact). The host is
  CLOUD_EVENTARC_EMULATOR_HOST as given (with `https://` when it names no scheme), else
  https://eventarcpublishing.googleapis.com/v1.
- In the cloud: an OAuth access token of the Application Default Credentials (cloud-platform scope), fetched and
  refreshed by google-auth's AuthorizedSession (which also sends x-goog-user-project when the credential has a quota
  project). Against the emulator: no token (see connect).
- One attempt per call, bounded by the timeout. Unlike firebase-admin (up to 4 retries of a 503 inside the call),
  no retries here: the event is redelivered by the platform, and an attempt must end well inside the function's
  timeout.

Errors. Connection errors, timeouts, 408, 429 and 5xx are TransientError: the platform redelivers the event, logged
as a WARNING. Any other 4xx is PublishRefused (errors.py), with the status and the response body: a wrong channel,
a missing `eventarc.publisher` role or a disabled API is the operator's configuration, so, as for an unusable cutout
model, the event is raised and redelivered (the fix takes effect without a redeploy) and logged as an ERROR. No
credentials, or a token that cannot be refreshed for good, is PublishRefused too.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence

import google.auth
import requests
from google.auth import exceptions as auth
from google.auth.transport.requests import AuthorizedSession

from image_pipeline.errors import PublishRefused, TransientError

EMULATOR_VARIABLE = "CLOUD_EVENTARC_EMULATOR_HOST"
PRODUCTION_HOST = "https://eventarcpublishing.googleapis.com/v1"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
# 408 (the request timed out) and 429 (throttled) clear by themselves; so does any 5xx.
_TRANSIENT_STATUSES = frozenset({408, 429})
_BODY_SHOWN = 1000
_OUTAGES = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError, auth.TransportError)


def endpoint(emulator_host: str | None) -> str:
    """The API's base URL: the emulator's when CLOUD_EVENTARC_EMULATOR_HOST is set (non-empty), else Google's."""
    if not emulator_host:
        return PRODUCTION_HOST
    host = emulator_host if _SCHEME.match(emulator_host) else f"https://{emulator_host}"
    return host.rstrip("/")


class EventarcPublisher:
    """The EventPublisher port over HTTP: `session` adds the access token (an AuthorizedSession) or none."""

    def __init__(self, host: str, session: requests.Session, timeout_s: float) -> None:
        self._host = host
        self._session = session
        self._timeout_s = timeout_s

    def publish(self, channel: str, events: Sequence[Mapping[str, object]]) -> None:
        """Post `events` to `channel` (a full resource name) in one request; no events, no request."""
        if not events:
            return
        what = f"publish {len(events)} event(s) to {channel}"
        body = json.dumps({"events": [dict(event) for event in events]}, ensure_ascii=False, separators=(",", ":"))
        try:
            response = self._session.post(
                f"{self._host}/{channel}:publishEvents",
                data=body.encode(),
                headers={"Content-Type": "application/json"},
                timeout=self._timeout_s,
            )
        except _OUTAGES as error:
            raise TransientError(f"{what}: {type(error).__name__}: {error}") from error
        except auth.RefreshError as error:
            if error.retryable:
                raise TransientError(f"{what}: no access token yet: {error}") from error
            raise PublishRefused(f"{what}: no access token: {error}") from error
        status = response.status_code
        if 200 <= status < 300:
            return
        detail = f"{what}: HTTP {status}: {response.text[:_BODY_SHOWN]}"
        if status in _TRANSIENT_STATUSES or status >= 500:
            raise TransientError(detail)
        raise PublishRefused(detail)

    def close(self) -> None:
        """Close the session's connections."""
        self._session.close()


def connect(timeout_s: float, environ: Mapping[str, str] | None = None) -> EventarcPublisher:
    """A publisher to the emulator (CLOUD_EVENTARC_EMULATOR_HOST, without a token) or to Google (ADC's token).

    `environ` is os.environ unless given. Without the emulator and without Application Default Credentials:
    PublishRefused.
    """
    environ = os.environ if environ is None else environ
    emulator_host = environ.get(EMULATOR_VARIABLE, "")
    if emulator_host:
        # firebase-admin sends its credential's token even to the emulator, which never reads it. Sending none, a
        # local run needs no Application Default Credentials (as the Storage and Firestore clients go anonymous
        # against their emulators), and no real token is handed to whatever listens on that port.
        return EventarcPublisher(endpoint(emulator_host), requests.Session(), timeout_s)
    try:
        credentials, _ = google.auth.default(scopes=[SCOPE])
    except auth.DefaultCredentialsError as error:
        raise PublishRefused(
            f"no credentials to publish events with ({EMULATOR_VARIABLE} is unset): {error}"
        ) from error
    return EventarcPublisher(PRODUCTION_HOST, AuthorizedSession(credentials), timeout_s)
