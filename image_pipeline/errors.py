"""The error taxonomy: permanent problems are recorded and acknowledged, transient ones are retried."""

from __future__ import annotations

from enum import Enum


class RejectionCode(str, Enum):
    """Why an upload was refused for good; the value is what the document and the CLI show."""

    UNSUPPORTED_FORMAT = "unsupported_format"
    CORRUPT_IMAGE = "corrupt_image"
    TOO_LARGE = "too_large"
    EMPTY = "empty"
    UNSUPPORTED_ENCODING = "unsupported_encoding"
    RETRIES_EXHAUSTED = "retries_exhausted"
    SOURCE_GONE = "source_gone"


class PipelineError(Exception):
    """Base of every error the pipeline raises on purpose."""


class PermanentError(PipelineError):
    """Bad or unauthorised input: retrying cannot help, so record `failed` and acknowledge."""

    def __init__(self, code: RejectionCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def as_record(self) -> dict[str, str]:
        """The `{code, message}` pair stored in the document and printed by the CLI."""
        return {"code": self.code.value, "message": self.message}


class ImageRejected(PermanentError):
    """The imaging core refused the bytes (format, size, corruption or emptiness)."""


class TransientError(PipelineError):
    """A backend was unavailable or slow: raise so the platform redelivers the event."""


class DocumentNotYetCreated(TransientError):
    """The character document does not exist yet (the app uploads first): retry until the event is too old."""


class ModelUnusable(PipelineError):
    """A background-removal model is missing, unreadable, of the wrong shape or fails its checksum.

    The operator's fault, not the image's: nothing is written and the event is retried (until the retry window ends).
    The message names the model and the problem.
    """


class PublishRefused(PipelineError):
    """Eventarc refused an extension route's events for good (an HTTP 4xx other than 408 and 429), or there are no
    credentials to publish with.

    Like ModelUnusable, the operator's fault, not the image's: a wrong or missing channel, the `eventarc.publisher`
    role or the Eventarc Publishing API missing (or, our bug, an event it cannot read). Not a PermanentError, since
    the upload is fine and nothing should be recorded against it, and not a TransientError, since waiting does not
    fix it and it is logged as an ERROR: it is raised, so the platform redelivers the event and the operator's fix
    takes effect on the next delivery without a redeploy (the retry window bounds it, as for a missing model).
    The message names the channel and carries the status and the response body.
    """


class ConfigurationError(PipelineError):
    """A setting is missing or malformed; raised once at start-up with a message naming it."""


class RouteError(ConfigurationError):
    """A route that cannot be used; the message names the file, the route and the key.

    `key` is the route key at fault (e.g. "variants.thumb", "output") and `problem` the message without its place,
    so that the built-in route can name the environment variable that spelled the key instead; `other_key`, a second
    key the problem depends on (an output that could fit a `match`).
    """

    def __init__(
        self, message: str, key: str | None = None, problem: str | None = None, other_key: str | None = None
    ) -> None:
        super().__init__(message)
        self.key = key
        self.problem = problem or message
        self.other_key = other_key

    def within(self, source: str) -> RouteError:
        """The same error, its message placed in `source` (a file, or the built-in route)."""
        return RouteError(f"{source}: {self}", self.key, self.problem, self.other_key)


class UsageError(PipelineError):
    """A command cannot run as asked (a bad flag or path, a local service that cannot start): one line, exit 2."""
