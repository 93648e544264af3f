"""What a detector reports (`Detection`) and what the monitor records (`Event`: finding + diagnosis + action).

Events are plain data: `Event.to_json()` is one line of `events.jsonl` in the stage folder.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Action = Literal["warn", "stop", "rollback"]
Policy = Literal["warn", "stop", "rollback", "off"]
ACTION_RANK: dict[str, int] = {"warn": 0, "stop": 1, "rollback": 2}
"""Several events at one step: the strongest action wins (rollback > stop > warn)."""


@dataclass(frozen=True)
class Detection:
    """A detector fired: at `step`, the stream value `value` crossed `threshold`.

    `onset_step` is the detector's estimate of the last healthy step (where a rollback should return to);
    `details` holds the numbers behind the decision (window median, robust z, ...).
    """

    detector: str
    step: int
    message: str
    value: float | None = None
    threshold: float | None = None
    onset_step: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    """A finding with the policy's action and the likely causes, in the order a practitioner checks them."""

    detector: str
    step: int
    action: Action
    message: str
    causes: tuple[str, ...]
    value: float | None = None
    threshold: float | None = None
    onset_step: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    stage: str | None = None
    attempt: int = 0  # 0 = the first try; +1 after each rollback

    @classmethod
    def from_finding(
        cls, finding: Detection, action: Action, causes: list[str] | tuple[str, ...], **extra: Any
    ) -> Event:
        return cls(
            detector=finding.detector,
            step=finding.step,
            action=action,
            message=finding.message,
            causes=tuple(causes),
            value=finding.value,
            threshold=finding.threshold,
            onset_step=finding.onset_step,
            details=dict(finding.details),
            **extra,
        )

    def to_json(self) -> dict[str, Any]:
        row = asdict(self)
        row["causes"] = list(self.causes)
        return row

    def render(self) -> str:
        """The line printed as it happens: what, where, action, then the numbered likely causes."""
        head = f"[{self.action.upper()}] {self.stage + ': ' if self.stage else ''}step {self.step}: "
        head += f"{self.detector.replace('_', ' ')}: {self.message}"
        causes = "".join(f"\n    {i}. {cause}" for i, cause in enumerate(self.causes, 1))
        return head + ("\n  likely causes, most likely first:" + causes if causes else "")


def strongest(events: list[Event]) -> Event | None:
    """The event whose action is strongest (the first one on ties), or None."""
    best: Event | None = None
    for event in events:
        if best is None or ACTION_RANK[event.action] > ACTION_RANK[best.action]:
            best = event
    return best


def summarize(events: list[Event] | list[dict[str, Any]]) -> dict[str, Any]:
    """Counts by detector and action, the first step each detector fired, and the decisive event."""
    rows = [e.to_json() if isinstance(e, Event) else e for e in events]
    by_detector: dict[str, dict[str, Any]] = {}
    by_action = {"warn": 0, "stop": 0, "rollback": 0}
    for row in rows:
        entry = by_detector.setdefault(
            row["detector"], {"count": 0, "first_step": row["step"], "actions": {}}
        )
        entry["count"] += 1
        entry["first_step"] = min(entry["first_step"], row["step"])
        entry["actions"][row["action"]] = entry["actions"].get(row["action"], 0) + 1
        by_action[row["action"]] = by_action.get(row["action"], 0) + 1
    decisive = [r for r in rows if r["action"] in ("stop", "rollback")]
    return {
        "total": len(rows),
        "by_action": by_action,
        "by_detector": by_detector,
        "first_intervention": (
            {k: decisive[0][k] for k in ("detector", "step", "action", "message")} if decisive else None
        ),
    }
