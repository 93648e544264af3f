"""A model folder validated like a data file: before anything loads it, from its files alone (no tensor is
read, no code of the folder runs).

`check_model_folder` reads `config.json`, the safetensors headers (or their index) and the tokenizer's files
and raises one `ModelError` line naming the file at fault and the fix:

- `config.json` exists, parses, names an architecture transformers implements as a causal LM (`model_type`),
  with sane sizes (layers > 0, a vocabulary at least the tokenizer's size) and a real dtype;
- no `auto_map` (in `config.json` or `tokenizer_config.json`): it asks transformers to import Python code
  shipped in the folder, which tunesmith never does (every load passes `trust_remote_code=False` too, so
  transformers never asks "run the custom code? [y/N]" on a terminal);
- the weights are safetensors, each file as long as its header says (a cut copy is named before a load
  fails inside the library); a pickled `.bin` is refused (unpickling can run code), a folder holding only a
  GGUF file is pointed at that file (`model.path` takes a `.gguf` file);
- a tokenizer exists; a stage that renders conversations (SFT, RFT) has a chat template.

`check_model_path` applies it to a recipe's `model.path`: a local folder is checked, a missing local path is
reported as such (first, before any general-data or Hub message), a `.gguf` file is left to the GGUF loader,
a Hub id to the loader's own reachability check.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tunesmith.errors import ModelError

CONFIG = "config.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
SAFETENSORS_INDEX = "model.safetensors.index.json"
MAX_JSON_BYTES = 256 << 20
"""The largest JSON file read whole here (a tokenizer.json of a 250k vocabulary is ~30 MB)."""
MAX_HEADER_BYTES = 100 << 20
"""safetensors' own limit on a header's size."""
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model")
CHAT_TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers")
DTYPE_BYTES = {
    "F64": 8,
    "I64": 8,
    "U64": 8,
    "F32": 4,
    "I32": 4,
    "U32": 4,
    "F16": 2,
    "BF16": 2,
    "I16": 2,
    "U16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "F8_E8M0": 1,
}
COPY_AGAIN = "copy or download it again"


def looks_local(text: str) -> bool:
    """Is `text` meant as a local path rather than a Hub id (`owner/name`)? A path that starts with `.`, `/`
    or `~`, has more than one `/`, uses `\\`, or whose first part is a folder here."""
    if text.startswith((".", "/", "~")) or "\\" in text or text.count("/") > 1:
        return True
    head = text.partition("/")[0]
    return "/" in text and bool(head) and Path(head).is_dir()


def check_model_path(text: str, *, conversations: str | None = None, key: str = "model.path") -> None:
    """A recipe's `model.path` (see the module docstring). `conversations` names the first technique that
    renders conversations with the model's chat template ("sft", "rft"), None when no stage does."""
    path = Path(text).expanduser()
    if path.is_dir():
        check_model_folder(path, chat_for=conversations)
        return
    if path.exists():
        if path.suffix.lower() == ".gguf":
            return  # a GGUF file: the GGUF loader reads (and checks) it
        raise ModelError(
            f"{key} {text}: is a file, not a model folder — point model.path at the folder that holds "
            "config.json, the *.safetensors weights and the tokenizer files (or at a .gguf file)"
        )
    if looks_local(text) or text.lower().endswith(".gguf"):
        gguf = text.lower().endswith(".gguf")
        raise ModelError(
            f"{key} {text}: no such {'GGUF file' if gguf else 'model folder'} — check the path (relative paths "
            "are read from the current folder)" + ("" if gguf else ", or use a Hub id like owner/name")
        )


def check_model_folder(
    folder: str | os.PathLike[str],
    *,
    config: bool = True,
    weights: bool = True,
    tokenizer: bool = True,
    chat_for: str | None = None,
) -> None:
    """Validate a local model folder (see the module docstring); `config`, `weights`, `tokenizer` pick the
    parts a caller is about to load (a tokenizer-only folder has no config); `chat_for` names the technique
    that needs a chat template (None: none needed). Raises `ModelError`, one line."""
    folder = Path(folder)
    tokenizer_config = _read_json(folder / TOKENIZER_CONFIG) if (folder / TOKENIZER_CONFIG).exists() else None
    if tokenizer_config is not None:
        _refuse_custom_code(folder / TOKENIZER_CONFIG, tokenizer_config)
    settings = None
    if config or (folder / CONFIG).exists():
        settings = _check_config(folder, required=config)
    if weights:
        stored = _check_weights(folder)
        if settings is not None:
            _check_coverage(folder, settings, stored)
    if tokenizer or chat_for:
        size = _check_tokenizer(folder)
        if settings is not None and size is not None:
            _check_vocabulary(folder, settings, size)
    if chat_for and not _has_chat_template(folder, tokenizer_config):
        raise ModelError(
            f"{folder}: no chat template (chat_template.jinja, or chat_template in {TOKENIZER_CONFIG}), and "
            f"{chat_for.upper()} renders conversations with it — start from an instruct (post-trained) "
            "checkpoint of the family, or add the family's chat template to the folder"
        )


# --- config.json -------------------------------------------------------------------------------------------
def _check_config(folder: Path, *, required: bool) -> dict[str, Any] | None:
    path = folder / CONFIG
    if not path.exists():
        if not required:
            return None
        raise ModelError(_no_config_line(folder))
    settings = _read_json(path)
    _refuse_custom_code(path, settings)
    _check_architecture(path, settings)
    _check_sizes(path, settings)
    _check_dtype(path, settings)
    return settings


def _no_config_line(folder: Path) -> str:
    ggufs = sorted(folder.glob("*.gguf"))
    if ggufs:
        return (
            f"{folder}: holds a GGUF file and no config.json — set model.path to the file itself: {ggufs[0]}"
        )
    if (folder / "adapter_config.json").exists():
        return (
            f"{folder}: a LoRA adapter (adapter_config.json), not a model — point model.path at its base model, "
            "or merge it first (`tunesmith export RUN --format merged`)"
        )
    return (
        f"{folder}: no {CONFIG} — not a Hugging Face model folder; point model.path at the folder that "
        "save_pretrained or `hf download` wrote (config.json, *.safetensors, tokenizer files)"
    )


def _refuse_custom_code(path: Path, settings: dict[str, Any]) -> None:
    if settings.get("auto_map"):
        classes = (
            ", ".join(sorted(str(name) for name in settings["auto_map"]))
            if isinstance(settings["auto_map"], dict)
            else "custom classes"
        )
        raise ModelError(
            f"{path}: auto_map ({classes}) asks to run Python code shipped in the model folder, and tunesmith "
            "never runs a model folder's code — use a model whose architecture transformers implements "
            "(its model_type), or remove auto_map if model_type already names a built-in architecture"
        )


def _check_architecture(path: Path, settings: dict[str, Any]) -> None:
    import transformers
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    model_type = settings.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise ModelError(
            f"{path}: no model_type — the config does not say which architecture it is; use the config.json "
            "the weights were saved with"
        )
    if model_type not in CONFIG_MAPPING_NAMES:
        from tunesmith.suggest import did_you_mean

        raise ModelError(
            f"{path}: model_type {model_type!r} is not an architecture transformers {transformers.__version__} "
            f"implements{did_you_mean(model_type, list(CONFIG_MAPPING_NAMES))} — upgrade transformers if the "
            "architecture is newer, or use a model of a supported architecture"
        )
    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ModelError(
            f"{path}: model_type {model_type!r} has no causal-LM class in transformers (it is not a text "
            "generator) — tunesmith trains decoder language models; use one (e.g. a Llama, Qwen or SmolLM2 folder)"
        )


def _sections(settings: dict[str, Any]) -> Iterable[dict[str, Any]]:
    """The config and its text sub-config (multimodal configs keep the language model's sizes there)."""
    yield settings
    text = settings.get("text_config")
    if isinstance(text, dict):
        yield text


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _check_sizes(path: Path, settings: dict[str, Any]) -> None:
    for section in _sections(settings):
        for key in (*LAYER_KEYS, "vocab_size", "hidden_size"):
            if key in section and section[key] is not None and not _positive_int(section[key]):
                raise ModelError(
                    f"{path}: {key} is {section[key]!r} — a model needs a positive whole number here; use the "
                    "config.json the weights were saved with"
                )


def _check_dtype(path: Path, settings: dict[str, Any]) -> None:
    import torch

    for key in ("dtype", "torch_dtype"):
        value = settings.get(key)
        if value is None or value == "auto":
            continue
        dtype = getattr(torch, value, None) if isinstance(value, str) else None
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise ModelError(
                f"{path}: {key} {value!r} is not a floating-point torch dtype — use float32, bfloat16 or float16"
            )


# --- weights -----------------------------------------------------------------------------------------------
def _check_weights(folder: Path) -> int:
    """The number of weights (elements) the folder's safetensors hold, each file checked."""
    index = folder / SAFETENSORS_INDEX
    if index.exists():
        return _check_index(folder, index)
    files = sorted(p for p in folder.glob("*.safetensors") if not p.name.startswith("adapter_model"))
    if files:
        return sum(sum(_check_safetensors(file).values()) for file in files)
    pickled = sorted(p for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES and p.is_file())
    if pickled:
        raise ModelError(
            f"{pickled[0]}: pickled PyTorch weights — tunesmith loads only safetensors, because unpickling a "
            "file can run code; convert the model once where you trust the file (load it with transformers and "
            "save_pretrained, which writes model.safetensors), or download the model's .safetensors files"
        )
    ggufs = sorted(folder.glob("*.gguf"))
    if ggufs:
        raise ModelError(
            f"{folder}: the only weights are a GGUF file — set model.path to the file itself: {ggufs[0]}"
        )
    raise ModelError(
        f"{folder}: no weights (model.safetensors or {SAFETENSORS_INDEX} with its shards) — {COPY_AGAIN}, "
        "or point model.path at the folder that holds them"
    )


def _check_index(folder: Path, index: Path) -> int:
    data = _read_json(index)
    weight_map = data.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise ModelError(
            f"{index}: no weight_map (tensor -> shard file) — the index is damaged; {COPY_AGAIN}"
        )
    shards: dict[str, list[str]] = {}
    for tensor, shard in weight_map.items():
        if not isinstance(shard, str) or "/" in shard or "\\" in shard or shard.startswith("."):
            raise ModelError(
                f"{index}: tensor {tensor!r} maps to {shard!r}, not a file of this folder — {COPY_AGAIN}"
            )
        shards.setdefault(shard, []).append(tensor)
    total = 0
    for shard, tensors in sorted(shards.items()):
        path = folder / shard
        if not path.is_file():
            raise ModelError(
                f"{path}: missing — {index.name} lists {len(tensors)} tensors in it; copy the complete set of "
                "shards into the folder"
            )
        names = _check_safetensors(path)
        absent = [name for name in tensors if name not in names]
        if absent:
            raise ModelError(
                f"{path}: lacks {len(absent)} tensors that {index.name} puts there (e.g. {absent[0]}) — "
                f"the shard and the index come from different copies; {COPY_AGAIN}"
            )
        total += sum(names.values())
    return total


def _check_safetensors(path: Path) -> dict[str, int]:
    """Tensor name -> elements, of a safetensors file whose header is sound and whose length matches it."""
    size = path.stat().st_size
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                raise ModelError(f"{path}: truncated ({size} bytes, no header) — {COPY_AGAIN}")
            (length,) = struct.unpack("<Q", head)
            if length == 0 or length > MAX_HEADER_BYTES or 8 + length > size:
                raise ModelError(
                    f"{path}: not a complete safetensors file (header of {length} bytes in a file of {size}) — "
                    f"{COPY_AGAIN}"
                )
            header = json.loads(handle.read(length).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise ModelError(f"{path}: damaged safetensors header ({_short(err)}) — {COPY_AGAIN}") from None
    if not isinstance(header, dict):
        raise ModelError(f"{path}: damaged safetensors header (not a JSON object) — {COPY_AGAIN}")
    end = 0
    names: dict[str, int] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            start, stop = (int(x) for x in info["data_offsets"])
            shape = [int(x) for x in info["shape"]]
            width = DTYPE_BYTES.get(info["dtype"])
        except (KeyError, TypeError, ValueError):
            raise ModelError(f"{path}: damaged safetensors header (tensor {name!r}) — {COPY_AGAIN}") from None
        if stop < start or (width is not None and stop - start != math.prod(shape) * width):
            raise ModelError(
                f"{path}: damaged safetensors header (tensor {name!r}: {stop - start} bytes for shape {shape}) — "
                f"{COPY_AGAIN}"
            )
        end = max(end, stop)
        names[name] = math.prod(shape)
    expected = 8 + length + end
    if size < expected:
        raise ModelError(
            f"{path}: truncated — {size:,} of {expected:,} bytes (its header lists {len(names)} tensors); "
            f"{COPY_AGAIN}"
        )
    if size > expected:
        raise ModelError(
            f"{path}: {size - expected:,} bytes more than its header lists — the file is damaged; {COPY_AGAIN}"
        )
    return names


def _check_coverage(folder: Path, settings: dict[str, Any], stored: int) -> None:
    """The weights hold at least as many elements as the config's architecture has parameters (built on the
    meta device: no memory); fewer means weights of a smaller model, or missing tensors that transformers
    would fill with random values in silence. Quantized checkpoints pack their weights and are not compared."""
    if settings.get("quantization_config"):
        return
    import contextlib
    import io

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        with torch.device("meta"), contextlib.redirect_stderr(io.StringIO()):
            config = AutoConfig.from_pretrained(folder, trust_remote_code=False, local_files_only=True)
            model = AutoModelForCausalLM.from_config(config, trust_remote_code=False)
    except Exception:  # a config transformers cannot build from: its own load names the problem
        return
    needed = sum(parameter.numel() for parameter in model.parameters())
    if stored < needed:
        raise ModelError(
            f"{folder}: the weights hold {stored:,} values but the architecture in {CONFIG} has {needed:,} "
            "parameters — the weights belong to a smaller model or tensors are missing (transformers would fill "
            f"them with random values); use the {CONFIG} saved with these weights, or {COPY_AGAIN}"
        )


# --- tokenizer ---------------------------------------------------------------------------------------------
def _check_tokenizer(folder: Path) -> int | None:
    """The tokenizer's size (highest token id + 1) when its `tokenizer.json` says, else None; no tokenizer
    file is a `ModelError`."""
    present = [name for name in TOKENIZER_FILES if (folder / name).is_file()]
    if not present and not any(folder.glob("*.tiktoken")):
        raise ModelError(
            f"{folder}: no tokenizer (tokenizer.json, tokenizer.model or vocab.json + merges.txt) — copy the "
            "tokenizer files of the model these weights come from into the folder"
        )
    if "tokenizer.json" not in present:
        return None
    path = folder / "tokenizer.json"
    data = _read_json(path)
    model = data.get("model")
    vocab = model.get("vocab") if isinstance(model, dict) else None
    ids = []
    if isinstance(vocab, dict):
        ids = [value for value in vocab.values() if isinstance(value, int)]
    elif isinstance(vocab, list):
        ids = [len(vocab) - 1] if vocab else []
    added = data.get("added_tokens")
    if isinstance(added, list):
        ids += [
            token["id"] for token in added if isinstance(token, dict) and isinstance(token.get("id"), int)
        ]
    if not ids:
        raise ModelError(f"{path}: no vocabulary (model.vocab is empty or missing) — {COPY_AGAIN}")
    return max(ids) + 1


def _check_vocabulary(folder: Path, settings: dict[str, Any], tokens: int) -> None:
    for section in _sections(settings):
        vocab = section.get("vocab_size")
        if _positive_int(vocab) and vocab < tokens:
            raise ModelError(
                f"{folder / CONFIG}: vocab_size {vocab} is smaller than the tokenizer's {tokens} tokens "
                f"(tokenizer.json) — ids {vocab}..{tokens - 1} would have no embedding; use the config and "
                "tokenizer the weights were saved with"
            )
        if _positive_int(vocab):
            return


def _has_chat_template(folder: Path, tokenizer_config: dict[str, Any] | None) -> bool:
    if any((folder / name).is_file() for name in CHAT_TEMPLATE_FILES):
        return True
    if (folder / "additional_chat_templates").is_dir():
        return True
    return bool(tokenizer_config and tokenizer_config.get("chat_template"))


# --- reading -----------------------------------------------------------------------------------------------
def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ModelError(f"{path}: not a regular file — {COPY_AGAIN}")
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise ModelError(f"{path}: {size:,} bytes, more than a model folder's JSON file holds — {COPY_AGAIN}")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise ModelError(f"{path}: not UTF-8 text — the file is damaged; {COPY_AGAIN}") from None
    except json.JSONDecodeError as err:
        cut = " (cut short)" if err.pos >= len(err.doc.rstrip()) else ""
        raise ModelError(
            f"{path}: not valid JSON{cut} (line {err.lineno} column {err.colno}: {err.msg}) — {COPY_AGAIN}"
        ) from None
    except (ValueError, RecursionError) as err:
        raise ModelError(f"{path}: not valid JSON ({_short(err)}) — {COPY_AGAIN}") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: not a JSON object — {COPY_AGAIN}")
    return data


def _short(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text[:120] + ("..." if len(text) > 120 else "")
