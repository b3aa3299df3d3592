"""Rules generated for three routes (CharaForge's, an avatar, a gallery) against the Firestore emulator.

firestore.rules is evaluated for real, as in test_rules_emulator.py; storage.rules is compiled only (the Storage
emulator's rules runtime is downloaded at its first start, so it cannot be evaluated offline).
"""

from __future__ import annotations

import shutil

import pytest

from image_pipeline.rules import firestore_rules, storage_rules
from tests.test_rules import ROUTES
from tests.test_rules_emulator import DOCS, PROJECT, emulator, fields, headers  # noqa: F401 (emulator: a fixture)

requests = pytest.importorskip("requests")

pytestmark = pytest.mark.skipif(
    shutil.which("gcloud") is None or shutil.which("java") is None,
    reason="needs the Google Cloud CLI (with cloud-firestore-emulator) and Java",
)

ALICE = {
    "name": "Alice",
    "avatar": {"status": "complete", "variants": {"thumb": {"path": "avatars/alice/a-1-thumb.webp"}}},
    "profile": {"bio": "hi", "photoUrl": "https://firebasestorage.googleapis.com/v0/b/b/o/a?alt=media&token=t"},
}
CHARACTER = {"meta": {"userId": "alice"}, "name": "Aria", "visuals": {"showcaseProcessingStatus": "complete"}}
PRODUCT_IMAGE = {"image": {"status": "complete"}}


def load(base: str, name: str, content: str) -> dict:
    files = [{"name": name, "content": content}]
    response = requests.put(
        f"{base}/emulator/v1/projects/{PROJECT}:securityRules", json={"rules": {"files": files}}, timeout=30
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize(("name", "render"), [("firestore.rules", firestore_rules), ("storage.rules", storage_rules)])
def test_generated_rules_compile_without_issues(emulator, name, render):  # noqa: F811
    assert load(emulator, name, render(ROUTES)).get("issues", []) == []


@pytest.fixture
def db(emulator):  # noqa: F811
    load(emulator, "firestore.rules", firestore_rules(ROUTES))
    requests.delete(f"{emulator}/emulator/v1/projects/{PROJECT}/databases/(default)/documents", timeout=30)
    for path, data in (("users/alice", ALICE), ("characters/aria", CHARACTER), ("products/p1/images/a", PRODUCT_IMAGE)):
        response = requests.patch(f"{emulator}{DOCS}/{path}", json=fields(data), headers=headers("admin"), timeout=30)
        assert response.status_code == 200, response.text
    return emulator


def create(base: str, who: str | None, path: str, data: dict) -> int:
    collection, _, doc_id = path.rpartition("/")
    return requests.post(
        f"{base}{DOCS}/{collection}?documentId={doc_id}", json=fields(data), headers=headers(who), timeout=30
    ).status_code


def update(base: str, who: str | None, path: str, data: dict, *paths: str) -> int:
    """Update the given field paths (masked, like the SDK's update()); no paths = replace the document (set)."""
    mask = "&".join(f"updateMask.fieldPaths={p}" for p in paths)
    return requests.patch(
        f"{base}{DOCS}/{path}?currentDocument.exists=true&{mask}", json=fields(data), headers=headers(who), timeout=30
    ).status_code


@pytest.mark.parametrize(
    ("who", "path", "status"),
    [
        ("alice", "users/alice", 200),
        ("bob", "users/alice", 403),
        (None, "users/alice", 403),
        ("alice", "characters/aria", 200),
        ("bob", "characters/aria", 403),
        ("alice", "products/p1/images/a", 403),  # no owner: closed to clients
    ],
)
def test_read(db, who, path, status):
    assert requests.get(f"{db}{DOCS}/{path}", headers=headers(who), timeout=30).status_code == status


@pytest.mark.parametrize(
    ("who", "path", "data", "status"),
    [
        ("carol", "users/carol", {"name": "Carol"}, 200),
        ("carol", "users/carol", {"name": "Carol", "avatar": None, "profile": {"photoUrl": None}}, 200),
        ("carol", "users/carol", {"profile": {"bio": "hello"}}, 200),
        ("bob", "users/carol", {"name": "Forged"}, 403),
        (None, "users/carol", {"name": "Anon"}, 403),
        ("carol", "users/carol", {"avatar": {"status": "complete"}}, 403),
        ("carol", "users/carol", {"profile": {"photoUrl": "https://evil.test/x.png"}}, 403),
        ("carol", "users/carol", {"profile": "not a map"}, 403),
        ("alice", "characters/new", {"meta": {"userId": "alice"}, "visuals": {"showcaseImageUrl": "x"}}, 403),
        ("alice", "characters/new", {"meta": {"userId": "alice"}, "name": "New"}, 200),
        ("alice", "products/p1/images/b", {"image": None}, 403),
    ],
)
def test_create(db, who, path, data, status):
    assert create(db, who, path, data) == status


@pytest.mark.parametrize(
    ("who", "data", "paths", "status"),
    [
        ("alice", {"name": "Renamed"}, ["name"], 200),
        ("alice", {"profile": {"bio": "new bio"}}, ["profile.bio"], 200),
        ("alice", ALICE | {"name": "Same results"}, [], 200),
        ("bob", {"name": "Hijack"}, ["name"], 403),
        (None, {"name": "Anon"}, ["name"], 403),
        ("alice", {"avatar": {"status": "failed"}}, ["avatar.status"], 403),
        ("alice", {}, ["avatar"], 403),  # deleting the manifest
        ("alice", {"avatar": {"status": "complete"}}, ["avatar"], 403),  # replacing it
        ("alice", {"profile": {"photoUrl": "https://evil.test/x"}}, ["profile.photoUrl"], 403),
        ("alice", {"profile": {"bio": "replaced map"}}, ["profile"], 403),  # drops the mirrored URL
        ("alice", {"name": "Set without the manifest"}, [], 403),
    ],
)
def test_update_avatar_owner_document(db, who, data, paths, status):
    assert update(db, who, "users/alice", data, *paths) == status


@pytest.mark.parametrize(
    ("path", "data", "paths", "status"),
    [
        ("characters/aria", {"name": "Renamed"}, ["name"], 200),
        (
            "characters/aria",
            {"visuals": {"showcaseProcessingStatus": "failed"}},
            ["visuals.showcaseProcessingStatus"],
            403,
        ),
        ("products/p1/images/a", {"image": {"status": "failed"}}, ["image.status"], 403),
        ("products/p1/images/a", {"caption": "x"}, ["caption"], 403),
    ],
)
def test_update_other_routes_documents(db, path, data, paths, status):
    assert update(db, "alice", path, data, *paths) == status


@pytest.mark.parametrize(("who", "status"), [("alice", 200), ("bob", 403), (None, 403)])
def test_delete(db, who, status):
    assert requests.delete(f"{db}{DOCS}/users/alice", headers=headers(who), timeout=30).status_code == status
