"""DocumentStore on google-cloud-firestore: every decision and its writes in one transaction, all RPCs bounded."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc  # type: ignore[import-untyped]  # grpcio ships no type information
from google.api_core import exceptions as api
from google.api_core import gapic_v1
from google.api_core import retry as retries
from google.cloud import firestore

from image_pipeline.errors import TransientError
from image_pipeline.gateway.outages import TRANSIENT, transient_on_outage
from image_pipeline.ports import Decide, Decision, ServerTime, nested_fields

TRANSACTION_ATTEMPTS = 5


class FirestoreDocuments:
    """The DocumentStore port over a Firestore client (ADC in the cloud, FIRESTORE_EMULATOR_HOST locally)."""

    def __init__(self, client: firestore.Client) -> None:
        self._client = client

    def transact(self, path: str, decide: Decide) -> Decision:
        """Read the document at `path`, decide, and write the decision's updates in the same transaction."""
        reference = self._client.document(path)

        @firestore.transactional
        def read_decide_write(transaction: firestore.Transaction) -> Decision:
            snapshot = reference.get(transaction=transaction)
            decision = decide(snapshot.to_dict() if snapshot.exists else None)
            if decision.writes and snapshot.exists:
                transaction.update(reference, with_server_time(decision.writes))
            elif decision.writes:
                # The transaction read the document as missing, so a concurrent creation aborts and retries it.
                transaction.create(reference, with_server_time(nested_fields(decision.writes)))
            return decision

        with transient_on_outage(f"transaction on {path}"):
            try:
                return read_decide_write(self._client.transaction(max_attempts=TRANSACTION_ATTEMPTS))
            except ValueError as error:
                # The library reports contention (ABORTED on every attempt) as a ValueError, and an outage at
                # begin_transaction as the ValueError of its own rollback; the real cause is chained.
                cause = error.__cause__ or error.__context__
                if isinstance(cause, TRANSIENT):
                    raise TransientError(f"transaction on {path}: {cause!r}") from cause
                raise

    def open_channel(self, timeout_s: float) -> bool:
        """Connect the client's gRPC channel now (name lookup, TCP, TLS), without an RPC; whether it is ready.

        A new channel connects on its first RPC, which then waits for the handshakes; a warm-up calls this instead.
        """
        # The transport's channel is not public; it is the one every RPC of this client uses.
        channel = self._client._firestore_api._transport.grpc_channel
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout_s)
        except grpc.FutureTimeoutError:
            return False
        return True

    def get(self, path: str) -> Mapping[str, Any] | None:
        """The document at `path` as stored now, or None; one read, no transaction."""
        with transient_on_outage(f"read {path}"):
            snapshot = self._client.document(path).get()
        return snapshot.to_dict() if snapshot.exists else None


def with_server_time(value: Any) -> Any:
    """The same updates with each SERVER_TIME marker replaced by Firestore's server timestamp."""
    if isinstance(value, ServerTime):
        return firestore.SERVER_TIMESTAMP
    if isinstance(value, Mapping):
        return {key: with_server_time(item) for key, item in value.items()}
    return value


def bound_rpcs(client: firestore.Client, timeout_s: float, retry_s: float) -> None:
    """Give every RPC of the client a short timeout and retry window.

    The generated defaults allow 60-300 s per call, and the transaction's begin and commit calls take no
    timeout argument, so the defaults themselves are replaced; an attempt must end inside the function's timeout.
    """
    retry = retries.Retry(
        initial=0.2,
        maximum=1.0,
        multiplier=2,
        predicate=retries.if_exception_type(
            api.DeadlineExceeded, api.InternalServerError, api.ResourceExhausted, api.ServiceUnavailable
        ),
        timeout=retry_s,
    )
    # No public way exists: neither Client nor ClientOptions takes default timeouts, a transport or channel options,
    # so the transport's table of wrapped methods is private but the only place every RPC's defaults live.
    transport = client._firestore_api._transport
    for rpc in list(transport._wrapped_methods):
        transport._wrapped_methods[rpc] = gapic_v1.method.wrap_method(
            rpc, default_retry=retry if retry_s else None, default_timeout=timeout_s
        )


def connect(timeout_s: float, retry_s: float) -> FirestoreDocuments:
    """A FirestoreDocuments on a new client: Application Default Credentials, or anonymous against the emulator."""
    client = firestore.Client()
    bound_rpcs(client, timeout_s, retry_s)
    return FirestoreDocuments(client)
