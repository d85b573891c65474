"""Tools the shim runs itself inside one response (hosted tools): IO, no HTTP framework.

``servers.py`` says where a client's ``mcp`` tool may connect (the operator's allow list and
registered servers) and ``mcp_client.py`` talks to one server with the official ``mcp`` SDK,
over sessions ``sessions.py`` keeps open between operations (``tool_output.py``: the SDK's session
with a cheaper check of a tool's structured output).
The loop of several upstream rounds that uses them is ``shim/turns/hosted_loop.py``; what is
sans-IO about it (the items, the events, the history the model reads) is in ``shim/translate/``.
"""
