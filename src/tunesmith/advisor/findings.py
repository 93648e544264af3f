"""The `Finding` type: one rule's verdict on one place in a recipe.

A finding prints as one line (like a user error: what, where, how to fix): ``SEVERITY id: message — fix (source)``, where the
message carries the numbers involved and the source cites the reference the rule comes from, the way the
defaults table does (`tunesmith.recipe.defaults`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[str, ...] = ("error", "warning", "info")
"""Most severe first."""


@dataclass(frozen=True)
class Finding:
    """What a rule found: `rule` is the stable rule id, `where` the key path (e.g. `stages[1]`)."""

    rule: str
    severity: Severity
    message: str
    fix: str
    source: str
    where: str = ""

    def __str__(self) -> str:
        place = f"{self.where}: " if self.where else ""
        return f"{self.severity.upper()} {self.rule}: {place}{self.message} — {self.fix} ({self.source})"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def downgraded(self, reason: str) -> Finding:
        """The finding as `info`, because the recipe acknowledges it with a stated reason."""
        return replace(self, severity="info", message=f"{self.message} [acknowledged: {reason}]")


def has_errors(findings: list[Finding]) -> bool:
    """True when any finding is an error (`train` refuses to start unless `--force`)."""
    return any(f.severity == "error" for f in findings)


def exit_code(findings: list[Finding], *, strict: bool = False) -> int:
    """`lint`'s exit status: 1 on errors (or on warnings with `strict`), else 0."""
    failing = ("error", "warning") if strict else ("error",)
    return 1 if any(f.severity in failing for f in findings) else 0


def sort_key(finding: Finding) -> tuple[int, str, str]:
    return (SEVERITIES.index(finding.severity), finding.where, finding.rule)
