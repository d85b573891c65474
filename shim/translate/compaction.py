"""Compaction over a Chat upstream, sans-IO: the summarising request and the compacted window.

``POST /v1/responses/compact`` has no Chat Completions counterpart, so the model itself writes the
summary: the window goes upstream as ordinary messages followed by the prompt from
``mappings/prompts/compaction.toml``. The answer becomes a ``response.compaction`` resource whose
output is the window's user messages (kept verbatim, if configured) and one ``compaction`` item
holding the sealed summary. Sealing itself is injected (a callable), so this module does no
crypto and no IO.

When the model writes no summary (a small base model often ends its turn at once: Gemma 3 270M
did on every window measured), ``fallback_summary`` builds one the shim owns: a marked extract of
the window's messages, so compaction still answers (unless the diagnostics policy is ``error``).
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Callable
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from shim.dialects.registry import locate_mappings
from shim.wire import responses as r

__all__ = [
    "CompactionConfig",
    "CompactionConfigError",
    "compact_resource",
    "compaction_config",
    "fallback_summary",
    "load_compaction_config",
    "summarise_body",
    "summary_message",
    "summary_text",
]

_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]


class CompactionConfigError(ValueError):
    """``mappings/prompts/compaction.toml`` is missing, malformed or has unknown keys."""


class Summarise(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    prompt: _NonEmpty
    max_output_tokens: Annotated[int, msgspec.Meta(gt=0)] = 1024


class Window(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    keep_user_messages: bool = True


class Replay(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    role: Literal["user", "system", "developer"] = "user"
    prefix: str = ""


class Fallback(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    enabled: bool = True
    prefix: _NonEmpty = "[The model wrote no summary; the shim kept this extract of the conversation.]"
    max_chars: Annotated[int, msgspec.Meta(ge=200)] = 2000
    max_message_chars: Annotated[int, msgspec.Meta(ge=20)] = 400


class CompactionConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    summarise: Summarise
    window: Window = Window()
    replay: Replay = Replay()
    fallback: Fallback = Fallback()


def load_compaction_config(path: Path | Traversable | None = None) -> CompactionConfig:
    entry = path if path is not None else locate_mappings() / "prompts" / "compaction.toml"
    try:
        data = tomllib.loads(entry.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CompactionConfigError(f"{entry}: {exc}") from exc
    try:
        config = msgspec.convert(data, CompactionConfig)
    except msgspec.ValidationError as exc:
        raise CompactionConfigError(f"{entry}: {exc}") from exc
    if not config.summarise.prompt.strip():
        raise CompactionConfigError(f"{entry}: summarise.prompt is blank")
    fallback = config.fallback
    if len(fallback.prefix) + fallback.max_message_chars + 32 > fallback.max_chars:
        raise CompactionConfigError(
            f"{entry}: fallback.max_chars leaves no room for one message after the prefix"
        )
    return config


@functools.cache
def compaction_config() -> CompactionConfig:
    """The shipped configuration, loaded once per process."""
    return load_compaction_config()


def summarise_body(
    body: r.CompactResponseMethodPublicBody, config: CompactionConfig
) -> tuple[r.CreateResponseBody, r.MessageItemParam]:
    """The create-body (for ``to_chat_request``) and the prompt message to append to the window."""
    create = r.CreateResponseBody(
        model=body.model,
        instructions=body.instructions,
        prompt_cache_key=body.prompt_cache_key,
        max_output_tokens=body.max_output_tokens or config.summarise.max_output_tokens,
        store=False,
    )
    prompt = r.MessageItemParam(
        role="user", content=[r.InputTextContent(text=config.summarise.prompt.strip())]
    )
    return create, prompt


def summary_text(resource: r.ResponseResource) -> str:
    """The assistant text of the summarising answer (reasoning is not part of the summary)."""
    texts: list[str] = []
    for item in resource.output:
        if isinstance(item, r.Message):
            texts.extend(p.text for p in item.content if isinstance(p, r.OutputTextContent))
    return "".join(texts).strip()


def _message_line(item: r.MessageItemParam, limit: int) -> str:
    if isinstance(item.content, str):
        text = item.content
    else:
        text = " ".join(getattr(part, "text", "") for part in item.content)
    text = " ".join(text.split())  # one line per message
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return f"{item.role}: {text}" if text else ""


def fallback_summary(window: list[r.ItemParam], config: CompactionConfig) -> str | None:
    """A deterministic stand-in for the summary the model did not write: the prefix, then one line
    per message (``role: text``, cut to ``max_message_chars``); past ``max_chars`` the first line
    (usually the goal) and as many of the latest as fit are kept. Calls, outputs and reasoning are
    left out. ``None`` when the fallback is off or the window has no text."""
    fallback = config.fallback
    if not fallback.enabled:
        return None
    lines = [
        line
        for item in window
        if isinstance(item, r.MessageItemParam) and (line := _message_line(item, fallback.max_message_chars))
    ]
    if not lines:
        return None
    budget = fallback.max_chars - len(fallback.prefix) - 1
    if sum(len(line) + 1 for line in lines) > budget:
        head, tail = lines[0], list[str]()
        left = budget - len(head) - 3  # the "…" line
        for line in reversed(lines[1:]):
            if len(line) + 1 > left:
                break
            tail.insert(0, line)
            left -= len(line) + 1
        lines = [head, "…", *tail]
    return "\n".join([fallback.prefix, *lines])


def _kept_user_message(item: r.MessageItemParam, ids: Callable[[str], str]) -> r.Message:
    content: list[r.ContentPart] = (
        [r.InputTextContent(text=item.content)] if isinstance(item.content, str) else list(item.content)
    )
    return r.Message(id=item.id or ids("msg"), status="completed", role="user", content=content)


def compact_resource(
    *,
    response_id: str,
    created_at: int,
    window: list[r.ItemParam],
    sealed_summary: str,
    usage: r.Usage | None,
    config: CompactionConfig,
    ids: Callable[[str], str],
) -> r.CompactResource:
    output: list[r.ItemField] = []
    if config.window.keep_user_messages:
        output.extend(
            _kept_user_message(i, ids)
            for i in window
            if isinstance(i, r.MessageItemParam) and i.role == "user"
        )
    output.append(r.CompactionBody(id=ids("cmp"), encrypted_content=sealed_summary))
    return r.CompactResource(
        id=response_id,
        output=output,
        created_at=created_at,
        usage=usage or r.Usage(input_tokens=0, output_tokens=0, total_tokens=0),
    )


def summary_message(summary: str, config: CompactionConfig, item_id: str | None = None) -> r.MessageItemParam:
    """How an opened compaction item is replayed upstream: one message, role and prefix from config."""
    return r.MessageItemParam(
        role=config.replay.role,
        content=[r.InputTextContent(text=config.replay.prefix + summary)],
        id=item_id,
    )
