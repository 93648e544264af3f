"""Fixtures of the hostile-input corpus (issue 21): one runner process that imports tunesmith once and forks
a child per case, a finished micro run to damage, and the table of outcomes printed at the end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cases import RUN_NAME, base_files, materialize, micro_recipe
from harness import OUTCOMES, Runner


@pytest.fixture(scope="session")
def runner() -> Iterator[Runner]:
    proc = Runner()
    yield proc
    proc.close()


@pytest.fixture(scope="session")
def finished_run(runner: Runner, micro_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real finished run (4 full-rank SFT steps of the micro model, checkpoints at 2 and 4), made once;
    cases copy it and damage the copy."""
    folder = tmp_path_factory.mktemp("hostile-finished")
    materialize(folder, {**base_files(), "r.yaml": micro_recipe()}, micro_model_dir)
    result = runner.run(["train", "r.yaml", "--quiet", "--no-eval"], folder, timeout_s=180)
    assert result["rc"] == 0, result
    run = folder / "runs" / RUN_NAME
    assert (run / "sft" / "result.json").exists(), result
    return folder


def pytest_terminal_summary(terminalreporter) -> None:
    if not OUTCOMES:
        return
    write = terminalreporter.write_line
    failing = [row for row in OUTCOMES if not row[4]]
    write("")
    write(
        f"hostile corpus: {len(OUTCOMES)} cases, {len(OUTCOMES) - len(failing)} as expected, "
        f"{len(failing)} not; {sum(row[5] for row in OUTCOMES):.1f} s in the cases"
    )
    width = max(len(row[0]) for row in OUTCOMES)
    for name, klass, expected, got, passed, seconds in sorted(OUTCOMES, key=lambda row: (row[1], row[0])):
        mark = "ok  " if passed else "FAIL"
        write(f"{mark} {klass} {name:<{width}} expected {expected:<8} got {got} ({seconds:.1f} s)")
