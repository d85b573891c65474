"""Which dialect an upstream speaks, asked of the upstream itself at start.

``shim serve --upstream URL`` without ``--dialect`` (and a route with ``dialect = "auto"``)
asks the server a few questions that cost nothing and answer differently per vendor:

- ``GET {base}/models``: the ``owned_by`` of its models (vLLM ``vllm``, llama.cpp's llama-server
  ``llamacpp``, llama-cpp-python ``me``, Ollama ``library``, LM Studio ``organization_owner``…);
- ``GET {root}/props``: llama-server's settings (``default_generation_settings``, ``build_info``);
- ``GET {root}/version``: vLLM's ``{"version": …}``;
- ``GET {root}/api/version``: Ollama's ``{"version": …}``;
- the ``server`` header of each answer.

:func:`choose_dialect` decides from those answers alone (sans-IO, table-tested against recorded
and hand-made answers in ``fixtures/probe/``); :func:`probe` is the thin layer that asks.
A decision that rests on weak evidence, or none, is marked a guess: the banner warns and says
how to name the dialect.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

import msgspec

__all__ = ["PROBE_PATHS", "Answer", "Choice", "ask", "choose_dialect", "probe", "probe_urls"]


class Answer(msgspec.Struct, frozen=True, kw_only=True):
    """One probe answer: ``status`` None when the request failed (refused, timed out)."""

    status: int | None
    headers: dict[str, str] = {}  # lower-case names
    body: str = ""


class Choice(msgspec.Struct, frozen=True, kw_only=True):
    dialect: str
    reason: str
    guess: bool


# Probe name -> path; ``models`` hangs off the base URL (``…/v1``), the rest off its root.
PROBE_PATHS = {"models": "/models", "props": "/props", "version": "/version", "api_version": "/api/version"}

# /v1/models ``owned_by`` -> (dialect, who says so). Values observed in each server's source or
# answers; llama-cpp-python's "me" is recorded in fixtures/probe/llamacpp-python.json.
_OWNERS = {
    "vllm": ("vllm", "vLLM"),
    "llamacpp": ("llamacpp", "llama.cpp's llama-server"),
    "me": ("llamacpp-python", "llama-cpp-python's server"),
    "library": ("ollama", "Ollama"),
    "ollama": ("ollama", "Ollama"),
    "organization_owner": ("lmstudio", "LM Studio"),
    "deepseek": ("deepseek", "DeepSeek"),
    "mistralai": ("mistral", "Mistral"),
}

# Host name suffix -> dialect: hosted APIs whose owned_by says nothing about the server.
_HOSTS = {
    "api.openai.com": "openai",
    "openrouter.ai": "openrouter",
    "api.deepseek.com": "deepseek",
    "api.mistral.ai": "mistral",
    "integrate.api.nvidia.com": "nim",
    "router.huggingface.co": "huggingface",
    "openai.azure.com": "azure",
}

# The headers kept from an answer (``server`` names some servers; content-type tells JSON from a page).
_HEADERS = ("server", "content-type")

_FUNCTIONS_HINT = (
    "; if it runs --chat_format chatml-function-calling, use --dialect llamacpp-python-functions"
)


def _json(answer: Answer | None) -> object:
    if answer is None or answer.status != 200:
        return None
    try:
        return msgspec.json.decode(answer.body)
    except msgspec.DecodeError:
        return None


def _owners(answer: Answer | None) -> list[str]:
    data = _json(answer)
    models = data.get("data") if isinstance(data, dict) else None
    if not isinstance(models, list):
        return []
    return [m["owned_by"] for m in models if isinstance(m, dict) and isinstance(m.get("owned_by"), str)]


def _version(answer: Answer | None) -> str | None:
    data = _json(answer)
    version = data.get("version") if isinstance(data, dict) else None
    return version if isinstance(version, str) else None


def choose_dialect(base_url: str, answers: Mapping[str, Answer]) -> Choice:
    """The dialect for the upstream at ``base_url``, from the answers to :data:`PROBE_PATHS`."""
    props = _json(answers.get("props"))
    if isinstance(props, dict) and ("default_generation_settings" in props or "build_info" in props):
        return Choice(dialect="llamacpp", reason="/props answers like llama.cpp's llama-server", guess=False)
    ollama = _version(answers.get("api_version"))
    if ollama is not None:
        return Choice(dialect="ollama", reason=f"/api/version answers like Ollama {ollama}", guess=False)
    owners = _owners(answers.get("models"))
    for owner in owners:
        if owner in _OWNERS:
            dialect, who = _OWNERS[owner]
            reason = f'/models says owned_by "{owner}" ({who})'
            return Choice(
                dialect=dialect,
                reason=reason + (_FUNCTIONS_HINT if dialect == "llamacpp-python" else ""),
                guess=False,
            )
    vllm = _version(answers.get("version"))
    if vllm is not None:
        return Choice(dialect="vllm", reason=f"/version answers like vLLM {vllm}", guess=True)
    host = (urlsplit(base_url).hostname or "").lower()
    for suffix, dialect in _HOSTS.items():
        if host == suffix or host.endswith("." + suffix):
            return Choice(dialect=dialect, reason=f"the host is {host}", guess=False)
    models = answers.get("models")
    if models is None or models.status is None:
        why = "the upstream did not answer /models"
    elif models.status != 200:
        why = f"/models answered HTTP {models.status}"
    else:
        server = next((a.headers["server"] for a in answers.values() if "server" in a.headers), None)
        why = "no answer names the server" + (f' (server header "{server}")' if server else "")
    return Choice(dialect="openai", reason=why, guess=True)


def probe_urls(base_url: str) -> dict[str, str]:
    """Probe name -> URL. The root is the base URL less a trailing ``/v1``."""
    base = base_url.rstrip("/")
    root = base.removesuffix("/v1")
    return {name: (base if name == "models" else root) + path for name, path in PROBE_PATHS.items()}


def ask(base_url: str, *, api_key: str | None = None, timeout: float = 3.0) -> dict[str, Answer]:
    """The upstream's answers to :data:`PROBE_PATHS` (at most ``timeout`` seconds each)."""
    import httpx

    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    answers: dict[str, Answer] = {}
    with httpx.Client(timeout=timeout, headers=headers, follow_redirects=False) as client:
        for name, url in probe_urls(base_url).items():
            try:
                response = client.get(url)
            except httpx.HTTPError:
                answers[name] = Answer(status=None)
                continue
            answers[name] = Answer(
                status=response.status_code,
                headers={k.lower(): v for k, v in response.headers.items() if k.lower() in _HEADERS},
                body=response.text[:65536],
            )
    return answers


def probe(base_url: str, *, api_key: str | None = None, timeout: float = 3.0) -> Choice:
    """Ask the upstream and decide."""
    return choose_dialect(base_url, ask(base_url, api_key=api_key, timeout=timeout))
