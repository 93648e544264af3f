"""`tunesmith serve` names an image part and a tool turn as such (issue 32), not as a schema mismatch."""

from __future__ import annotations

import pytest

from tunesmith.serving.server import ApiError, parse_request


def request(*messages: dict) -> dict:
    return {"model": "m", "messages": list(messages)}


def test_an_image_part_is_named() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    with pytest.raises(ApiError) as caught:
        parse_request(request({"role": "user", "content": [{"type": "text", "text": "what is it?"}, image]}))
    assert caught.value.status == 400 and caught.value.param == "messages.0.content.1"
    assert "images are not supported" in caught.value.message and "str" not in caught.value.message


def test_tool_turns_are_named() -> None:
    call = {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "type": "function"}]}
    for message in (call, {"role": "tool", "tool_call_id": "c", "content": "42"}):
        with pytest.raises(ApiError) as caught:
            parse_request(request({"role": "user", "content": "hi"}, message))
        assert caught.value.param == "messages.1" and "tool calls and tool results" in caught.value.message


def test_text_parts_still_pass() -> None:
    parsed = parse_request(request({"role": "user", "content": [{"type": "text", "text": "hi"}]}))
    assert parsed.messages[0].as_dict() == {"role": "user", "content": "hi"}
