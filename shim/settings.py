"""Settings: command line over environment over config file over defaults.

The config file (TOML) holds the server section and any number of routes; a lone
``--upstream URL`` (or ``SHIM_UPSTREAM_URL``) is shorthand for one catch-all route.

    [server]
    host = "127.0.0.1"
    port = 8080
    api_keys = ["sk-shim-1"]       # or SHIM_API_KEYS=sk-a,sk-b
    diagnostics = "warn"           # ignore | warn | error
    store = "diskcache:///var/lib/shim"  # or redis://host:6379/0, memory:// (SHIM_STORE)
    store_ttl = 2592000            # seconds a stored response lives; 0 = forever (SHIM_STORE_TTL)
    store_max_bytes = 4294967296   # diskcache size bound, LRU eviction (SHIM_STORE_MAX_BYTES)
    inspector = false              # the /inspector page (SHIM_INSPECTOR, --inspector); docs/fixtures.md

    [server.record]                # traffic as fixture cases (SHIM_RECORD_<KEY>, --record DIR)
    dir = "recorded"               # off while empty
    sample = 1.0                   # share of exchanges recorded
    statuses = ["2*", "4*"]        # globs on the client's status; models = [...]; routes = [...]

    [[routes]]
    match = "gpt-*"                # glob on the client's model name
    upstream = "https://api.openai.com/v1"
    kind = "chat"                  # chat | responses (SHIM_UPSTREAM_KIND, --upstream-kind)
    stateful = false               # responses upstream keeps previous_response_id (SHIM_UPSTREAM_STATEFUL)
    reasoning = "reasoning_content" # how Chat clients see reasoning: reasoning | think_tags
    dialect = "openai"
    api_key_env = "OPENAI_API_KEY" # the route's own key: clients then need a shim key
    provider = "nebius"            # selects this route for "model:nebius"; suffix stripped
    max_output_tokens = 1024       # limit for requests that set none (llama servers default to the context)
    temperature = 0.0              # for requests that set none (llama-cpp-python's own default is 0.8)
    stop = ["\n\n"]                # stop sequences for requests that set none (base models)
    max_tool_rounds = 4            # then tool_choice "none": the model must answer (loop guard)
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from shim.core.diagnostics import Policy
from shim.limits import Limits

__all__ = [
    "WORKER_SETTINGS",
    "Environment",
    "RecordSettings",
    "Route",
    "ServerSettings",
    "Settings",
    "Timeouts",
    "environment",
    "load_settings",
    "settings_for_worker",
    "worker_settings",
]


class Route(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    upstream: str
    match: str = "*"
    kind: Literal["chat", "responses"] = "chat"
    dialect: str = "openai"
    provider: str | None = None
    model: str | None = None  # rewrite the upstream model name
    api_key: str | None = None
    api_key_env: str | None = None
    stateful: bool = False  # a responses upstream that keeps previous_response_id itself
    # How Chat clients see reasoning (header ``x-shim-reasoning`` overrides per request).
    reasoning: Literal["reasoning_content", "reasoning", "think_tags"] = "reasoning_content"
    normalize_chat: bool = False  # chat route: re-read pass-through answers with the dialect
    continue_upstream: bool = False  # stateful route: previous_response_id + new messages only
    headers: dict[str, str] = {}
    # Output-token limit for requests that send none: some clients (Codex) never send one, and
    # llama.cpp servers then generate until the context is full.
    max_output_tokens: int | None = None
    # Sampling temperature for requests that send none: servers differ in their own default
    # (llama-cpp-python samples at 0.8), and a route may want answers that repeat.
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None
    # Stop sequences for requests that send none: a base model rarely ends a turn by itself. Only
    # with requests whose answer must be text (no tools, or tool_choice "none"): inside a call's
    # arguments a stop sequence would cut the JSON.
    stop: tuple[str, ...] = ()
    # Loop guard: after this many rounds of tool calls since the last user message the upstream
    # gets tool_choice "none" and must answer (shim/translate/tool_rounds.py).
    max_tool_rounds: Annotated[int, msgspec.Meta(ge=0)] | None = None

    def own_key(self) -> str | None:
        if self.api_key:
            return self.api_key
        if self.api_key_env:
            return os.environ.get(self.api_key_env) or None
        return None

    @property
    def has_own_key(self) -> bool:
        return bool(self.api_key or self.api_key_env)


class Timeouts(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    connect: float = 10.0
    first_byte: float = 120.0  # until the upstream sends response headers
    idle: float = 300.0  # between two chunks of a stream
    total: float = 1800.0  # one whole upstream exchange, retries and streaming included
    keepalive: float = 15.0  # SSE comment interval while the upstream is silent


class RecordSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``shim serve --record DIR``: exchanges written as fixture cases (docs/fixtures.md)."""

    dir: str = ""  # off while empty
    sample: Annotated[float, msgspec.Meta(ge=0, le=1)] = 1.0
    max_case_bytes: int = 4 * 1024**2  # a larger exchange is not written
    max_total_bytes: int = 512 * 1024**2  # recording stops once the folder holds this much
    # Filters, globs; empty lets everything through: the client's path, its model, the status it got.
    routes: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()


class ServerSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 8080
    api_keys: tuple[str, ...] = ()
    diagnostics: Policy = "warn"
    store: str = ""
    store_ttl: float = 30 * 24 * 3600.0  # seconds; 0 keeps records until evicted or deleted
    store_max_bytes: int = 4 * 1024**3  # diskcache only: least recently used entries go first
    # seconds a background response's replica may go silent before another marks it failed
    background_lease: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    retries: int = 2
    retry_max_wait: float = 20.0  # a longer upstream Retry-After is passed on, not waited out
    max_body_bytes: int = 32 * 1024 * 1024
    max_upstream_response_bytes: int = 64 * 1024 * 1024
    shutdown_timeout: float = 30.0  # in-flight requests and streams may finish for this long
    timeouts: Timeouts = Timeouts()
    limits: Limits = Limits()  # docs/operations.md lists every limit
    record: RecordSettings = RecordSettings()
    inspector: bool = False  # GET /inspector: recent exchanges (a shim key when api_keys is set)
    inspector_exchanges: int = 100  # how many recent exchanges it keeps in memory


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    server: ServerSettings = ServerSettings()
    routes: tuple[Route, ...] = ()


def _env_list(name: str) -> tuple[str, ...] | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return tuple(v.strip() for v in value.split(",") if v.strip())


# Environment names for the [server] section: SHIM_<FIELD> for its scalars (SHIM_RETRIES,
# SHIM_MAX_BODY_BYTES…), SHIM_TIMEOUT_<FIELD> for [server.timeouts], SHIM_LIMIT_<FIELD> for
# [server.limits]; so a container configures everything through its environment.
_NESTED_PREFIXES = {"timeouts": "SHIM_TIMEOUT_", "limits": "SHIM_LIMIT_", "record": "SHIM_RECORD_"}


def _env_values(struct: msgspec.Struct, prefix: str) -> dict[str, str | list[str]]:
    names = (name for name in struct.__struct_fields__ if name not in _NESTED_PREFIXES and name != "api_keys")
    found = {name: os.environ[prefix + name.upper()] for name in names if prefix + name.upper() in os.environ}
    # A list setting (SHIM_RECORD_MODELS=a,b) is written comma-separated.
    return {
        name: [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(getattr(struct, name), tuple)
        else value
        for name, value in found.items()
    }


def _overlay_env(server: ServerSettings) -> ServerSettings:
    data = msgspec.structs.asdict(server)
    data.update(_env_values(server, "SHIM_"))
    for field, prefix in _NESTED_PREFIXES.items():
        nested = getattr(server, field)
        data[field] = {**msgspec.structs.asdict(nested), **_env_values(nested, prefix)}
    try:
        return msgspec.convert(data, ServerSettings, strict=False)
    except msgspec.ValidationError as exc:
        message, _, path = str(exc).partition(" - at `$.")
        parts = path.rstrip("`").split(".")
        prefix = _NESTED_PREFIXES.get(parts[0], "SHIM_") if len(parts) > 1 else "SHIM_"
        raise ValueError(f"{prefix}{parts[-1].upper()}: {message}") from None


def load_settings(
    *,
    config: Path | None = None,
    upstream: str | None = None,
    dialect: str | None = None,
    kind: str | None = None,
    stateful: bool | None = None,
    host: str | None = None,
    port: int | None = None,
    api_key: str | None = None,
    store: str | None = None,
    record: str | None = None,
    inspector: bool | None = None,
) -> Settings:
    """Merge the sources; every value a flag or variable can set has both."""
    data: dict[str, object] = {}
    config = config or (Path(os.environ["SHIM_CONFIG"]) if os.environ.get("SHIM_CONFIG") else None)
    if config is not None:
        with open(config, "rb") as f:
            data = tomllib.load(f)
    try:
        settings = msgspec.convert(data, Settings)
    except msgspec.ValidationError as exc:
        raise ValueError(f"{config}: {exc}") from None
    server = _overlay_env(settings.server)
    env = os.environ
    server = msgspec.structs.replace(
        server,
        host=host or env.get("SHIM_HOST") or server.host,
        port=port or int(env.get("SHIM_PORT") or server.port),
        api_keys=_env_list("SHIM_API_KEYS") or server.api_keys,
        diagnostics=env.get("SHIM_DIAGNOSTICS", server.diagnostics),
        store=store or env.get("SHIM_STORE") or server.store,
        store_ttl=float(env.get("SHIM_STORE_TTL") or server.store_ttl),
        store_max_bytes=int(env.get("SHIM_STORE_MAX_BYTES") or server.store_max_bytes),
        record=msgspec.structs.replace(server.record, dir=record) if record else server.record,
        inspector=server.inspector if inspector is None else inspector,
    )
    routes = settings.routes
    upstream = upstream or env.get("SHIM_UPSTREAM_URL")
    if upstream:
        key = api_key or env.get("SHIM_UPSTREAM_API_KEY")
        routes = (
            *routes,
            Route(
                upstream=upstream.rstrip("/"),
                kind=(kind or env.get("SHIM_UPSTREAM_KIND") or "chat"),  # type: ignore[arg-type]
                dialect=dialect or env.get("SHIM_DIALECT") or "openai",
                api_key=key,
                stateful=stateful
                if stateful is not None
                else env.get("SHIM_UPSTREAM_STATEFUL", "").lower() in ("1", "true", "yes"),
            ),
        )
    return Settings(server=server, routes=routes)


# --------------------------------------------------------------------------- the process environment


def _flag(value: str | None, default: bool = False) -> bool:
    return default if value is None else value.strip().lower() in ("1", "true", "yes")


class Environment(msgspec.Struct, frozen=True, kw_only=True):
    """What the process environment says beyond the settings: read here and nowhere else (with
    ``load_settings`` and ``Route.own_key``), each time it is asked, so tests may change it."""

    secret: str | None  # SHIM_SECRET; else a file in ``data_dir`` (http/app.py)
    data_dir: Path  # SHIM_DATA_DIR, else $XDG_DATA_HOME/shim, else ~/.local/share/shim
    cache_dir: Path  # SHIM_CACHE_DIR, else ~/.cache/shim: the embedded upstream's model
    log_level: str  # SHIM_LOG_LEVEL
    access_log: bool  # SHIM_ACCESS_LOG (a JSON line per request), on unless "0"
    workers: int  # SHIM_WORKERS
    no_embedded: bool  # SHIM_NO_EMBEDDED: never start the embedded upstream
    httpx_transport: bool  # SHIM_UPSTREAM_TRANSPORT=httpx: httpx's own transport upstream


def environment() -> Environment:
    env = os.environ
    xdg = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    cache = env.get("SHIM_CACHE_DIR")
    return Environment(
        secret=env.get("SHIM_SECRET") or None,
        data_dir=Path(env.get("SHIM_DATA_DIR") or Path(xdg) / "shim"),
        cache_dir=Path(cache).expanduser() if cache else Path.home() / ".cache" / "shim",
        log_level=env.get("SHIM_LOG_LEVEL") or "warning",
        access_log=env.get("SHIM_ACCESS_LOG", "1") != "0",
        workers=int(env.get("SHIM_WORKERS") or 1),
        no_embedded=_flag(env.get("SHIM_NO_EMBEDDED")),
        httpx_transport=env.get("SHIM_UPSTREAM_TRANSPORT", "").lower() == "httpx",
    )


# Worker processes (``--workers N``) are started by uvicorn from an import string, in a fresh
# interpreter: the one channel it passes on unchanged is the environment. The parent merges and
# validates the settings once (flags, file, environment, the embedded upstream's URL) and hands
# every worker the same frozen result as JSON under this name, so no worker can disagree.
WORKER_SETTINGS = "SHIM_SETTINGS_JSON"


def settings_for_worker(settings: Settings) -> None:
    os.environ[WORKER_SETTINGS] = msgspec.json.encode(settings).decode()


def worker_settings() -> Settings:
    return msgspec.json.decode(os.environ[WORKER_SETTINGS], type=Settings)
