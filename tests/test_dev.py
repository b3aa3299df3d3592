"""`python -m image_pipeline dev` end to end: ready lines, an upload that completes by itself, a clean stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from image_pipeline.devtools import emulators
from tests.dev_process import REPO_ROOT, alive, descendants, running_dev
from tests.waits import wait_until

SAMPLE = REPO_ROOT / "image_pipeline" / "sample" / "sample.jpg"


@pytest.fixture(scope="module")
def firebase_style_firestore() -> Iterator[emulators.Service]:
    """A Firestore emulator `dev` did not start, as the Firebase Emulator Suite's would be."""
    service = emulators.start_firestore(emulators.DEFAULT_PROJECT)
    yield service
    service.stop()


def upload_and_wait(lines, timeout_s: float = 60) -> dict:
    """Seed the character, upload the sample where the built-in route looks, and wait for the manifest to settle."""
    from google.cloud import firestore, storage

    from image_pipeline.commands.demo import upload
    from image_pipeline.devtools.demo_upload import DemoUpload
    from image_pipeline.manifest import field_value
    from image_pipeline.ports import nested_fields
    from image_pipeline.settings import Settings

    settings = Settings.from_env({})
    route = settings.routes[0]
    plan = DemoUpload.of(route, "sample.jpg", settings.routes)
    documents = firestore.Client(project=lines.project)
    if plan.seed is not None:
        documents.document(plan.document).set(nested_fields(plan.seed))
    upload(storage.Client(project=lines.project).bucket(lines.bucket), SAMPLE, plan.name)
    manifest: dict[str, Any] = {}

    def settled() -> bool:
        nonlocal manifest
        manifest = field_value(documents.document(plan.document).get().to_dict() or {}, route.field) or {}
        return manifest.get("status") in {"complete", "failed"}

    wait_until(settled, timeout_s, lambda: f"the document to settle; its manifest: {manifest}", interval_s=0.1)
    return manifest


@pytest.mark.parametrize("attach", [False, True], ids=["own-firestore", "attached-firestore"])
def test_an_upload_completes_by_itself_and_sigterm_stops_every_process(
    monkeypatch, request: pytest.FixtureRequest, attach: bool
) -> None:
    args: tuple[str, ...] = ()
    if attach:
        attached = request.getfixturevalue("firebase_style_firestore")
        args = ("--firestore-host", attached.host_port)
    with running_dev(args=args) as lines:
        for key, value in lines.client_env().items():
            monkeypatch.setenv(key, value)
        started = descendants(lines.process.pid)
        groups = {os.getpgid(pid) for pid in started if alive(pid)}

        manifest = upload_and_wait(lines)

        assert manifest["status"] == "complete"
        # What the page shows is the page's tests' business; here: it is served where the line says.
        assert lines.page_url.startswith("http://127.0.0.1:") and _answers_http(lines.page_url)
        if attach:
            assert lines.firestore_host == attached.host_port
        lines.process.send_signal(signal.SIGTERM)
        assert lines.process.wait(timeout=60) == 0
    assert [pid for pid in started if alive(pid)] == []
    assert [group for group in groups if _group_exists(group)] == []
    stderr = lines.stderr_path.read_text()
    assert "sample.jpg -> 200" in stderr and ": complete" in stderr
    if attach:
        assert emulators.http_ok(f"http://{attached.host_port}/"), "dev stopped an emulator it did not start"


def _answers_http(url: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def _group_exists(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize(
    ("variable", "value"),
    [("LOG_LEVEL", "loud"), ("VARIANTS", "thumb:nope"), ("ROUTES_FILE", "no/such/routes.toml")],
)
def test_a_bad_setting_is_one_line_naming_it_and_exit_2(variable: str, value: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "image_pipeline", "dev", "--free-ports"],
        cwd=REPO_ROOT,
        env={**os.environ, variable: value},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert (done.returncode, done.stdout) == (2, "")
    [line] = done.stderr.splitlines()
    assert variable in line and line.startswith("python -m image_pipeline dev: error:")


def test_no_firestore_emulator_at_the_given_address_is_an_error_naming_it() -> None:
    address = f"127.0.0.1:{emulators.free_port()}"
    done = subprocess.run(
        [sys.executable, "-m", "image_pipeline", "dev", "--free-ports", "--firestore-host", address],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 2 and f"--firestore-host {address}" in done.stderr and done.stdout == ""
