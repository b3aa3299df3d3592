"""The warm-up (on by default) starts in each forked serving process, never in the process that imports main."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

IMPORT_THEN_FORK = """
import json, os, sys, threading
import main

HEAVY = ("PIL", "google.cloud.storage", "google.cloud.firestore", "grpc")

def state():
    warm_ups = [thread for thread in threading.enumerate() if thread.name == "warm-up"]
    for thread in warm_ups:
        thread.join(timeout=30)
    names = set(sys.modules)
    loaded = sorted({prefix for prefix in HEAVY for name in names if name == prefix or name.startswith(prefix + ".")})
    return {"warm_ups": len(warm_ups), "loaded": loaded}

child = os.fork()
if child == 0:
    sys.stdout.write(json.dumps({"child": state()}) + "\\n")
    sys.stdout.flush()
    os._exit(0)
os.waitpid(child, 0)
print(json.dumps({"parent": state()}))
"""

# Clients against addresses where nothing listens: created anonymously, the channel never becomes ready.
NOWHERE = {
    "FIRESTORE_EMULATOR_HOST": "127.0.0.1:9",
    "STORAGE_EMULATOR_HOST": "http://127.0.0.1:9",
    "GOOGLE_CLOUD_PROJECT": "demo-warm-up",
    "CLIENT_TIMEOUT_S": "0.2",
}


def run_forked(warm_up: str | None) -> tuple[dict, dict, list[dict]]:
    """(the child's state, the parent's state, every log line) of a process that imports main, then forks.

    warm_up: WARM_UP's value, or None to leave it unset.
    """
    setting = {} if warm_up is None else {"WARM_UP": warm_up}
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_THEN_FORK],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **setting, **NOWHERE},
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    [child] = [line["child"] for line in lines if "child" in line]
    [parent] = [line["parent"] for line in lines if "parent" in line]
    return child, parent, [line for line in lines if "message" in line]


@pytest.mark.parametrize("warm_up", [None, "true"])
def test_the_forked_process_warms_up_and_the_importer_stays_light(warm_up: str | None) -> None:
    child, parent, logs = run_forked(warm_up)

    assert parent == {"warm_ups": 0, "loaded": []}
    assert child == {"warm_ups": 1, "loaded": ["PIL", "google.cloud.firestore", "google.cloud.storage", "grpc"]}
    assert [line["message"] for line in logs] == ["warmed up"]


@pytest.mark.parametrize("warm_up", ["false", "0"])
def test_warm_up_false_starts_nothing(warm_up: str) -> None:
    child, parent, logs = run_forked(warm_up)

    assert child == parent == {"warm_ups": 0, "loaded": []}
    assert logs == []
