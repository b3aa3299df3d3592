"""Firebase's client Storage API, `/v0/b/{bucket}/o`, as the web, Android, iOS and Flutter SDKs call it, served on
fake-gcs-server's Cloud Storage JSON API for the dev loop.

Every call becomes JSON API calls, so an object uploaded here is an ordinary object in the bucket: fake-gcs-server
publishes its finalize notification and the relay triggers the function as for any other upload. Download tokens live
where Firebase keeps them, in the `firebaseStorageDownloadTokens` custom metadata (comma-separated); an object that
has none gets one when its metadata is first asked for, as Firebase does.

What it is not: security rules are not evaluated (every call is allowed, an `Authorization` header is accepted and
not read), resumable uploads are kept in memory until finalized, a metadata update cannot remove a field that has a
value (fake-gcs-server keeps it), and the Admin token endpoints (`create_token`, `delete_token`) are not served. A
call it does not serve is answered 400 or 405 with a JSON error naming what is missing: the SDKs report those at
once, where they would retry a 5xx for minutes.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from typing import Any
from urllib.parse import quote, unquote, urlencode

from image_pipeline.ports import TOKEN_METADATA_KEY

_log = logging.getLogger(__name__)

# The object fields a client may set (Firebase's writable metadata besides the custom `metadata`).
WRITABLE = ("contentType", "cacheControl", "contentDisposition", "contentEncoding", "contentLanguage")
# What Cloud Storage requires of resumable chunks; the iOS SDK sizes its chunks by it.
CHUNK_GRANULARITY = 256 * 1024
_API_PATH = re.compile(r"^/v0/b/(?P<bucket>[^/]+)/o(?:/(?P<object>.+))?$")
_UPLOAD_COMMANDS = frozenset({"start", "upload", "finalize", "query", "cancel"})
# The headers of a download that say what the bytes are (lower case).
_MEDIA_HEADERS = frozenset(
    {"content-type", "content-range", "accept-ranges", "cache-control", "content-disposition", "etag"}
)
_JSON = "application/json; charset=utf-8"


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, headers in order, the whole body."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """The first header of that name (any case), or None."""
        return next((value for key, value in self.headers if key.lower() == name.lower()), None)

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


@dataclass(frozen=True)
class Request:
    """One call to the API: the method, the path (still percent-encoded), the query's first values, the headers
    (names in lower case) and the body."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes = b""

    @property
    def verb(self) -> str:
        """What the call means: PUT is an upload as POST is, and either may say PATCH by X-HTTP-Method-Override (the
        Android SDK's metadata update)."""
        override = self.headers.get("x-http-method-override", "").upper()
        if self.method in ("POST", "PUT"):
            return override or "POST"
        return self.method


class ApiError(Exception):
    """A call answered with a Firebase-shaped JSON error."""

    def __init__(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers

    def answer(self) -> Answer:
        """The error as Firebase's servers write it."""
        return json_answer(self.status, {"error": {"code": self.status, "message": self.message}}, self.headers)


def json_answer(status: int, body: Mapping[str, Any], headers: Iterable[tuple[str, str]] = ()) -> Answer:
    """A JSON answer."""
    return Answer(status, (("Content-Type", _JSON), *headers), json.dumps(body).encode())


def tokens_of(resource: Mapping[str, Any]) -> list[str]:
    """The object's download tokens, in order."""
    stored = (resource.get("metadata") or {}).get(TOKEN_METADATA_KEY) or ""
    return [token for token in stored.split(",") if token]


def firebase_metadata(resource: Mapping[str, Any]) -> dict[str, Any]:
    """An object's JSON API resource as Firebase's API returns it: the tokens under `downloadTokens` (what
    getDownloadURL reads), the other custom metadata under `metadata`, numbers as strings."""
    name = str(resource["name"])
    custom = {key: value for key, value in (resource.get("metadata") or {}).items() if key != TOKEN_METADATA_KEY}
    answer: dict[str, Any] = {
        key: str(resource[key])
        for key in ("name", "bucket", "generation", "metageneration", "size", "timeCreated", "updated")
        if key in resource
    }
    for key in ("contentType", "storageClass", "md5Hash", "crc32c", "etag", "cacheControl", "contentLanguage"):
        if resource.get(key):
            answer[key] = resource[key]
    answer["contentEncoding"] = resource.get("contentEncoding") or "identity"
    answer["contentDisposition"] = (
        resource.get("contentDisposition") or f"inline; filename*=utf-8''{quote(name.rsplit('/', 1)[-1], safe='')}"
    )
    answer["downloadTokens"] = ",".join(tokens_of(resource))
    if custom:
        answer["metadata"] = custom
    return answer


def list_answer(listing: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON API listing as Firebase's list call returns it: folders as `prefixes`, objects by name and bucket."""
    answer: dict[str, Any] = {
        "prefixes": list(listing.get("prefixes") or []),
        "items": [{"name": item["name"], "bucket": item["bucket"]} for item in listing.get("items") or []],
    }
    if listing.get("nextPageToken"):
        answer["nextPageToken"] = listing["nextPageToken"]
    return answer


def new_object(name: str, fields: Mapping[str, Any], content_type: str, token: str) -> dict[str, Any]:
    """The JSON API resource to create for an upload: the client's writable fields and custom metadata, its content
    type, and a fresh download token (Firebase gives every upload one)."""
    asked = fields.get("metadata") or {}
    if not isinstance(asked, Mapping):
        raise ApiError(400, f"metadata must be an object of strings, got {json.dumps(asked)}")
    custom = {key: str(value) for key, value in asked.items() if value is not None}
    resource: dict[str, Any] = {key: fields[key] for key in WRITABLE if fields.get(key) is not None}
    resource.update(name=name, contentType=content_type, metadata={**custom, TOKEN_METADATA_KEY: token})
    return resource


def updated_object(current: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """The writable fields of `current` after Firebase's updateMetadata `changes`: custom metadata is merged key by key
    (null removes a key; `metadata: null` removes all but the tokens); other fields are read-only and ignored, as
    Cloud Storage ignores them in a patch. A field set to null is removed in Firebase, which fake-gcs-server cannot
    do once the field has a value: 400 naming it."""
    resource = {key: str(current[key]) for key in WRITABLE if current.get(key)}
    for key in WRITABLE:
        if changes.get(key) is not None:
            resource[key] = str(changes[key])
        elif key in changes and key in resource:
            raise ApiError(400, f"removing {key} (null) is not served here: fake-gcs-server keeps a field once set")
    custom = dict(current.get("metadata") or {})
    if "metadata" in changes:
        asked = changes["metadata"]
        if asked is None:
            custom = {key: value for key, value in custom.items() if key == TOKEN_METADATA_KEY}
        elif isinstance(asked, Mapping):
            for key, value in asked.items():
                if value is None:
                    custom.pop(key, None)
                else:
                    custom[key] = str(value)
        else:
            raise ApiError(400, f"metadata must be an object of strings, got {json.dumps(asked)}")
    return {**resource, "metadata": custom}


def multipart_parts(content_type: str, body: bytes) -> list[tuple[str, bytes]]:
    """The parts of a `multipart/related` body, each as its Content-Type and its exact bytes."""
    header = Message()
    header["Content-Type"] = content_type
    boundary = header.get_param("boundary")
    if header.get_content_maintype() != "multipart" or not isinstance(boundary, str) or not boundary:
        raise ApiError(
            400, f"a multipart upload needs Content-Type: multipart/related; boundary=…, got {content_type!r}"
        )
    # Each delimiter is CRLF--boundary; the body's first one has no CRLF before it.
    pieces = (b"\r\n" + body).split(b"\r\n--" + boundary.encode())
    if len(pieces) < 3 or not pieces[-1].startswith(b"--"):
        raise ApiError(400, "the multipart body does not end with its closing boundary")
    parts = []
    for piece in pieces[1:-1]:
        head, separator, content = piece.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not separator:
            raise ApiError(400, "a part of the multipart body has no blank line after its headers")
        headers = dict(_header_line(line) for line in head.decode("latin-1").split("\r\n") if line)
        parts.append((headers.get("content-type", "application/octet-stream"), content))
    return parts


def _header_line(line: str) -> tuple[str, str]:
    name, _, value = line.partition(":")
    return name.strip().lower(), value.strip()


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    """A JSON object sent by the client (empty: {}); 400 otherwise."""
    if not data.strip():
        return {}
    try:
        value = json.loads(data)
    except ValueError:
        raise ApiError(400, f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise ApiError(400, f"{what} must be a JSON object")
    return value


class Upstream:
    """Plain HTTP/1.1 calls to fake-gcs-server on its own port, one connection per call."""

    def __init__(self, host: str, port: int, timeout_s: float = 120) -> None:
        self.host = host
        self.port = port
        self._timeout_s = timeout_s

    def call(self, method: str, target: str, body: bytes = b"", headers: Iterable[tuple[str, str]] = ()) -> Answer:
        """Send the request as given (the caller's Host header is kept) and read the whole answer.
        OSError when fake-gcs-server does not answer."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self._timeout_s)
        try:
            given = list(headers)
            names = {name.lower() for name, _ in given}
            connection.putrequest(method, target, skip_host="host" in names, skip_accept_encoding=True)
            for name, value in given:
                connection.putheader(name, value)
            if body or method in ("POST", "PUT", "PATCH"):
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body or None)
            response = connection.getresponse()
            return Answer(response.status, tuple(response.getheaders()), response.read())
        finally:
            connection.close()

    def json(self, method: str, target: str, body: Mapping[str, Any]) -> Answer:
        """A JSON API call with a JSON body."""
        return self.call(method, target, json.dumps(body).encode(), [("Content-Type", "application/json")])


@dataclass
class ResumableUpload:
    """A resumable upload in progress: where it goes, what it was told, the bytes so far; its object once final."""

    bucket: str
    name: str
    fields: dict[str, Any]
    content_type: str
    announced_size: int | None
    received: bytearray = field(default_factory=bytearray)
    result: dict[str, Any] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def size(self) -> int:
        """Bytes received so far (all of them once finalized)."""
        return int(self.result["size"]) if self.result is not None else len(self.received)


class FirebaseStorage:
    """Answers `/v0` calls by calling fake-gcs-server's JSON API."""

    def __init__(self, upstream: Upstream) -> None:
        self._upstream = upstream
        self._uploads: dict[str, ResumableUpload] = {}
        self._lock = threading.Lock()  # guards _uploads, and the check-then-create of a first download token

    def handle(self, request: Request, origin: str) -> Answer:
        """The answer to one call; `origin` (`http://host:port`) is where the client reached this server."""
        try:
            return self._route(request, origin)
        except ApiError as error:
            # The SDKs do not pass the message on (the app sees `storage/unknown`): dev's stderr shows it.
            _log.info("%s %s -> %d: %s", request.method, request.path, error.status, error.message)
            return error.answer()

    def _route(self, request: Request, origin: str) -> Answer:
        found = _API_PATH.match(request.path)
        if found is None:
            raise ApiError(
                400,
                f"{request.path} is not a Firebase Storage path served here: /v0/b/{{bucket}}/o (list, upload) and "
                "/v0/b/{bucket}/o/{object} (metadata, download, update, delete)",
            )
        bucket = unquote(found["bucket"])
        name = unquote(found["object"]) if found["object"] else None
        verb = request.verb
        if verb == "GET" and name is None:
            return self._list(bucket, request.query)
        if verb == "GET" and name is not None:
            return self._get(bucket, name, request)
        if verb == "POST":
            if "create_token" in request.query or "delete_token" in request.query:
                raise ApiError(400, "create_token and delete_token (the Admin token endpoints) are not served here")
            return self._upload(bucket, name, request, origin)
        if verb == "PATCH" and name is not None:
            return self._update(bucket, name, _json_object(request.body, "the metadata"))
        if verb == "DELETE" and name is not None:
            return self._delete(bucket, name)
        allowed = "GET, POST" if name is None else "GET, POST, PATCH, DELETE"
        raise ApiError(405, f"{verb} {request.path} is not served here (allowed: {allowed})", (("Allow", allowed),))

    # --- reads --------------------------------------------------------------------------------------------------

    def _resource(self, bucket: str, name: str) -> dict[str, Any]:
        """The object's JSON API resource; 404 if there is no such object."""
        answer = self._upstream.call("GET", _object_target(bucket, name))
        if answer.status == 404:
            raise ApiError(404, f"gs://{bucket}/{name} does not exist")
        _check(answer, f"reading gs://{bucket}/{name}")
        resource: dict[str, Any] = answer.json()
        return resource

    def _get(self, bucket: str, name: str, request: Request) -> Answer:
        alt = request.query.get("alt", "json")
        if alt == "json":
            return json_answer(200, firebase_metadata(self._with_token(bucket, name, self._resource(bucket, name))))
        if alt != "media":
            raise ApiError(400, f"alt={alt} is not served here: alt=media (the bytes) or no alt (the metadata)")
        resource = self._resource(bucket, name)
        token = request.query.get("token")
        if token is not None and token not in tokens_of(resource):
            raise ApiError(403, f"Permission denied: that token is not a download token of {name}")
        forwarded = [("Range", request.headers["range"])] if "range" in request.headers else []
        answer = self._upstream.call("GET", _object_target(bucket, name) + "?alt=media", b"", forwarded)
        if answer.status not in (200, 206):
            raise ApiError(
                answer.status if answer.status < 500 else 502, f"reading gs://{bucket}/{name}: {answer.status}"
            )
        headers = tuple((key, value) for key, value in answer.headers if key.lower() in _MEDIA_HEADERS)
        return Answer(answer.status, headers, answer.body)

    def _with_token(self, bucket: str, name: str, resource: dict[str, Any]) -> dict[str, Any]:
        """The resource with a download token, one created now if it had none (under a lock: one token, not two)."""
        if tokens_of(resource):
            return resource
        with self._lock:
            current = self._resource(bucket, name)
            if tokens_of(current):
                return current
            token = str(uuid.uuid4())
            _check(
                self._upstream.json("PATCH", _object_target(bucket, name), {"metadata": {TOKEN_METADATA_KEY: token}}),
                f"adding a download token to gs://{bucket}/{name}",
            )
        return {**current, "metadata": {**(current.get("metadata") or {}), TOKEN_METADATA_KEY: token}}

    def _list(self, bucket: str, query: Mapping[str, str]) -> Answer:
        asked = {key: query[key] for key in ("prefix", "delimiter", "pageToken", "maxResults") if key in query}
        answer = self._upstream.call("GET", f"/storage/v1/b/{quote(bucket, safe='')}/o?{urlencode(asked)}")
        if answer.status == 404:
            raise ApiError(404, _no_bucket(bucket))
        _check(answer, f"listing gs://{bucket}")
        return json_answer(200, list_answer(answer.json()))

    # --- writes -------------------------------------------------------------------------------------------------

    def _update(self, bucket: str, name: str, changes: Mapping[str, Any]) -> Answer:
        current = self._resource(bucket, name)
        # A JSON API PUT replaces the custom metadata whole: fake-gcs-server's PATCH cannot remove a custom key.
        _check(
            self._upstream.json("PUT", _object_target(bucket, name), updated_object(current, changes)),
            f"updating gs://{bucket}/{name}",
        )
        return json_answer(200, firebase_metadata(self._with_token(bucket, name, self._resource(bucket, name))))

    def _delete(self, bucket: str, name: str) -> Answer:
        answer = self._upstream.call("DELETE", _object_target(bucket, name))
        if answer.status == 404:
            raise ApiError(404, f"gs://{bucket}/{name} does not exist")
        _check(answer, f"deleting gs://{bucket}/{name}")
        return Answer(204)

    def _upload(self, bucket: str, name: str | None, request: Request, origin: str) -> Answer:
        """A multipart upload, a resumable upload's start or next step, or a raw body (the REST form)."""
        upload_id = request.query.get("upload_id")
        if upload_id is not None:
            return self._resume(upload_id, request)
        protocol = request.headers.get("x-goog-upload-protocol", "")
        command = request.headers.get("x-goog-upload-command", "")
        name = request.query.get("name") or name
        if protocol == "resumable" and command == "start":
            return self._start(bucket, name, request, origin)
        if protocol == "resumable":
            raise ApiError(400, f"a resumable upload starts with X-Goog-Upload-Command: start, got {command!r}")
        if protocol == "multipart":
            parts = multipart_parts(request.headers.get("content-type", ""), request.body)
            if len(parts) != 2:
                raise ApiError(400, f"a multipart upload has two parts (metadata, then data), got {len(parts)}")
            fields = _json_object(parts[0][1], "the multipart upload's first part")
            return self._store(bucket, name or fields.get("name"), fields, parts[1][0], bytes(parts[1][1]))
        if protocol:
            raise ApiError(400, f"X-Goog-Upload-Protocol: {protocol} is not served here (multipart or resumable)")
        content_type = request.headers.get("content-type") or "application/octet-stream"
        return self._store(bucket, name, {}, content_type, request.body)

    def _store(
        self, bucket: str, name: str | None, fields: Mapping[str, Any], content_type: str, data: bytes
    ) -> Answer:
        """Create the object; its Firebase metadata."""
        return json_answer(200, firebase_metadata(self._create(bucket, name, fields, content_type, data)))

    def _create(
        self, bucket: str, name: str | None, fields: Mapping[str, Any], content_type: str, data: bytes
    ) -> dict[str, Any]:
        """Create the object with a multipart upload to the JSON API (one request, so one finalize notification);
        its resource."""
        if not name:
            raise ApiError(400, "the upload names no object: ?name= is missing")
        resource = new_object(name, fields, fields.get("contentType") or content_type, str(uuid.uuid4()))
        boundary = uuid.uuid4().hex
        body = b"".join(
            [
                f"--{boundary}\r\nContent-Type: application/json; charset=utf-8\r\n\r\n".encode(),
                json.dumps(resource).encode(),
                f"\r\n--{boundary}\r\nContent-Type: {resource['contentType']}\r\n\r\n".encode(),
                data,
                f"\r\n--{boundary}--\r\n".encode(),
            ]
        )
        answer = self._upstream.call(
            "POST",
            f"/upload/storage/v1/b/{quote(bucket, safe='')}/o?uploadType=multipart",
            body,
            [("Content-Type", f"multipart/related; boundary={boundary}")],
        )
        if answer.status == 404:
            raise ApiError(404, _no_bucket(bucket))
        _check(answer, f"uploading gs://{bucket}/{name}")
        stored: dict[str, Any] = answer.json()
        return stored

    def _start(self, bucket: str, name: str | None, request: Request, origin: str) -> Answer:
        fields = _json_object(request.body, "the resumable upload's metadata")
        name = name or fields.get("name")
        if not name:
            raise ApiError(400, "the upload names no object: ?name= is missing")
        announced = request.headers.get("x-goog-upload-header-content-length")
        if announced is not None and not announced.isdigit():
            raise ApiError(400, f"X-Goog-Upload-Header-Content-Length must be a byte count, got {announced!r}")
        content_type = (
            request.headers.get("x-goog-upload-header-content-type")
            or fields.get("contentType")
            or "application/octet-stream"
        )
        upload_id = uuid.uuid4().hex
        with self._lock:
            self._uploads[upload_id] = ResumableUpload(
                bucket, name, fields, content_type, None if announced is None else int(announced)
            )
        query = urlencode({"name": name, "upload_id": upload_id, "upload_protocol": "resumable"})
        return Answer(
            200,
            (
                ("X-Goog-Upload-Status", "active"),
                ("X-Goog-Upload-URL", f"{origin}/v0/b/{quote(bucket, safe='')}/o?{query}"),
                ("X-Goog-Upload-Chunk-Granularity", str(CHUNK_GRANULARITY)),
            ),
        )

    def _resume(self, upload_id: str, request: Request) -> Answer:
        """One step of a resumable upload: `upload` a chunk at an offset, `finalize`, both, `query` or `cancel`."""
        commands = {word.strip() for word in request.headers.get("x-goog-upload-command", "").split(",") if word}
        if not commands or commands - _UPLOAD_COMMANDS or "start" in commands:
            raise ApiError(
                400,
                "a resumable upload's URL takes X-Goog-Upload-Command: upload, finalize, 'upload, finalize', query or "
                f"cancel; got {request.headers.get('x-goog-upload-command')!r}",
            )
        with self._lock:
            upload = self._uploads.get(upload_id)
        if upload is None:
            raise ApiError(404, f"no resumable upload {upload_id} (they are kept in memory until `dev` stops)")
        with upload.lock:
            if "cancel" in commands:
                with self._lock:
                    self._uploads.pop(upload_id, None)
                return Answer(200, (("X-Goog-Upload-Status", "cancelled"),))
            if upload.result is None and "upload" in commands:
                _receive(upload, request)
            if upload.result is None and "finalize" in commands:
                self._finalize(upload)
            status = "active" if upload.result is None else "final"
            headers = (("X-Goog-Upload-Status", status), ("X-Goog-Upload-Size-Received", str(upload.size)))
            if upload.result is not None and "query" not in commands:
                return json_answer(200, firebase_metadata(upload.result), headers)
            return Answer(200, headers)

    def _finalize(self, upload: ResumableUpload) -> None:
        """Store the received bytes as the object; keep its resource and let the bytes go."""
        if upload.announced_size is not None and upload.announced_size != len(upload.received):
            raise ApiError(
                400, f"finalized after {len(upload.received)} bytes; the upload announced {upload.announced_size}"
            )
        upload.result = self._create(
            upload.bucket, upload.name, upload.fields, upload.content_type, bytes(upload.received)
        )
        upload.received = bytearray()


def _receive(upload: ResumableUpload, request: Request) -> None:
    """Append a chunk at its offset; a chunk sent again (an SDK's retry) replaces what followed that offset."""
    offset = request.headers.get("x-goog-upload-offset", "")
    if not offset.isdigit():
        raise ApiError(400, f"an upload step needs X-Goog-Upload-Offset (a byte count), got {offset!r}")
    if int(offset) > len(upload.received):
        raise ApiError(400, f"X-Goog-Upload-Offset {offset} is past the {len(upload.received)} bytes received")
    del upload.received[int(offset) :]
    upload.received += request.body


def _object_target(bucket: str, name: str) -> str:
    return f"/storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}"


def _no_bucket(bucket: str) -> str:
    return f"no bucket {bucket} here: `dev` serves the bucket its `bucket:` line names (choose it with --bucket)"


def _check(answer: Answer, doing: str) -> None:
    """ApiError for a JSON API failure: its 4xx as it came, a 5xx as 502 (the SDKs retry those, as for an outage)."""
    if answer.status >= 400:
        status = answer.status if answer.status < 500 else 502
        raise ApiError(status, f"{doing}: fake-gcs-server answered {answer.status} {answer.body[:300]!r}")
