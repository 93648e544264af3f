"""The thread rule (`tunesmith.threads`): overrides, free cores under a faked load, printed once."""

from __future__ import annotations

import pytest
import torch

from tunesmith import threads
from tunesmith.errors import UserError
from tunesmith.threads import busy_cores, choose_threads, configure_threads


@pytest.mark.parametrize(
    ("cores", "busy", "expected"),
    [
        (2, 0.0, 2),  # idle: every core
        (2, 0.4, 2),  # background noise does not take a core
        (2, 1.0, 1),  # one other process keeps a core busy: one thread, not two spin-waiting
        (2, 7.6, 1),  # overloaded: still at least one
        (16, 3.2, 13),
        (1, 0.0, 1),
    ],
)
def test_free_cores_under_faked_load(cores: int, busy: float, expected: int) -> None:
    choice = choose_threads({}, cores=cores, busy=busy)
    assert choice.threads == expected
    assert choice.source == "free cores"
    assert f"{expected} of {cores} cores" in choice.describe()


def test_overrides_win_in_order() -> None:
    assert choose_threads({"OMP_NUM_THREADS": "3"}, cores=2, busy=2.0).threads == 3
    both = choose_threads({"OMP_NUM_THREADS": "3", "TUNESMITH_THREADS": "5"}, cores=2, busy=0.0)
    assert (both.threads, both.source) == (5, "TUNESMITH_THREADS")
    assert choose_threads({"TUNESMITH_THREADS": " "}, cores=4, busy=1.0).threads == 3  # blank: unset


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_bad_override_is_one_line_error(value: str) -> None:
    with pytest.raises(UserError, match=r"TUNESMITH_THREADS='.*': not a positive whole number"):
        choose_threads({"TUNESMITH_THREADS": value}, cores=2, busy=0.0)


def test_busy_cores_sums_each_cores_busy_share(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two /proc/stat samples: core 0 fully busy, core 1 a quarter busy -> 1.25 cores busy."""
    samples = iter([{0: (100, 1000), 1: (50, 1000)}, {0: (200, 1100), 1: (75, 1100)}])
    monkeypatch.setattr(threads, "_cpu_times", lambda cpus: next(samples))
    monkeypatch.setattr(threads.time, "process_time", lambda: 7.0)  # this process idle meanwhile
    assert busy_cores(sample_seconds=0.0) == pytest.approx(1.25)


def test_busy_cores_leave_out_this_process_own_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same samples while this process itself kept one core busy (its CPU time grew as fast as the
    clock): only 0.25 cores are other work."""
    samples = iter([{0: (100, 1000), 1: (50, 1000)}, {0: (200, 1100), 1: (75, 1100)}])
    clock = iter([10.0, 10.2])
    cpu = iter([3.0, 3.2])
    monkeypatch.setattr(threads, "_cpu_times", lambda cpus: next(samples))
    monkeypatch.setattr(threads.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(threads.time, "process_time", lambda: next(cpu))
    assert busy_cores(sample_seconds=0.0) == pytest.approx(0.25)


def test_a_build_default_is_fixed_unless_overridden(monkeypatch: pytest.MonkeyPatch) -> None:
    previous = torch.get_num_threads()
    monkeypatch.setattr(threads, "_announced", None)
    monkeypatch.delenv("TUNESMITH_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "busy_cores", lambda: pytest.fail("a fixed default samples nothing"))
    try:
        choice = configure_threads(default=2, announce=False)
        assert choice.threads == min(2, threads.available_cores()) and choice.source == "default"
        monkeypatch.setenv("TUNESMITH_THREADS", "1")
        assert configure_threads(default=2, announce=False).threads == 1
    finally:
        torch.set_num_threads(previous)


def test_busy_cores_falls_back_to_load_average(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "_cpu_times", lambda cpus: None)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (1.5, 1.0, 1.0))
    assert busy_cores(sample_seconds=0.0) == 1.5


def test_configure_applies_and_prints_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    previous = torch.get_num_threads()
    monkeypatch.setattr(threads, "_announced", None)
    monkeypatch.setenv("TUNESMITH_THREADS", "1")
    try:
        assert configure_threads().threads == 1
        assert configure_threads().threads == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(previous)
    lines = capsys.readouterr().err.splitlines()
    cores = threads.available_cores()
    assert lines == [f"threads: torch uses 1 (TUNESMITH_THREADS=1; {cores} cores)"]


def test_overrides_are_read_at_every_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test (or a build) that sets TUNESMITH_THREADS after an earlier choice gets its own count."""
    previous = torch.get_num_threads()
    monkeypatch.setattr(threads, "_busy", 0.0)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("TUNESMITH_THREADS", raising=False)
    try:
        assert configure_threads(announce=False).threads == threads.available_cores()
        monkeypatch.setenv("TUNESMITH_THREADS", "1")
        assert configure_threads(announce=False).threads == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(previous)
