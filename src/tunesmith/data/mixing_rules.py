"""The data-mixing rules of the managed service's SDK (`validate_data_mixing_config`, [nova-forge-sdk]),
written once: the recipe schema and the mixer both call `mixing_rule_violations`.

Pure: plain numbers in, `(key, message)` pairs out; callers add their own location prefix.
"""

from __future__ import annotations

from collections.abc import Mapping

#: the SDK's tolerance on the sum of the general shares ([nova-forge-sdk])
SUM_TOLERANCE = 0.01


def mixing_rule_violations(
    customer_percent: float | None, general: Mapping[str, float] | None
) -> list[tuple[str, str]]:
    """Broken rules as `(key, "what — fix")`, `key` relative to the `data_mixing` block; empty when valid.

    `customer_percent` None means "not set yet" (the defaults fill it): the general shares are then checked
    as the shares of a general portion."""
    general = dict(general or {})
    found: list[tuple[str, str]] = []
    if customer_percent is not None and not 0 <= customer_percent <= 100:
        found.append(
            ("customer_percent", f"{customer_percent} is outside 0-100 — use a percent of the overall mix")
        )
    for name, value in general.items():
        if not 0 <= value <= 100:
            found.append(
                (f"general.{name}", f"{value} is outside 0-100 — use a percent of the general portion")
            )
    total = sum(general.values())
    if customer_percent is not None and customer_percent >= 100:
        if abs(total) > SUM_TOLERANCE:
            found.append(
                (
                    "general",
                    "customer_percent is 100 (your data only), so the general shares must be empty or all 0; "
                    f"they sum to {total:g} — remove the general block or set every category to 0",
                )
            )
    elif not general or abs(total) <= SUM_TOLERANCE:
        shown = "unset" if customer_percent is None else f"{customer_percent:g}"
        found.append(
            (
                "general",
                f"general shares are all 0 but customer_percent is {shown} (< 100): no general category has a "
                "share — name at least one category (shares of the general portion summing to 100)",
            )
        )
    elif abs(total - 100) > SUM_TOLERANCE:
        found.append(
            (
                "general",
                f"the shares sum to {total:g}, not 100 — general shares must sum to 100 (they are shares of the "
                "general portion; tolerance 0.01)",
            )
        )
    return found
