"""A mutation fuzzer for the imaging core: seed images, byte-level and header-aware mutations, and a capped worker
process.

Each case runs through `make_variants` (production ImagingOptions) in a separate interpreter under an address-space
limit; the parent bounds each case's wall time and restarts the worker after a crash or a hang. Used by
tests/test_fuzz_core.py (fixed seed, bounded) and benchmarks/fuzz_core.py (longer runs, other seed folders).
"""

from __future__ import annotations

import io
import json
import os
import random
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ADDRESS_SPACE_LIMIT = 2 * 1024**3
TYPED_CODES = frozenset({"unsupported_format", "corrupt_image", "too_large", "empty"})
HUGE_VALUES = (0, 1, 2, 255, 256, 9_999, 10_000, 16_383, 65_535, 65_536, 2**24 - 1, 2**31 - 1, 2**32 - 1)
PNG_CHUNK_TYPES = (b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"iCCP", b"zTXt", b"iTXt", b"eXIf", b"acTL", b"fcTL",
                   b"fdAT", b"sBIT", b"gAMA", b"pHYs", b"caNv", b"xxxx")  # fmt: skip


@dataclass(frozen=True)
class Case:
    """One input to the core and how it was made."""

    label: str
    data: bytes


@dataclass(frozen=True)
class Result:
    """How one case ended: `ok`, `rejected:<code>`, `escaped:<type>`, `crash:<signal>` or `hang`."""

    case: Case
    outcome: str
    seconds: float
    rss_kib: int
    detail: str = ""

    @property
    def acceptable(self) -> bool:
        """A success or one of the core's typed rejections."""
        return self.outcome == "ok" or self.outcome.removeprefix("rejected:") in TYPED_CODES


@dataclass
class Report:
    """Counts over a fuzz run."""

    cases: int = 0
    outcomes: Counter = field(default_factory=Counter)
    max_seconds: float = 0.0
    slowest: str = ""
    max_rss_kib: int = 0
    failures: list[Result] = field(default_factory=list)
    wall_seconds: float = 0.0

    def add(self, result: Result) -> None:
        """Count one result; keep it if it is a failure."""
        self.cases += 1
        self.outcomes[result.outcome] += 1
        if result.seconds > self.max_seconds:
            self.max_seconds, self.slowest = result.seconds, result.case.label
        self.max_rss_kib = max(self.max_rss_kib, result.rss_kib)
        if not result.acceptable:
            self.failures.append(result)

    def as_record(self) -> dict[str, object]:
        """The report as a JSON-able dict (failures by label and outcome only)."""
        return {
            "cases": self.cases,
            "wall_s": round(self.wall_seconds, 1),
            "cases_per_s": round(self.cases / self.wall_seconds, 1) if self.wall_seconds else None,
            "outcomes": dict(sorted(self.outcomes.items())),
            "max_case_s": round(self.max_seconds, 3),
            "slowest": self.slowest,
            "max_rss_mib": round(self.max_rss_kib / 1024, 1),
            "failures": [
                {"label": f.case.label, "outcome": f.outcome, "detail": f.detail[-300:]} for f in self.failures
            ],
        }


# ---------------------------------------------------------------------------
# Seeds
# ---------------------------------------------------------------------------


def seed_images() -> dict[str, bytes]:
    """Small images in every accepted format, made in memory (deterministic for a given Pillow)."""
    import numpy as np
    import pillow_heif
    from PIL import Image

    rng = np.random.default_rng(7)
    rgb = Image.fromarray(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8), "RGB")
    rgba = rgb.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(rgb.size))
    frames = [rgb.rotate(angle) for angle in (0, 90, 180)]

    def save(image: Image.Image, fmt: str, **params: object) -> bytes:
        out = io.BytesIO()
        image.save(out, fmt, **params)
        return out.getvalue()

    def heif(image: Image.Image) -> bytes:
        out = io.BytesIO()
        pillow_heif.from_pillow(image).save(out, format="HEIF", quality=60)
        return out.getvalue()

    exif = Image.Exif()
    exif[0x0112] = 6
    return {
        "jpeg": save(rgb, "JPEG", quality=80, exif=exif.tobytes()),
        "jpeg_progressive": save(rgb, "JPEG", quality=70, progressive=True),
        "png_rgba": save(rgba, "PNG"),
        "png_palette": save(rgb.convert("P"), "PNG", transparency=0),
        "png_16bit": save(Image.new("I;16", (20, 12), 40000), "PNG"),
        "apng": save(frames[0], "PNG", save_all=True, append_images=frames[1:], duration=50),
        "gif": save(frames[0].convert("P"), "GIF", save_all=True, append_images=[f.convert("P") for f in frames[1:]]),
        "webp": save(rgb, "WEBP", quality=70),
        "webp_lossless_alpha": save(rgba, "WEBP", lossless=True),
        "webp_animated": save(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=50),
        "tiff_lzw": save(rgb, "TIFF", compression="tiff_lzw"),
        "tiff_pages": save(frames[0], "TIFF", save_all=True, append_images=frames[1:]),
        "bmp": save(rgb, "BMP"),
        "heif": heif(rgb),
        "avif": save(rgb, "AVIF", quality=60),
    }


# ---------------------------------------------------------------------------
# Mutations
# ---------------------------------------------------------------------------

Mutator = Callable[[bytearray, random.Random, list[bytes]], str]


def _position(data: bytearray, rng: random.Random) -> int:
    """A position biased towards the headers: half the time within the first 256 bytes."""
    limit = min(len(data), 256) if rng.random() < 0.5 else len(data)
    return rng.randrange(max(limit, 1))


def flip_bytes(data: bytearray, rng: random.Random, _: list[bytes]) -> str:
    """Overwrite 1-8 bytes with random values, or flip single bits."""
    count = rng.randint(1, 8)
    for _ in range(count):
        index = _position(data, rng)
        if index < len(data):
            data[index] = rng.randrange(256) if rng.random() < 0.5 else data[index] ^ (1 << rng.randrange(8))
    return f"flip{count}"


def truncate(data: bytearray, rng: random.Random, _: list[bytes]) -> str:
    """Cut the file short (anywhere, header included)."""
    keep = rng.randrange(len(data)) if rng.random() < 0.7 else rng.randrange(min(len(data), 64))
    del data[keep:]
    return f"truncate@{keep}"


def splice_header(data: bytearray, rng: random.Random, others: list[bytes]) -> str:
    """Another seed's head in front of this file's tail (a valid magic over foreign data)."""
    other = rng.choice(others)
    head = rng.randint(4, min(len(other), 128))
    tail = rng.randrange(len(data)) if data else 0
    data[:] = other[:head] + data[tail:]
    return f"splice{head}+{tail}"


def insert_chunk(data: bytearray, rng: random.Random, _: list[bytes]) -> str:
    """Insert random bytes, a CRC-correct PNG chunk or a JPEG marker segment at a random place."""
    body = rng.randbytes(rng.choice((0, 1, 4, 13, 64, 1000)))
    kind = rng.random()
    if data.startswith(b"\x89PNG") and kind < 0.5:
        chunk_type = rng.choice(PNG_CHUNK_TYPES)
        body = struct.pack(">I", len(body)) + chunk_type + body + struct.pack(">I", zlib.crc32(chunk_type + body))
        label = f"png-chunk-{chunk_type.decode()}"
        at = _png_chunk_boundary(data, rng)
    elif data.startswith(b"\xff\xd8") and kind < 0.5:
        marker = rng.choice((0xC0, 0xC2, 0xC4, 0xDB, 0xDD, 0xDA, 0xE1, 0xE2, 0xFE, 0xD9))
        body = bytes((0xFF, marker)) + struct.pack(">H", min(len(body) + 2, 65535)) + body
        label, at = f"jpeg-marker-{marker:02X}", 2
    else:
        label, at = f"insert{len(body)}", rng.randrange(len(data) + 1)
    data[at:at] = body
    return label


def _png_chunk_boundary(data: bytearray, rng: random.Random) -> int:
    """The offset of a random chunk boundary of a PNG (after the signature)."""
    boundaries, offset = [8], 8
    while offset + 8 <= len(data):
        offset += 12 + struct.unpack(">I", data[offset : offset + 4])[0]
        if offset > len(data):
            break
        boundaries.append(offset)
    return rng.choice(boundaries)


def duplicate_region(data: bytearray, rng: random.Random, _: list[bytes]) -> str:
    """Repeat a slice of the file in place (repeated chunks, frames or markers)."""
    start = rng.randrange(len(data))
    end = min(len(data), start + rng.randint(1, 512))
    data[start:start] = data[start:end] * rng.randint(1, 4)
    return "duplicate"


def huge_dimensions(data: bytearray, rng: random.Random, _: list[bytes]) -> str:
    """Patch the declared width/height in the format's header (IHDR, SOF, GIF screen, BMP, TIFF, VP8X, ispe)."""
    width, height = rng.choice(HUGE_VALUES), rng.choice(HUGE_VALUES)
    label = patch_dimensions(data, width, height, rng)
    return f"{label}={width}x{height}" if label else flip_bytes(data, rng, [])


def patch_dimensions(data: bytearray, width: int, height: int, rng: random.Random) -> str:
    """Write `width` x `height` into the header of whichever format `data` is; the patched field's name, or ''."""
    for patch in (_png_dims, _jpeg_dims, _gif_dims, _bmp_dims, _tiff_dims, _webp_dims, _isobmff_dims):
        label = patch(data, width, height, rng)
        if label:
            return label
    return ""


def _png_dims(data: bytearray, width: int, height: int, rng: random.Random) -> str:
    if not data.startswith(b"\x89PNG") or len(data) < 33:
        return ""
    struct.pack_into(">II", data, 16, width, height)
    if rng.random() < 0.8:  # mostly with a correct CRC, so the decoder reads past the chunk check
        struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    return "png-ihdr"


def _jpeg_dims(data: bytearray, width: int, height: int, rng: random.Random) -> str:
    if not data.startswith(b"\xff\xd8"):
        return ""
    at = 2  # walk the marker segments: the bytes FF C0 can also occur inside tables and EXIF
    while at + 9 <= len(data) and data[at] == 0xFF:
        marker, length = data[at + 1], struct.unpack_from(">H", data, at + 2)[0]
        if marker in (0xC0, 0xC1, 0xC2):
            struct.pack_into(">HH", data, at + 5, height & 0xFFFF, width & 0xFFFF)
            return "jpeg-sof"
        at += 2 + length
    return ""


def _gif_dims(data: bytearray, width: int, height: int, rng: random.Random) -> str:
    if not data.startswith(b"GIF8") or len(data) < 13:
        return ""
    struct.pack_into("<HH", data, 6, width & 0xFFFF, height & 0xFFFF)
    descriptor = data.find(b"\x2c", 13)
    if descriptor > 0 and descriptor + 9 <= len(data) and rng.random() < 0.7:
        struct.pack_into("<HH", data, descriptor + 5, width & 0xFFFF, height & 0xFFFF)
    return "gif-screen"


def _bmp_dims(data: bytearray, width: int, height: int, rng: random.Random) -> str:
    if not data.startswith(b"BM") or len(data) < 26:
        return ""
    sign = -1 if rng.random() < 0.3 else 1
    struct.pack_into("<ii", data, 18, _int32(width), sign * _int32(height))
    return "bmp-info"


def _int32(value: int) -> int:
    return min(value, 2**31 - 1)


def _tiff_dims(data: bytearray, width: int, height: int, rng: random.Random) -> str:
    if not data.startswith((b"II*\x00", b"MM\x00*")) or len(data) < 8:
        return ""
    order = "<" if data.startswith(b"II") else ">"
    ifd = struct.unpack_from(order + "I", data, 4)[0]
    if ifd + 2 > len(data):
        return ""
    count = struct.unpack_from(order + "H", data, ifd)[0]
    patched = False
    for index in range(count):
        entry = ifd + 2 + 12 * index
        if entry + 12 > len(data):
            break
        tag, kind = struct.unpack_from(order + "HH", data, entry)
        value = {256: width, 257: height, 278: height}.get(tag)
        if value is not None:
            # An IFD entry is tag, type, count, then the value (left-justified in 4 bytes).
            if kind == 3 and value <= 0xFFFF:
                struct.pack_into(order + "HIHH", data, entry + 2, 3, 1, value, 0)
            else:
                struct.pack_into(order + "HII", data, entry + 2, 4, 1, value & 0xFFFFFFFF)
            patched = True
    return "tiff-ifd" if patched else ""


def _webp_dims(data: bytearray, width: int, height: int, rng: random.Random) -> str:
    if not (data.startswith(b"RIFF") and data[8:12] == b"WEBP") or len(data) < 30:
        return ""
    if data[12:16] == b"VP8X":
        data[24:30] = ((width - 1) & 0xFFFFFF).to_bytes(3, "little") + ((height - 1) & 0xFFFFFF).to_bytes(3, "little")
        return "webp-vp8x"
    if data[12:16] == b"VP8 ":
        struct.pack_into("<HH", data, 26, width & 0x3FFF, height & 0x3FFF)
        return "webp-vp8"
    if data[12:16] == b"VP8L" and len(data) >= 25:
        packed = ((width - 1) & 0x3FFF) | (((height - 1) & 0x3FFF) << 14) | (data[24] >> 4 << 28)
        struct.pack_into("<I", data, 21, packed & 0xFFFFFFFF)
        return "webp-vp8l"
    return ""


def _isobmff_dims(data: bytearray, width: int, height: int, rng: random.Random) -> str:
    at = data.find(b"ispe")
    if data[4:8] != b"ftyp" or at < 0 or at + 16 > len(data):
        return ""
    struct.pack_into(">II", data, at + 8, width, height)
    return "heif-ispe"


MUTATORS: tuple[Mutator, ...] = (flip_bytes, truncate, splice_header, insert_chunk, duplicate_region, huge_dimensions)


def mutate(seed: bytes, rng: random.Random, others: list[bytes]) -> tuple[str, bytes]:
    """Apply one to three mutations to a copy of `seed`."""
    data = bytearray(seed)
    labels = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        if not data:
            break
        labels.append(rng.choice(MUTATORS)(data, rng, others))
    return "+".join(labels), bytes(data)


def generate_cases(seeds: dict[str, bytes], rng_seed: int) -> Iterator[Case]:
    """An endless deterministic stream of mutated cases, cycling over the seeds."""
    rng = random.Random(rng_seed)
    names = sorted(seeds)
    others = [seeds[name] for name in names]
    for index in range(sys.maxsize):
        name = names[index % len(names)]
        label, data = mutate(seeds[name], rng, others)
        yield Case(f"{rng_seed}:{index}:{name}:{label}", data)


# ---------------------------------------------------------------------------
# The capped worker and its supervisor
# ---------------------------------------------------------------------------


def worker_main() -> None:
    """Read length-prefixed cases on stdin, run each through the core, write one JSON line per case."""
    import resource
    import traceback

    from image_pipeline.errors import ImageRejected
    from image_pipeline.imaging import make_variants
    from image_pipeline.options import ImagingOptions

    options = ImagingOptions()
    make_variants(seed_images()["png_rgba"], options)  # warm up imports, codecs and the encode pool
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))
    stdin, stdout = sys.stdin.buffer, sys.stdout
    while header := stdin.read(4):
        data = stdin.read(struct.unpack(">I", header)[0])
        started = time.perf_counter()
        detail = ""
        try:
            result = make_variants(data, options)
            outcome = "ok" if result.variants else "escaped:NoVariants"
        except ImageRejected as rejection:
            outcome = f"rejected:{rejection.code.value}"
        except BaseException as error:
            outcome, detail = f"escaped:{type(error).__name__}", traceback.format_exc()
        seconds = time.perf_counter() - started
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        stdout.write(json.dumps({"outcome": outcome, "seconds": seconds, "rss_kib": rss, "detail": detail}) + "\n")
        stdout.flush()


class Supervisor:
    """Runs cases in a capped worker process, one at a time, with a wall-time bound per case."""

    def __init__(self, case_timeout_s: float) -> None:
        self._timeout_s = case_timeout_s
        self._process: subprocess.Popen | None = None
        # The worker's stderr goes to a file, not a pipe: libtiff can print thousands of warning lines for one case,
        # and an unread pipe would fill up and block the worker (which then looks like a hang). One file, emptied
        # for each new worker and closed on exit.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *_: object) -> None:
        self._stop()
        self._stderr.close()

    def run(self, case: Case) -> Result:
        """Run one case; a dead or silent worker is recorded as a crash or a hang and replaced."""
        process = self._worker()
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(struct.pack(">I", len(case.data)) + case.data)
            process.stdin.flush()
        except BrokenPipeError:
            return self._died(case, 0.0)
        started = time.perf_counter()
        ready, _, _ = select.select([process.stdout], [], [], self._timeout_s)
        if not ready:
            self._stop()
            return Result(case, "hang", time.perf_counter() - started, 0, f"no answer within {self._timeout_s} s")
        line = process.stdout.readline()
        if not line:
            return self._died(case, time.perf_counter() - started)
        answer = json.loads(line)
        return Result(case, answer["outcome"], answer["seconds"], answer["rss_kib"], answer["detail"])

    def _died(self, case: Case, seconds: float) -> Result:
        assert self._process is not None
        code = self._process.wait(timeout=10)
        self._stderr.seek(0)
        stderr = self._stderr.read()[-4000:].decode(errors="replace")
        self._process = None
        name = signal.Signals(-code).name if code < 0 else f"exit{code}"
        return Result(case, f"crash:{name}", seconds, 0, stderr[-2000:])

    def _worker(self) -> subprocess.Popen:
        if self._process is None or self._process.poll() is not None:
            env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONFAULTHANDLER": "1"}
            self._stderr.seek(0)
            self._stderr.truncate()
            self._process = subprocess.Popen(
                [sys.executable, "-m", "tests.fuzz_engine", "worker"], cwd=REPO, env=env,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            )  # fmt: skip
        return self._process

    def _stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=10)
        self._process = None


def run_cases(
    cases: Iterable[Case],
    case_timeout_s: float,
    deadline_s: float | None = None,
    on_result: Callable[[Result], None] | None = None,
) -> Report:
    """Run cases until they are exhausted or `deadline_s` of wall time has passed; count every outcome."""
    report = Report()
    started = time.monotonic()
    with Supervisor(case_timeout_s) as supervisor:
        for case in cases:
            if deadline_s is not None and time.monotonic() - started > deadline_s:
                break
            result = supervisor.run(case)
            report.add(result)
            if on_result is not None:
                on_result(result)
    report.wall_seconds = time.monotonic() - started
    return report


if __name__ == "__main__" and sys.argv[1:] == ["worker"]:
    worker_main()
