"""Which finalize events the Resize Images replacement processes, and how its path lists match folders.

The cases are the extension's own (its filters and startsWithArray tests) and its path-matching table, with the rows
whose entries hold `.`, `+` or parentheses answered literally here, on purpose.
"""

from __future__ import annotations

import pytest

from image_pipeline.extension.filters import (
    EXCLUDED,
    FAILED_COPY,
    GZIP_ENCODED,
    NO_CONTENT_TYPE,
    NO_NAME,
    NOT_AN_IMAGE,
    NOT_INCLUDED,
    RESIZED_IMAGE,
    UNSUPPORTED_CONTENT_TYPE,
    object_directory,
    path_list_matches,
    skip_reason,
)


def resource(name: str = "path/to/image.jpg", **overrides: object) -> dict[str, object]:
    """An object resource as the storage event's data carries it: a JPEG with no custom metadata by default."""
    return {"name": name, "contentType": "image/jpeg", "metadata": {}, **overrides}


def test_an_image_with_no_lists_set_is_processed() -> None:
    assert skip_reason(resource(), None, None) is None


@pytest.mark.parametrize(
    "content_type",
    ["image/jpg", "image/jpeg", "image/png", "image/tiff", "image/webp", "image/gif", "image/avif",
     "image/heic", "image/heif"],
)  # fmt: skip
def test_supported_content_types_are_processed(content_type: str) -> None:
    assert skip_reason(resource(contentType=content_type), None, None) is None


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        pytest.param({"contentType": None}, NO_CONTENT_TYPE, id="no-content-type"),
        pytest.param({"contentType": ""}, NO_CONTENT_TYPE, id="empty-content-type"),
        pytest.param({"contentType": "text/plain"}, NOT_AN_IMAGE, id="text"),
        pytest.param({"contentType": "IMAGE/JPEG"}, NOT_AN_IMAGE, id="upper-case"),
        pytest.param({"contentType": "image/foo"}, UNSUPPORTED_CONTENT_TYPE, id="unknown-image-type"),
        pytest.param({"contentType": "image/svg+xml"}, UNSUPPORTED_CONTENT_TYPE, id="svg"),
        pytest.param({"contentType": "image/bmp"}, UNSUPPORTED_CONTENT_TYPE, id="bmp"),
        pytest.param({"contentType": "image/jpeg; charset=x"}, UNSUPPORTED_CONTENT_TYPE, id="with-parameter"),
        pytest.param({"contentEncoding": "gzip"}, GZIP_ENCODED, id="gzip"),
        pytest.param({"metadata": {"resizedImage": "true"}}, RESIZED_IMAGE, id="resized-image"),
        pytest.param({"metadata": {"resizeFailed": "true"}}, FAILED_COPY, id="failed-copy"),
        pytest.param({"metadata": {"resizeFailed": "false"}}, FAILED_COPY, id="failed-copy-any-value"),
        pytest.param({"metadata": {"resizeFailed": True}}, FAILED_COPY, id="failed-copy-boolean"),
        pytest.param({"name": None}, NO_NAME, id="no-name"),
    ],
)
def test_skipped_objects_say_why(overrides: dict[str, object], reason: str) -> None:
    assert skip_reason(resource(**overrides), None, None) == reason


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"contentEncoding": "GZIP"}, id="gzip-spelt-otherwise"),
        pytest.param({"contentEncoding": "br"}, id="other-encoding"),
        pytest.param({"metadata": {"resizedImage": "false"}}, id="resized-image-false"),
        pytest.param({"metadata": {"resizedImage": "TRUE"}}, id="resized-image-upper-case"),
        pytest.param({"metadata": {"resizeFailed": ""}}, id="failed-copy-empty"),
        pytest.param({"metadata": None}, id="no-metadata"),
    ],
)
def test_near_misses_of_the_skip_rules_are_processed(overrides: dict[str, object]) -> None:
    assert skip_reason(resource(**overrides), None, None) is None


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        pytest.param({"contentType": "text/plain", "contentEncoding": "gzip"}, NOT_AN_IMAGE, id="not-image-first"),
        pytest.param({"contentType": "image/foo", "contentEncoding": "gzip"}, GZIP_ENCODED, id="gzip-before-type"),
        pytest.param({"name": "elsewhere/a.jpg", "contentType": "image/foo"}, UNSUPPORTED_CONTENT_TYPE,
                     id="type-before-lists"),
        pytest.param({"name": "not-allowed/a.jpg"}, NOT_INCLUDED, id="include-before-exclude"),
        pytest.param({"name": "allowed/no/a.jpg", "metadata": {"resizedImage": "true"}}, EXCLUDED,
                     id="lists-before-markers"),
        pytest.param({"name": "allowed/a.jpg", "metadata": {"resizedImage": "true", "resizeFailed": "true"}},
                     RESIZED_IMAGE, id="resized-before-failed"),
    ],
)  # fmt: skip
def test_the_first_failing_check_gives_the_reason(overrides: dict[str, object], reason: str) -> None:
    assert skip_reason(resource(**overrides), ["/allowed"], ["/allowed/no"]) == reason


def test_an_include_list_the_folder_is_not_in_skips() -> None:
    assert skip_reason(resource("path/to/image.jpg"), ["/allowed"], None) == NOT_INCLUDED


def test_an_exclude_list_the_folder_is_in_skips() -> None:
    assert skip_reason(resource("not-allowed/image.jpg"), None, ["/not-allowed"]) == EXCLUDED


def test_an_included_folder_that_is_not_excluded_is_processed() -> None:
    assert skip_reason(resource("path/allowed/image.jpg"), ["/path/allowed"], ["/path/not-allowed"]) is None


def test_a_heic_named_upload_sent_as_jpeg_is_processed() -> None:
    # The content type is the only gate; the name is never looked at.
    assert skip_reason(resource("images/photo.heic", contentType="image/jpeg"), None, None) is None


@pytest.mark.parametrize(
    ("name", "directory"),
    [
        ("image.jpg", "/"),
        ("a/b/image.jpg", "/a/b"),
        ("/a/b/x.jpg", "/a/b"),
        ("a//b/x.jpg", "/a/b"),
        ("a/b/../c/x.jpg", "/a/c"),
        ("a/b/", "/a"),
        ("//a/x.jpg", "/a"),
        ("../../x.jpg", "/"),
        ("a/./b/x.jpg", "/a/b"),
        ("u/a\\b/x.jpg", "/u/a/b"),
    ],
)
def test_the_directory_is_absolute_and_normalised(name: str, directory: str) -> None:
    assert object_directory(name) == directory


# The extension's path-matching table: object name, its directory, the list as its parameter spells it, match.
PATH_TABLE = [
    ("users/pictures/a.jpg", "/users/pictures", "/users/pictures", True),
    ("users/pictures/sub/a.jpg", "/users/pictures/sub", "/users/pictures", True),
    ("users/picturesX/a.jpg", "/users/picturesX", "/users/pictures", False),
    ("users/a.jpg", "/users", "/users/pictures", False),
    ("a.jpg", "/", "/users", False),
    ("a.jpg", "/", "/", True),
    ("users/a.jpg", "/users", "/", False),
    ("users/pictures/a.jpg", "/users/pictures", "/users/pictures/", False),
    ("users/pictures/a.jpg", "/users/pictures", "users/pictures", False),
    ("users/pictures/a.jpg", "/users/pictures", " /users/pictures ", True),
    ("b/a.jpg", "/b", "/a, /b", True),
    ("x/a.jpg", "/x", "/a,/b,", True),
    ("x/a.jpg", "/x", "", True),
    ("users/foo/pictures/a.jpg", "/users/foo/pictures", "/users/*/pictures", True),
    ("users/a/b/c/pictures/a.jpg", "/users/a/b/c/pictures", "/users/*/pictures", True),
    ("users/pictures/a.jpg", "/users/pictures", "/users/*/pictures", False),
    ("users/foo/pictures2/a.jpg", "/users/foo/pictures2", "/users/*/pictures", False),
    ("users/foo bar/pictures/a.jpg", "/users/foo bar/pictures", "/users/*/pictures", True),
    ("users/x+y/pictures/a.jpg", "/users/x+y/pictures", "/users/*/pictures", True),
    ("users/foo@bar/pictures/a.jpg", "/users/foo@bar/pictures", "/users/*/pictures", False),
    ("users/föö/pictures/a.jpg", "/users/föö/pictures", "/users/*/pictures", False),
    ("users/x/a.jpg", "/users/x", "/users/*", True),
    ("users/a.jpg", "/users", "/users/*", False),
    ("usersX/a.jpg", "/usersX", "/users*", True),
    ("USERS/a.jpg", "/USERS", "/users", False),
]
# The table's rows with `.`, `+` or parentheses, answered literally here where the extension used them as regex
# operators (and crashed on `/c++`).
LITERAL_TABLE = [
    ("userXs/a.jpg", "/userXs", "/user.s", False),
    ("user.s/a.jpg", "/user.s", "/user.s", True),
    ("cc/a.jpg", "/cc", "/c+", False),
    ("c+/a.jpg", "/c+", "/c+", True),
    ("my 1/a.jpg", "/my 1", "/my (1)", False),
    ("my (1)/a.jpg", "/my (1)", "/my (1)", True),
    ("c++/a.jpg", "/c++", "/c++", True),
    ("c/a.jpg", "/c", "/c++", False),
]


@pytest.mark.parametrize(("name", "directory", "listed", "matches"), PATH_TABLE + LITERAL_TABLE)
def test_path_lists_match_a_folder_and_its_subfolders(name: str, directory: str, listed: str, matches: bool) -> None:
    assert object_directory(name) == directory
    assert path_list_matches(listed.split(","), directory) is matches


@pytest.mark.parametrize(("name", "listed", "matches"), [(row[0], row[2], row[3]) for row in PATH_TABLE])
def test_path_lists_decide_include_and_exclude(name: str, listed: str, matches: bool) -> None:
    entries = listed.split(",")
    assert (skip_reason(resource(name), entries, None) is None) is matches
    assert (skip_reason(resource(name), None, entries) is None) is not matches


# The extension's startsWithArray cases: the list, the directory, whether it matches.
STARTS_WITH = ["/test/picture"]
STARTS_WITH_WILDCARD = ["/test/picture", "/test/*/picture"]


@pytest.mark.parametrize(
    ("entries", "directory", "matches"),
    [
        (STARTS_WITH, "/test/picture", True),
        (STARTS_WITH, "/test/picture/directory", True),
        (STARTS_WITH, "/test", False),
        (STARTS_WITH, "/test/pict", False),
        (STARTS_WITH, "/test/pictures", False),
        (STARTS_WITH, "/test/picturesssssss", False),
        (STARTS_WITH_WILDCARD, "/test/picture", True),
        (STARTS_WITH_WILDCARD, "/test/something/picture", True),
        (STARTS_WITH_WILDCARD, "/test/folder1/folder2/picture", True),
        (STARTS_WITH_WILDCARD, "/test/*/pictures", False),
        (STARTS_WITH_WILDCARD, "/test/*/folder2/pictures", False),
        (STARTS_WITH_WILDCARD, "/test/+/picture", True),
    ],
)
def test_the_extensions_starts_with_cases(entries: list[str], directory: str, matches: bool) -> None:
    assert path_list_matches(entries, directory) is matches


def test_the_end_of_a_folder_is_not_a_newline() -> None:
    # `$` in Python also matches before a final newline; the folder `/a\n` is not `/a`.
    assert path_list_matches(["/a"], "/a\n") is False
