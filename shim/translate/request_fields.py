"""Every field of a Responses request, and what the shim does with it over a Chat upstream.

Nothing a client sends is dropped without a word: each field of the spec's
``CreateResponseBody`` and of openai-python's ``ResponseCreateParams`` is in ``FIELDS``, and is
honoured (the shim does it), translated (the Chat upstream does it), emulated, reported (a
diagnostic under the server's policy: ``warn`` header, ``error`` 400), or refused with 400
``unsupported_parameter`` naming it. A field in neither schema is reported by name. ``tests/test_request_fields.py`` holds a row per field.

Only the route to a Chat upstream is the shim's to judge: a pass-through to an Open Responses
upstream forwards the body, and that upstream honours or refuses these fields itself.
"""

from __future__ import annotations

from typing import Literal

from shim.core.diagnostics import Diagnostics
from shim.errors import UnsupportedParameter
from shim.wire import responses as r

__all__ = ["FIELDS", "INCLUDABLE", "Handling", "check_request_fields"]

Handling = Literal["honoured", "translated", "emulated", "reported", "refused"]

FIELDS: dict[str, Handling] = {
    "model": "honoured",  # picks the route
    "input": "translated",
    "instructions": "translated",
    "previous_response_id": "honoured",
    "conversation": "honoured",
    "include": "honoured",  # INCLUDABLE below; any other value is refused
    "tools": "translated",  # other tool types: reported (translate/chat_request.py)
    "tool_choice": "translated",
    "parallel_tool_calls": "translated",
    "metadata": "honoured",  # echoed and stored, never sent upstream
    "text": "translated",
    "temperature": "translated",
    "top_p": "translated",
    "presence_penalty": "translated",
    "frequency_penalty": "translated",
    "top_logprobs": "translated",
    "max_output_tokens": "translated",
    "max_tool_calls": "reported",  # Chat has no such bound
    "reasoning": "translated",  # an upstream without reasoning effort: reported
    "stream": "honoured",
    "stream_options": "honoured",  # include_obfuscation: true is reported (no padding is added)
    "background": "honoured",
    "store": "honoured",
    "service_tier": "translated",
    "safety_identifier": "translated",
    "prompt_cache_key": "translated",
    "prompt_cache_retention": "reported",  # a caching hint no Chat upstream takes
    "prompt_cache_options": "reported",
    "truncation": "honoured",  # "auto": oldest turns dropped to fit (turns/context_limits.py)
    "user": "translated",
    "seed": "translated",  # outside both schemas, sent by real clients
    "stop": "translated",
    "prompt": "honoured",  # operator templates expanded into instructions + input (conversation/prompts.py)
    "context_management": "honoured",  # compaction past compact_threshold (turns/context_limits.py)
    "access_programs": "refused",
    "background_options": "refused",
    "image": "refused",
    "moderation": "refused",
}

# openai-python's ``ResponseIncludable``. Over a Chat upstream the two that change an answer are
# honoured (sealed reasoning, logprobs); the others name items a Chat upstream never produces
# (hosted tools' results), or input images, whose URLs every listing already keeps.
INCLUDABLE = frozenset(
    {
        "reasoning.encrypted_content",
        "message.output_text.logprobs",
        "message.input_image.image_url",
        "file_search_call.results",
        "web_search_call.results",
        "web_search_call.action.sources",
        "computer_call_output.output.image_url",
        "code_interpreter_call.outputs",
    }
)

_REFUSED = tuple(name for name, handling in FIELDS.items() if handling == "refused")
_WHY: dict[str, str] = {}  # a refusal with more to say than the default message


def _refuse(name: str, message: str | None = None) -> UnsupportedParameter:
    return UnsupportedParameter(
        message or _WHY.get(name) or f"`{name}` is not supported by this server.", param=name
    )


def check_request_fields(
    body: r.CreateResponseBody, diags: Diagnostics, unknown: tuple[str, ...] = ()
) -> None:
    """Refuse or report what a turn over a Chat upstream cannot do, before anything runs.
    ``unknown``: top-level fields in neither schema (``decode_create_request``), reported."""
    for name in _REFUSED:
        if getattr(body, name) is not None:
            raise _refuse(name)
    for n, value in enumerate(body.include or ()):
        if value not in INCLUDABLE:
            raise UnsupportedParameter(f"`include` value {value!r} is not supported.", param=f"include[{n}]")
    for name in ("prompt_cache_retention", "prompt_cache_options"):
        if getattr(body, name) is not None:
            diags.report("dropped_param", f"Chat upstreams take no `{name}`.", param=name)
    for name in unknown:
        diags.report("dropped_param", f"Unknown parameter `{name}`.", param=name)
    options = body.stream_options
    if options is not None and options.include_obfuscation:
        diags.report(
            "dropped_param",
            "Streamed events carry no obfuscation padding.",
            param="stream_options.include_obfuscation",
        )
