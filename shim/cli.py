"""The ``shim`` command: ``serve`` (the main job) and ``convert`` (recorded traffic)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

__all__ = ["main"]


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from shim.server.app import create_app
    from shim.settings import load_settings

    try:
        settings = load_settings(
            config=args.config,
            upstream=args.upstream,
            dialect=args.dialect,
            kind=args.kind,
            host=args.host,
            port=args.port,
            store=args.store,
        )
    except (ValueError, OSError) as exc:
        print(f"shim: {exc}", file=sys.stderr)
        return 2
    embedded = None
    if not settings.routes:
        from shim.embedded import DIALECT, MODEL_ALIAS, EmbeddedUpstream, EmbeddedUpstreamError

        print("shim: no upstream configured; starting the embedded llama.cpp upstream", file=sys.stderr)
        embedded = EmbeddedUpstream()
        try:
            url = embedded.start()
        except EmbeddedUpstreamError as exc:
            print(f"shim: the embedded upstream failed: {exc}", file=sys.stderr)
            return 1
        settings = load_settings(
            config=args.config,
            upstream=url,
            dialect=DIALECT,
            host=args.host,
            port=args.port,
            store=args.store,
        )
    host, port = settings.server.host, settings.server.port
    model = MODEL_ALIAS if embedded else "MODEL"
    print(
        f"shim: serving Open Responses on http://{host}:{port}/v1/responses\n"
        f"  try: curl -s http://{host}:{port}/v1/responses -H 'content-type: application/json' "
        f"""-d '{{"model":"{model}","input":"Say hello.","max_output_tokens":32}}'""",
        file=sys.stderr,
    )
    if embedded is not None:
        # uvicorn re-raises a captured SIGTERM after its shutdown; with the default handler that
        # kills the process before `finally` could stop the embedded server.
        signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        uvicorn.run(
            create_app(settings),
            host=host,
            port=port,
            log_level=os.environ.get("SHIM_LOG_LEVEL", "warning").lower(),
            loop="auto",
            http="auto",
            timeout_graceful_shutdown=30,
        )
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


def _convert(args: argparse.Namespace) -> int:
    from shim.convert import run_convert

    result: int = run_convert(args)
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shim", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve Open Responses (and Chat Completions) over an upstream")
    serve.add_argument("--upstream", help="upstream base URL ending in /v1 (env SHIM_UPSTREAM_URL)")
    serve.add_argument("--dialect", help="dialect of the upstream (env SHIM_DIALECT), e.g. vllm, llamacpp")
    serve.add_argument("--kind", choices=["chat", "responses"], help="API the upstream speaks (default chat)")
    serve.add_argument("--host", help="address to listen on (env SHIM_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (env SHIM_PORT, default 8080)")
    serve.add_argument("--config", type=Path, help="TOML config file with routes (env SHIM_CONFIG)")
    serve.add_argument(
        "--store", help="store URL: diskcache:///path, redis://host:6379/0, memory:// (env SHIM_STORE)"
    )
    serve.set_defaults(func=_serve)

    convert = sub.add_parser("convert", help="convert recorded traffic between the two formats")
    convert.add_argument("input", help="input file, or - for stdin")
    convert.add_argument("--to", choices=["chat", "responses"], required=True, help="target format")
    convert.add_argument(
        "--kind",
        choices=[
            "chat-request",
            "chat-completion",
            "chat-stream",
            "responses-request",
            "responses-resource",
            "responses-stream",
        ],
        help="input kind (default: detected)",
    )
    convert.add_argument("--dialect", default="openai", help="dialect for chat-side reading and writing")
    convert.add_argument("-o", "--output", type=Path, help="output file (default stdout)")
    convert.set_defaults(func=_convert)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("SHIM_LOG_LEVEL", "WARNING").upper(), format="%(message)s")
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
