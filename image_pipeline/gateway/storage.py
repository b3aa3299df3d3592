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
from image_pipeline.ports import RESIZED_IMAGE_MARK, TOKEN_METADATA_KEY, ObjectMetadata, StoredObject

LIST_PAGE_SIZE = 1000
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
        blob = self._client.bucket(bucket).blob(name)
        blob.cache_control = cache_control
        blob.metadata = {TOKEN_METADATA_KEY: token, RESIZED_IMAGE_MARK: "true"}
        # Variants are far below 8 MiB, so the library sends one multipart request (no resumable session).
        with transient_on_outage(f"upload gs://{bucket}/{name}"):
            try:
                blob.upload_from_string(
                    data,
                    content_type=content_type,
                    if_generation_match=0,
                    timeout=self._timeout_s,
                    retry=self._retry,
                )
            except api.PreconditionFailed:
                return self._existing_token(bucket, name)
        return token

    def _existing_token(self, bucket: str, name: str) -> str:
        """The token of an object a previous attempt wrote; one is added if it somehow has none."""
        blob = self._client.bucket(bucket).get_blob(name, timeout=self._timeout_s, retry=self._retry)
        if blob is None:
            raise TransientError(f"gs://{bucket}/{name} vanished between the refused upload and its read")
        tokens = (blob.metadata or {}).get(TOKEN_METADATA_KEY) or ""
        if tokens:
            return tokens.split(",")[0]
        token = str(uuid.uuid4())
        blob.metadata = {**(blob.metadata or {}), TOKEN_METADATA_KEY: token}
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
        with transient_on_outage(f"stat gs://{bucket}/{name}"):
            blob = self._client.bucket(bucket).get_blob(name, timeout=self._timeout_s, retry=self._retry)
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
