"""A fixture mirror of the curated general data, shared by tests/conftest.py (the session-wide mirror) and the
tests that build their own (a plain module: `from conftest import` is ambiguous with tests/hostile/conftest.py)."""

from __future__ import annotations

from pathlib import Path


def write_fixture_mirror(folder: Path, rows_per_category: int = 16, tag: str = "fixture") -> Path:
    """An offline mirror of the curated general data (`tunesmith.data.curated`): one saved dataset per
    category, with that category's Hub columns, holding `rows_per_category` made-up rows marked with `tag`."""
    from datasets import Dataset

    from tunesmith.data.curated.catalog import CATALOG

    for category, entry in CATALOG.items():
        rows = []
        for index in range(rows_per_category):
            question, answer = f"{tag} {category} question {index}?", f"{tag} {category} answer {index}."
            if entry.messages is not None:
                row: dict = {
                    entry.messages: [
                        {"role": "user", "content": question},
                        {"role": "assistant", "content": answer},
                    ]
                }
            else:
                row = {entry.prompt: question, entry.response: answer}
                if entry.context is not None:
                    row[entry.context] = ""
            if entry.keep is not None:
                row[entry.keep[0]] = entry.keep[1][0]
            rows.append(row)
        Dataset.from_list(rows).save_to_disk(str(folder / category))
    return folder
