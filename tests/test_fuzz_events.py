"""Hostile object names, malformed CloudEvents and forged metadata: skipped or rejected cleanly, never another
user's document.

The pure skip rules (objects.py) are explored with hypothesis against an independent oracle of the contract;
a smaller set is delivered over HTTP to the function served by functions-framework on the emulators.
"""

from __future__ import annotations

import json
import string
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from image_pipeline.function import Function
from image_pipeline.settings import Settings
from image_pipeline.uploads import Skip, Upload, classify
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
    source_prefix = SETTINGS.routes[0].match.literal_prefix
    name = source_prefix + "/".join(parts) + ("/" if trailing_slash else "")
    pieces = name[len(source_prefix) :].split("/")
    expected = len(pieces) == 3 and is_id(pieces[0]) and is_id(pieces[1]) and is_file_name(pieces[2])

    result = classify("e", None, resource(name), SETTINGS.routes)

    assert isinstance(result, Upload) is expected, (name, result)
    if expected:
        values = result.values
        assert (values["uid"], values["characterId"], result.file_name) == tuple(pieces)


@settings(max_examples=300, deadline=None)
@given(
    uid=st.from_regex(r"\A[A-Za-z0-9_-]{1,128}\Z"),
    character=st.from_regex(r"\A[A-Za-z0-9_-]{1,128}\Z"),
    file_name=st.text(min_size=1, max_size=300).filter(is_file_name),
    variant=st.sampled_from(["thumb", "large"]),
)
def test_outputs_of_an_upload_stay_in_its_own_folder_with_safe_names(
    uid: str, character: str, file_name: str, variant: str
) -> None:
    upload = classify("e", None, resource(f"raw-uploads/{uid}/{character}/{file_name}"), SETTINGS.routes)
    assert isinstance(upload, Upload)

    path = upload.output_path(variant, "webp")
    url = SETTINGS.policy.urls.url("b", path, "tok")

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
    st.sampled_from(
        [
            "",
            "0",
            "00",
            "01",
            "-1",
            "+1",
            " 1",
            "1 ",
            "1\n",
            "1.0",
            "1e3",
            "0x10",
            "١٢٣",
            "²",
            "9" * 18,
            "9" * 19,
            "9" * 20,
            "9" * 21,
            str(2**63 - 1),
            str(2**63),
            "1_000",
            "NaN",
            "inf",
        ]
    ),
)


def is_digit_string(value: Any) -> bool:
    """A positive whole number as the event sends it: ASCII digits without a leading zero (or a plain int)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return 0 < value < 2**63
    return (isinstance(value, str) and 1 <= len(value) <= 20 and value.isascii() and value.isdigit() and value[0] != "0"
            and int(value) < 2**63)  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(generation=numbers_as_sent, size=numbers_as_sent, content_type=json_values, encoding=json_values,
       metadata=json_values, event_time=st.one_of(st.none(), st.text(max_size=40)))  # fmt: skip
def test_malformed_fields_are_skipped_or_parsed_into_sane_values(
    generation: Any, size: Any, content_type: Any, encoding: Any, metadata: Any, event_time: str | None
) -> None:
    data = resource("raw-uploads/u/c/x.jpg", generation=generation, size=size, contentType=content_type,
                    contentEncoding=encoding, metadata=metadata)  # fmt: skip

    result = classify("e", event_time, data, SETTINGS.routes)

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


@pytest.mark.parametrize(
    "event_time",
    [
        "2030-13-01T00:00:00Z",
        "9999-12-31T23:59:59+14:00",
        "0001-01-01T00:00:00-14:00",
        "2030-01-01T00:00:00.0000000001Z",
        "\x00",
        "now",
        "",
    ],
)
def test_odd_event_times_give_an_aware_time(event_time: str) -> None:
    upload = classify("e", event_time, resource("raw-uploads/u/c/x.jpg"), SETTINGS.routes)

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
    assert isinstance(classify("e", None, data, SETTINGS.routes), Skip)


# ---------------------------------------------------------------------------
# End to end: hostile events over HTTP to the served function; two users' documents, only one may change
# ---------------------------------------------------------------------------

VICTIM, VICTIM_CHARACTER = "victim-user", "victim-char"
ATTACKER, ATTACKER_CHARACTER = "attacker-user", "attacker-char"
OWN_SOURCE = f"raw-uploads/{ATTACKER}/{ATTACKER_CHARACTER}/me.jpg"


@pytest.fixture
def two_users(backend: Any) -> Iterator[Any]:
    """Two users' characters, the attacker's real upload, and a check afterwards that the victim's is untouched."""
    from tests.backend import photo

    backend.seed_character(VICTIM_CHARACTER, VICTIM, visuals={"showcaseImageUrl": "https://victim/kept"})
    backend.seed_character(ATTACKER_CHARACTER, ATTACKER)
    backend.source = backend.upload(OWN_SOURCE, photo(320, 240))
    victim_before = backend.document(VICTIM_CHARACTER)
    log_start = len(backend.function_log.read_bytes())
    yield backend
    assert backend.document(VICTIM_CHARACTER) == victim_before
    assert backend.objects(f"showcase-images/{VICTIM}/") == {}
    new_log = backend.function_log.read_bytes()[log_start:].decode(errors="replace")
    assert "Traceback" not in new_log


def post_event(url: str, headers: dict[str, str], body: bytes) -> int:
    """POST raw bytes with the given headers; the HTTP status."""
    import requests

    return requests.post(url, data=body, headers=headers, timeout=60).status_code


def eventarc_headers(name: str, **overrides: str) -> dict[str, str]:
    """The binary-mode CloudEvent headers Eventarc sends for an object; `None`-valued overrides drop a header."""
    headers = {
        "ce-id": uuid.uuid4().hex,
        "ce-source": "//storage.googleapis.com/projects/_/buckets/demo-image-pipeline.appspot.com",
        "ce-type": "google.cloud.storage.object.v1.finalized",
        "ce-specversion": "1.0",
        "ce-subject": f"objects/{quote(name)}",  # a header cannot carry control characters
        "ce-time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "Content-Type": "application/json",
        **overrides,
    }
    return {key: value for key, value in headers.items() if value is not None}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(f"raw-uploads/{ATTACKER}/{VICTIM_CHARACTER}/x.jpg", id="someone-elses-character"),
        pytest.param(f"raw-uploads/{ATTACKER}/../{VICTIM}/{VICTIM_CHARACTER}/x.jpg", id="dot-dot-into-victim"),
        pytest.param(f"raw-uploads/{VICTIM}%2F{VICTIM_CHARACTER}/x.jpg", id="encoded-slash"),
        pytest.param(f"raw-uploads/{ATTACKER}/{VICTIM_CHARACTER}\n/x.jpg", id="newline-after-victim-id"),
        pytest.param(f"raw-uploads/{VICTIM}\n/{VICTIM_CHARACTER}/x.jpg", id="newline-after-victim-uid"),
        pytest.param(f"raw-uploads/{VICTIM}\x00/{VICTIM_CHARACTER}/x.jpg", id="nul"),
        pytest.param(f"raw-uploads/victіm-user/{VICTIM_CHARACTER}/x.jpg", id="homoglyph-uid"),
        pytest.param(f"raw-uploads/{ATTACKER}/{VICTIM_CHARACTER} /x.jpg", id="trailing-space-id"),
        pytest.param(f"raw-uploads/{ATTACKER}/{ATTACKER_CHARACTER}/", id="trailing-slash"),
        pytest.param(f"raw-uploads/{ATTACKER}/{ATTACKER_CHARACTER}/x\x07.jpg", id="control-char-file"),
        pytest.param(f"raw-uploads/{ATTACKER}/{'c' * 129}/x.jpg", id="id-too-long"),
        pytest.param(f"raw-uploads/{ATTACKER}/{VICTIM_CHARACTER}/{'x' * 1000}.jpg", id="very-long-name"),
        pytest.param(f"showcase-images/{VICTIM}/{VICTIM_CHARACTER}/x-1-large.webp", id="output-prefix"),
    ],
)
def test_hostile_names_are_acknowledged_and_change_nothing(two_users: Any, name: str) -> None:
    attacker_before = two_users.document(ATTACKER_CHARACTER)

    status = post_event(
        two_users.function_url, eventarc_headers(name), json.dumps({**two_users.source, "name": name}).encode()
    )

    assert status == 200
    assert two_users.document(ATTACKER_CHARACTER) == attacker_before
    assert two_users.objects("showcase-images/") == {}


@pytest.mark.parametrize(
    ("overrides", "body"),
    [
        pytest.param({"ce-id": None}, None, id="no-id"),
        pytest.param({"ce-type": None}, None, id="no-type"),
        pytest.param({"ce-source": None}, None, id="no-source"),
        pytest.param({"ce-specversion": "0.1"}, None, id="unknown-specversion"),
        pytest.param({}, b"{not json", id="body-not-json"),
        pytest.param({"Content-Type": "text/plain"}, b"raw-uploads/u/c/x.jpg", id="body-text"),
    ],
)
def test_malformed_envelopes_are_refused_without_a_retry_status(
    two_users: Any, overrides: dict, body: bytes | None
) -> None:
    payload = json.dumps(two_users.source).encode() if body is None else body

    status = post_event(two_users.function_url, eventarc_headers(OWN_SOURCE, **overrides), payload)

    assert status < 500
    assert two_users.document(ATTACKER_CHARACTER) == {"meta": {"userId": ATTACKER}}


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(None, id="null"),
        pytest.param([1, 2, 3], id="list"),
        pytest.param("raw-uploads/a/b/c.jpg", id="string"),
        pytest.param({}, id="empty-object"),
        pytest.param({"name": OWN_SOURCE}, id="no-bucket"),
        pytest.param({"name": 7, "bucket": True}, id="wrong-types"),
        pytest.param({"generation": "12ab"}, id="generation-not-digits"),
        pytest.param({"generation": "-5"}, id="generation-negative"),
        pytest.param({"generation": 1.5}, id="generation-float"),
        pytest.param({"size": "-1"}, id="size-negative"),
        pytest.param({"size": "0"}, id="size-zero"),
        pytest.param({"size": "9" * 20}, id="size-over-int64"),
        pytest.param({"generation": str(2**63)}, id="generation-over-int64"),
        pytest.param({"size": "9" * 40}, id="size-absurd"),
    ],
)
def test_malformed_event_data_is_skipped(two_users: Any, data: Any) -> None:
    body = {**two_users.source, **data} if isinstance(data, dict) and data.keys() - {"name", "bucket"} else data

    status = post_event(two_users.function_url, eventarc_headers(OWN_SOURCE), json.dumps(body).encode())

    assert status == 200
    assert two_users.document(ATTACKER_CHARACTER) == {"meta": {"userId": ATTACKER}}
    assert two_users.objects("showcase-images/") == {}


def test_a_huge_declared_size_fails_before_download(two_users: Any) -> None:
    assert two_users.deliver({**two_users.source, "size": str(2**63 - 1)}) == 200

    visuals = two_users.document(ATTACKER_CHARACTER)["visuals"]
    assert (visuals["showcaseProcessingStatus"], visuals["showcase"]["error"]["code"]) == ("failed", "too_large")
    assert two_users.objects("showcase-images/") == {}


@pytest.mark.parametrize("where", ["object", "event"])
def test_forged_metadata_is_neither_trusted_nor_copied(two_users: Any, where: str) -> None:
    from tests.backend import photo

    forged = {"resizedImage": "true", "firebaseStorageDownloadTokens": "forged-token"}
    source = two_users.upload(OWN_SOURCE, photo(320, 240), metadata=forged if where == "object" else None)

    assert two_users.deliver({**source, "metadata": forged}) == 200

    visuals = two_users.document(ATTACKER_CHARACTER)["visuals"]
    outputs = two_users.objects(f"showcase-images/{ATTACKER}/{ATTACKER_CHARACTER}/")
    assert visuals["showcaseProcessingStatus"] == "complete" and len(outputs) == 3
    for blob in outputs.values():
        # Only what every output gets: its own token and the mark no extension route takes for an upload.
        assert blob.metadata["resizedImage"] == "true" and set(blob.metadata) == {
            "firebaseStorageDownloadTokens",
            "resizedImage",
        }
        assert "forged" not in blob.metadata["firebaseStorageDownloadTokens"]
    assert all("forged" not in variant["url"] for variant in visuals["showcase"]["variants"].values())


def test_a_unicode_file_name_of_the_owner_is_processed_into_safe_names(two_users: Any) -> None:
    from tests.backend import photo

    name = f"raw-uploads/{ATTACKER}/{ATTACKER_CHARACTER}/ﬁlé %2F..名前 😀.jpg"
    source = two_users.upload(name, photo(320, 240))

    assert post_event(two_users.function_url, eventarc_headers(name), json.dumps(source).encode()) == 200

    outputs = two_users.objects(f"showcase-images/{ATTACKER}/{ATTACKER_CHARACTER}/")
    assert len(outputs) == 3 and all(set(name) <= SAFE_OUTPUT_CHARS for name in outputs)
    assert two_users.document(ATTACKER_CHARACTER)["visuals"]["showcaseProcessingStatus"] == "complete"


@pytest.mark.parametrize("field_name", ["generation", "size"])
def test_a_number_beyond_int64_is_skipped(field_name: str) -> None:
    # Found by the event fuzzer: size 99999999999999999999 reached Firestore, which refused it -> 500 forever.
    assert isinstance(
        classify("e", None, resource("raw-uploads/u/c/x.jpg", **{field_name: str(2**63)}), SETTINGS.routes), Skip
    )
    assert isinstance(
        classify("e", None, resource("raw-uploads/u/c/x.jpg", **{field_name: str(2**63 - 1)}), SETTINGS.routes), Upload
    )
