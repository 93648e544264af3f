"""The run report: one self-contained HTML file per run or sweep (`<folder>/report/report.html`), with each
chart also saved as a PNG beside it. It reads only what the run folder keeps (plan.json, the stages'
metrics, events, mixes and probes, eval/evaluation.json; a sweep's sweep.json and trials.csv) and views
offline: inline CSS, charts embedded as base64 PNGs, no script, no network.

`write_report(folder)` is the one entry (`tunesmith report`, and the end of `train` and `sweep`)."""

from tunesmith.reporting.command import report_command, write_report

__all__ = ["report_command", "write_report"]
