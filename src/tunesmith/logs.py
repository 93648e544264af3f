"""Quiet by default: the libraries' warnings, log lines and progress bars stay out of tunesmith's output.

`tunesmith.cli.main` calls `quiet_libraries()` once, before any library is imported, unless the command
line has `--verbose`. tunesmith's own lines and progress bar (plain `tqdm`) are untouched. Environment
variables reach a library when it loads, and the processes a run starts (an explicit setting in the
environment wins); a library that is already loaded is told directly.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

LIBRARIES = ("transformers", "datasets", "trl", "peft", "accelerate", "huggingface_hub", "torch", "lm_eval")
"""Whose warnings and log lines below ERROR are hidden."""

QUIET_ENVIRONMENT = {
    "TRANSFORMERS_VERBOSITY": "error",  # transformers' log lines below ERROR
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",  # its `warning_advice` lines
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # Hub downloads, and transformers' "Loading weights" bars
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",  # "Generating train split", map / tokenizing bars (TRL's too)
}


def quiet_libraries() -> None:
    """Hide third-party warnings, log lines below ERROR and progress bars for the rest of the process."""
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", module="|".join(rf"{name}(\.|$)" for name in LIBRARIES))
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(logging.ERROR)
    if "datasets" in sys.modules:
        sys.modules["datasets"].disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
