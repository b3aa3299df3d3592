"""A longer fuzz run of the imaging core: `python benchmarks/fuzz_core.py --minutes M [--seeds DIR] [--seed N]`.

Mutates the generated seed images (and every file under --seeds DIR, exploratory) and runs each case through
`make_variants` in a worker capped at 2 GiB of address space, with a wall-time bound per case. Prints progress,
then one JSON line: cases, outcomes by code, max time per case, max RSS, failures. Exit 1 if any case crashed,
hung or raised anything but a typed rejection; failing inputs are written to --failures DIR.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fuzz_engine import Case, Result, generate_cases, run_cases, seed_images

MAX_SEED_BYTES = 4 * 1024 * 1024


def folder_seeds(folder: Path) -> dict[str, bytes]:
    """Every regular file under `folder` up to 4 MiB, by relative path."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and 0 < path.stat().st_size <= MAX_SEED_BYTES and path.suffix != ".md"
    }


def unmutated(seeds: dict[str, bytes]) -> list[Case]:
    """Each seed as it is, first: the corpus files themselves must also end cleanly."""
    return [Case(f"as-is:{name}", data) for name, data in seeds.items()]


def save_failure(result: Result, folder: Path) -> None:
    """Write a failing input under its hash, with a note of how it failed."""
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(result.case.data).hexdigest()[:16]
    (folder / f"{digest}.bin").write_bytes(result.case.data)
    (folder / f"{digest}.json").write_text(json.dumps({"label": result.case.label, "outcome": result.outcome,
                                                       "detail": result.detail}, indent=2))  # fmt: skip


def main() -> int:
    """Run for the given minutes and report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seeds", type=Path, help="a folder of extra seed files (exploratory)")
    parser.add_argument("--only-folder", action="store_true", help="use only the --seeds files, not the generated ones")
    parser.add_argument("--case-timeout", type=float, default=20.0, help="seconds before a case counts as a hang")
    parser.add_argument("--failures", type=Path, default=Path("fuzz-failures"))
    args = parser.parse_args()

    seeds = {} if args.only_folder else seed_images()
    extra = folder_seeds(args.seeds) if args.seeds else {}
    seeds.update({f"file:{name}": data for name, data in extra.items()})
    if not seeds:
        parser.error("no seeds")
    started = time.monotonic()

    def progress(result: Result) -> None:
        if not result.acceptable:
            save_failure(result, args.failures)
            print(f"FAIL {result.outcome} {result.case.label}", flush=True)

    cases = (case for group in (unmutated(extra), generate_cases(seeds, args.seed)) for case in group)
    report = run_cases(cases, args.case_timeout, deadline_s=args.minutes * 60, on_result=progress)
    record = {"seeds": len(seeds), "minutes": round((time.monotonic() - started) / 60, 2), **report.as_record()}
    print(json.dumps(record))
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
