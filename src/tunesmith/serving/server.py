"""`tunesmith serve MODEL [--adapter NAME=PATH ...]`: an OpenAI-compatible chat API (Starlette + uvicorn).

Endpoints: `POST /v1/chat/completions` (non-streaming, or Server-Sent Events with `"stream": true`),
`GET /v1/models` (the base model and every adapter), `GET /v1/models/{id}`, `GET /health`. The request's
`model` field picks what answers: the base model's name, or an adapter's NAME. All adapters are loaded onto
one PEFT model (`load_adapter`) and a request runs with its adapter active (`set_adapter`, or
`disable_adapter` for the base) under a lock, so requests are served one generation at a time: this is a
check and small-team server; for production throughput serve the same export with vLLM (README).

Errors have OpenAI's shape `{"error": {"message", "type", "param", "code"}}`: 400 malformed JSON or
request, prompt longer than the context (`context_length_exceeded`), `max_tokens` above the server's limit;
401 missing or wrong API key (when `--api-key-env` is set; compared in constant time); 404 unknown model
(`model_not_found`) or route; 408 body too slow; 413 body above `--max-request-bytes`; 500 a generation that
crashed. The server keeps serving after each.

Sampling follows the request (`temperature`, `top_p`, `seed`; `temperature: 0` is greedy) and, where the
request is silent, the model's own generation config, as vLLM does.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tunesmith.asgi import DEFAULT_READ_TIMEOUT_S, BackgroundServer, BodyError, drain, parse_json, read_body
from tunesmith.errors import UserError

DEFAULT_MAX_TOKENS = 512
"""The most new tokens one request may ask for (ours; `--max-tokens`); also the default when it asks none."""
DEFAULT_MAX_REQUEST_BYTES = 1024 * 1024
"""1 MiB of JSON: far more than a context of text (ours; `--max-request-bytes`)."""


class ApiError(Exception):
    """An error reply in OpenAI's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.param = status, message, kind, code, param

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


# --- the request ------------------------------------------------------------------------------------------
class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]

    def as_dict(self) -> dict[str, str]:
        text = self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)
        return {"role": "system" if self.role == "developer" else self.role, "content": text}


class ChatRequest(BaseModel):
    """The part of OpenAI's chat-completions request this server honours; other fields are ignored,
    except those that would change the answer's meaning and are not supported (`n` > 1, `stop`, tools)."""

    model_config = ConfigDict(extra="ignore")
    model: str
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None
    n: int = Field(default=1, ge=1, le=1)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    stop: None = None
    tools: None = None


def parse_request(payload: Any) -> ChatRequest:
    if not isinstance(payload, dict):
        raise ApiError(400, "the request body must be a JSON object", code="invalid_request")
    _refuse_unsupported_turns(payload.get("messages"))
    try:
        return ChatRequest.model_validate(payload)
    except ValidationError as err:
        first = err.errors()[0]
        param = ".".join(str(p) for p in first["loc"])
        hint = " (not supported by tunesmith serve)" if param in {"n", "stop", "tools"} else ""
        raise ApiError(400, f"{param}: {first['msg']}{hint}", param=param, code="invalid_request") from None


def _refuse_unsupported_turns(messages: Any) -> None:
    """Images (and other non-text parts) and tool turns are named as such, not as a schema mismatch."""
    for index, message in enumerate(messages if isinstance(messages, list) else []):
        if not isinstance(message, dict):
            continue
        param = f"messages.{index}"
        if (
            message.get("tool_calls")
            or message.get("function_call")
            or message.get("role") in ("tool", "function")
        ):
            raise ApiError(
                400,
                f"{param}: tool calls and tool results are not supported by tunesmith serve — send text turns",
                param=param,
                code="invalid_request",
            )
        parts = message.get("content")
        for part_index, part in enumerate(parts if isinstance(parts, list) else []):
            kind = part.get("type") if isinstance(part, dict) else None
            if isinstance(kind, str) and kind != "text":
                what = (
                    "images are" if kind in ("image_url", "image", "input_image") else f"{kind!r} parts are"
                )
                raise ApiError(
                    400,
                    f"{param}.content.{part_index}: {what} not supported (tunesmith serve answers text only) — "
                    'send {"type": "text", "text": ...} parts',
                    param=f"{param}.content.{part_index}",
                    code="invalid_request",
                )


# --- the models -------------------------------------------------------------------------------------------
def adapter_folder(path: str | Path) -> Path:
    """An adapter folder from an export, a stage folder (`best/adapter/`) or the adapter folder itself."""
    folder = Path(path).expanduser()
    for candidate in (folder, folder / "adapter", folder / "best" / "adapter"):
        if (candidate / "adapter_config.json").is_file():
            return candidate
    raise UserError(f"--adapter {path}: no LoRA adapter here (no adapter_config.json) — export one first")


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


class ModelPool:
    """A base model and its named LoRA adapters on one PEFT model; `generate` runs one request at a time."""

    def __init__(
        self, model_ref: str, adapters: dict[str, str] | None = None, name: str | None = None
    ) -> None:
        from transformers.utils import logging as hf_logging

        from tunesmith.evaluation.runner import resolve_eval_model
        from tunesmith.models.loading import load_model, load_tokenizer

        hf_logging.disable_progress_bar()
        checkpoint = resolve_eval_model(model_ref)
        self.base_name = name or checkpoint.label
        self.tokenizer = load_tokenizer(checkpoint.load_ref)
        model = load_model(checkpoint.load_ref)
        self.adapters = dict(adapters or {})
        if self.base_name in self.adapters:
            raise UserError(f"--adapter {self.base_name}: that name is the base model's — pick another")
        if self.adapters:
            from peft import PeftModel

            first, *others = self.adapters
            model = PeftModel.from_pretrained(
                model, str(adapter_folder(self.adapters[first])), adapter_name=first
            )
            for adapter in others:
                model.load_adapter(str(adapter_folder(self.adapters[adapter])), adapter_name=adapter)
        self.model = model.eval()
        config = getattr(model, "config", None)
        self.context_tokens = getattr(config, "max_position_embeddings", None)
        self.created = int(time.time())
        self.lock = threading.Lock()  # one generation at a time (the active adapter is model state)
        self.tokenizer_lock = threading.Lock()  # a fast tokenizer is not safe to call from many threads

    @property
    def names(self) -> list[str]:
        return [self.base_name, *self.adapters]

    def check_model(self, name: str) -> None:
        if name not in self.names:
            raise ApiError(
                404,
                f"the model {name!r} does not exist — use one of: {', '.join(self.names)}",
                code="model_not_found",
                param="model",
            )

    @contextmanager
    def _selected(self, name: str) -> Iterator[None]:
        with self.lock:
            if not self.adapters:
                yield
            elif name == self.base_name:
                with self.model.disable_adapter():
                    yield
            else:
                self.model.set_adapter(name)
                yield

    def encode(self, request: ChatRequest, max_tokens_limit: int) -> tuple[Any, int]:
        """(input ids, new-token budget) of a request; an oversized prompt or budget is an ApiError."""
        from tunesmith.models.generate import render_prompt

        has_template = bool(getattr(self.tokenizer, "chat_template", None))
        with self.tokenizer_lock:
            text = render_prompt(self.tokenizer, [m.as_dict() for m in request.messages])
            ids = self.tokenizer(text, return_tensors="pt", add_special_tokens=not has_template)["input_ids"]
        asked = request.max_completion_tokens or request.max_tokens
        if asked is not None and asked > max_tokens_limit:
            raise ApiError(
                400,
                f"max_tokens {asked} is above this server's limit of {max_tokens_limit}",
                param="max_tokens",
                code="invalid_request",
            )
        budget = asked or max_tokens_limit
        if self.context_tokens:
            if ids.shape[1] >= self.context_tokens:
                raise ApiError(
                    400,
                    f"the prompt is {ids.shape[1]} tokens; this model's context is {self.context_tokens} "
                    "tokens — shorten the messages",
                    param="messages",
                    code="context_length_exceeded",
                )
            budget = min(budget, self.context_tokens - ids.shape[1])
        return ids, budget

    def _options(self, request: ChatRequest) -> dict[str, Any]:
        if request.temperature == 0:
            return {"do_sample": False}
        options: dict[str, Any] = {}
        if request.temperature is not None:
            options.update(do_sample=True, temperature=request.temperature)
        if request.top_p is not None:
            options.update(do_sample=True, top_p=request.top_p)
        return options

    def generate(
        self, name: str, request: ChatRequest, ids: Any, budget: int, streamer: Any = None
    ) -> Generation:
        import torch

        pad_id = self.tokenizer.pad_token_id
        with self._selected(name), torch.inference_mode():
            if request.seed is not None:
                torch.manual_seed(request.seed)
            output = self.model.generate(
                input_ids=ids.to(self.model.device),
                attention_mask=torch.ones_like(ids).to(self.model.device),
                max_new_tokens=budget,
                pad_token_id=pad_id if pad_id is not None else self.tokenizer.eos_token_id,
                eos_token_id=self.tokenizer.eos_token_id,
                streamer=streamer,
                **self._options(request),
            )
        new = output[0, ids.shape[1] :].tolist()
        ended = bool(new) and new[-1] == self.tokenizer.eos_token_id
        return Generation(
            text=self.tokenizer.decode(new, skip_special_tokens=True),
            prompt_tokens=int(ids.shape[1]),
            completion_tokens=len(new),
            finish_reason="stop" if ended or len(new) < budget else "length",
        )


# --- the app ----------------------------------------------------------------------------------------------
def _error(err: ApiError):
    from starlette.responses import JSONResponse

    return JSONResponse(err.body(), status_code=err.status)


def _usage(result: Generation) -> dict:
    total = result.prompt_tokens + result.completion_tokens
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "total_tokens": total,
    }


def _sse(payload: dict | str) -> str:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)}\n\n"


def chat_app(
    pool: ModelPool,
    *,
    api_key: str | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
):
    """The Starlette app over `pool` (see the module docstring)."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    expected = f"Bearer {api_key}".encode() if api_key else None

    def authorize(request) -> None:
        if expected is None:
            return
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            raise ApiError(
                401,
                "missing or wrong API key (Authorization: Bearer <key>)",
                kind="authentication_error",
                code="invalid_api_key",
            )

    def model_card(name: str) -> dict:
        return {"id": name, "object": "model", "created": pool.created, "owned_by": "tunesmith"}

    async def health(request):
        return JSONResponse({"status": "ok"})

    async def list_models(request):
        authorize(request)
        return JSONResponse({"object": "list", "data": [model_card(n) for n in pool.names]})

    async def get_model(request):
        authorize(request)
        name = request.path_params["name"]
        pool.check_model(name)
        return JSONResponse(model_card(name))

    async def completions(request):
        try:
            authorize(request)
        except ApiError:
            declared = request.headers.get("content-length", "")
            await drain(request, int(declared) if declared.isdigit() else 0, read_timeout_s)
            raise
        try:
            payload = parse_json(await read_body(request, max_request_bytes, read_timeout_s))
        except BodyError as err:
            raise ApiError(
                err.status, err.message, code="invalid_json" if err.status == 400 else None
            ) from None
        chat = parse_request(payload)
        pool.check_model(chat.model)
        ids, budget = await run_in_threadpool(pool.encode, chat, max_tokens)
        reply_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if chat.stream:
            return StreamingResponse(
                _stream(chat, ids, budget, reply_id, created), media_type="text/event-stream"
            )
        result = await run_in_threadpool(pool.generate, chat.model, chat, ids, budget)
        return JSONResponse({
            "id": reply_id,
            "object": "chat.completion",
            "created": created,
            "model": chat.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": result.text},
                "finish_reason": result.finish_reason,
            }],
            "usage": _usage(result),
        })  # fmt: skip

    async def _stream(chat: ChatRequest, ids: Any, budget: int, reply_id: str, created: int):
        from transformers import TextIteratorStreamer

        streamer = TextIteratorStreamer(
            pool.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600
        )
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["result"] = pool.generate(chat.model, chat, ids, budget, streamer)
            except Exception as err:  # reported in the stream below; the streamer must still end
                outcome["error"] = err
                streamer.end()

        worker = threading.Thread(target=work, daemon=True)
        worker.start()

        def chunk(delta: dict, finish: str | None = None) -> dict:
            return {
                "id": reply_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": chat.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        yield _sse(chunk({"role": "assistant", "content": ""}))
        done = object()
        while (piece := await run_in_threadpool(next, streamer, done)) is not done:
            if piece:
                yield _sse(chunk({"content": piece}))
        await run_in_threadpool(worker.join)
        if "error" in outcome:
            yield _sse(ApiError(500, f"generation failed: {outcome['error']}", kind="server_error").body())
            return
        result = outcome["result"]
        yield _sse(chunk({}, result.finish_reason))
        if (chat.stream_options or {}).get("include_usage"):
            yield _sse({**chunk({}), "choices": [], "usage": _usage(result)})
        yield _sse("[DONE]")

    async def api_error(request, exc: ApiError):
        return _error(exc)

    async def http_error(request, exc: HTTPException):
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return _error(
            ApiError(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}", kind=kind)
        )

    async def crash(request, exc: Exception):
        message = f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())}"
        return _error(ApiError(500, message, kind="server_error"))

    return Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/v1/models/{name:path}", get_model, methods=["GET"]),
            Route("/v1/chat/completions", completions, methods=["POST"]),
        ],
        exception_handlers={ApiError: api_error, HTTPException: http_error, Exception: crash},
    )


def start_chat_server(
    pool: ModelPool, host: str = "127.0.0.1", port: int = 0, *, log: bool = False, **app_options
) -> BackgroundServer:
    """Serve `pool` on a background thread (port 0 = any free port; `server.url` has the real one)."""
    try:
        return BackgroundServer(chat_app(pool, **app_options), host, port, access_log=log, name="chat-server")
    except OSError as err:
        raise UserError(
            f"serve: cannot listen on {host}:{port} ({err.strerror or err}) — pick another --port "
            "(0 = any free port) or --host"
        ) from None


def parse_adapters(items: list[str] | None) -> dict[str, str]:
    """`NAME=PATH` options -> {name: path}; a malformed or repeated one is a one-line error."""
    adapters: dict[str, str] = {}
    for item in items or []:
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise UserError(
                f"--adapter {item}: expected NAME=PATH (an exported adapter or a LoRA stage folder)"
            )
        if name in adapters:
            raise UserError(f"--adapter {name}: given twice — each adapter needs its own name")
        adapters[name.strip()] = path.strip()
    return adapters


def serve_command(
    model: str,
    *,
    adapters: list[str] | None = None,
    name: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key_env: str | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    log: bool = False,
) -> int:
    """The CLI: load the model and adapters, print the URL and the served names, serve until Ctrl-C."""
    import os

    from tunesmith.asgi import serve_until_stopped, warn_if_exposed

    api_key = None
    if api_key_env:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            raise UserError(
                f"serve: --api-key-env {api_key_env} is not set — export {api_key_env}=<a secret key>"
            )
    if max_tokens < 1 or max_request_bytes < 1:
        raise UserError("serve: --max-tokens and --max-request-bytes must be at least 1")
    pool = ModelPool(model, parse_adapters(adapters), name)
    server = start_chat_server(
        pool, host, port, log=log, api_key=api_key, max_tokens=max_tokens, max_request_bytes=max_request_bytes
    )
    auth = " (API key required)" if api_key else ""
    print(f"tunesmith: serving {', '.join(pool.names)} at {server.url}v1{auth} — Ctrl-C stops", flush=True)
    warn_if_exposed(host, bool(api_key), "--api-key-env")
    serve_until_stopped(server)
    print("tunesmith: server stopped", flush=True)
    return 0
