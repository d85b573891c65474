"""A stdio MCP server for the client tests, built with the ``mcp`` SDK's ``FastMCP`` (mcp<2:
Codex 0.169 lists no tools from a 2.x ``MCPServer``).

Its one tool computes its answer, so seeing the answer proves the server ran:
``magic_word("San Francisco")`` is ``"magic-san-francisco-42"``. Codex starts it from its
``config.toml`` (``[mcp_servers.demo] command = python, args = [this file]``).
"""

from __future__ import annotations

from mcp.server.fastmcp import FastMCP

server = FastMCP("demo")


def magic(word: str) -> str:
    return f"magic-{'-'.join(word.lower().split())}-{6 * 7}"


@server.tool()
def magic_word(word: str) -> str:
    """Turn a word into its magic word."""
    return magic(word)


if __name__ == "__main__":
    server.run()  # stdio
