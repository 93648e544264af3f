"""The `tunesmith sweep` arguments (registered by `tunesmith.cli`; kept light: Optuna, torch and the
training code load only when the command runs, in `sweeps.command`)."""

from __future__ import annotations

import argparse
from typing import Any

from tunesmith.arguments import NON_NEGATIVE_INT, OPEN_FRACTION, POSITIVE_INT, ranged
from tunesmith.sweeps.storage import GRACE_SECONDS, HEARTBEAT_SECONDS

ETA = ranged(int, low=2, expected="give a whole number of 2 or more (successive halving keeps the top 1/eta)")


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """The `sweep` subcommand's arguments (the CLI sets what runs it: `sweeps.command.sweep_command`)."""
    p = sub.add_parser(
        "sweep", help="search mix ratio, LR and LoRA for domain gain and general retention (Optuna, pruned)"
    )
    p.add_argument("recipe", help="recipe YAML file (the base every trial overrides)")
    p.add_argument(
        "overrides", nargs="*", metavar="key.path=value", help="override recipe values (all trials)"
    )
    p.add_argument(
        "--space", metavar="SPACE.yaml", help="recipe key -> list of values or range (docs/sweeps.md)"
    )
    p.add_argument("--preset", metavar="NAMES", help="comma-separated: mix-ratio, lr, lora, epochs (compose)")
    p.add_argument(
        "--stage", type=NON_NEGATIVE_INT, default=0, help="stage index the presets search (default 0)"
    )
    p.add_argument(
        "--trials",
        type=POSITIVE_INT,
        metavar="N",
        help="sample N trials (default: the whole grid of a list space)",
    )
    p.add_argument("--name", help="sweep name: runs/<name>/ and the study name (default <recipe name>-sweep)")
    p.add_argument(
        "--storage",
        metavar="URL",
        help="study database (default sqlite in runs/<name>/); postgresql://... for several workers",
    )
    p.add_argument(
        "--worker", action="store_true", help="join the study on --storage as one more worker (no report)"
    )
    p.add_argument("--no-prune", action="store_true", help="train every trial in full (the exhaustive grid)")
    p.add_argument("--eta", type=ETA, default=3, help="successive halving: keep the top 1/eta at each rung")
    p.add_argument(
        "--min-fraction", type=OPEN_FRACTION, default=1 / 9, help="first rung, as a fraction of the steps"
    )
    p.add_argument("--export", metavar="RECIPE.yaml", help="write the recommended trial's recipe")
    p.add_argument(
        "--heartbeat-seconds", type=POSITIVE_INT, default=HEARTBEAT_SECONDS, help=argparse.SUPPRESS
    )
    p.add_argument("--grace-seconds", type=POSITIVE_INT, default=GRACE_SECONDS, help=argparse.SUPPRESS)
    p.add_argument("--quiet", action="store_true", help="no per-trial training output: one line per trial")
    p.add_argument(
        "--force",
        action="store_true",
        help="sweep even if lint finds errors in the base recipe; let --export replace an existing file",
    )
    return p
