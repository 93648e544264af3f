"""The hostile-input corpus of issue 21 (cases in cases.py and http_cases.py): every bad input gets exit 2
and one line naming the file, line or key; every valid one is accepted; nothing hangs, grows past 1 GiB or
prints a traceback. The session ends with a table of every case (expected, got)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cases import CASES, Case, materialize, substitute
from cases_two import ROUND_TWO
from harness import TRACEBACK, Runner, copy_finished_run, record


def error_lines(stderr: str) -> list[str]:
    """stderr's lines without argparse's usage block (the conventional `usage: ...` before its error)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    if lines and lines[0].startswith("usage:"):
        for index, line in enumerate(lines):
            if re.match(r"^tunesmith[\w -]*: error: ", line):
                return lines[index:]
    return lines


def judge(case: Case, result: dict) -> tuple[bool, str]:
    """(as expected?, what happened in a few words)."""
    rc, stderr, stdout = result["rc"], result["stderr"], result["stdout"]
    if result["timed_out"]:
        return False, f"hung (killed after {case.timeout_s:.0f} s)"
    if result["memory_exceeded"] or result["growth_bytes"] > 1 << 30:
        return False, f"memory grew {result['growth_bytes'] / 2**30:.1f} GiB"
    if TRACEBACK in stderr or TRACEBACK in stdout:
        last = [line for line in stderr.splitlines() if line.strip()][-1:] or ["?"]
        return False, f"rc={rc} traceback: {last[0][:120]}"
    if "internal error" in stderr:
        return False, f"rc={rc} {error_lines(stderr)[-1][:160]}"
    lines = error_lines(stderr)
    shown = f"rc={rc} " + (lines[-1][:160] if lines else "(no stderr)")
    unsaid = [text for text in case.said if text not in stdout + stderr]
    if unsaid:
        return False, f"{shown} | never said {unsaid}"
    if case.expect == "ok":
        return rc == 0, shown
    if case.expect == "verdict":
        return rc in (0, 1), shown
    if case.expect == "reward-failed":
        said = "reward" in (stdout + stderr).lower()
        return rc not in (0, 1) and rc < 64 and said, shown + f" | {stdout.strip().splitlines()[-1:]}"
    assert case.expect == "error", case.expect
    if rc != 2:
        return False, shown
    if len(lines) != 1:
        return False, f"rc=2 {len(lines)} stderr lines, last: {lines[-1][:140] if lines else ''}"
    line = lines[0]
    missing = [name for name in case.names if name not in line]
    wrong = [name for name in case.not_names if name in line]
    if missing or wrong:
        return False, f"rc=2 line lacks {missing} / has {wrong}: {line[:160]}"
    return True, f"rc=2 {line[:160]}"


ALL_CASES = [*CASES, *ROUND_TWO]


@pytest.mark.parametrize("case", ALL_CASES, ids=[case.name for case in ALL_CASES])
def test_hostile_case(
    case: Case, runner: Runner, micro_model_dir: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    folder = tmp_path / "case"
    folder.mkdir()
    if case.run is not None:
        copy_finished_run(request.getfixturevalue("finished_run"), folder)
    materialize(folder, case.files, micro_model_dir)
    if case.run is not None:
        case.run(folder)
    before = {name: (folder / name).read_bytes() for name in case.unchanged}
    argv = [substitute(arg, folder, micro_model_dir) for arg in case.argv]
    env = {
        key: None if value is None else substitute(value, folder, micro_model_dir)
        for key, value in case.env.items()
    }
    stdin = str(folder / case.stdin) if case.stdin else None
    result = runner.run(argv, folder, env=env, timeout_s=case.timeout_s, stdin=stdin)
    passed, got = judge(case, result)
    changed = [
        name
        for name, data in before.items()
        if not (folder / name).is_file() or (folder / name).read_bytes() != data
    ]
    left = [name for name in case.absent if (folder / name).exists() or (folder / name).is_symlink()]
    if passed and (changed or left):
        passed, got = False, f"{got} | changed {changed} left {left}"
    record(case.name, case.klass, case.expect, got, passed, result["seconds"])
    assert passed, (
        f"{case.name}: expected {case.expect} {case.names}, got {got}\nstderr: {result['stderr'][-2000:]}"
    )


def test_corpus_size_and_classes() -> None:
    """The acceptance asks for at least 100 hostile inputs across the issue's classes."""
    from http_cases import HTTP_CASES

    assert len(CASES) + len(HTTP_CASES) >= 110
    assert {case.klass for case in CASES} | {6} == set(range(1, 9))
    assert len({case.name for case in ALL_CASES}) == len(ALL_CASES)
