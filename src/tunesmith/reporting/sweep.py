"""The report of a sweep folder (`runs/<sweep>/`, written by `tunesmith sweep`): the Pareto plot of domain
gain vs general retention (front highlighted, recommended trial marked), the recommendation and its rule,
the compute spent, and the trial table. The front and the recommendation are read from `sweep.json`, where
the sweep computed them (`sweeps/objectives.py`); `trials.csv` gives every trial."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from tunesmith.errors import UserError
from tunesmith.reporting import charts
from tunesmith.reporting.html import Chart, page, paragraph, section, table
from tunesmith.reporting.records import FIX
from tunesmith.runs import read_json_record

NEEDED_COLUMNS = ("trial", "state", "config", "domain_gain_points", "general_retention_percent")
NUMBER_COLUMNS = ("domain_gain_points", "domain_score", "general_retention_percent", "general_score",
                  "steps", "planned_steps", "train_seconds", "eval_seconds")  # fmt: skip


def is_sweep(folder: Path) -> bool:
    return (folder / "sweep.json").is_file() or (folder / "trials.csv").is_file()


def read_trials(path: Path) -> list[dict[str, Any]]:
    """trials.csv as rows with numbers parsed (empty cells: None); a damaged file names FILE:LINE."""
    if not path.exists():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: cannot be read ({err}) — {FIX}") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in NEEDED_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise UserError(f"{path}: not a sweep's trials.csv (no column {', '.join(missing)}) — {FIX}")
    rows = []
    for row in reader:
        line = reader.line_num
        try:
            row["trial"] = int(row["trial"])
            for column in NUMBER_COLUMNS:
                value = row.get(column)
                row[column] = float(value) if value not in (None, "") else None
        except (TypeError, ValueError):
            raise UserError(f"{path}:{line}: damaged row (a number column holds text) — {FIX}") from None
        rows.append(row)
    return rows


def render_sweep(folder: Path) -> tuple[str, list[Chart]]:
    summary = read_json_record(folder / "sweep.json", fix=FIX) if (folder / "sweep.json").exists() else None
    if summary is not None and not isinstance(summary, dict):
        raise UserError(f"{folder / 'sweep.json'}: not a JSON object — {FIX}")
    trials = read_trials(folder / "trials.csv")
    summary = summary or {}
    front = [
        int(p["trial"]) for p in summary.get("pareto_front") or [] if isinstance(p, dict) and "trial" in p
    ]
    best = summary.get("recommended") if isinstance(summary.get("recommended"), dict) else None
    recommended = int(best["trial"]) if best and "trial" in best else None
    points = {
        t["trial"]: (t["domain_gain_points"], t["general_retention_percent"])
        for t in trials
        if t["state"] == "COMPLETE"
        and t["domain_gain_points"] is not None
        and t["general_retention_percent"] is not None
    }
    found: list[Chart] = []
    parts: list[str] = []
    if best is not None:
        parts.append(
            paragraph(
                f"recommended: trial {recommended}: domain {best.get('domain_gain_points', 0):+.1f} points, "
                f"general retained {best.get('general_retention_percent', 0):.1f}% — {best.get('verdict', '')}",
                "verdict",
            )
        )
    elif summary:
        parts.append(paragraph("recommended: none — no completed trial meets the rule", "verdict"))
    if summary.get("rule"):
        parts.append(paragraph(f"rule: {summary['rule']}", "muted"))
    compute = summary.get("compute") or {}
    if compute:
        parts.append(
            paragraph(
                f"compute: {compute.get('steps', 0)} steps, {compute.get('tokens', 0)} tokens, "
                f"{compute.get('train_seconds', 0)} s training + {compute.get('eval_seconds', 0)} s evaluation",
                "muted",
            )
        )
    png = charts.pareto_chart(points, front, recommended)
    if png is not None:
        chart = Chart("pareto", "Pareto plot: domain gain vs general retention", png)
        found.append(chart)
        parts.append(chart.img())
    sections = [section("Sweep", parts, section_id="sweep")]
    if trials:
        rows, classes = [], []
        for t in trials:
            rows.append(
                [
                    t["trial"],
                    t["state"],
                    t["config"],
                    t["domain_gain_points"],
                    t["general_retention_percent"],
                    t.get("significant_regression", ""),
                    t.get("pruned_by", ""),
                    f"{fmt_int(t['steps'])} / {fmt_int(t['planned_steps'])}",
                    t["train_seconds"],
                    "recommended" if t["trial"] == recommended else "front" if t["trial"] in front else "",
                ]  # fmt: skip
            )
            classes.append(
                "highlight" if t["trial"] == recommended else "gain" if t["trial"] in front else ""
            )
        headers = ["trial", "state", "configuration", "domain gain (points)", "general retained %",
                   "significant regression", "pruned by", "steps", "train s", "on the front"]  # fmt: skip
        sections.append(
            section(
                "Trials",
                [table(headers, rows, row_classes=classes, numeric=(0, 3, 4, 8), table_id="trials")],
                section_id="trials",
            )  # fmt: skip
        )
    name = folder.name
    return page(f"tunesmith sweep report: {name}", f"sweep folder {folder}", sections), found


def fmt_int(value: float | None) -> str:
    return "–" if value is None else str(int(value))
