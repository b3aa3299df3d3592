"""The settings' one list of variables: derived from what `from_env` reads, and every copy made from it.

`Settings.variables()` is read off `from_env` itself; `python -m image_pipeline settings` prints it (names for
deploy.sh, the README's table) and checks an environment, with nothing but the standard library.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from image_pipeline.__main__ import main
from image_pipeline.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
# Read by from_env but defined by other tools (the emulator's address), so not one of our settings.
FOREIGN = {"STORAGE_EMULATOR_HOST"}


class LookupRecorder(Mapping[str, str]):
    """An empty environment that remembers every key looked up in it."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def __getitem__(self, key: str) -> str:
        self.keys.append(key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def names() -> list[str]:
    return [variable.name for variable in Settings.variables()]


def test_variables_are_exactly_what_from_env_looks_up():
    environ = LookupRecorder()
    Settings.from_env(environ)
    assert [key for key in environ.keys if key not in FOREIGN] == names()


def test_each_variable_is_listed_once_and_described():
    assert len(names()) == len(set(names()))
    for variable in Settings.variables():
        assert variable.name.isupper() and variable.accepts and variable.help, variable
        assert "\n" not in variable.accepts + variable.help, variable


@pytest.mark.parametrize("variable", Settings.variables(), ids=lambda variable: variable.name)
def test_shown_default_is_the_default(variable):
    assert Settings.from_env({variable.name: variable.default}) == Settings.from_env({})


def run_settings(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["settings", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_names_one_per_line(capsys):
    code, out, _ = run_settings(capsys, "--names")
    assert code == 0
    assert out.splitlines() == names()


def test_markdown_table_has_a_row_per_variable(capsys):
    code, out, _ = run_settings(capsys, "--markdown")
    assert code == 0
    header, rule, *rows = out.splitlines()
    assert header == "| variable | default | accepts | meaning |"
    assert rule == "|---|---|---|---|"
    assert [row.split(" | ")[0] for row in rows] == [f"| `{name}`" for name in names()]


def readme_settings_table() -> str:
    """The first table after the README's '## Settings' heading."""
    lines = README.read_text().split("## Settings\n", 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return "\n".join(lines[start:end]) + "\n"


def test_readme_table_is_the_generated_one(capsys):
    _, out, _ = run_settings(capsys, "--markdown")
    assert readme_settings_table() == out, "regenerate it: python -m image_pipeline settings --markdown"


@pytest.mark.parametrize(
    ("environ", "code", "message"),
    [({}, 0, ""), ({"QUALITY": "75", "LOG_LEVEL": "debug"}, 0, ""), ({"MAX_DECODE_MIB": "8"}, 2, "MAX_DECODE_MIB")],
)
def test_check_validates_the_environment(capsys, monkeypatch, environ, code, message):
    for name in names():
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    result, out, err = run_settings(capsys, "--check")
    assert (result, out) == (code, "")
    assert message in err and ("error:" in err) == bool(message)


def test_a_mode_is_required(capsys):
    with pytest.raises(SystemExit) as info:
        main(["settings"])
    assert info.value.code == 2
    assert "--names" in capsys.readouterr().err


# Runs the command with every import outside the standard library and this package refused, as under a bare
# python3 (deploy.sh runs it on the deployer's machine, without the project's dependencies).
STDLIB_ONLY = """
import sys

class RefuseNonStdlib:
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top not in sys.stdlib_module_names and top != "image_pipeline":
            raise ImportError(f"not in the standard library: {name}")
        return None

sys.meta_path.insert(0, RefuseNonStdlib())
sys.argv = ["image_pipeline", *sys.argv[1:]]
import runpy
runpy.run_module("image_pipeline", run_name="__main__", alter_sys=True)
"""


def run_with_stdlib_only(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m image_pipeline ARGS` from the repository, any import outside the standard library refused."""
    return subprocess.run(
        [sys.executable, "-c", STDLIB_ONLY, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
    )


@pytest.mark.parametrize("mode", ["--names", "--markdown", "--check"])
def test_settings_command_needs_only_the_standard_library(mode):
    result = run_with_stdlib_only("settings", mode)
    assert result.returncode == 0, result.stderr
    if mode == "--names":
        assert result.stdout.splitlines() == names()
