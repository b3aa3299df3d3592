"""The metadata the Resize Images extension gives an output object and a failed copy, from the original's."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from image_pipeline.extension.naming import output_content_type, rewrite_content_disposition
from image_pipeline.ports import RESIZED_IMAGE_MARK, TOKEN_METADATA_KEY, ObjectMetadata

RESIZED_IMAGE_MARKER = RESIZED_IMAGE_MARK
FAILED_COPY_MARKER = "resizeFailed"


# The copy's own finalize event is skipped on this mark. Nothing of the original's is copied, not even its token;
# nor a Content-Type: the extension leaves that to its storage client, which guesses it from the name.
FAILED_COPY_METADATA = ObjectMetadata(custom=MappingProxyType({FAILED_COPY_MARKER: "true"}))


def output_metadata(
    original: ObjectMetadata,
    *,
    image_type: str,
    output_file_name: str,
    cache_control_header: str | None,
    regenerate_token: bool,
    new_token: Callable[[], str],
) -> ObjectMetadata:
    """An output's metadata: the original's, marked as an output, with its own type, file name and Cache-Control.

    Custom metadata is copied whole. The download token is copied too, so the output opens with the original's
    token, unless REGENERATE_TOKEN asks for a new one (only where the original had one).
    """
    custom = {**original.custom, RESIZED_IMAGE_MARKER: "true"}
    if regenerate_token and original.custom.get(TOKEN_METADATA_KEY):
        custom[TOKEN_METADATA_KEY] = new_token()
    return ObjectMetadata(
        content_type=output_content_type(original.content_type, image_type),
        # None where the original had none: the extension sends an empty header, which says nothing, so we send none.
        content_disposition=(
            rewrite_content_disposition(original.content_disposition, output_file_name)
            if original.content_disposition
            else None
        ),
        content_encoding=original.content_encoding,
        content_language=original.content_language,
        cache_control=cache_control_header or original.cache_control,
        custom=MappingProxyType(custom),
    )


def object_metadata(resource: Mapping[str, object]) -> ObjectMetadata:
    """An object's metadata as a storage event's object resource carries it (text values only)."""

    def text(key: str) -> str | None:
        value = resource.get(key)
        return value if isinstance(value, str) and value else None

    custom = resource.get("metadata")
    return ObjectMetadata(
        content_type=text("contentType"),
        content_disposition=text("contentDisposition"),
        content_encoding=text("contentEncoding"),
        content_language=text("contentLanguage"),
        cache_control=text("cacheControl"),
        custom=MappingProxyType(
            {key: value for key, value in custom.items() if isinstance(value, str)}
            if isinstance(custom, Mapping)
            else {}
        ),
    )
