"""Remote code stays off, with no prompt, on a terminal (issue 32): a model folder whose `auto_map` points at
Python code that writes `pwned` when imported is given to `plan`, `train`, `eval`, `generate`, `serve` and
`export`, each run on a pseudo-terminal that answers `y` to any question. None may ask ("[y/N]"), run the
code (no `pwned`), or do anything but exit 2 with the one line that names `auto_map`.

The control runs transformers' own `AutoConfig.from_pretrained` on the same folder and terminal: it does ask,
and the `y` runs the folder's code, so the harness sees a prompt when there is one."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cases import PROMPTS, RUN, recipe_files
from cases_two import custom_code
from harness import SRC, copy_finished_run

PROMPT = b"[y/N]"


def run_on_tty(argv: list[str], cwd: Path, home: Path, timeout_s: float = 240) -> tuple[int | None, str]:
    """`argv` with stdin, stdout and stderr on a pseudo-terminal; answers `y` to a prompt."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])),
        "HF_MODULES_CACHE": str(home / "hf-modules"),
        "OMP_NUM_THREADS": "1",
    }
    env.pop("TUNESMITH_DEBUG", None)
    master, slave = os.openpty()
    process = subprocess.Popen(
        argv, cwd=cwd, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
    )
    os.close(slave)
    output, answered = b"", False
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the terminal closed: the process ended
                    chunk = b""
                if not chunk and process.poll() is not None:
                    break
                output += chunk
                if PROMPT in output and not answered:
                    os.write(master, b"y\n")  # what a hurried user types
                    answered = True
            elif process.poll() is not None:
                break
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        os.close(master)
    return process.returncode, output.decode("utf-8", "replace")


def command_folder(root: Path, name: str, micro_model_dir: Path) -> Path:
    folder = root / name
    folder.mkdir()
    shutil.copytree(micro_model_dir, folder / "m")
    custom_code(folder / "m")
    for relative, content in {**recipe_files({"model.path": str(folder / "m")}), "p.jsonl": PROMPTS}.items():
        (folder / relative).write_text(content)
    return folder


def test_no_prompt_and_no_custom_code_on_a_terminal(
    micro_model_dir: Path, finished_run: Path, tmp_path: Path
) -> None:
    cli = [sys.executable, "-m", "tunesmith.cli"]
    commands = {
        "plan": ["plan", "r.yaml"],
        "train": ["train", "r.yaml", "--no-eval"],
        "eval": ["eval", "--model", "m", "--suites", "general"],
        "generate": ["generate", "m", "--prompts", "p.jsonl"],
        "serve": ["serve", "m", "--port", "0"],
    }
    folders = {name: command_folder(tmp_path, name, micro_model_dir) for name in commands}
    # export: the finished run's best checkpoint asks for custom code
    export_folder = tmp_path / "export"
    copy_finished_run(finished_run, export_folder)
    custom_code(export_folder / RUN / "sft" / "best")
    commands["export"] = ["export", RUN, "--out", "exported"]
    folders["export"] = export_folder
    # the control: transformers alone asks, and the answer runs the folder's code
    control = command_folder(tmp_path, "control", micro_model_dir)
    jobs = {name: (cli + argv, folders[name]) for name, argv in commands.items()}
    jobs["control"] = (
        [sys.executable, "-c", "from transformers import AutoConfig; AutoConfig.from_pretrained('m')"],
        control,
    )

    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {name: pool.submit(run_on_tty, argv, cwd, tmp_path) for name, (argv, cwd) in jobs.items()}
        results = {name: future.result() for name, future in futures.items()}

    rc, output = results.pop("control")
    assert PROMPT.decode() in output, f"the control saw no prompt: {output[-500:]}"
    assert (control / "pwned").exists(), "the control's 'y' did not run the folder's code"
    for name, (rc, output) in results.items():
        lines = [line for line in output.replace("\r", "").splitlines() if line.strip()]
        assert PROMPT.decode() not in output, f"{name} asked: {output[-500:]}"
        assert not (folders[name] / "pwned").exists(), f"{name} ran the folder's code"
        assert rc == 2, f"{name}: rc={rc}: {output[-800:]}"
        assert "Traceback" not in output, f"{name}: {output[-800:]}"
        assert lines and "auto_map" in lines[-1], f"{name}: {lines[-3:]}"
        assert lines[-1].startswith("tunesmith: error: "), f"{name}: {lines[-3:]}"
    assert not (export_folder / "exported").exists()
