"""OpenAI <-> Anthropic shape translation, field by field (no network: the mapping is pure)."""

from __future__ import annotations

import orjson
import pytest

from taskgate.errors import (
    BadRequestError,
    ModelRejectedError,
    UpstreamProtocolError,
    UpstreamRateLimitedError,
    UpstreamUnavailableError,
)
from taskgate.providers.anthropic.translate import (
    DEFAULT_MAX_TOKENS,
    StreamTranslator,
    build_body,
    error_from_event,
    parse_message,
    translate_messages,
    translate_options,
    translate_tool_choice,
)
from taskgate.providers.base import ChatRequest, ChunkCollector, StructuredOutput

PNG = "iVBORw0KGgo="


def body_for(**kwargs: object) -> dict:
    kwargs.setdefault("messages", [{"role": "user", "content": "hi"}])
    return build_body(ChatRequest(model="claude-x", **kwargs))  # type: ignore[arg-type]


def test_system_and_developer_messages_become_one_top_level_system() -> None:
    system, messages = translate_messages([
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
        {"role": "user", "content": "hello"},
    ])
    assert system == "Be brief.\n\nUse French."
    assert messages == [{"role": "user", "content": "hello"}]


def test_no_system_key_without_system_messages() -> None:
    body = body_for()
    assert "system" not in body
    assert body["model"] == "claude-x"


def test_user_parts_text_data_url_image_and_http_image() -> None:
    _, messages = translate_messages([{
        "role": "user",
        "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            {"type": "image_url", "image_url": {"url": "https://example.test/cat.jpg"}},
        ],
    }])
    assert messages == [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.test/cat.jpg"}},
    ]}]


def test_pdf_file_part_becomes_a_document_block() -> None:
    _, messages = translate_messages([{
        "role": "user",
        "content": [{"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0="}}],
    }])
    assert messages[0]["content"] == [
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}}
    ]


@pytest.mark.parametrize("url", ["data:image/png,notbase64", "ftp://x/y.png", ""])
def test_bad_image_urls_are_rejected_clearly(url: str) -> None:
    with pytest.raises(BadRequestError, match=r"messages\[0\]"):
        translate_messages([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}])


def test_unsupported_part_type_is_a_bad_request() -> None:
    with pytest.raises(BadRequestError, match="input_audio"):
        translate_messages([{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}])


def test_assistant_tool_calls_become_tool_use_blocks_and_results_are_merged() -> None:
    _, messages = translate_messages([
        {"role": "user", "content": "weather in Paris and Rome?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Rome"}'}},
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "25C"}]},
        {"role": "user", "content": "thanks, summarise"},
    ])
    assert messages == [
        {"role": "user", "content": "weather in Paris and Rome?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_2", "name": "weather", "input": {"city": "Rome"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
            {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "25C"}]},
            {"type": "text", "text": "thanks, summarise"},
        ]},
    ]


def test_consecutive_same_role_messages_are_merged_for_alternation() -> None:
    _, messages = translate_messages([
        {"role": "user", "content": "one"},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "a"},
        {"role": "assistant", "content": None, "tool_calls": []},
    ])
    assert messages == [
        {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]},
        {"role": "assistant", "content": "a"},
    ]


def test_empty_tool_arguments_mean_an_empty_object() -> None:
    _, messages = translate_messages([
        {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "now", "arguments": ""}}]},
    ])
    assert messages[0]["content"] == [{"type": "tool_use", "id": "c", "name": "now", "input": {}}]


def test_invalid_tool_arguments_name_the_tool_call() -> None:
    with pytest.raises(BadRequestError, match=r"call_9.*lookup"):
        translate_messages([
            {"role": "assistant", "tool_calls": [{"id": "call_9", "function": {"name": "lookup", "arguments": "{x"}}]},
        ])


def test_tool_message_without_call_id_and_unknown_role_are_rejected() -> None:
    with pytest.raises(BadRequestError, match="tool_call_id"):
        translate_messages([{"role": "tool", "content": "x"}])
    with pytest.raises(BadRequestError, match="role 'function'"):
        translate_messages([{"role": "function", "content": "x"}])


def test_tools_and_every_tool_choice_form() -> None:
    tools = [
        {"type": "function", "function": {
            "name": "weather", "description": "Get weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        }},
        {"type": "function", "function": {"name": "now"}},
    ]
    body = body_for(tools=tools, tool_choice="auto")
    assert body["tools"] == [
        {"name": "weather", "description": "Get weather",
         "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert body["tool_choice"] == {"type": "auto"}
    assert translate_tool_choice("none") == {"type": "none"}
    assert translate_tool_choice("required") == {"type": "any"}
    assert translate_tool_choice({"type": "function", "function": {"name": "now"}}) == {"type": "tool", "name": "now"}
    assert translate_tool_choice(None) is None
    with pytest.raises(BadRequestError):
        translate_tool_choice("sometimes")


def test_parallel_tool_calls_false_disables_parallel_use() -> None:
    body = body_for(tools=[{"type": "function", "function": {"name": "now"}}], tool_choice="required",
                    options={"parallel_tool_calls": False})
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


def test_non_function_tools_are_rejected() -> None:
    with pytest.raises(BadRequestError, match="function tools"):
        body_for(tools=[{"type": "web_search"}])


def test_options_mapping() -> None:
    options = translate_options({
        "max_completion_tokens": 77, "stop": "END", "temperature": 0.2, "top_p": 0.9, "top_k": 5,
        "user": "u-1", "seed": 3, "presence_penalty": 1.0, "logprobs": True, "response_format": {"type": "text"},
        "metadata": {"purpose": "eval"}, "service_tier": "flex",
    })
    assert options == {
        "max_tokens": 77, "stop_sequences": ["END"], "temperature": 0.2, "top_p": 0.9, "top_k": 5,
        "metadata": {"user_id": "u-1"},
    }
    assert translate_options({})["max_tokens"] == DEFAULT_MAX_TOKENS
    assert translate_options({"max_tokens": 10, "max_completion_tokens": 20})["max_tokens"] == 10
    assert translate_options({"stop": ["a", "b"]})["stop_sequences"] == ["a", "b"]
    assert translate_options({"metadata": {"user_id": "u-2"}})["metadata"] == {"user_id": "u-2"}
    assert translate_options({"thinking": {"type": "enabled", "budget_tokens": 1024}})["thinking"] == {
        "type": "enabled", "budget_tokens": 1024}


def test_structured_output_is_a_forced_tool() -> None:
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}}
    body = body_for(structured=StructuredOutput(schema=schema, name="my.fn/answer"))
    assert body["tools"] == [{"name": "my_fn_answer", "description": "Respond with the result", "input_schema": schema}]
    assert body["tool_choice"] == {"type": "tool", "name": "my_fn_answer"}


def test_response_text_tool_use_and_usage() -> None:
    response = parse_message({
        "type": "message", "model": "claude-x", "stop_reason": "tool_use",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "s"},
            {"type": "text", "text": "Let me check. "},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
        ],
        "usage": {"input_tokens": 11, "output_tokens": 7, "cache_read_input_tokens": 3,
                  "cache_creation_input_tokens": 2},
    }, None, "anthropic")
    assert response.text == "Let me check. "
    assert [(c.id, c.name, orjson.loads(c.arguments)) for c in response.tool_calls] == [
        ("toolu_1", "weather", {"city": "Paris"})
    ]
    assert response.finish_reason == "tool_calls"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (11, 7)
    assert (response.usage.cache_read_tokens, response.usage.cache_write_tokens) == (3, 2)
    assert response.model == "claude-x"


@pytest.mark.parametrize(("stop_reason", "expected"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
    ("tool_use", "tool_calls"), ("refusal", "content_filter"),
])
def test_stop_reasons(stop_reason: str, expected: str) -> None:
    data = {"type": "message", "content": [{"type": "text", "text": "x"}], "stop_reason": stop_reason}
    assert parse_message(data, None, "anthropic").finish_reason == expected


@pytest.mark.parametrize(("stop_reason", "sequence", "expected"), [
    ("stop_sequence", "END", "END"), ("end_turn", None, None), ("stop_sequence", None, None),
    ("end_turn", "END", None),  # only stop_reason stop_sequence names one
])
def test_the_stop_sequence_is_carried_plain_and_streamed(stop_reason: str, sequence: str | None,
                                                         expected: str | None) -> None:
    data = {"type": "message", "content": [{"type": "text", "text": "x"}], "stop_reason": stop_reason,
            "stop_sequence": sequence}
    assert parse_message(data, None, "anthropic").stop_sequence == expected
    translator = StreamTranslator(None, "anthropic")
    [chunk] = translator.feed(*sse("message_delta", {"delta": {"stop_reason": stop_reason, "stop_sequence": sequence},
                                                     "usage": {"output_tokens": 1}}))
    assert (chunk.finish_reason, chunk.stop_sequence) == ("stop", expected)
    collector = ChunkCollector()
    collector.add(chunk)
    assert collector.response().stop_sequence == expected


def test_structured_response_text_is_the_forced_tool_input() -> None:
    response = parse_message({
        "type": "message", "stop_reason": "tool_use",
        "content": [{"type": "tool_use", "id": "t", "name": "output", "input": {"x": 1}}],
    }, "output", "anthropic")
    assert orjson.loads(response.text) == {"x": 1}
    assert response.tool_calls == []
    assert response.finish_reason == "stop"


def test_not_a_message_is_a_protocol_error() -> None:
    with pytest.raises(UpstreamProtocolError):
        parse_message({"hello": "world"}, None, "anthropic")


def sse(event: str, payload: dict) -> tuple[str, bytes]:
    return event, orjson.dumps({"type": event, **payload})


def test_stream_tool_indices_skip_interleaved_text_blocks() -> None:
    translator = StreamTranslator(None, "anthropic")
    events = [
        sse("message_start", {"message": {"usage": {"input_tokens": 20, "cache_read_input_tokens": 4}}}),
        sse("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        sse("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "First "}}),
        sse("content_block_stop", {"index": 0}),
        sse("content_block_start", {"index": 1, "content_block": {"type": "tool_use", "id": "t1", "name": "a",
                                                                  "input": {}}}),
        sse("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"q":'}}),
        sse("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": "1}"}}),
        sse("content_block_stop", {"index": 1}),
        ("ping", b'{"type": "ping"}'),
        sse("content_block_start", {"index": 2, "content_block": {"type": "text", "text": ""}}),
        sse("content_block_delta", {"index": 2, "delta": {"type": "text_delta", "text": "then"}}),
        sse("content_block_start", {"index": 3, "content_block": {"type": "tool_use", "id": "t2", "name": "b",
                                                                  "input": {}}}),
        sse("content_block_delta", {"index": 3, "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
        sse("message_delta", {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}}),
        sse("message_stop", {}),
    ]
    chunks = [chunk for event, data in events for chunk in translator.feed(event, data)]
    assert translator.done
    assert "".join(c.text for c in chunks) == "First then"
    tool = [(c.tool_index, c.tool_id, c.tool_name, c.tool_arguments) for c in chunks if c.tool_index is not None]
    assert tool == [(0, "t1", "a", ""), (0, None, None, '{"q":'), (0, None, None, "1}"),
                    (1, "t2", "b", ""), (1, None, None, "{}")]
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["tool_calls"]
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens) == (20, 9, 4)


def test_stream_structured_block_is_text_and_finishes_with_stop() -> None:
    translator = StreamTranslator("output", "anthropic")
    events = [
        sse("content_block_start", {"index": 0, "content_block": {"type": "tool_use", "id": "t", "name": "output",
                                                                  "input": {}}}),
        sse("content_block_delta", {"index": 0, "delta": {"type": "input_json_delta", "partial_json": '{"x"'}}),
        sse("content_block_delta", {"index": 0, "delta": {"type": "input_json_delta", "partial_json": ": 1}"}}),
        sse("message_delta", {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 3}}),
    ]
    chunks = [chunk for event, data in events for chunk in translator.feed(event, data)]
    assert [c.text for c in chunks if c.text] == ['{"x"', ": 1}"]
    assert all(c.tool_index is None for c in chunks)
    assert chunks[-1].finish_reason == "stop"


@pytest.mark.parametrize(("kind", "error_type"), [
    ("overloaded_error", UpstreamUnavailableError),
    ("api_error", UpstreamUnavailableError),
    ("rate_limit_error", UpstreamRateLimitedError),
    ("invalid_request_error", ModelRejectedError),
])
def test_error_events_are_mapped(kind: str, error_type: type) -> None:
    translator = StreamTranslator(None, "anthropic")
    with pytest.raises(error_type, match="Overloaded now"):
        translator.feed("error", orjson.dumps({"type": "error", "error": {"type": kind, "message": "Overloaded now"}}))
    assert isinstance(error_from_event("not a dict", "anthropic"), UpstreamUnavailableError)


def test_malformed_stream_events_are_protocol_errors() -> None:
    translator = StreamTranslator(None, "anthropic")
    with pytest.raises(UpstreamProtocolError):
        translator.feed("content_block_delta", b"{not json")
    with pytest.raises(UpstreamProtocolError):
        translator.feed("content_block_delta", b'{"type": "content_block_delta"}')
    with pytest.raises(UpstreamProtocolError, match="unknown block"):
        translator.feed("content_block_delta", orjson.dumps({
            "type": "content_block_delta", "index": 5, "delta": {"type": "input_json_delta", "partial_json": "{"}
        }))
