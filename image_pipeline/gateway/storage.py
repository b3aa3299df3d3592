"""ObjectStore on google-cloud-storage: exact-generation downloads, create-only simple uploads, bounded retries."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from google.api_core import exceptions as api
from google.cloud import storage
from google.cloud.storage.exceptions import DataCorruption
from google.cloud.storage.retry import DEFAULT_RETRY

from image_pipeline.errors import TransientError
from image_pipeline.gateway.outages import transient_on_outage
from image_pipeline.ports import (
    RESIZED_IMAGE_MARK,
    SOURCE_GENERATION_METADATA_KEY,
    TOKEN_METADATA_KEY,
    ObjectMetadata,
    StoredObject,
)

LIST_PAGE_SIZE = 1000
# Uploads of one output that may race with ours (another generation's event) before a replace gives up for a retry.
_REPLACE_ATTEMPTS = 3
# Only what classifying an object needs, and what an extension route reads and copies to its outputs (custom metadata
# and headers); `nextPageToken` must be named or paging stops after one page.
LIST_FIELDS = (
    "items(bucket,name,generation,size,contentType,contentEncoding,contentDisposition,contentLanguage,cacheControl,"
    "metadata,updated,timeCreated),nextPageToken"
)


class CloudStorage:
    """The ObjectStore port over a google-cloud-storage client (ADC in the cloud, STORAGE_EMULATOR_HOST locally)."""

    def __init__(self, client: storage.Client, timeout_s: float, retry_s: float) -> None:
        self._client = client
        self._timeout_s = timeout_s
        # The library's default retries for 120 s; an attempt must end well inside the function's timeout.
        self._retry = DEFAULT_RETRY.with_timeout(retry_s).with_delay(initial=0.2, maximum=1.0) if retry_s else None

    def download(self, bucket: str, name: str, generation: int) -> bytes | None:
        """The bytes of exactly this generation, or None if it was overwritten or deleted."""
        blob = self._client.bucket(bucket).blob(name, generation=generation)
        with transient_on_outage(f"download gs://{bucket}/{name}#{generation}"):
            try:
                return blob.download_as_bytes(timeout=self._timeout_s, retry=self._retry)
            except (api.NotFound, api.PreconditionFailed):
                return None
            except DataCorruption as error:
                # The bytes did not match the object's checksum: damaged in transit, so a later attempt can succeed.
                raise TransientError(f"download gs://{bucket}/{name}#{generation}: checksum mismatch") from error

    def read(self, bucket: str, name: str) -> bytes | None:
        """The bytes of the object's current generation, or None if there is no such object."""
        blob = self._client.bucket(bucket).blob(name)
        with transient_on_outage(f"download gs://{bucket}/{name}"):
            try:
                return blob.download_as_bytes(timeout=self._timeout_s, retry=self._retry)
            except api.NotFound:
                return None
            except DataCorruption as error:
                raise TransientError(f"download gs://{bucket}/{name}: checksum mismatch") from error

    def create(self, bucket: str, name: str, data: bytes, content_type: str, cache_control: str) -> str:
        """Write the object only if absent, with a fresh token; if it exists, return its token instead."""
        token = str(uuid.uuid4())
        if self._upload(bucket, name, data, content_type, cache_control, {TOKEN_METADATA_KEY: token}, 0):
            return token
        existing = self._get(bucket, name)
        if existing is None:
            raise TransientError(f"gs://{bucket}/{name} vanished between the refused upload and its read")
        return self._token_of(existing)

    def create_or_replace(
        self, bucket: str, name: str, data: bytes, content_type: str, cache_control: str, source_generation: int
    ) -> str:
        """Write the object for `source_generation` unless it holds that generation's or a newer one's already.

        Compare-and-swap on the object's generation: an upload that raced with ours is read again, so an older
        generation's event never overwrites a newer one's output, and a retry of a generation never rewrites its own.
        """
        tokens, expected = str(uuid.uuid4()), 0  # 0: only if absent
        for _ in range(_REPLACE_ATTEMPTS):
            metadata = {TOKEN_METADATA_KEY: tokens, SOURCE_GENERATION_METADATA_KEY: str(source_generation)}
            if self._upload(bucket, name, data, content_type, cache_control, metadata, expected):
                return tokens.split(",")[0]
            existing = self._get(bucket, name)
            if existing is None:
                expected = 0  # deleted since the refused upload: create it
                continue
            made_from = (existing.metadata or {}).get(SOURCE_GENERATION_METADATA_KEY, "")
            if made_from.isdigit() and int(made_from) >= source_generation:
                return self._token_of(existing)
            # Made from an older upload (or by something else): replaced, keeping the URLs handed out for it.
            tokens = (existing.metadata or {}).get(TOKEN_METADATA_KEY) or tokens
            expected = existing.generation
        raise TransientError(f"gs://{bucket}/{name} kept changing while it was being replaced")

    def _upload(
        self,
        bucket: str,
        name: str,
        data: bytes,
        content_type: str,
        cache_control: str,
        metadata: dict[str, str],
        if_generation_match: int,
    ) -> bool:
        """Write one of our outputs, marked, unless the object's generation is no longer `if_generation_match` (0:
        unless it exists); whether it did."""
        custom = {**metadata, RESIZED_IMAGE_MARK: "true"}
        marked = ObjectMetadata(content_type, cache_control=cache_control, custom=custom)
        return self.write(bucket, name, data, marked, if_generation_match) is not None

    def _get(self, bucket: str, name: str) -> storage.Blob | None:
        """The object's current generation with its metadata, None if there is none."""
        with transient_on_outage(f"read gs://{bucket}/{name}"):
            return self._client.bucket(bucket).get_blob(name, timeout=self._timeout_s, retry=self._retry)

    def _token_of(self, blob: storage.Blob) -> str:
        """The first token of an object a previous attempt wrote; one is added if it somehow has none."""
        tokens = (blob.metadata or {}).get(TOKEN_METADATA_KEY) or ""
        if tokens:
            return str(tokens).split(",")[0]
        token = str(uuid.uuid4())
        blob.metadata = {**(blob.metadata or {}), TOKEN_METADATA_KEY: token}
        with transient_on_outage(f"patch gs://{blob.bucket.name}/{blob.name}"):
            blob.patch(if_metageneration_match=blob.metageneration, timeout=self._timeout_s, retry=self._retry)
        return token

    def delete(self, bucket: str, name: str, generation: int) -> None:
        """Delete exactly this generation; already gone or replaced is fine."""
        blob = self._client.bucket(bucket).blob(name)
        with transient_on_outage(f"delete gs://{bucket}/{name}#{generation}"):
            try:
                blob.delete(if_generation_match=generation, timeout=self._timeout_s, retry=self._retry)
            except (api.NotFound, api.PreconditionFailed):
                return

    def stat(self, bucket: str, name: str) -> StoredObject | None:
        """The object's current generation and custom metadata, or None if there is none."""
        blob = self._get(bucket, name)
        if blob is None or blob.generation is None:
            return None
        return StoredObject(blob.generation, dict(blob.metadata or {}))

    def write(self, bucket: str, name: str, data: bytes, metadata: ObjectMetadata, replacing: int) -> int | None:
        """Write with exactly this metadata if the current generation is `replacing` (0: absent): the new generation,
        or None if it is not."""
        blob = self._client.bucket(bucket).blob(name)
        blob.cache_control = metadata.cache_control
        blob.content_disposition = metadata.content_disposition
        blob.content_encoding = metadata.content_encoding
        blob.content_language = metadata.content_language
        blob.metadata = dict(metadata.custom) or None
        # Outputs are far below 8 MiB, so the library sends one multipart request (no resumable session).
        with transient_on_outage(f"upload gs://{bucket}/{name}"):
            try:
                blob.upload_from_string(
                    data,
                    content_type=metadata.content_type or "application/octet-stream",
                    if_generation_match=replacing,
                    timeout=self._timeout_s,
                    retry=self._retry,
                )
            except api.PreconditionFailed:
                return None
        return blob.generation

    def make_public(self, bucket: str, name: str) -> bool:
        """Grant allUsers read on the object; False where uniform bucket-level access forbids object ACLs."""
        blob = self._client.bucket(bucket).blob(name)
        with transient_on_outage(f"make public gs://{bucket}/{name}"):
            try:
                blob.make_public(timeout=self._timeout_s, retry=self._retry)
            except api.BadRequest:
                return False
        return True

    def add_custom(self, bucket: str, name: str, generation: int, custom: Mapping[str, str]) -> None:
        """Merge `custom` into exactly this generation's custom metadata; gone or replaced is fine."""
        blob = self._client.bucket(bucket).blob(name)
        blob.metadata = dict(custom)
        with transient_on_outage(f"update gs://{bucket}/{name}#{generation}"):
            try:
                blob.patch(if_generation_match=generation, timeout=self._timeout_s, retry=self._retry)
            except (api.NotFound, api.PreconditionFailed):
                return

    def list_objects(self, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
        """The live objects under `prefix` as their JSON resources, fetched one page at a time."""
        # A listing runs in a batch job, not inside the function's timeout, so each page keeps the library's
        # default retry (up to 120 s): a blip must not end a run that has listed a million objects.
        blobs = self._client.list_blobs(
            bucket, prefix=prefix, page_size=LIST_PAGE_SIZE, fields=LIST_FIELDS, timeout=self._timeout_s
        )
        with transient_on_outage(f"list gs://{bucket}/{prefix}"):
            for page in blobs.pages:
                # Each page's response as the API sent it: the resources themselves, with no Blob built in between.
                yield from page.raw_page.get("items", ())


def connect(timeout_s: float, retry_s: float) -> CloudStorage:
    """A CloudStorage on a new client: Application Default Credentials, or anonymous against the emulator."""
    return CloudStorage(storage.Client(), timeout_s, retry_s)
