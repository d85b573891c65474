"""A hosted response's bytes, byte for byte: the JSON answer, the SSE stream and the two Chat
requests sent upstream, on counting ids and a fixed clock (the snapshots were taken before the
hosted loop's CPU work, issue 18: a faster loop must give the very same bytes).

The app is ``bench.hosted_inproc``'s (the upstream answering as ``bench.fake_upstream
--tool-call`` does, round one a call, round two the text), with the MCP client replaced at its
boundary by the real test server's answers: what is compared is the shim's own work around it.
"""

from __future__ import annotations

import json

import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.single_file import SingleFileSnapshotExtension

from bench import hosted_inproc
from shim.hosted import mcp_client
from shim.ids import CountingIds, fixed_clock


@pytest.mark.parametrize(
    ("hosted", "stream"),
    [(True, False), (True, True), (False, False), (False, True)],
    ids=["hosted-json", "hosted-sse", "plain-json", "plain-sse"],
)
async def test_bytes_unchanged(
    monkeypatch: pytest.MonkeyPatch, snapshot: SnapshotAssertion, hosted: bool, stream: bool
) -> None:
    monkeypatch.setattr("shim.http.app.RandomIds", CountingIds)
    monkeypatch.setattr("shim.http.app.system_clock", fixed_clock())
    for name, stub in hosted_inproc.mcp_stubs().items():
        monkeypatch.setattr(mcp_client, name, stub)
    seen: list[bytes] = []
    app = hosted_inproc.create(50, seen)
    answers = []
    for _ in range(2):  # the second response runs on warm caches: the same bytes again
        status, data = await hosted_inproc.answer(app, hosted_inproc.body(hosted, stream))
        assert status == 200, data[:500]
        answers.append(data)
    assert len(seen) == (4 if hosted else 2)
    first = answers[0]
    if hosted:
        assert hosted_inproc.OUTPUT.encode() in first
    # The second answer differs only by its ids (the counter goes on): same length, same shape.
    assert len(answers[1]) == len(first)
    assert seen[len(seen) // 2 :] == seen[: len(seen) // 2]
    single = snapshot.use_extension(SingleFileSnapshotExtension)
    assert first == single(name="answer")
    assert json.dumps([s.decode() for s in seen], indent=1).encode() == single(name="upstream")
