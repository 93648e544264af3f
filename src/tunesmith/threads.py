"""How many intra-op threads torch uses: the cores actually free, chosen once, in one place.

Training, the tiny family's build and evaluation all call `configure_threads()`. The rule
(`choose_threads`): `TUNESMITH_THREADS`, else `OMP_NUM_THREADS`, else the cores this process may run on
(`os.sched_getaffinity`) minus the ones other processes keep busy, rounded, at least 1. "Busy" is sampled
from `/proc/stat` over 0.2 s (the busy share of each of those cores, summed) where Linux provides it, else
the 1-minute load average. Sampling rather than the load average: the load average still counts a process
that ended seconds ago (the previous run of a benchmark, the previous test), so it would leave cores idle. Why not always all cores: an OpenMP worker whose core is taken spin-waits, and every step
waits for the slowest worker. Measured on a 2-core machine with one other process keeping a core busy
(issue 18): a bare TRL SFT step took 1.12 s with torch's 2 threads and 0.60 s with 1 thread; the tiny
family build took 1130 s instead of ~360 s.

The choice is printed once per process (stderr), with how to override it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass

from tunesmith.errors import UserError

OVERRIDES = ("TUNESMITH_THREADS", "OMP_NUM_THREADS")
"""Environment variables that fix the thread count, in order of precedence."""

_busy: float | None = None  # this process's sample of the busy cores, taken once (it takes 0.2 s)
_announced: ThreadChoice | None = None


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    cores: int  # cores this process may run on
    busy: float | None  # cores other processes kept busy, when the choice was derived from it
    source: str  # the variable that set it, or "free cores"

    def describe(self) -> str:
        if self.source == "default":
            return f"threads: torch uses {self.threads} of {self.cores} cores (set TUNESMITH_THREADS to override)"
        if self.source != "free cores":
            return f"threads: torch uses {self.threads} ({self.source}={self.threads}; {self.cores} cores)"
        busy = f"{self.busy:.1f}" if self.busy is not None else "unknown"
        return (
            f"threads: torch uses {self.threads} of {self.cores} cores ({busy} busy with other work; "
            f"set TUNESMITH_THREADS to override)"
        )


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity; the CPU count where affinity is unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _cpu_times(cpus: set[int]) -> dict[int, tuple[int, int]] | None:
    """(busy, total) jiffies of each of `cpus` from /proc/stat; None where it cannot be read."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    times = {}
    for line in lines:
        name, _, rest = line.partition(" ")
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            values = [int(v) for v in rest.split()]
            idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
            times[int(name[3:])] = (sum(values[:8]) - idle, sum(values[:8]))
    return times or None


def busy_cores(sample_seconds: float = 0.2) -> float | None:
    """Cores kept busy by other processes right now: the busy share of each core this process may run on,
    summed over `sample_seconds` (this process sleeps meanwhile); the 1-minute load average where
    /proc/stat is missing; None where neither is known."""
    try:
        cpus = set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = set(range(os.cpu_count() or 1))
    before, own_before, wall_before = _cpu_times(cpus), time.process_time(), time.monotonic()
    if before is not None:
        time.sleep(sample_seconds)
        after, own_after, wall_after = _cpu_times(cpus), time.process_time(), time.monotonic()
        if after is not None:
            busy = 0.0
            for cpu, (busy_before, total_before) in before.items():
                busy_after, total_after = after.get(cpu, (busy_before, total_before))
                if total_after > total_before:
                    busy += (busy_after - busy_before) / (total_after - total_before)
            # this process's own threads (an OpenMP pool still spinning after earlier work, a loader thread)
            # are not "other work" (suspected cause of a 1-thread family build in an idle CI run; not isolated)
            own = (own_after - own_before) / max(wall_after - wall_before, 1e-3)
            return max(0.0, busy - own)
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def choose_threads(
    environ: Mapping[str, str] | None = None, *, cores: int | None = None, busy: float | None = None
) -> ThreadChoice:
    """The thread rule (see the module docstring). `cores` and `busy` default to this machine's."""
    environ = os.environ if environ is None else environ
    cores = available_cores() if cores is None else cores
    for name in OVERRIDES:
        raw = environ.get(name, "").strip()
        if raw:
            try:
                value = int(raw)
            except ValueError:
                value = 0
            if value < 1:
                raise UserError(f"{name}={raw!r}: not a positive whole number — set it to e.g. 1 or unset it")
            return ThreadChoice(value, cores, None, name)
    busy = busy_cores() if busy is None else busy
    taken = round(busy) if busy is not None else 0
    return ThreadChoice(max(1, min(cores, cores - taken)), cores, busy, "free cores")


def configure_threads(*, announce: bool = True, default: int | None = None) -> ThreadChoice:
    """Apply `choose_threads()` to torch (`torch.set_num_threads`) and print the choice once (again only
    if it changes). The overrides are read at every call; the busy cores are sampled once per process.
    `default`: a fixed count (at most the cores) instead of the free cores when no override is set."""
    global _busy, _announced
    import torch

    overridden = any(os.environ.get(name, "").strip() for name in OVERRIDES)
    if default is not None and not overridden:
        cores = available_cores()
        choice = ThreadChoice(min(default, cores), cores, None, "default")
    else:
        if _busy is None and not overridden:
            _busy = busy_cores()
        choice = choose_threads(busy=_busy)
    torch.set_num_threads(choice.threads)
    if announce and choice != _announced:
        _announced = choice
        print(choice.describe(), file=sys.stderr, flush=True)
    return choice
