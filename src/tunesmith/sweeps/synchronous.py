"""Synchronous successive halving for a grid sweep: every configuration reaches a rung before any is promoted.

Why. Asynchronous successive halving (`pruning.SuccessiveHalving` deciding as each trial arrives) compares a
trial only with the trials that reached the rung before it, so with few workers the first trials at a rung
continue whatever they are worth: on the tiny family's 12-configuration benchmark three to four of 12 ran in
full, 43-58% of the grid's steps (benchmarks/RESULTS.md). A grid sweep knows its configurations up front, so
it can afford the synchronous schedule of the original algorithm ([jamieson-2016]; [asha-2018] section 3):

- *level 0*: every configuration trains to the first rung, records its probes there and pauses (its trial
  ends PRUNED, with a checkpoint at the rung);
- *level k*: once level k-1 is settled (none of its trials waiting or running), the top 1/eta of its
  configurations (at least one) by `final_rule_order` (by `pruning.scalar` when the probes are missing)
  continue from their checkpoints to the next rung, then pause again; the last level trains to the end and
  is evaluated.

With 12 configurations, eta 3 and rungs at 1/9 and 1/3: 12 x 1/9 + 4 x 2/9 + 1 x 2/3 = 24% of the grid's steps
(rungs after a longer warmup cost more: 28% at rungs 25 and 75 of 180 steps).

Several workers share the schedule without a coordinator. The promotions of level k are *slots* queued up
front (a trial with `SLOT_ATTR = [k, i]`), claimable only once level k-1 is settled; the slot's configuration
is the i-th of level k-1's ranking, which every worker computes alike from the study, so two workers never
continue the same configuration. A killed slot trial is retried like any other (the retry keeps the slot
and the configuration it took).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tunesmith.sweeps.pruning import ETA

CONFIG_ATTR = "config"  # a trial's configuration: recipe key -> value
RUNG_PREFIX = "rung:"  # + "<stage>/<rung index>": the trial's scalar there (`pruning.scalar`)
RUNG_PROBE_PREFIX = "rung-probe:"  # + the same key: its general probe items and domain probe there
LEVEL_ATTR = "level"  # the level a configuration's first trial trains to (0)
SLOT_ATTR = "slot"  # [level, rank]: a promotion, to the rank-th configuration of the level before
RANK_ATTR = "promoted"  # what a slot took: {"from_trial", "rank", "of"}


def slot_counts(configurations: int, levels: int, eta: int = ETA) -> list[int]:
    """Trials per level: every configuration at level 0, then the top 1/eta (at least 1) of the level before;
    `levels` = the number of rungs + 1 (the last level trains to the end)."""
    counts = [configurations]
    for _ in range(levels - 1):
        counts.append(max(1, counts[-1] // eta))
    return counts


def level_of(trial: Any) -> int | None:
    """The level a trial trains to (None: not part of a synchronous schedule)."""
    slot = trial.user_attrs.get(SLOT_ATTR)
    if slot is not None:
        return int(slot[0])
    level = trial.user_attrs.get(LEVEL_ATTR)
    return None if level is None else int(level)


def missing_slots(trials: Sequence[Any], counts: Sequence[int], alive: Iterable[str]) -> list[list[int]]:
    """The promotion slots [level, rank] no alive trial holds (queued by every command that opens the study,
    so a slot whose trial failed for good is queued again)."""
    alive = set(alive)
    held = {
        tuple(t.user_attrs[SLOT_ATTR]) for t in trials if SLOT_ATTR in t.user_attrs and t.state.name in alive
    }
    return [
        [level, rank]
        for level in range(1, len(counts))
        for rank in range(counts[level])
        if (level, rank) not in held
    ]


def settled(trials: Sequence[Any], level: int) -> bool:
    """No trial of `level` is waiting or running (each finished, or failed for good)."""
    return not any(level_of(t) == level and t.state.name in ("WAITING", "RUNNING") for t in trials)


def claimable(trial: Any, trials: Sequence[Any]) -> bool:
    """A level-0 trial (or any trial outside the schedule) always; a slot once the level before is settled."""
    slot = trial.user_attrs.get(SLOT_ATTR)
    return slot is None or settled(trials, int(slot[0]) - 1)


def _below(best: str, other: str, strata: Sequence[Sequence[Any]]) -> bool:
    """`other`'s general probe significantly below `best`'s on the same items: the final rule's paired
    bootstrap (95%, the macro mean over categories), with the best trial at the rung as the reference.
    Overall only, unlike the final rule's per-category rows: eliminating a trial at a rung cannot be undone,
    and six tests at 95% flag a trial that is as good as the best about a quarter of the time (on the tiny
    family's 12-configuration benchmark the per-category version dropped the grid's pick at its second
    rung, 2.7 points below the best overall, CI -8.0 to +2.7)."""
    from tunesmith.evaluation.forgetting import bootstrap_change

    labels = [str(category) for category, count in strata for _ in range(int(count))]
    if len(labels) != len(best) or len(best) != len(other):
        labels = ["all"] * len(best)
    return bootstrap_change([int(x) for x in best], [int(x) for x in other], labels)[2] < 0


def final_rule_order(trials: Sequence[Any], probes: Mapping[int, Mapping[str, Any]]) -> list[Any]:
    """The recommendation rule at partial budget. Mid-run every trial is still below the start (the
    stability gap), so the start is no reference; the best general probe reached at the rung is. A trial
    whose probe is significantly below it forgets more than this budget needs; the others rank by the
    domain probe (the rule's objective: its token accuracy, which moves long before exact match does),
    then by the general probe; after them, the rest by the general probe."""
    best = max(trials, key=lambda t: (probes[t.number]["general"], -t.number))
    reference = probes[best.number]

    def key(t: Any) -> tuple:
        probe = probes[t.number]
        kept = t is best or not _below(reference["items"], probe["items"], reference.get("strata") or [])
        if kept:
            return (0, -probe["domain"], -probe["general"], t.number)
        return (1, 0.0, -probe["general"], t.number)

    return sorted(trials, key=key)


def ranking(trials: Sequence[Any], level: int, rung_key: str) -> list[Any]:
    """Level `level`'s finished trials that recorded the rung `rung_key` ("<stage>/<index>"), best first, one
    per configuration: by `final_rule_order` when every one has its general probe items and a domain probe
    there, else by the scalar (ties: the lower trial number)."""
    best: dict[str, Any] = {}
    scalar_key = RUNG_PREFIX + rung_key
    for t in trials:
        if (
            level_of(t) != level
            or t.state.name not in ("PRUNED", "COMPLETE")
            or scalar_key not in t.user_attrs
        ):
            continue
        if str((t.user_attrs.get("pruned") or {}).get("by", "")).startswith("monitor"):
            continue  # stopped by a detector: a result, not a run to continue
        key = repr(sorted(t.user_attrs.get(CONFIG_ATTR, {}).items()))
        if key not in best or t.number < best[key].number:
            best[key] = t
    candidates = list(best.values())
    probes = {t.number: t.user_attrs.get(RUNG_PROBE_PREFIX + rung_key) or {} for t in candidates}
    if candidates and all(
        p.get("items") and p.get("domain") is not None and p.get("general") is not None
        for p in probes.values()
    ):
        return final_rule_order(candidates, probes)
    return sorted(candidates, key=lambda t: ([-x for x in t.user_attrs[scalar_key]], t.number))


def slot_configuration(
    trials: Sequence[Any], slot: Sequence[int], rung_key: str
) -> tuple[Mapping[str, Any], dict[str, int]] | None:
    """The configuration a slot [level, rank] continues, and where it came from; None: the level before
    ranked fewer configurations (some stopped by the monitor or failed), so the slot has nothing to do."""
    level, rank = int(slot[0]), int(slot[1])
    ranked = ranking(trials, level - 1, rung_key)
    if rank >= len(ranked):
        return None
    source = ranked[rank]
    return source.user_attrs[CONFIG_ATTR], {"from_trial": source.number, "rank": rank + 1, "of": len(ranked)}
