"""The ``shim`` command: ``serve`` (the main job), ``convert`` (recorded traffic) and ``fixtures check``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from shim.http.app import App

__all__ = ["main"]

EMBEDDED_MAX_OUTPUT_TOKENS = 256


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def app_from_env() -> App:
    """The app of one worker process, from the settings its parent put in the environment."""
    from shim.http.app import create_app
    from shim.http.observability import configure_logging
    from shim.http.runtime_tuning import tune_for_serving
    from shim.settings import environment, worker_settings

    # A spawned worker starts with a fresh interpreter: the same logging set-up as ``main``/``_serve``.
    env = environment()
    logging.basicConfig(level=env.log_level.upper(), format="%(message)s")
    configure_logging(enabled=env.access_log)
    return tune_for_serving(create_app(worker_settings()))


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from shim.http.app import create_app
    from shim.http.runtime_tuning import tune_for_serving
    from shim.settings import environment, load_settings, settings_for_worker

    try:
        settings = load_settings(
            config=args.config,
            upstream=args.upstream,
            dialect=args.dialect,
            kind=args.kind,
            stateful=args.stateful,
            host=args.host,
            port=args.port,
            store=args.store,
            record=args.record,
            inspector=args.inspector,
        )
    except (ValueError, OSError) as exc:
        print(f"shim: {exc}", file=sys.stderr)
        return 2
    embedded = None
    env = environment()
    if not settings.routes and env.no_embedded:
        print(
            "shim: no upstream configured: set SHIM_UPSTREAM_URL (or --upstream URL, or --config FILE);"
            " SHIM_NO_EMBEDDED forbids starting the embedded llama.cpp upstream",
            file=sys.stderr,
        )
        return 2
    if not settings.routes:
        from shim.cli.embedded import DIALECT, MODEL_ALIAS, EmbeddedUpstream, EmbeddedUpstreamError

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
            record=args.record,
            inspector=args.inspector,
        )
        # The embedded base model rarely stops by itself: cap requests that set no limit (Codex
        # sends none), or one turn generates until the context is full.
        routes = tuple(
            msgspec.structs.replace(
                route, max_output_tokens=route.max_output_tokens or EMBEDDED_MAX_OUTPUT_TOKENS
            )
            for route in settings.routes
        )
        settings = msgspec.structs.replace(settings, routes=routes)
    host, port = settings.server.host, settings.server.port
    from shim.http.observability import configure_logging

    configure_logging(enabled=env.access_log)  # JSON line per request
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
        # Worker processes cannot receive an app object: they rebuild it from the settings in the
        # environment through the ``app_from_env`` factory.
        workers = max(1, args.workers or env.workers)
        if workers > 1:
            settings_for_worker(settings)
        uvicorn.run(
            "shim.cli.command:app_from_env" if workers > 1 else tune_for_serving(create_app(settings)),
            factory=workers > 1,
            workers=workers if workers > 1 else None,
            host=host,
            port=port,
            log_level=env.log_level.lower(),
            loop=args.loop,
            http=args.http,
            timeout_graceful_shutdown=max(1, round(settings.server.shutdown_timeout)),
            ws_max_size=settings.server.max_body_bytes,  # a WebSocket frame may be as big as a body
        )
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


def _convert(args: argparse.Namespace) -> int:
    from shim.cli.convert import run_convert

    result: int = run_convert(args)
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shim", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve Open Responses (and Chat Completions) over an upstream")
    serve.add_argument("--upstream", help="upstream base URL ending in /v1 (env SHIM_UPSTREAM_URL)")
    serve.add_argument("--dialect", help="dialect of the upstream (env SHIM_DIALECT), e.g. vllm, llamacpp")
    serve.add_argument(
        "--upstream-kind",
        "--kind",
        dest="kind",
        choices=["chat", "responses"],
        help="API the upstream speaks (env SHIM_UPSTREAM_KIND, default chat)",
    )
    serve.add_argument(
        "--stateful",
        action="store_true",
        default=None,
        help="a responses upstream keeps previous_response_id itself (env SHIM_UPSTREAM_STATEFUL)",
    )
    serve.add_argument("--host", help="address to listen on (env SHIM_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (env SHIM_PORT, default 8080)")
    serve.add_argument("--config", type=Path, help="TOML config file with routes (env SHIM_CONFIG)")
    serve.add_argument(
        "--store", help="store URL: diskcache:///path, redis://host:6379/0, memory:// (env SHIM_STORE)"
    )
    serve.add_argument("--workers", type=int, help="worker processes (env SHIM_WORKERS, default 1)")
    serve.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto", help="event loop")
    serve.add_argument("--http", choices=["auto", "h11", "httptools"], default="auto", help="HTTP parser")
    serve.add_argument(
        "--record", metavar="DIR", help="write exchanges as fixture cases (env SHIM_RECORD_DIR)"
    )
    serve.add_argument(
        "--inspector", action="store_true", default=None, help="serve /inspector (env SHIM_INSPECTOR)"
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
    from shim.cli.fixtures import add_parser as add_fixtures

    add_fixtures(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from shim.settings import environment

    logging.basicConfig(level=environment().log_level.upper(), format="%(message)s")
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
