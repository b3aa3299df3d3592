"""Clear errors when a local service cannot be found, before anything is started."""

from __future__ import annotations

import shutil

import pytest

from image_pipeline.devtools import emulators


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("gcloud", "gcloud not found: install the Google Cloud CLI with the cloud-firestore-emulator component"),
        ("java", "java not found: the Firestore emulator needs a Java runtime"),
    ],
)
def test_a_missing_program_is_named_with_what_to_install(monkeypatch, missing: str, message: str) -> None:
    real_which = shutil.which
    monkeypatch.setattr(
        emulators.shutil, "which", lambda name: None if name == missing else real_which(name) or "/bin/true"
    )

    with pytest.raises(emulators.EmulatorError, match=message):
        emulators.firestore_emulator_command()


def test_a_cli_without_the_emulator_component_says_how_to_add_it(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(emulators.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setenv("CLOUDSDK_ROOT_DIR", str(tmp_path))

    with pytest.raises(emulators.EmulatorError, match="gcloud components install cloud-firestore-emulator"):
        emulators.firestore_emulator_command()


def test_a_service_that_exits_while_starting_reports_its_output() -> None:
    service = emulators.spawn("broken", ["sh", "-c", "echo cannot bind port; exit 3"], emulators.free_port())

    with pytest.raises(emulators.EmulatorError, match=r"(?s)broken exited with code 3.*cannot bind port"):
        emulators.wait_until_ready(service, lambda: False, timeout_s=10)
