"""The report's charts: matplotlib figures rendered off-screen (the Agg canvas, no pyplot state) to PNG bytes.

matplotlib is imported only when a chart is drawn (it costs about a second). Each function takes plain
records and returns PNG bytes, or None when the record holds nothing to plot."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from tunesmith.monitoring.events import ACTION_RANK
from tunesmith.reporting.records import StageRecord, is_number

EVENT_COLORS = {"warn": "#d97706", "stop": "#dc2626", "rollback": "#7c3aed"}
"""Monitoring events drawn as vertical lines, by action (the same colors as the report's event table)."""

DPI = 100


def _figure(panels: int, height: float = 2.6) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 0.6 + height * panels), dpi=DPI, layout="constrained")
    axes = figure.subplots(panels, 1, sharex=True, squeeze=False)[:, 0]
    for ax in axes:
        ax.grid(True, alpha=0.3)
    return figure, list(axes)


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _series(rows: Sequence[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of the rows holding a finite `key`."""
    points = [(int(r["step"]), float(r[key])) for r in rows if is_number(r.get(key))]
    return [p[0] for p in points], [p[1] for p in points]


def event_marks(events: Sequence[dict[str, Any]]) -> list[tuple[int, str, str]]:
    """(step, strongest action, label) per step with monitoring events: the label names the detectors that
    fired there, in order (a rollback outranks a stop, a stop a warning: `monitoring.events.ACTION_RANK`)."""
    by_step: dict[int, list[dict[str, Any]]] = {}
    for event in events:
        by_step.setdefault(int(event["step"]), []).append(event)
    marks = []
    for step, fired in sorted(by_step.items()):
        action = max((str(e["action"]) for e in fired), key=lambda a: ACTION_RANK.get(a, -1))
        detectors = dict.fromkeys(str(e["detector"]).replace("_", " ") for e in fired)
        marks.append((step, action, f"{', '.join(detectors)} ({action})"))
    return marks


def _mark_events(axes: list[Any], events: Sequence[dict[str, Any]]) -> None:
    """A dashed vertical line per `event_marks` entry on every panel, labelled on the top panel."""
    for step, action, label in event_marks(events):
        color = EVENT_COLORS.get(action, "#6b7280")
        for ax in axes:
            ax.axvline(step, color=color, linestyle="--", linewidth=1.0, alpha=0.8)
        axes[0].annotate(label, xy=(step, 0.98), xycoords=("data", "axes fraction"), rotation=90, va="top",
                         ha="right", fontsize=7, color=color)  # fmt: skip


def training_chart(stage: StageRecord) -> bytes | None:
    """Training loss and validation loss (and token accuracy), the LR (planned schedule and logged), the
    general-probe accuracy when the monitor probed it; monitoring events marked on every panel."""
    loss_steps, loss = _series(stage.metrics, "loss")
    val_steps, val = _series(stage.metrics, "eval_loss")
    if not loss and not val:
        return None
    probe_steps, probe = _series(stage.probes, "general_accuracy")
    figure, axes = _figure(3 if probe else 2)
    ax = axes[0]
    if loss:
        ax.plot(loss_steps, loss, color="#2563eb", linewidth=1.2, label="training loss")
    if val:
        ax.plot(val_steps, val, "o-", color="#16a34a", markersize=4, label="validation loss")
    positive = [v for v in loss + val if v > 0]
    if positive and max(positive) / min(positive) > 30 and len(positive) == len(loss + val):
        ax.set_yscale("log")
    ax.set_ylabel("loss")
    ax.set_title(f"stage {stage.name} ({stage.technique}, {stage.mode})", fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    ax = axes[1]
    planned_steps, planned = _series(stage.schedule, "lr")
    lr_steps, lr = _series(stage.metrics, "lr")
    if planned:  # schedule.jsonl's step s is the LR of the update that ends at step s + 1 (as logged)
        ax.plot([s + 1 for s in planned_steps], planned, color="#9ca3af", linewidth=2.5, label="planned LR")
    if lr:
        ax.plot(lr_steps, lr, color="#111827", linewidth=1.0, label="logged LR")
    ax.set_ylabel("learning rate")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    if planned or lr:
        ax.legend(loc="upper right", fontsize=8)
    if probe:
        ax = axes[2]
        ax.plot(probe_steps, [100 * p for p in probe], "s-", color="#db2777", markersize=4)
        ax.set_ylabel("general probe %")
    axes[-1].set_xlabel("optimizer step")
    _mark_events(axes, stage.events)
    return _png(figure)


def rft_chart(stage: StageRecord) -> bytes | None:
    """RFT: mean training reward (with its spread) and validation reward; KL to the reference policy."""
    steps, reward = _series(stage.metrics, "reward")
    val_steps, val = _series(stage.metrics, "eval_reward")
    if not reward and not val:
        return None
    figure, axes = _figure(2)
    ax = axes[0]
    if reward:
        ax.plot(steps, reward, color="#2563eb", linewidth=1.2, label="training reward (mean of the groups)")
        std = dict(zip(*_series(stage.metrics, "reward_std"), strict=True))
        if std:
            ax.fill_between(
                steps,
                [r - std.get(s, 0.0) for s, r in zip(steps, reward, strict=True)],
                [r + std.get(s, 0.0) for s, r in zip(steps, reward, strict=True)],
                color="#2563eb",
                alpha=0.12,
                label="± reward std",
            )
    if val:
        ax.plot(val_steps, val, "o-", color="#16a34a", markersize=4, label="validation reward")
    ax.set_ylabel("reward")
    ax.set_title(f"stage {stage.name}: reward and KL", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax = axes[1]
    for key, style, label in (("kl", "-", "KL (training)"), ("eval_kl", "o-", "KL (validation)")):
        kl_steps, kl = _series(stage.metrics, key)
        if kl:
            ax.plot(kl_steps, kl, style, markersize=4, label=label)
    ax.set_ylabel("KL to the reference")
    ax.legend(loc="upper left", fontsize=8)
    axes[-1].set_xlabel("optimizer step")
    _mark_events(axes, stage.events)
    return _png(figure)


def probe_chart(readiness: dict[str, Any]) -> bytes | None:
    """The readiness probe's reward distribution (probe.json's histogram) and its positive threshold."""
    bins = [
        b
        for b in readiness.get("histogram") or []
        if all(is_number(b.get(k)) for k in ("low", "high", "count"))
    ]
    if not bins:
        return None
    figure, (ax,) = _figure(1, height=3.0)
    ax.bar(
        [b["low"] for b in bins],
        [b["count"] for b in bins],
        width=[b["high"] - b["low"] for b in bins],
        align="edge",
        color="#2563eb",
        edgecolor="white",
    )
    threshold = (readiness.get("settings") or {}).get("positive_threshold")
    if is_number(threshold):
        ax.axvline(threshold, color="#dc2626", linestyle="--", label=f"positive above {threshold:g}")
        ax.legend(fontsize=8)
    rate = readiness.get("positive_rate")
    ax.set_title(
        f"readiness probe: {readiness.get('samples', '?')} samples"
        + (f", {100 * rate:.1f}% positive" if is_number(rate) else ""),
        fontsize=10,
    )
    ax.set_xlabel("reward")
    ax.set_ylabel("samples")
    return _png(figure)


def pareto_chart(
    points: dict[int, tuple[float, float]], front: Sequence[int], recommended: int | None
) -> bytes | None:
    """Domain gain (x) vs general retention (y) of each completed trial; the front joined and highlighted,
    the recommended trial starred."""
    if not points:
        return None
    figure, (ax,) = _figure(1, height=4.4)
    others = [n for n in points if n not in front]
    ax.scatter([points[n][0] for n in others], [points[n][1] for n in others], color="#9ca3af",
               label="trial", zorder=2)  # fmt: skip
    on_front = sorted((points[n] for n in front if n in points), key=lambda p: p[0])
    if on_front:
        ax.plot([p[0] for p in on_front], [p[1] for p in on_front], "o-", color="#2563eb", zorder=3,
                label="Pareto front")  # fmt: skip
    if recommended is not None and recommended in points:
        x, y = points[recommended]
        ax.scatter([x], [y], marker="*", s=320, color="#f59e0b", edgecolor="black", zorder=4,
                   label=f"recommended (trial {recommended})")  # fmt: skip
    for number, (x, y) in points.items():
        ax.annotate(str(number), (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.set_xlabel("domain gain (points)")
    ax.set_ylabel("general retention (%)")
    ax.set_title("sweep: domain gain vs general retention", fontsize=10)
    ax.legend(fontsize=8)
    return _png(figure)
