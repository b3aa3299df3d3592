"""Mutation fuzzing of the imaging core under a 2 GiB address-space cap and a per-case time bound.

Deterministic in CI (fixed seed, FUZZ_CASES cases, default 2000, ~15 s on 2 cores); set FUZZ_CASES / FUZZ_SEED to run
longer or elsewhere. Inputs that once failed live in tests/regressions/ and are replayed every run.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import random
from pathlib import Path

import pytest
from PIL import Image

from tests.fuzz_engine import (
    TYPED_CODES,
    Case,
    Report,
    Result,
    generate_cases,
    mutate,
    patch_dimensions,
    run_cases,
    seed_images,
)

FUZZ_CASES = int(os.environ.get("FUZZ_CASES", "2000"))
FUZZ_SEED = int(os.environ.get("FUZZ_SEED", "20240601"))
CASE_TIMEOUT_S = float(os.environ.get("FUZZ_CASE_TIMEOUT_S", "20"))
REGRESSIONS = Path(__file__).resolve().parent / "regressions"
# Seeds whose declared size the patcher can rewrite so that Pillow reads it back.
PATCHABLE = (
    "jpeg",
    "jpeg_progressive",
    "png_rgba",
    "png_palette",
    "apng",
    "gif",
    "bmp",
    "tiff_lzw",
    "tiff_pages",
    "webp",
    "webp_lossless_alpha",
    "webp_animated",
    "avif",
)


@pytest.fixture(scope="module")
def seeds() -> dict[str, bytes]:
    """The generated seed images, one per accepted format and flavour."""
    return seed_images()


@pytest.fixture(scope="module")
def report(seeds: dict[str, bytes]) -> Report:
    """The fuzz run of this module: FUZZ_CASES mutated cases through the capped worker."""
    return run_cases(itertools.islice(generate_cases(seeds, FUZZ_SEED), FUZZ_CASES), CASE_TIMEOUT_S)


def describe(failures: list[Result]) -> str:
    """Failures as readable lines for the assertion message."""
    return "\n".join(f"{f.outcome} {f.case.label} ({len(f.case.data)} bytes)\n{f.detail[-1500:]}" for f in failures[:5])


def test_every_case_ends_in_success_or_a_typed_rejection_in_time(report: Report) -> None:
    assert report.cases == FUZZ_CASES
    assert report.failures == [], describe(report.failures)
    assert report.max_seconds < CASE_TIMEOUT_S


def test_the_fuzzer_reaches_successes_and_every_kind_of_rejection(report: Report) -> None:
    # A fuzzer that only ever produced 'corrupt' would prove little: each outcome must be exercised.
    reached = {outcome.removeprefix("rejected:") for outcome in report.outcomes}
    assert {"ok", "corrupt_image", "too_large", "unsupported_format"} <= reached, report.outcomes
    assert report.outcomes["ok"] >= FUZZ_CASES // 20


@pytest.mark.parametrize("name", PATCHABLE)
def test_the_size_patcher_makes_pillow_read_the_declared_size(seeds: dict[str, bytes], name: str) -> None:
    data = bytearray(seeds[name])

    label = patch_dimensions(data, 3001, 2002, random.Random(3))

    assert label
    assert Image.open(io.BytesIO(bytes(data))).size == (3001, 2002)


def test_mutations_are_deterministic_for_a_seed(seeds: dict[str, bytes]) -> None:
    first = [case.data for case in itertools.islice(generate_cases(seeds, 5), 30)]
    again = [case.data for case in itertools.islice(generate_cases(seeds, 5), 30)]
    assert first == again and len(set(first)) > 25


@pytest.mark.parametrize("seed_name", ["png_rgba", "jpeg"])
def test_mutate_changes_the_bytes(seeds: dict[str, bytes], seed_name: str) -> None:
    rng = random.Random(11)
    changed = sum(mutate(seeds[seed_name], rng, list(seeds.values()))[1] != seeds[seed_name] for _ in range(40))
    assert changed >= 36


def regression_files() -> list[Path]:
    """Every saved input under tests/regressions/ (each with a .json note of its expected outcome)."""
    return sorted(path for path in REGRESSIONS.glob("*.bin"))


@pytest.fixture(scope="module")
def replayed() -> dict[str, Result]:
    """Every regression input run once through the capped worker."""
    cases = [Case(path.name, path.read_bytes()) for path in regression_files()]
    results: dict[str, Result] = {}
    run_cases(cases, CASE_TIMEOUT_S, on_result=lambda result: results.setdefault(result.case.label, result))
    return results


@pytest.mark.parametrize("path", regression_files(), ids=lambda path: path.stem)
def test_saved_regressions_end_as_recorded(replayed: dict[str, Result], path: Path) -> None:
    note = json.loads(path.with_suffix(".json").read_text())
    result = replayed[path.name]
    assert result.acceptable, f"{result.outcome}: {result.detail[-1500:]}"
    assert result.outcome in note["expect"], (result.outcome, note)
    assert set(note["expect"]) <= {"ok"} | {f"rejected:{code}" for code in TYPED_CODES}


# deploy.sh: MEMORY=1Gi and CONCURRENCY=1, sized as 120 MiB + 500 MiB per image (MAX_DECODE_MIB=512).
PER_IMAGE_BUDGET_MIB = 620


def test_a_tiny_webp_declaring_a_huge_canvas_is_refused_within_one_images_budget(replayed: dict[str, Result]) -> None:
    result = replayed["webp-vp8x-canvas-10000x10000.bin"]
    assert result.outcome == "rejected:too_large"
    assert result.rss_kib / 1024 < PER_IMAGE_BUDGET_MIB
