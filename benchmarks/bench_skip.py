"""How cheap the skip path is: import time of `main` (cold, fresh interpreters) and time to skip one event.

Run from the repository root: `python benchmarks/bench_skip.py`. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import io
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COLD_RUNS = 7
SKIPS = 20_000
HEAVY = ("PIL", "google.cloud.storage", "google.cloud.firestore", "grpc")

IMPORT_ONE = """
import time
started = time.perf_counter()
import {module}
print(time.perf_counter() - started)
"""


def cold_import_ms(module: str) -> float:
    """Median wall time of `import module` in fresh interpreters, in milliseconds."""
    samples = []
    for _ in range(COLD_RUNS):
        output = subprocess.run(
            [sys.executable, "-c", IMPORT_ONE.format(module=module)],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        samples.append(float(output) * 1000)
    return statistics.median(samples)


def skip_us() -> tuple[float, list[str]]:
    """Mean time to handle a skipped event (our own output) in microseconds, and heavy modules loaded meanwhile."""
    sys.path.insert(0, str(REPO))
    import main
    from image_pipeline import logs

    logs.configure(stream=io.StringIO())
    event = {"bucket": "b", "name": "showcase-images/u/c/p-1-large.webp", "generation": "1", "size": "10"}
    started = time.perf_counter()
    for index in range(SKIPS):
        main.FUNCTION.handle(str(index), "2030-01-01T00:00:00Z", event)
    elapsed = time.perf_counter() - started
    loaded = sorted(
        {prefix for prefix in HEAVY for name in sys.modules if name == prefix or name.startswith(prefix + ".")}
    )
    return elapsed / SKIPS * 1e6, loaded


def main() -> None:
    """Print the measurements as one JSON object."""
    framework_ms = cold_import_ms("functions_framework")
    main_ms = cold_import_ms("main")
    per_skip_us, loaded = skip_us()
    print(
        json.dumps(
            {
                "import_functions_framework_ms": round(framework_ms, 1),
                "import_main_ms": round(main_ms, 1),
                "import_main_own_ms": round(main_ms - framework_ms, 1),
                "skip_event_us": round(per_skip_us, 1),
                "heavy_modules_loaded_by_skips": loaded,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
