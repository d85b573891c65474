"""Deltas → Chat Completions chunks: one row per behaviour, plus properties checked on every row.

Rows write each expected chunk compactly (``{"delta": ...}``, ``{"finish_reason": ...}``,
``{"usage": ...}``); ``_expand`` adds the envelope every chunk shares. For every row:
each chunk validates with openai-python's ``ChatCompletionChunk``, the ``completion`` with its
``ChatCompletion``, and folding the chunks (openai-python's ``ChatCompletionStreamState`` and our
``accumulate``) gives the ``completion`` the writer built: non-streaming is a stream of one.
The last part drives the same deltas through real Open Responses SSE (our forward writer's
events) and ``ChatChoiceDriver``.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from openai.lib.streaming.chat._completions import ChatCompletionStreamState
from openai.types.chat import ChatCompletion as OpenAIChatCompletion
from openai.types.chat import ChatCompletionChunk as OpenAIChunk

from shim.core.deltas import (
    Delta,
    ErrorDelta,
    FinishDelta,
    MetaDelta,
    ReasoningDelta,
    ReasoningEncryptedDelta,
    ReasoningSummaryDelta,
    RefusalDelta,
    TextDelta,
    TokenLogprob,
    ToolCallArgsDelta,
    ToolCallStartDelta,
    TopLogprob,
    UsageDelta,
)
from shim.fixtures.accumulate import accumulate
from shim.ids import CountingIds, fixed_clock
from shim.sse import encode_event
from shim.translate.chat_over_responses import ChatChoiceDriver, resource_to_completion, run_chat_driver
from shim.translate.chat_writer import ChatStreamWriter, error_chunk_bytes
from shim.translate.responses_writer import ResponsesStreamWriter
from shim.wire import chat as c
from shim.wire import responses as r
from shim.wire.responses_decode import encode

ID, CREATED, MODEL = "chatcmpl-1", 1_700_000_000, "gpt-test"
OPEN = {"delta": {"role": "assistant", "content": "", "refusal": None}}
STOP = {"finish_reason": "stop"}
LP = TokenLogprob("Hi", -0.5, [72, 105], [TopLogprob("Hi", -0.5, [72, 105]), TopLogprob("Yo", -1.5, None)])
LP_JSON = {
    "token": "Hi",
    "logprob": -0.5,
    "bytes": [72, 105],
    "top_logprobs": [
        {"token": "Hi", "logprob": -0.5, "bytes": [72, 105]},
        {"token": "Yo", "logprob": -1.5, "bytes": None},
    ],
}
USAGE = UsageDelta(input_tokens=10, output_tokens=5, cached_tokens=2, reasoning_tokens=3)
USAGE_JSON = {
    "prompt_tokens": 10,
    "completion_tokens": 5,
    "total_tokens": 15,
    "prompt_tokens_details": {"cached_tokens": 2, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 3,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}


def _tc(index: int, **fields: Any) -> dict[str, Any]:
    return {"delta": {"tool_calls": [{"index": index, **fields}]}}


def _args(index: int, arguments: str) -> dict[str, Any]:
    return _tc(index, function={"arguments": arguments})


def _start(index: int, call_id: str, name: str) -> dict[str, Any]:
    return _tc(index, id=call_id, type="function", function={"name": name, "arguments": ""})


def _content(text: str) -> dict[str, Any]:
    return {"delta": {"content": text}}


# (id, writer options, deltas, expected chunks, expected completion message fields)
ROWS: list[tuple[str, dict[str, Any], list[Delta], list[dict[str, Any]], dict[str, Any]]] = [
    (
        "text",
        {},
        [MetaDelta(model="up", upstream_id="resp_1"), TextDelta("Hel"), TextDelta("lo"), FinishDelta("stop")],
        [OPEN, _content("Hel"), _content("lo"), STOP],
        {"content": "Hello"},
    ),
    ("empty_answer", {}, [FinishDelta("stop")], [OPEN, STOP], {"content": None}),
    ("no_finish_delta_means_stop", {}, [TextDelta("a")], [OPEN, _content("a"), STOP], {"content": "a"}),
    (
        "refusal",
        {},
        [RefusalDelta("I can"), RefusalDelta("not."), FinishDelta("stop")],
        [OPEN, {"delta": {"refusal": "I can"}}, {"delta": {"refusal": "not."}}, STOP],
        {"content": None, "refusal": "I cannot."},
    ),
    (
        "reasoning_content",
        {},
        [ReasoningDelta("2+2"), ReasoningDelta("=4"), TextDelta("4"), FinishDelta("stop")],
        [
            OPEN,
            {"delta": {"reasoning_content": "2+2"}},
            {"delta": {"reasoning_content": "=4"}},
            _content("4"),
            STOP,
        ],
        {"content": "4", "reasoning_content": "2+2=4"},
    ),
    (
        "reasoning_field",
        {"reasoning": "reasoning"},
        [ReasoningDelta("hm"), TextDelta("4"), FinishDelta("stop")],
        [OPEN, {"delta": {"reasoning": "hm"}}, _content("4"), STOP],
        {"content": "4", "reasoning": "hm"},
    ),
    (
        "summary_parts_joined",
        {},
        [
            ReasoningSummaryDelta("A", 0),
            ReasoningSummaryDelta("a", 0),
            ReasoningSummaryDelta("B", 1),
            TextDelta("x"),
        ],
        [
            OPEN,
            {"delta": {"reasoning_content": "A"}},
            {"delta": {"reasoning_content": "a"}},
            {"delta": {"reasoning_content": "\n\nB"}},
            _content("x"),
            STOP,
        ],
        {"content": "x", "reasoning_content": "Aa\n\nB"},
    ),
    (
        "encrypted_reasoning_never_shown",
        {},
        [ReasoningSummaryDelta("s"), ReasoningEncryptedDelta("gAAA"), TextDelta("x")],
        [OPEN, {"delta": {"reasoning_content": "s"}}, _content("x"), STOP],
        {"content": "x", "reasoning_content": "s"},
    ),
    (
        "think_tags",
        {"reasoning": "think_tags"},
        [ReasoningDelta("a"), ReasoningDelta("b"), TextDelta("x"), TextDelta("y"), FinishDelta("stop")],
        [
            OPEN,
            _content("<think>"),
            _content("a"),
            _content("b"),
            _content("</think>"),
            _content("x"),
            _content("y"),
            STOP,
        ],
        {"content": "<think>ab</think>xy"},
    ),
    (
        "think_tags_closed_at_the_end",
        {"reasoning": "think_tags"},
        [ReasoningDelta("a"), FinishDelta("length")],
        [OPEN, _content("<think>"), _content("a"), _content("</think>"), {"finish_reason": "length"}],
        {"content": "<think>a</think>"},
    ),
    (
        "think_tags_closed_before_a_call",
        {"reasoning": "think_tags"},
        [ReasoningDelta("a"), ToolCallStartDelta(1, "call_1", "f"), ToolCallArgsDelta(1, "{}")],
        [
            OPEN,
            _content("<think>"),
            _content("a"),
            _content("</think>"),
            _start(0, "call_1", "f"),
            _args(0, "{}"),
            {"finish_reason": "tool_calls"},
        ],
        {"content": "<think>a</think>", "tool_calls": [("call_1", "f", "{}")]},
    ),
    (
        "think_tags_reopen_after_text",
        {"reasoning": "think_tags"},
        [ReasoningSummaryDelta("a", 0), ReasoningSummaryDelta("b", 1), TextDelta("x"), ReasoningDelta("c")],
        [
            OPEN,
            _content("<think>"),
            _content("a"),
            _content("\n\nb"),
            _content("</think>"),
            _content("x"),
            _content("<think>"),
            _content("c"),
            _content("</think>"),
            STOP,
        ],
        {"content": "<think>a\n\nb</think>x<think>c</think>"},
    ),
    (
        "reasoning_resumed_after_a_call_is_separated",
        {},
        [ReasoningDelta("a"), ToolCallStartDelta(1, "call_1", "f"), ReasoningDelta("b")],
        [
            OPEN,
            {"delta": {"reasoning_content": "a"}},
            _start(0, "call_1", "f"),
            {"delta": {"reasoning_content": "\n\nb"}},
            {"finish_reason": "tool_calls"},
        ],
        {"content": None, "reasoning_content": "a\n\nb", "tool_calls": [("call_1", "f", "")]},
    ),
    (
        "tool_call_after_text_gets_index_0",
        {},
        [
            TextDelta("Let me check."),
            ToolCallStartDelta(1, "call_a", "weather"),
            ToolCallArgsDelta(1, '{"city":'),
            ToolCallArgsDelta(1, '"Paris"}'),
            FinishDelta("tool_calls"),
        ],
        [
            OPEN,
            _content("Let me check."),
            _start(0, "call_a", "weather"),
            _args(0, '{"city":'),
            _args(0, '"Paris"}'),
            {"finish_reason": "tool_calls"},
        ],
        {"content": "Let me check.", "tool_calls": [("call_a", "weather", '{"city":"Paris"}')]},
    ),
    (
        "interleaved_calls_get_distinct_indexes",
        {},
        [
            ToolCallStartDelta(3, "call_a", "f"),
            ToolCallStartDelta(7, "call_b", "g"),
            ToolCallArgsDelta(7, '{"b":1}'),
            ToolCallArgsDelta(3, '{"a"'),
            ToolCallStartDelta(2, "call_c", "h"),
            ToolCallArgsDelta(3, ":1}"),
            ToolCallArgsDelta(2, "{}"),
        ],
        [
            OPEN,
            _start(0, "call_a", "f"),
            _start(1, "call_b", "g"),
            _args(1, '{"b":1}'),
            _args(0, '{"a"'),
            _start(2, "call_c", "h"),
            _args(0, ":1}"),
            _args(2, "{}"),
            {"finish_reason": "tool_calls"},
        ],
        {
            "content": None,
            "tool_calls": [("call_a", "f", '{"a":1}'), ("call_b", "g", '{"b":1}'), ("call_c", "h", "{}")],
        },
    ),
    (
        "repeated_start_and_unknown_args_ignored",
        {},
        [
            ToolCallStartDelta(0, "call_a", "f"),
            ToolCallStartDelta(0, "call_a", "f"),
            ToolCallArgsDelta(5, "x"),
            ToolCallArgsDelta(0, ""),
        ],
        [OPEN, _start(0, "call_a", "f"), {"finish_reason": "tool_calls"}],
        {"content": None, "tool_calls": [("call_a", "f", "")]},
    ),
    (
        "missing_call_id_gets_a_stable_one",
        {},
        [ToolCallStartDelta(0, "", "f")],
        [OPEN, _start(0, "call_chatcmpl-1_0", "f"), {"finish_reason": "tool_calls"}],
        {"content": None, "tool_calls": [("call_chatcmpl-1_0", "f", "")]},
    ),
    (
        "logprobs",
        {},
        [TextDelta("Hi", [LP]), TextDelta("!"), FinishDelta("stop")],
        [
            OPEN,
            {"delta": {"content": "Hi"}, "logprobs": {"content": [LP_JSON], "refusal": None}},
            _content("!"),
            STOP,
        ],
        {"content": "Hi!", "logprobs": {"content": [LP_JSON], "refusal": None}},
    ),
    (
        "usage_chunk_last",
        {"include_usage": True},
        [TextDelta("a"), USAGE, FinishDelta("stop")],
        [OPEN, _content("a"), STOP, {"usage": USAGE_JSON}],
        {"content": "a"},
    ),
    (
        "usage_only_in_the_completion",
        {},
        [TextDelta("a"), USAGE],
        [OPEN, _content("a"), STOP],
        {"content": "a"},
    ),
    (
        "usage_unknown_no_usage_chunk",
        {"include_usage": True},
        [TextDelta("a")],
        [OPEN, _content("a"), STOP],
        {"content": "a"},
    ),
    (
        "length",
        {},
        [TextDelta("a"), FinishDelta("length")],
        [OPEN, _content("a"), {"finish_reason": "length"}],
        {"content": "a"},
    ),
    (
        "content_filter",
        {},
        [FinishDelta("content_filter")],
        [OPEN, {"finish_reason": "content_filter"}],
        {"content": None},
    ),
    (
        "stop_with_calls_is_tool_calls",
        {},
        [ToolCallStartDelta(0, "call_a", "f"), FinishDelta("stop")],
        [OPEN, _start(0, "call_a", "f"), {"finish_reason": "tool_calls"}],
        {"content": None, "tool_calls": [("call_a", "f", "")]},
    ),
    (
        "length_with_calls_stays_length",
        {},
        [ToolCallStartDelta(0, "call_a", "f"), ToolCallArgsDelta(0, "{"), FinishDelta("length")],
        [OPEN, _start(0, "call_a", "f"), _args(0, "{"), {"finish_reason": "length"}],
        {"content": None, "tool_calls": [("call_a", "f", "{")]},
    ),
    (
        "upstream_model_when_none_given",
        {"model": None},
        [MetaDelta(model="up-model"), TextDelta("a")],
        [OPEN, _content("a"), STOP],
        {"content": "a"},
    ),
]

# Errors end the stream with no finish chunk: (id, deltas, expected chunks, expected error)
ERROR_ROWS: list[tuple[str, list[Delta], list[dict[str, Any]], ErrorDelta]] = [
    (
        "error_after_text",
        [TextDelta("a"), ErrorDelta("boom", code="x"), TextDelta("ignored"), FinishDelta("stop")],
        [OPEN, _content("a")],
        ErrorDelta("boom", code="x"),
    ),
    ("first_error_wins", [ErrorDelta("one"), ErrorDelta("two")], [], ErrorDelta("one")),
    (
        "finish_reason_error",
        [TextDelta("a"), FinishDelta("error")],
        [OPEN, _content("a")],
        ErrorDelta("The upstream stopped with an error.", code="upstream_error"),
    ),
]


def _expand(rows: list[dict[str, Any]], *, include_usage: bool, model: str = MODEL) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        chunk: dict[str, Any] = {
            "id": ID,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "system_fingerprint": None,
        }
        if "usage" in row:
            chunk["choices"] = []
            chunk["usage"] = row["usage"]
        else:
            chunk["choices"] = [
                {
                    "index": 0,
                    "delta": row.get("delta", {}),
                    "logprobs": row.get("logprobs"),
                    "finish_reason": row.get("finish_reason"),
                }
            ]
            if include_usage:
                chunk["usage"] = None
        out.append(chunk)
    return out


def _writer(**options: Any) -> ChatStreamWriter:
    return ChatStreamWriter(completion_id=ID, created=CREATED, **{"model": MODEL, **options})


def _run(writer: ChatStreamWriter, deltas: list[Delta]) -> list[dict[str, Any]]:
    chunks = writer.feed_all(deltas) + writer.finish()
    return [json.loads(c.encode_chunk(chunk)) for chunk in chunks]


def _message(fields: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None, "annotations": []}
    for key, value in fields.items():
        if key == "tool_calls":
            message["tool_calls"] = [
                {"id": i, "type": "function", "function": {"name": n, "arguments": a}} for i, n, a in value
            ]
        elif key != "logprobs":
            message[key] = value
    return message


@pytest.mark.parametrize(
    ("options", "deltas", "chunks", "message"), [row[1:] for row in ROWS], ids=[row[0] for row in ROWS]
)
def test_chunks(
    options: dict[str, Any], deltas: list[Delta], chunks: list[dict[str, Any]], message: dict[str, Any]
) -> None:
    writer = _writer(**options)
    got = _run(writer, deltas)
    model = MODEL if options.get("model", MODEL) is not None else "up-model"
    assert got == _expand(chunks, include_usage=options.get("include_usage", False), model=model)
    assert writer.error is None

    completion = json.loads(c.encode_completion(writer.completion))
    assert completion["choices"][0]["message"] == _message(message)
    assert completion["choices"][0]["logprobs"] == message.get("logprobs")
    assert (
        completion["choices"][0]["finish_reason"]
        == next(ch for ch in reversed(chunks) if "finish_reason" in ch)["finish_reason"]
    )
    assert completion["usage"] == (USAGE_JSON if USAGE in deltas else None)
    assert (completion["id"], completion["created"], completion["model"]) == (ID, CREATED, model)


@pytest.mark.parametrize(("options", "deltas"), [row[1:3] for row in ROWS], ids=[row[0] for row in ROWS])
def test_openai_models_accept_and_fold_the_stream(options: dict[str, Any], deltas: list[Delta]) -> None:
    writer = _writer(**options)
    chunks = writer.feed_all(deltas) + writer.finish()
    completion = writer.completion
    OpenAIChatCompletion.model_validate_json(c.encode_completion(completion))
    state = ChatCompletionStreamState()
    for chunk in chunks:
        state.handle_chunk(OpenAIChunk.model_validate_json(c.encode_chunk(chunk)))
    folded = state.current_completion_snapshot.choices[0]
    ours = completion.choices[0]
    assert folded.finish_reason == ours.finish_reason
    assert (folded.message.content or None) == ours.message.content  # the opening "" folds to ""
    assert folded.message.refusal == ours.message.refusal
    assert [(t.id, t.function.name, t.function.arguments) for t in folded.message.tool_calls or []] == [
        (t.id, t.function.name, t.function.arguments) for t in ours.message.tool_calls or [] if t.function
    ]


@pytest.mark.parametrize(("options", "deltas"), [row[1:3] for row in ROWS], ids=[row[0] for row in ROWS])
def test_streaming_and_completion_agree(options: dict[str, Any], deltas: list[Delta]) -> None:
    writer = _writer(**options)
    chunks = writer.feed_all(deltas) + writer.finish()
    folded = accumulate(chunks)
    completion = writer.completion
    if not options.get("include_usage"):
        folded.usage = completion.usage  # only the completion carries usage then
    message = folded.choices[0].message
    message.annotations = []
    # The opening chunk's ``content: ""`` folds to "" where the body says null (as OpenAI's do).
    message.content = message.content or None
    assert msgspec.to_builtins(folded) == msgspec.to_builtins(completion)


@pytest.mark.parametrize(
    ("deltas", "chunks", "error"), [row[1:] for row in ERROR_ROWS], ids=[row[0] for row in ERROR_ROWS]
)
def test_errors_end_without_a_finish_chunk(
    deltas: list[Delta], chunks: list[dict[str, Any]], error: ErrorDelta
) -> None:
    writer = _writer(include_usage=True)
    writer.feed(USAGE)
    assert _run(writer, deltas) == _expand(chunks, include_usage=True)
    assert writer.error == error
    assert writer.finish() == []


def test_opening_chunk_bytes_match_openai() -> None:
    (chunk,) = _writer().start()
    assert c.encode_chunk(chunk) == (
        b'{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-test",'
        b'"system_fingerprint":null,"choices":[{"index":0,"delta":{"role":"assistant","content":"",'
        b'"refusal":null},"logprobs":null,"finish_reason":null}]}'
    )


def test_start_is_sent_once() -> None:
    writer = _writer()
    assert len(writer.start()) == 1
    assert writer.start() == []
    assert _run(writer, [TextDelta("a")]) == _expand([_content("a"), STOP], include_usage=False)


def test_fail_from_outside_the_stream() -> None:
    writer = _writer()
    writer.feed(TextDelta("a"))
    assert writer.fail(ErrorDelta("timeout", code="upstream_timeout")) == []
    assert writer.finish() == []
    assert writer.error == ErrorDelta("timeout", code="upstream_timeout")


def test_encrypted_reasoning_is_kept_for_the_server() -> None:
    writer = _writer()
    writer.feed_all([ReasoningEncryptedDelta("one"), TextDelta("x"), ReasoningEncryptedDelta("two")])
    assert writer.encrypted_reasoning == ["one", "two"]


def test_error_chunk_bytes() -> None:
    error = ErrorDelta("Rate limited", type="rate_limit_error", code="rate_limit_exceeded")
    assert json.loads(error_chunk_bytes(error)) == {
        "error": {
            "message": "Rate limited",
            "type": "rate_limit_error",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }


# ---------------------------------------------------------------------------------------------
# Through real Open Responses SSE: forward writer events → ChatChoiceDriver (the server's driver)
# ---------------------------------------------------------------------------------------------

# The Responses hop serialises interleaved calls (one output item after another): same answer,
# different chunk order. Every other row gives the very same chunks.
REORDERED = {"interleaved_calls_get_distinct_indexes"}


def _responses(deltas: list[Delta]) -> tuple[bytes, bytes]:
    """The SSE bytes and the final resource an Open Responses server would send for ``deltas``."""
    template = r.ResponseResource(id="resp_1", created_at=CREATED, model="up-model")
    writer = ResponsesStreamWriter(template, ids=CountingIds(), clock=fixed_clock(), include_logprobs=True)
    events = writer.start() + writer.feed_all(deltas) + writer.finish()
    sse = b"".join(encode_event(str(e.__struct_config__.tag), encode(e)) for e in events)
    return sse + b"data: [DONE]\n\n", encode(writer.response)


@pytest.mark.parametrize(
    ("name", "options", "deltas"), [row[:3] for row in ROWS], ids=[row[0] for row in ROWS]
)
def test_reverse_pipeline_matches_the_direct_writer(
    name: str, options: dict[str, Any], deltas: list[Delta]
) -> None:
    sse, resource = _responses(deltas)
    stream = ChatChoiceDriver(completion_id=ID, created=CREATED, **{"model": MODEL, **options})
    chunks = run_chat_driver(stream, [sse])
    direct = _writer(**options)
    direct_chunks = direct.feed_all(deltas) + direct.finish()
    assert stream.error is None
    assert msgspec.to_builtins(stream.completion) == msgspec.to_builtins(direct.completion)
    if name not in REORDERED:
        assert [c.encode_chunk(x) for x in chunks] == [c.encode_chunk(x) for x in direct_chunks]
    # Non-streaming is a stream of one: the final resource gives the same completion.
    options = {k: v for k, v in options.items() if k != "include_usage"}
    whole = resource_to_completion(resource, completion_id=ID, created=CREATED, **{"model": MODEL, **options})
    assert msgspec.to_builtins(whole) == msgspec.to_builtins(stream.completion)


def test_reverse_pipeline_is_chunking_independent() -> None:
    deltas: list[Delta] = [
        ReasoningSummaryDelta("why"),
        TextDelta("Héllo ✓"),
        ToolCallStartDelta(9, "call_a", "f"),
        ToolCallArgsDelta(9, '{"a":1}'),
        USAGE,
        FinishDelta("tool_calls"),
    ]
    sse, _ = _responses(deltas)
    whole = run_chat_driver(ChatChoiceDriver(completion_id=ID, created=CREATED, model=MODEL), [sse])
    expected = [c.encode_chunk(x) for x in whole]
    for cut in range(1, len(sse)):
        stream = ChatChoiceDriver(completion_id=ID, created=CREATED, model=MODEL)
        got = run_chat_driver(stream, [sse[:cut], sse[cut:]])
        assert [c.encode_chunk(x) for x in got] == expected, cut


def test_reverse_pipeline_truncated_stream_fails() -> None:
    sse, _ = _responses([TextDelta("a"), FinishDelta("stop")])
    cut = sse.index(b"event: response.completed")
    stream = ChatChoiceDriver(completion_id=ID, created=CREATED, model=MODEL)
    chunks = stream.start() + stream.feed(sse[:cut]) + stream.finish(truncated=True)
    assert [ch.choices[0].finish_reason for ch in chunks] == [None, None]
    assert stream.error is not None and stream.error.code == "upstream_stream_truncated"


def test_reverse_pipeline_upstream_error_event() -> None:
    sse, resource = _responses([TextDelta("a"), ErrorDelta("overloaded", code="server_busy")])
    stream = ChatChoiceDriver(completion_id=ID, created=CREATED, model=MODEL)
    chunks = run_chat_driver(stream, [sse])
    assert [ch.choices[0].delta.content for ch in chunks] == ["", "a"]
    assert stream.error is not None and stream.error.message == "overloaded"
    whole = ChatChoiceDriver(completion_id=ID, created=CREATED, model=MODEL)
    whole.read_body(resource)
    assert whole.error is not None and whole.error.code == "server_busy"


def test_reverse_pipeline_malformed_event_is_an_error() -> None:
    stream = ChatChoiceDriver(completion_id=ID, created=CREATED, model=MODEL)
    stream.feed(b"event: response.output_text.delta\ndata: {not json\n\n")
    assert stream.finish() == []
    assert stream.error is not None and stream.error.code == "upstream_bad_event"


OPENAI_NAMES = b"""event: response.created
data: {"type":"response.created","sequence_number":0,"response":{"id":"resp_9","created_at":5,"model":"o-mini","status":"in_progress","output":[]}}

event: response.output_item.added
data: {"type":"response.output_item.added","sequence_number":1,"output_index":0,"item":{"type":"reasoning","id":"rs_1","summary":[]}}

event: response.reasoning_text.delta
data: {"type":"response.reasoning_text.delta","sequence_number":2,"item_id":"rs_1","output_index":0,"content_index":0,"delta":"think"}

event: response.output_item.done
data: {"type":"response.output_item.done","sequence_number":3,"output_index":0,"item":{"type":"reasoning","id":"rs_1","summary":[],"content":[{"type":"reasoning_text","text":"think"}],"encrypted_content":"gAAA"}}

event: response.output_item.added
data: {"type":"response.output_item.added","sequence_number":4,"output_index":1,"item":{"type":"message","id":"msg_1","status":"in_progress","role":"assistant","content":[]}}

event: response.output_text.done
data: {"type":"response.output_text.done","sequence_number":5,"item_id":"msg_1","output_index":1,"content_index":0,"text":"done-only text"}

event: response.output_item.done
data: {"type":"response.output_item.done","sequence_number":6,"output_index":1,"item":{"type":"message","id":"msg_1","status":"completed","role":"assistant","content":[{"type":"output_text","text":"done-only text","annotations":[]}]}}

event: response.output_item.done
data: {"type":"response.output_item.done","sequence_number":7,"output_index":2,"item":{"type":"function_call","id":"fc_1","call_id":"call_z","name":"f","arguments":"{}","status":"completed"}}

event: response.completed
data: {"type":"response.completed","sequence_number":8,"response":{"id":"resp_9","created_at":5,"model":"o-mini","status":"completed","output":[],"usage":{"input_tokens":3,"output_tokens":4,"total_tokens":7,"input_tokens_details":{"cached_tokens":0},"output_tokens_details":{"reasoning_tokens":1}}}}

data: [DONE]

"""


def test_reverse_pipeline_reads_openai_names_done_only_and_late_items() -> None:
    stream = ChatChoiceDriver(completion_id=ID, created=CREATED, model=None, include_usage=True)
    chunks = run_chat_driver(stream, [OPENAI_NAMES])
    for chunk in chunks:
        OpenAIChunk.model_validate_json(c.encode_chunk(chunk))
    message = stream.completion.choices[0].message
    assert (message.reasoning_content, message.content) == ("think", "done-only text")
    assert message.tool_calls and message.tool_calls[0].id == "call_z"
    assert stream.completion.choices[0].finish_reason == "tool_calls"
    assert stream.completion.model == "o-mini"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert stream.writer.encrypted_reasoning == ["gAAA"]


def _sse(*events: dict[str, Any]) -> bytes:
    return b"".join(encode_event(e["type"], json.dumps(e).encode()) for e in events)


def test_reverse_pipeline_done_only_parts_each_count_once() -> None:
    """A regression: the reader used to keep only the first done-only part of an item."""
    message = {"type": "message", "id": "m1", "status": "completed", "role": "assistant"}
    sse = _sse(
        {
            "type": "response.output_text.done",
            "item_id": "m1",
            "output_index": 0,
            "content_index": 0,
            "text": "one ",
        },
        {
            "type": "response.output_text.done",
            "item_id": "m1",
            "output_index": 0,
            "content_index": 1,
            "text": "two",
        },
        {
            "type": "response.output_text.delta",
            "item_id": "m2",
            "output_index": 1,
            "content_index": 0,
            "delta": "!",
        },
        {
            "type": "response.output_text.done",
            "item_id": "m2",
            "output_index": 1,
            "content_index": 0,
            "text": "!",
        },
        {
            "type": "response.refusal.done",
            "item_id": "m2",
            "output_index": 1,
            "content_index": 1,
            "refusal": "no",
        },
        {
            "type": "response.output_item.done",
            "output_index": 1,
            "item": {
                **message,
                "id": "m2",
                "content": [{"type": "output_text", "text": "!"}, {"type": "refusal", "refusal": "no"}],
            },
        },
        {
            "type": "response.reasoning_summary_text.done",
            "item_id": "r1",
            "output_index": 2,
            "summary_index": 0,
            "text": "a",
        },
        {
            "type": "response.reasoning_summary_text.done",
            "item_id": "r1",
            "output_index": 2,
            "summary_index": 1,
            "text": "b",
        },
        {
            "type": "response.output_item.done",
            "output_index": 2,
            "item": {
                "type": "reasoning",
                "id": "r1",
                "summary": [{"type": "summary_text", "text": "a"}, {"type": "summary_text", "text": "b"}],
            },
        },
        {"type": "response.completed", "response": {"status": "completed"}},
    )
    stream = ChatChoiceDriver(completion_id=ID, created=CREATED, model=MODEL)
    run_chat_driver(stream, [sse])
    message_out = stream.completion.choices[0].message
    assert (message_out.content, message_out.refusal, message_out.reasoning_content) == (
        "one two!",
        "no",
        "a\n\nb",
    )
