"""Environments for multi-turn RFT: rollouts that are conversations, scored by the environment at the end.

The contract (a Python class, or an HTTP endpoint with the same two calls):

- `reset(task) -> str`: start an episode for `task` (a training row: `prompt`/`messages`, `reference_answer`,
  extra fields) and return the first observation, appended to the task's prompt;
- `step(action) -> Turn`: the model's whole reply of one turn in, the environment's answer out:
  `Turn(observation, done, score)`. `score` (a finite number, 0-1 by convention) is read when `done`; an
  episode that reaches `max_turns` without `done` scores 0.

Every call runs in a worker thread under `timeout_s`, so an environment that hangs never stalls training: the
call is abandoned and the episode is a fault. A call that raises, or answers something that breaks the
contract (not a string, not a `Turn`, a non-finite score), is a fault too. A faulted episode is tried again
from `reset` on a fresh instance up to `retries` times (the managed service: 3 retries, [nova-recipes]); one
still faulted after that is *failed*: it scores 0 and carries its fault kind. `EnvironmentReward` turns
episodes into reward results, so their faults are counted, reported and judged by the same failure policy as
a reward endpoint's (`rewards.base.RewardFunction`: past `max_failure_rate` the stage stops).

`BrindleCatalog` is the built-in environment of the demo domain: the task names a part by its *name* and the
catalog's prices change per episode, so the answer cannot be known without querying the catalog first
(`lookup: <name>`), then answering (`answer: <text>`): at least two turns.
"""

from __future__ import annotations

import json
import math
import random
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from tunesmith.rewards.base import RewardFunction, RewardResult, RewardSample, failed_result

DEFAULT_TIMEOUT_S = 600.0
"""Per call: the managed service's rollout timeout, 600 s ([nova-recipes], MTRL recipe)."""
DEFAULT_RETRIES = 3
"""Episodes tried again after a fault: the managed service's 3 rollout retries ([nova-recipes])."""
DEFAULT_MAX_TURNS = 4


@dataclass(frozen=True)
class Turn:
    """The environment's answer to one action."""

    observation: str
    done: bool = False
    score: float | None = None


class Environment(Protocol):
    def reset(self, task: dict[str, Any]) -> str: ...

    def step(self, action: str) -> Turn: ...


class EnvironmentFault(Exception):
    """One call broke the contract: `kind` is timeout | exception | invalid_reply."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail


def call_with_timeout(fn: Callable[..., Any], *args: Any, timeout_s: float) -> Any:
    """`fn(*args)` in a daemon thread; an `EnvironmentFault` when it raises or outlives `timeout_s` (the
    thread is abandoned: a hung environment costs a thread, never the run)."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - any failure of user code is a fault, reported by kind
            outcome["error"] = exc

    worker = threading.Thread(target=target, daemon=True, name="tunesmith-environment")
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise EnvironmentFault("timeout", f"no answer within {timeout_s:g} s")
    if "error" in outcome:
        error = outcome["error"]
        if isinstance(error, EnvironmentFault):
            raise error
        raise EnvironmentFault("exception", f"{type(error).__name__}: {error}")
    return outcome.get("value")


def checked_turn(reply: Any) -> Turn:
    """A `Turn` (or a dict with its fields) that keeps the contract; else `EnvironmentFault("invalid_reply")`."""
    if isinstance(reply, dict):
        try:
            reply = Turn(reply["observation"], bool(reply.get("done", False)), reply.get("score"))
        except (KeyError, TypeError) as exc:
            raise EnvironmentFault("invalid_reply", f"step() returned {reply!r:.80}") from exc
    if not isinstance(reply, Turn) or not isinstance(reply.observation, str):
        raise EnvironmentFault("invalid_reply", f"step() returned {reply!r:.80}, not a Turn")
    if reply.done:
        score = reply.score
        if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
            raise EnvironmentFault("invalid_reply", f"a finished episode's score is {score!r}")
    return reply


@dataclass
class Episode:
    """One rollout: the final score, turns taken, the fault that failed it (None: it ran), the messages."""

    score: float
    turns: int
    fault: str | None = None
    detail: str = ""
    faults: list[str] = field(default_factory=list)  # every attempt's fault, a cured retry's included
    messages: list[dict[str, str]] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.fault is not None


Policy = Callable[[list[dict[str, str]]], str]
"""The model's side: the conversation so far -> its next reply."""


def run_episode(
    factory: Callable[[], Environment],
    task: dict[str, Any],
    act: Policy,
    *,
    max_turns: int = DEFAULT_MAX_TURNS,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    retries: int = DEFAULT_RETRIES,
) -> Episode:
    """Play one episode of `task`: reset, then up to `max_turns` model replies and environment steps. A
    faulted episode is tried again (a fresh instance) up to `retries` times; then it is failed."""
    faults: list[str] = []
    detail = ""
    for _ in range(retries + 1):
        try:
            episode = _play(factory, task, act, max_turns, timeout_s)
            episode.faults = faults
            return episode
        except EnvironmentFault as fault:
            faults.append(fault.kind)
            detail = fault.detail
    return Episode(0.0, 0, faults[-1], detail, faults)


def _play(
    factory: Callable[[], Environment], task: dict[str, Any], act: Policy, max_turns: int, timeout_s: float
) -> Episode:
    env = call_with_timeout(factory, timeout_s=timeout_s)
    first = call_with_timeout(env.reset, task, timeout_s=timeout_s)
    if not isinstance(first, str):
        raise EnvironmentFault("invalid_reply", f"reset() returned {first!r:.80}, not a string")
    messages = [dict(m) for m in task_messages(task)]
    messages[-1]["content"] = (messages[-1]["content"] + "\n" + first).strip()
    for turn in range(1, max_turns + 1):
        action = act(messages)
        messages.append({"role": "assistant", "content": action})
        reply = checked_turn(call_with_timeout(env.step, action, timeout_s=timeout_s))
        if reply.done:
            return Episode(float(reply.score), turn, messages=messages)  # type: ignore[arg-type]
        messages.append({"role": "user", "content": reply.observation})
    return Episode(0.0, max_turns, messages=messages)


def task_messages(task: dict[str, Any]) -> list[dict[str, str]]:
    """The task's prompt as chat messages (`messages`, or `prompt` as a string or a message list)."""
    prompt = task.get("messages") or task.get("prompt")
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": m["role"], "content": m["content"]} for m in prompt or [{"role": "user", "content": ""}]]


class EnvironmentReward(RewardFunction):
    """Episodes as reward results: a sample's `extra["episode"]` (an `Episode`) scores its final score, or
    fails with its fault. Counters, events and the failure policy are the reward's (`RewardFunction`)."""

    name = "environment"

    def _score(self, samples: list[RewardSample]) -> list[RewardResult]:
        results = []
        for sample in samples:
            episode = sample.extra.get("episode") if isinstance(sample.extra, dict) else None
            if not isinstance(episode, Episode):
                results.append(failed_result(sample.id, "invalid_reply"))
            else:
                for attempt, kind in enumerate(episode.faults, 1):  # each attempt's fault, as endpoints count
                    retry = attempt < len(episode.faults) or not episode.failed
                    self.fault(kind, samples=1, attempt=attempt, detail=episode.detail, retry=retry)
                if episode.failed:
                    results.append(failed_result(sample.id, episode.fault or "exception"))
                else:
                    results.append(RewardResult(id=sample.id, score=episode.score))
        return results


# --------------------------------------------------------------------------------------------- HTTP


class HttpEnvironment:
    """The contract over HTTP: `POST {url}/reset {"task"}` -> `{"episode", "observation"}`, then
    `POST {url}/step {"episode", "action"}` -> `{"observation", "done", "score"}` (JSON). Each request has
    `timeout_s`; transport errors and bad replies are faults (the episode's retries apply)."""

    def __init__(self, url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.episode: Any = None

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.url}/{path}",
            data=json.dumps(payload).encode("utf-8"),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                body = response.read(1 << 20)
        except TimeoutError as exc:
            raise EnvironmentFault("timeout", f"{self.url}/{path}") from exc
        except urllib.error.HTTPError as exc:
            raise EnvironmentFault(f"http_{exc.code}", f"{self.url}/{path}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise EnvironmentFault("connection_error", f"{self.url}/{path}: {exc}") from exc
        try:
            reply = json.loads(body)
        except ValueError as exc:
            raise EnvironmentFault("invalid_reply", f"{self.url}/{path}: not JSON") from exc
        if not isinstance(reply, dict):
            raise EnvironmentFault("invalid_reply", f"{self.url}/{path}: not a JSON object")
        return reply

    def reset(self, task: dict[str, Any]) -> str:
        reply = self._post("reset", {"task": task})
        self.episode = reply.get("episode")
        observation = reply.get("observation")
        if not isinstance(observation, str):
            raise EnvironmentFault("invalid_reply", f"{self.url}/reset: no observation string")
        return observation

    def step(self, action: str) -> Turn:
        return checked_turn(self._post("step", {"episode": self.episode, "action": action}))


# --------------------------------------------------------------------------------------------- built-in


class BrindleCatalog:
    """The demo domain's parts catalog behind a tool. A task asks for the total of `qty` parts named by their
    *name*; this episode's catalog (its prices drawn from the task's seed) answers `lookup: <name or code>`
    with `catalog: <code> <name>, <unit>, <price> brix`; `answer: <text>` ends the episode, scored by the
    Brindle reward against this catalog's total. Anything else gets the format reminder."""

    INSTRUCTIONS = (
        "Prices change daily. Query the catalog with `lookup: <part name>`, then reply `answer: <qty> x <price> = "
        "<total> brix`."
    )

    def __init__(self) -> None:
        self.prices: dict[str, int] = {}
        self.reference = ""

    def reset(self, task: dict[str, Any]) -> str:
        from tunesmith.data.domain import PARTS

        rng = random.Random(f"brindle-catalog:{task['seed']}")
        self.prices = {code: rng.randint(2, 9) for code in PARTS}
        code, qty = task["code"], int(task["qty"])
        price = self.prices[code]
        self.reference = f"{qty} x {price} = {qty * price} brix"
        return self.INSTRUCTIONS

    def step(self, action: str) -> Turn:
        from tunesmith.data.domain import PARTS, reward

        text = action.strip()
        head, _, rest = text.partition(":")
        command, argument = head.strip().lower(), rest.strip().lower()
        if command == "answer":
            return Turn("", done=True, score=reward(rest.strip(), self.reference))
        if command == "lookup":
            for code, (name, unit, _) in PARTS.items():
                if argument in (name, code.lower()):
                    return Turn(f"catalog: {code} {name}, {unit}, {self.prices[code]} brix")
            return Turn(f"catalog: no part named {argument or '(empty)'}")
        return Turn("reply with `lookup: <part name>` or `answer: <text>`")


def brindle_catalog_tasks(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """`n` catalog tasks: the total for a quantity of a part named by its name (the code and the day's price
    come only from the catalog)."""
    from tunesmith.data.domain import MAX_QUANTITY, PARTS

    rng = random.Random(f"brindle-catalog-tasks:{seed}")
    tasks = []
    for index in range(n):
        code = rng.choice(sorted(PARTS))
        qty = rng.randint(1, MAX_QUANTITY)
        tasks.append(
            {
                "id": f"brindle-catalog-{seed}-{index}",
                "messages": [{"role": "user", "content": f"Brindle: total for {qty} {PARTS[code][0]}?"}],
                "code": code,
                "qty": qty,
                "seed": f"{seed}:{index}",
            }
        )
    return tasks
