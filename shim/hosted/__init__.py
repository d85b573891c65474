"""Tools the shim runs itself inside one response (hosted tools): IO, no HTTP framework.

``servers.py`` says where a client's ``mcp`` tool may connect (the operator's allow list and
registered servers) and ``mcp_client.py`` talks to one server, over sessions ``sessions.py`` keeps
open between operations: streamable HTTP with the shim's own client (``streamable.py``), the
legacy SSE transport with the official ``mcp`` SDK (imported only then). ``tool_output.py`` checks
a tool's structured output as the SDK does, with a validator kept per schema.
The loop of several upstream rounds that uses them is ``shim/turns/hosted_loop.py``; what is
sans-IO about it (the items, the events, the history the model reads) is in ``shim/translate/``.
"""
