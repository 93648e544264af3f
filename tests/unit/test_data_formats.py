"""Readers accept the formats users already have, as they are, and normalize them to `Example`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunesmith.data.formats import ValidationReport, read_examples, validate_file
from tunesmith.errors import DataError


def write_jsonl(path: Path, rows: list[dict], *, bom: bool = False, final_newline: bool = True) -> Path:
    text = "\n".join(json.dumps(row) for row in rows) + ("\n" if final_newline else "")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return path


def test_cpt_jsonl_with_bom_and_no_final_newline(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "c.jsonl", [{"text": "one"}, {"text": "two"}], bom=True, final_newline=False
    )
    examples = list(read_examples(path))
    assert [e.text for e in examples] == ["one", "two"]
    assert [(e.kind, e.format, e.line) for e in examples] == [("cpt", "cpt-text", 1), ("cpt", "cpt-text", 2)]


def test_txt_documents_are_blank_line_separated(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_text("First doc line 1\nline 2\n\n\nSecond doc\n")
    examples = list(read_examples(path, "cpt"))
    assert [(e.text, e.line) for e in examples] == [("First doc line 1\nline 2", 1), ("Second doc", 5)]


def test_bedrock_conversation_normalizes_to_chat(tmp_path: Path) -> None:
    row = {
        "schemaVersion": "bedrock-conversation-2024",
        "system": [{"text": "You are Brindle's assistant."}],
        "messages": [
            {"role": "user", "content": [{"text": "Where is order 7?"}]},
            {
                "role": "assistant",
                "content": [
                    {"reasoningContent": {"reasoningText": {"text": "look it up"}}},
                    {"text": "Shipped."},
                ],
            },
        ],
    }
    (example,) = read_examples(write_jsonl(tmp_path / "b.jsonl", [row]))
    assert (example.kind, example.format) == ("sft", "sft-bedrock")
    assert example.messages == [
        {"role": "system", "content": "You are Brindle's assistant."},
        {"role": "user", "content": "Where is order 7?"},
        {"role": "assistant", "content": "Shipped.", "reasoning_content": "look it up"},
    ]


def test_openai_chat_sft_with_text_parts(tmp_path: Path) -> None:
    row = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]},
            {"role": "assistant", "content": "Hello."},
        ]
    }
    (example,) = read_examples(write_jsonl(tmp_path / "s.jsonl", [row]))
    assert example.format == "sft-openai"
    assert example.messages[1] == {"role": "user", "content": "Hi there"}
    assert example.to_row() == {"messages": example.messages}


@pytest.mark.parametrize("where", ["root", "metadata"])
def test_rft_reference_answer_at_root_or_metadata_and_extras_kept(tmp_path: Path, where: str) -> None:
    row: dict = {"id": "q1", "messages": [{"role": "user", "content": "2+2?"}], "task": "math"}
    if where == "root":
        row["reference_answer"] = {"value": 4}
    else:
        row["metadata"] = {"reference_answer": {"value": 4}, "difficulty": "easy"}
    (example,) = read_examples(write_jsonl(tmp_path / "r.jsonl", [row]))
    assert (example.kind, example.reference_answer) == ("rft", {"value": 4})
    assert example.extra["task"] == "math" and example.extra["id"] == "q1"
    reward_row = example.to_row()
    assert reward_row["prompt"] == [{"role": "user", "content": "2+2?"}]
    assert reward_row["reference_answer"] == {"value": 4} and reward_row["task"] == "math"


def test_openai_chat_ending_with_user_is_rft_and_kind_forces_it(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [{"messages": [{"role": "user", "content": "q"}]}])
    assert next(read_examples(path)).kind == "rft"
    sft = write_jsonl(
        tmp_path / "s.jsonl",
        [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}],
    )
    assert next(read_examples(sft)).kind == "sft"
    with pytest.raises(DataError, match=r"s.jsonl:1: the prompt ends with a \"assistant\" turn"):
        next(read_examples(sft, "rft"))


def test_gen_qa_round_trips(tmp_path: Path) -> None:
    row = {"query": "Capital of France?", "response": "Paris", "system": "Answer briefly.", "metadata": "geo"}
    (example,) = read_examples(write_jsonl(tmp_path / "g.jsonl", [row]))
    assert (example.kind, example.format) == ("eval", "eval-gen_qa")
    assert example.to_row() == row


def test_quality_marker_is_read(tmp_path: Path) -> None:
    rows = [
        {"text": "a"},
        {"text": "b", "quality": "high"},
        {"text": "c", "quality": True},
        {"text": "d", "quality": "low"},
    ]
    report = ValidationReport(file="x")
    examples = list(read_examples(write_jsonl(tmp_path / "q.jsonl", rows), report=report))
    assert [e.quality for e in examples] == [False, True, True, False]
    assert report.high_quality == 2


def test_validate_file_counts_exactly(tmp_path: Path) -> None:
    path = tmp_path / "v.jsonl"
    path.write_text('{"text": "a"}\n\n{"text": ""}\n{oops\n{"text": "b"}\n')
    report = validate_file(path)
    assert (report.lines, report.valid, report.invalid, report.blank_lines) == (5, 2, 2, 1)
    assert report.invalid_lines == [3, 4]
    assert not report.ok
    assert "2 invalid line(s) skipped (lines 3, 4)" in report.summary()


def test_first_invalid_line_raises_without_skip(tmp_path: Path) -> None:
    path = tmp_path / "v.jsonl"
    path.write_text('{"text": "a"}\n{"text": ""}\n')
    reader = read_examples(path)
    assert next(reader).text == "a"  # streaming: the valid line comes out before the error
    with pytest.raises(DataError) as err:
        next(reader)
    assert str(err.value).startswith(f"{path}:2: ") and err.value.exit_code == 2


def test_parquet_file_goes_through_the_same_validators(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    table = pa.table({"query": ["q1", "q2"], "response": ["r1", "r2"], "system": [None, "sys"]})
    pq.write_table(table, path)
    examples = list(read_examples(path))
    assert [e.to_row() for e in examples] == [
        {"query": "q1", "response": "r1"},
        {"query": "q2", "response": "r2", "system": "sys"},
    ]


def test_saved_hf_dataset_folder(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    rows = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
        for i in range(3)
    ]
    DatasetDict({"train": Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "ds"))
    examples = list(read_examples(tmp_path / "ds", "sft"))
    assert [e.messages[0]["content"] for e in examples] == ["q0", "q1", "q2"]
    assert [e.line for e in examples] == [1, 2, 3]


def test_folder_of_jsonl_files_is_one_source(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", [{"text": "1"}, {"text": "2"}])
    write_jsonl(folder / "b.jsonl", [{"text": "3"}])
    examples = list(read_examples(folder))
    assert [(Path(e.file).name, e.line, e.text) for e in examples] == [
        ("a.jsonl", 1, "1"),
        ("a.jsonl", 2, "2"),
        ("b.jsonl", 1, "3"),
    ]
