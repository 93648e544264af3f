"""The run report from small synthetic run and sweep folders: sections only where the run has the data,
charts embedded and saved, user strings escaped, nothing that reaches the network, one-line errors for a
damaged record; and `tunesmith train` writing the report at the end of a real (micro) run."""

from __future__ import annotations

import base64
import json
import re
import struct
from pathlib import Path

import pytest

from tunesmith.cli import main
from tunesmith.reporting import write_report
from tunesmith.reporting.charts import event_marks

NAUGHTY = '<script>alert("x")</script>&'


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _json(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))


def _plan(name: str, stages: list[tuple[str, str]]) -> dict:
    return {
        "recipe": {
            "name": name,
            "model": {"family": "tiny", "checkpoint": "post-trained"},
            "stages": [{"name": s, "technique": t, "hyperparameters": {"lr": 0.005}} for s, t in stages],
        },
        "provenance": {
            "name": {"origin": "user", "detail": ""},
            "stages[0].hyperparameters.lr": {
                "origin": "default",
                "detail": "the tiny LR ([tiny-feasibility])",
            },
        },
        "stages": [
            {
                "name": s,
                "technique": t,
                "mode": "lora",
                "numbers": {"total_steps": 20, "lr_phases": {"step 0": 0.0}},
                "formulas": {"total_steps": "max_steps"},
            }
            for s, t in stages
        ],  # fmt: skip
        "size_class": "tiny",
        "source": "recipe.yaml",
    }


def _sft_stage(folder: Path, events: list[dict]) -> None:
    rows = [{"step": 0, "eval_loss": 5.0, "elapsed_seconds": 1.0}]
    rows += [
        {"step": s, "loss": 8.0 / s, "lr": 0.005 * min(1, s / 3), "elapsed_seconds": s} for s in range(1, 21)
    ]
    rows += [{"step": s, "eval_loss": 4.0 / s, "eval_mean_token_accuracy": 0.5} for s in (10, 20)]
    _jsonl(folder / "metrics.jsonl", rows)
    _jsonl(folder / "schedule.jsonl", [{"step": s, "lr": 0.005 * min(1, (s + 1) / 3)} for s in range(21)])
    _jsonl(folder / "events.jsonl", events)
    _jsonl(folder / "probes.jsonl", [{"step": s, "general_accuracy": a, "kl": 0.1} for s, a in ((0, 0.9), (10, 0.7), (20, 0.8))])  # fmt: skip
    _json(
        folder / "data" / "mix.json",
        {"complete": True, "warnings": ["customer data repeats 2 times"],
         "sources": {"customer": {"requested_percent": 50.0, "realized_percent": 50.0, "examples": 640, "passes": 2},
                     "math": {"requested_percent": 50.0, "realized_percent": 50.0, "examples": 640, "passes": 1}}},
    )  # fmt: skip
    _json(
        folder / "result.json", {"steps": 20, "planned_steps": 20, "best": {"step": 20, "selected_by": "x"}}
    )


def _rft_stage(folder: Path) -> None:
    rows = [{"step": s, "loss": 0.0, "lr": 1e-4, "reward": 0.3 + s / 100, "reward_std": 0.2, "kl": s / 1000}
            for s in range(1, 21)]  # fmt: skip
    rows += [{"step": s, "eval_reward": 0.3 + s / 80, "eval_kl": s / 900} for s in (0, 10, 20)]
    _jsonl(folder / "metrics.jsonl", rows)
    histogram = [
        {"low": i / 10, "high": (i + 1) / 10, "count": c}
        for i, c in enumerate([40, 0, 0, 0, 0, 30, 0, 0, 0, 58])
    ]
    _json(
        folder / "probe.json",
        {"samples": 128, "positive_rate": 0.69, "histogram": histogram, "settings": {"positive_threshold": 0.0},
         "verdict": "ready", "verdict_text": "ready for RFT", "advice": "go ahead"},
    )  # fmt: skip
    _json(folder / "result.json", {"steps": 20, "planned_steps": 20})


def _evaluation() -> dict:
    def row(suite, category, before, after, low, high, direction):
        return {"suite": suite, "category": category, "metric": "exact_match", "items": 60, "before": before,
                "after": after, "change": after - before, "retention": after / before if before else None,
                "ci_low": low, "ci_high": high, "significant": direction != "same", "direction": direction}  # fmt: skip

    rows = [
        row("general", "math", 0.95, 0.80, -0.25, -0.05, "drop"),
        row("general", "knowledge", 0.90, 0.90, -0.05, 0.05, "same"),
        row("general", "overall", 0.925, 0.85, -0.12, -0.03, "drop"),
        row("domain", "brindle", 0.0, 0.85, 0.8, 0.9, "gain"),
        {**row("domain", "brindle", 0.0, 0.9, 0.8, 0.95, "gain"), "metric": "token_f1"},
    ]
    verdict = f"general retained 92% — significant regression {NAUGHTY}"
    return {"verdict": verdict, "checkpoints": [], "comparisons": [{"before": "start", "after": "run/rft", "verdict": verdict, "rows": rows}]}  # fmt: skip


def make_run(root: Path, *, name: str = "demo", rft: bool = True, evaluation: bool = True) -> Path:
    stages = [("sft", "sft")] + ([("rft", "rft")] if rft else [])
    _json(root / "plan.json", _plan(name, stages))
    events = [
        {"detector": "forgetting", "step": 10, "action": "warn", "message": f"dropped {NAUGHTY}"},
        {"detector": "kl_drift", "step": 10, "action": "rollback", "message": "KL"},
    ]
    _sft_stage(root / "sft", events)
    if rft:
        _rft_stage(root / "rft")
    if evaluation:
        _json(root / "eval" / "evaluation.json", _evaluation())
    return root


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def _embedded(html: str) -> dict[str, bytes]:
    return {
        m.group(1): base64.b64decode(m.group(2))
        for m in re.finditer(r'<img id="chart-([^"]+)"[^>]*src="data:image/png;base64,([^"]+)"', html)
    }


def test_run_report_has_each_section_and_chart_embedded_and_saved(tmp_path) -> None:
    run = make_run(tmp_path / "run")
    path = write_report(run)
    assert path == run / "report" / "report.html"
    html = path.read_text()
    images = _embedded(html)
    assert sorted(images) == ["rft-probe", "rft-reward", "rft-training", "sft-training"]
    for name, data in images.items():
        assert (run / "report" / f"{name}.png").read_bytes() == data  # the same chart, saved beside it
        width, height = _png_size(data)
        assert width >= 800 and height >= 300
    for ident in ("summary", "recipe", "stage-0", "stage-1", "mix", "events-0", "forgetting-0"):
        assert f'id="{ident}"' in html, ident
    # the forgetting table: general rows and the domain's primary metric only, drops marked
    table = html[html.index('id="forgetting-0"') :]
    table = table[: table.index("</table>")]
    assert table.count("<tr") == 1 + 4 and "token_f1" not in table
    assert '<tr class="drop"><td>general</td><td>math</td>' in table and "[-25.0, -5.0]" in table
    assert "realized %" in html and "customer data repeats 2 times" in html  # the data mix
    assert "the tiny LR ([tiny-feasibility])" in html and "origin-default" in html  # provenance
    assert "ready for RFT" in html  # the probe's verdict


def test_user_strings_are_escaped_and_nothing_reaches_the_network(tmp_path) -> None:
    html = write_report(make_run(tmp_path / "run", name=NAUGHTY)).read_text()
    assert "<script" not in html and NAUGHTY not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in html
    assert "<link" not in html and "@import" not in html and "url(" not in html
    assert re.findall(r'(?:src|href)="(?!data:image/png;base64,)', html) == []
    assert "default-src 'none'" in html  # the page's policy forbids any fetch


def test_sections_appear_only_with_their_data(tmp_path) -> None:
    run = make_run(tmp_path / "run", rft=False, evaluation=False)
    for name in ("events.jsonl", "probes.jsonl", "result.json"):
        (run / "sft" / name).unlink()
    html = write_report(run).read_text()
    assert sorted(_embedded(html)) == ["sft-training"]
    assert 'id="forgetting' not in html and 'id="events-0"' not in html and "readiness probe" not in html
    assert "interrupted or still running (last logged step 20)" in html


def test_event_marks_one_line_per_step_with_the_strongest_action() -> None:
    events = [
        {"detector": "forgetting", "step": 10, "action": "warn"},
        {"detector": "kl_drift", "step": 10, "action": "rollback"},
        {"detector": "forgetting", "step": 10, "action": "warn"},
        {"detector": "loss_spike", "step": 3, "action": "stop"},
    ]
    assert event_marks(events) == [
        (3, "stop", "loss spike (stop)"),
        (10, "rollback", "forgetting, kl drift (rollback)"),
    ]


def test_a_second_report_replaces_the_first_whole(tmp_path) -> None:
    run = make_run(tmp_path / "run")
    write_report(run)
    (run / "rft" / "probe.json").unlink()
    write_report(run)
    assert not (run / "report" / "rft-probe.png").exists()
    assert not [p for p in run.iterdir() if p.name.startswith(".report")]  # no temp folder left


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda run: (run / "sft" / "metrics.jsonl").open("a").write("{not json\n"), "metrics.jsonl:24: damaged line"),
        (lambda run: _jsonl(run / "sft" / "metrics.jsonl", [{"step": 1, "loss": "high"}]), "metrics.jsonl: step 1: loss = 'high' is not a number"),
        (lambda run: (run / "eval" / "evaluation.json").write_text("{"), "evaluation.json: damaged"),
        (lambda run: (run / "plan.json").write_text("[]"), "plan.json: not a run plan"),
    ],
)  # fmt: skip
def test_a_damaged_record_is_one_line_naming_the_file(tmp_path, capsys, damage, expected) -> None:
    run = make_run(tmp_path / "run")
    damage(run)
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err and "tunesmith report" in err, err


def test_not_a_run_folder(tmp_path, capsys) -> None:
    assert main(["report", str(tmp_path)]) == 2
    assert "not a run folder (no plan.json) nor a sweep folder" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "no such folder" in capsys.readouterr().err


TRIALS = """trial,state,config,domain_gain_points,domain_score,general_retention_percent,general_score,significant_regression,pruned_stage,pruned_step,pruned_by,steps,planned_steps,tokens,train_seconds,eval_seconds,run_dir
0,COMPLETE,customer_percent=50 lr=0.01,40.0,40.0,99.0,90.0,False,,,,8,8,100,7.0,1.0,a
1,COMPLETE,customer_percent=25 lr=0.01,50.0,50.0,95.0,86.0,True,,,,8,8,100,7.0,1.0,b
2,COMPLETE,customer_percent=75 lr=0.01,30.0,30.0,97.0,88.0,False,,,,8,8,100,7.0,1.0,c
3,PRUNED,customer_percent=25 lr=<b>,,,,,,sft,2,successive halving,2,8,50,2.0,0.0,d
"""


def _sweep(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "trials.csv").write_text(TRIALS)
    front = [{"trial": n} for n in (0, 1)]
    best = {"trial": 0, "domain_gain_points": 40.0, "general_retention_percent": 99.0, "verdict": "ok"}
    _json(folder / "sweep.json", {"rule": "the highest domain gain ...", "pareto_front": front, "recommended": best,
                                  "compute": {"steps": 26, "tokens": 350, "train_seconds": 23.0, "eval_seconds": 3.0}})  # fmt: skip
    return folder


def test_sweep_report_pareto_plot_and_trial_table(tmp_path, capsys) -> None:
    sweep = _sweep(tmp_path / "sweep")
    assert main(["report", str(sweep)]) == 0
    assert capsys.readouterr().out == f"report: {sweep / 'report' / 'report.html'}\n"
    html = (sweep / "report" / "report.html").read_text()
    assert list(_embedded(html)) == ["pareto"] and (sweep / "report" / "pareto.png").exists()
    table = html[html.index('id="trials"') : html.index("</table>", html.index('id="trials"'))]
    assert table.count("<tr") == 1 + 4
    assert '<tr class="highlight"><td class="num">0</td>' in table and "recommended" in table
    assert '<tr class="gain"><td class="num">1</td>' in table  # on the front, not recommended
    assert "lr=&lt;b&gt;" in table
    assert "recommended: trial 0: domain +40.0 points" in html


def test_damaged_trials_csv_names_the_line(tmp_path, capsys) -> None:
    sweep = _sweep(tmp_path / "sweep")
    (sweep / "trials.csv").write_text(TRIALS.replace("40.0,40.0,99.0", "forty,40.0,99.0"))
    assert main(["report", str(sweep)]) == 2
    assert "trials.csv:2: damaged row" in capsys.readouterr().err


STOP_AT_THE_FIRST_PROBE = {"policies": {"kl_drift": "stop"}, "thresholds": {"kl_drift": {"max_kl": 1e-9}}}


@pytest.mark.parametrize(
    ("monitoring", "code", "status"),
    [(None, 0, "finished"), (STOP_AT_THE_FIRST_PROBE, 3, "stopped by the monitor at step 2")],
)
def test_train_ends_with_the_report(tmp_path, micro_model_dir, capsys, monitoring, code, status) -> None:
    import yaml

    rows = [{"messages": [{"role": "user", "content": f"zq {i}?"}, {"role": "assistant", "content": str(i % 7)}]}
            for i in range(40)]  # fmt: skip
    _jsonl(tmp_path / "train.jsonl", rows[:32])
    _jsonl(tmp_path / "val.jsonl", rows[32:])
    stage = {"technique": "sft", "mode": "full",
             "data": {"train": str(tmp_path / "train.jsonl"), "validation": str(tmp_path / "val.jsonl")},
             "data_mixing": {"customer_percent": 50, "general": {"math": 100}},
             "hyperparameters": {"max_steps": 4, "global_batch_size": 8, "val_check_interval": 2, "lr": 3e-3}}  # fmt: skip
    if monitoring is not None:
        stage["monitoring"] = monitoring
    recipe = {
        "name": "micro",
        "model": {"path": str(micro_model_dir), "checkpoint": "post-trained"},
        "output_dir": str(tmp_path / "runs"),
        "acknowledge": {"lr-deviates-while-mixing": "micro", "customer-share-far-from-50": "test"},
        "stages": [stage],
    }
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["train", str(tmp_path / "recipe.yaml"), "--quiet", "--no-eval"]) == code
    report = tmp_path / "runs" / "micro" / "report" / "report.html"
    assert f"report: {report}\n" in capsys.readouterr().out  # also after a stop
    html = report.read_text()
    assert list(_embedded(html)) == ["sft-training"] and 'id="mix"' in html and f"<td>{status}</td>" in html
    assert ("kl_drift" in html) == (monitoring is not None)


def test_sweep_command_ends_with_the_report(tmp_path, monkeypatch, capsys) -> None:
    """The CLI hands `sweep_command` the report writer; the sweep calls it once its summary is written."""
    import tunesmith.sweeps.command as command

    sweep = _sweep(tmp_path / "sweep")

    def fake_sweep(args, *, finished):
        finished(sweep)
        return 0

    monkeypatch.setattr(command, "sweep_command", fake_sweep)
    assert main(["sweep", "recipe.yaml", "--preset", "lr"]) == 0
    assert capsys.readouterr().out == f"report: {sweep / 'report' / 'report.html'}\n"
    assert (sweep / "report" / "pareto.png").exists()
