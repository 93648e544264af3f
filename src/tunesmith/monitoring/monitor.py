"""`Monitor`: all detectors of one stage behind `observe` (one logged metrics row) and `observe_probe`,
returning events with actions.

Pure (no torch, no files): `tunesmith.training.monitor.MonitorCallback` feeds it from the trainer and
writes/prints the events; a sweep or an RFT loop can feed it the same way. The trainer's live logs and the
rows replayed from `metrics.jsonl` after a resume go through the same `observe`, so a resumed run's
detectors have seen the same streams as an uninterrupted run's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Literal

from tunesmith.monitoring.diagnosis import RunContext, causes_for
from tunesmith.monitoring.events import Detection, Event, strongest
from tunesmith.monitoring.policies import MonitorSettings
from tunesmith.monitoring.stats import is_finite, median


class Monitor:
    """Feeds every stream to its detectors and turns findings into events (diagnosis + policy action).

    `rollbacks_done` counts the rollbacks already spent: once it reaches `max_rollbacks`, a `rollback`
    policy becomes `stop`. `watch`: which curve the stage's rows carry — "loss" (CPT, SFT: training and
    validation loss) or "reward" (RFT: mean reward and KL; GRPO's loss is a policy-gradient surrogate near 0
    of either sign, not a curve the loss detectors understand, and its validation loss likewise).
    """

    def __init__(
        self,
        settings: MonitorSettings | None = None,
        context: RunContext | None = None,
        *,
        rollbacks_done: int = 0,
        attempt: int = 0,
        watch: Literal["loss", "reward"] = "loss",
    ) -> None:
        assert watch in ("loss", "reward"), watch
        self.watch = watch
        self.settings = settings or MonitorSettings.from_spec(None)
        self.context = context or RunContext()
        self.rollbacks_done = rollbacks_done
        self.attempt = attempt
        make = self.settings.make
        self.non_finite = make("non_finite")
        self.loss_spike = make("loss_spike")
        self.grad = make("grad_norm_explosion")
        self.divergence = make("divergence")
        self.overfitting = make("overfitting")
        self.plateau = make("plateau")
        self.forgetting = make("forgetting")
        self.collapse = make("collapse")
        self.kl_drift = make("kl_drift")
        self.reward_collapse = make("reward_collapse")
        self.reward_stuck_low = make("reward_stuck_low")
        self.reward_saturated = make("reward_saturated")
        self.kl_spike = make("kl_spike")
        self._recent_losses: list[float] = []
        self.events: list[Event] = []
        self.silent = False  # replaying history: detectors learn, no events

    # -- streams ------------------------------------------------------------------------------------------
    def observe(self, step: int, row: Mapping[str, Any]) -> list[Event]:
        """One logged metrics row — a training step's (`loss`, `grad_norm`; RFT: `reward`, `kl`) or a
        validation's (`eval_loss`) — as the trainer logs it live and as `metrics.jsonl` keeps it: the one
        entry for both, so live and replayed streams cannot drift apart."""
        events: list[Event] = []
        if self.watch == "reward":
            if "reward" in row:
                events += self.observe_step(step, None, row.get("grad_norm"))
                events += self.observe_rft(step, row["reward"], row.get("kl"))
            return events
        if "loss" in row:
            events += self.observe_step(step, row["loss"], row.get("grad_norm"))
        if "eval_loss" in row:
            events += self.observe_eval(step, row["eval_loss"])
        return events

    def observe_step(self, step: int, loss: float | None, grad_norm: float | None = None) -> list[Event]:
        """One optimizer step's training loss and (pre-clip) gradient norm."""
        findings: list[Detection | None] = [self.non_finite.update(step, loss=loss, grad_norm=grad_norm)]
        findings += self.loss_spike.update(step, loss)
        findings.append(self.grad.update(step, grad_norm))
        findings.append(self.divergence.update(step, loss))
        if is_finite(loss):
            self._recent_losses = (self._recent_losses + [loss])[-9:]
        return self._emit(findings)

    def observe_eval(self, step: int, eval_loss: float | None) -> list[Event]:
        """A validation loss (step 0: the starting point)."""
        train = median(self._recent_losses) if self._recent_losses else None
        findings = [self.overfitting.update(step, eval_loss, train), self.plateau.update(step, eval_loss)]
        return self._emit(findings)

    def observe_probe(self, step: int, accuracy: float | None = None, kl: float | None = None) -> list[Event]:
        """The forgetting probe: general accuracy (0-1) and KL(start || now) in nats per token."""
        return self._emit(
            [
                self.collapse.update(step, accuracy, kl),
                self.forgetting.update(step, accuracy),
                self.kl_drift.update(step, kl),
            ]
        )

    def observe_rft(self, step: int, reward: float | None = None, kl: float | None = None) -> list[Event]:
        """One RFT step's mean reward and KL to the reference policy."""
        return self._emit(
            [
                self.reward_collapse.update(step, reward),
                self.reward_stuck_low.update(step, reward),
                self.reward_saturated.update(step, reward),
                self.kl_spike.update(step, kl),
            ]
        )

    # -- policy -------------------------------------------------------------------------------------------
    def action_for(self, detector: str) -> str:
        policy = self.settings.policies.get(detector, "warn")
        if policy == "rollback" and self.rollbacks_done >= self.settings.max_rollbacks:
            return "stop"
        return policy

    def _emit(self, findings: list[Detection | None]) -> list[Event]:
        if self.silent or not self.settings.enabled:
            return []
        out: list[Event] = []
        for finding in findings:
            if finding is None:
                continue
            action = self.action_for(finding.detector)
            if action == "off":
                continue
            causes = causes_for(finding, self.context)
            event = Event.from_finding(
                finding,
                action,
                causes,
                stage=self.context.stage,
                attempt=self.attempt,  # type: ignore[arg-type]
            )
            if action == "stop" and self.settings.policies.get(finding.detector) == "rollback":
                event = replace(
                    event,
                    message=event.message
                    + f" (rollback limit {self.settings.max_rollbacks} reached: stopping instead)",
                )
            out.append(event)
        self.events += out
        return out

    def decision(self, events: list[Event]) -> Event | None:
        """The event that decides what happens now: the strongest stop/rollback, or None (warn only)."""
        top = strongest(events)
        return top if top is not None and top.action in ("stop", "rollback") else None

    # -- history ------------------------------------------------------------------------------------------
    def replay(self, rows: list[dict[str, Any]], probes: list[dict[str, Any]] | None = None) -> None:
        """Warm the detectors up on earlier metrics rows and probe results (after a resume or a rollback)
        without emitting: through `observe` and `observe_probe`, exactly as the live rows went."""
        self.silent = True
        try:
            merged = [(r["step"], 0, r) for r in rows] + [(p["step"], 1, p) for p in probes or []]
            for step, kind, row in sorted(merged, key=lambda t: (t[0], t[1])):
                if kind == 1:
                    self.observe_probe(step, row.get("general_accuracy"), row.get("kl"))
                else:
                    self.observe(step, row)
        finally:
            self.silent = False
