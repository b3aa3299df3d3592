"""Fault injection on the real emulators.

Storage faults through the proxy, this module's own Firestore emulator stopped, frozen and restarted, and the function
process killed mid-upload. Every fault ends the attempt with a 500 inside the client bounds, nothing partial is recorded
as complete, the document never goes back, and a redelivery completes.
"""

from __future__ import annotations

import os
import signal
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from google.cloud import firestore, storage

from image_pipeline.devtools import emulators
from image_pipeline.settings import Settings
from tests.backend import Backend, photo
from tests.faultproxy import ANY, DOWNLOAD, UPLOAD, Fault, FaultProxy, Match
from tests.invariants import VARIANTS, DocumentHistory, assert_complete, output_sets, progress, regressions
from tests.waits import wait_until

OWNER = "user-f"
CHARACTER = "char-f"
SOURCE = f"raw-uploads/{OWNER}/{CHARACTER}/portrait.jpg"
OUTPUTS = f"showcase-images/{OWNER}/{CHARACTER}/"
CLIENT_ENV = {"CLIENT_TIMEOUT_S": "3", "CLIENT_RETRY_S": "1"}
SETTINGS = Settings.from_env(CLIENT_ENV)
# One stalled call costs the client timeout; its retry window and the rest of the attempt fit in the slack.
ATTEMPT_BOUND_S = SETTINGS.client_timeout_s + SETTINGS.client_retry_s + 5
REDELIVERIES = 10
# The pause before a redelivery: it stands in for the platform's backoff (Eventarc's starts at seconds), shortened to
# keep the tests quick. It proves nothing by itself; the redelivery's answer is what is checked.
REDELIVERY_PAUSE_S = 0.3


class OwnFirestore:
    """A Firestore emulator for this module only, on a fixed port.

    Its data survives stop() and start() as Firestore's would.
    """

    def __init__(self, project: str) -> None:
        self.project = project
        self.port = emulators.free_port()
        self._exports = Path(tempfile.mkdtemp(prefix="firestore-export-"))
        self._service: emulators.Service | None = None
        self._frozen = False
        self.start()

    @property
    def host_port(self) -> str:
        """`127.0.0.1:PORT`, for FIRESTORE_EMULATOR_HOST."""
        return f"{emulators.LOCALHOST}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the emulator process is up (frozen or not)."""
        return self._service is not None and self._service.process.poll() is None

    def start(self) -> None:
        """Start on the same port, importing the data exported at the last stop."""
        command = emulators.firestore_emulator_command()
        command += [f"--host={emulators.LOCALHOST}", f"--port={self.port}", f"--project_id={self.project}"]
        exports = sorted(self._exports.glob("*/*/*.overall_export_metadata"))
        if exports:
            command.append(f"--import-data={exports[-1]}")
        self._service = emulators.spawn("firestore-emulator", command, self.port)
        emulators.wait_until_ready(self._service, lambda: emulators.http_ok(f"http://{self.host_port}/"), 60)

    def stop(self) -> None:
        """Export the data, then stop the emulator and wait until its port is closed."""
        directory = self._exports / str(len(list(self._exports.iterdir())))
        directory.mkdir()
        database = f"projects/{self.project}/databases/(default)"
        body = f'{{"database": "{database}", "export_directory": "{directory}"}}'.encode()
        url = f"http://{self.host_port}/emulator/v1/projects/{self.project}:export"
        emulators.request("POST", url, body, {"Content-Type": "application/json"})
        self._service.stop()
        wait_until(lambda: not _accepts(self.port), 10, "the stopped Firestore emulator to close its port")

    def freeze(self) -> None:
        """SIGSTOP the emulator: connections hang instead of failing."""
        os.killpg(self._service.process.pid, signal.SIGSTOP)
        self._frozen = True

    def thaw(self) -> None:
        """SIGCONT a frozen emulator."""
        if self._frozen:
            os.killpg(self._service.process.pid, signal.SIGCONT)
            self._frozen = False

    def client(self) -> firestore.Client:
        """A Firestore client on this emulator."""
        with mock.patch.dict(os.environ, {"FIRESTORE_EMULATOR_HOST": self.host_port}):
            return firestore.Client(project=self.project)

    def close(self) -> None:
        """Stop for good."""
        self.thaw()
        if self._service is not None:
            self._service.stop()


def _accepts(port: int) -> bool:
    """Whether something accepts TCP connections on the port."""
    with socket.socket() as sock:
        return sock.connect_ex((emulators.LOCALHOST, port)) == 0


@dataclass
class World:
    """The function served on this module's Firestore emulator.

    It reaches the session's fake-gcs-server through a fault proxy.
    """

    stack: emulators.LocalStack
    proxy: FaultProxy
    firestore: OwnFirestore
    backend: Backend
    function: emulators.Service | None = None
    overrides: dict[str, str] | None = None

    def start_function(self, **overrides: str) -> None:
        """Serve `main.process_image` (again), with these settings changed, and point the backend's deliveries at it."""
        if self.function is not None:
            self.function.stop()
        self.overrides = overrides
        env = {
            **self.stack.client_env(),
            **CLIENT_ENV,
            **overrides,
            "FIRESTORE_EMULATOR_HOST": self.firestore.host_port,
            "STORAGE_EMULATOR_HOST": self.proxy.url,
            "DOWNLOAD_URL_BASE": f"{self.stack.storage.url}/storage/v1",
        }
        self.function = emulators.start_function(env, threads=4)
        self.backend.function_url, self.backend.function_log = self.function.url, self.function.log_path

    def kill_function(self) -> None:
        """SIGKILL the whole functions-framework process group, as a crashed or evicted instance."""
        os.killpg(self.function.process.pid, signal.SIGKILL)
        self.function.process.wait(timeout=10)

    def history(self) -> DocumentHistory:
        """A listener on the character document, recording every state it goes through."""
        return DocumentHistory(self.backend.firestore_client.collection("characters").document(CHARACTER))

    def redeliver_until_done(self, source: dict[str, Any], event_id: str) -> list[int]:
        """Redeliver as the platform does after a 500, at most REDELIVERIES times, until it is acknowledged; the
        statuses.

        A poll bounded by the number of deliveries: whether the function can finish now shows only in its answer.
        """
        statuses = [self.backend.deliver(source, event_id=event_id)]
        while statuses[-1] == 500 and len(statuses) < REDELIVERIES:
            time.sleep(REDELIVERY_PAUSE_S)
            statuses.append(self.backend.deliver(source, event_id=event_id))
        return statuses


@pytest.fixture(scope="module")
def own_world(stack: emulators.LocalStack) -> Iterator[World]:
    """Started once for the module: the proxy, the Firestore emulator and the function; each stopped in any case."""
    with ExitStack() as started:
        proxy = FaultProxy(stack.storage.port)
        started.callback(proxy.close)
        own_firestore = OwnFirestore(stack.project)
        started.callback(own_firestore.close)
        backend = Backend("", Path(os.devnull), stack.storage.url, storage.Client(), own_firestore.client())
        world = World(stack, proxy, own_firestore, backend)
        started.callback(lambda: world.function and world.function.stop())
        world.start_function()
        yield world


@pytest.fixture
def world(own_world: World) -> Iterator[World]:
    """A clean world: no rules, Firestore up and empty, the function serving, an empty bucket, a seeded character."""
    own_world.proxy.reset()
    own_world.firestore.thaw()
    if not own_world.firestore.running:
        own_world.firestore.start()
    if own_world.function.process.poll() is not None or own_world.overrides:
        own_world.start_function()
    emulators.wipe_firestore(own_world.firestore.host_port, own_world.firestore.project)
    own_world.backend.wipe()
    own_world.backend.seed_character(CHARACTER, OWNER)
    yield own_world
    own_world.proxy.reset()
    own_world.firestore.thaw()


def generations(backend: Backend) -> dict[str, int]:
    """Each output's name and stored generation: a rewrite would change the generation."""
    return {name: blob.generation for name, blob in backend.objects(OUTPUTS).items()}


def summaries(backend: Backend, event_id: str) -> list[tuple[str, str, str]]:
    """(severity, outcome, stage) of each summary line the function logged for the event."""
    return [(line["severity"], line["outcome"], line["stage"]) for line in backend.summary_lines(event_id)]


def assert_recovered(world: World, source: dict[str, Any], history: DocumentHistory, kept: dict[str, int]) -> None:
    """Complete and correct for the source, one set of outputs, objects written before the fault kept, no regression."""
    assert_complete(world.backend, CHARACTER, source, OUTPUTS)
    assert output_sets(world.backend.objects(OUTPUTS)) == {source["generation"]: VARIANTS}
    after = generations(world.backend)
    assert {name: after[name] for name in kept} == kept
    assert regressions(history.settle()) == []


@pytest.mark.parametrize(
    ("match", "fault", "options", "stage", "written"),
    [
        pytest.param(DOWNLOAD, Fault.STATUS, {"status": 503}, "download", 0, id="download-503"),
        pytest.param(DOWNLOAD, Fault.STATUS, {"status": 429}, "download", 0, id="download-429"),
        pytest.param(DOWNLOAD, Fault.RESET, {}, "download", 0, id="download-reset"),
        pytest.param(DOWNLOAD, Fault.CUT, {}, "download", 0, id="download-cut-midway"),
        pytest.param(DOWNLOAD, Fault.CORRUPT, {}, "download", 0, id="download-corrupted-in-transit"),
        pytest.param(UPLOAD, Fault.STATUS, {"status": 503, "skip": 1}, "upload", 1, id="2nd-upload-503"),
        pytest.param(UPLOAD, Fault.STATUS, {"status": 429, "skip": 2}, "upload", 2, id="3rd-upload-429"),
        pytest.param(UPLOAD, Fault.RESET, {"skip": 1}, "upload", 1, id="2nd-upload-reset"),
        pytest.param(UPLOAD, Fault.LOSE_RESPONSE, {}, "upload", 1, id="upload-stored-but-answer-lost"),
    ],
)
def test_a_storage_fault_answers_500_then_the_redelivery_completes(
    world: World, match: Match, fault: Fault, options: dict[str, Any], stage: str, written: int
) -> None:
    source = world.backend.upload(SOURCE, photo(800, 600))
    history = world.history()
    rule = world.proxy.inject(match, fault, **options)
    event_id = uuid.uuid4().hex

    assert world.backend.deliver(source, event_id=event_id) == 500
    assert rule.injected >= 1
    assert progress(world.backend.document(CHARACTER)) == (int(source["generation"]), 0)
    kept = generations(world.backend)
    assert len(kept) == written

    world.proxy.reset()
    assert world.backend.deliver(source, event_id=event_id) == 200

    assert_recovered(world, source, history, kept)
    assert summaries(world.backend, event_id) == [("WARNING", "retry", stage), ("INFO", "complete", "record")]


@pytest.mark.parametrize("seed", [1, 2])
def test_random_storage_faults_never_record_a_partial_result(world: World, seed: int) -> None:
    source = world.backend.upload(SOURCE, photo(800, 600))
    history = world.history()
    rules = [
        world.proxy.inject(ANY, Fault.STATUS, status=503, fraction=0.2, seed=seed),
        world.proxy.inject(ANY, Fault.RESET, fraction=0.2, seed=seed + 100),
        world.proxy.inject(DOWNLOAD, Fault.CUT, fraction=0.2, seed=seed + 200),
    ]

    statuses = world.redeliver_until_done(source, uuid.uuid4().hex)

    assert statuses[-1] == 200 and set(statuses[:-1]) <= {500}
    assert sum(rule.injected for rule in rules) > 0
    world.proxy.reset()
    assert_recovered(world, source, history, {})


@pytest.mark.parametrize(("match", "stage"), [(DOWNLOAD, "download"), (UPLOAD, "upload")], ids=["download", "upload"])
def test_a_stalled_storage_request_ends_the_attempt_within_the_client_bounds(
    world: World, match: Match, stage: str
) -> None:
    source = world.backend.upload(SOURCE, photo(800, 600))
    history = world.history()
    rule = world.proxy.inject(match, Fault.STALL)
    event_id = uuid.uuid4().hex

    started = time.monotonic()
    status = world.backend.deliver(source, event_id=event_id)
    elapsed = time.monotonic() - started

    assert status == 500 and rule.injected >= 1
    assert SETTINGS.client_timeout_s <= elapsed < min(ATTEMPT_BOUND_S, 30)
    world.proxy.reset()
    assert world.backend.deliver(source, event_id=event_id) == 200
    assert_recovered(world, source, history, {})
    assert summaries(world.backend, event_id) == [("WARNING", "retry", stage), ("INFO", "complete", "record")]


def test_firestore_down_when_the_event_arrives_is_retried_until_it_is_back(world: World) -> None:
    source = world.backend.upload(SOURCE, photo(800, 600))
    history = world.history()
    event_id = uuid.uuid4().hex
    world.firestore.stop()

    assert world.backend.deliver(source, event_id=event_id) == 500
    assert world.backend.objects(OUTPUTS) == {}

    world.firestore.start()
    history.follow()
    assert world.backend.document(CHARACTER) == {"meta": {"userId": OWNER}}
    statuses = world.redeliver_until_done(source, event_id)
    assert statuses[-1] == 200 and set(statuses[:-1]) <= {500}
    assert_recovered(world, source, history, {})
    assert summaries(world.backend, event_id)[0] == ("WARNING", "retry", "claim")


@pytest.mark.parametrize("outage", ["stopped", "frozen", "restarted"])
def test_firestore_lost_mid_run_never_records_a_partial_result(world: World, outage: str) -> None:
    if outage == "restarted":
        # The held upload must outlast the emulator's restart (a few seconds) without hitting the client timeout.
        world.start_function(CLIENT_TIMEOUT_S="15")
    source = world.backend.upload(SOURCE, photo(800, 600))
    history = world.history()
    held = world.proxy.inject(UPLOAD, Fault.HOLD, nth=frozenset({1}))
    event_id = uuid.uuid4().hex

    with ThreadPoolExecutor(1) as pool:
        attempt = pool.submit(world.backend.deliver, source, event_id)
        assert world.proxy.wait_for(held)
        {"stopped": world.firestore.stop, "frozen": world.firestore.freeze, "restarted": _restart(world)}[outage]()
        released = time.monotonic()
        world.proxy.release()
        status = attempt.result(timeout=60)
    elapsed = time.monotonic() - released

    kept = generations(world.backend)
    assert len(kept) == 3, (status, elapsed, world.proxy.seen, world.function.log_tail(3000))
    if outage == "stopped":
        world.firestore.start()
    world.firestore.thaw()
    history.follow()
    if status == 500:
        assert progress(world.backend.document(CHARACTER)) == (int(source["generation"]), 0)
        assert elapsed < ATTEMPT_BOUND_S
        statuses = world.redeliver_until_done(source, event_id)
        assert statuses[-1] == 200 and set(statuses[:-1]) <= {500}
    assert (status, outage) in {(500, "stopped"), (500, "frozen"), (200, "restarted"), (500, "restarted")}
    assert_recovered(world, source, history, kept)


def _restart(world: World) -> Any:
    """Stop and start the Firestore emulator."""

    def restart() -> None:
        world.firestore.stop()
        world.firestore.start()

    return restart


@pytest.mark.parametrize(
    "in_flight",
    [
        pytest.param(Fault.STALL, id="in-flight-upload-lost"),
        pytest.param(Fault.HOLD, id="in-flight-upload-lands-later"),
    ],
)
def test_a_function_killed_mid_upload_is_completed_by_the_redelivery(world: World, in_flight: Fault) -> None:
    source = world.backend.upload(SOURCE, photo(800, 600))
    history = world.history()
    second_upload = world.proxy.inject(UPLOAD, in_flight, nth=frozenset({2}))
    event_id = uuid.uuid4().hex

    with ThreadPoolExecutor(1) as pool:
        attempt = pool.submit(world.backend.deliver, source, event_id)
        assert world.proxy.wait_for(second_upload)
        world.kill_function()
        assert attempt.exception(timeout=30) is not None
    world.proxy.release()
    # A held upload is forwarded once released and lands; a stalled one is reset by the proxy, never forwarded.
    expected = 2 if in_flight is Fault.HOLD else 1
    wait_until(lambda: len(generations(world.backend)) == expected, 10, f"{expected} outputs stored after the kill")
    kept = generations(world.backend)
    assert progress(world.backend.document(CHARACTER)) == (int(source["generation"]), 0)

    world.start_function()
    assert world.backend.deliver(source, event_id=event_id) == 200

    assert_recovered(world, source, history, kept)
