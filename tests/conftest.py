"""End-to-end fixtures: the Firestore emulator, fake-gcs-server (behind a fault proxy) and the function served by
functions-framework, once as the built-in route and once configured by the example routes file.

They start on first use only, so the unit tests run without them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from image_pipeline.devtools import emulators
from tests.eventarc_stub import EventarcStub

# Three apps' routes in one file (relative to the source root, as a deployment gives it).
ROUTES_FILE = "examples/routes.toml"


@pytest.fixture(scope="session")
def stack() -> Iterator[emulators.LocalStack]:
    """Both emulators, with this process's Google clients pointed at them."""
    with emulators.local_stack() as running:
        saved = {key: os.environ.get(key) for key in running.client_env()}
        os.environ.update(running.client_env())
        emulators.create_bucket(running.storage.url, _backend_module().BUCKET)
        yield running
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(autouse=True)
def faults_end_with_their_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """A fault a test injects into the Storage proxy ends with that test, not with the next test that resets it."""
    yield
    if "storage_proxy" in request.fixturenames:
        request.getfixturevalue("storage_proxy").reset()


@pytest.fixture(scope="session")
def storage_proxy(stack: emulators.LocalStack):
    """The fault-injecting proxy the function uses to reach fake-gcs-server."""
    proxy = _backend_module().FaultProxy(stack.storage.port)
    yield proxy
    proxy.close()


@pytest.fixture(scope="session")
def function_server(stack: emulators.LocalStack, storage_proxy) -> Iterator[emulators.Service]:
    """`main.process_image` served over real HTTP by functions-framework, as Cloud Run would."""
    server = emulators.start_function(_function_env(stack, storage_proxy))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def routes_function_server(stack: emulators.LocalStack, storage_proxy) -> Iterator[emulators.Service]:
    """A second function, configured by the example routes file (three apps' routes), on the same emulators."""
    server = emulators.start_function({**_function_env(stack, storage_proxy), "ROUTES_FILE": ROUTES_FILE})
    yield server
    server.stop()


@pytest.fixture
def backend(stack: emulators.LocalStack, function_server: emulators.Service, storage_proxy):
    """A clean bucket and database, and the helpers to drive and inspect them."""
    return _clean_backend(stack, function_server, storage_proxy)


@pytest.fixture
def routes_backend(stack: emulators.LocalStack, routes_function_server: emulators.Service, storage_proxy):
    """`backend`, driving the function configured by the example routes file."""
    return _clean_backend(stack, routes_function_server, storage_proxy)


@pytest.fixture
def eventarc() -> Iterator[EventarcStub]:
    """A local stand-in for the Eventarc Publishing API (tests/eventarc_stub.py), closed after the test."""
    stub = EventarcStub()
    yield stub
    stub.close()


def _function_env(stack: emulators.LocalStack, storage_proxy) -> dict[str, str]:
    """The function's environment: the emulators, Storage through the fault proxy, short client retries."""
    return {
        **stack.client_env(),
        "STORAGE_EMULATOR_HOST": storage_proxy.url,
        "DOWNLOAD_URL_BASE": f"{stack.storage.url}/storage/v1",
        "CLIENT_RETRY_S": "1",
        "CLIENT_TIMEOUT_S": "5",
    }


def _clean_backend(stack: emulators.LocalStack, server: emulators.Service, storage_proxy):
    """Empty the bucket and the database, reset the proxy, and return the helpers for `server`."""
    from google.cloud import firestore, storage

    module = _backend_module()
    storage_proxy.reset()
    emulators.wipe_firestore(stack.firestore.host_port, stack.project)
    helper = module.Backend(server.url, server.log_path, stack.storage.url, storage.Client(), firestore.Client())
    helper.wipe()
    return helper


def _backend_module():
    """tests.backend, imported when an end-to-end fixture is first used (it loads the Google clients and Pillow)."""
    from tests import backend

    return backend
