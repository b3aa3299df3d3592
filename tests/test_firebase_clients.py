"""The Firebase client SDK against `dev`'s Storage port, as a web app uses it: the real Firebase JS SDK (npm
`firebase`, pinned in tests/firebase_clients/package.json, installed by scripts/setup.sh into .cache/npm-clients/)
from Node, and its browser bundle in headless Chromium on a page from another origin.

One `dev` serves the module. The Node script (tests/firebase_clients/upload_flow.mjs) runs the whole flow once and
reports what it saw as JSON; each test below checks one part of that report.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from PIL import Image

from image_pipeline.devtools.emulators import LOCALHOST
from tests.dev_process import REPO_ROOT, DevLines, running_dev
from tests.test_page_browser import browser  # noqa: F401 (the fixture: headless Chromium)
from tests.waits import wait_until

CLIENTS = REPO_ROOT / ".cache" / "npm-clients"
SCRIPTS = Path(__file__).resolve().parent / "firebase_clients"
PINNED = json.loads((SCRIPTS / "package.json").read_text())["dependencies"]["firebase"]
FLOW_TIMEOUT_S = 180  # an SDK retrying a 5xx would keep going for minutes: a timeout here is that hang
UID = "web-user"


def firebase_sdk() -> Path:
    """The npm cache holding the pinned SDK; the test is skipped, saying why, where it cannot be."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js and npm are not installed: the Firebase JS SDK tests need them (apt-get install npm)")
    installed = CLIENTS / "node_modules" / "firebase" / "package.json"
    version = json.loads(installed.read_text())["version"] if installed.is_file() else None
    if version != PINNED:
        pytest.skip(f"firebase {PINNED} is not in .cache/npm-clients/ (found {version}): run bash scripts/setup.sh")
    return CLIENTS


def noisy_jpeg(width: int, height: int, seed: int) -> bytes:
    """A JPEG of random pixels: noise does not compress, so a small image is large in bytes."""
    pixels = random.Random(seed).randbytes(width * height * 3)
    out = BytesIO()
    Image.frombytes("RGB", (width, height), pixels).save(out, "JPEG", quality=95, subsampling=0)
    return out.getvalue()


def small_jpeg() -> bytes:
    """A photo-like JPEG far below 256 KiB: the SDK sends it in one multipart request."""
    out = BytesIO()
    Image.linear_gradient("L").resize((1200, 800)).convert("RGB").save(out, "JPEG", quality=85)
    return out.getvalue()


@pytest.fixture(scope="module")
def dev() -> Iterator[DevLines]:
    """`dev --free-ports`, once the SDK is known to be installed."""
    firebase_sdk()
    with running_dev() as lines:
        yield lines


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def flow(dev: DevLines, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What the Node script saw, running the web app's flow once against `dev`."""
    folder = tmp_path_factory.mktemp("sdk-flow")
    (folder / "small.jpg").write_bytes(small_jpeg())
    large = noisy_jpeg(600, 450, seed=17)
    assert len(large) > 512 * 1024, "the large image must force the resumable protocol (over 256 KiB) twice over"
    (folder / "large.jpg").write_bytes(large)
    settings = {
        "clients": str(firebase_sdk()),
        "storagePort": port_of(dev.storage_url),
        "firestorePort": port_of(dev.firestore_host),
        "project": dev.project,
        "bucket": dev.bucket,
        "uid": UID,
        "characters": ["web-small", "web-large"],
        "small": str(folder / "small.jpg"),
        "large": str(folder / "large.jpg"),
    }
    done = subprocess.run(
        ["node", str(SCRIPTS / "upload_flow.mjs"), json.dumps(settings)],
        capture_output=True,
        text=True,
        timeout=FLOW_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert "error" not in report, f"{report['error']}\n{done.stderr}\n{dev.stderr_path.read_text()[-3000:]}"
    report["files"] = {"small": (folder / "small.jpg").read_bytes(), "large": large}
    return report


@pytest.mark.parametrize(
    ("upload", "how", "protocols"),
    [
        ("small", "uploadBytes", [("multipart", None)]),
        ("large", "uploadBytesResumable", [("resumable", "start"), (None, "upload"), (None, "upload, finalize")]),
    ],
)
def test_an_sdk_upload_is_an_ordinary_upload_that_completes_the_route(
    flow: dict[str, Any], dev: DevLines, upload: str, how: str, protocols: list[tuple[str | None, str | None]]
) -> None:
    seen = flow[upload]
    data = flow["files"][upload]

    assert [(request["protocol"], request["command"]) for request in seen["requests"]] == protocols
    assert seen["uploaded"]["size"] == len(data)
    assert seen["uploaded"]["customMetadata"] == {"madeBy": how}
    manifest = seen["manifest"]
    assert manifest["status"] == "complete", manifest.get("error")
    assert manifest["source"]["path"] == seen["path"]
    assert (manifest["source"]["generation"], manifest["source"]["bytes"]) == (
        seen["uploaded"]["generation"],
        len(data),
    )
    delivered = f"{seen['path']} -> 200"  # the relay's line: the upload's event reached the function as any upload's
    wait_until(lambda: delivered in dev.stderr_path.read_text(), 30, lambda: f"dev to log {delivered!r}")


def test_getdownloadurl_and_the_manifest_url_are_one_url_serving_the_recorded_bytes(
    flow: dict[str, Any], dev: DevLines, monkeypatch: pytest.MonkeyPatch
) -> None:
    from google.cloud import storage

    for key, value in dev.client_env().items():
        monkeypatch.setenv(key, value)
    download = flow["download"]
    variant = flow["large"]["manifest"]["variants"]["large"]
    stored = storage.Client().bucket(dev.bucket).blob(variant["path"]).download_as_bytes()

    assert download["sdkUrl"] == download["manifestUrl"] == variant["url"]
    assert download["manifestUrl"].startswith(f"{dev.storage_url}/v0/b/{dev.bucket}/o/")
    assert (
        download["viaManifest"] == download["viaSdk"] == {"status": 200, "sha256": hashlib.sha256(stored).hexdigest()}
    )
    assert download["viaGetBytes"] == hashlib.sha256(stored).hexdigest() and len(stored) == variant["bytes"]


def test_metadata_is_read_and_updated_listing_pages_and_a_delete_removes_the_object(flow: dict[str, Any]) -> None:
    source = flow["small"]["path"]
    outputs = flow["large"]["manifest"]["variants"]

    assert flow["metadata"] == {
        "fullPath": source,
        "bucket": flow["small"]["uploaded"]["bucket"],
        "size": len(flow["files"]["small"]),
        "contentType": "image/jpeg",
        "customMetadata": {"madeBy": "uploadBytes"},
        "generation": flow["small"]["uploaded"]["generation"],
    }
    assert flow["updated"] == {"cacheControl": "no-cache", "customMetadata": {"madeBy": "uploadBytes", "seen": "yes"}}
    assert flow["list"]["hasNextPage"] and len(flow["list"]["firstPage"]) == 2
    assert set(flow["list"]["firstPage"]) <= {variant["path"] for variant in outputs.values()}
    assert flow["list"]["folders"] == [f"raw-uploads/{UID}/web-large", f"raw-uploads/{UID}/web-small"]
    assert (flow["afterDelete"]["metadata"]["code"], flow["afterDelete"]["oldUrl"]) == ("storage/object-not-found", 404)


def test_calls_the_front_does_not_serve_fail_at_once_with_a_message(flow: dict[str, Any], dev: DevLines) -> None:
    unserved = flow["unserved"]

    # 404, not a 5xx: the SDK gives up at once instead of retrying (the flow's timeout would catch a hang).
    assert (unserved["otherBucket"]["code"], unserved["otherBucket"]["status"]) == ("storage/unknown", 404)
    assert unserved["createToken"]["status"] == 400
    assert "create_token" in unserved["createToken"]["body"]["error"]["message"]
    assert "no bucket no-such-bucket here" in dev.stderr_path.read_text()  # where the developer sees why


# --- the browser bundle, on a page from another origin ------------------------------------------------------------


@pytest.fixture(scope="module")
def app_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A web app's origin (another port than `dev`'s): the page, its image, and the SDK's browser bundle."""
    sdk = firebase_sdk() / "node_modules" / "firebase"
    page = (SCRIPTS / "browser_upload.html").read_text().replace("{FIREBASE_VERSION}", PINNED).encode()
    image = noisy_jpeg(440, 330, seed=5)
    assert len(image) > 256 * 1024, "the page's image must be sent with the resumable protocol"

    class AppHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            parts = path.split("/")
            if path == "/":
                self._send(page, "text/html; charset=utf-8")
            elif path == "/image.jpg":
                self._send(image, "image/jpeg")
            elif len(parts) == 4 and parts[1:3] == ["sdk", PINNED] and (sdk / parts[3]).suffix == ".js":
                self._send((sdk / parts[3]).read_bytes(), "text/javascript; charset=utf-8")
            else:
                self.send_error(404)

        def _send(self, body: bytes, content_type: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer((LOCALHOST, 0), AppHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{LOCALHOST}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_page_from_another_origin_uploads_through_v0_and_the_upload_completes(
    browser: Any,  # noqa: F811
    app_origin: str,
    dev: DevLines,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from google.cloud import firestore
    from selenium.webdriver.support.wait import WebDriverWait

    for key, value in dev.client_env().items():
        monkeypatch.setenv(key, value)
    documents = firestore.Client(project=dev.project)
    documents.document("characters/from-browser").set({"meta": {"userId": UID}})
    path = f"raw-uploads/{UID}/from-browser/photo.jpg"
    query = {"storagePort": port_of(dev.storage_url), "bucket": dev.bucket, "project": dev.project, "path": path}

    # The resumable protocol's requests carry X-Goog-Upload-* headers, so the browser sends each only after a
    # preflight the front allowed, and reads X-Goog-Upload-URL and -Status only if the front exposes them.
    browser.get(f"{app_origin}/?{urlencode(query)}")
    result = json.loads(
        WebDriverWait(browser, 60).until(lambda driver: driver.execute_script("return document.body.dataset.result"))
    )

    assert "error" not in result, result
    assert result["state"] == "success" and result["size"] == result["bytesTransferred"] > 256 * 1024
    assert (result["downloadStatus"], result["downloadedBytes"]) == (200, result["size"])
    manifest: dict[str, Any] = {}

    def complete() -> bool:
        nonlocal manifest
        manifest = (documents.document("characters/from-browser").get().to_dict() or {}).get("visuals", {})
        return manifest.get("showcase", {}).get("status") == "complete"

    wait_until(complete, 60, lambda: f"the browser's upload to complete; the document: {manifest}", interval_s=0.1)
    assert manifest["showcase"]["source"]["generation"] == result["generation"]
