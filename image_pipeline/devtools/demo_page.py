"""The demo's output: the original, every stored image downloaded through its recorded URL, and index.html showing
them as the local page does (the same page, drawn from the document embedded in it, its images beside it).

Each run first removes what the previous run wrote there (listed in a record file), so a failed run never shows an
older image; nothing else in the folder is touched.
"""

from __future__ import annotations

import html
import json
import shutil
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from image_pipeline.ports import nested_fields

PAGE_DIR = Path(__file__).resolve().parent / "page"
RECORD = ".demo-files"  # the names this module wrote into the folder, one a line
PAGE = "index.html"
SCRIPTS = ("hashes.js", "page.js")  # in this order: the page draws placeholders with the hashes' decoders


@dataclass(frozen=True)
class Where:
    """Where the result came from, for the card's header."""

    route: str = ""
    object: str = ""
    document: str = ""
    field: str = "manifest"


def save_variants(
    manifest: Mapping[str, Any],
    image: Path,
    out_dir: Path,
    where: Where | None = None,
    document: Mapping[str, Any] | None = None,
) -> Path:
    """Write the original, the stored images (complete) and index.html showing the result (complete or failed).

    `document` is the whole document holding `manifest` at `where.field` (the manifest alone when omitted).
    """
    where = where or Where()
    clear_previous(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    original = f"original-{image.name}"
    shutil.copyfile(image, out_dir / original)
    local = download_images(manifest, out_dir)
    fields = document if document is not None else nested_fields({where.field: manifest})
    card = {**asdict(where), "originalUrl": quote(original), "originalName": image.name}
    card["generation"] = (manifest.get("source") or {}).get("generation")
    snapshot = {"card": card, "fields": with_local_urls(fields, local)}
    page = out_dir / PAGE
    page.write_text(page_html(image.name, snapshot), encoding="utf-8")
    written = [original, *local.values(), PAGE]
    (out_dir / RECORD).write_text("".join(f"{name}\n" for name in written), encoding="utf-8")
    return page


def clear_previous(out_dir: Path) -> None:
    """Remove the files the previous run listed in the record, the record and the page."""
    record = out_dir / RECORD
    if not record.is_file():
        return  # a folder this module never wrote into (or a fresh one): nothing here is ours
    for name in [*record.read_text(encoding="utf-8").splitlines(), PAGE, RECORD]:
        # Only plain names in this folder: a record edited by hand cannot reach anything else.
        if name and name == Path(name).name:
            (out_dir / name).unlink(missing_ok=True)


def download_images(manifest: Mapping[str, Any], out_dir: Path) -> dict[str, str]:
    """Download every stored image of every variant once; the local file name for each URL."""
    local: dict[str, str] = {}
    for variant in (manifest.get("variants") or {}).values():
        for stored in (variant.get("formats") or {"primary": variant}).values():
            url = stored["url"]
            if url not in local:
                name = Path(stored["path"]).name
                with urllib.request.urlopen(url, timeout=30) as response:
                    (out_dir / name).write_bytes(response.read())
                local[url] = name
    return local


def with_local_urls(value: Any, local: Mapping[str, str]) -> Any:
    """`value` with every recorded URL (alone, in a srcset or in a mirrored field) pointing at the local file."""
    if isinstance(value, Mapping):
        return {key: with_local_urls(item, local) for key, item in value.items()}
    if isinstance(value, list):
        return [with_local_urls(item, local) for item in value]
    if isinstance(value, str):
        for url, name in local.items():
            value = value.replace(url, quote(name))
        return value
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return str(value)  # timestamps and other client types, as their text


def page_html(title: str, snapshot: Mapping[str, Any]) -> str:
    """The local page with its style and scripts inline and the snapshot embedded: one file that opens anywhere."""
    # Inside <script>, "</" would end the element: JSON allows writing "<" as \u003c.
    data = json.dumps(snapshot, ensure_ascii=False).replace("<", "\\u003c")
    scripts = "".join(f"<script>\n{(PAGE_DIR / name).read_text(encoding='utf-8')}</script>\n" for name in SCRIPTS)
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>image-pipeline demo · {html.escape(title)}</title>\n"
        f"<style>\n{(PAGE_DIR / 'page.css').read_text(encoding='utf-8')}</style>\n{scripts}"
        f'<script type="application/json" id="snapshot">{data}</script>\n</head>\n<body>\n'
        f"<h1>image-pipeline <small>demo: {html.escape(title)}</small></h1>\n"
        '<main id="cards"></main>\n</body>\n</html>\n'
    )
