"""The security rules rendered from routes: the committed files are the built-in route's, and other routes' text.

Evaluated against the Firestore emulator in test_rules_routes_emulator.py (and the committed files in
test_rules_emulator.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from types import MappingProxyType

import pytest

from image_pipeline.__main__ import main
from image_pipeline.options import ImagingOptions
from image_pipeline.routes import Mirror, MissingDocument, Pattern, Route, Template
from image_pipeline.rules import firestore_rules, storage_rules
from image_pipeline.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
BUILTIN = Settings().routes[0]


def route(name: str, match: str, document: str, field: str, output: str, **extra) -> Route:
    return Route(name, Pattern.parse(match), Template(document), field, Template(output), ImagingOptions(), **extra)


AVATAR = route(
    "avatar",
    "users/{uid}/avatar/{file}",
    "users/{uid}",
    "avatar",
    "avatars/{uid}/",
    missing=MissingDocument.CREATE,
    owner="uid",
    mirror=Mirror(url="profile.photoUrl"),
)
GALLERY = route(
    "gallery",
    "products/{productId}/images/{file}",
    "products/{productId}/images/{stem}",
    "image",
    "product-images/{productId}/",
    missing=MissingDocument.CREATE,
)
ROUTES = (BUILTIN, AVATAR, GALLERY)


def block(text: str, path: str) -> str:
    """The body of the match block for `path`."""
    found = re.search(rf"\n    match {re.escape(path)} {{\n(.*?)\n    }}\n", text, re.DOTALL)
    assert found, f"no match block for {path}:\n{text}"
    return found.group(1)


@pytest.mark.parametrize(("name", "render"), [("firestore.rules", firestore_rules), ("storage.rules", storage_rules)])
def test_committed_rules_are_the_builtin_routes(name, render):
    # Regenerate with: python -m image_pipeline rules --out .
    assert (ROOT / name).read_text() == render((BUILTIN,))


@pytest.mark.parametrize("render", [firestore_rules, storage_rules])
def test_rules_are_well_formed(render):
    text = render(ROUTES)
    assert text.startswith("rules_version = '2';\n")
    assert text.count("{") == text.count("}")
    assert "(showcase, avatar, gallery)" in " ".join(line.lstrip("/ ") for line in text.splitlines()[:4])
    assert all(len(line) <= 120 for line in text.splitlines())


def test_storage_owner_uploads_images_under_its_match():
    body = block(storage_rules(ROUTES), "/users/{uid}/avatar/{file}")
    assert "allow create, update: if isOwner(uid) && validId(uid) && validImage(50 * 1024 * 1024);" in body
    assert "allow read: if isOwner(uid);" in body
    assert "allow delete: if isOwner(uid);" in body


def test_storage_route_without_owner_takes_no_client_access():
    body = block(storage_rules(ROUTES), "/products/{productId}/images/{file}")
    assert [line.strip() for line in body.splitlines() if not line.strip().startswith("//")] == [
        "allow read, write: if false;"
    ]


@pytest.mark.parametrize(
    ("path", "listing"),
    [
        ("/showcase-images/{uid}/{characterId}/{fileName}", "isOwner(uid)"),
        ("/avatars/{uid}/{fileName}", "isOwner(uid)"),
        ("/product-images/{productId}/{fileName}", "false"),
    ],
)
def test_storage_outputs_take_no_client_writes(path, listing):
    body = block(storage_rules(ROUTES), path)
    assert "allow write: if false;" in body
    assert f"allow list: if {listing};" in body
    assert "allow get: if signedIn();" in body


def test_storage_mixed_output_segments_and_byte_limits():
    imaging = ImagingOptions(max_input_bytes=1_000_000)
    thumbs = Route(
        "thumbs",
        Pattern.parse("in/{uid}/{file}"),
        Template("docs/{uid}"),
        "thumbs",
        Template("out/{uid}-{stem}/"),
        imaging,
        owner="uid",
    )
    text = storage_rules((thumbs,))
    assert "validImage(1000000)" in text
    assert "allow list: if false;" in block(text, "/out/{segment2}/{fileName}")


def test_firestore_owner_by_path_variable_and_top_level_fields():
    body = block(firestore_rules(ROUTES), "/users/{uid}")
    assert "allow read: if signedIn() && uid == request.auth.uid;" in body
    assert "request.resource.data.get('avatar', null) == null" in body
    assert "!request.resource.data.diff(resource.data).affectedKeys()\n            .hasAny(['avatar'])" in body
    assert "profileOf(request.resource.data).get('photoUrl', null) == null" in body
    assert "return data.get('profile', {});" in body


def test_firestore_documents_without_owner_are_closed():
    body = block(firestore_rules(ROUTES), "/products/{productId}/images/{stem}")
    assert body.rstrip().endswith("allow read, write: if false;")
    assert "keeping clients away from image." in firestore_rules(ROUTES)


def test_firestore_routes_sharing_documents_share_one_block_with_all_fields():
    portrait = route(
        "portrait",
        "portraits/{uid}/{id}/{file}",
        "characters/{id}",
        "visuals.portrait",
        "portrait-images/{uid}/{id}/",
        owner="uid",
        require=MappingProxyType({"meta.userId": Template("{uid}")}),
    )
    text = firestore_rules((BUILTIN, portrait))
    assert text.count("    match /characters/") == 1
    assert "'showcaseImageUrl', 'portrait'" in block(text, "/characters/{characterId}")


@pytest.mark.parametrize(
    ("other", "message"),
    [
        (route("admin", "admin/{file}", "users/admin", "avatar", "admin-out/"), "can be the same document"),
        (route("other", "other/{uid}/{file}", "users/{uid}", "avatar2", "other-out/{uid}/"), "name their owners"),
    ],
)
def test_firestore_refuses_documents_it_cannot_keep_apart(other, message):
    with pytest.raises(ValueError, match=message):
        firestore_rules((AVATAR, other))


@pytest.mark.parametrize("render", [firestore_rules, storage_rules])
def test_reserved_capture_names_are_refused(render):
    bad = route("bad", "in/{bucket}/{file}", "docs/{bucket}", "x", "out/{bucket}/", owner="bucket")
    with pytest.raises(ValueError, match=r"route 'bad': capture \{bucket\}"):
        render((bad,))


def test_cli_prints_one_file_or_writes_both(tmp_path, capsys):
    assert main(["rules", "--storage"]) == 0
    assert capsys.readouterr().out == storage_rules(Settings.from_env().routes)
    assert main(["rules"]) == 2
    assert "choose --firestore or --storage" in capsys.readouterr().err
    assert main(["rules", "--out", str(tmp_path / "rules")]) == 0
    assert sorted(path.name for path in (tmp_path / "rules").iterdir()) == ["firestore.rules", "storage.rules"]
    assert main(["rules", "--firestore", "--out", str(tmp_path / "fs")]) == 0
    assert [path.name for path in (tmp_path / "fs").iterdir()] == ["firestore.rules"]
