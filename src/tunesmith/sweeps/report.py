"""The end of a sweep: the Pareto front, the recommended trial by the stated rule (`objectives.RULE`), the
compute spent, `runs/<sweep>/sweep.json`, and `--export`: the recommended trial's recipe, ready for
`tunesmith train`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tunesmith.errors import UserError
from tunesmith.runs import atomic_write_json, atomic_write_text
from tunesmith.sweeps.objectives import RULE, Objectives, pareto_front, recommend
from tunesmith.sweeps.space import config_label, override
from tunesmith.sweeps.synchronous import CONFIG_ATTR


def summarize(trials: list[Any]) -> dict[str, Any]:
    complete = {t.number: t for t in trials if t.state.name == "COMPLETE" and "objectives" in t.user_attrs}
    objectives = {n: Objectives(**t.user_attrs["objectives"]) for n, t in complete.items()}
    front = pareto_front({n: o.values for n, o in objectives.items()})
    best = recommend(objectives)
    computes = [t.user_attrs.get("compute") or {} for t in trials]
    return {
        "rule": RULE,
        "trials": {
            state: sum(1 for t in trials if t.state.name == state)
            for state in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")
        },
        "pareto_front": [
            {"trial": n, "config": complete[n].user_attrs[CONFIG_ATTR], **objectives[n].to_dict()}
            for n in front
        ],
        "recommended": (
            {
                "trial": best,
                "config": complete[best].user_attrs[CONFIG_ATTR],
                "run_dir": complete[best].user_attrs.get("run_dir"),
                **objectives[best].to_dict(),
            }
            if best is not None
            else None
        ),
        "compute": {
            "steps": sum(c.get("steps", 0) - c.get("steps_before", 0) for c in computes),
            "tokens": sum(c.get("tokens", 0) for c in computes),
            "train_seconds": round(sum(c.get("train_seconds", 0.0) for c in computes), 2),
            "eval_seconds": round(sum(c.get("eval_seconds", 0.0) for c in computes), 2),
        },
    }


def render(summary: dict[str, Any]) -> str:
    counts = ", ".join(f"{n} {s.lower()}" for s, n in summary["trials"].items() if n)
    lines = [
        f"sweep: {counts}; compute {summary['compute']['steps']} steps, {summary['compute']['train_seconds']:.0f} s training + {summary['compute']['eval_seconds']:.0f} s evaluation"
    ]
    lines.append("Pareto front (domain gain vs general retention):")
    for row in summary["pareto_front"]:
        flag = " *regression*" if row["significant_regression"] else ""
        lines.append(
            f"  trial {row['trial']:>3}  domain {row['domain_gain_points']:+6.1f} pts  retained {row['general_retention_percent']:6.1f}%{flag}  {config_label(row['config'])}"
        )
    best = summary["recommended"]
    if best is None:
        lines.append(
            f"recommended: none — no completed trial meets the rule ({RULE}); mix more general data in"
        )
    else:
        lines.append(
            f"recommended: trial {best['trial']} ({config_label(best['config'])}): domain {best['domain_gain_points']:+.1f} pts, "
            f"general retained {best['general_retention_percent']:.1f}% — rule: {RULE}"
        )
    return "\n".join(lines)


def write_summary(sweep_dir: Path, summary: dict[str, Any]) -> Path:
    return atomic_write_json(sweep_dir / "sweep.json", summary)


def export_recipe(recipe_path: Path, overrides: list[str], summary: dict[str, Any], out: Path) -> Path:
    """The recipe file with the command line's overrides and the recommended configuration applied (only
    the values you or the sweep chose; everything else stays derived from the defaults)."""
    from tunesmith.recipe.loading import apply_override, load_recipe

    best = summary["recommended"]
    if best is None:
        raise UserError(f"--export {out}: no trial meets the rule ({RULE}) — nothing to export")
    data = yaml.safe_load(recipe_path.read_text(encoding="utf-8"))
    assignments = [*overrides, *(override(k, v) for k, v in best["config"].items())]
    for assignment in assignments:
        apply_override(data, assignment)
    text = (
        f"# exported by tunesmith sweep: trial {best['trial']} ({config_label(best['config'])}) from {recipe_path}\n"
        + yaml.safe_dump(data, sort_keys=False)
    )
    atomic_write_text(out, text)
    load_recipe(out)  # what was written is a valid recipe (relative paths are read from the file's folder)
    return out
