"""The run report of a real (short) tiny-family run, opened in the distribution's headless Chromium: it renders
with no console error, fetches nothing but itself, decodes every chart, and shows the forgetting table. A
full-page screenshot is kept in .cache/test-artifacts/report.png.

The SFT stage, its monitoring events and the evaluation are real; the RFT stage's records (metrics and the
readiness probe) are synthetic, written into the run's plan beside it: a real RFT stage takes about 5
minutes here (benchmarks/rft_acceptance.py) and the report reads the same files either way.

Chromium comes from Debian's `chromium` package, which scripts/test.sh installs; playwright drives it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tunesmith.cli import main

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
ARTIFACT = REPO / ".cache" / "test-artifacts" / "report.png"
EXPECTED_CHARTS = ("sft-training", "rft-training", "rft-reward", "rft-probe")


def _recipe(tmp_path: Path) -> Path:
    recipe = {
        "name": "report-e2e",
        "model": {"family": "tiny", "checkpoint": "post-trained"},
        "output_dir": str(tmp_path / "runs"),
        "stages": [
            {
                "technique": "sft",
                "mode": "lora",
                "data": {"train": "builtin:brindle/sft", "validation": "builtin:brindle/sft-validation"},
                "data_mixing": {"customer_percent": 50},
                # 5e-3 drops the general probe at step 10 on the tiny family: the monitor's events are real
                "hyperparameters": {"max_steps": 20, "val_check_interval": 10, "lr": 5e-3},
            }
        ],
        "evaluation": {"domain": "builtin:brindle/eval", "general_items_per_category": 10},
        "acknowledge": {"lr-deviates-while-mixing@sft": "a short e2e run"},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _add_synthetic_rft_stage(run: Path) -> None:
    plan = json.loads((run / "plan.json").read_text())
    plan["stages"].append({"name": "rft", "technique": "rft", "mode": "full", "numbers": {}, "formulas": {}})
    (run / "plan.json").write_text(json.dumps(plan))
    stage = run / "rft"
    stage.mkdir()
    rows = [{"step": s, "loss": 0.0, "lr": 1e-4, "reward": 0.4 + s / 100, "reward_std": 0.3, "kl": s / 2000}
            for s in range(1, 31)]  # fmt: skip
    rows += [{"step": s, "eval_reward": 0.4 + s / 90, "eval_kl": s / 1800} for s in (0, 10, 20, 30)]
    (stage / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    counts = [50, 0, 0, 0, 0, 90, 0, 0, 0, 244]
    probe = {"samples": 384, "positive_rate": 0.87, "verdict": "ready", "verdict_text": "ready for RFT",
             "advice": "run RFT", "settings": {"positive_threshold": 0.0},
             "histogram": [{"low": i / 10, "high": (i + 1) / 10, "count": c} for i, c in enumerate(counts)]}  # fmt: skip
    (stage / "probe.json").write_text(json.dumps(probe))
    (stage / "result.json").write_text(json.dumps({"steps": 30, "planned_steps": 30}))


def test_report_renders_in_headless_chromium(tiny_family, tmp_path, capsys) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing — run scripts/test.sh, which installs Debian's chromium package")
    assert main(["train", str(_recipe(tmp_path)), "--quiet"]) == 0
    run = tmp_path / "runs" / "report-e2e"
    report = run / "report" / "report.html"
    assert f"report: {report}" in capsys.readouterr().out  # train wrote it at the end
    assert json.loads((run / "sft" / "result.json").read_text())["events"]["total"] >= 1
    _add_synthetic_rft_stage(run)
    assert main(["report", str(run)]) == 0
    assert capsys.readouterr().out == f"report: {report}\n"

    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh user-data-dir
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
        )
        try:
            page = context.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(report.as_uri(), wait_until="load")
            decoded = page.evaluate(
                "names => names.map(n => { const img = document.getElementById('chart-' + n);"
                " return img ? [img.complete, img.naturalWidth, img.naturalHeight] : null; })",
                list(EXPECTED_CHARTS),
            )
            forgetting_rows = page.locator("#forgetting-0 tbody tr").count()
            page.locator("#forgetting-0").scroll_into_view_if_needed()
            assert page.locator("#forgetting-0").is_visible()
            ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACT), full_page=True)
        finally:
            context.close()
    print(f"screenshot: {ARTIFACT}")
    assert errors == []
    assert [u for u in requests if not u.startswith(("file://", "data:"))] == []
    for name, state in zip(EXPECTED_CHARTS, decoded, strict=True):
        assert state is not None, f"chart {name} is missing"
        complete, width, height = state
        assert complete and width >= 800 and height >= 300, (name, state)
        assert (run / "report" / f"{name}.png").stat().st_size > 10_000
    assert forgetting_rows >= 6  # 5 general categories + overall (+ the domain's rows)
    assert ARTIFACT.stat().st_size > 50_000
