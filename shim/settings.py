"""Settings: command line over environment over config file over defaults.

The config file (TOML) holds the server section and any number of routes; a lone
``--upstream URL`` (or ``SHIM_UPSTREAM_URL``) is shorthand for one catch-all route.

    [server]
    host = "127.0.0.1"
    port = 8080
    api_keys = ["sk-shim-1"]       # or SHIM_API_KEYS=sk-a,sk-b (docs/security.md)
    secret = "…"                   # or SHIM_SECRET, >= 32 bytes; unset: a file in the data dir
    previous_secrets = ["…"]       # or SHIM_PREVIOUS_SECRETS=a,b: still open/look up, never seal
    diagnostics = "warn"           # ignore | warn | error
    store = "diskcache:///var/lib/shim"  # or redis://host:6379/0, memory:// (SHIM_STORE)
    store_ttl = 2592000            # seconds a stored response lives; 0 = forever (SHIM_STORE_TTL)
    store_max_bytes = 4294967296   # diskcache size bound, LRU eviction (SHIM_STORE_MAX_BYTES)
    inspector = false              # the /inspector page (SHIM_INSPECTOR, --inspector); docs/fixtures.md
    mcp_allow = ["https://mcp.example.com/*"]  # hosted MCP: client server_urls allowed (SHIM_MCP_ALLOW)

    [server.tracing]               # OpenTelemetry traces, on with OTEL_EXPORTER_OTLP_ENDPOINT (docs/tracing.md)
    capture_content = false        # prompts and completions in spans (SHIM_TRACE_CAPTURE_CONTENT)

    [server.rate_limits]           # per shim key, per minute; 0 = none (SHIM_RATE_<KEY>; docs/rate-limits.md)
    requests_per_minute = 600
    tokens_per_minute = 200000
    [[server.rate_limits.keys]]    # one key's own limits
    key = "sk-shim-1"
    requests_per_minute = 60

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
    failover_resend = false        # fallbacks may get a request the previous upstream received

    [[routes.fallbacks]]           # tried in order when the one before fails (docs/upstreams.md)
    upstream = "https://openrouter.ai/api/v1"
    dialect = "openrouter"         # unset: the route's dialect and model (never its key or headers)
    model = "openai/gpt-4o-mini"
    api_key_env = "OPENROUTER_API_KEY"

    [server.breaker]               # per-upstream circuit breaker (SHIM_BREAKER_<KEY>)
    failures = 5                   # consecutive failures that open it
    cooldown = 30.0                # seconds open before one trial request (half-open)
    cancel_json = false            # stream_to_cancel dialects: JSON turns go streamed (hang-up stops the model)

    [[mcp_servers]]                # hosted MCP servers clients name by label (docs/hosted.md)
    label = "docs"
    url = "https://mcp.internal/mcp"
    headers = { Authorization = "Bearer …" }  # never shown to clients

    [web_search]                   # web_search runs this MCP tool
    server = "docs"
    tool = "search"
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import msgspec
import msgspec.inspect

from shim.core.diagnostics import Policy
from shim.limits import Limits

__all__ = [
    "AUTO_DIALECT",
    "MIN_SECRET_BYTES",
    "WORKER_SETTINGS",
    "BreakerSettings",
    "Environment",
    "Fallback",
    "KeyRateLimit",
    "McpServer",
    "RateLimits",
    "RecordSettings",
    "Route",
    "ServerSettings",
    "Settings",
    "Timeouts",
    "TracingSettings",
    "WebSearchProvider",
    "capture_content_wanted",
    "check_fallback_keys",
    "check_hosted",
    "check_rate_limit_keys",
    "check_secret",
    "environment",
    "header_value_problem",
    "load_settings",
    "otel_service_named",
    "secret_values",
    "settings_for_worker",
    "tracing_wanted",
    "worker_settings",
]

# ``dialect = "auto"``: probe the upstream at start and choose (shim/upstream/probe.py). The
# default of ``--upstream`` without ``--dialect``; a config file's route says it explicitly.
AUTO_DIALECT = "auto"

# What each number may be; a bad value stops the start with the variable's name and the rule.
_Count = Annotated[int, msgspec.Meta(ge=0)]
_Positive = Annotated[int, msgspec.Meta(ge=1)]
_Seconds = Annotated[float, msgspec.Meta(ge=0)]
_Wait = Annotated[float, msgspec.Meta(gt=0)]
_Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]

# The server secret keys the caller scopes and the sealing keys (shim/conversation/keyring.py):
# 32 bytes is the strength of the keys derived from it.
MIN_SECRET_BYTES = 32


# --------------------------------------------------------------------------- fallback upstreams and
# circuit breaker (issue 20, docs/upstreams.md "Fallback upstreams"). A route's own upstream comes
# first, then its ``fallbacks`` in order; each fallback is a whole upstream (URL, dialect, model,
# key, headers): its unset dialect and model are the route's, its key and headers never are. All
# of a route's upstreams speak its ``kind``: the turn module is chosen by kind before anything is
# sent, so a Chat upstream cannot stand in for a Responses one. A ``stateful`` route keeps its
# state at one upstream and has no fallbacks.


class Fallback(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    upstream: str
    kind: Literal["chat", "responses"] | None = None  # must be the route's; here to say so
    dialect: str | None = None
    model: str | None = None
    api_key: str | None = None
    api_key_env: str | None = None
    headers: dict[str, str] | None = None

    def as_route(self, route: Route) -> Route:
        """This upstream as a whole route. Keys and headers are never the route's: a credential
        meant for one host must not reach another."""
        return msgspec.structs.replace(
            route,
            upstream=self.upstream.rstrip("/"),
            dialect=self.dialect or route.dialect,
            model=self.model if self.model is not None else route.model,
            api_key=self.api_key,
            api_key_env=self.api_key_env,
            headers=self.headers or {},
            fallbacks=(),
        )


class BreakerSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One breaker per upstream URL, per process (``shim/upstream/breaker.py``)."""

    failures: _Positive = 5  # consecutive failures that open it
    cooldown: _Wait = 30.0  # seconds open before one trial request goes through (half-open)


def check_fallback_keys(routes: tuple[Route, ...], api_keys: tuple[str, ...]) -> None:
    """Without shim keys a route either forwards the client's key or sends its own (and then
    refuses clients): every upstream of one route must do the same."""
    for route in routes if not api_keys else ():
        for candidate in route.candidates()[1:]:
            if candidate.has_own_key != route.has_own_key:
                raise ValueError(
                    f"route {route.match!r}: the fallback {candidate.upstream} and the route's own "
                    "upstream differ in whose key they send (one has its own key, the other the "
                    "client's); without api_keys give every upstream of the route its own key, or none"
                )


def _check_fallbacks(route: Route) -> None:
    if not route.fallbacks:
        return
    where = f"route {route.match!r}"
    if route.stateful:
        raise ValueError(
            f"{where}: a stateful route keeps previous_response_id at one upstream; it cannot have "
            "fallbacks (another upstream would not know the ids)"
        )
    for n, fallback in enumerate(route.fallbacks):
        if fallback.dialect == AUTO_DIALECT:
            raise ValueError(
                f"{where}: fallbacks[{n}] must name its dialect (only the catch-all --upstream is probed)"
            )
        if fallback.kind is not None and fallback.kind != route.kind:
            raise ValueError(
                f"{where}: fallbacks[{n}] has kind {fallback.kind!r} but the route is {route.kind!r}; "
                "all of a route's upstreams must speak the same kind"
            )


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
    max_output_tokens: _Positive | None = None
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
    # --- context limits (issue 16): the model's context window in tokens, prompt and output
    # together; with `truncation: "auto"` the shim drops the oldest turns to fit it before
    # sending (a rough estimate: shim/conversation/truncation.py). Unset: only the upstream's
    # own context-length error makes it trim.
    context_window: _Positive | None = None
    # --- first hour (issue 17): a JSON turn whose client hangs up stops the upstream ---
    # Over a dialect that stops only a streamed generation (stream_to_cancel: llama-cpp-python),
    # send JSON turns upstream streamed and collect them, so that a client hanging up stops the
    # model. The cost there: the upstream sends no usage in a stream, so those answers say
    # usage null. The embedded model's route sets it; off by default.
    cancel_json: bool = False
    # Fallback upstreams (issue 20): see the block "fallback upstreams and circuit breaker" below.
    fallbacks: tuple[Fallback, ...] = ()
    failover_resend: bool = False

    def __post_init__(self) -> None:
        _check_fallbacks(self)

    def candidates(self) -> tuple[Route, ...]:
        """The route's upstreams in order, each as a whole route (the first is this route)."""
        return (self, *(fallback.as_route(self) for fallback in self.fallbacks))

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
    connect: _Wait = 10.0
    first_byte: _Wait = 120.0  # until the upstream sends response headers
    idle: _Wait = 300.0  # between two chunks of a stream
    total: _Wait = 1800.0  # one whole upstream exchange, retries and streaming included
    keepalive: _Wait = 15.0  # SSE comment interval while the upstream is silent


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


# --------------------------------------------------------------------------- telemetry (issue 20):
# traces and per-key rate limits. Tracing is switched on by OpenTelemetry's own variables, read
# here (``tracing_wanted``); the SDK reads the rest of OTEL_* itself (docs/tracing.md).


class TracingSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[server.tracing]`` (SHIM_TRACE_<FIELD>)."""

    # Prompts, completions and hosted tools' arguments and results in spans. Off: spans carry
    # names, models, counts and ids only. OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true
    # (the GenAI instrumentations' own switch) turns it on too.
    capture_content: bool = False


class KeyRateLimit(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One shim key's own limits (``[[server.rate_limits.keys]]``); unset: the table's defaults."""

    key: str  # one of ``api_keys``
    requests_per_minute: _Count | None = None
    tokens_per_minute: _Count | None = None


class RateLimits(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[server.rate_limits]`` (SHIM_RATE_REQUESTS_PER_MINUTE, SHIM_RATE_TOKENS_PER_MINUTE): per
    shim key (per client credential without ``api_keys``); 0 = no limit (docs/rate-limits.md)."""

    requests_per_minute: _Count = 0
    tokens_per_minute: _Count = 0
    keys: tuple[KeyRateLimit, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(
            self.requests_per_minute
            or self.tokens_per_minute
            or any(k.requests_per_minute or k.tokens_per_minute for k in self.keys)
        )


def check_rate_limit_keys(server: ServerSettings) -> None:
    """A limit for a key that is not a shim key can never apply: a typo, refused at start."""
    for index, entry in enumerate(server.rate_limits.keys):
        if entry.key not in server.api_keys:
            raise ValueError(
                f"[server.rate_limits] keys[{index}].key is not one of the shim's api_keys "
                "(a limit for a key that cannot log in never applies)"
            )


def tracing_wanted() -> bool:
    """Traces are exported when OTEL_EXPORTER_OTLP_ENDPOINT (or its _TRACES_ form) is set, unless
    OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none say otherwise. An exporter or protocol the
    shim does not have (it exports OTLP over HTTP with protobuf) is a ValueError naming it."""
    env = os.environ
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip()
    if _flag(env.get("OTEL_SDK_DISABLED")) or exporter == "none":
        return False
    if exporter not in ("", "otlp"):
        raise ValueError(
            f"OTEL_TRACES_EXPORTER={exporter!r}: the shim exports traces with otlp only (or none)"
        )
    for name in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        protocol = env.get(name, "").strip()
        if protocol and protocol != "http/protobuf":
            raise ValueError(f"{name}={protocol!r}: the shim exports OTLP over http/protobuf only")
    return bool(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def otel_service_named() -> bool:
    """OTEL_SERVICE_NAME or a ``service.name`` in OTEL_RESOURCE_ATTRIBUTES: else the shim names itself."""
    env = os.environ
    return bool(env.get("OTEL_SERVICE_NAME")) or "service.name=" in env.get("OTEL_RESOURCE_ATTRIBUTES", "")


def capture_content_wanted(settings: TracingSettings) -> bool:
    return settings.capture_content or _flag(
        os.environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
    )


# --------------------------------------------------------------------------- end of telemetry


class ServerSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    host: str = "127.0.0.1"
    port: _Port = 8080
    api_keys: tuple[str, ...] = ()
    # The server secret (SHIM_SECRET); empty: the file ``secret`` in the data directory. The
    # previous ones (SHIM_PREVIOUS_SECRETS) open and look up what they made; only it seals.
    secret: str = ""
    previous_secrets: tuple[str, ...] = ()
    diagnostics: Policy = "warn"
    store: str = ""
    store_ttl: _Seconds = 30 * 24 * 3600.0  # seconds; 0 keeps records until evicted or deleted
    store_max_bytes: _Positive = 4 * 1024**3  # diskcache only: least recently used entries go first
    # seconds a background response's replica may go silent before another marks it failed
    background_lease: _Wait = 10.0
    retries: _Count = 2
    retry_max_wait: _Seconds = 20.0  # a longer upstream Retry-After is passed on, not waited out
    max_body_bytes: _Positive = 32 * 1024 * 1024
    max_upstream_response_bytes: _Positive = 64 * 1024 * 1024
    shutdown_timeout: _Seconds = 30.0  # in-flight requests and streams may finish for this long
    timeouts: Timeouts = Timeouts()
    limits: Limits = Limits()  # docs/operations.md lists every limit
    record: RecordSettings = RecordSettings()
    breaker: BreakerSettings = BreakerSettings()  # per-upstream circuit breaker (issue 20)
    inspector: bool = False  # GET /inspector: recent exchanges (a shim key when api_keys is set)
    inspector_exchanges: int = 100  # how many recent exchanges it keeps in memory
    # --- context limits and prompt templates (issue 16) ---
    # `truncation: "auto"`: how many times a turn the upstream refused as too long is sent again
    # with older turns dropped (SHIM_TRUNCATION_RETRIES).
    truncation_retries: _Count = 3
    # `prompt: {id, version, variables}`: a directory of TOML prompt templates (SHIM_PROMPTS_DIR;
    # docs/prompts.md). Empty: no templates, and a request naming one is a 404.
    prompts_dir: str = ""
    # --- traces and per-key rate limits (issue 20; the telemetry block above) ---
    tracing: TracingSettings = TracingSettings()
    rate_limits: RateLimits = RateLimits()
    # -- hosted tools (issue 15, docs/hosted.md): MCP servers and web search run by the shim --
    # Globs on a client's whole ``server_url`` (SHIM_MCP_ALLOW=a,b); empty: only [[mcp_servers]].
    mcp_allow: tuple[str, ...] = ()
    mcp_connect_timeout: _Wait = 10.0  # seconds to connect to an MCP server and open a session
    mcp_call_timeout: _Wait = 60.0  # seconds one tools/list or tools/call may take
    mcp_max_output_bytes: _Positive = 1024 * 1024  # a larger tool output is an error the model sees
    hosted_max_rounds: _Positive = 8  # upstream rounds in one response (then the model must answer)


class McpServer(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[[mcp_servers]]``: a server the operator registered; clients name it by ``server_label``
    alone and never see its ``headers`` (docs/hosted.md)."""

    label: str
    url: str
    headers: dict[str, str] = {}
    description: str | None = None


class WebSearchProvider(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[web_search]``: the MCP tool that runs a ``web_search`` tool (a SearXNG or Brave MCP server)."""

    server: str  # the label of an [[mcp_servers]] entry
    tool: str = "search"
    query_argument: str = "query"


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    server: ServerSettings = ServerSettings()
    routes: tuple[Route, ...] = ()
    mcp_servers: tuple[McpServer, ...] = ()  # hosted tools (docs/hosted.md)
    web_search: WebSearchProvider | None = None


def check_hosted(settings: Settings) -> None:
    """``[[mcp_servers]]`` and ``[web_search]`` make sense together, or a ValueError naming the key."""
    labels = [s.label for s in settings.mcp_servers]
    if len(set(labels)) != len(labels):
        raise ValueError("[[mcp_servers]]: each label must be unique")
    for server in settings.mcp_servers:
        if not server.url.startswith(("http://", "https://")):
            raise ValueError(f"[[mcp_servers]] {server.label!r}: url must be http:// or https://")
    if settings.web_search is not None and settings.web_search.server not in labels:
        raise ValueError(
            f"[web_search] server = {settings.web_search.server!r} names no [[mcp_servers]] label"
        )


def check_secret(secret: bytes, where: str) -> None:
    """Refuse a secret shorter than ``MIN_SECRET_BYTES``; the message never holds the secret."""
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(
            f"{where} is {len(secret)} bytes long; the server secret must be at least "
            f"{MIN_SECRET_BYTES} bytes (generate one with: openssl rand -hex 32)"
        )


def secret_values(server: ServerSettings) -> tuple[str, tuple[str, ...]]:
    """The secret and the previous ones; for settings built in code (tests, benchmarks) without
    them, from ``SHIM_SECRET`` / ``SHIM_PREVIOUS_SECRETS`` as ``load_settings`` would."""
    secret = server.secret or environment().secret or ""
    return secret, server.previous_secrets or _env_list("SHIM_PREVIOUS_SECRETS") or ()


def _env_list(name: str) -> tuple[str, ...] | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return tuple(v.strip() for v in value.split(",") if v.strip())


# Environment names for the [server] section: SHIM_<FIELD> for its scalars (SHIM_RETRIES,
# SHIM_MAX_BODY_BYTES…), SHIM_TIMEOUT_<FIELD> for [server.timeouts], SHIM_LIMIT_<FIELD> for
# [server.limits]; so a container configures everything through its environment.
_NESTED_PREFIXES = {
    "timeouts": "SHIM_TIMEOUT_",
    "limits": "SHIM_LIMIT_",
    "record": "SHIM_RECORD_",
    "tracing": "SHIM_TRACE_",
    "rate_limits": "SHIM_RATE_",
    "breaker": "SHIM_BREAKER_",
}


_FILE_ONLY = ("api_keys", "keys")  # SHIM_API_KEYS is read apart; per-key limits live in the file


def _env_values(struct: msgspec.Struct, prefix: str) -> dict[str, str | list[str]]:
    names = (
        name for name in struct.__struct_fields__ if name not in _NESTED_PREFIXES and name not in _FILE_ONLY
    )
    found = {name: os.environ[prefix + name.upper()] for name in names if prefix + name.upper() in os.environ}
    # A list setting (SHIM_RECORD_MODELS=a,b) is written comma-separated.
    return {
        name: [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(getattr(struct, name), tuple)
        else value
        for name, value in found.items()
    }


def _validated(data: dict[str, object]) -> ServerSettings:
    """``data`` as settings, or a ValueError naming the variable that holds the bad value."""
    try:
        return msgspec.convert(data, ServerSettings, strict=False)
    except msgspec.ValidationError as exc:
        message, _, path = str(exc).partition(" - at `$.")
        parts = path.rstrip("`").split(".")
        prefix = _NESTED_PREFIXES.get(parts[0], "SHIM_") if len(parts) > 1 else "SHIM_"
        name = f"{prefix}{parts[-1].upper()}"
        if len(parts) == 1 and parts[0] in _FLAGS:
            name = f"--{parts[0]} / {name}"
        allowed = _choices(parts)
        raise ValueError(f"{name}: {message}{f' (one of: {allowed})' if allowed else ''}") from None


def _choices(path: list[str]) -> str:
    """The values a Literal setting allows, for the error message (``diagnostics``: ignore, ...)."""
    info: msgspec.inspect.Type = msgspec.inspect.type_info(ServerSettings)
    for part in path:
        fields = info.fields if isinstance(info, msgspec.inspect.StructType) else ()
        info = next((f.type for f in fields if f.name == part), msgspec.inspect.AnyType())
    if isinstance(info, msgspec.inspect.LiteralType):
        return ", ".join(str(v) for v in info.values)
    return ""


_FLAGS = ("host", "port", "store")


def _overlay_env(server: ServerSettings) -> ServerSettings:
    data = msgspec.structs.asdict(server)
    data.update(_env_values(server, "SHIM_"))
    for field, prefix in _NESTED_PREFIXES.items():
        nested = getattr(server, field)
        data[field] = {**msgspec.structs.asdict(nested), **_env_values(nested, prefix)}
    return _validated(data)


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
    default_dialect: str = "openai",
    record: str | None = None,
    inspector: bool | None = None,
) -> Settings:
    """Merge the sources; every value a flag or variable can set has both. Every value is
    checked against its rule here (a ValueError names it), before anything starts.
    ``default_dialect`` is the catch-all route's when neither ``dialect`` nor SHIM_DIALECT names
    one (``shim serve`` passes ``auto``: probe the upstream)."""
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
    flags = dict(zip(_FLAGS, (host, port, store), strict=True))
    merged: dict[str, object] = {
        **msgspec.structs.asdict(server),
        **{name: value for name, value in flags.items() if value is not None},
        "api_keys": _env_list("SHIM_API_KEYS") or server.api_keys,
    }
    if record:
        merged["record"] = msgspec.structs.replace(server.record, dir=record)
    if inspector is not None:
        merged["inspector"] = inspector
    server = _validated(merged)
    check_rate_limit_keys(server)
    tracing_wanted()  # an OTEL_* value the shim cannot honour stops the start here, named
    if server.secret:
        where = "SHIM_SECRET" if env.get("SHIM_SECRET") else f"{config}: [server] secret (or SHIM_SECRET)"
        check_secret(server.secret.encode(), where)
    routes = settings.routes
    upstream = upstream or env.get("SHIM_UPSTREAM_URL")
    if upstream:
        key = api_key or env.get("SHIM_UPSTREAM_API_KEY")
        upstream_kind = kind or env.get("SHIM_UPSTREAM_KIND") or "chat"
        if upstream_kind not in ("chat", "responses"):
            raise ValueError(f"SHIM_UPSTREAM_KIND: {upstream_kind!r} is not one of: chat, responses")
        routes = (
            *routes,
            Route(
                upstream=upstream.rstrip("/"),
                kind=upstream_kind,  # type: ignore[arg-type]
                dialect=dialect or env.get("SHIM_DIALECT") or default_dialect,
                api_key=key,
                stateful=stateful
                if stateful is not None
                else env.get("SHIM_UPSTREAM_STATEFUL", "").lower() in ("1", "true", "yes"),
            ),
        )
    _check_header_values(
        routes, len(settings.routes), config, "api_key" if api_key else "SHIM_UPSTREAM_API_KEY"
    )
    check_fallback_keys(routes, server.api_keys)
    merged_settings = Settings(
        server=server, routes=routes, mcp_servers=settings.mcp_servers, web_search=settings.web_search
    )
    check_hosted(merged_settings)
    return merged_settings


def header_value_problem(value: str) -> str | None:
    """Why ``value`` cannot go into an HTTP header, or ``None``: CR or LF would end the header and
    let the rest inject new ones; servers refuse NUL. A ``.env`` file saved with Windows line
    endings leaves a CR at the end of every value."""
    if "\r" in value or "\n" in value:
        return "holds a carriage return or line feed (a .env file with Windows line endings?)"
    if "\0" in value:
        return "holds a NUL character"
    return None


def _check_header_values(
    routes: tuple[Route, ...], from_file: int, config: Path | None, key_name: str
) -> None:
    """Refuse at start-up what would reach an upstream in a header: upstream keys and configured
    headers, each named where it was set (``shim.upstream`` checks again when it sends)."""
    for index, route in enumerate(routes):
        where = f"{config}: routes[{index}]." if index < from_file else "the upstream route's "
        values: list[tuple[str, str | None]] = [
            (f"{where}api_key" if index < from_file else key_name, route.api_key)
        ]
        if route.api_key_env:
            values.append(
                (f"{route.api_key_env} (named by {where}api_key_env)", os.environ.get(route.api_key_env))
            )
        for header, text in route.headers.items():
            values += [(f"{where}headers.{header}", text), (f"{where}headers (the name {header!r})", header)]
        for n, fallback in enumerate(route.fallbacks):  # fallback upstreams (issue 20)
            at = f"{where}fallbacks[{n}]."
            values += [(f"{at}api_key", fallback.api_key)]
            if fallback.api_key_env:
                values.append(
                    (
                        f"{fallback.api_key_env} (named by {at}api_key_env)",
                        os.environ.get(fallback.api_key_env),
                    )
                )
            for header, text in (fallback.headers or {}).items():
                values += [(f"{at}headers.{header}", text), (f"{at}headers (the name {header!r})", header)]
        for name, value in values:
            if value is not None and (problem := header_value_problem(value)) is not None:
                raise ValueError(f"{name} {problem}")


# --------------------------------------------------------------------------- the process environment


def _flag(value: str | None, default: bool = False) -> bool:
    return default if value is None else value.strip().lower() in ("1", "true", "yes")


class Environment(msgspec.Struct, frozen=True, kw_only=True):
    """What the process environment says beyond the settings: read here and nowhere else (with
    ``load_settings`` and ``Route.own_key``), each time it is asked, so tests may change it."""

    secret: str | None  # SHIM_SECRET; else a file in ``data_dir`` (conversation/keyring.py)
    data_dir: Path  # SHIM_DATA_DIR, else $XDG_DATA_HOME/shim, else ~/.local/share/shim
    cache_dir: Path  # SHIM_CACHE_DIR, else ~/.cache/shim: the embedded upstream's model
    log_level: str  # SHIM_LOG_LEVEL
    access_log: bool  # SHIM_ACCESS_LOG (a JSON line per request), on unless "0"
    workers: int  # SHIM_WORKERS
    no_embedded: bool  # SHIM_NO_EMBEDDED: never start the embedded upstream
    embedded_format: str | None  # SHIM_EMBEDDED_FORMAT: the embedded upstream's profile
    # HTTP(S)_PROXY, ALL_PROXY, NO_PROXY (either case, as curl reads them): scheme or "no" → value
    proxies: dict[str, str]


def _whole(raw: str, name: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name}: {raw!r} is not a whole number (1 or more)") from None


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
        workers=_whole(env.get("SHIM_WORKERS") or "1", "SHIM_WORKERS"),
        no_embedded=_flag(env.get("SHIM_NO_EMBEDDED")),
        embedded_format=env.get("SHIM_EMBEDDED_FORMAT") or None,
        proxies=urllib.request.getproxies_environment(),
    )


def proxy_for(proxies: Mapping[str, str], scheme: str, host: str, port: int | None) -> str | None:
    """The proxy ``proxies`` (``Environment.proxies``) names for an origin, as a URL, or ``None``:
    none named, the host is loopback, or ``NO_PROXY`` covers it. One rule for the upstreams and
    the hosted MCP servers."""
    chosen = proxies.get(scheme) or proxies.get("all")
    if not chosen or _loopback(host):
        return None
    if urllib.request.proxy_bypass_environment(f"{host}:{port}", proxies):  # type: ignore[attr-defined]
        return None
    return chosen if "://" in chosen else f"http://{chosen}"


def _loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# Worker processes (``--workers N``) are started by uvicorn from an import string, in a fresh
# interpreter: the one channel it passes on unchanged is the environment. The parent merges and
# validates the settings once (flags, file, environment, the embedded upstream's URL) and hands
# every worker the same frozen result as JSON under this name, so no worker can disagree.
WORKER_SETTINGS = "SHIM_SETTINGS_JSON"


def settings_for_worker(settings: Settings) -> None:
    os.environ[WORKER_SETTINGS] = msgspec.json.encode(settings).decode()


def worker_settings() -> Settings:
    return msgspec.json.decode(os.environ[WORKER_SETTINGS], type=Settings)
