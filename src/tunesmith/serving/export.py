"""`tunesmith export runs/<name> [--stage S] --format adapter|merged [--blend W] --out DIR`.

Writes a standard Hugging Face folder that plain transformers, PEFT and vLLM load without tunesmith:

- `merged`: the stage's best model (LoRA already merged by training) as safetensors in the starting
  checkpoint's dtype, with the tokenizer, its chat template and the generation config;
- `adapter`: the LoRA adapter alone (`adapter_config.json` + `adapter_model.safetensors`) plus the tokenizer;
  `base_model_name_or_path` is the model the stage was trained from (the run's starting checkpoint, or the
  previous stage's best for a later stage), as a local path or Hub id. Full-rank stages have no adapter.

Both carry a `README.md` model card (the resolved recipe, the realized data mix, the evaluation table) and
`tunesmith_export.json` (where it came from). `--blend W` blends the weights into the stage's start first
(`serving/blend.py`).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from tunesmith.errors import UserError
from tunesmith.recipe.loading import load_stored_recipe
from tunesmith.runs import atomic_directory, atomic_write_json, atomic_write_text
from tunesmith.serving.blend import check_weight, save_blend, scale_adapter, stage_input, start_dtype
from tunesmith.serving.card import model_card

FORMATS = ("adapter", "merged")
EXPORT_MARKER = "tunesmith_export.json"


@dataclass
class StageSource:
    """A finished stage of a run, as export needs it."""

    run_dir: Path
    stage: str
    technique: str
    mode: str
    input_ref: str  # what the stage was trained from: a catalog ref (`tiny:post-trained`), folder or Hub id

    @property
    def stage_dir(self) -> Path:
        return self.run_dir / self.stage

    @property
    def best_dir(self) -> Path:
        return self.stage_dir / "best"

    @property
    def recipe(self) -> dict:
        return load_stored_recipe(self.run_dir / "recipe.resolved.yaml")


def locate_stage(path: str | Path, stage: str | None = None) -> StageSource:
    """`runs/<name>` (+ `stage`, default: its last finished stage) or `runs/<name>/<stage>` -> StageSource."""
    folder = Path(path).expanduser()
    if (folder / "best").is_dir() and (folder.parent / "recipe.resolved.yaml").is_file() and stage is None:
        folder, stage = folder.parent, folder.name
    if not (folder / "recipe.resolved.yaml").is_file():
        raise UserError(f"{path}: not a run folder (no recipe.resolved.yaml) — pass runs/<name>")
    recipe = load_stored_recipe(folder / "recipe.resolved.yaml")
    names = [s.get("name") or s.get("technique") for s in recipe.get("stages", [])]
    finished = [n for n in names if (folder / n / "best").is_dir()]
    if stage is None:
        if not finished:
            raise UserError(f"{path}: no stage of this run has finished (no <stage>/best/) — train it first")
        stage = finished[-1]
    if stage not in finished:
        raise UserError(
            f"{path}: stage {stage!r} has no best/ model — use one of: {', '.join(finished) or '(none finished)'}"
        )
    spec = next(s for s in recipe["stages"] if (s.get("name") or s.get("technique")) == stage)
    start = stage_input(folder / stage / "best")
    return StageSource(folder, stage, spec.get("technique", "sft"), spec.get("mode", "lora"), start)


def base_reference(ref: str) -> tuple[str, str | None]:
    """A stage input as transformers/PEFT/vLLM name it: an absolute local path, or (Hub id, revision)."""
    from tunesmith.models.loading import resolve_ref

    source, revision = resolve_ref(ref)
    return (str(Path(source).resolve()), None) if isinstance(source, Path) else (str(source), revision)


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / EXPORT_MARKER).exists())):
        raise UserError(f"--out {out}: exists and is not an earlier export — pick a new or empty folder")


def export(source: StageSource, fmt: str, out: str | Path, *, blend: float = 1.0) -> Path:
    """Export one stage (see the module docstring); returns the folder."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt}: unknown — use adapter or merged")
    blend = check_weight(blend)
    adapter_dir = source.best_dir / "adapter"
    if fmt == "adapter" and (source.mode != "lora" or not (adapter_dir / "adapter_config.json").is_file()):
        raise UserError(
            f"{source.stage_dir}: a full-rank stage has no LoRA adapter to export — use --format merged"
        )
    out = Path(out)
    _check_out(out)
    base, revision = base_reference(source.input_ref)
    with atomic_directory(out) as tmp:
        if fmt == "merged":
            save_blend(source.best_dir, source.input_ref, blend, tmp)
        else:
            _write_adapter(adapter_dir, tmp, base, revision, blend)
            from tunesmith.models.loading import load_tokenizer

            load_tokenizer(source.best_dir).save_pretrained(tmp)
        provenance = {
            "run": str(source.run_dir.resolve()),
            "stage": source.stage,
            "format": fmt,
            "blend": blend,
            "base_model": base,
            "base_revision": revision,
            "start": source.input_ref,
            "dtype": str(start_dtype(source.input_ref)).removeprefix("torch."),
        }
        atomic_write_json(tmp / EXPORT_MARKER, provenance)
        atomic_write_text(tmp / "README.md", model_card(source, provenance))
    return out


def _write_adapter(adapter_dir: Path, tmp: Path, base: str, revision: str | None, blend: float) -> None:
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = base
    config["revision"] = revision
    atomic_write_json(tmp / "adapter_config.json", config)
    if blend < 1.0:
        scale_adapter(adapter_dir, blend, tmp)
    else:
        shutil.copy2(adapter_dir / "adapter_model.safetensors", tmp / "adapter_model.safetensors")


def export_command(
    run: str, *, stage: str | None = None, fmt: str = "merged", blend: float = 1.0, out: str
) -> int:
    """The CLI: export, then print what was written and how to load it."""
    source = locate_stage(run, stage)
    folder = export(source, fmt, out, blend=blend)
    provenance = json.loads((folder / EXPORT_MARKER).read_text())
    blended = f", blended {blend:g} into {source.input_ref}" if blend < 1.0 else ""
    print(f"exported {source.run_dir.name}/{source.stage} ({fmt}{blended}) to {folder}")
    if fmt == "adapter":
        print(
            f"  base model: {provenance['base_model']} (load it, then PeftModel.from_pretrained(base, '{folder}'))"
        )
    else:
        print(f"  load: AutoModelForCausalLM.from_pretrained('{folder}')")
    return 0
