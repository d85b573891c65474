"""Compaction over a Chat upstream, sans-IO: the summarising request and the compacted window.

``POST /v1/responses/compact`` has no Chat Completions counterpart, so the model itself writes the
summary: the window goes upstream as ordinary messages followed by the prompt from
``mappings/prompts/compaction.toml``. The answer becomes a ``response.compaction`` resource whose
output is the window's user messages (kept verbatim, if configured) and one ``compaction`` item
holding the sealed summary. Sealing itself is injected (a callable), so this module does no
crypto and no IO.
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


class CompactionConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    summarise: Summarise
    window: Window = Window()
    replay: Replay = Replay()


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
