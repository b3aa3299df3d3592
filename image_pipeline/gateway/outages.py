"""Map client exceptions to the pipeline's taxonomy: outages, throttling and timeouts become TransientError."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import requests
from google.api_core import exceptions as api
from google.auth import exceptions as auth

TRANSIENT = (
    api.RetryError,
    api.TooManyRequests,
    api.ServerError,
    api.DeadlineExceeded,
    api.ServiceUnavailable,
    api.Aborted,
    api.ResourceExhausted,
    requests.ConnectionError,
    requests.Timeout,
    auth.TransportError,
    ConnectionError,
    TimeoutError,
)


@contextmanager
def transient_on_outage(what: str) -> Iterator[None]:
    """Re-raise an outage, throttling or timeout of `what` as TransientError; let anything else through."""
    try:
        yield
    except TRANSIENT as error:
        from image_pipeline.errors import TransientError

        raise TransientError(f"{what}: {type(error).__name__}: {error}") from error
