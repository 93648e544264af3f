"""Curated general rows: streamed from the Hugging Face Hub, or read from an offline mirror folder.

Where the rows come from, in order:

1. a mirror folder: the recipe's `data_mixing.general_mirror`, else `$TUNESMITH_GENERAL_DATA`. It holds one
   saved dataset per category, `<folder>/<category>/` in the `datasets.Dataset.save_to_disk` layout, with the
   catalog's columns for that category (the Hub dataset's own schema, so one mapping serves both), plus a
   `tunesmith_mirror.json` manifest of where each was copied from. `tunesmith data mirror FOLDER` writes it
   on a machine with network (`write_mirror`).
2. otherwise the Hub, streamed through `datasets.load_dataset(..., streaming=True)` (nothing is downloaded
   whole; the Hub's own HTTP cache applies).

`check_sources` runs at plan time: a mirror must hold every category asked for with the catalog's columns,
and without a mirror the Hub must be reachable; otherwise one line names the env var / recipe key and the
fix, before any run folder is written.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from tunesmith.data.curated.catalog import CATALOG, CURATED_CATEGORIES, CuratedDataset
from tunesmith.data.mixing import GENERAL_ROW_KIND, Source, as_rft_prompt, rows_source
from tunesmith.errors import DataError

MIRROR_ENV = "TUNESMITH_GENERAL_DATA"
"""Environment variable naming the offline mirror folder (the recipe key `data_mixing.general_mirror` wins)."""
MANIFEST = "tunesmith_mirror.json"
#: rows per category `tunesmith data mirror` copies by default (a 50% mix of 10k customer examples over
#: 2 epochs draws 20k general rows: 4k per category at even shares, so each is seen under 3 times)
DEFAULT_MIRROR_ROWS = 10_000
#: seeded shuffle buffer of a streamed Hub category (rows held in memory)
STREAM_SHUFFLE_BUFFER = 10_000
#: rows of a mirror checked at plan time for at least one usable example
_PLAN_SCAN_ROWS = 1_000
_TRUE = {"1", "true", "yes", "on"}


def mirror_folder(recipe_value: str | None) -> str | None:
    """The mirror folder in force: the recipe's value, else `$TUNESMITH_GENERAL_DATA`, else None."""
    return recipe_value or os.environ.get(MIRROR_ENV) or None


def hub_offline() -> bool:
    """True when the user said so (`HF_HUB_OFFLINE` / `HF_DATASETS_OFFLINE`): no network is tried."""
    return any(
        os.environ.get(name, "").lower() in _TRUE for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


def _entry(category: str, where: str) -> CuratedDataset:
    if category not in CATALOG:
        raise DataError(
            f"{where}.general.{category}: no curated dataset for this category — use one of "
            f"{', '.join(CURATED_CATEGORIES)}, or give a file for it in {where}.general_sources"
        )
    return CATALOG[category]


def _load_saved(path: Path, where: str, folder: Path) -> Any:
    from datasets import DatasetDict, load_from_disk

    fix = f"run `tunesmith data mirror {folder}` on a machine with network, then copy the folder here"
    if not path.is_dir():
        raise DataError(f"{where}.general_mirror: {path} is missing — {fix}")
    try:
        dataset = load_from_disk(str(path))
    except Exception as err:  # datasets raises FileNotFoundError, ValueError, ... for a broken folder
        raise DataError(
            f"{where}.general_mirror: {path} is not a saved dataset ({' '.join(str(err).split())[:160]}) — {fix}"
        ) from None
    if isinstance(dataset, DatasetDict):
        if "train" not in dataset:
            raise DataError(f"{where}.general_mirror: {path} has no 'train' split — {fix}")
        dataset = dataset["train"]
    return dataset


def check_sources(
    categories: Iterable[str], mirror: str | None, *, where: str, hub_reachable: Callable[[], bool]
) -> dict[str, str]:
    """Category -> where its rows will come from (dataset, license, mirror or Hub), checked now; raises
    `DataError` (one line: the key or env var and the fix) when a category cannot be served."""
    entries = {category: _entry(category, where) for category in categories}
    if not entries:
        return {}
    if mirror is not None:
        folder = Path(mirror).expanduser()
        if not folder.is_dir():
            raise DataError(
                f"{where}.general_mirror (or ${MIRROR_ENV}): {folder} is not a folder — run "
                f"`tunesmith data mirror {folder}` on a machine with network, or fix the path"
            )
        origins = {}
        for category, entry in entries.items():
            path = folder / category
            dataset = _load_saved(path, where, folder)
            missing = [column for column in entry.columns if column not in dataset.column_names]
            if missing:
                raise DataError(
                    f"{where}.general_mirror: {path} lacks column {missing[0]!r} of {entry.dataset_id} — "
                    f"re-run `tunesmith data mirror {folder} --categories {category}`"
                )
            if not any(entry.to_messages(row) for row in islice(dataset, _PLAN_SCAN_ROWS)):
                raise DataError(
                    f"{where}.general_mirror: {path} has no usable {category} example in its first "
                    f"{_PLAN_SCAN_ROWS} rows — re-run `tunesmith data mirror {folder} --categories {category}`"
                )
            origins[category] = f"{entry.describe()}; offline mirror {path} ({len(dataset)} rows)"
        return origins
    why = "HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set" if hub_offline() else None
    if why is None and not hub_reachable():
        why = "the Hugging Face Hub cannot be reached"
    if why is not None:
        raise DataError(
            f"{where}.general: curated general data ({', '.join(entries)}) streams from the Hugging Face Hub "
            f"but {why} — set ${MIRROR_ENV} or {where}.general_mirror to a mirror folder "
            "(`tunesmith data mirror FOLDER` writes one when online), set general_data: self (the start model's "
            "own answers), or set customer_percent: 100"
        )
    return {category: f"{entry.describe()}; streamed from the Hub" for category, entry in entries.items()}


def _rows(entry: CuratedDataset, mirror: str | None, seed: int) -> Iterator[dict[str, Any]]:
    """One shuffled pass of `{"messages": [...]}` rows (rows the mapping skips are left out)."""
    if mirror is not None:
        folder = Path(mirror).expanduser()
        dataset = _load_saved(folder / entry.category, "data_mixing", folder).shuffle(seed=seed)
    else:
        from datasets import load_dataset

        try:
            dataset = load_dataset(
                entry.dataset_id, entry.config, split=entry.split, revision=entry.revision, streaming=True
            ).shuffle(seed=seed, buffer_size=STREAM_SHUFFLE_BUFFER)
        except Exception as err:  # network, authentication, a renamed dataset: one line for the user
            raise DataError(
                f"general:{entry.category}: cannot stream {entry.dataset_id} from the Hub "
                f"({' '.join(str(err).split())[:160]}) — write a mirror with `tunesmith data mirror FOLDER` "
                f"and set ${MIRROR_ENV}"
            ) from None
    for row in dataset:
        messages = entry.to_messages(row)
        if messages is not None:
            yield {"messages": messages}


def as_kind(row: dict[str, Any], kind: str) -> dict[str, Any]:
    """A curated SFT row as a row of the stage's kind: CPT reads the conversation as one text document
    (turns separated by blank lines); RFT takes the conversation before the answer as the prompt and the
    answer as `reference_answer`; SFT keeps it."""
    if kind == "cpt":
        return {"text": "\n\n".join(message["content"] for message in row["messages"])}
    if kind == "rft":
        return as_rft_prompt(row)
    return row


def curated_sources(
    categories: Iterable[str], kind: str, *, mirror: str | None, seed: int = 0
) -> dict[str, Source]:
    """Mix sources for curated categories (each pass reshuffled with `seed + 1000 x pass`, like the built-in
    streams)."""
    if kind not in GENERAL_ROW_KIND:
        raise DataError(
            f"data_mixing: mixing is for CPT, SFT and RFT data, not {kind} — remove the data_mixing block"
        )
    entries = {category: _entry(category, "data_mixing") for category in categories}

    def rows(entry: CuratedDataset, epoch: int) -> Iterator[dict[str, Any]]:
        for row in _rows(entry, mirror, seed + 1000 * epoch):
            yield as_kind(row, kind)

    return {
        category: rows_source(category, lambda epoch, entry=entry: rows(entry, epoch), kind)
        for category, entry in entries.items()
    }


# ------------------------------------------------------------------------------------------- the mirror


def write_mirror(
    folder: str | os.PathLike[str],
    categories: Iterable[str] | None = None,
    *,
    rows_per_category: int = DEFAULT_MIRROR_ROWS,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Copy the first `rows_per_category` rows of each category's dataset (its catalog columns only) into
    `folder/<category>/` (`save_to_disk`, written to a temporary folder and renamed), and record the source
    commit in `folder/tunesmith_mirror.json`. Needs network; returns the manifest."""
    from datasets import Dataset, load_dataset
    from huggingface_hub import HfApi

    from tunesmith.runs import atomic_write_json

    root = Path(folder).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    manifest_path = root / MANIFEST
    manifest: dict[str, Any] = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    for category in categories or CURATED_CATEGORIES:
        entry = _entry(category, "data mirror")
        if hub_offline():
            raise DataError(f"data mirror: HF_HUB_OFFLINE is set — unset it to copy {entry.dataset_id}")
        progress(f"{category}: {entry.describe()} -> {root / category}")
        try:
            sha = HfApi().dataset_info(entry.dataset_id, revision=entry.revision).sha
            stream = load_dataset(
                entry.dataset_id, entry.config, split=entry.split, revision=sha, streaming=True
            ).select_columns(list(entry.columns))
        except Exception as err:
            raise DataError(
                f"data mirror: cannot read {entry.dataset_id} from the Hub ({' '.join(str(err).split())[:160]})"
                " — check the network (and `hf auth login` for gated datasets)"
            ) from None
        dataset = Dataset.from_list(list(islice(stream, rows_per_category)))
        tmp = root / f".{category}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        dataset.save_to_disk(str(tmp))
        shutil.rmtree(root / category, ignore_errors=True)
        os.replace(tmp, root / category)
        manifest[category] = {
            "dataset_id": entry.dataset_id,
            "config": entry.config,
            "split": entry.split,
            "revision": sha,
            "license": entry.license,
            "rows": len(dataset),
        }
        atomic_write_json(manifest_path, manifest)
        progress(f"  {len(dataset)} rows at {sha}")
    return manifest
