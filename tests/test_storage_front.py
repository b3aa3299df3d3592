"""The Storage front on its own, before a real fake-gcs-server: the JSON API forwarded unchanged, Firebase's `/v0`
calls at the edges the SDK tests (test_firebase_clients.py) do not reach, CORS, and the pure translations."""

from __future__ import annotations

import http.client
import json
import os
import socket
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

import pytest

from image_pipeline.devtools import emulators
from image_pipeline.devtools.firebase_storage import (
    ApiError,
    Upstream,
    firebase_metadata,
    multipart_parts,
    new_object,
    updated_object,
)
from image_pipeline.devtools.stack import StackInfo
from image_pipeline.devtools.storage_front import StorageFront
from image_pipeline.ports import TOKEN_METADATA_KEY
from image_pipeline.settings import Settings

BUCKET = "front-test-bucket"


@pytest.fixture(scope="module")
def front() -> Iterator[StorageFront]:
    """fake-gcs-server on its own port, the front on another, and a bucket created through the front."""
    port = emulators.free_port()
    storage = emulators.start_storage(public_port=port)
    running = StorageFront(port, Upstream(emulators.LOCALHOST, storage.port))
    try:
        emulators.create_bucket(running.url, BUCKET)
        yield running
    finally:
        running.stop()
        storage.stop()


def call(
    front: StorageFront, method: str, target: str, body: bytes = b"", headers: Mapping[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request to the front: status, headers (names in lower case), body."""
    connection = http.client.HTTPConnection(emulators.LOCALHOST, front.port, timeout=30)
    try:
        connection.request(method, target, body=body or None, headers=dict(headers or {}))
        response = connection.getresponse()
        return response.status, {key.lower(): value for key, value in response.getheaders()}, response.read()
    finally:
        connection.close()


def v0(name: str = "", query: str = "") -> str:
    """A /v0 path in the test bucket, as the SDKs encode it."""
    path = f"/v0/b/{BUCKET}/o" + (f"/{quote(name, safe='')}" if name else "")
    return path + (f"?{query}" if query else "")


def upload_json_api(front: StorageFront, name: str, data: bytes) -> dict[str, Any]:
    """An upload as server code makes it (no download token)."""
    target = f"/upload/storage/v1/b/{BUCKET}/o?uploadType=media&name={quote(name, safe='')}"
    status, _, body = call(front, "POST", target, data, {"Content-Type": "application/octet-stream"})
    assert status == 200, body
    resource: dict[str, Any] = json.loads(body)
    return resource


# --- the JSON API, forwarded ---------------------------------------------------------------------------------------


def test_google_cloud_storage_works_through_the_front_resumable_uploads_included(front, monkeypatch) -> None:
    from google.cloud import storage

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", front.url)
    data = os.urandom(9 * 1024 * 1024)  # over the library's 8 MiB: a resumable session, whose URL must be the front's
    blob = storage.Client(project="demo").bucket(BUCKET).blob("server/big.bin")
    blob.upload_from_string(data, content_type="application/octet-stream")

    assert blob.download_as_bytes() == data
    assert blob.reload() is None and blob.size == len(data)


def test_a_chunked_request_body_is_forwarded_whole(front) -> None:
    connection = http.client.HTTPConnection(emulators.LOCALHOST, front.port, timeout=30)
    target = f"/upload/storage/v1/b/{BUCKET}/o?uploadType=media&name=server%2Fchunked.txt"
    connection.request("POST", target, body=iter([b"first part, ", b"second part"]), encode_chunked=True)
    assert connection.getresponse().status == 200
    connection.close()

    status, _, body = call(front, "GET", f"/storage/v1/b/{BUCKET}/o/server%2Fchunked.txt?alt=media")
    assert (status, body) == (200, b"first part, second part")


def test_a_malformed_chunked_body_is_a_400_not_a_dropped_connection(front) -> None:
    with socket.create_connection((emulators.LOCALHOST, front.port), timeout=10) as raw:
        raw.sendall(
            b"POST " + v0(query="name=a").encode() + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        raw.sendall(b"not-hex\r\n")
        answer = raw.makefile("rb").readline()

    assert answer.startswith(b"HTTP/1.1 400 ")


# --- /v0 at its edges -----------------------------------------------------------------------------------------------


def test_a_token_is_made_on_first_ask_kept_in_custom_metadata_and_checked_on_download(front) -> None:
    upload_json_api(front, "tokens/a.bin", b"payload")

    first = json.loads(call(front, "GET", v0("tokens/a.bin"))[2])
    again = json.loads(call(front, "GET", v0("tokens/a.bin"))[2])
    stored = json.loads(call(front, "GET", f"/storage/v1/b/{BUCKET}/o/tokens%2Fa.bin")[2])

    assert first["downloadTokens"] and again["downloadTokens"] == first["downloadTokens"]
    assert stored["metadata"] == {TOKEN_METADATA_KEY: first["downloadTokens"]}
    assert "metadata" not in first  # the token is no custom metadata of the app's
    token = first["downloadTokens"]
    assert call(front, "GET", v0("tokens/a.bin", f"alt=media&token={token}"))[::2] == (200, b"payload")
    assert call(front, "GET", v0("tokens/a.bin", "alt=media&token=wrong"))[0] == 403
    assert call(front, "GET", v0("tokens/a.bin", "alt=media"))[::2] == (200, b"payload")  # no rules: allowed
    partial = call(front, "GET", v0("tokens/a.bin", "alt=media"), headers={"Range": "bytes=0-2"})
    assert (partial[0], partial[1]["content-range"], partial[2]) == (206, "bytes 0-2/7", b"pay")


def resumable_step(front, url: str, command: str, offset: int | None = None, data: bytes = b""):
    headers = {"X-Goog-Upload-Command": command}
    if offset is not None:
        headers["X-Goog-Upload-Offset"] = str(offset)
    _, _, target = url.partition(front.url)
    return call(front, "POST", target, data, headers)


def start_resumable(front, name: str, size: int) -> str:
    status, headers, _ = call(
        front,
        "POST",
        v0(query=f"name={quote(name, safe='')}"),
        json.dumps({"name": name, "contentType": "text/plain", "metadata": {"app": "yes"}}).encode(),
        {
            "X-Goog-Upload-Protocol": "resumable",
            "X-Goog-Upload-Command": "start",
            "X-Goog-Upload-Header-Content-Length": str(size),
            "Content-Type": "application/json; charset=utf-8",
        },
    )
    assert (status, headers["x-goog-upload-status"]) == (200, "active")
    assert headers["x-goog-upload-url"].startswith(f"{front.url}/v0/b/{BUCKET}/o?")
    return headers["x-goog-upload-url"]


def test_a_resumable_upload_takes_chunks_at_offsets_a_resent_chunk_and_a_query(front) -> None:
    url = start_resumable(front, "resumable/r.txt", 10)

    first = resumable_step(front, url, "upload", 0, b"abcd")
    past = resumable_step(front, url, "upload", 8, b"ijkl")
    resent = resumable_step(front, url, "upload", 2, b"cdef")  # a retry overlapping what was received
    query = resumable_step(front, url, "query")
    final = resumable_step(front, url, "upload, finalize", 6, b"ghij")
    after = resumable_step(front, url, "query")

    assert (first[0], first[1]["x-goog-upload-status"], first[1]["x-goog-upload-size-received"]) == (200, "active", "4")
    assert past[0] == 400 and "past the 4 bytes received" in json.loads(past[2])["error"]["message"]
    assert resent[1]["x-goog-upload-size-received"] == query[1]["x-goog-upload-size-received"] == "6"
    assert (final[0], final[1]["x-goog-upload-status"]) == (200, "final")
    metadata = json.loads(final[2])
    assert (metadata["name"], metadata["size"], metadata["contentType"]) == ("resumable/r.txt", "10", "text/plain")
    assert metadata["metadata"] == {"app": "yes"} and metadata["downloadTokens"]
    assert (after[1]["x-goog-upload-status"], after[1]["x-goog-upload-size-received"]) == ("final", "10")
    assert call(front, "GET", v0("resumable/r.txt", "alt=media"))[2] == b"abcdefghij"


@pytest.mark.parametrize(
    ("steps", "status", "message"),
    [
        ([("upload", 0, b"abc"), ("finalize", None, b"")], 400, "finalized after 3 bytes; the upload announced 10"),
        ([("cancel", None, b""), ("query", None, b"")], 404, "no resumable upload"),
        ([("upload", None, b"abc")], 400, "needs X-Goog-Upload-Offset"),
        ([("start", None, b"")], 400, "takes X-Goog-Upload-Command"),
    ],
    ids=["short", "cancelled", "no-offset", "start-again"],
)
def test_a_resumable_upload_refuses_what_it_cannot_finish(front, steps, status: int, message: str) -> None:
    url = start_resumable(front, "resumable/refused.txt", 10)
    for command, offset, data in steps:
        answer = resumable_step(front, url, command, offset, data)

    assert answer[0] == status and message in json.loads(answer[2])["error"]["message"]
    assert call(front, "GET", f"/storage/v1/b/{BUCKET}/o/resumable%2Frefused.txt")[0] == 404


def test_update_metadata_sets_fields_and_merges_custom_keys_null_removing_one(front) -> None:
    upload_json_api(front, "update/u.bin", b"x")
    first = json.loads(call(front, "GET", v0("update/u.bin"))[2])
    changes = {"cacheControl": "no-cache", "contentLanguage": "fr", "metadata": {"a": "1", "b": "2"}}
    call(front, "PATCH", v0("update/u.bin"), json.dumps(changes).encode(), {"Content-Type": "application/json"})

    status, _, body = call(
        front,
        "PUT",  # the Android SDK's form of PATCH
        v0("update/u.bin"),
        json.dumps({"contentLanguage": "de", "metadata": {"a": None, "c": "3"}}).encode(),
        {"X-HTTP-Method-Override": "PATCH", "Content-Type": "application/json"},
    )

    updated = json.loads(body)
    assert (status, updated["cacheControl"], updated["contentLanguage"]) == (200, "no-cache", "de")
    assert updated["metadata"] == {"b": "2", "c": "3"}
    assert updated["downloadTokens"] == first["downloadTokens"]


@pytest.mark.parametrize(
    ("method", "target", "headers", "status", "message"),
    [
        ("GET", f"/v0/b/{BUCKET}", {}, 400, "is not a Firebase Storage path served here"),
        ("DELETE", v0(), {}, 405, "(allowed: GET, POST)"),
        ("PATCH", v0(), {}, 405, "(allowed: GET, POST)"),
        ("POST", v0("a.txt", "create_token=true"), {}, 400, "create_token and delete_token"),
        ("POST", v0(query="name=a.txt"), {"X-Goog-Upload-Protocol": "ftp"}, 400, "X-Goog-Upload-Protocol: ftp"),
        ("POST", v0(query="name=a.txt"), {"X-Goog-Upload-Protocol": "resumable"}, 400, "starts with"),
        ("POST", v0(), {"Content-Type": "text/plain"}, 400, "?name= is missing"),
        ("GET", v0("a.txt", "alt=proto"), {}, 400, "alt=proto is not served here"),
        ("GET", v0("missing.txt"), {}, 404, "does not exist"),
        ("GET", "/v0/b/no-such-bucket/o", {}, 404, "no bucket no-such-bucket here"),
    ],
)
def test_what_is_not_served_is_a_4xx_naming_it(front, method, target, headers, status: int, message: str) -> None:
    answered, answer_headers, body = call(front, method, target, b"", headers)

    error = json.loads(body)["error"]
    assert (answered, error["code"]) == (status, status) and message in error["message"]
    assert answer_headers["access-control-allow-origin"] == "*"


def test_a_preflight_allows_the_headers_asked_and_answers_expose_the_resumable_ones(front) -> None:
    asked = "authorization,x-goog-upload-protocol,x-goog-upload-command,x-goog-upload-header-content-length"
    status, headers, _ = call(
        front,
        "OPTIONS",
        v0(query="name=a.jpg"),
        headers={"Origin": "http://app.test", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": asked},
    )  # fmt: skip
    answered = call(front, "GET", v0())[1]

    assert status == 204 and headers["access-control-allow-origin"] == "*"
    assert headers["access-control-allow-headers"] == asked and "POST" in headers["access-control-allow-methods"]
    exposed = {name.strip() for name in answered["access-control-expose-headers"].split(",")}
    assert {"X-Goog-Upload-URL", "X-Goog-Upload-Status"} <= exposed


# --- the translations ------------------------------------------------------------------------------------------------


def test_firebase_metadata_moves_the_tokens_out_of_the_custom_metadata_and_fills_firebase_defaults() -> None:
    resource = {"name": "a/b c.jpg", "bucket": "bk", "generation": "7", "metageneration": "1", "size": "3"}
    resource |= {"metadata": {TOKEN_METADATA_KEY: "t1,t2", "k": "v"}, "contentType": "image/jpeg"}

    assert firebase_metadata(resource) == {
        "name": "a/b c.jpg",
        "bucket": "bk",
        "generation": "7",
        "metageneration": "1",
        "size": "3",
        "contentType": "image/jpeg",
        "contentEncoding": "identity",
        "contentDisposition": "inline; filename*=utf-8''b%20c.jpg",
        "downloadTokens": "t1,t2",
        "metadata": {"k": "v"},
    }


KEPT = {"contentType": "image/jpeg", "cacheControl": "max-age=60", "metadata": {TOKEN_METADATA_KEY: "t", "k": "v"}}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"contentType": "image/png"}, KEPT | {"contentType": "image/png"}),
        ({"contentLanguage": "fr", "contentEncoding": None}, KEPT | {"contentLanguage": "fr"}),
        ({"metadata": {"k": None, "n": 2}}, KEPT | {"metadata": {TOKEN_METADATA_KEY: "t", "n": "2"}}),
        ({"metadata": None}, KEPT | {"metadata": {TOKEN_METADATA_KEY: "t"}}),
        ({"name": "elsewhere", "size": 1}, KEPT),
    ],
)
def test_updated_object_applies_firebase_update_semantics(changes: dict, expected: dict) -> None:
    current = {"name": "a", "size": "9", "contentType": "image/jpeg", "cacheControl": "max-age=60"}
    current["metadata"] = {TOKEN_METADATA_KEY: "t", "k": "v"}

    assert updated_object(current, changes) == expected

    with pytest.raises(ApiError, match="metadata must be an object"):
        updated_object(current, {"metadata": "k=v"})
    with pytest.raises(ApiError, match="removing cacheControl"):
        updated_object(current, {"cacheControl": None})


def test_new_object_keeps_the_clients_fields_and_adds_a_fresh_token() -> None:
    fields = {"name": "x", "cacheControl": "no-cache", "md5Hash": "abc", "metadata": {"n": 1, "gone": None}}
    fields |= {"contentLanguage": None}

    assert new_object("a/b.jpg", fields, "image/jpeg", "t-1") == {
        "name": "a/b.jpg",
        "contentType": "image/jpeg",
        "cacheControl": "no-cache",
        "metadata": {"n": "1", TOKEN_METADATA_KEY: "t-1"},
    }
    with pytest.raises(ApiError, match="metadata must be an object"):
        new_object("a", {"metadata": ["k"]}, "image/jpeg", "t")


def test_multipart_parts_keeps_binary_data_exactly() -> None:
    data = b"\r\n--not-the-boundary\r\n\x00\xff\r\n\r\n"
    body = b'--XYZ\r\nContent-Type: application/json\r\n\r\n{"name": "a"}\r\n--XYZ\r\nContent-Type: image/png\r\n\r\n'
    body += data + b"\r\n--XYZ--"

    assert multipart_parts('multipart/related; boundary="XYZ"', body) == [
        ("application/json", b'{"name": "a"}'),
        ("image/png", data),
    ]
    with pytest.raises(ApiError, match="closing boundary"):
        multipart_parts("multipart/related; boundary=XYZ", body.removesuffix(b"\r\n--XYZ--"))


@pytest.mark.parametrize(
    ("environ", "expected"),
    [({}, "http://127.0.0.1:8482/v0"), ({"DOWNLOAD_URL_BASE": "https://cdn.example/v0"}, None)],
    ids=["default", "set-by-the-developer"],
)
def test_under_dev_download_urls_default_to_v0_on_the_storage_port(environ: dict, expected: str | None) -> None:
    info = StackInfo("p", "b", "127.0.0.1:8481", "http://127.0.0.1:8482", "", "", Settings())

    env = info.function_env(environ)

    assert env.get("DOWNLOAD_URL_BASE") == expected  # None: the developer's own value reaches the function
    assert env["STORAGE_EMULATOR_HOST"] == "http://127.0.0.1:8482"
