"""What the use case is told about the deployment besides its routes: how URLs are made and how long to retry.

Standard library only: small frozen values that the settings build once and the use case and the backfill read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from urllib.parse import quote

FIREBASE_DOWNLOAD_BASE = "https://firebasestorage.googleapis.com/v0"
PUBLIC_STORAGE_BASE = "https://storage.googleapis.com"


class UrlMode(str, Enum):
    """How the URL of an output is made."""

    TOKEN = "token"
    PUBLIC = "public"


@dataclass(frozen=True)
class UrlRules:
    """How the URL an app stores is made for an object: a Firebase download URL with its token, or a public URL."""

    mode: UrlMode = UrlMode.TOKEN
    download_base: str = FIREBASE_DOWNLOAD_BASE
    public_base: str = PUBLIC_STORAGE_BASE

    def url(self, bucket: str, path: str, token: str) -> str:
        """The URL of `path` in `bucket`, whose download token is `token`."""
        if self.mode is UrlMode.PUBLIC:
            return f"{self.public_base}/{bucket}/{quote(path, safe='/')}"
        return f"{self.download_base}/b/{bucket}/o/{quote(path, safe='')}?alt=media&token={token}"


@dataclass(frozen=True)
class Policy:
    """The URL rules and the retry bounds of every route."""

    urls: UrlRules = field(default_factory=UrlRules)
    # Seconds a missing document is waited for (by raising, so that the platform redelivers).
    max_event_age_s: int = 600
    # Seconds after which a transient failure is recorded as `retries_exhausted` instead of raised again.
    retry_window_s: int = 3600
