"""`tunesmith report FOLDER`: (re)write `FOLDER/report/` — report.html and one PNG per chart — for a run
folder or a sweep folder. The folder is published whole (built under a temp name, then renamed), so a
reader never sees a report half written or with charts of an older version."""

from __future__ import annotations

import sys
from pathlib import Path

from tunesmith.errors import UserError
from tunesmith.runs import atomic_directory, atomic_write_bytes, atomic_write_text

REPORT_DIR = "report"
REPORT_FILE = "report.html"


def write_report(folder: str | Path) -> Path:
    """Write the report of a run or sweep folder; returns the path of report.html."""
    from tunesmith.reporting.sweep import is_sweep, render_sweep

    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder — pass a run folder (runs/<name>) or a sweep folder")
    if (folder / "plan.json").exists():
        from tunesmith.reporting.records import read_run
        from tunesmith.reporting.run import render_run

        text, charts = render_run(read_run(folder))
    elif is_sweep(folder):
        text, charts = render_sweep(folder)
    else:
        raise UserError(
            f"{folder}: not a run folder (no plan.json) nor a sweep folder (no sweep.json or trials.csv) — "
            "pass runs/<name> as written by `tunesmith train` or `tunesmith sweep`"
        )
    with atomic_directory(folder / REPORT_DIR) as tmp:
        for chart in charts:
            atomic_write_bytes(tmp / f"{chart.name}.png", chart.png)
        atomic_write_text(tmp / REPORT_FILE, text)
    return folder / REPORT_DIR / REPORT_FILE


def report_command(folder: str) -> int:
    print(f"report: {write_report(folder)}")
    return 0


def report_after(folder: Path | None) -> None:
    """The end of `train` and `sweep`: write the folder's report and print its path — never fail the command
    that trained (a report that cannot be written is one line on stderr)."""
    if folder is None or not folder.is_dir():
        return
    try:
        print(f"report: {write_report(folder)}")
    except Exception as err:  # the run's outcome stands; say why there is no report
        print(f"report: not written — {' '.join(str(err).split())}", file=sys.stderr)
