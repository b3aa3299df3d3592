"""The metadata the Resize Images replacement gives its outputs and failed copies.

The cases are the extension's output-metadata table and its worked example, and its failed-copy rule.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import count

import pytest

from image_pipeline.extension.metadata import FAILED_COPY_METADATA, output_metadata
from image_pipeline.ports import TOKEN_METADATA_KEY, ObjectMetadata


def new_tokens() -> Callable[[], str]:
    """A token factory that hands out new-1, new-2, ..."""
    numbers = count(1)
    return lambda: f"new-{next(numbers)}"


def output(
    original: ObjectMetadata,
    *,
    image_type: str = "webp",
    cache_control_header: str | None = None,
    regenerate_token: bool = True,
    new_token: Callable[[], str] | None = None,
) -> ObjectMetadata:
    return output_metadata(
        original,
        image_type=image_type,
        output_file_name="a_200x200.webp",
        cache_control_header=cache_control_header,
        regenerate_token=regenerate_token,
        new_token=new_token or new_tokens(),
    )


def test_the_extensions_worked_example() -> None:
    original = ObjectMetadata(
        content_type="image/jpeg",
        cache_control="public,max-age=60",
        custom={TOKEN_METADATA_KEY: "T1", "owner": "u1"},
    )

    made = output(original, image_type="webp", cache_control_header="max-age=86400", regenerate_token=True)

    assert made == ObjectMetadata(
        content_type="image/webp",
        cache_control="max-age=86400",
        content_disposition=None,
        custom={TOKEN_METADATA_KEY: "new-1", "owner": "u1", "resizedImage": "true"},
    )


def test_headers_are_copied_and_the_type_kept_when_the_format_is() -> None:
    original = ObjectMetadata(
        content_type="image/png",
        content_encoding="identity",
        content_language="fr",
        cache_control="public,max-age=60",
    )

    made = output(original, image_type="false")

    assert (made.content_type, made.content_encoding, made.content_language, made.cache_control) == (
        "image/png",
        "identity",
        "fr",
        "public,max-age=60",
    )


def test_an_unknown_format_leaves_the_type_unset() -> None:
    assert output(ObjectMetadata(content_type="image/png"), image_type="raw").content_type is None


@pytest.mark.parametrize(
    ("regenerate_token", "original_custom", "expected_token"),
    [
        pytest.param(True, {TOKEN_METADATA_KEY: "T1"}, "new-1", id="regenerated"),
        pytest.param(False, {TOKEN_METADATA_KEY: "T1"}, "T1", id="copied-when-not-regenerated"),
        pytest.param(True, {TOKEN_METADATA_KEY: ""}, "", id="empty-copied-not-regenerated"),
        pytest.param(True, {}, None, id="none-stays-none"),
        pytest.param(False, {}, None, id="none-stays-none-either-way"),
    ],
)
def test_the_download_token(
    regenerate_token: bool, original_custom: dict[str, str], expected_token: str | None
) -> None:
    made = output(ObjectMetadata(custom=original_custom), regenerate_token=regenerate_token)

    assert made.custom.get(TOKEN_METADATA_KEY) == expected_token


def test_each_output_gets_a_token_of_its_own() -> None:
    original = ObjectMetadata(custom={TOKEN_METADATA_KEY: "T1"})
    new_token = new_tokens()

    tokens = [output(original, new_token=new_token).custom[TOKEN_METADATA_KEY] for _ in range(2)]

    assert tokens == ["new-1", "new-2"]


def test_custom_metadata_is_copied_and_marked() -> None:
    made = output(ObjectMetadata(custom={"owner": "u1", "resizedImage": "no", "resizeFailed": ""}))

    assert made.custom == {"owner": "u1", "resizedImage": "true", "resizeFailed": ""}


def test_the_original_is_left_as_it_was() -> None:
    custom = {TOKEN_METADATA_KEY: "T1"}

    output(ObjectMetadata(custom=custom))

    assert custom == {TOKEN_METADATA_KEY: "T1"}


@pytest.mark.parametrize(
    ("cache_control_header", "original", "expected"),
    [
        pytest.param("max-age=86400", "public,max-age=60", "max-age=86400", id="header-wins"),
        pytest.param(None, "public,max-age=60", "public,max-age=60", id="unset-copies"),
        pytest.param("", "public,max-age=60", "public,max-age=60", id="empty-copies"),
        pytest.param(None, None, None, id="none-either"),
    ],
)
def test_cache_control(cache_control_header: str | None, original: str | None, expected: str | None) -> None:
    made = output(ObjectMetadata(cache_control=original), cache_control_header=cache_control_header)

    assert made.cache_control == expected


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        pytest.param("inline; filename*=utf-8''a.jpg", "inline; filename*=utf-8''a_200x200.webp", id="rewritten"),
        pytest.param('attachment; filename="a.jpg"', 'attachment; filename="a.jpg"', id="plain-name-kept"),
        pytest.param(None, None, id="none-stays-none"),
        pytest.param("", None, id="empty-is-none"),
    ],
)
def test_content_disposition(original: str | None, expected: str | None) -> None:
    assert output(ObjectMetadata(content_disposition=original)).content_disposition == expected


def test_the_output_cannot_be_changed_afterwards() -> None:
    made = output(ObjectMetadata())

    with pytest.raises(TypeError):
        made.custom["resizedImage"] = "false"


def test_a_failed_copy_carries_only_its_mark() -> None:
    assert ObjectMetadata(custom={"resizeFailed": "true"}) == FAILED_COPY_METADATA
