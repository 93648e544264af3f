"""The report of one run (`runs/<name>/`): summary, the resolved recipe with where each value came from, per
stage the data mix (requested vs realized), the training curves with the LR schedule and the monitoring
events, RFT's reward and KL, the readiness probe, and the forgetting table (before vs after, with CIs)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from tunesmith.recipe.plan import value_rows
from tunesmith.recipe.resolve import Provenance
from tunesmith.reporting import charts
from tunesmith.reporting.html import Chart, Markup, details, esc, fmt, page, paragraph, section, table
from tunesmith.reporting.records import RunRecord, StageRecord, is_number


def render_run(run: RunRecord) -> tuple[str, list[Chart]]:
    """The page and its charts (in page order)."""
    found: list[Chart] = []
    parts = [_summary(run), _recipe(run)]
    for index, stage in enumerate(run.stages):
        parts.append(_stage(stage, index, found))
    if run.evaluation is not None:
        parts.append(_evaluation(run.evaluation))
    created = (run.manifest or {}).get("created", "")
    subtitle = f"run folder {run.root}" + (f" · started {created}" if created else "")
    return page(f"tunesmith run report: {run.name}", subtitle, parts), found


def _summary(run: RunRecord) -> Markup:
    rows = []
    for stage in run.stages:
        result = stage.result or {}
        best = result.get("best") or {}
        steps = f"{result['steps']} / {result.get('planned_steps', '?')}" if "steps" in result else "–"
        rows.append(
            [
                stage.name,
                stage.technique,
                stage.mode,
                stage.status(),
                steps,
                f"step {best['step']}: {best.get('selected_by', '')}" if "step" in best else "–",
                len(stage.events),
            ]  # fmt: skip
        )
    parts: list[str] = []
    verdict = (run.evaluation or {}).get("verdict")
    if verdict:
        parts.append(paragraph(f"verdict: {verdict}", "verdict"))
    headers = ["stage", "technique", "mode", "status", "steps", "best checkpoint", "events"]
    parts.append(table(headers, rows, numeric=(6,), table_id="stages"))
    command = (run.manifest or {}).get("command")
    if isinstance(command, list):
        parts.append(paragraph("command: " + " ".join(str(c) for c in command), "muted"))
    return section("Summary", parts, section_id="summary")


def _recipe(run: RunRecord) -> Markup:
    provenance = {
        path: Provenance(str(p.get("origin", "")), str(p.get("detail", "")))
        for path, p in (run.plan.get("provenance") or {}).items()
        if isinstance(p, dict)
    }
    rows = value_rows(run.plan["recipe"], provenance)
    classes = [f"origin-{origin.split(':')[0]}" for _, _, origin in rows]
    body = [
        paragraph(
            f"source: {run.plan.get('source') or 'unknown'} · size class: {run.plan.get('size_class', '?')}"
            + (f" ({run.plan['size_reason']})" if run.plan.get("size_reason") else ""),
            "muted",
        ),
    ]
    counts = Counter(origin.split(":")[0] for _, _, origin in rows)
    body.append(
        details(
            f"every value ({len(rows)}: {counts['user']} set by you, {counts['default']} defaults, "
            f"{counts['derived']} derived) — click to show",
            table(["key", "value", "where it came from"], rows, row_classes=classes, table_id="recipe"),
        )
    )
    for plan_stage in run.plan.get("stages") or []:
        numbers = plan_stage.get("numbers") or {}
        formulas = plan_stage.get("formulas") or {}
        derived = [[key, _plain(value), formulas.get(key, "")] for key, value in numbers.items()]
        if derived:
            title = f"derived numbers of stage {plan_stage.get('name', '')} — click to show"
            body.append(details(title, table(["number", "value", "formula"], derived)))
    return section("Resolved recipe", body, section_id="recipe")


def _plain(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {fmt(v)}" for k, v in value.items())
    return fmt(value)


def _stage(stage: StageRecord, index: int, found: list[Chart]) -> Markup:
    parts: list[str] = [paragraph(f"status: {stage.status()}", "muted")]
    if stage.mix is not None:
        parts.append(_mix(stage.mix))

    def add(name: str, title: str, png: bytes | None) -> None:
        if png is not None:
            chart = Chart(f"{stage.name}-{name}", title, png)
            found.append(chart)
            parts.append(chart.img())

    add("training", "loss, validation, learning rate and monitoring events", charts.training_chart(stage))
    if stage.technique == "rft":
        add("reward", "RFT reward and KL to the reference policy", charts.rft_chart(stage))
    if stage.readiness is not None:
        parts.append(Markup("<h3>readiness probe</h3>"))
        add("probe", "readiness probe: reward distribution", charts.probe_chart(stage.readiness))
        r = stage.readiness
        parts.append(
            paragraph(f"{r.get('verdict_text', r.get('verdict', ''))} — {r.get('advice', '')}", "verdict")
        )
    if stage.events:
        parts.append(Markup("<h3>monitoring events</h3>"))
        rows = [[e["step"], e.get("attempt", 0), e["detector"], e["action"], e.get("message", "")]
                for e in stage.events]  # fmt: skip
        classes = [f"action-{e['action']}" for e in stage.events]
        parts.append(
            table(
                ["step", "attempt", "detector", "action", "message"],
                rows,
                row_classes=classes,
                numeric=(0, 1),
                table_id=f"events-{index}",
            )  # fmt: skip
        )
    title = f"Stage {index + 1}: {stage.name} ({stage.technique}, {stage.mode})"
    return section(title, parts, section_id=f"stage-{index}")


def _mix(mix: dict[str, Any]) -> Markup:
    sources = mix.get("sources") or {}
    rows = [
        [name, s.get("requested_percent"), s.get("realized_percent"), s.get("examples"), s.get("passes")]
        for name, s in sources.items()
        if isinstance(s, dict)
    ]
    parts = [
        Markup("<h3>data mix</h3>"),
        table(
            ["source", "requested %", "realized %", "examples", "passes"],
            rows,
            numeric=(1, 2, 3, 4),
            table_id="mix",
        ),  # fmt: skip
    ]
    if not mix.get("complete", True):
        parts.append(paragraph("the stream was not fully consumed: realized shares are partial", "muted"))
    parts += [paragraph(f"warning: {w}", "muted") for w in mix.get("warnings") or []]
    return Markup("".join(esc(p) for p in parts))


def _points(value: Any) -> str:
    return f"{100 * value:+.1f}" if is_number(value) else "–"


def _percent(value: Any) -> str:
    return f"{100 * value:.1f}" if is_number(value) else "–"


def forgetting_rows(comparison: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows a reader compares: every general row, and the domain rows of its primary metric (the first
    one listed; the others are in eval/forgetting.csv)."""
    rows = [r for r in comparison.get("rows") or [] if isinstance(r, dict)]
    domain_metric = next((r.get("metric") for r in rows if r.get("suite") == "domain"), None)
    return [r for r in rows if r.get("suite") == "general" or r.get("metric") == domain_metric]


def _evaluation(evaluation: dict[str, Any]) -> Markup:
    parts: list[str] = []
    for index, comparison in enumerate(evaluation.get("comparisons") or []):
        if not isinstance(comparison, dict):
            continue
        parts.append(
            Markup(f"<h3>{esc(comparison.get('before', '?'))} → {esc(comparison.get('after', '?'))}</h3>")
        )
        if comparison.get("verdict"):
            parts.append(paragraph(str(comparison["verdict"]), "verdict"))
        rows, classes = [], []
        for r in forgetting_rows(comparison):
            ci = f"[{_points(r.get('ci_low'))}, {_points(r.get('ci_high'))}]"
            rows.append(
                [
                    r.get("suite"),
                    r.get("category"),
                    r.get("metric"),
                    r.get("items"),
                    _percent(r.get("before")),
                    _percent(r.get("after")),
                    _points(r.get("change")),
                    ci,
                    _percent(r.get("retention")),
                    r.get("direction"),
                ]  # fmt: skip
            )
            classes.append(r.get("direction") if r.get("significant") else "")
        headers = ["suite", "category", "metric", "items", "before %", "after %", "change (points)",
                   "95% CI (points)", "retained %", "direction"]  # fmt: skip
        parts.append(table(headers, rows, row_classes=classes, numeric=(3, 4, 5, 6, 7, 8),
                           table_id=f"forgetting-{index}"))  # fmt: skip
    parts.append(
        paragraph(
            "95% paired-bootstrap intervals; a row is a significant drop or gain when its interval excludes "
            "zero (evaluation/forgetting.py). All metrics per category: eval/forgetting.csv.",
            "muted",
        )
    )
    return section("Forgetting: before vs after", parts, section_id="forgetting")
