"""The report's HTML: one page, inline CSS, charts as base64 PNG `<img>`s, no script and no external
resource (it views offline). Every value from a run is escaped here (`esc`, `table`): pass text, and wrap
only HTML this package built in `Markup`."""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #111827;
       max-width: 1100px; margin: 24px auto; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 32px;
     border-bottom: 1px solid #e5e7eb; padding-bottom: 4px; } h3 { font-size: 15px; margin-top: 20px; }
.muted { color: #6b7280; } .verdict { background: #f3f4f6; border-left: 4px solid #2563eb;
         padding: 8px 12px; margin: 12px 0; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { border: 1px solid #e5e7eb; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f9fafb; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.drop td { background: #fef2f2; } tr.gain td { background: #f0fdf4; } tr.highlight td { background: #fffbeb; }
.origin-user { color: #1d4ed8; } .origin-default { color: #374151; } .origin-derived { color: #7c3aed; }
.action-warn { color: #b45309; } .action-stop { color: #b91c1c; } .action-rollback { color: #6d28d9; }
figure { margin: 12px 0; } figure img { max-width: 100%; border: 1px solid #e5e7eb; }
figcaption { font-size: 12px; color: #6b7280; } details summary { cursor: pointer; }
"""


class Markup(str):
    """HTML built by this package: inserted as is (everything else is escaped)."""


def esc(value: Any) -> str:
    return value if isinstance(value, Markup) else html.escape(str(value), quote=True)


@dataclass(frozen=True)
class Chart:
    """A rendered chart: `name` is its file stem (`report/<name>.png`) and the `<img>` id."""

    name: str
    title: str
    png: bytes

    def img(self) -> Markup:
        data = base64.b64encode(self.png).decode("ascii")
        return Markup(
            f'<figure><img id="chart-{esc(self.name)}" class="chart" alt="{esc(self.title)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{esc(self.title)} '
            f"({esc(self.name)}.png)</figcaption></figure>"
        )


def fmt(value: Any, digits: int = 4) -> str:
    """A number shown with `digits` significant digits; None as a dash; anything else as text."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    row_classes: Sequence[str] | None = None,
    numeric: Sequence[int] = (),
    table_id: str | None = None,
) -> Markup:
    """A table of escaped cells (`numeric`: column indexes aligned right; `row_classes`: a class per row)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for index, row in enumerate(rows):
        cells = "".join(
            f'<td class="num">{esc(fmt(c))}</td>' if i in numeric else f"<td>{esc(fmt(c))}</td>"
            for i, c in enumerate(row)
        )
        css = row_classes[index] if row_classes and row_classes[index] else ""
        body.append(f'<tr class="{esc(css)}">{cells}</tr>' if css else f"<tr>{cells}</tr>")
    ident = f' id="{esc(table_id)}"' if table_id else ""
    return Markup(f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")


def section(title: str, parts: Iterable[str], *, section_id: str, level: int = 2) -> Markup:
    """A titled section of already-built parts (`Markup`) or plain text paragraphs (escaped)."""
    body = "".join(p if isinstance(p, Markup) else f"<p>{esc(p)}</p>" for p in parts)
    return Markup(f'<section id="{esc(section_id)}"><h{level}>{esc(title)}</h{level}>{body}</section>')


def paragraph(text: str, css: str = "") -> Markup:
    return Markup(f'<p class="{esc(css)}">{esc(text)}</p>' if css else f"<p>{esc(text)}</p>")


def details(summary: str, body: str) -> Markup:
    return Markup(f"<details><summary>{esc(summary)}</summary>{esc(body)}</details>")


def page(title: str, subtitle: str, sections: Iterable[str]) -> str:
    """The whole document: a strict Content-Security-Policy (no scripts, no fetches: images from data: only)."""
    csp = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f'<h1>{esc(title)}</h1><p class="muted">{esc(subtitle)}</p>'
        + "".join(esc(s) for s in sections)
        + "</body></html>\n"
    )
