"""Documents on the Firestore emulator through its REST API, as plain JSON values (standard library only).

The page server reads a document several times a second; REST keeps it free of the gRPC client and its threads.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from image_pipeline.devtools.emulators import EmulatorError

# The emulator's administrator token: security rules do not apply to these requests, as for the Admin SDKs.
OWNER = {"Authorization": "Bearer owner"}


def document_url(firestore_host: str, project: str, path: str) -> str:
    """The REST URL of `path` (collection/id/...) in the default database."""
    return f"http://{firestore_host}/v1/projects/{project}/databases/(default)/documents/{quote(path, safe='/')}"


def get_document(firestore_host: str, project: str, path: str) -> dict[str, Any] | None:
    """The document's fields as JSON values, or None when it does not exist."""
    call = urllib.request.Request(document_url(firestore_host, project, path), headers=OWNER)
    try:
        with urllib.request.urlopen(call, timeout=10) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise EmulatorError(f"reading {path} answered {error.code}: {error.read()[:300]!r}") from None
    except OSError as error:
        raise EmulatorError(f"the Firestore emulator at {firestore_host} did not answer: {error}") from None
    return {name: from_value(value) for name, value in body.get("fields", {}).items()}


def set_document(firestore_host: str, project: str, path: str, fields: Mapping[str, Any]) -> None:
    """Create or replace the whole document with `fields` (strings, numbers, booleans, maps, lists)."""
    body = json.dumps({"fields": {name: to_value(value) for name, value in fields.items()}}).encode()
    call = urllib.request.Request(
        document_url(firestore_host, project, path),
        data=body,
        method="PATCH",
        headers={**OWNER, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(call, timeout=10):
            return
    except urllib.error.HTTPError as error:
        raise EmulatorError(f"writing {path} answered {error.code}: {error.read()[:300]!r}") from None
    except OSError as error:
        raise EmulatorError(f"the Firestore emulator at {firestore_host} did not answer: {error}") from None


def from_value(value: Mapping[str, Any]) -> Any:
    """A REST `Value` as the JSON value the page shows (timestamps and references as their text)."""
    kind, content = next(iter(value.items()))
    if kind == "mapValue":
        return {name: from_value(item) for name, item in content.get("fields", {}).items()}
    if kind == "arrayValue":
        return [from_value(item) for item in content.get("values", [])]
    if kind == "integerValue":
        return int(content)
    if kind == "bytesValue":
        return f"<{len(base64.b64decode(content))} bytes>"
    if kind == "nullValue":
        return None
    return content  # string, double, boolean, timestamp, reference, geo point


def to_value(value: Any) -> dict[str, Any]:
    """A JSON value as a REST `Value`."""
    if value is None:
        return {"nullValue": None}
    if isinstance(value, bool):
        return {"booleanValue": value}
    if isinstance(value, int):
        return {"integerValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, Mapping):
        return {"mapValue": {"fields": {name: to_value(item) for name, item in value.items()}}}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [to_value(item) for item in value]}}
    return {"stringValue": str(value)}
