"""`dev`: the local loop. Emulators, the function (restarted on code changes) and a relay that triggers it on every
upload, as Eventarc does, until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from image_pipeline.devtools.feed import UploadFeed
    from image_pipeline.devtools.relay import Delivery
    from image_pipeline.devtools.stack import StackInfo
    from image_pipeline.ports import DocumentStore
    from image_pipeline.uploads import Upload

EPILOG = """\
Once everything answers, stdout gets exactly five lines (events, summaries and the function's logs go to stderr):
  export FIRESTORE_EMULATOR_HOST=127.0.0.1:8481
  export STORAGE_EMULATOR_HOST=http://127.0.0.1:8482
  export GOOGLE_CLOUD_PROJECT=demo-image-pipeline
  bucket: demo-image-pipeline.appspot.com
  page: http://127.0.0.1:8480/

Default ports: page 8480, Firestore emulator 8481, Storage 8482, Pub/Sub emulator 8483, function 8484.
Uploads trigger the function from any Cloud Storage JSON API client pointed at STORAGE_EMULATOR_HOST (the Admin
SDKs, google-cloud-storage) and from the Firebase client SDKs: connectStorageEmulator(storage, "127.0.0.1", 8482)
and connectFirestoreEmulator(db, "127.0.0.1", 8481). Routes come from ROUTES_FILE, as in production.

exit codes: 0 stopped by Ctrl-C or SIGTERM, 2 a bad setting or a local service that could not start
"""

_log = logging.getLogger("image_pipeline.dev")


def add_parser(subparsers: Any) -> None:
    """Register the `dev` command."""
    parser = subparsers.add_parser(
        "dev",
        help="run the function locally, triggered by every upload to the storage emulator",
        description="Start the Firestore, Pub/Sub and Cloud Storage emulators, the function (restarted when its code "
        "changes), a relay that delivers each upload's event as Eventarc would, and a page showing every upload as "
        "it is processed; run until Ctrl-C.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--free-ports", action="store_true", help="use free ports instead of the fixed defaults")
    parser.add_argument(
        "--firestore-host",
        metavar="HOST:PORT",
        help="use this running Firestore emulator (e.g. the Firebase Emulator Suite's, 127.0.0.1:8080) "
        "instead of starting one",
    )
    parser.add_argument("--project", default=None, metavar="ID", help="project ID (default: demo-image-pipeline)")
    parser.add_argument("--bucket", default=None, metavar="NAME", help="the bucket (default: PROJECT.appspot.com)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the stack until a signal; 2 when the settings are bad or a service cannot start."""
    from image_pipeline.settings import Settings

    settings = Settings.from_env()
    _log_to_stderr()
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    return serve(args, settings, stopping)


def serve(args: argparse.Namespace, settings: Any, stopping: threading.Event) -> int:
    """Start everything, print the ready lines, then watch the code until `stopping` is set; stop all on the way out."""
    from image_pipeline.bootstrap import connect
    from image_pipeline.devtools import emulators, stack
    from image_pipeline.devtools.feed import UploadFeed
    from image_pipeline.devtools.relay import Relay, Subscription

    project = args.project or emulators.DEFAULT_PROJECT
    ports = stack.Ports.free() if args.free_ports else stack.Ports()
    ports.check_free(skip=("firestore",) if args.firestore_host else ())
    if args.firestore_host and not emulators.http_ok(f"http://{args.firestore_host}/"):
        raise emulators.EmulatorError(f"no Firestore emulator answers at --firestore-host {args.firestore_host}")
    _log.info("starting the Pub/Sub emulator, fake-gcs-server and the Firestore emulator ...")
    services = stack.start_services(ports, project, args.firestore_host)
    function = page = relay = None
    try:
        info = stack.stack_info(
            services, ports, project, args.bucket or f"{project}.appspot.com", args.firestore_host, settings
        )
        os.environ.update(info.client_env())  # the relay's reporter and the page use the Google clients
        documents = connect(settings).documents  # one Firestore client for both
        emulators.create_bucket(info.storage_url, info.bucket)
        function = stack.FunctionProcess(ports.function, info.function_env(os.environ))
        function.start()
        feed = UploadFeed()  # what the page lists: every upload, whoever made it
        reporter = Reporter(info, documents)

        def delivered(delivery: Delivery) -> None:
            feed.delivered(delivery)
            reporter.report(delivery)

        relay = Relay(
            Subscription(services.pubsub.host_port, project, stack.TOPIC, stack.SUBSCRIPTION),
            function.url,
            delivered,
            on_received=feed.received,
            on_retrying=feed.retrying,
        )
        relay.start()
        page = start_page(info, ports.page, documents, feed)
        print("\n".join(info.ready_lines()), flush=True)
        watch(function, stack.CodeWatcher(stack.watched_roots(os.environ)), stopping)
        _log.info("stopping ...")
        return 0
    finally:
        if page is not None:
            page.shutdown()
            page.server_close()
        if relay is not None:
            relay.stop()
        if function is not None:
            function.stop()
        for service in reversed(services.all()):
            service.stop()


def watch(function: Any, watcher: Any, stopping: threading.Event) -> None:
    """Restart the function when its code or routes change (it may have exited on a broken edit: start it again)."""
    from image_pipeline.devtools.emulators import EmulatorError

    reported_exit = False
    while not stopping.wait(0.5):
        changes = watcher.changed()
        if changes:
            _log.info("%s changed: restarting the function ...", ", ".join(path.name for path in changes[:3]))
            function.stop()
            try:
                function.start()
                _log.info("the function is serving again")
            except EmulatorError as error:
                _log.error("%s; fix the code and save again", error)
            reported_exit = False
        elif function.exited() is not None and not reported_exit:
            _log.error("the function exited (code %s); it restarts on the next change", function.exited())
            reported_exit = True


def _log_to_stderr() -> None:
    """dev's own lines: plain text with the time, on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s dev: %(message)s", "%H:%M:%S"))
    for name in ("image_pipeline.dev", "image_pipeline.devtools"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False


class Reporter:
    """One summary line per delivered event, with the status the function left in the route's document."""

    def __init__(self, info: StackInfo, documents: DocumentStore) -> None:
        self._info = info
        self._documents = documents

    def report(self, delivery: Delivery) -> None:
        """Log the delivery and the document's status."""
        from image_pipeline.uploads import Upload, classify

        event = delivery.event
        answer = "no answer" if delivery.status is None else str(delivery.status)
        tries = f"{delivery.attempts} attempt{'s' if delivery.attempts > 1 else ''}"
        head = f"{event.object_url} -> {answer} in {delivery.seconds:.2f} s ({tries})"
        found = classify(event.id, None, dict(event.data), self._info.settings.routes)
        if not isinstance(found, Upload):
            _log.info("%s; skipped: %s", head, found.reason)
            return
        _log.info("%s; %s %s: %s", head, found.document, found.route.field, self._status(found))

    def _status(self, upload: Upload) -> str:
        """The manifest's status and error code, as the app would read them."""
        from image_pipeline import manifest

        recorded = manifest.read(self._documents.get(upload.document), upload.route)
        code = f" ({recorded.error_code}: {recorded.error_message})" if recorded.error_code else ""
        return f"{recorded.status or 'no manifest'}{code}"


def start_page(info: StackInfo, port: int, documents: DocumentStore, feed: UploadFeed) -> ThreadingHTTPServer:
    """Serve the page (image_pipeline.devtools.page.server.make_handler), listing `feed`'s uploads, in a thread."""
    from image_pipeline.devtools.emulators import LOCALHOST
    from image_pipeline.devtools.page.server import make_handler

    server = ThreadingHTTPServer((LOCALHOST, port), make_handler(info, documents, feed=feed))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="dev-page", daemon=True).start()
    return server
