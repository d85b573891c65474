"""The scripted Open Responses upstream (``tests/support/scripted_responses.py``) as a process.

The Chat clients' tests run the shim on a ``responses`` route over it. Two GET endpoints are
added for the tests, since the upstream lives in another process:

- ``GET /v1/models``: 200, so the fixture can wait until it is up;
- ``GET /v1/_requests``: every ``POST /v1/responses`` body it received, in order, so a test can
  check what the shim sent upstream (a tool's output, the translated history).

The scripted model calls the first offered function tool until a ``function_call_output`` ends
the input, then answers in text quoting the last user message. It is stateless: the shim sends
the whole history.

``python tests/clients/scripted_responses_shell.py PORT [--reasoning]`` serves it on 127.0.0.1.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``tests.support`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.scripted_asgi import run, send_json
from tests.support.scripted_responses import ScriptedResponses

REQUESTS_PATH = "/v1/_requests"
# ``--reasoning``: thoughts streamed before each answer, and a reasoning item with
# ``encrypted_content`` (``enc:<turn>``) the shim must carry across a Chat client's turns.
THOUGHTS = ["The user wants ", "an answer; ", "think first."]


def make_app(upstream: ScriptedResponses) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            if scope["path"] == REQUESTS_PATH:
                await send_json(send, 200, upstream.requests)
                return
            if scope["path"] == "/v1/models":
                await send_json(
                    send, 200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]}
                )
                return
        await upstream(scope, receive, send)

    return app


if __name__ == "__main__":
    scripted = ScriptedResponses(reasoning=THOUGHTS if "--reasoning" in sys.argv[2:] else None)
    run(make_app(scripted))
