"""`tunesmith data inspect`: detected format, counts, token lengths, duplicates, validation summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunesmith.cli import main
from tunesmith.data.inspect import inspect_file, percentile


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_percentile_nearest_rank() -> None:
    values = list(range(1, 101))
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 100)) == (50, 95, 100)
    assert percentile([], 50) == 0


def test_cpt_lengths_duplicates_and_share_over_max_length(tmp_path: Path) -> None:
    texts = ["a" * n for n in (10, 20, 30, 40, 100)] + ["a" * 10]  # one duplicate
    path = write(tmp_path / "c.jsonl", [{"text": t} for t in texts])
    result = inspect_file(path, tokenizer="chars", max_length=35)
    assert (result["format"], result["kind"], result["examples"]) == ("cpt-text", "cpt", 6)
    assert result["tokens"] == {"min": 10, "median": 20, "p95": 100, "max": 100, "total": 210}
    assert (result["duplicates"], result["unique"]) == (1, 5)
    assert result["over_max_length"] == 2 and result["over_max_length_percent"] == pytest.approx(100 * 2 / 6)


def test_sft_lengths_use_the_chat_template_of_the_tiny_tokenizer(tmp_path: Path) -> None:
    rows = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}]
    result = inspect_file(write(tmp_path / "s.jsonl", rows), tokenizer="tiny")
    # <s> <|user|> h i </s> <|assistant|> h e l l o </s>: 1 + 1 + 2 + 1 + 1 + 5 + 1 characters/specials
    assert result["tokens"]["max"] == 12
    assert result["mean_messages"] == 2.0


def test_cli_text_and_json_output(tmp_path: Path, capsys) -> None:
    path = write(
        tmp_path / "q.jsonl",
        [{"query": "q", "response": "r"}, {"query": "q2", "response": "r2", "quality": "high"}],
    )
    assert main(["data", "inspect", str(path), "--tokenizer", "chars", "--max-length", "5"]) == 0
    out = capsys.readouterr().out
    assert (
        "eval-gen_qa" in out and "2 valid" in out and "validation:  ok" in out and "over max_length 5" in out
    )
    assert main(["data", "inspect", str(path), "--tokenizer", "chars", "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["validation"]["invalid"] == 0 and result["high_quality"] == 1


def test_unknown_tokenizer_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    path = write(tmp_path / "c.jsonl", [{"text": "x"}])
    code = main(["data", "inspect", str(path), "--tokenizer", str(tmp_path / "no-such-tokenizer")])
    err = capsys.readouterr().err
    assert code == 2 and "cannot load tokenizer" in err and err.count("\n") == 1


def test_inspect_accepts_builtin_references(capsys) -> None:
    from tunesmith.data.inspect import inspect_command

    assert inspect_command("builtin:brindle/eval", fmt="json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["examples"] == 200 and result["format"] == "eval-gen_qa"
