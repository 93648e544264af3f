"""lm-evaluation-harness tasks (e.g. mmlu, ifeval, gsm8k) for real models, run only on local data.

The managed service's general benchmarks are MMLU, IFEval, GSM8K and friends ([nova-evaluation]: "Always evaluate both the domain task and general benchmarks").
lm-evaluation-harness (EleutherAI, `pip install 'tunesmith[eval]'`) implements them; this adapter hands it
the already loaded model (`lm_eval.models.huggingface.HFLM(pretrained=<model>, tokenizer=<tokenizer>)`)
and a `TaskManager` that also scans a folder of the user's own task YAMLs (`include_path`; lm-eval docs,
"new_task_guide.md").

Offline by construction: the harness runs with `HF_DATASETS_OFFLINE=1` and `HF_HUB_OFFLINE=1`, so a task
whose data is not in the local Hugging Face cache (or in a local file the task YAML names) is skipped with
one line that says which dataset is missing and how to get it, instead of a download attempt or a hang.
Per-item scores come back from the harness's logged samples, so the forgetting table's bootstrap works
on benchmark items exactly as on the embedded ones.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

DEFAULT_TASKS: tuple[str, ...] = ("mmlu", "ifeval", "gsm8k")
"""The playbook's general benchmarks ([nova-evaluation]), for real models."""
REAL_MODEL_PARAMETERS = 100_000_000
"""Below this size (the tiny family is ~1M) the default benchmarks measure nothing but chance."""

_OFFLINE_ENV = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@dataclass
class LmEvalResult:
    """Per-item records (category = task name, one metric `score`), per-task summary, and skip lines."""

    items: list[dict] = field(default_factory=list)
    summary: dict[str, dict] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    previous = {key: os.environ.get(key) for key in _OFFLINE_ENV}
    os.environ.update(_OFFLINE_ENV)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def available() -> bool:
    """True when lm-evaluation-harness is installed."""
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        return False
    return True


def _primary_metric(sample: dict, task_obj) -> str | None:
    names = []
    with contextlib.suppress(Exception):
        names = [m["metric"] for m in task_obj.config.metric_list]
    for name in names:
        if isinstance(sample.get(name), (int, float, bool)):
            return name
    for key, value in sample.items():  # fallback: the first numeric metric the harness logged
        if key not in {"doc_id", "doc_hash", "prompt_hash", "target_hash"} and isinstance(
            value, (int, float)
        ):
            return key
    return None


def run_tasks(
    model,
    tokenizer,
    tasks: Sequence[str],
    *,
    include_path: str | os.PathLike[str] | None = None,
    limit: int | None = None,
    batch_size: int = 16,
    reasoning: bool = False,
) -> LmEvalResult:
    """Evaluate `model` on the lm-eval `tasks` whose data is local; skipped tasks get one line each.
    `reasoning` is the thinking switch (lm-eval's `enable_thinking`; with it on, the answer is what follows
    the reasoning block's `</think>`)."""
    result = LmEvalResult()
    if not tasks:
        return result
    if not available():
        result.skipped.append(
            f"lm-eval tasks {', '.join(tasks)} skipped — lm-evaluation-harness is not installed "
            "(pip install 'tunesmith[eval]')"
        )
        return result
    for noisy in ("lm_eval", "lm-eval", "datasets", "evaluate"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    with _offline():
        from lm_eval import simple_evaluate
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager

        manager = None
        if include_path:  # indexing the ~15k built-in task YAMLs takes ~15 s: skip it when not needed
            manager = TaskManager(include_path=str(include_path), include_defaults=False)
            if not set(tasks) <= set(manager.all_tasks):
                manager = None
        if manager is None:
            manager = TaskManager(include_path=str(include_path) if include_path else None)
        known = set(manager.all_tasks)
        loaded: dict[str, object] = {}
        for name in tasks:
            if name not in known:
                result.skipped.append(
                    f"lm-eval task {name} skipped — no such task (check the name, or pass the folder of its "
                    "YAML with --lm-eval-include)"
                )
                continue
            try:
                tasks_of = manager.load([name])[
                    "tasks"
                ]  # loads the data: fails offline when it is not cached
            except Exception as err:
                why = " ".join(str(err).split())[:160]
                result.skipped.append(
                    f"lm-eval task {name} skipped — its data is not available locally ({why}); download it "
                    "into the Hugging Face cache on a machine with network (hf download --repo-type dataset "
                    "<dataset>), or drop the task"
                )
                continue
            loaded.update(tasks_of)
        if not loaded:
            return result
        lm = HFLM(
            pretrained=model,
            tokenizer=tokenizer,
            batch_size=batch_size,
            enable_thinking=reasoning,
            think_end_token="</think>" if reasoning else None,
        )
        output = simple_evaluate(
            model=lm,
            tasks=list(loaded.values()),
            task_manager=manager,
            limit=limit,
            log_samples=True,
            apply_chat_template=bool(getattr(tokenizer, "chat_template", None)),
            bootstrap_iters=0,
            verbosity="ERROR",
        )
    for name, samples in (output or {}).get("samples", {}).items():
        task_obj = loaded.get(name)
        metric = _primary_metric(samples[0], task_obj) if samples else None
        if metric is None:
            result.skipped.append(f"lm-eval task {name}: no per-item metric was logged — skipped")
            continue
        for sample in samples:
            response = sample.get("filtered_resps") or sample.get("resps") or [""]
            result.items.append(
                {
                    "id": f"{name}/{sample['doc_id']}",
                    "category": name,
                    "prompt": "",
                    "reference": str(sample.get("target", "")),
                    "prediction": str(response[0] if isinstance(response, list) and response else response),
                    "scores": {"score": float(sample[metric])},
                }
            )
        values = [item["scores"]["score"] for item in result.items if item["category"] == name]
        result.summary[name] = {"metric": metric, "score": sum(values) / len(values), "items": len(values)}
    return result
