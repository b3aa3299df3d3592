"""The `dev` stack: emulators, fake-gcs-server publishing to Pub/Sub behind the Storage front (storage_front.py), the
function (restarted on code changes), the relay between them, and what the local page needs to know about it all.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from image_pipeline.devtools import emulators
from image_pipeline.devtools.emulators import LOCALHOST, REPO_ROOT, EmulatorError, Service
from image_pipeline.devtools.firebase_storage import Upstream
from image_pipeline.devtools.storage_front import StorageFront

if TYPE_CHECKING:
    from image_pipeline.settings import Settings

_log = logging.getLogger(__name__)

TOPIC = "object-events"
SUBSCRIPTION = "image-pipeline-relay"


@dataclass(frozen=True)
class Ports:
    """Where each local service listens. The defaults are fixed so an app's configuration can point at them; they
    stay clear of firebase.json's emulators (Firestore 8080, Storage 9199, Auth 9099) and Firebase's Pub/Sub (8085).
    """

    page: int = 8480
    firestore: int = 8481
    storage: int = 8482
    pubsub: int = 8483
    function: int = 8484

    @classmethod
    def free(cls) -> Ports:
        """Ports that were free a moment ago."""
        return cls(*(emulators.free_port() for _ in range(5)))

    def check_free(self, skip: Iterable[str] = ()) -> None:
        """EmulatorError naming the first port something already listens on."""
        for name, port in vars(self).items():
            if name not in skip and _listening(port):
                raise EmulatorError(
                    f"port {port} ({name}) is already in use: stop what listens there (an earlier `dev`?) "
                    "or pass --free-ports"
                )


def _listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((LOCALHOST, port)) == 0


@dataclass(frozen=True)
class StackInfo:
    """What the page (and the five ready lines) know about the running stack."""

    project: str
    bucket: str
    firestore_host: str  # HOST:PORT, the FIRESTORE_EMULATOR_HOST form
    storage_url: str  # the Storage front: JSON API under /storage/v1 and /upload/storage/v1, Firebase's under /v0
    function_url: str
    page_url: str
    settings: Settings

    def client_env(self) -> dict[str, str]:
        """Variables that point google-cloud-* clients (and the function) at the emulators."""
        return {
            "FIRESTORE_EMULATOR_HOST": self.firestore_host,
            "STORAGE_EMULATOR_HOST": self.storage_url,
            "GOOGLE_CLOUD_PROJECT": self.project,
        }

    def function_env(self, environ: Mapping[str, str]) -> dict[str, str]:
        """The function's variables: the clients' and, unless `environ` sets its own, download URLs in Firebase's
        `/v0` form on the Storage port, which the client SDKs' getDownloadURL answers too."""
        download_base = (
            {} if (environ.get("DOWNLOAD_URL_BASE") or "").strip() else {"DOWNLOAD_URL_BASE": self.download_url_base}
        )
        return {**self.client_env(), **download_base}

    @property
    def download_url_base(self) -> str:
        """Firebase's API on the Storage front."""
        return f"{self.storage_url}/v0"

    def ready_lines(self) -> list[str]:
        """The five lines `dev` prints on stdout once ready: a contract scripts may parse."""
        return [
            *(f"export {key}={value}" for key, value in self.client_env().items()),
            f"bucket: {self.bucket}",
            f"page: {self.page_url}",
        ]


class FunctionProcess:
    """functions-framework serving `main.process_image` on a fixed port, its output on our stderr, restartable."""

    def __init__(self, port: int, env: Mapping[str, str]) -> None:
        self.port = port
        self._env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The function's URL."""
        return f"http://{LOCALHOST}:{self.port}/"

    @property
    def pid(self) -> int | None:
        """The running process's id (its process group's too)."""
        return None if self._process is None else self._process.pid

    def start(self, timeout_s: float = 30) -> None:
        """Start it and wait until it accepts connections; EmulatorError if it exits first."""
        executable = Path(sys.executable).with_name("functions-framework")
        command = [str(executable)] if executable.exists() else [sys.executable, "-m", "functions_framework"]
        command += ["--target", "process_image", "--source", str(REPO_ROOT / "main.py")]
        command += ["--host", LOCALHOST, "--port", str(self.port)]
        self._process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=sys.stderr, stderr=sys.stderr, env=self._env,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while not _listening(self.port):
            if self._process.poll() is not None:
                raise EmulatorError(f"the function exited with code {self._process.returncode} while starting")
            if time.monotonic() > deadline:
                raise EmulatorError(f"the function did not listen on port {self.port} within {timeout_s:.0f} s")
            time.sleep(0.1)

    def exited(self) -> int | None:
        """Its exit code if it has exited, else None."""
        return None if self._process is None else self._process.poll()

    def stop(self) -> None:
        """Stop its whole process group (gunicorn and its workers)."""
        if self._process is not None:
            emulators.stop_group(self._process)


class CodeWatcher:
    """Notices edits to the function's code (and the routes file) by modification times, polled."""

    def __init__(self, roots: Iterable[Path]) -> None:
        self._roots = tuple(roots)
        self._seen = self._snapshot()

    def _snapshot(self) -> dict[Path, float]:
        stamps: dict[Path, float] = {}
        for root in self._roots:
            files = sorted(root.rglob("*")) if root.is_dir() else [root]
            for path in files:
                if path.suffix in {".py", ".toml", ".json"} or path == root:
                    try:
                        stamps[path] = path.stat().st_mtime
                    except OSError:
                        continue
        return stamps

    def changed(self) -> list[Path]:
        """Files added, removed or modified since the last call."""
        now = self._snapshot()
        changes = sorted(path for path in now.keys() | self._seen.keys() if now.get(path) != self._seen.get(path))
        self._seen = now
        return changes


def watched_roots(settings_env: Mapping[str, str]) -> list[Path]:
    """The function's code and, when set, the routes file or folder."""
    roots = [REPO_ROOT / "image_pipeline", REPO_ROOT / "main.py"]
    routes = settings_env.get("ROUTES_FILE", "").strip()
    if routes:
        roots.append(Path(routes).resolve())
    return roots


@dataclass(frozen=True)
class Services:
    """What `dev` started (the Firestore emulator is absent when attached to a running one). fake-gcs-server listens
    on an internal port; clients reach it, and Firebase's API, through the front on the Storage port."""

    firestore: Service | None
    pubsub: Service
    storage: Service
    front: StorageFront

    def all(self) -> list[Service | StorageFront]:
        """Everything started, oldest first."""
        started = (self.firestore, self.pubsub, self.storage, self.front)
        return [service for service in started if service is not None]


def start_services(ports: Ports, project: str, firestore_host: str | None) -> Services:
    """Start the emulators (Pub/Sub first: fake-gcs-server publishes to it) and the Storage front; stop those started
    if one fails."""
    started: list[Service | StorageFront] = []
    try:
        pubsub = emulators.start_pubsub(port=ports.pubsub)
        started.append(pubsub)
        from image_pipeline.devtools.relay import Subscription

        Subscription(pubsub.host_port, project, TOPIC, SUBSCRIPTION).create()
        events = ("-event.pubsub-project-id", project, "-event.pubsub-topic", TOPIC, "-event.list", "finalize")
        storage = emulators.start_storage(
            port=_internal_port(ports),
            extra_args=events,
            env={"PUBSUB_EMULATOR_HOST": pubsub.host_port},
            public_port=ports.storage,
        )
        started.append(storage)
        front = StorageFront(ports.storage, Upstream(LOCALHOST, storage.port))
        started.append(front)
        firestore = None if firestore_host else emulators.start_firestore(project, port=ports.firestore)
        return Services(firestore, pubsub, storage, front)
    except BaseException:
        for service in reversed(started):
            service.stop()
        raise


def _internal_port(ports: Ports) -> int:
    """A free port for fake-gcs-server behind the front, and none of `ports` (--free-ports' are not bound yet)."""
    taken = set(vars(ports).values())
    port = emulators.free_port()
    while port in taken:
        port = emulators.free_port()
    return port


def stack_info(
    services: Services, ports: Ports, project: str, bucket: str, firestore_host: str | None, settings: Settings
) -> StackInfo:
    """What the page and the ready lines say about the started services."""
    return StackInfo(
        project=project,
        bucket=bucket,
        firestore_host=firestore_host or (services.firestore.host_port if services.firestore else ""),
        storage_url=services.front.url,
        function_url=f"http://{LOCALHOST}:{ports.function}/",
        page_url=f"http://{LOCALHOST}:{ports.page}/",
        settings=settings,
    )
