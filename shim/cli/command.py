"""The ``shim`` command: ``serve`` (the main job), ``convert`` (recorded traffic) and ``fixtures check``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from shim import __version__
from shim.cli.startup import StartupError
from shim.settings import AUTO_DIALECT, Route, Settings

if TYPE_CHECKING:
    from shim.cli.embedded import EmbeddedUpstream
    from shim.http.app import App

__all__ = ["main"]


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


def _fail(message: str) -> int:
    """A start-up error: one line, no traceback, exit status 2."""
    print(f"shim: error: {message}", file=sys.stderr)
    return 2


def _workers(args: argparse.Namespace) -> int:
    from shim.settings import environment

    workers: int = args.workers if args.workers is not None else environment().workers
    if workers < 1:
        raise StartupError(f"--workers / SHIM_WORKERS: {workers} is not allowed: 1 or more")
    return workers


def _profile_name(args: argparse.Namespace) -> str:
    from shim.cli.embedded import DEFAULT_PROFILE, EMBEDDED_PROFILES, PROFILE_ENV
    from shim.settings import environment

    name: str = args.embedded_format or environment().embedded_format or DEFAULT_PROFILE
    if name not in EMBEDDED_PROFILES:
        raise StartupError(
            f"--embedded-format / {PROFILE_ENV}: {name!r} is not one of: {', '.join(EMBEDDED_PROFILES)}"
        )
    return name


def _detect_dialects(settings: Settings) -> tuple[Settings, list[str], list[str]]:
    """Routes with ``dialect = "auto"`` get the dialect their upstream's answers point to."""
    from shim.upstream.probe import probe

    notes: list[str] = []
    warnings: list[str] = []
    routes: list[Route] = []
    for route in settings.routes:
        if route.dialect == AUTO_DIALECT:
            choice = probe(route.upstream, api_key=route.own_key())
            route = msgspec.structs.replace(route, dialect=choice.dialect)
            notes.append(f"{route.upstream}: dialect {choice.dialect} (detected: {choice.reason})")
            if choice.guess:
                warnings.append(
                    f"the dialect {choice.dialect!r} for {route.upstream} is a guess ({choice.reason}); "
                    "name it with --dialect / SHIM_DIALECT (see shim serve --help)"
                )
        else:
            notes.append(f"{route.upstream}: dialect {route.dialect}")
        routes.append(route)
    return msgspec.structs.replace(settings, routes=tuple(routes)), notes, warnings


def _start_embedded(settings: Settings, profile_name: str) -> tuple[Settings, EmbeddedUpstream, list[str]]:
    """Start the embedded llama.cpp upstream and one catch-all route to it, set up as its profile says."""
    from shim.cli.embedded import (
        DESCRIPTION,
        EMBEDDED_PROFILES,
        MODEL_ALIAS,
        PROFILE_ENV,
        EmbeddedUpstream,
    )

    profile = EMBEDDED_PROFILES[profile_name]
    print(
        "shim: no upstream configured; starting the embedded llama.cpp upstream "
        f"(--chat_format {profile.chat_format})",
        file=sys.stderr,
    )
    embedded = EmbeddedUpstream(chat_format=profile.chat_format, n_ctx=profile.n_ctx)
    url = embedded.start()
    timeouts = settings.server.timeouts
    if timeouts.first_byte < profile.first_byte_timeout:
        timeouts = msgspec.structs.replace(timeouts, first_byte=profile.first_byte_timeout)
        settings = msgspec.structs.replace(
            settings, server=msgspec.structs.replace(settings.server, timeouts=timeouts)
        )
    route = Route(
        upstream=url,
        dialect=profile.dialect,
        max_output_tokens=profile.max_output_tokens,
        temperature=profile.temperature,
        stop=profile.stop,
        max_tool_rounds=profile.max_tool_rounds,
        context_window=profile.n_ctx,  # truncation "auto" trims to it (its overflowing streams are empty)
        cancel_json=profile.cancel_json,
    )
    other = next(name for name in EMBEDDED_PROFILES if name != profile_name)
    notes = [
        f"{url}: the embedded model {MODEL_ALIAS!r}: {DESCRIPTION}",
        f"  format {profile_name} (llama-cpp-python --chat_format {profile.chat_format}, dialect "
        f"{profile.dialect}; for requests that set none: max_output_tokens {profile.max_output_tokens}"
        + (f", temperature {profile.temperature:g}" if profile.temperature is not None else "")
        + (f", stop {list(profile.stop)!r}" if profile.stop else "")
        + (f", max_tool_rounds {profile.max_tool_rounds}" if profile.max_tool_rounds is not None else "")
        + f"; n_ctx {profile.n_ctx}, first-byte timeout {timeouts.first_byte:g} s); {PROFILE_ENV}={other} or --embedded-format {other} for the other",
        "  for real answers point the shim at a real server: "
        "shim serve --upstream http://HOST:PORT/v1 (the dialect is detected; --dialect NAME names it)",
    ]
    return msgspec.structs.replace(settings, routes=(route,)), embedded, notes


def _serve(args: argparse.Namespace) -> int:
    from shim.cli.embedded import MODEL_ALIAS, EmbeddedUpstreamError
    from shim.cli.startup import check_port, check_settings
    from shim.conversation.keyring import server_secret
    from shim.settings import environment, load_settings

    # Everything is checked before the banner and before the embedded upstream starts.
    try:
        settings = load_settings(
            config=args.config,
            upstream=args.upstream,
            dialect=args.dialect,
            default_dialect=AUTO_DIALECT,
            kind=args.kind,
            stateful=args.stateful,
            host=args.host,
            port=args.port,
            store=args.store,
            record=args.record,
            inspector=args.inspector,
        )
        workers = _workers(args)
        profile_name = _profile_name(args)
        warnings = check_settings(settings)
        check_port(settings.server.host, settings.server.port)
        server_secret(settings.server)  # made once here, before worker processes could race for it
    except (ValueError, OSError, StartupError) as exc:
        return _fail(str(exc))
    env = environment()
    if not settings.routes and env.no_embedded:
        return _fail(
            "no upstream configured: set SHIM_UPSTREAM_URL (or --upstream URL, or --config FILE);"
            " SHIM_NO_EMBEDDED forbids starting the embedded llama.cpp upstream"
        )
    embedded: EmbeddedUpstream | None = None
    if settings.routes:
        settings, notes, guesses = _detect_dialects(settings)
        warnings += guesses
    else:
        try:
            settings, embedded, notes = _start_embedded(settings, profile_name)
        except EmbeddedUpstreamError as exc:
            print(f"shim: the embedded upstream failed: {exc}", file=sys.stderr)
            return 1
    host, port = settings.server.host, settings.server.port
    from shim.http.observability import configure_logging

    configure_logging(enabled=env.access_log)  # JSON line per request
    model = MODEL_ALIAS if embedded else "MODEL"
    print(
        f"shim: serving Open Responses on http://{host}:{port}/v1/responses"
        f" (and Chat Completions on /v1/chat/completions)\n"
        + "".join(f"  upstream {note}\n" if not note.startswith("  ") else f"  {note}\n" for note in notes)
        + f"  try: curl -s http://{host}:{port}/v1/responses -H 'content-type: application/json' "
        f"""-d '{{"model":"{model}","input":"Say hello.","max_output_tokens":32}}'""",
        file=sys.stderr,
    )
    for warning in warnings:
        print(f"shim: warning: {warning}", file=sys.stderr)
    return _run(args, settings, workers, embedded)


def _run(
    args: argparse.Namespace, settings: Settings, workers: int, embedded: EmbeddedUpstream | None
) -> int:
    import uvicorn

    from shim.http.app import create_app
    from shim.http.corked import http_protocol
    from shim.http.runtime_tuning import tune_for_serving
    from shim.settings import environment

    if embedded is not None:
        # uvicorn re-raises a captured SIGTERM after its shutdown; with the default handler that
        # kills the process before `finally` could stop the embedded server.
        signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        options = {
            "host": settings.server.host,
            "port": settings.server.port,
            "log_level": environment().log_level.lower(),
            # uvicorn's own access line is written at INFO: below that level it never is, yet its
            # arguments are built for every request unless it is off (~2.4 µs, bench/README.md)
            "access_log": environment().log_level.lower() in ("trace", "debug", "info"),
            "loop": args.loop,
            "http": http_protocol(args.http),  # an answer's head written with its body (http/corked.py)
            "timeout_graceful_shutdown": max(1, round(settings.server.shutdown_timeout)),
            "ws_max_size": settings.server.max_body_bytes,  # a WebSocket frame may be as big as a body
        }
        if workers > 1:
            return _run_workers(settings, workers, options)
        uvicorn.run(tune_for_serving(create_app(settings)), **options)
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


def _run_workers(settings: Settings, workers: int, options: dict[str, Any]) -> int:
    """``workers`` processes, each listening on its own socket (shim/cli/supervisor.py)."""
    import uvicorn

    from shim.cli.supervisor import Supervisor, listen
    from shim.http.worker_metrics import prepare as prepare_shared_metrics
    from shim.settings import settings_for_worker

    # Worker processes cannot receive an app object: they rebuild it from the settings in the
    # environment through the ``app_from_env`` factory.
    settings_for_worker(settings)
    prepare_shared_metrics()  # every worker's counts in every scrape
    config = uvicorn.Config("shim.cli.command:app_from_env", factory=True, workers=workers, **options)
    host, port = settings.server.host, settings.server.port
    try:
        sockets, shared_because = listen(host, port, workers, config.backlog)
    except OSError as exc:
        return _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    if shared_because:
        print(
            f"shim: warning: the {workers} workers share one listening socket ({shared_because}):"
            " a burst of connections may all go to one worker",
            file=sys.stderr,
        )
    address = sockets[0].getsockname()
    if port == 0:  # the banner said port 0: say which one the system chose
        print(f"shim: listening on port {address[1]}", file=sys.stderr)
    logging.getLogger("uvicorn.error").info(
        "%d workers listening on %s port %d (%s)",
        workers,
        address[0],
        address[1],
        "one socket shared" if shared_because else "one SO_REUSEPORT socket each",
    )
    return Supervisor(config, sockets, workers).run()


def _convert(args: argparse.Namespace) -> int:
    from shim.cli.convert import run_convert

    result: int = run_convert(args)
    return result


def build_parser() -> argparse.ArgumentParser:
    from shim.cli.embedded import DEFAULT_PROFILE, EMBEDDED_PROFILES, PROFILE_ENV
    from shim.dialects.registry import default_registry

    parser = argparse.ArgumentParser(prog="shim", description=__doc__)
    parser.add_argument("--version", action="version", version=f"shim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    dialects = ", ".join(sorted(default_registry()))

    serve = sub.add_parser("serve", help="serve Open Responses (and Chat Completions) over an upstream")
    serve.add_argument("--upstream", help="upstream base URL ending in /v1 (env SHIM_UPSTREAM_URL)")
    serve.add_argument(
        "--dialect",
        help=f"dialect of the upstream (env SHIM_DIALECT): {dialects}; default {AUTO_DIALECT}: "
        "ask the upstream at start and choose",
    )
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
        "--store",
        help="store URL: diskcache:///path, redis://host:6379/0, memory://, or none to keep nothing "
        "(env SHIM_STORE, default diskcache under SHIM_DATA_DIR)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        help="worker processes, each on its own SO_REUSEPORT socket (env SHIM_WORKERS, default 1)",
    )
    serve.add_argument(
        "--embedded-format",
        choices=list(EMBEDDED_PROFILES),
        help=f"with no upstream: how the embedded model is served (env {PROFILE_ENV}, default "
        f"{DEFAULT_PROFILE}; shim/cli/embedded.py EMBEDDED_PROFILES)",
    )
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

    try:
        env = environment()
    except ValueError as exc:  # a SHIM_* variable that is not what it must be
        return _fail(str(exc))
    logging.basicConfig(level=env.log_level.upper(), format="%(message)s")
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
