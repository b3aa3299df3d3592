"""firestore.rules and storage.rules, against the Google Cloud CLI's Firestore emulator (no Firebase CLI needed).

- Both rules files are compiled by the emulator's rules engine (`PUT /emulator/v1/projects/P:securityRules`,
  what the Firebase CLI uses to hot-load rules): no syntax errors and no warnings (unknown functions,
  variables or methods are reported as warnings).
- firestore.rules is evaluated for real: requests go through the emulator's REST API with an unsigned ID
  token (`alg: none`, as @firebase/rules-unit-testing makes them), which the emulator turns into
  `request.auth`; `Bearer owner` is the admin bypass used to seed documents.

storage.rules cannot be evaluated offline: the Firebase Storage emulator downloads its rules runtime at first
start. Only the compile step here checks it; its behaviour is not tested.

Skipped when gcloud, its cloud-firestore-emulator component or Java is missing.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.waits import poll

requests = pytest.importorskip("requests")

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "demo-rules"
DOCS = f"/v1/projects/{PROJECT}/databases/(default)/documents"

pytestmark = pytest.mark.skipif(
    shutil.which("gcloud") is None or shutil.which("java") is None,
    reason="needs the Google Cloud CLI (with cloud-firestore-emulator) and Java",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("firestore-rules") / "emulator.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            ["gcloud", "emulators", "firestore", "start", f"--host-port=127.0.0.1:{port}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return requests.get(base + "/", timeout=1).ok
        except requests.RequestException:  # refused, or accepted but not answering yet
            return False

    try:
        # The emulator (a JVM) says it is up only by answering on its port; 90 s covers a cold start on a busy machine.
        up = poll(lambda: process.poll() is not None or answers(), 90, interval_s=0.3)
        if not up or process.poll() is not None:
            text = log.read_text(errors="replace")
            if "component" in text.lower() and "not installed" in text.lower():
                pytest.skip("cloud-firestore-emulator component not installed")
            outcome = "exited" if process.poll() is not None else "did not answer within 90 s"
            pytest.fail(f"Firestore emulator {outcome}:\n{text[-2000:]}")
        yield base
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


def load_rules(base: str, name: str) -> dict:
    content = (ROOT / name).read_text()
    response = requests.put(
        f"{base}/emulator/v1/projects/{PROJECT}:securityRules",
        json={"rules": {"files": [{"name": name, "content": content}]}},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("name", ["firestore.rules", "storage.rules"])
def test_rules_compile_without_issues(emulator, name):
    text = (ROOT / name).read_text()
    assert text.startswith("rules_version = '2';")
    assert load_rules(emulator, name).get("issues", []) == []


def test_rules_compiler_catches_mistakes(emulator):
    # The check above is meaningful: a typo in a function name is reported.
    content = (ROOT / "storage.rules").read_text().replace("isOwner(uid) && validId", "isOwnr(uid) && validId")
    response = requests.put(
        f"{emulator}/emulator/v1/projects/{PROJECT}-typo:securityRules",
        json={"rules": {"files": [{"name": "storage.rules", "content": content}]}},
        timeout=30,
    )
    assert "isOwnr" in response.text


# --- firestore.rules, evaluated -------------------------------------------------------------------------------


def token(uid: str) -> str:
    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    claims = {
        "sub": uid,
        "user_id": uid,
        "aud": PROJECT,
        "iss": f"https://securetoken.google.com/{PROJECT}",
        "iat": 0,
        "exp": 9_999_999_999,
        "auth_time": 0,
        "firebase": {"sign_in_provider": "custom", "identities": {}},
    }
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def headers(who: str | None) -> dict:
    if who is None:
        return {}
    return {"Authorization": "Bearer owner" if who == "admin" else f"Bearer {token(who)}"}


def value(python) -> dict:
    if python is None:
        return {"nullValue": None}
    if isinstance(python, bool):
        return {"booleanValue": python}
    if isinstance(python, int):
        return {"integerValue": str(python)}
    if isinstance(python, str):
        return {"stringValue": python}
    if isinstance(python, dict):
        return {"mapValue": {"fields": {k: value(v) for k, v in python.items()}}}
    raise TypeError(python)


def fields(data: dict) -> dict:
    return {"fields": {k: value(v) for k, v in data.items()}}


PROCESSED = {
    "meta": {"userId": "alice"},
    "name": "Aria",
    "visuals": {
        "primaryImageUrl": "https://example.test/p.png",
        "showcaseProcessingStatus": "complete",
        "isShowcaseProcessed": True,
        "showcaseImageUrl": "https://firebasestorage.googleapis.com/v0/b/b/o/x?alt=media&token=t",
        "showcase": {"error": None, "source": {"generation": "1"}},
    },
}
BARE = {"meta": {"userId": "alice"}, "name": "Bare"}


@pytest.fixture
def db(emulator):
    load_rules(emulator, "firestore.rules")
    requests.delete(f"{emulator}/emulator/v1/projects/{PROJECT}/databases/(default)/documents", timeout=30)
    for doc_id, data in (("processed", PROCESSED), ("bare", BARE)):
        response = requests.patch(
            f"{emulator}{DOCS}/characters/{doc_id}", json=fields(data), headers=headers("admin"), timeout=30
        )
        assert response.status_code == 200, response.text
    return emulator


def create(base, who, doc_id, data):
    return requests.post(
        f"{base}{DOCS}/characters?documentId={doc_id}", json=fields(data), headers=headers(who), timeout=30
    ).status_code


def update(base, who, doc_id, data, *paths):
    """Update the given field paths (masked, like the SDK's update()); no paths = replace the document (set)."""
    mask = "&".join(f"updateMask.fieldPaths={p}" for p in paths)
    return requests.patch(
        f"{base}{DOCS}/characters/{doc_id}?currentDocument.exists=true&{mask}",
        json=fields(data),
        headers=headers(who),
        timeout=30,
    ).status_code


@pytest.mark.parametrize(
    ("who", "doc_id", "status"),
    [("alice", "processed", 200), ("bob", "processed", 403), (None, "processed", 403), ("alice", "bare", 200)],
)
def test_read(db, who, doc_id, status):
    assert requests.get(f"{db}{DOCS}/characters/{doc_id}", headers=headers(who), timeout=30).status_code == status


@pytest.mark.parametrize(
    ("who", "owner", "status"), [("alice", "alice", 200), ("alice", None, 403), ("bob", "alice", 403)]
)
def test_queries_must_be_limited_to_own_characters(db, who, owner, status):
    query = {"from": [{"collectionId": "characters"}]}
    if owner:
        query["where"] = {
            "fieldFilter": {"field": {"fieldPath": "meta.userId"}, "op": "EQUAL", "value": {"stringValue": owner}}
        }
    response = requests.post(f"{db}{DOCS}:runQuery", json={"structuredQuery": query}, headers=headers(who), timeout=30)
    assert response.status_code == status, response.text


@pytest.mark.parametrize(
    ("who", "data", "status"),
    [
        ("alice", {"meta": {"userId": "alice"}, "name": "New"}, 200),
        ("alice", {"meta": {"userId": "alice"}, "visuals": {"primaryImageUrl": "https://x/p.png"}}, 200),
        (
            "alice",
            {
                "meta": {"userId": "alice"},
                "visuals": {
                    "isShowcaseProcessed": False,
                    "showcaseProcessingStatus": None,
                    "showcaseImageUrl": None,
                    "showcase": None,
                },
            },
            200,
        ),
        ("bob", {"meta": {"userId": "alice"}, "name": "Forged"}, 403),
        (None, {"meta": {"userId": "alice"}, "name": "Anon"}, 403),
        ("alice", {"name": "No owner"}, 403),
        ("alice", {"meta": {"userId": "alice"}, "visuals": {"showcaseProcessingStatus": "complete"}}, 403),
        ("alice", {"meta": {"userId": "alice"}, "visuals": {"showcaseProcessingStatus": "finalizing"}}, 403),
        ("alice", {"meta": {"userId": "alice"}, "visuals": {"isShowcaseProcessed": True}}, 403),
        ("alice", {"meta": {"userId": "alice"}, "visuals": {"showcaseImageUrl": "https://evil.test/x.png"}}, 403),
        ("alice", {"meta": {"userId": "alice"}, "visuals": {"showcase": {"error": None}}}, 403),
        ("alice", {"meta": {"userId": "alice"}, "visuals": "not a map"}, 403),
    ],
)
def test_create(db, who, data, status):
    assert create(db, who, "new", data) == status


@pytest.mark.parametrize(
    ("who", "doc_id", "data", "paths", "status"),
    [
        ("alice", "processed", {"name": "Renamed"}, ["name"], 200),
        ("alice", "processed", {"visuals": {"primaryImageUrl": "https://x/q.png"}}, ["visuals.primaryImageUrl"], 200),
        ("alice", "bare", {"visuals": {"primaryImageUrl": "https://x/q.png"}}, ["visuals"], 200),
        ("alice", "processed", PROCESSED | {"name": "Same visuals"}, [], 200),
        ("bob", "processed", {"name": "Hijack"}, ["name"], 403),
        (None, "processed", {"name": "Anon"}, ["name"], 403),
        ("alice", "processed", {"meta": {"userId": "bob"}}, ["meta.userId"], 403),
        (
            "alice",
            "processed",
            {"visuals": {"showcaseImageUrl": "https://evil.test/x"}},
            ["visuals.showcaseImageUrl"],
            403,
        ),
        (
            "alice",
            "processed",
            {"visuals": {"showcaseProcessingStatus": "finalizing"}},
            ["visuals.showcaseProcessingStatus"],
            403,
        ),
        (
            "alice",
            "bare",
            {"visuals": {"showcaseProcessingStatus": "complete"}},
            ["visuals.showcaseProcessingStatus"],
            403,
        ),
        ("alice", "processed", {"visuals": {"isShowcaseProcessed": False}}, ["visuals.isShowcaseProcessed"], 403),
        ("alice", "bare", {"visuals": {"isShowcaseProcessed": True}}, ["visuals"], 403),
        ("alice", "processed", {"visuals": {"showcase": {"error": {"code": "x"}}}}, ["visuals.showcase.error"], 403),
        ("alice", "processed", {}, ["visuals"], 403),  # deleting the whole visuals map
        ("alice", "processed", {}, ["visuals.showcase"], 403),  # deleting one function-owned field
        ("alice", "processed", {"visuals": {"primaryImageUrl": "https://x"}}, ["visuals"], 403),  # replacing it
        ("alice", "processed", {"meta": {"userId": "alice"}, "name": "Set without visuals"}, [], 403),
        ("alice", "processed", {"visuals": "flat"}, ["visuals"], 403),
    ],
)
def test_update(db, who, doc_id, data, paths, status):
    assert update(db, who, doc_id, data, *paths) == status


@pytest.mark.parametrize(("who", "status"), [("alice", 200), ("bob", 403), (None, 403)])
def test_delete(db, who, status):
    response = requests.delete(f"{db}{DOCS}/characters/processed", headers=headers(who), timeout=30)
    assert response.status_code == status


def test_other_collections_are_closed(db):
    assert create(db, "alice", "x", {"meta": {"userId": "alice"}}) == 200
    response = requests.post(
        f"{db}{DOCS}/users?documentId=alice", json=fields({"a": 1}), headers=headers("alice"), timeout=30
    )
    assert response.status_code == 403
