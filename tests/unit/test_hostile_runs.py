"""Hostile run folders and ordinary failures (issue 21, classes 2 and 4): a record is never overwritten or
silently reused, and every ordinary condition is one line on stderr (exit 2), never an internal error.

Everything goes through the real CLI in-process (`tunesmith.cli.main`) on the micro model: a finished run
(4 steps, checkpoints at steps 2 and 4) is trained once per module and copied into each test.
"""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from test_training_stage import _jsonl, _sft_rows  # the same micro SFT data

from tunesmith.cli import main


def _write_recipe(folder: Path, model_dir: Path, data: Path, **top) -> Path:
    recipe = {
        "name": "micro",
        "model": {"path": str(model_dir), "checkpoint": "post-trained"},
        "output_dir": str(folder / "runs"),
        "acknowledge": {"lr-deviates-while-mixing": "micro test model", "customer-share-far-from-50": "test"},
        "stages": [
            {
                "technique": "sft",
                "mode": "full",
                "data": {"train": str(data / "train.jsonl"), "validation": str(data / "val.jsonl")},
                "data_mixing": {
                    "customer_percent": 50,
                    "general": {"reasoning-instruction-following": 50, "math": 50},
                },
                "hyperparameters": {
                    "max_steps": 4,
                    "global_batch_size": 8,
                    "micro_batch_size": 4,
                    "val_check_interval": 2,
                    "lr": 3e-3,
                    "save_top_k": 2,
                },
            }
        ],
        **top,
    }
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, micro_model_dir: Path) -> Path:
    """A folder with data/, recipe.yaml and runs/micro/ (a finished 4-step run)."""
    folder = tmp_path_factory.mktemp("finished")
    data = folder / "data"
    data.mkdir()
    _jsonl(data / "train.jsonl", _sft_rows(64))
    _jsonl(data / "val.jsonl", _sft_rows(8, offset=1000))
    recipe = _write_recipe(folder, micro_model_dir, data)
    assert main(["train", str(recipe), "--quiet", "--no-eval"]) == 0
    assert (folder / "runs" / "micro" / "sft" / "checkpoints" / "checkpoint-2" / "COMPLETE").exists()
    return folder


@pytest.fixture
def work(finished: Path, tmp_path: Path, micro_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the finished run, its recipe pointing at this test's runs/; TUNESMITH_HOME of its own."""
    (tmp_path / "runs").mkdir()
    shutil.copytree(finished / "runs" / "micro", tmp_path / "runs" / "micro")
    _write_recipe(tmp_path, micro_model_dir, finished / "data")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("TUNESMITH_HOME", str(home))
    return tmp_path


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("tunesmith:")]
    assert len(errors) == 1 and errors[0] == lines[-1], lines
    assert "Traceback" not in "\n".join(lines) and "internal error" not in errors[0]
    return errors[0]


def _unfinish(run: Path) -> Path:
    """Make the finished run look interrupted after its last checkpoint (what `--resume` continues)."""
    stage = run / "sft"
    (stage / "result.json").unlink()
    shutil.rmtree(stage / "best")
    return stage


def _refuse_reads_of(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `path` unreadable: chmod 000, or (as root, whom permissions do not stop) fail its opens the way
    the operating system does for chmod 000."""
    if os.geteuid() != 0:
        path.chmod(0)
        return
    real_open = builtins.open

    def guarded(file, *args, **kwargs):
        if isinstance(file, str | os.PathLike) and Path(file).resolve() == path.resolve():
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded)
    monkeypatch.setattr(io, "open", guarded)


# ----------------------------------------------------------------------------------------- run folders


def test_rerun_of_a_finished_run_is_refused_and_its_files_stay_byte_identical(work: Path, capsys) -> None:
    run = work / "runs" / "micro"
    before = _files(run)
    recipe = work / "recipe.yaml"
    for extra in ([], ["stages[0].hyperparameters.lr=1e-3"]):  # the same recipe, and new values
        assert main(["train", str(recipe), *extra, "--quiet", "--no-eval"]) == 2
        line = _one_error_line(capsys)
        assert str(run) in line and "--resume" in line and "--name" in line and "--overwrite" in line
        assert _files(run) == before
    assert sorted(p.name for p in (work / "runs").iterdir()) == ["micro"]


def test_name_starts_a_new_run_and_overwrite_replaces_the_old_one(work: Path, capsys) -> None:
    runs, recipe = work / "runs", work / "recipe.yaml"
    old = _files(runs / "micro")
    assert main(["train", str(recipe), "--name", "second", "--quiet", "--no-eval"]) == 0
    assert (runs / "second" / "sft" / "result.json").exists()
    assert yaml.safe_load((runs / "second" / "recipe.resolved.yaml").read_text())["name"] == "second"
    assert _files(runs / "micro") == old
    overrides = ["stages[0].hyperparameters.lr=1e-3"]
    assert main(["train", str(recipe), *overrides, "--overwrite", "--quiet", "--no-eval"]) == 0
    resolved = yaml.safe_load((runs / "micro" / "recipe.resolved.yaml").read_text())
    assert resolved["stages"][0]["hyperparameters"]["lr"] == pytest.approx(1e-3)
    old_manifest = json.loads(old["manifest.json"])
    new_manifest = json.loads((runs / "micro" / "manifest.json").read_text())
    assert new_manifest["created_unix"] > old_manifest["created_unix"]
    assert sorted(p.name for p in runs.iterdir()) == ["micro", "second"]  # the old folder is gone


def test_a_failed_start_leaves_no_run_folder_and_overwrite_puts_the_old_one_back(
    work: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tunesmith.errors import DataError
    from tunesmith.training import pipeline

    def failing(*args, **kwargs):
        raise DataError("train.jsonl:3: simulated failure after the run folder was made — fix line 3")

    monkeypatch.setattr(pipeline, "prepare_stage_data", failing)
    runs, recipe = work / "runs", work / "recipe.yaml"
    old = _files(runs / "micro")
    assert main(["train", str(recipe), "--name", "fresh", "--quiet", "--no-eval"]) == 2
    assert "simulated failure" in _one_error_line(capsys)
    assert sorted(p.name for p in runs.iterdir()) == ["micro"]  # no half-made run, no hidden temp folder
    assert main(["train", str(recipe), "--overwrite", "--quiet", "--no-eval"]) == 2
    assert "simulated failure" in _one_error_line(capsys)
    assert sorted(p.name for p in runs.iterdir()) == ["micro"]
    assert _files(runs / "micro") == old


def test_resume_refuses_a_recipe_that_differs_and_accepts_resume_safe_changes(work: Path, capsys) -> None:
    run, recipe = work / "runs" / "micro", work / "recipe.yaml"
    before = _files(run)
    changed = ["stages[0].hyperparameters.lr=1e-3", "stages[0].data_mixing.customer_percent=60"]
    assert main(["train", str(recipe), *changed, "--resume", str(run), "--quiet", "--no-eval"]) == 2
    line = _one_error_line(capsys)
    assert "stages[0].hyperparameters.lr" in line and "stages[0].data_mixing.customer_percent" in line
    # overrides alone (`train --resume RUN key=value`) are checked the same way
    assert main(["train", "--resume", str(run), "stages[0].hyperparameters.seed=5", "--quiet"]) == 2
    assert "stages[0].hyperparameters.seed" in _one_error_line(capsys)
    assert _files(run) == before
    # evaluation settings act after training: a resume may change them, and says so
    safe = ["evaluation.general_items_per_category=3"]
    assert main(["train", str(recipe), *safe, "--resume", str(run), "--quiet", "--no-eval"]) == 0
    out, err = capsys.readouterr()
    assert "evaluation.general_items_per_category" in err
    assert f"sft: {run / 'sft' / 'best'}" in out  # the finished stage is named, not an empty list
    resolved = yaml.safe_load((run / "recipe.resolved.yaml").read_text())
    assert resolved["evaluation"]["general_items_per_category"] == 3
    assert _files(run / "sft") == {k[4:]: v for k, v in before.items() if k.startswith("sft/")}


def test_plan_and_advise_out_never_replace_a_file_without_force(work: Path, capsys) -> None:
    recipe = work / "recipe.yaml"
    original = recipe.read_bytes()
    assert main(["plan", str(recipe), "--out", str(recipe)]) == 2
    assert "--force" in _one_error_line(capsys)
    assert recipe.read_bytes() == original
    data = yaml.safe_load(original)["stages"][0]["data"]["train"]
    assert main(["advise", "--demonstrations", data, "--out", str(recipe)]) == 2
    assert "--force" in _one_error_line(capsys)
    assert recipe.read_bytes() == original
    resolved = work / "resolved.yaml"
    resolved.write_text("mine\n")
    assert main(["plan", str(recipe), "--out", str(resolved), "--force"]) == 0
    assert yaml.safe_load(resolved.read_text())["name"] == "micro"


# ----------------------------------------------------------------------------------------- damaged records


def test_resume_with_a_truncated_checkpoint_index_names_it_and_the_fix(work: Path, capsys) -> None:
    stage = _unfinish(work / "runs" / "micro")
    index = stage / "checkpoints.json"
    entries = json.loads(index.read_text())
    index.write_bytes(index.read_bytes()[:25])
    assert main(["train", "--resume", str(work / "runs" / "micro"), "--quiet", "--no-eval"]) == 2
    line = _one_error_line(capsys)
    assert str(index) in line and "delete it" in line
    index.unlink()  # the fix the message gives: the index is rebuilt from the COMPLETE markers
    assert main(["train", "--resume", str(work / "runs" / "micro"), "--quiet", "--no-eval"]) == 0
    assert set(json.loads(index.read_text())) == set(entries)
    assert json.loads((stage / "result.json").read_text())["steps"] == 4


def test_resume_with_a_truncated_metrics_file_names_the_line_and_the_fix(work: Path, capsys) -> None:
    stage = _unfinish(work / "runs" / "micro")
    metrics = stage / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    metrics.write_text("\n".join(lines[:3]) + "\n" + lines[3][: len(lines[3]) // 2] + "\n")
    assert main(["train", "--resume", str(work / "runs" / "micro"), "--quiet", "--no-eval"]) == 2
    line = _one_error_line(capsys)
    assert f"{metrics}:4:" in line and "delete that line" in line


def test_resume_with_a_truncated_monitor_state_names_it(work: Path, capsys) -> None:
    stage = _unfinish(work / "runs" / "micro")
    state = {
        "attempt": 1,
        "rollbacks": [{"to_step": 2}],
        "lr_segments": [[2, 0.5]],
        "pending_rollback_to": None,
    }
    (stage / "monitor.json").write_text(json.dumps(state)[:30])
    assert main(["train", "--resume", str(work / "runs" / "micro"), "--quiet", "--no-eval"]) == 2
    line = _one_error_line(capsys)
    assert str(stage / "monitor.json") in line and "damaged" in line and "restore it" in line


@pytest.mark.parametrize("damage", ["emptied", "cut short", "unreadable"])
def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_complete_one(
    work: Path, capsys, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    stage = _unfinish(work / "runs" / "micro")
    latest = stage / "checkpoints" / "checkpoint-4"
    if damage == "emptied":
        for file in latest.iterdir():
            if file.name != "COMPLETE":
                file.write_bytes(b"")
    elif damage == "cut short":
        weights = latest / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:-100])
    else:
        _refuse_reads_of(latest / "optimizer.pt", monkeypatch)
    assert main(["train", "--resume", str(work / "runs" / "micro"), "--quiet", "--no-eval"]) == 0
    monkeypatch.undo()
    err = capsys.readouterr().err
    why = {
        "emptied": "is empty",
        "cut short": "model.safetensors is cut short",
        "unreadable": "cannot be read",
    }
    assert f"checkpoint-4 is damaged ({'optimizer.pt' if damage == 'unreadable' else ''}" in err
    assert why[damage] in err and "resuming from checkpoint-2" in err
    result = json.loads((stage / "result.json").read_text())
    assert result["steps"] == 4
    steps = [json.loads(line)["step"] for line in (stage / "metrics.jsonl").read_text().splitlines()]
    assert [s for s in steps if s] == sorted(s for s in steps if s)  # one consistent record
    assert sorted(s for s in set(steps) if s) == [1, 2, 3, 4]
    from tunesmith.training.callbacks import checkpoint_problem

    assert checkpoint_problem(latest) is None  # step 4 was trained again and saved whole


# ----------------------------------------------------------------------------------------- ordinary conditions


CASES = {
    # case: (recipe changes as overrides or extra argv, a fragment the one line must hold)
    "output_dir is a file": (["output_dir={work}/recipe.yaml"], "is a file, not a folder"),
    "run name too long": (["--name", "n" * 300], "300 bytes long"),
    "run name with NUL": (["--name", "a\x00b"], "control character"),
    "stage name with newline": (['stages[0].name="a\\nb"'], "control character"),
    "seed 2**70": ([f"seed={2**70}"], "seed"),
    "stage seed 2**70": ([f"stages[0].hyperparameters.seed={2**70}"], "hyperparameters.seed"),
    "seed of 5000 digits": (["seed=" + "9" * 5000], "the limit is 4300"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_ordinary_conditions_are_one_line_errors_and_make_no_run_folder(
    work: Path, capsys, case: str
) -> None:
    extra, fragment = CASES[case]
    extra = [item.replace("{work}", str(work)) for item in extra]
    before = sorted(p.name for p in (work / "runs").iterdir())
    assert main(["train", str(work / "recipe.yaml"), *extra, "--quiet", "--no-eval"]) == 2
    assert fragment in _one_error_line(capsys)
    assert sorted(p.name for p in (work / "runs").iterdir()) == before


def test_report_to_a_tracker_that_is_not_installed(work: Path, capsys, monkeypatch) -> None:
    from tunesmith.training import pipeline

    monkeypatch.setitem(pipeline.TRACKER_PACKAGES, "wandb", ("tunesmith_no_such_package",))
    assert main(["train", str(work / "recipe.yaml"), "report_to=[wandb]", "--name", "w", "--quiet"]) == 2
    line = _one_error_line(capsys)
    assert "report_to: wandb is not installed" in line and "pip install" in line
    assert not (work / "runs" / "w").exists()


def test_tunesmith_home_that_is_a_file(work: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("TUNESMITH_HOME", str(work / "recipe.yaml"))
    assert main(["plan", str(work / "recipe.yaml"), "stages[0].data.train=builtin:brindle/sft"]) == 2
    line = _one_error_line(capsys)
    assert "TUNESMITH_HOME" in line and "is a file, not a folder" in line


def test_unwritable_output_folder(work: Path, capsys, monkeypatch) -> None:
    import tempfile

    target = work / "readonly"
    target.mkdir()
    if os.geteuid() != 0:
        target.chmod(0o555)
    else:  # root writes anywhere: fail the run folder's creation the way a read-only folder does
        real = tempfile.mkdtemp

        def mkdtemp(*args, dir=None, **kwargs):
            if dir is not None and Path(dir) == target:
                raise PermissionError(errno.EACCES, "Permission denied", str(dir))
            return real(*args, dir=dir, **kwargs)

        monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    assert main(["train", str(work / "recipe.yaml"), f"output_dir={target}", "--quiet", "--no-eval"]) == 2
    line = _one_error_line(capsys)
    assert str(target) in line and "cannot be written" in line and "output_dir" in line
    assert list(target.iterdir()) == []


@pytest.mark.parametrize("which", ["recipe", "data"])
def test_unreadable_file(work: Path, capsys, monkeypatch, which: str) -> None:
    recipe = work / "recipe.yaml"
    target = recipe if which == "recipe" else work / "train.jsonl"
    if which == "data":
        _jsonl(target, _sft_rows(16))
    _refuse_reads_of(target, monkeypatch)
    argv = ["plan", str(recipe)] if which == "recipe" else ["data", "inspect", str(target)]
    assert main(argv) == 2
    line = _one_error_line(capsys)
    assert str(target) in line and "Permission denied" in line


def test_hostile_data_files(work: Path, capsys) -> None:
    surrogate = work / "surrogate.jsonl"
    surrogate.write_text(
        '{"messages": [{"role": "user", "content": "a\\ud800"}, {"role": "assistant", "content": "b"}]}\n'
    )
    digits = work / "digits.jsonl"
    digits.write_text('{"text": "a", "n": ' + "9" * 5000 + "}\n")
    garbage = work / "garbage.parquet"
    garbage.write_bytes(os.urandom(3000))
    expected = {surrogate: "lone surrogate", digits: "the limit is 4300", garbage: "cannot read parquet"}
    for path, fragment in expected.items():
        assert main(["data", "inspect", str(path)]) == 2
        line = _one_error_line(capsys)
        assert f"{path}:1:" in line and fragment in line
    recipe = work / "recipe.yaml"
    assert main(["plan", str(recipe), f"stages[0].data.train={garbage}"]) == 2
    assert "cannot read parquet" in _one_error_line(capsys)


def test_hostile_recipe_values(work: Path, capsys) -> None:
    text = (work / "recipe.yaml").read_text()
    cases = {
        "surrogate.yaml": text + 'report_to: ["\\ud800"]\n',
        "digits.yaml": text + "seed: " + "9" * 5000 + "\n",
    }
    for name, content in cases.items():
        path = work / name
        path.write_text(content)
        assert main(["plan", str(path)]) == 2
        line = _one_error_line(capsys)
        assert str(path) in line
        assert ("lone surrogate" if name == "surrogate.yaml" else "the limit is 4300") in line


@pytest.mark.parametrize("command", [["serve", "tiny:post-trained"], ["reward", "serve", "exact_match"]])
def test_port_out_of_range(command: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--port", "70000"])
    assert exit_info.value.code == 2
    assert "--port: 70000 is out of range" in capsys.readouterr().err.splitlines()[-1]


# ----------------------------------------------------------------------------------------- unexpected errors


def test_an_unexpected_error_is_one_line_with_the_traceback_in_a_log_file(
    work: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tunesmith.training import pipeline, stage

    def boom(*args, **kwargs):
        raise RuntimeError("simulated bug")

    # before anything resumable exists: the run folder is removed, the log goes to $TUNESMITH_HOME/logs
    monkeypatch.setattr(pipeline, "prepare_stage_data", boom)
    assert main(["train", str(work / "recipe.yaml"), "--name", "early", "--quiet", "--no-eval"]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("tunesmith:")]
    assert len(err) == 1 and "internal error: RuntimeError: simulated bug" in err[0], err
    log = Path(err[0].split("full traceback in ")[1].split(";")[0])
    assert log.parent == work / "home" / "logs" and not (work / "runs" / "early").exists()
    assert "Traceback" in log.read_text() and "simulated bug" in log.read_text()
    monkeypatch.undo()
    monkeypatch.setenv("TUNESMITH_HOME", str(work / "home"))
    # after checkpoints were written: the run is kept (resumable) and holds the log
    monkeypatch.setattr(stage, "export_best", boom)
    assert main(["train", str(work / "recipe.yaml"), "--name", "late", "--quiet", "--no-eval"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    log = Path(err[-1].split("full traceback in ")[1].split(";")[0])
    assert log.parent == work / "runs" / "late" / "logs" and "simulated bug" in log.read_text()
    assert "Traceback" not in "\n".join(err)
