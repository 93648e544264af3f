"""The mixture: the user's data blended with curated general data, seeded, streamed, reported.

Semantics follow the managed service ([nova-data-mixing]): `customer_percent` (0-100) of
the OVERALL mix comes from the user's data; `general` gives each general category's share of the
remaining general portion, summing to 100. E.g. customer 25 with five categories at 20 each means 25%
customer and 15% of each category.

Layers, from pure to I/O:

- `mixing_rule_violations` / `check_mixing_rules`: the SDK's validation rules ([nova-forge-sdk]), pure; the
  rules themselves are `tunesmith.data.mixing_rules` (one copy, which the recipe schema calls too).
- `requested_percents`, `largest_remainder`, `plan_counts`: arithmetic, pure.
- `weighted_interleave`: the schedule. Each source's k-th item is placed at a jittered position inside
  its k-th stratum (k + u) / target of the run, and the sources are merged in position order, so every
  window of the stream respects the shares (not only the total), and a seed fixes the order.
- `mix(...)`: consumes iterators (the customer file, read lazily; general streams per category) and
  returns a `Mixture`: iterate it for `Example`s (each with `source` set); its `MixReport` holds the
  requested vs realized share per source, repeats and warnings (`render_table()`, `to_dict()`, `save()`).

Memory: the customer file is read lazily (counted by the stage's data snapshot, `tunesmith.data.snapshot`,
or by a streaming pre-scan when there is none), shuffled through a bounded buffer, and never held whole;
`benchmarks/mix_streaming.py` measures a 2 GB file.
"""

from __future__ import annotations

import heapq
import math
import os
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from tunesmith.data.formats import Example, ValidationReport, format_for_row, read_examples
from tunesmith.data.mixing_rules import mixing_rule_violations as rule_violations
from tunesmith.errors import DataError

if TYPE_CHECKING:
    from tunesmith.data.snapshot import DataSnapshot

T = TypeVar("T")

CUSTOMER = "customer"
#: "For SFT, always include the 'reasoning-instruction-following' category" ([nova-hpo-blog], [nova-sft-docs])
SFT_GUARD_CATEGORY = "reasoning-instruction-following"
#: examples held by the seeded shuffle buffer of a file source
DEFAULT_SHUFFLE_BUFFER = 10_000
#: the kind of general rows each stage kind mixes in: CPT reads text; SFT demonstrations; RFT turns
#: demonstrations into prompts with the answer as `reference_answer` (`as_rft_prompt`)
GENERAL_ROW_KIND = {"cpt": "text", "sft": "sft", "rft": "sft"}

Unit = Literal["examples", "tokens"]
Sampling = Literal["with_replacement", "without_replacement"]


class MixingRuleError(DataError, ValueError):
    """A mixing block that breaks a rule of the SDK's ([nova-forge-sdk]; a `ValueError` too, so pydantic validators can
    raise it)."""


# ------------------------------------------------------------------------------------------- rules


def mixing_rule_violations(
    customer_percent: float, general: Mapping[str, float] | None, *, where: str = "data_mixing"
) -> list[str]:
    """The SDK rules (`validate_data_mixing_config`, [nova-forge-sdk]; written once in
    `tunesmith.data.mixing_rules`, which the recipe schema calls too), as messages
    `key.path: what — fix`; empty when the block is valid."""
    return [f"{where}.{key}: {message}" for key, message in rule_violations(customer_percent, general)]


def check_mixing_rules(
    customer_percent: float, general: Mapping[str, float] | None, *, where: str = "data_mixing"
) -> None:
    """Raise `MixingRuleError` (a `DataError` and a `ValueError`) with the first broken rule."""
    found = mixing_rule_violations(customer_percent, general, where=where)
    if found:
        raise MixingRuleError(found[0])


# ------------------------------------------------------------------------------------------- arithmetic


def requested_percents(customer_percent: float, general: Mapping[str, float] | None) -> dict[str, float]:
    """Percent of the OVERALL mix per source; sources with a zero share are left out."""
    general = general or {}
    general_total = sum(general.values())
    shares: dict[str, float] = {}
    if customer_percent > 0:
        shares[CUSTOMER] = float(customer_percent)
    if customer_percent < 100 and general_total > 0:
        for name, value in general.items():
            if value > 0:
                shares[name] = (100.0 - customer_percent) * value / general_total
    return shares


def largest_remainder(total: int, weights: Mapping[str, float]) -> dict[str, int]:
    """Split `total` into integers proportional to `weights` that sum exactly to `total` (Hamilton's
    method; ties broken by order)."""
    weight_sum = sum(weights.values())
    assert total >= 0 and weight_sum > 0, (total, weights)
    quotas = {name: total * weight / weight_sum for name, weight in weights.items()}
    counts = {name: math.floor(quota) for name, quota in quotas.items()}
    left = total - sum(counts.values())
    order = sorted(quotas, key=lambda name: quotas[name] - counts[name], reverse=True)
    for name in order[:left]:
        counts[name] += 1
    return counts


def plan_counts(total: int, customer_percent: float, general: Mapping[str, float] | None) -> dict[str, int]:
    """How many units (examples or tokens) each source contributes to a mix of `total` units."""
    check_mixing_rules(customer_percent, general)
    return largest_remainder(total, requested_percents(customer_percent, general))


def weighted_interleave(
    streams: Mapping[str, Iterator[T]],
    targets: Mapping[str, float],
    *,
    seed: int | str,
    amount: Callable[[T], float] | None = None,
) -> Iterator[tuple[str, T]]:
    """Merge streams so each source delivers `targets[name]` units (1 per item, or `amount(item)`),
    spread evenly: the k-th unit of a source sits at a seeded random point of its k-th stratum.

    A source stops once the next item would overshoot its target by more than half the item (so item
    counts are exact and token totals are within half an item); an exhausted source just stops early.
    """
    rng = random.Random(f"interleave:{seed}")
    draw, heappush, heappop = rng.random, heapq.heappush, heapq.heappop
    heap: list[tuple[float, int, str]] = []
    state: dict[str, list[Any]] = {}  # name -> [emitted, pending item, pending amount, target]

    for index, (name, stream) in enumerate(streams.items()):
        target = float(targets.get(name, 0))
        if target <= 0:
            continue
        item = next(stream, _END)
        if item is _END:
            continue
        size = float(amount(item)) if amount else 1.0
        if size / 2 > target:
            continue
        state[name] = [0.0, item, size, target]
        heappush(heap, (draw() * size / target, index, name))
    while heap:
        _, index, name = heappop(heap)
        entry = state[name]
        yield name, entry[1]
        emitted = entry[0] = entry[0] + entry[2]
        target = entry[3]
        if emitted >= target:
            continue  # done: don't pull (and lose) one more item
        item = next(streams[name], _END)
        if item is _END:
            continue
        size = float(amount(item)) if amount else 1.0
        if emitted + size / 2 > target:
            continue
        entry[1], entry[2] = item, size
        heappush(heap, ((emitted + draw() * size) / target, index, name))


_END: Any = object()


def buffered_shuffle(items: Iterable[T], buffer_size: int, rng: random.Random) -> Iterator[T]:
    """Seeded shuffle through a bounded buffer (memory: `buffer_size` items), like tf.data / datasets."""
    if buffer_size <= 1:
        yield from items
        return
    buffer: list[T] = []
    fill = buffer.append
    iterator = iter(items)
    for item in iterator:
        fill(item)
        if len(buffer) == buffer_size:
            break
    draw = rng.random
    for item in iterator:
        index = int(draw() * buffer_size)
        buffer[index], item = item, buffer[index]
        yield item
    rng.shuffle(buffer)
    yield from buffer


# ------------------------------------------------------------------------------------------- sources


@dataclass
class Source:
    """A stream of examples for one mix source. `open(epoch)` returns one fresh pass over the data;
    `size` is examples per pass (None: unlimited, e.g. the procedural general data) and `tokens` the
    token count per pass when known."""

    name: str
    open: Callable[[int], Iterator[Example]]
    size: int | None = None
    tokens: int | None = None


@dataclass
class CustomerData:
    """The user's data file(s), read lazily. `scan()` counts examples (and tokens) in one streaming pass
    and keeps the validation report; passes then stream the file again, shuffled through a buffer.

    High-quality examples are those with `quality: true/"high"` in the file, plus every example of
    `quality_file` (a separate file of the same kind).
    """

    path: str | os.PathLike[str]
    kind: str | None = None
    skip_invalid: bool = False
    quality_file: str | os.PathLike[str] | None = None
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER
    report: ValidationReport | None = None
    quality_report: ValidationReport | None = None
    count: int = 0
    high_count: int = 0
    tokens: int = 0
    high_tokens: int = 0
    scanned: bool = False

    def scan(self, length: Callable[[Example], int] | None = None) -> CustomerData:
        self.report = ValidationReport(file=str(self.path))
        self.count = self.high_count = self.tokens = self.high_tokens = 0
        for example in read_examples(
            self.path, self.kind, skip_invalid=self.skip_invalid, report=self.report
        ):
            self._count(example, length)
        if self.kind is None:
            self.kind = self.report.kind
        if self.quality_file is not None:
            self._scan_quality(length)
        self.scanned = True
        return self

    def _scan_quality(self, length: Callable[[Example], int] | None) -> None:
        assert self.quality_file is not None
        self.quality_report = ValidationReport(file=str(self.quality_file))
        for example in read_examples(
            self.quality_file, self.kind, skip_invalid=self.skip_invalid, report=self.quality_report
        ):
            example.quality = True
            self._count(example, length)

    @classmethod
    def from_snapshot(
        cls, snapshot: DataSnapshot, *, quality_file: str | os.PathLike[str] | None = None
    ) -> CustomerData:
        """The user's file, counted by its snapshot (taken by `resolve()`) instead of a pre-scan of its own;
        only a separate `quality_file` is scanned here. Invalid lines fail as the pre-scan would."""
        snapshot.check()
        data = cls(snapshot.path, snapshot.kind or snapshot.report.kind, quality_file=quality_file)
        data.report = snapshot.report
        data.count, data.high_count = snapshot.examples, snapshot.high_quality
        if quality_file is not None:
            data._scan_quality(None)
        data.scanned = True
        return data

    def _count(self, example: Example, length: Callable[[Example], int] | None) -> None:
        tokens = length(example) if length else 0
        self.count += 1
        self.tokens += tokens
        if example.quality:
            self.high_count += 1
            self.high_tokens += tokens

    def _read(self, path: str | os.PathLike[str]) -> Iterator[Example]:
        return read_examples(
            path, self.kind, skip_invalid=self.skip_invalid, report=ValidationReport(str(path))
        )

    def examples(
        self, seed: int | str, epoch: int, which: Literal["all", "normal", "high"]
    ) -> Iterator[Example]:
        """One shuffled pass over all / normal-only / high-quality-only examples."""

        rng = random.Random(f"customer:{seed}:{which}:{epoch}")
        if which == "all" and self.quality_file is None:
            return buffered_shuffle(self._read(self.path), self.shuffle_buffer, rng)

        def generate() -> Iterator[Example]:
            if which in ("all", "normal", "high"):
                for example in self._read(self.path):
                    if which == "all" or example.quality == (which == "high"):
                        yield example
            if self.quality_file is not None and which in ("all", "high"):
                for example in self._read(self.quality_file):
                    example.quality = True
                    yield example

        return buffered_shuffle(generate(), self.shuffle_buffer, rng)


def example_from_row(row: dict[str, Any], kind: str, source: str, index: int) -> Example:
    """Validate a row of a general (or any in-memory) stream through the same format validators."""
    fmt = format_for_row(row, kind)
    problems = fmt.problems(row) if fmt else []
    if fmt is None or problems:
        what = problems[0].what if problems else f"row is not {kind} data"
        raise DataError(f"{source}:{index}: {what} — the general data stream is broken; please report it")
    example = fmt.to_example(row)
    example.source, example.file, example.line = source, source, index
    return example


def rows_source(
    name: str, rows: Callable[[int], Iterable[dict[str, Any]]], kind: str, size: int | None = None
) -> Source:
    """A `Source` from a callable `epoch -> rows` (dicts in any accepted format of `kind`)."""

    def open_pass(epoch: int) -> Iterator[Example]:
        for index, row in enumerate(rows(epoch), start=1):
            yield example_from_row(row, kind, f"general:{name}", index)

    return Source(name, open_pass, size=size)


def builtin_general_sources(categories: Iterable[str], kind: str, *, seed: int = 0) -> dict[str, Source]:
    """Sources for the embedded general data (`tunesmith.data.general.stream`), unlimited and seeded.
    `kind` is the stage's data kind: cpt -> "text" rows, sft -> "sft" rows, rft -> prompts with the general
    answer as `reference_answer` (RFT stages mix general prompts in to hold general skill: see
    `tunesmith.training.rft`)."""
    from tunesmith.data import general

    row_kind = GENERAL_ROW_KIND.get(kind)
    if row_kind is None:
        raise DataError(
            f"data_mixing: mixing is for CPT, SFT and RFT data, not {kind} — remove the data_mixing block"
        )
    unknown = sorted(set(categories) - set(general.CATEGORIES))
    if unknown:
        raise MixingRuleError(
            f"data_mixing.general.{unknown[0]}: unknown category — use one of {', '.join(general.CATEGORIES)}"
        )

    def rows(name: str, epoch: int) -> Iterator[dict[str, Any]]:
        for row in general.stream(name, row_kind, seed=seed + 1000 * epoch):
            yield as_rft_prompt(row) if kind == "rft" else row

    return {name: rows_source(name, lambda epoch, name=name: rows(name, epoch), kind) for name in categories}


def as_rft_prompt(row: dict[str, Any]) -> dict[str, Any]:
    """A demonstration -> an RFT prompt: the conversation before the answer, the answer as reference."""
    messages = row["messages"]
    return {"messages": messages[:-1], "reference_answer": messages[-1]["content"]}


def file_source(
    name: str,
    path: str | os.PathLike[str],
    kind: str | None,
    *,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    seed: int = 0,
) -> Source:
    """A finite general source from a user file (counted once, streamed, shuffled per pass)."""
    data = CustomerData(path, kind, shuffle_buffer=shuffle_buffer).scan()

    def open_pass(epoch: int) -> Iterator[Example]:
        for example in data.examples(f"{name}:{seed}", epoch, "all"):
            example.source = name
            yield example

    return Source(name, open_pass, size=data.count)


# ------------------------------------------------------------------------------------------- report


@dataclass
class SourceStats:
    name: str
    requested_percent: float
    target: float  # in the mix unit
    available: float | None  # per pass, in the mix unit; None = unlimited
    examples: int = 0
    tokens: int = 0
    passes: int = 0

    def amount(self, unit: str) -> int:
        return self.examples if unit == "examples" else self.tokens


@dataclass
class MixReport:
    """Requested vs realized composition of a mix (complete once the stream has been consumed)."""

    unit: str
    seed: int
    sampling: str
    quality_tail_percent: float
    sources: dict[str, SourceStats] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    tail_examples: int = 0
    high_quality_examples: int = 0
    complete: bool = False

    def total(self) -> int:
        return sum(stats.amount(self.unit) for stats in self.sources.values())

    def realized_percent(self, name: str) -> float:
        total = self.total()
        return 100.0 * self.sources[name].amount(self.unit) / total if total else 0.0

    def render_table(self) -> str:
        """Requested vs realized share per source (plus counts, passes, the quality tail and warnings)."""
        has_tokens = any(stats.tokens for stats in self.sources.values())
        lines = [f"mixture (unit: {self.unit}, seed {self.seed}, {self.sampling})"]
        lines.append(
            f"  {'source':<34}{'requested':>10}{'realized':>10}{'examples':>11}{'tokens':>12}{'passes':>8}"
        )
        for stats in self.sources.values():
            tokens = str(stats.tokens) if has_tokens else "-"
            lines.append(
                f"  {stats.name:<34}{stats.requested_percent:>9.2f}%{self.realized_percent(stats.name):>9.2f}%"
                f"{stats.examples:>11}{tokens:>12}{stats.passes:>8}"
            )
        total_examples = sum(stats.examples for stats in self.sources.values())
        total_tokens = str(sum(stats.tokens for stats in self.sources.values())) if has_tokens else "-"
        realized_total = 100.0 if self.total() else 0.0
        lines.append(
            f"  {'total':<34}{100:>9.2f}%{realized_total:>9.2f}%{total_examples:>11}{total_tokens:>12}"
        )
        if self.tail_examples:
            lines.append(
                f"  quality tail: {self.high_quality_examples} high-quality example(s) in the final "
                f"{self.tail_examples} customer slot(s) (~{self.quality_tail_percent:g}% of steps)"
            )
        if not self.complete:
            lines.append("  (stream not fully consumed: realized figures are partial)")
        lines.extend(f"  warning: {warning}" for warning in self.warnings)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "seed": self.seed,
            "sampling": self.sampling,
            "complete": self.complete,
            "quality_tail_percent": self.quality_tail_percent,
            "tail_examples": self.tail_examples,
            "high_quality_examples": self.high_quality_examples,
            "sources": {
                name: {
                    "requested_percent": round(stats.requested_percent, 4),
                    "realized_percent": round(self.realized_percent(name), 4),
                    "target": stats.target,
                    "available_per_pass": stats.available,
                    "examples": stats.examples,
                    "tokens": stats.tokens,
                    "passes": stats.passes,
                }
                for name, stats in self.sources.items()
            },
            "warnings": list(self.warnings),
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Store the report in a run (atomic JSON write)."""
        from tunesmith.runs import atomic_write_json

        return atomic_write_json(path, self.to_dict())


# ------------------------------------------------------------------------------------------- the mix


@dataclass(frozen=True)
class MixSpec:
    """The mixing knobs of a resolved `data_mixing` block (percents are 0-100). Every field is required:
    the values come from the recipe or the defaults table (`resolve()`), never from here."""

    customer_percent: float
    general: Mapping[str, float]
    unit: Unit
    sampling: Sampling
    max_general_repeats: int
    quality_tail_percent: float

    @classmethod
    def from_mixing(cls, mixing: Any) -> MixSpec:
        """From a resolved `data_mixing` block (`tunesmith.recipe.schema.ResolvedMixing`)."""
        return cls(
            customer_percent=mixing.customer_percent,
            general=dict(mixing.general),
            unit=mixing.unit,
            sampling=mixing.sampling,
            max_general_repeats=mixing.max_general_repeats,
            quality_tail_percent=mixing.quality_tail_percent,
        )


class Mixture:
    """An iterable of mixed `Example`s (deterministic for a seed; iterate again for the same order) and
    its `report` (filled in as the stream is consumed)."""

    def __init__(
        self,
        spec: MixSpec,
        targets: dict[str, int],
        customer: CustomerData | None,
        general: Mapping[str, Source],
        *,
        seed: int,
        length: Callable[[Example], int] | None,
        report: MixReport,
        customer_examples: int,
        tail_examples: int,
    ) -> None:
        self.spec, self.targets, self.customer, self.general = spec, targets, customer, general
        self.seed, self.length, self.report = seed, length, report
        self._customer_examples, self._tail_examples = customer_examples, tail_examples

    def __iter__(self) -> Iterator[Example]:
        report = self.report
        for stats in report.sources.values():
            stats.examples = stats.tokens = stats.passes = 0
        report.complete = False
        streams: dict[str, Iterator[Example]] = {}
        if CUSTOMER in self.targets:
            streams[CUSTOMER] = self._customer_stream()
        for name in self.targets:
            if name != CUSTOMER:
                streams[name] = self._passes(name, self.general[name].open)
        sources, length = report.sources, self.length
        if self.spec.unit == "tokens":
            assert length is not None
            # measure each example once: the interleave needs the length before the report does
            measured = {
                name: ((example, length(example)) for example in stream) for name, stream in streams.items()
            }
            pairs = weighted_interleave(measured, self.targets, seed=self.seed, amount=itemgetter(1))
            for name, (example, tokens) in pairs:
                example.source = name
                stats = sources[name]
                stats.examples += 1
                stats.tokens += tokens
                yield example
        else:
            for name, example in weighted_interleave(streams, self.targets, seed=self.seed):
                example.source = name
                stats = sources[name]
                stats.examples += 1
                if length is not None:
                    stats.tokens += length(example)
                yield example
        report.complete = True

    def _passes(
        self, name: str, open_pass: Callable[[int], Iterator[Example]], *, cycle: bool = True
    ) -> Iterator[Example]:
        """Pass after pass over a source (each pass freshly shuffled); one pass without repetition."""
        epoch = 0
        while True:
            self.report.sources[name].passes += 1
            produced = False
            for example in open_pass(epoch):
                produced = True
                yield example
            epoch += 1
            if not (produced and cycle and self.spec.sampling == "with_replacement"):
                return

    def _customer_stream(self) -> Iterator[Example]:
        customer = self.customer
        assert customer is not None
        seed = self.seed
        if not self.spec.quality_tail_percent or not customer.high_count:
            yield from self._passes(CUSTOMER, lambda epoch: customer.examples(seed, epoch, "all"))
            return
        # Quality tail: the last `tail` customer slots (the final X% of steps, since customer slots are
        # spread evenly) hold the high-quality examples, topped up with normal ones if there are fewer.
        normal = self._passes(CUSTOMER, lambda epoch: customer.examples(seed, epoch, "normal"))
        tail = self._tail_examples
        high_in_tail = min(customer.high_count, tail)
        fill = tail - high_in_tail
        yield from islice(normal, max(0, self._customer_examples - tail))
        high = customer.examples(seed, 0, "high")
        tail_streams = {"normal": normal, "high": high}
        for _, example in weighted_interleave(
            tail_streams, {"normal": fill, "high": high_in_tail}, seed=f"tail:{seed}"
        ):
            yield example
        yield from normal  # anything left (only when token targets need more)


def mix(
    customer: CustomerData | None,
    general: Mapping[str, Source],
    spec: MixSpec,
    *,
    seed: int = 0,
    total: int | None = None,
    length: Callable[[Example], int] | None = None,
    kind: str | None = None,
) -> Mixture:
    """Plan a mixture and return it (lazy: nothing but the customer pre-scan is read here).

    `total` is the size of the mix in `spec.unit` (examples or tokens); by default the customer data is
    used exactly once and the general data fills the rest (`customer_count * 100 / customer_percent`).
    `length(example) -> tokens` is required for `unit="tokens"` and adds a token column to the report.
    With `without_replacement`, a finite side that is too small shrinks the mix (warning); with
    `with_replacement` it is repeated (warning above `max_general_repeats` for general sources).
    """
    check_mixing_rules(spec.customer_percent, spec.general)
    if spec.unit == "tokens" and length is None:
        raise ValueError("unit='tokens' needs a length function (example -> number of tokens)")
    percents = requested_percents(spec.customer_percent, spec.general)
    missing = sorted(set(percents) - {CUSTOMER} - set(general))
    if missing:
        raise MixingRuleError(f"data_mixing.general.{missing[0]}: no data source for this category — add it")
    warnings: list[str] = []
    if CUSTOMER in percents:
        if customer is None:
            raise MixingRuleError(
                "data_mixing.customer_percent: is > 0 but no customer data was given — add it"
            )
        if not customer.scanned:
            customer.scan(length)
        kind = kind or customer.kind
    if kind == "sft" and spec.customer_percent < 100 and spec.general.get(SFT_GUARD_CATEGORY, 0) <= 0:
        warnings.append(
            f"SFT mix without '{SFT_GUARD_CATEGORY}': the managed service's guidance is to always include it "
            "to keep general instruction following ([nova-data-mixing])"
        )

    # What each source can give per pass, in the mix unit (None: unlimited).
    available: dict[str, float | None] = {}
    for name in percents:
        if name == CUSTOMER:
            assert customer is not None
            available[name] = customer.count if spec.unit == "examples" else customer.tokens
        else:
            source = general[name]
            available[name] = source.size if spec.unit == "examples" else source.tokens
            if spec.unit == "tokens" and source.size is not None and source.tokens is None:
                available[name] = None  # finite but of unknown token count: repeats counted as they happen

    if total is None:
        if CUSTOMER not in percents:
            raise MixingRuleError(
                "data_mixing.customer_percent: 0 (general data only) needs an explicit mix size — give a total "
                "(e.g. max_steps x global_batch_size examples)"
            )
        customer_amount = available[CUSTOMER]
        assert customer_amount is not None
        total = round(customer_amount * 100.0 / spec.customer_percent)
    targets = largest_remainder(total, percents)

    # The smaller side: repeat it (with_replacement) or shrink the whole mix (without_replacement).
    if spec.sampling == "without_replacement":
        limits = [
            available[name] * 100.0 / percents[name] for name in percents if available[name] is not None
        ]
        fitting = min([total, *[math.floor(limit + 1e-9) for limit in limits]])
        while fitting > 0:
            targets = largest_remainder(fitting, percents)
            if all(available[n] is None or targets[n] <= available[n] for n in targets):  # type: ignore[operator]
                break
            fitting -= 1
        if fitting < total:
            warnings.append(
                f"without_replacement: the mix shrank from {total} to {fitting} {spec.unit} because a source is "
                "too small; use sampling: with_replacement to repeat it instead"
            )
    for name, target in targets.items():
        if available[name] and target > available[name]:  # type: ignore[operator]
            repeats = target / available[name]  # type: ignore[operator]
            if name == CUSTOMER:
                warnings.append(
                    f"customer data repeats {repeats:.2f} times to fill its {percents[name]:g}% share"
                )
            elif repeats > spec.max_general_repeats:
                warnings.append(
                    f"general category '{name}' would repeat {repeats:.2f} times (more than max_general_repeats="
                    f"{spec.max_general_repeats}); add general data or lower its share"
                )

    # The quality tail, in customer examples.
    customer_examples = tail_examples = 0
    if CUSTOMER in targets:
        assert customer is not None
        if spec.unit == "examples":
            customer_examples = targets[CUSTOMER]
        else:
            mean_tokens = customer.tokens / customer.count if customer.count else 1.0
            customer_examples = round(targets[CUSTOMER] / mean_tokens)
        if spec.quality_tail_percent:
            tail_examples = round(customer_examples * spec.quality_tail_percent / 100.0)
            if not customer.high_count:
                warnings.append(
                    f"quality_tail_percent is {spec.quality_tail_percent:g} but no example is marked high quality "
                    '(add "quality": "high" to rows or set quality_file); the tail is not used'
                )
            elif customer.high_count > tail_examples:
                warnings.append(
                    f"{customer.high_count} high-quality examples do not fit the final {spec.quality_tail_percent:g}%"
                    f" ({tail_examples} customer slots); the tail starts earlier to hold them all"
                )
                tail_examples = min(customer.high_count, customer_examples)

    report = MixReport(
        unit=spec.unit,
        seed=seed,
        sampling=spec.sampling,
        quality_tail_percent=spec.quality_tail_percent,
        warnings=warnings,
        tail_examples=tail_examples if customer and customer.high_count else 0,
        high_quality_examples=min(customer.high_count, tail_examples) if customer else 0,
    )
    for name, target in targets.items():
        report.sources[name] = SourceStats(name, percents[name], target, available[name])
    return Mixture(
        spec,
        targets,
        customer,
        general,
        seed=seed,
        length=length,
        report=report,
        customer_examples=customer_examples,
        tail_examples=tail_examples,
    )
