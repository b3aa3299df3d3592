"""Import layering, read from the source with `ast` (imports inside functions included, nothing is imported).

The imaging core never talks to Google; the gateway never touches pixels; the domain modules (uploads, use case,
ports, settings, errors, logs, options, results, routes, output_names, model_files, deploy_plan, the extension
package) use only the standard library and each other, so the skip path, the settings command and deploy.sh's plan
load neither Pillow nor a Google client.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "image_pipeline"
DOMAIN = (
    "uploads",
    "usecase",
    "manifest",
    "policy",
    "builtin_route",
    "cpus",
    "ports",
    "settings",
    "errors",
    "logs",
    "options",
    "results",
    "routes",
    "output_names",
    "routes_file",
    "rules",
    "model_files",
    "deploy_plan",
    "extension",  # a package: every module in it
)
DOMAIN_MODULES = {f"image_pipeline.{name}" for name in DOMAIN}


def module_name(path: Path) -> str:
    """image_pipeline/imaging/decode.py -> image_pipeline.imaging.decode (a package's __init__ is the package)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_package(dotted: str) -> bool:
    return (ROOT / dotted.replace(".", "/") / "__init__.py").is_file()


def imported_modules(source: str, importer: str, importer_is_package: bool = False) -> Iterator[str]:
    """Every module a source imports, anywhere in it; `from package import name` counts as `package.name`."""
    package = importer if importer_is_package else importer.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if is_package(base):
                yield from (f"{base}.{alias.name}" for alias in node.names)
            else:
                yield base


def imports_of(path: Path) -> list[str]:
    return sorted(set(imported_modules(path.read_text(), module_name(path), path.name == "__init__.py")))


def top(module: str) -> str:
    return module.partition(".")[0]


def files_under(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


def ids(paths: list[Path]) -> list[str]:
    return [str(path.relative_to(ROOT)) for path in paths]


@pytest.mark.parametrize(
    ("source", "importer", "expected"),
    [
        ("import PIL.Image", "image_pipeline.x", ["PIL.Image"]),
        ("def f():\n    from google.cloud import storage\n", "image_pipeline.x", ["google.cloud"]),
        ("if True:\n    import numpy as np\n", "image_pipeline.x", ["numpy"]),
        (
            "from image_pipeline import errors, logs",
            "image_pipeline.x",
            ["image_pipeline.errors", "image_pipeline.logs"],
        ),
        ("from image_pipeline.errors import PermanentError", "image_pipeline.x", ["image_pipeline.errors"]),
        ("from . import pipeline", "image_pipeline.imaging.x", ["image_pipeline.imaging.pipeline"]),
        ("from ..options import Variant", "image_pipeline.imaging.x", ["image_pipeline.options"]),
        ("from .decode import open_image", "image_pipeline.imaging.x", ["image_pipeline.imaging.decode"]),
    ],
)
def test_imports_are_found_wherever_they_are(source, importer, expected):
    assert sorted(set(imported_modules(source, importer))) == expected


def test_relative_import_in_a_package_init():
    found = set(imported_modules("from .pipeline import process", "image_pipeline.imaging", importer_is_package=True))
    assert found == {"image_pipeline.imaging.pipeline"}


IMAGING = files_under("imaging")
GATEWAY = files_under("gateway")


def test_the_layers_exist():
    assert IMAGING and GATEWAY
    assert (PACKAGE / "settings.py").is_file() and (PACKAGE / "usecase.py").is_file()


@pytest.mark.parametrize("path", IMAGING, ids=ids(IMAGING))
def test_imaging_core_imports_no_google_client(path):
    assert [module for module in imports_of(path) if top(module) == "google"] == []


@pytest.mark.parametrize("path", GATEWAY, ids=ids(GATEWAY))
def test_gateway_imports_no_imaging_library(path):
    assert [module for module in imports_of(path) if top(module) in ("PIL", "pillow_heif", "pyvips")] == []


def domain_import_allowed(module: str) -> bool:
    in_domain = any(module == name or module.startswith(name + ".") for name in DOMAIN_MODULES)
    return in_domain or top(module) in sys.stdlib_module_names


def domain_sources(name: str) -> list[Path]:
    """A domain module's file, or every file of a domain package."""
    return files_under(name) if (PACKAGE / name).is_dir() else [PACKAGE / f"{name}.py"]


@pytest.mark.parametrize("name", DOMAIN)
def test_domain_modules_use_only_the_standard_library_and_each_other(name):
    paths = [path for path in domain_sources(name) if path.exists()]
    if not paths:
        pytest.skip(f"image_pipeline/{name} does not exist (yet)")
    disallowed = {
        str(path.relative_to(ROOT)): [module for module in imports_of(path) if not domain_import_allowed(module)]
        for path in paths
    }
    assert {path: modules for path, modules in disallowed.items() if modules} == {}


DEVTOOLS = files_under("devtools")
# What Cloud Functions runs: main.py and every module outside the local tools and the CLI commands.
DEPLOYED = sorted(
    [ROOT / "main.py"]
    + [
        path
        for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE).parts[0] not in ("devtools", "commands", "__main__.py")
    ]
)


@pytest.mark.parametrize("path", DEPLOYED, ids=ids(DEPLOYED))
def test_nothing_deployed_imports_the_local_tools(path):
    assert [module for module in imports_of(path) if module.startswith("image_pipeline.devtools")] == []


@pytest.mark.parametrize("path", DEVTOOLS, ids=ids(DEVTOOLS))
def test_local_tools_import_no_command(path):
    assert [module for module in imports_of(path) if module.startswith("image_pipeline.commands")] == []
