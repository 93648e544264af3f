"""Every source the package cites is a key of docs/references.md, and nothing points outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tunesmith import references
from tunesmith.advisor.rules import RULES
from tunesmith.cli import main
from tunesmith.monitoring.policies import DEFAULT_POLICIES, MAX_ROLLBACKS_SOURCE, ROLLBACK_LR_SCALE_SOURCE
from tunesmith.recipe import defaults as table

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted((ROOT / "src" / "tunesmith").rglob("*.py"))
OUTSIDE = re.compile(
    r"\.\./shared|reference/|managed-service-facts|papers\.md|tiny-feasibility\.md|seed-article|BLOG-HPO"
    r"|DESIGN\.md|CONVENTIONS\.md|style-anchors"
)


def _cited(text: str) -> set[str]:
    return set(references.CITATION.findall(text))


def test_every_cited_key_is_in_docs_references() -> None:
    known = references.entries()
    assert len(known) >= 30
    cited: dict[str, list[str]] = {}
    for path in [*SOURCES, ROOT / "README.md", ROOT / "benchmarks" / "RESULTS.md"]:
        for key in _cited(path.read_text()):
            cited.setdefault(key, []).append(path.name)
    assert len(cited) >= 25, sorted(cited)
    missing = {key: files for key, files in cited.items() if key not in known}
    assert not missing, f"cited but not in docs/references.md: {missing}"


def test_the_package_ships_the_same_bibliography_as_docs() -> None:
    assert references.text() == (ROOT / "docs" / "references.md").read_text()


def test_nothing_points_outside_the_repository() -> None:
    for path in [*SOURCES, ROOT / "README.md", *sorted((ROOT / "recipes").glob("*.yaml"))]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert not OUTSIDE.search(line), f"{path.relative_to(ROOT)}:{number}: {line.strip()}"


@pytest.mark.parametrize(
    "entry", table.DEFAULTS, ids=lambda e: f"{e.key}|{e.size_class}|{e.technique}|{e.mode}"
)
def test_every_default_cites_a_reference(entry: table.Default) -> None:
    assert _cited(entry.source), entry.source


def test_detector_policies_and_lint_rules_cite_references() -> None:
    for name, policy in DEFAULT_POLICIES.items():
        assert _cited(policy.source), name
    assert _cited(MAX_ROLLBACKS_SOURCE) and _cited(ROLLBACK_LR_SCALE_SOURCE)
    for rule_id, registered in RULES.items():
        assert _cited(registered.check.__doc__ or ""), rule_id


def test_citation_pattern_ignores_code_brackets() -> None:
    assert _cited('x = y  # type: ignore[arg-type]; re.compile(r"[a-z0-9]"); stages[0]') == set()
    assert _cited("(BLOG, [nova-hpo-blog]; [dapo-2025])") == {"nova-hpo-blog", "dapo-2025"}


def test_references_command(capsys) -> None:
    assert main(["references", "dapo-2025"]) == 0
    assert "arXiv:2503.14476" in capsys.readouterr().out
    assert main(["references", "dapo-2024"]) == 2
    assert "did you mean 'dapo-2025'" in capsys.readouterr().err
