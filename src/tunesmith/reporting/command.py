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
    _check_replaceable(folder / REPORT_DIR)
    with atomic_directory(folder / REPORT_DIR) as tmp:
        for chart in charts:
            atomic_write_bytes(tmp / f"{chart.name}.png", chart.png)
        atomic_write_text(tmp / REPORT_FILE, text)
    return folder / REPORT_DIR / REPORT_FILE


def _check_replaceable(path: Path) -> None:
    """The report folder is replaced whole: only when it is one this command wrote (report.html and its
    PNG charts), never a user's file or folder of the same name."""
    if not (path.exists() or path.is_symlink()):
        return
    own = (
        path.is_dir()
        and not path.is_symlink()
        and all(
            entry.is_file() and (entry.name == REPORT_FILE or entry.suffix == ".png")
            for entry in path.iterdir()
        )
    )
    if not own:
        what = (
            "a file" if path.is_file() else "a link" if path.is_symlink() else "a folder holding other files"
        )
        raise UserError(
            f"{path}: {what} that `tunesmith report` did not write, where the report goes — move or rename it, "
            "then write the report again"
        )


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
