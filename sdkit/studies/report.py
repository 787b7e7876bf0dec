"""A study's report: one self-contained HTML page (grids, every image with its parameters, the
environment) that opens from disk or travels as a single file. :func:`render_report` is pure (data in,
text out); :func:`write_report` reads a run folder and writes ``report.html`` into it."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sdkit.engine.runfolder import RunFolder
from sdkit.errors import ValidationError
from sdkit.metadata.pngfile import data_uri
from sdkit.studies.folder import ENVIRONMENT, FAILURES, MANIFEST, REPORT, SPEC, inside, read_json, strict_manifest

__all__ = ["render_report", "write_report"]

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:12px} td,th{border:1px solid #ddd;padding:3px 6px;vertical-align:top}
th{background:#f5f5f5;text-align:left} img.thumb{width:64px;height:64px;object-fit:contain;image-rendering:pixelated}
img.grid{max-width:100%;image-rendering:pixelated} .muted{color:#777} code{font-size:12px}
.fail{color:#b00}
"""


def _uri(png: bytes) -> str:
    return data_uri(png)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def render_report(
    *,
    spec: Mapping[str, Any],
    environment: Mapping[str, Any],
    entries: Sequence[Mapping[str, Any]],
    grids: Sequence[tuple[str, bytes]],
    images: Mapping[int, bytes],
    failures: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The HTML page. ``entries`` are manifest lines (``cell``, ``file``, ``params``, ``seed``,
    ``labels``, ``png_sha256`` …); ``images`` maps a cell index to its PNG bytes (thumbnails);
    ``grids`` are ``(title, png)`` pairs; ``failures`` are cells that produced no image."""
    name = spec.get("name", "study")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{_e(name)} · sdkit study</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(name)}</h1>",
        f"<div class='muted'>{_e(spec.get('description', ''))}</div>",
        f"<p>{len(entries)} image(s){f', {len(failures)} failed' if failures else ''} · backend "
        f"<code>{_e(spec.get('backend', 'local'))}</code> · model <code>{_e(spec.get('model'))}</code></p>",
        "<h2>Spec</h2>",
        f"<pre>{_e(json.dumps(spec, indent=2, ensure_ascii=False))}</pre>",
    ]
    if grids:
        parts.append("<h2>Grids</h2>")
        for title, png in grids:
            parts.append(
                f"<figure><img class='grid' src='{_uri(png)}' alt='{_e(title)}'>"
                f"<figcaption class='muted'>{_e(title)}</figcaption></figure>"
            )
    parts.append(
        "<h2>Images</h2><table><tr><th>#</th><th>image</th><th>where</th><th>seed</th>"
        "<th>parameters</th><th>sha256 (PNG)</th></tr>"
    )
    for entry in entries:
        cell = entry.get("cell")
        png = images.get(cell) if isinstance(cell, int) else None
        thumb = f"<img class='thumb' src='{_uri(png)}'>" if png else "<span class='fail'>missing</span>"
        labels = entry.get("labels") or {}
        where = "<br>".join(f"{_e(k)}: {_e(v)}" for k, v in labels.items())
        params = entry.get("params") or {}
        shown = ", ".join(f"{_e(k)}={_e(v)}" for k, v in params.items() if k not in ("seed", "num_images"))
        parts.append(
            f"<tr><td>{_e(cell)}</td><td>{thumb}<br><code>{_e(entry.get('file'))}</code></td><td>{where}</td>"
            f"<td>{_e(entry.get('seed'))}</td><td>{shown}</td><td><code>{_e(entry.get('png_sha256', '')[:16])}"
            "</code></td></tr>"
        )
    parts.append("</table>")
    if failures:
        parts.append("<h2>Failed cells</h2><table><tr><th>#</th><th>error</th></tr>")
        for f in failures:
            parts.append(f"<tr><td>{_e(f.get('cell'))}</td><td class='fail'>{_e(f.get('error'))}</td></tr>")
        parts.append("</table>")
    parts.append("<h2>Environment</h2><table>")
    for key, value in environment.items():
        shown = json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else value
        parts.append(f"<tr><th>{_e(key)}</th><td><code>{_e(shown)}</code></td></tr>")
    parts.append("</table><p class='muted'>Made by sdkit. Re-run: <code>sdkit study verify FOLDER</code></p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(folder: str | Path) -> Path:
    """Write ``report.html`` into a run folder: one self-contained page."""
    import yaml

    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        raise ValidationError("folder", str(folder), "is not a study run folder (no manifest.jsonl)")
    spec: Any = {}
    if (folder / SPEC).exists():
        try:
            spec = yaml.safe_load((folder / SPEC).read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ValidationError(str(folder / SPEC), "", f"is not valid YAML: {exc}") from None
    if not isinstance(spec, dict):
        raise ValidationError(str(folder / SPEC), spec, "is not a mapping")
    environment = read_json(folder, ENVIRONMENT, {})
    failures = read_json(folder, FAILURES, [])
    if not isinstance(environment, dict):
        raise ValidationError(str(folder / ENVIRONMENT), environment, "is not a JSON object")
    if not isinstance(failures, list) or not all(isinstance(f, dict) for f in failures):
        raise ValidationError(str(folder / FAILURES), failures, "is not a list of failed cells")
    entries = strict_manifest(folder)
    grids = [(p.name, inside(folder, p.name, p.name).read_bytes()) for p in sorted(folder.glob("grid*.png"))]
    images = {e["cell"]: (folder / e["file"]).read_bytes() for e in entries if (folder / e["file"]).is_file()}
    page = render_report(
        spec=spec, environment=environment, entries=entries, grids=grids, images=images, failures=failures
    )
    return RunFolder(folder).write(REPORT, page.encode())
