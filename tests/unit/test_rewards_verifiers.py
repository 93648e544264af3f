"""Built-in verifiers, the weighted combination, Python rewards (per-sample and batch), reward specs and the
Lambda handler — all in-process, no network."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tunesmith.errors import UserError
from tunesmith.rewards import (
    RewardFailureError,
    RewardSample,
    RewardSpec,
    load_reward,
    make_lambda_handler,
    parse_reward_spec,
)
from tunesmith.rewards.contract import RequestError


def sample(completion: str, reference=None, sample_id: str = "0", **extra) -> RewardSample:
    messages = [{"role": "user", "content": "q?"}, {"role": "assistant", "content": completion}]
    return RewardSample(id=sample_id, messages=messages, reference_answer=reference, extra=extra)


def scores(spec, pairs, **kw) -> list[float]:
    reward = load_reward(spec, **kw)
    return [r.score for r in reward.score([sample(c, ref, str(i)) for i, (c, ref) in enumerate(pairs)])]


# --- Python rewards used through module:function -------------------------------------------------------
def length_ratio(completion: str, reference_answer: str, task: str = "", **kwargs) -> dict:
    """Per-sample form returning a dict with metrics; sees the extra field `task`."""
    ratio = min(len(completion), len(reference_answer)) / max(len(completion), len(reference_answer), 1)
    bonus = 0.5 if task == "bonus" else 0.0
    return {
        "score": min(1.0, ratio + bonus),
        "metrics_list": [{"name": "length_ratio", "value": ratio, "type": "Metric"}],
    }


def plain_float(completion, reference_answer):
    return float(completion.strip() == str(reference_answer))


def crashes_on_x(completion, reference_answer):
    if "x" in completion:
        raise RuntimeError("no x please")
    return 1.0


def returns_nan(completion, reference_answer):
    return math.nan


def lambda_style(samples):
    """Batch form (first parameter named `samples`): the contract's list in, the reply list out."""
    return [
        {
            "id": s["id"],
            "aggregate_reward_score": float("yes" in s["messages"][-1]["content"]),
            "metrics_list": [
                {"name": "words", "value": len(s["messages"][-1]["content"].split()), "type": "Metric"}
            ],
        }
        for s in samples
    ]


def handler_style(event, context):
    """Batch form with the Lambda signature; drops every id containing 'drop' (a buggy batch reward)."""
    return [{"id": s["id"], "aggregate_reward_score": 1.0} for s in event if "drop" not in s["id"]]


def flagged(items):
    return [{"id": s["id"], "aggregate_reward_score": 0.25} for s in items]


flagged.batch = True

not_callable = 3


# --- built-in verifiers ------------------------------------------------------------------------------------
def test_exact_and_normalized_match_reuse_evaluation_scorers() -> None:
    pairs = [("Gold  Teal", "Gold Teal"), ("gold teal", "Gold Teal"), ("The gold, teal!", "gold teal")]
    assert scores("exact_match", pairs) == [1.0, 0.0, 0.0]
    assert scores("normalized_match", pairs) == [1.0, 1.0, 1.0]
    assert scores("normalized_match", [("Blue", "red")]) == [0.0]


def test_dict_list_and_number_references() -> None:
    # the contract's example: the first field (compliant) is the answer unless reference_key says otherwise
    ref = {"compliant": "No", "explanation": "We have no dedicated team."}
    assert scores("normalized_match", [("no.", ref), ("Yes", ref)]) == [1.0, 0.0]
    spec = {"function": "exact_match", "reference_key": "explanation"}
    assert scores(spec, [("We have no dedicated team.", ref)]) == [1.0]
    assert scores("exact_match", [("b", {"answer": "b", "other": "x"})]) == [1.0]  # `answer` wins
    assert scores("exact_match", [("24 brix", ["24", "24 brix"]), ("25", ["24", "24 brix"])]) == [1.0, 0.0]
    assert scores("exact_match", [("24", 24), ("24", 24.0)]) == [1.0, 1.0]


def test_numeric_last_number_and_tolerances() -> None:
    pairs = [
        ("4 x 6 = 24 brix", "24"),
        ("so 4 x 6 = 25", "4 x 6 = 24 brix"),  # the reference's last number is the answer
        ("total: 1,024.5 units", 1024.5),
        ("no number here", "3"),
        ("part KV7 costs 6", {"answer": 6}),  # KV7 is a code, not the number 7
        ("-3.5e2", "-350"),
    ]
    assert scores("numeric", pairs) == [1.0, 0.0, 1.0, 0.0, 1.0, 1.0]
    assert scores({"function": "numeric", "tolerance": 0.5}, [("24.4", "24"), ("24.6", "24")]) == [1.0, 0.0]
    assert scores({"function": "numeric", "relative_tolerance": 0.01}, [("101", "100"), ("102", "100")]) == [
        1.0,
        0.0,
    ]


def test_regex_full_and_search_and_reference_as_pattern() -> None:
    spec = {"function": "regex", "pattern": r"\d+ brix"}
    assert scores(spec, [("24 brix", None), (" 24 brix \n", None), ("total 24 brix", None)]) == [
        1.0,
        1.0,
        0.0,
    ]
    assert scores({**spec, "full_match": False}, [("total 24 brix", None), ("24 bricks", None)]) == [1.0, 0.0]
    assert scores("regex", [("KV7", r"[A-Z]{2}\d"), ("kv7", r"[A-Z]{2}\d")]) == [1.0, 0.0]
    with pytest.raises(UserError, match=r"invalid regex pattern '\('"):
        load_reward({"function": "regex", "pattern": "("})


def test_json_schema_inline_file_and_fenced(tmp_path: Path) -> None:
    schema = {
        "type": "object",
        "properties": {"total": {"type": "integer"}, "unit": {"enum": ["brix"]}},
        "required": ["total", "unit"],
    }
    completions = [
        '{"total": 24, "unit": "brix"}',
        'Here it is:\n```json\n{"total": 24, "unit": "brix"}\n```',
        '{"total": "24", "unit": "brix"}',  # wrong type
        "not json at all",
    ]
    reward = load_reward({"function": "json_schema", "schema": schema})
    results = reward.score([sample(c, None, str(i)) for i, c in enumerate(completions)])
    assert [r.score for r in results] == [1.0, 1.0, 0.0, 0.0]
    assert [r.metrics[0]["value"] for r in results] == [1.0, 1.0, 1.0, 0.0]  # valid_json: parsed at all
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    from_file = load_reward({"function": "json_schema", "schema": "schema.json"}, base_dir=tmp_path)
    assert [r.score for r in from_file.score([sample(completions[0])])] == [1.0]
    with pytest.raises(UserError, match="schema is invalid"):
        load_reward({"function": "json_schema", "schema": {"type": "no-such-type"}})
    with pytest.raises(UserError, match="cannot read schema"):
        load_reward({"function": "json_schema", "schema": "missing.json"}, base_dir=tmp_path)


def test_brindle_builtin_is_the_domain_verifier() -> None:
    pairs = [
        ("4 x 6 = 24 brix", "4 x 6 = 24 brix"),
        ("4 x 6 = 25 brix", "4 x 6 = 24 brix"),
        ("hello", "plenk"),
    ]
    assert scores("builtin:brindle", pairs) == [1.0, 0.0, 0.0]
    assert scores("builtin:brindle", [("3 x 2 = 7 brix", "4 x 2 = 7 brix")]) == [0.5]


def test_weighted_combination_reports_components() -> None:
    spec = {
        "components": [
            {"function": "exact_match", "weight": 1},
            {"function": "numeric", "weight": 3},
            {"function": "json_schema", "schema": {"type": "string"}, "weight": 0, "name": "is_json_string"},
        ]
    }
    reward = load_reward(spec)
    exact, close, wrong = reward.score(
        [sample("24 brix", "24 brix", "a"), sample("= 24", "24 brix", "b"), sample("25", "24 brix", "c")]
    )
    assert (exact.score, close.score, wrong.score) == (1.0, 0.75, 0.0)
    assert close.metrics == [
        {"name": "exact_match", "value": 0.0, "type": "Reward"},
        {"name": "numeric", "value": 1.0, "type": "Reward"},
        {"name": "is_json_string", "value": 0.0, "type": "Reward"},
        {"name": "is_json_string/valid_json", "value": 0.0, "type": "Metric"},
    ]


def test_clamp_and_missing_reference_fault() -> None:
    events: list[dict] = []
    reward = load_reward({"function": "exact_match", "min_samples_for_policy": 100}, on_event=events.append)
    results = reward.score([sample("a", "a", "1"), sample("a", None, "2")])
    assert [(r.score, r.failed, r.fault) for r in results] == [
        (1.0, False, None),
        (0.0, True, "missing_reference"),
    ]
    assert reward.stats.failed == 1 and reward.stats.faults == {"missing_reference": 1}
    assert events[0]["event"] == "reward_fault" and events[0]["fault"] == "missing_reference"
    assert events[-1] == {
        "event": "reward_failure_policy",
        "action": "continue",
        "endpoint": "exact_match",
        "failure_rate": 0.5,
        "threshold": 0.1,
        "failed": 1,
        "samples": 2,
        "judged": False,
    }


# --- Python callables --------------------------------------------------------------------------------------
def test_per_sample_callable_with_metrics_and_extra_fields() -> None:
    reward = load_reward(f"{__name__}:length_ratio")
    results = reward.score([sample("abcd", "abcdefgh", "1"), sample("abcd", "abcdefgh", "2", task="bonus")])
    assert [r.score for r in results] == [0.5, 1.0]
    assert results[0].metrics == [{"name": "length_ratio", "value": 0.5, "type": "Metric"}]
    assert load_reward(f"{__name__}:plain_float")("42", 42) == 1.0  # a RewardFunction is also a scorer


def test_per_sample_callable_faults_fail_only_their_samples() -> None:
    events: list[dict] = []
    reward = load_reward(
        {"function": f"{__name__}:crashes_on_x", "max_failure_rate": 0.6, "min_samples_for_policy": 1},
        on_event=events.append,
    )
    results = reward.score([sample("ok", "", "1"), sample("xx", "", "2")])
    assert [(r.score, r.fault) for r in results] == [(1.0, None), (0.0, "exception")]
    assert "RuntimeError: no x please" in events[0]["detail"]
    nan = load_reward(f"{__name__}:returns_nan", policy=False).score([sample("a", "b")])[0]
    assert nan.failed and nan.fault == "non_finite_score"


def test_batch_callables_detected_by_name_signature_or_flag() -> None:
    results = load_reward(f"{__name__}:lambda_style").score(
        [sample("yes sir", None, "a"), sample("no", None, "b")]
    )
    assert [(r.score, r.metrics[0]["value"]) for r in results] == [(1.0, 2.0), (0.0, 1.0)]
    assert [r.score for r in load_reward(f"{__name__}:flagged").score([sample("x")])] == [0.25]
    events: list[dict] = []
    reward = load_reward(f"{__name__}:handler_style", on_event=events.append, policy=False)
    results = reward.score([sample("x", None, "keep"), sample("x", None, "drop-me")])
    assert [(r.score, r.fault) for r in results] == [(1.0, None), (0.0, "missing_id")]
    assert reward.stats.retries == 0 and [e["fault"] for e in events if e["event"] == "reward_fault"] == [
        "missing_id"
    ]


def test_file_path_callable(tmp_path: Path) -> None:
    (tmp_path / "my_reward.py").write_text("def score(completion, reference_answer):\n    return 0.75\n")
    assert load_reward("my_reward.py:score", base_dir=tmp_path)("anything") == 0.75
    assert load_reward(str(tmp_path / "my_reward.py") + ":score")("anything") == 0.75


# --- specs and their errors --------------------------------------------------------------------------------
def test_plain_string_is_a_spec_and_defaults_cite_the_doc() -> None:
    spec = parse_reward_spec("http://127.0.0.1:9/")
    assert spec == RewardSpec(function="http://127.0.0.1:9/") and spec.kind == "http"
    assert (spec.timeout_s, spec.retries, spec.backoff_s, spec.clamp) == (60.0, 3, 1.0, False)
    assert parse_reward_spec("builtin:brindle").target == "brindle"
    assert parse_reward_spec("arn:aws:lambda:us-east-1:123456789012:function:SageMaker-r").kind == "lambda"
    nested = RewardSpec.model_validate({"components": ["exact_match", {"function": "numeric", "weight": 2}]})
    assert [(c.function, c.weight) for c in nested.components] == [("exact_match", 1.0), ("numeric", 2.0)]
    assert RewardSpec.model_validate({"function": "json_schema", "schema": {"type": "object"}}).json_schema


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("nope", "unknown reward 'nope'"),
        ("builtin:brindel", "did you mean 'brindle'?"),
        ("exact_mach", "did you mean 'exact_match'?"),
        ("arn:aws:lambda:us-east-1", "not a Lambda function ARN"),
        ("http://", "not a valid URL"),
        ({"function": "exact_match", "pattern": "x"}, "`pattern` applies to the regex verifier"),
        ({"function": "exact_match", "timeout": 3}, "timeout: Extra inputs are not permitted"),
        ({"function": "json_schema"}, "needs `schema`"),
        ({"function": "numeric", "components": ["exact_match"]}, "not both"),
        ({"components": []}, "at least one reward"),
        ({"function": "exact_match", "bearer_token_env": "T"}, "http(s) endpoints only"),
        ({"function": "exact_match", "max_failure_rate": 2}, "max_failure_rate: Input should be less than"),
        ("no_such_module_xyz:fn", "cannot import module 'no_such_module_xyz'"),
        (f"{__name__}:missing_fn", "has no callable 'missing_fn'"),
        (f"{__name__}:not_callable", "has no callable 'not_callable'"),
        ("missing_dir/nothere.py:fn", "no file"),
    ],
)
def test_bad_specs_are_one_line_user_errors(spec, fragment: str) -> None:
    with pytest.raises(UserError) as err:
        load_reward(spec)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_failure_policy_stops_past_the_threshold() -> None:
    events: list[dict] = []
    spec = {"function": f"{__name__}:crashes_on_x", "max_failure_rate": 0.25, "min_samples_for_policy": 4}
    reward = load_reward(spec, on_event=events.append)
    reward.score([sample("x", None, "1"), sample("ok", None, "2")])  # 50% but only 2 samples: continue
    assert events[-1]["action"] == "continue"
    with pytest.raises(RewardFailureError) as err:
        reward.score([sample("ok", None, "3"), sample("x", None, "4")])
    message = str(err.value)
    assert (
        f"reward {__name__}:crashes_on_x: 2 of 4 samples failed (50.0%) > max_failure_rate 25.0%" in message
    )
    assert "(faults: exception 2)" in message and "fix the reward function" in message
    assert events[-1]["action"] == "stop" and events[-1]["failure_rate"] == 0.5


# --- the Lambda handler ------------------------------------------------------------------------------------
def test_lambda_handler_scores_lists_and_api_gateway_bodies() -> None:
    handler = make_lambda_handler("numeric")
    event = [
        {
            "id": 7,
            "messages": [{"role": "assistant", "content": "= 24"}],
            "metadata": {"reference_answer": "24"},
        },
        {"id": "b", "messages": [{"role": "assistant", "content": "25"}], "reference_answer": 24},
        {"id": "c", "messages": [{"role": "assistant", "content": "25"}]},  # no reference: fault, score 0
    ]
    reply = handler(event, None)
    assert reply == [
        {"id": 7, "aggregate_reward_score": 1.0},
        {"id": "b", "aggregate_reward_score": 0.0},
        {"id": "c", "aggregate_reward_score": 0.0, "fault": "missing_reference"},
    ]
    assert handler({"body": json.dumps(event[:1])}, None) == reply[:1]
    for bad in [{"not": "a list"}, [{"messages": []}], [{"id": 1, "messages": "hi"}], [event[1], event[1]]]:
        with pytest.raises(RequestError):
            handler(bad, None)
