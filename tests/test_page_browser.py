"""The local page in a real browser: headless Chromium (Debian's package, driven by Selenium through the system
chromedriver, nothing downloaded) chooses a generated image on the page, which uploads it through the page server to
fake-gcs-server; the page then shows what a person would see as the document changes.

The page server runs in this process on the session's emulators and posts the finalize event to the tests' function
itself (deliver_events): the tests' fake-gcs-server publishes no notifications, so no relay is involved there. The
last test runs `dev` itself, relay included, for uploads the page did not make.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from image_pipeline.bootstrap import connect
from image_pipeline.devtools import emulators
from image_pipeline.devtools.demo_page import Where, save_variants
from image_pipeline.devtools.page.server import make_handler
from image_pipeline.devtools.stack import StackInfo
from image_pipeline.settings import Settings
from tests.backend import BUCKET, photo
from tests.conftest import ROUTES_FILE
from tests.dev_process import running_dev

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1000",
)
SETTLE_S = 90
# Set to a folder to keep a screenshot of each test's page there (for looking at the page while changing it).
SCREENSHOTS = os.environ.get("PAGE_SCREENSHOTS")


@contextmanager
def page_server(stack: emulators.LocalStack, function: emulators.Service, environ: dict[str, str]) -> Iterator[str]:
    """The page server on the session's emulators, for the routes `environ` configures, delivering to `function`."""
    info = StackInfo(
        project=stack.project,
        bucket=BUCKET,
        firestore_host=stack.firestore.host_port,
        storage_url=stack.storage.url,
        function_url=function.url,
        page_url="",
        settings=Settings.from_env(environ),
    )
    server = ThreadingHTTPServer(
        (emulators.LOCALHOST, 0), make_handler(info, connect(info.settings).documents, deliver_events=True)
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{emulators.LOCALHOST}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def page_url(stack: emulators.LocalStack, function_server: emulators.Service) -> Iterator[str]:
    """The page for the built-in route (CharaForge's showcase)."""
    with page_server(stack, function_server, {}) as url:
        yield url


@pytest.fixture(scope="module")
def routes_page_url(stack: emulators.LocalStack, routes_function_server: emulators.Service) -> Iterator[str]:
    """The page for the example routes file's three routes."""
    with page_server(stack, routes_function_server, {"ROUTES_FILE": ROUTES_FILE}) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium through the system chromedriver, with a fresh profile."""
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("Chromium or chromedriver not installed (apt-get install -y chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (requirements-dev.txt)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    with tempfile.TemporaryDirectory(prefix="page-browser-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        # An explicit driver path: Selenium Manager is never asked to find or download anything.
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            yield driver
        finally:
            driver.quit()


def choose_file(browser: Any, page_url: str, image: Path, route: str = "showcase") -> None:
    """Open the page, pick the route and choose `image` in the file input, as a person clicking the drop zone."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.select import Select
    from selenium.webdriver.support.wait import WebDriverWait

    browser.get(page_url)
    WebDriverWait(browser, 10).until(lambda driver: driver.find_elements(By.CSS_SELECTOR, "#route option"))
    Select(browser.find_element(By.ID, "route")).select_by_value(route)
    browser.find_element(By.ID, "file").send_keys(str(image))


def settled_status(browser: Any) -> str:
    """The newest card's status text once it reads complete or failed."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    def status(driver: Any) -> str | None:
        text = driver.find_element(By.CSS_SELECTOR, ".card .status").text
        return text if text in ("complete", "failed") else None

    return str(WebDriverWait(browser, SETTLE_S, poll_frequency=0.1).until(status))


def screenshot(browser: Any, name: str) -> None:
    """Keep a full-page screenshot when PAGE_SCREENSHOTS names a folder."""
    if SCREENSHOTS:
        browser.set_window_size(1280, browser.execute_script("return document.body.scrollHeight") + 40)
        browser.save_screenshot(str(Path(SCREENSHOTS) / f"{name}.png"))
        browser.set_window_size(1280, 1000)


def document(stack: emulators.LocalStack, path: str) -> dict[str, Any]:
    """The document as stored, read as the page server reads it."""
    from google.cloud import firestore

    return firestore.Client(project=stack.project).document(path).get().to_dict() or {}


def test_an_image_chosen_on_the_page_completes_with_its_placeholder_painted_first(browser, page_url, stack, tmp_path):
    from selenium.webdriver.support.wait import WebDriverWait

    image = tmp_path / "sunset.jpg"
    image.write_bytes(photo(1600, 1200))
    choose_file(browser, page_url, image)

    assert settled_status(browser) == "complete"
    loaded = "const i = document.querySelector('.card .result img'); return !!i && !!i.dataset.pixels"
    WebDriverWait(browser, 30).until(lambda driver: driver.execute_script(loaded))
    seen = browser.execute_script(
        """
        const card = document.querySelector('.card');
        const frame = card.querySelector('.result .frame'), img = frame.querySelector('img');
        const original = card.querySelector('.original img');
        return {
          currentSrc: img.currentSrc, pixels: img.dataset.pixels,
          placeholderBefore: img.dataset.placeholderBefore, placeholder: frame.dataset.placeholder,
          placeholderAt: +frame.dataset.placeholderAt, loadedAt: +img.dataset.loadedAt,
          background: getComputedStyle(frame).backgroundImage,
          imgWidth: img.getBoundingClientRect().width, cardWidth: card.getBoundingClientRect().width,
          pageOverflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
          original: [original.naturalWidth, original.naturalHeight],
          variants: [...card.querySelectorAll('.variant figcaption b')].map((b) => b.textContent),
          timeline: card.querySelector('.timeline').textContent,
          documentPath: card.querySelector('.where').textContent,
        };
        """
    )
    screenshot(browser, "complete")
    manifest = document(stack, "characters/demo-character")["visuals"]["showcase"]
    chosen = [v for v in manifest["variants"].values() for f in v["formats"].values() if f["url"] == seen["currentSrc"]]
    assert chosen, f"the browser showed {seen['currentSrc']}, which the manifest does not list"
    assert seen["pixels"] == f"{chosen[0]['width']}x{chosen[0]['height']}"
    assert seen["placeholder"] == "thumbhash" and seen["background"].startswith('url("data:image/png;base64,')
    assert seen["placeholderBefore"] == "yes" and seen["placeholderAt"] <= seen["loadedAt"]
    assert seen["original"] == [1600, 1200]
    assert sorted(seen["variants"]) == sorted(manifest["variants"])
    assert seen["imgWidth"] <= seen["cardWidth"] and seen["pageOverflow"] <= 0
    assert seen["timeline"].startswith("uploading") and "complete" in seen["timeline"]
    assert "raw-uploads/demo-user/demo-character/sunset.jpg" in seen["documentPath"]


def test_a_file_that_is_no_image_shows_the_failure_code_and_message(browser, page_url, stack, tmp_path):
    from selenium.webdriver.common.by import By

    bogus = tmp_path / "notes.jpg"
    bogus.write_bytes(b"these are notes, not a JPEG\n" * 10)
    choose_file(browser, page_url, bogus)

    assert settled_status(browser) == "failed"
    screenshot(browser, "failed")
    error = document(stack, "characters/demo-character")["visuals"]["showcase"]["error"]
    assert browser.find_element(By.CSS_SELECTOR, ".card .failure .error-code").text == error["code"]
    assert browser.find_element(By.CSS_SELECTOR, ".card .failure .error-message").text == error["message"]


# --- the demo's index.html: the same page, drawn from the document embedded in it ------------------------------


def stored_variants(folder: Path, source: Image.Image, widths: tuple[int, ...]) -> dict[str, Any]:
    """A complete manifest whose variants are WebP files in `folder`, recorded by file:// URLs."""
    from image_pipeline.imaging.placeholder import make_placeholder

    variants, srcset = {}, []
    for width in widths:
        variant = source.resize((width, width * source.height // source.width))
        path = folder / f"photo-{width}.webp"
        variant.save(path, "WEBP")
        record = {"path": f"out/{path.name}", "url": path.as_uri(), "width": variant.width, "height": variant.height}
        record |= {"bytes": path.stat().st_size, "contentType": "image/webp"}
        variants[f"w{width}"] = {**record, "formats": {"webp": dict(record)}}
        srcset.append(f"{path.as_uri()} {width}w")
    return {
        "status": "complete",
        "source": {"path": "raw/photo.png", "generation": "7", "contentType": "image/png", "bytes": 1, "format": "PNG"}
        | {"width": source.width, "height": source.height},
        "variants": variants,
        "srcset": {"webp": ", ".join(srcset)},
        "placeholder": make_placeholder(source, (255, 255, 255)).as_record(),
        "error": None,
    }


def test_the_demo_page_shows_the_result_and_a_later_failure_replaces_it(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    stored, out = tmp_path / "stored", tmp_path / "demo-output"
    stored.mkdir()
    original = tmp_path / "photo.png"
    original.write_bytes(photo(1200, 900, "PNG"))
    manifest = stored_variants(stored, Image.open(original).convert("RGB"), (300, 600, 1200))
    manifest["cutout"] = {"applied": True, "model": "isnet:0123456789ab", "coverage": 0.42}
    where = Where(route="showcase", object="raw/photo.png", document="things/1", field="image")
    page = save_variants(manifest, original, out, where)

    browser.get(page.as_uri())
    loaded = "const i = document.querySelector('.card .result img'); return !!i && !!i.dataset.pixels"
    WebDriverWait(browser, 20).until(lambda driver: driver.execute_script(loaded))
    screenshot(browser, "demo-complete")
    assert browser.find_element(By.CSS_SELECTOR, ".card .status").text == "complete"
    pixels = browser.execute_script("return document.querySelector('.card .result img').dataset.pixels")
    assert pixels in {f"{v['width']}x{v['height']}" for v in manifest["variants"].values()}
    assert (
        browser.execute_script("return document.querySelector('.card .result img').dataset.placeholderBefore") == "yes"
    )
    assert browser.execute_script("return document.querySelector('.card .original img').naturalWidth") == 1200
    assert browser.find_element(By.CSS_SELECTOR, ".card .cutout").text == (
        "applied · isnet:0123456789ab · subject covers 42%"
    )
    overflow = "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    assert browser.execute_script(overflow) <= 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [".demo-files", "index.html", "original-photo.png", "photo-300.webp", "photo-600.webp", "photo-1200.webp"]
    )

    failed = {**manifest, "status": "failed", "variants": {}, "srcset": {}, "placeholder": None, "cutout": None}
    failed["error"] = {"code": "unsupported_format", "message": "not an image"}
    save_variants(failed, original, out, where)
    browser.get(page.as_uri())
    WebDriverWait(browser, 10).until(lambda driver: driver.find_elements(By.CSS_SELECTOR, ".card .failure"))
    assert browser.find_element(By.CSS_SELECTOR, ".card .status").text == "failed"
    assert browser.find_element(By.CSS_SELECTOR, ".card .error-code").text == "unsupported_format"
    assert not browser.find_elements(By.CSS_SELECTOR, ".card .result img")
    assert browser.find_element(By.CSS_SELECTOR, ".card .cutout").text == "not made (the upload failed)"
    assert sorted(p.name for p in out.iterdir()) == [".demo-files", "index.html", "original-photo.png"]


def test_a_route_with_two_formats_is_shown_through_picture_sources(browser, routes_page_url, stack, tmp_path):
    from selenium.webdriver.support.wait import WebDriverWait

    image = tmp_path / "me.png"
    image.write_bytes(photo(900, 600, "PNG"))
    choose_file(browser, routes_page_url, image, route="avatar")

    assert settled_status(browser) == "complete"
    loaded = "const i = document.querySelector('.card .result img'); return !!i && !!i.dataset.pixels"
    WebDriverWait(browser, 30).until(lambda driver: driver.execute_script(loaded))
    screenshot(browser, "avatar")
    seen = browser.execute_script(
        """
        const img = document.querySelector('.card .result img');
        const sources = [...img.parentNode.querySelectorAll('source')].map((s) => s.type);
        return {currentSrc: img.currentSrc, pixels: img.dataset.pixels, sources};
        """
    )
    manifest = document(stack, "users/demo-user")["avatar"]
    avif = {v["formats"]["avif"]["url"]: v for v in manifest["variants"].values()}
    # AVIF (the route's primary) as the <source>, WebP in the <img> for browsers without AVIF; Chromium has AVIF.
    assert seen["sources"] == ["image/avif"]
    assert seen["currentSrc"] in avif
    assert seen["pixels"] == f"{avif[seen['currentSrc']]['width']}x{avif[seen['currentSrc']]['height']}"


# --- `dev`'s page: every upload the relay delivers, whoever made it ------------------------------------------------


def test_uploads_from_a_script_appear_on_the_open_page_newest_first_and_settle_without_a_reload(browser, monkeypatch):
    from google.cloud import firestore, storage
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    with running_dev() as lines:
        for key, value in lines.client_env().items():
            monkeypatch.setenv(key, value)
        browser.get(lines.page_url)
        WebDriverWait(browser, 10).until(lambda driver: driver.find_element(By.ID, "feed-info").is_displayed())
        browser.execute_script("window.sameDocument = true")  # gone if anything reloads the page
        documents = firestore.Client(project=lines.project)
        bucket = storage.Client(project=lines.project).bucket(lines.bucket)
        for character in ("c-photo", "c-notes"):  # the built-in route waits for its owner's document
            documents.document(f"characters/{character}").set({"meta": {"userId": "u1"}})

        def cards() -> list[dict[str, str]]:
            script = """return [...document.querySelectorAll('.card')].map((card) => ({
              status: card.querySelector('.status').textContent, where: card.querySelector('.where').textContent,
              timeline: card.querySelector('.timeline').textContent, relay: card.querySelector('.relay').textContent,
              original: card.querySelector('.original img')?.naturalWidth}))"""
            return list(browser.execute_script(script))

        photo_blob = bucket.blob("raw-uploads/u1/c-photo/photo.jpg")
        photo_blob.upload_from_string(photo(1200, 900), content_type="image/jpeg")
        WebDriverWait(browser, SETTLE_S, poll_frequency=0.1).until(lambda _: cards())
        bucket.blob("raw-uploads/u1/c-notes/notes.jpg").upload_from_string(b"notes, no JPEG\n" * 10, "image/jpeg")

        def both_settled(_: Any) -> list[dict[str, str]] | None:
            seen = cards()
            return seen if [card["status"] for card in seen] == ["failed", "complete"] else None

        settled = WebDriverWait(browser, SETTLE_S, poll_frequency=0.1).until(both_settled)
        screenshot(browser, "dev-feed")
        same_document = browser.execute_script("return window.sameDocument === true")
        skipped = browser.find_element(By.ID, "skipped").get_attribute("textContent")
        manifest = documents.document("characters/c-photo").get().to_dict()["visuals"]["showcase"]
        # Opened later, the page lists what came before; when each status came, it cannot tell.
        browser.refresh()
        reopened = WebDriverWait(browser, SETTLE_S, poll_frequency=0.1).until(both_settled)

    notes, photo_card = settled
    assert same_document
    assert "raw-uploads/u1/c-notes/notes.jpg → characters/c-notes" in notes["where"]
    assert "raw-uploads/u1/c-photo/photo.jpg → characters/c-photo · visuals.showcase" in photo_card["where"]
    assert notes["timeline"].startswith("received 0.0 s → ") and "failed" in notes["timeline"]
    assert photo_card["timeline"].startswith("received 0.0 s → ") and "complete" in photo_card["timeline"]
    assert [card["timeline"] for card in reopened] == ["received → failed", "received → complete"]
    assert photo_card["relay"].startswith("relay: the function answered 200 in ")
    assert photo_card["original"] == 1200  # the original as stored, from the emulator
    assert manifest["source"]["generation"] == str(photo_blob.generation)
    assert all(variant["path"] in skipped for variant in manifest["variants"].values())
