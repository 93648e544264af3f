"""The malformed-input corpus: every case gives ONE line `FILE:LINE: what — fix` and exit code 2 through the
real CLI, never a traceback; `--skip-invalid` reports exact counts."""

from __future__ import annotations

import codecs
import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tunesmith.cli import main
from tunesmith.data.formats import MAX_LINE_BYTES


def j(row: object) -> bytes:
    return (json.dumps(row) + "\n").encode()


def chat(*turns: tuple[str, object], **extra: object) -> bytes:
    return j({"messages": [{"role": r, "content": c} for r, c in turns], **extra})


def bedrock(*turns: tuple[str, list], **extra: object) -> bytes:
    row = {
        "schemaVersion": "bedrock-conversation-2024",
        "messages": [{"role": r, "content": c} for r, c in turns],
    }
    row.update(extra)
    return j(row)


CPT_OK = j({"text": "a fine document"})
SFT_OK = chat(("user", "hi"), ("assistant", "hello"))
BR_OK = bedrock(("user", [{"text": "hi"}]), ("assistant", [{"text": "hello"}]))
RFT_OK = chat(("user", "2+2?"), reference_answer="4")
QA_OK = j({"query": "q", "response": "r"})

# name -> (file name, content, extra CLI args, expected line, a fragment of the message)
CASES: dict[str, tuple[str, bytes, list[str], int, str]] = {
    "invalid_json": ("d.jsonl", CPT_OK + b'{"text": "x",}\n', [], 2, "invalid JSON"),
    "truncated_last_line": ("d.jsonl", CPT_OK + CPT_OK + b'{"text": "cut of', [], 3, "truncated"),
    "array_line": ("d.jsonl", CPT_OK + b"[1, 2]\n", [], 2, "JSON array, not an object"),
    "number_line": ("d.jsonl", CPT_OK + b"42\n", [], 2, "JSON number"),
    "json_array_file": ("d.jsonl", b'[{"text": "a"},\n{"text": "b"}]\n', [], 1, "JSON array, not JSONL"),
    "empty_file": ("d.jsonl", b"", [], 1, "empty"),
    "only_blank_lines": ("d.jsonl", b"\n  \n\n", [], 1, "empty"),
    "bad_utf8": ("d.jsonl", CPT_OK + b'{"text": "caf\xe9"}\n', [], 2, "invalid UTF-8"),
    "utf16_file": ("d.jsonl", codecs.BOM_UTF16_LE + '{"text": "a"}\n'.encode("utf-16-le"), [], 1, "UTF-16"),
    "gzip_file": ("d.jsonl", gzip.compress(CPT_OK), [], 1, "gzip"),
    "huge_line": (
        "d.jsonl",
        CPT_OK + b'{"text": "' + b"x" * (MAX_LINE_BYTES + 10) + b'"}\n',
        [],
        2,
        "longer than",
    ),
    "cpt_empty_text": ("d.jsonl", CPT_OK + j({"text": "   "}), [], 2, '"text" is empty'),
    "cpt_text_not_string": ("d.jsonl", CPT_OK + j({"text": 5}), [], 2, '"text" is a number'),
    "cpt_extra_key": (
        "d.jsonl",
        CPT_OK + j({"text": "a", "source": "web"}),
        [],
        2,
        'unexpected key(s) "source"',
    ),
    "unrecognized_row": ("d.jsonl", j({"txt": "typo"}), [], 1, "unrecognized row"),
    "bedrock_schema": ("d.jsonl", BR_OK.replace(b"2024", b"2023"), [], 1, "schemaVersion"),
    "bedrock_starts_assistant": (
        "d.jsonl",
        BR_OK + bedrock(("assistant", [{"text": "a"}]), ("user", [{"text": "b"}])),
        [],
        2,
        'first turn of "messages" is "assistant"',
    ),
    "bedrock_role_order": (
        "d.jsonl",
        BR_OK + bedrock(("user", [{"text": "a"}]), ("user", [{"text": "b"}]), ("assistant", [{"text": "c"}])),
        [],
        2,
        "wrong role order",
    ),
    "bedrock_ends_user": (
        "d.jsonl",
        BR_OK + bedrock(("user", [{"text": "a"}]), ("assistant", [{"text": "b"}]), ("user", [{"text": "c"}])),
        [],
        2,
        'last turn of "messages" is "user"',
    ),
    "bedrock_empty_text": (
        "d.jsonl",
        BR_OK + bedrock(("user", [{"text": ""}]), ("assistant", [{"text": "b"}])),
        [],
        2,
        "text is empty",
    ),
    "bedrock_string_content": (
        "d.jsonl",
        BR_OK + bedrock(("user", "hi"), ("assistant", [{"text": "b"}])),
        [],
        2,
        "content is a string",
    ),
    "bedrock_user_reasoning": (
        "d.jsonl",
        BR_OK
        + bedrock(
            ("user", [{"text": "a"}, {"reasoningContent": {"reasoningText": {"text": "r"}}}]),
            ("assistant", [{"text": "b"}]),
        ),
        [],
        2,
        "reasoningContent in a user turn",
    ),
    "bedrock_image": (
        "d.jsonl",
        BR_OK + bedrock(("user", [{"image": {"format": "png"}}]), ("assistant", [{"text": "b"}])),
        [],
        2,
        '"image"',
    ),
    "openai_empty_content": (
        "d.jsonl",
        SFT_OK + chat(("user", "hi"), ("assistant", "")),
        [],
        2,
        "content is empty",
    ),
    "openai_system_not_first": (
        "d.jsonl",
        SFT_OK + chat(("user", "hi"), ("system", "be nice"), ("assistant", "ok")),
        [],
        2,
        "system message must come first",
    ),
    "openai_bad_role": ("d.jsonl", SFT_OK + chat(("user", "hi"), ("bot", "ok")), [], 2, "role 'bot'"),
    "openai_messages_not_list": ("d.jsonl", SFT_OK + j({"messages": "hi"}), [], 2, "not a list"),
    "openai_empty_messages": ("d.jsonl", SFT_OK + j({"messages": []}), [], 2, '"messages" is empty'),
    "mixed_formats": ("d.jsonl", CPT_OK + SFT_OK, [], 2, "mixed formats"),
    "rft_no_user": (
        "d.jsonl",
        RFT_OK + chat(("system", "s"), reference_answer="4"),
        [],
        2,
        "no user message",
    ),
    "rft_ends_assistant": (
        "d.jsonl",
        RFT_OK + chat(("user", "2+2?"), ("assistant", "4"), reference_answer="4"),
        [],
        2,
        'ends with a "assistant" turn',
    ),
    "rft_empty_reference": (
        "d.jsonl",
        RFT_OK + chat(("user", "q"), reference_answer=" "),
        [],
        2,
        "reference_answer",
    ),
    "gen_qa_missing_response": ("d.jsonl", QA_OK + j({"query": "q"}), [], 2, 'missing "response"'),
    "gen_qa_images": ("d.jsonl", QA_OK + j({"query": "q", "response": "r", "images": []}), [], 2, "images"),
    "kind_mismatch": ("d.jsonl", SFT_OK, ["--kind", "cpt"], 1, "not CPT data"),
    "bad_quality_value": ("d.jsonl", CPT_OK + j({"text": "a", "quality": "great"}), [], 2, '"quality"'),
    "txt_as_sft": ("d.txt", b"a document\n", ["--kind", "sft"], 1, ".txt file holds CPT documents"),
    "txt_bad_utf8": ("d.txt", b"fine paragraph\n\nbad \xff byte\n", [], 3, "invalid UTF-8"),
}


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_input_gives_one_line_with_file_and_line(case: str, tmp_path: Path, capsys) -> None:
    name, content, extra_args, line, fragment = CASES[case]
    path = tmp_path / name
    path.write_bytes(content)
    code, out, err = run_cli(["data", "inspect", str(path), "--tokenizer", "chars", *extra_args], capsys)
    assert code == 2, (out, err)
    assert "Traceback" not in err and "internal error" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert f"{path}:{line}: " in lines[0], lines[0]
    assert fragment in lines[0], lines[0]
    assert " — " in lines[0]  # what — how to fix


def test_corpus_has_at_least_25_cases() -> None:
    assert len(CASES) >= 25


def test_missing_file(tmp_path: Path, capsys) -> None:
    code, _, err = run_cli(["data", "inspect", str(tmp_path / "nope.jsonl")], capsys)
    assert code == 2 and f"{tmp_path / 'nope.jsonl'}:1: file not found" in err


def test_parquet_row_problem_has_row_number(tmp_path: Path, capsys) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": ["good", "", "also good"]}), path)
    code, _, err = run_cli(["data", "inspect", str(path), "--tokenizer", "chars"], capsys)
    assert code == 2 and f'{path}:2: "text" is empty' in err


def test_skip_invalid_reports_exact_counts_and_lines(tmp_path: Path, capsys) -> None:
    path = tmp_path / "d.jsonl"
    rows = [CPT_OK] * 10
    bad_lines = {3: b"not json\n", 7: j({"text": ""}), 8: j({"text": "a", "x": 1}), 12: SFT_OK}
    for line, row in sorted(bad_lines.items()):
        rows.insert(line - 1, row)
    path.write_bytes(b"".join(rows) + b"\n")  # plus one blank line at the end
    code, out, err = run_cli(
        ["data", "inspect", str(path), "--skip-invalid", "--format", "json", "--tokenizer", "chars"], capsys
    )
    assert code == 0, err
    result = json.loads(out)
    validation = result["validation"]
    assert (validation["valid"], validation["invalid"], validation["blank_lines"]) == (10, 4, 1)
    assert validation["invalid_lines"] == [3, 7, 8, 12]
    assert [issue.split(":")[1] for issue in validation["issues"]] == ["3", "7", "8", "12"]
    code, out, _ = run_cli(["data", "inspect", str(path), "--skip-invalid", "--tokenizer", "chars"], capsys)
    assert "4 invalid line(s) (lines 3, 7, 8, 12)" in out


def test_skip_invalid_with_no_valid_line_is_still_an_error(tmp_path: Path, capsys) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"nope\n" + j({"text": ""}))
    code, _, err = run_cli(["data", "inspect", str(path), "--skip-invalid"], capsys)
    assert code == 2 and f"{path}:1: no valid examples (2 invalid line(s))" in err


@pytest.mark.parametrize("case", ["truncated_last_line", "bedrock_role_order", "utf16_file"])
def test_real_entry_point_has_no_traceback(case: str, tmp_path: Path) -> None:
    name, content, extra_args, line, fragment = CASES[case]
    path = tmp_path / name
    path.write_bytes(content)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tunesmith.cli",
            "data",
            "inspect",
            str(path),
            "--tokenizer",
            "chars",
            *extra_args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and f"{path}:{line}: " in proc.stderr and fragment in proc.stderr
