"""HTML pieces of the audit report: escaped text, numbers, inline images, tables."""

from __future__ import annotations

import base64
import html
import math
from datetime import datetime
from pathlib import Path
from typing import Any

from onepair.report import plots

SIGNATURES = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}
DASH = "\u2014"


def text(value: Any) -> str:
    return html.escape(str(value), quote=True)


def num(value: Any, digits: int = 1, unit: str = "") -> str:
    """A number for a table cell: fixed digits, "—" when missing, "∞" when infinite."""
    if value is None:
        return DASH
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return text(value)
    if math.isinf(value):
        return ("\u2212" if value < 0 else "") + "\u221e" + unit
    if math.isnan(value):
        return DASH
    return f"{value:,.{digits}f}".replace("-", "\u2212") + unit


def duration(seconds: Any) -> str:
    value = plots.number(seconds)
    if value is None:
        return DASH
    if value < 120:
        return f"{value:.1f} s"
    minutes, rest = divmod(round(value), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {rest} s"


def date(created: Any) -> str:
    if not created:
        return "undated"
    try:
        moment = datetime.fromisoformat(str(created).replace("Z", "+00:00"))
    except ValueError:
        return text(created)
    zone = " UTC" if moment.utcoffset() is not None and not moment.utcoffset() else ""
    return moment.strftime("%Y-%m-%d %H:%M") + zone


def note(text: str) -> str:
    return f'<p class="note">{text}</p>'


def data_uri(payload: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def image(folder: Path, relative: Any, alt: str, cls: str = "") -> str:
    """An inlined image file, or a note naming the file when it is missing or unreadable."""
    if not relative:
        return f'<div class="missing">{text(alt)}: not recorded</div>'
    path = folder / str(relative)
    try:
        payload = path.read_bytes()
    except OSError:
        return f'<div class="missing">{text(alt)}: image {text(relative)} not found</div>'
    mime = next((m for sig, m in SIGNATURES.items() if payload.startswith(sig)), None)
    if mime is None:
        return f'<div class="missing">{text(alt)}: {text(relative)} is not a PNG or JPEG</div>'
    klass = f' class="{cls}"' if cls else ""
    return f'<img{klass} src="{data_uri(payload, mime)}" alt="{text(alt)}">'


def figure(images: list[tuple[str, str]], cls: str = "row") -> str:
    """A row of (image html, caption html) panels."""
    cells = "".join(f"<figure>{img}<figcaption>{cap}</figcaption></figure>" for img, cap in images)
    return f'<div class="{cls}">{cells}</div>'


def plot(png: bytes | None, alt: str, missing: str) -> str:
    if png is None:
        return note(missing)
    return f'<img class="plot" src="{data_uri(png)}" alt="{text(alt)}">'


def table(head: list[str], rows: list[list[str]], numeric: set[int], cls: str = "") -> str:
    """A table; ``head`` and ``rows`` hold ready HTML, columns in ``numeric`` right-aligned."""

    def cells(tag: str, values: list[str]) -> str:
        return "".join(
            f'<{tag} class="num">{v}</{tag}>' if i in numeric else f"<{tag}>{v}</{tag}>"
            for i, v in enumerate(values)
        )

    body = "".join(f"<tr>{cells('td', row)}</tr>" for row in rows)
    klass = f' class="{cls}"' if cls else ""
    return f"<table{klass}><thead><tr>{cells('th', head)}</tr></thead><tbody>{body}</tbody></table>"


# ----------------------------------------------------------------------------- sections
