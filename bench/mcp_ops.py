"""The shim's MCP client alone: CPU time per ``list_tools`` + ``call_tool`` pair (issue 18).

    taskset -c 0 .venv/bin/python -m bench.mcp_ops [--pairs 200] [--runs 5]
    PYTHONPATH=/tmp/other-checkout taskset -c 0 .venv/bin/python -m bench.mcp_ops   # another checkout

``shim.hosted.mcp_client`` (whichever checkout comes first on ``sys.path``) against a real MCP
server (``tests/support/mcp_server.py``, streamable HTTP) started on core 1: the operations a
hosted response makes, without the shim's HTTP layer and upstream rounds. The figure is this
process's CPU time (``time.process_time``: the server's work is in its own process) per pair,
median of ``--runs``, after a warm-up; the first pair (opening the session) is in the warm-up.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from shim.cli.embedded import free_port

SCRIPT = Path(__file__).resolve().parent.parent / "tests" / "support" / "mcp_server.py"


async def _pairs(url: str, n: int) -> float:
    from shim.hosted.mcp_client import call_tool, list_tools
    from shim.hosted.servers import HostedConfig, McpServer

    server, config = McpServer("demo", url), HostedConfig(allow=(url,))
    started = time.process_time()
    for _ in range(n):
        await list_tools(server, config)
        result = await call_tool(server, "magic_word", {"word": "Paris"}, config)
        assert result.output == "magic-paris-42", result
    return (time.process_time() - started) * 1000 / max(n, 1)


async def _measure(url: str, pairs: int, runs: int) -> list[float]:
    await _pairs(url, 20)
    out = [await _pairs(url, pairs) for _ in range(runs)]
    closing = sys.modules.get("shim.hosted.sessions")
    if closing is not None:
        await closing.close_all()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--server-cpus", default="1", help="cores of the MCP server")
    args = parser.parse_args(argv)
    port = free_port()
    cmd = ["taskset", "-c", args.server_cpus, sys.executable, str(SCRIPT), str(port), "streamable-http"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        import uvloop

        runs = uvloop.run(_measure(f"http://127.0.0.1:{port}/mcp", args.pairs, args.runs))
    finally:
        proc.terminate()
        proc.wait(10)
    import shim

    cells = ", ".join(f"{r:.3f}" for r in runs)
    print(
        f"{Path(shim.__file__).parent.parent}: {statistics.median(runs):.3f} ms CPU per list + call ({cells})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
