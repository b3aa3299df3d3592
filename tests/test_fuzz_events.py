"""Hostile object names, malformed CloudEvents and forged metadata: skipped or rejected cleanly, never another user's document.

The pure skip rules (objects.py) are explored with hypothesis against an independent oracle of the contract;
a smaller set is delivered over HTTP to the function served by functions-framework on the emulators.
"""

from __future__ import annotations

import json
import string
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from image_pipeline.function import Function
from image_pipeline.objects import Skip, Upload, classify, download_url, output_path
from image_pipeline.settings import Settings
from image_pipeline.usecase import Outcome

SETTINGS = Settings()
ID_ALPHABET = string.ascii_letters + string.digits + "_-"
SAFE_OUTPUT_CHARS = set(ID_ALPHABET + "./")
HOSTILE_PIECES = [
    "", ".", "..", "%2F", "%2e%2e", "a/b", "\x00", "\n", "\r\n", "\t", " ", "user ", " user", "user\n", "\u202e",
    "\ufeff", "\u200b", "usеr", "ｕser", "İ", "ß", "名前", "😀", "a" * 129, "a" * 128, "a" * 5000, "-", "_", "..%2F..",
    "\\", "C:\\x", "?", "#", "*", "~", ";",
]  # fmt: skip


def is_id(text: str) -> bool:
    """The contract's rule for uid and characterId, written independently of the implementation."""
    return 1 <= len(text) <= 128 and all(char in ID_ALPHABET for char in text)


def is_file_name(text: str) -> bool:
    """The contract's rule for the last segment: present, not a dot segment, no control or separator characters."""
    return text not in ("", ".", "..") and "/" not in text and text.isprintable()


def resource(name: Any, **overrides: Any) -> dict[str, Any]:
    """An object resource as Eventarc delivers it."""
    return {"bucket": "b", "name": name, "generation": "1700000000000001", "size": "1234", **overrides}


segments = st.one_of(
    st.from_regex(r"\A[A-Za-z0-9_-]{1,12}\Z"),
    st.sampled_from(HOSTILE_PIECES),
    st.text(min_size=0, max_size=20),
    st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=12),
)


@settings(max_examples=600, deadline=None)
@given(parts=st.lists(segments, min_size=0, max_size=5), trailing_slash=st.booleans())
def test_a_name_is_an_upload_exactly_when_the_contract_says_so(parts: list[str], trailing_slash: bool) -> None:
    name = SETTINGS.source_prefix + "/".join(parts) + ("/" if trailing_slash else "")
    pieces = name[len(SETTINGS.source_prefix) :].split("/")
    expected = len(pieces) == 3 and is_id(pieces[0]) and is_id(pieces[1]) and is_file_name(pieces[2])

    result = classify("e", None, resource(name), SETTINGS)

    assert isinstance(result, Upload) is expected, (name, result)
    if expected:
        assert (result.uid, result.character_id, result.file_name) == tuple(pieces)


@settings(max_examples=300, deadline=None)
@given(uid=st.from_regex(r"\A[A-Za-z0-9_-]{1,128}\Z"), character=st.from_regex(r"\A[A-Za-z0-9_-]{1,128}\Z"),
       file_name=st.text(min_size=1, max_size=300).filter(is_file_name), variant=st.sampled_from(["thumb", "large"]))  # fmt: skip
def test_outputs_of_an_upload_stay_in_its_own_folder_with_safe_names(
    uid: str, character: str, file_name: str, variant: str
) -> None:
    upload = classify("e", None, resource(f"raw-uploads/{uid}/{character}/{file_name}"), SETTINGS)
    assert isinstance(upload, Upload)

    path = output_path(upload, variant, "webp", SETTINGS)
    url = download_url("b", path, "tok", SETTINGS)

    folder = f"showcase-images/{uid}/{character}/"
    assert path.startswith(folder) and "/" not in path[len(folder) :]
    assert set(path) <= SAFE_OUTPUT_CHARS and ".." not in path.split("/")
    assert path.endswith(f"-{upload.generation}-{variant}.webp")
    object_part = url.split("/o/", 1)[1].split("?", 1)[0]
    assert "/" not in object_part and unquote(object_part) == path


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
numbers_as_sent = st.one_of(
    json_values,
    st.integers(min_value=-(10**25), max_value=10**25),
    st.integers(min_value=-(10**25), max_value=10**25).map(str),
    st.sampled_from(["", "0", "00", "01", "-1", "+1", " 1", "1 ", "1\n", "1.0", "1e3", "0x10", "١٢٣", "²", "9" * 20,
                     "9" * 21, "1_000", "NaN", "inf"]),
)  # fmt: skip


def is_digit_string(value: Any) -> bool:
    """A positive whole number as the event sends it: ASCII digits without a leading zero (or a plain int)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value > 0 and len(str(value)) <= 20
    return isinstance(value, str) and 1 <= len(value) <= 20 and value.isascii() and value.isdigit() and value[0] != "0"


@settings(max_examples=500, deadline=None)
@given(generation=numbers_as_sent, size=numbers_as_sent, content_type=json_values, encoding=json_values,
       metadata=json_values, event_time=st.one_of(st.none(), st.text(max_size=40)))  # fmt: skip
def test_malformed_fields_are_skipped_or_parsed_into_sane_values(
    generation: Any, size: Any, content_type: Any, encoding: Any, metadata: Any, event_time: str | None
) -> None:
    data = resource("raw-uploads/u/c/x.jpg", generation=generation, size=size, contentType=content_type,
                    contentEncoding=encoding, metadata=metadata)  # fmt: skip

    result = classify("e", event_time, data, SETTINGS)

    assert isinstance(result, (Skip, Upload))
    if isinstance(result, Upload):
        assert is_digit_string(generation) and is_digit_string(size)
        assert result.generation == int(generation) > 0 and result.size == int(size) > 0
        assert result.event_time.tzinfo is not None
        assert result.content_type is None or isinstance(result.content_type, str)
        assert result.content_encoding is None or isinstance(result.content_encoding, str)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=json_values, event_time=st.one_of(st.none(), st.text(max_size=40)))
def test_any_event_data_is_skipped_without_connecting_to_anything(data: Any, event_time: str | None) -> None:
    def refuse(_: Settings) -> Any:
        raise AssertionError("a skipped event must not create clients")

    assert Function(SETTINGS, connect=refuse).handle("e", event_time, data) is Outcome.SKIPPED


@pytest.mark.parametrize("event_time", ["2030-13-01T00:00:00Z", "9999-12-31T23:59:59+14:00", "0001-01-01T00:00:00-14:00",
                                        "2030-01-01T00:00:00.0000000001Z", "\x00", "now", ""])  # fmt: skip
def test_odd_event_times_give_an_aware_time(event_time: str) -> None:
    upload = classify("e", event_time, resource("raw-uploads/u/c/x.jpg"), SETTINGS)

    assert isinstance(upload, Upload) and upload.event_time.tzinfo is not None


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(resource("raw-uploads/user\n/c/x.jpg"), id="uid-trailing-newline"),
        pytest.param(resource("raw-uploads/u/char\n/x.jpg"), id="character-trailing-newline"),
        pytest.param(resource("raw-uploads/u/c/x.jpg", generation="17\n"), id="generation-trailing-newline"),
        pytest.param(resource("raw-uploads/u/c/x.jpg", size="17\n"), id="size-trailing-newline"),
    ],
)
def test_a_trailing_newline_does_not_pass_for_an_id_or_a_number(data: dict[str, Any]) -> None:
    # Found by the name fuzzer: `re.match("^...$")` accepts "user\n", which named a different document.
    assert isinstance(classify("e", None, data, SETTINGS), Skip)
