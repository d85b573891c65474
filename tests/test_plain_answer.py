"""``chat_completion_to_response``'s short way for a plain text answer (``_plain_answer``: the
resource written straight, no chunk, deltas or events) against the long way (the completion read
as a stream of one and fed to ``ResponsesStreamWriter``): the same resource bytes and the same
ids and clock asked in the same order, for every recorded Chat completion in every dialect and
for generated completions of every shape (several choices, reasoning fields, refusals, tool and
function calls, logprobs, finish reasons, usage)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shim.dialects.registry import default_registry, get_dialect
from shim.translate import pipeline
from shim.translate.chat_reader import read_completion
from shim.translate.responses_writer import ResponsesStreamWriter
from shim.wire import chat as c
from shim.wire import responses as r

ROOT = Path(__file__).resolve().parents[1] / "fixtures"
DIALECTS = sorted(default_registry())


def _decodes(path: Path) -> bool:
    try:
        c.decode_completion(path.read_bytes())
    except msgspec.DecodeError:
        return False
    return True


COMPLETIONS = sorted(path for path in ROOT.rglob("upstream*.json") if _decodes(path))


class _Log:
    """Counting ids and a clock that note every call, in order."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def ids(self, prefix: str) -> str:
        self.calls.append(prefix)
        return f"{prefix}_{len(self.calls):04d}"

    def clock(self) -> int:
        self.calls.append("clock")
        return 1_700_000_000 + len(self.calls)


def _template() -> r.ResponseResource:
    tools: list[r.ToolField] = [
        r.FunctionTool(name="f", description=None, parameters={"type": "object"}, strict=None)
    ]
    return r.ResponseResource(id="resp_t", created_at=1, model="m", tools=tools, metadata={"k": "v"})


def _long_way(data: bytes, dialect: str, logprobs: bool) -> tuple[bytes, list[str]]:
    log = _Log()
    rules = get_dialect(dialect).response
    deltas = read_completion(c.decode_completion(data), rules, log.ids)
    writer = ResponsesStreamWriter(_template(), ids=log.ids, clock=log.clock, include_logprobs=logprobs)
    writer.start()
    writer.feed_all(deltas)
    writer.finish()
    return msgspec.json.encode(writer.response), log.calls


def _either_way(data: bytes, dialect: str, logprobs: bool) -> tuple[bytes, list[str]]:
    log = _Log()
    resource = pipeline.chat_completion_to_response(
        _template(), get_dialect(dialect), data, ids=log.ids, clock=log.clock, include_logprobs=logprobs
    )
    return msgspec.json.encode(resource), log.calls


def _short(data: bytes, dialect: str, logprobs: bool) -> bool:
    """Whether ``data`` takes the short way."""
    completion = c.decode_completion(data)
    rules = get_dialect(dialect).response
    log = _Log()
    return pipeline._plain_answer(_template(), completion, rules, log.ids, log.clock, logprobs) is not None


def test_the_corpus_has_completions_both_ways() -> None:
    short = [p for p in COMPLETIONS if _short(p.read_bytes(), "openai", False)]
    assert len(COMPLETIONS) >= 20
    assert 10 <= len(short) < len(COMPLETIONS)  # plain answers, and others that go the long way


@pytest.mark.parametrize("logprobs", [False, True])
@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("path", COMPLETIONS, ids=lambda p: str(p.relative_to(ROOT).parent))
def test_recorded_completions(path: Path, dialect: str, logprobs: bool) -> None:
    data = path.read_bytes()
    assert _either_way(data, dialect, logprobs) == _long_way(data, dialect, logprobs)


def test_the_bench_answer_takes_the_short_way() -> None:
    from bench.fake_upstream import chat_answers

    whole, _ = chat_answers(50)
    assert _short(whole, "openai", False)
    assert _either_way(whole, "openai", False) == _long_way(whole, "openai", False)


_texts = st.one_of(
    st.none(),
    st.just(""),
    st.sampled_from(["Hello.", "<think>hm</think>yes", 'a "quoted" \\ line\n', "é ✓ 🙂"]),
    st.text(max_size=20),
)
_maybe_str = st.one_of(st.none(), st.just(""), st.text(min_size=1, max_size=8))
_usage = st.one_of(
    st.none(),
    st.builds(
        lambda p, n, cached, reasoning: {
            "prompt_tokens": p,
            "completion_tokens": n,
            "total_tokens": p + n,
            **({"prompt_tokens_details": {"cached_tokens": cached}} if cached is not None else {}),
            **(
                {"completion_tokens_details": {"reasoning_tokens": reasoning}}
                if reasoning is not None
                else {}
            ),
        },
        st.integers(0, 500),
        st.integers(0, 500),
        st.one_of(st.none(), st.integers(0, 9)),
        st.one_of(st.none(), st.integers(0, 9)),
    ),
)
_logprobs = st.one_of(
    st.none(),
    st.just({"content": None}),
    st.just({"content": []}),
    st.just({"content": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105], "top_logprobs": []}]}),
)
_calls = st.one_of(
    st.none(),
    st.just([]),
    st.just([{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]),
)


@st.composite
def _choice(draw: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": draw(_texts)}
    for name, values in (
        ("refusal", _maybe_str),
        ("reasoning_content", _maybe_str),
        ("reasoning", _maybe_str),
        ("tool_calls", _calls),
        ("function_call", st.one_of(st.none(), st.just({"name": "f", "arguments": "{}"}))),
    ):
        if draw(st.booleans()):
            message[name] = draw(values)
    return {
        "index": draw(st.sampled_from([0, 0, 0, 1])),
        "message": message,
        "logprobs": draw(_logprobs),
        "finish_reason": draw(
            st.sampled_from([None, "", "stop", "length", "content_filter", "tool_calls", "eos", "max_tokens"])
        ),
    }


@st.composite
def _completion(draw: Any) -> bytes:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": draw(st.lists(_choice(), min_size=0, max_size=2)),
    }
    usage = draw(_usage)
    if usage is not None or draw(st.booleans()):
        body["usage"] = usage
    return msgspec.json.encode(body)


@settings(max_examples=600, deadline=None)
@given(
    data=_completion(),
    dialect=st.sampled_from(["openai", "think-tags", "deepseek", "vllm", "llamacpp-server"]),
    logprobs=st.booleans(),
)
def test_generated_completions(data: bytes, dialect: str, logprobs: bool) -> None:
    assert _either_way(data, dialect, logprobs) == _long_way(data, dialect, logprobs)
