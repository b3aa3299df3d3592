"""The demo's output: every variant downloaded through its recorded URL, and a page showing them side by side."""

from __future__ import annotations

import html
import urllib.request
from pathlib import Path
from typing import Any


def save_variants(showcase: dict[str, Any], image: Path, out_dir: Path) -> Path:
    """Download every variant through its recorded URL and write index.html showing them side by side."""
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = []
    variants = sorted(showcase["variants"].items(), key=lambda item: item[1]["width"])
    for name, variant in variants:
        target = out_dir / Path(variant["path"]).name
        with urllib.request.urlopen(variant["url"], timeout=30) as response:
            target.write_bytes(response.read())
        caption = (
            f"{name}: {variant['width']}×{variant['height']}, {variant['bytes']:,} bytes, {variant['contentType']}"
        )
        figures.append(
            f'<figure><img src="{html.escape(target.name)}" width="{variant["width"]}" '
            f'height="{variant["height"]}" alt="{html.escape(name)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    source = showcase["source"]
    placeholder = showcase.get("placeholder") or {}
    page = out_dir / "index.html"
    page.write_text(
        "<!doctype html><meta charset=utf-8><title>image-pipeline demo</title>"
        "<style>body{font-family:sans-serif;margin:2em}main{display:flex;gap:1.5em;align-items:flex-start;overflow-x:auto}"
        "img{max-width:60vw;height:auto;border:1px solid #ccc}figure{margin:0}</style>"
        f"<h1>{html.escape(image.name)}</h1>"
        f"<p>Source: {source['format']} {source['width']}×{source['height']}, {source['bytes']:,} bytes, "
        f"generation {source['generation']}. Placeholder colour "
        f'<span style="background:{html.escape(str(placeholder.get("dominantColor", "")))}">&emsp;&emsp;</span> '
        f"{html.escape(str(placeholder.get('dominantColor')))}, "
        f"blurhash <code>{html.escape(str(placeholder.get('blurhash')))}</code></p>"
        f"<main>{''.join(figures)}</main>\n",
        encoding="utf-8",
    )
    return page
