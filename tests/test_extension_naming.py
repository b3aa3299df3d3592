"""The Resize Images replacement's output names, their Content-Type, failed-copy names and Content-Disposition.

The cases are the extension's naming, failed-copy and Content-Disposition tables, row for row, and its own tests'.
"""

from __future__ import annotations

import pytest

from image_pipeline.extension.naming import (
    Output,
    failed_copy_path,
    output_content_type,
    output_path,
    planned_outputs,
    rewrite_content_disposition,
)

# The extension's naming table: object name and its Content-Type, IMAGE_TYPE entry, size, RESIZED_IMAGES_PATH,
# the output's name and Content-Type.
NAMING_TABLE = [
    ("images/original.jpg", "image/jpeg", "false", "200x200", None, "images/original_200x200.jpg", "image/jpeg"),
    ("images/original.jpg", "image/jpeg", "false", "200x200", "thumbs", "images/thumbs/original_200x200.jpg",
     "image/jpeg"),
    ("original.jpg", "image/jpeg", "false", "200x200", "thumbs", "thumbs/original_200x200.jpg", "image/jpeg"),
    ("original.jpg", "image/jpeg", "false", "200x200", None, "original_200x200.jpg", "image/jpeg"),
    ("images/original.JPG", "image/jpeg", "false", "200x200", None, "images/original_200x200.JPG", "image/jpeg"),
    ("images/original.JPG", "image/jpeg", "webp", "200x200", None, "images/original_200x200.webp", "image/webp"),
    ("images/original.jpg", "image/jpeg", "jpeg", "200x200", None, "images/original_200x200.jpeg", "image/jpeg"),
    ("images/original.png", "image/png", "jpeg", "400x300", "thumbs", "images/thumbs/original_400x300.jpeg",
     "image/jpeg"),
    ("images/original.jpeg", "image/jpeg", "png", "200x200", None, "images/original_200x200.png", "image/png"),
    ("images/my.photo.v2.png", "image/png", "webp", "200x200", None, "images/my.photo.v2_200x200.webp",
     "image/webp"),
    ("images/noext", "image/png", "false", "200x200", None, "images/noext_200x200", "image/png"),
    ("images/noext", "image/png", "webp", "200x200", None, "images/noext_200x200", "image/webp"),
    ("images/.hidden", "image/png", "false", "200x200", None, "images/.hidden_200x200", "image/png"),
    ("images/.hidden.png", "image/png", "false", "200x200", None, "images/.hidden_200x200.png", "image/png"),
    ("images/photo.jfif", "image/jpeg", "false", "300x300", "thumbnails", "images/thumbnails/photo_300x300.jfif",
     "image/jpeg"),
    ("images/photo.jfif", "image/jpeg", "webp", "300x300", "thumbnails", "images/thumbnails/photo_300x300.webp",
     "image/webp"),
    ("images/photo.heic", "image/jpeg", "false", "200x200", None, "images/photo.heic_200x200", "image/jpeg"),
    ("images/photo.heic", "image/jpeg", "webp", "200x200", None, "images/photo.heic_200x200", "image/webp"),
    ("images/photo.tif", "image/tiff", "tiff", "200x200", None, "images/photo_200x200.tiff", "image/tiff"),
    ("a/b/img.gif", "image/gif", "false", "200x200", "../thumbs", "a/thumbs/img_200x200.gif", "image/gif"),
    ("a/b/img.gif", "image/gif", "false", "200x200", "../../../x", "../x/img_200x200.gif", "image/gif"),
    ("a/b/img.gif", "image/gif", "false", "200x200", "/abs", "a/b/abs/img_200x200.gif", "image/gif"),
    ("a/b/img.gif", "image/gif", "false", "200x200", "thumbs/", "a/b/thumbs/img_200x200.gif", "image/gif"),
    ("a/b/img.gif", "image/gif", "false", "200x200", "./t//s", "a/b/t/s/img_200x200.gif", "image/gif"),
    ("img.gif", "image/gif", "false", "200x200", "../up", "../up/img_200x200.gif", "image/gif"),
    ("a/b/img.avif", "image/avif", "avif", "100x50", "", "a/b/img_100x50.avif", "image/avif"),
    ("photo.", "image/png", "false", "200x200", None, "photo._200x200", "image/png"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "original_type", "image_type", "size", "resized_images_path", "expected_path", "expected_type"),
    NAMING_TABLE,
    ids=[f"row-{number}" for number in range(1, len(NAMING_TABLE) + 1)],
)
def test_the_extensions_naming_table(
    name: str,
    original_type: str,
    image_type: str,
    size: str,
    resized_images_path: str | None,
    expected_path: str,
    expected_type: str,
) -> None:
    assert output_path(name, size, image_type, resized_images_path) == expected_path
    assert output_content_type(original_type, image_type) == expected_type


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("users/u1/../u2/a.png", "users/u2/a_200x200.png", id="dot-dot-in-the-name"),
        pytest.param("a\\b/img.gif", "a/b/img_200x200.gif", id="backslash-made-a-slash"),
        pytest.param("/img.gif", "/img_200x200.gif", id="leading-slash-kept"),
        pytest.param("/../img.gif", "/img_200x200.gif", id="nothing-above-a-leading-slash"),
        pytest.param("a/img.gif/", "a/img_200x200.gif", id="trailing-slash-ignored"),
        pytest.param("a/.png", "a/.png_200x200", id="leading-dot-is-no-extension"),
        pytest.param("a/..", "a/.._200x200", id="dot-dot-file-name-is-a-name"),
    ],
)
def test_names_normalise_as_the_extensions_do(name: str, expected: str) -> None:
    assert output_path(name, "200x200", "false", None) == expected


@pytest.mark.parametrize(
    ("name", "image_type", "expected"),
    [
        # The extension's end-to-end cases: RESIZED_IMAGES_PATH=thumbnails, IMAGE_TYPE=webp, IMG_SIZES=300x300.
        ("test-image.jpeg", "webp", "thumbnails/test-image_300x300.webp"),
        ("test-img.jfif", "webp", "thumbnails/test-img_300x300.webp"),
        ("test-jpg.jpg", "webp", "thumbnails/test-jpg_300x300.webp"),
    ],
)
def test_the_extensions_end_to_end_names(name: str, image_type: str, expected: str) -> None:
    assert output_path(name, "300x300", image_type, "thumbnails") == expected


@pytest.mark.parametrize(
    ("image_type", "expected"),
    [
        ("jpg", "image/jpeg"),
        ("jpeg", "image/jpeg"),
        ("png", "image/png"),
        ("tif", "image/tiff"),
        ("tiff", "image/tiff"),
        ("webp", "image/webp"),
        ("gif", "image/gif"),
        ("avif", "image/avif"),
        ("jfif", "image/jpeg"),
        ("raw", None),
        ("false", "image/x-original"),
    ],
)
def test_each_image_type_has_its_content_type(image_type: str, expected: str | None) -> None:
    assert output_content_type("image/x-original", image_type) == expected


def test_outputs_are_ordered_formats_outer_sizes_inner() -> None:
    outputs = planned_outputs("p/a.png", ["webp", "jpeg"], ["200x200", "400x400"], None)

    assert outputs == (
        Output("webp", "200x200", "p/a_200x200.webp"),
        Output("webp", "400x400", "p/a_400x400.webp"),
        Output("jpeg", "200x200", "p/a_200x200.jpeg"),
        Output("jpeg", "400x400", "p/a_400x400.jpeg"),
    )


def test_repeated_entries_make_one_output_each() -> None:
    outputs = planned_outputs("p/a.png", ["webp", "false", "webp"], ["200x200", "400x400", "200x200"], "t")

    assert [(output.image_type, output.size) for output in outputs] == [
        ("webp", "200x200"),
        ("webp", "400x400"),
        ("false", "200x200"),
        ("false", "400x400"),
    ]


def test_keeping_the_type_and_converting_to_it_name_the_same_object() -> None:
    outputs = planned_outputs("x.jpeg", ["false", "jpeg"], ["200x200"], None)

    assert [output.path for output in outputs] == ["x_200x200.jpeg", "x_200x200.jpeg"]


# The extension's failed-copy table: object name, FAILED_IMAGES_PATH, where the copy goes (None: no copy).
FAILED_COPY_TABLE = [
    ("images/original.jpg", "failed", "images/failed/original.jpg"),
    ("original.jpg", "failed", "failed/original.jpg"),
    ("a/b/noext", "failed", "a/b/failed/noext"),
    ("users/u1/images/../../../config.json", "failed", None),
    ("a/b/c.png", "../x", None),
    ("a/b/c.png", "x/../../y", None),
    ("a/b/c.png", "/abs", "a/b/abs/c.png"),
    # Any `/../` is refused, even one that would stay inside the folder.
    ("a/b/c.png", "x/../y", None),
    # Its own tests: a path-traversing upload never reaches another user's folder.
    ("users/u1/images/../../u2/settings.json", "failed", None),
    # Unset or empty: no copy.
    ("images/original.jpg", None, None),
    ("images/original.jpg", "", None),
]


@pytest.mark.parametrize(("name", "failed_images_path", "expected"), FAILED_COPY_TABLE)
def test_the_extensions_failed_copy_table(name: str, failed_images_path: str | None, expected: str | None) -> None:
    assert failed_copy_path(name, failed_images_path) == expected


# The extension's Content-Disposition table, for the output file name original_200x200.webp.
DISPOSITION_TABLE = [
    ("inline; filename*=utf-8''original.jpg", "inline; filename*=utf-8''original_200x200.webp"),
    (
        "attachment; filename=\"original.jpg\"; filename*=utf-8''original.jpg",
        "attachment; filename=\"original.jpg\"; filename*=utf-8''original_200x200.webp",
    ),
    ("inline; filename*=UTF-8''original.jpg", "inline; filename*=UTF-8''original.jpg"),
    ("inline; filename*=utf-8''my%20photo.jpg; size=3", "inline; filename*=utf-8''original_200x200.webp; size=3"),
    ('attachment; filename="a.jpg"', 'attachment; filename="a.jpg"'),
]


@pytest.mark.parametrize(("original", "expected"), DISPOSITION_TABLE)
def test_the_extensions_content_disposition_table(original: str, expected: str) -> None:
    assert rewrite_content_disposition(original, "original_200x200.webp") == expected


def test_only_the_first_utf8_file_name_is_rewritten() -> None:
    original = "inline; filename*=utf-8''a.jpg; filename*=utf-8''b.jpg"

    assert (
        rewrite_content_disposition(original, "a_1x1.png")
        == "inline; filename*=utf-8''a_1x1.png; filename*=utf-8''b.jpg"
    )


def test_the_file_name_is_written_as_it_is() -> None:
    # Not percent-encoded, and not read as a replacement pattern.
    rewritten = rewrite_content_disposition("inline; filename*=utf-8''a.jpg", "my photo \\1_1x1.png")

    assert rewritten == "inline; filename*=utf-8''my photo \\1_1x1.png"
