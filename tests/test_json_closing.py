"""``closing_suffix``: mend cut-off JSON by appending, or say it cannot be mended."""

from __future__ import annotations

import json

import pytest

from shim.core.deltas import ToolCallArgsDelta
from shim.dialects.registry import get_dialect
from shim.ids import CountingIds
from shim.translate.chat_reader import ChatStreamReader
from shim.translate.json_closing import closing_suffix
from shim.wire import chat as c

CASES = {
    "valid already": ('{"cmd": "pwd"}', ""),
    "cut in a string value": ('{"cmd": "pwd', '"}'),
    "cut in a key": ('{"cm', '":null}'),
    "cut after a key": ('{"cmd"', ":null}"),
    "cut after a colon": ('{"cmd": ', "null}"),
    "cut in a literal": ('{"a": tr', "ue}"),
    "cut in null": ('{"a": n', "ull}"),
    "cut in a number": ('{"a": 12', "}"),
    "cut after a decimal point": ('{"a": 1.', "0}"),
    "cut in an exponent": ('{"a": 1e', "0}"),
    "nested array of strings": ('{"prefix_rule": ["', '"]}'),
    "array after a comma": ("[1, ", "null]"),
    "empty object": ("{", "}"),
    "nested containers": ('{"a": [{"b": [1, 2', "]}]}"),
    "escaped quote in the string": ('{"a": "say \\"hi', '"}'),
    "llama's spacing": ('{ "city": "Paris', '"}'),
}

UNMENDABLE = {
    "not JSON": "cmd: pwd",
    "cut after a comma in an object": '{"a": 1, ',
    "cut inside an escape": '{"a": "x\\',
    "cut inside a unicode escape": '{"a": "x\\u00',
    "mismatched bracket": '{"a": [1}',
    "trailing garbage": '{"a": 1} x',
    "empty": "",
}


@pytest.mark.parametrize(("text", "suffix"), CASES.values(), ids=CASES.keys())
def test_closing_suffix_mends(text: str, suffix: str) -> None:
    assert closing_suffix(text) == suffix
    json.loads(text + suffix)


@pytest.mark.parametrize("text", UNMENDABLE.values(), ids=UNMENDABLE.keys())
def test_closing_suffix_gives_up(text: str) -> None:
    assert closing_suffix(text) is None


def _streamed_arguments(dialect: str, finish: str, pieces: list[str]) -> str:
    """The arguments a streamed call ends with, read under ``dialect``."""
    reader = ChatStreamReader(get_dialect(dialect).response, CountingIds())
    deltas = []
    for n, piece in enumerate(pieces):
        call = c.ChoiceDeltaToolCall(
            index=0,
            id="call_1" if n == 0 else None,
            function=c.ChoiceDeltaToolCallFunction(name="run" if n == 0 else None, arguments=piece),
        )
        chunk = c.ChatCompletionChunk(id="x", created=1, model="m")
        chunk.choices.append(c.ChunkChoice(index=0, delta=c.ChoiceDelta(tool_calls=[call])))
        deltas += reader.feed(chunk)
    last = c.ChatCompletionChunk(id="x", created=1, model="m")
    last.choices.append(c.ChunkChoice(index=0, delta=c.ChoiceDelta(), finish_reason=finish))
    deltas += reader.feed(last) + reader.finish()
    return "".join(d.arguments for d in deltas if isinstance(d, ToolCallArgsDelta))


READER_CASES = [
    # (dialect, finish_reason, arguments read)
    pytest.param("llamacpp-python-functions", "tool_calls", '{"cmd": "ls -la"}', id="closed-when-finished"),
    pytest.param("llamacpp-python-functions", "length", '{"cmd": "ls -la', id="a-cut-by-length-stays-cut"),
    pytest.param("llamacpp", "tool_calls", '{"cmd": "ls -la', id="other-dialects-leave-it"),
]


@pytest.mark.parametrize(("dialect", "finish", "expected"), READER_CASES)
def test_reader_appends_the_closing_as_a_last_delta(dialect: str, finish: str, expected: str) -> None:
    assert _streamed_arguments(dialect, finish, ['{"cmd": ', '"ls -la']) == expected
