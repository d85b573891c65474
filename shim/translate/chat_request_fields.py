"""Every field of a Chat Completions request, and what the shim does with it over a Responses upstream.

The reverse of ``request_fields.py``: each field of openai-python's Chat
``CompletionCreateParams`` is in ``CHAT_FIELDS`` and is honoured (the shim does it), translated
(into the Open Responses request), emulated (``n`` as parallel requests, ``stop`` cut by the
shim), reported (a diagnostic under the server's policy: ``warn`` header, ``error`` 400), or
refused with 400 ``unsupported_parameter`` naming it. A field in no schema is reported by name
(``responses_request._report_unsupported``). ``tests/server/test_chat_request_fields.py`` holds a
row per field, read from the SDK at test time.

A Chat pass-through route (a Chat upstream) forwards every field as the client sent it, so that
upstream honours or refuses each itself (a dialect's ``drop_params`` are reported where it
re-writes the body); the same test proves each field arrives unchanged. There is no Chat
Completions schema in the Open Responses spec, so openai-python is the one reference here.
"""

from __future__ import annotations

from shim.core.diagnostics import Diagnostics
from shim.errors import UnsupportedParameter
from shim.translate.request_fields import Handling
from shim.wire import chat as c

__all__ = ["CHAT_FIELDS", "check_chat_fields"]

CHAT_FIELDS: dict[str, Handling] = {
    "model": "honoured",  # picks the route
    "messages": "translated",  # input items (translate/responses_request.py)
    "audio": "reported",  # no audio output over Open Responses
    "frequency_penalty": "translated",
    "function_call": "translated",  # the legacy tool choice
    "functions": "translated",  # legacy functions as function tools (a lossy_value diagnostic)
    "logit_bias": "reported",
    "logprobs": "translated",  # include message.output_text.logprobs
    "top_logprobs": "translated",
    "max_completion_tokens": "translated",  # max_output_tokens
    "max_tokens": "translated",
    "metadata": "translated",
    "modalities": "honoured",  # ["text"]; anything else is reported
    "moderation": "refused",  # as on /v1/responses
    "n": "emulated",  # n upstream requests, one per choice
    "parallel_tool_calls": "translated",
    "prediction": "reported",
    "presence_penalty": "translated",
    "prompt_cache_key": "translated",
    "prompt_cache_options": "reported",
    "prompt_cache_retention": "reported",
    "reasoning_effort": "translated",  # reasoning.effort
    "response_format": "translated",  # text.format
    "verbosity": "translated",  # text.verbosity
    "safety_identifier": "translated",
    "seed": "translated",
    "service_tier": "translated",
    "stop": "emulated",  # cut by the shim (translate/stop_sequences.py), the upstream cancelled
    "store": "honoured",  # false: the upstream keeps nothing; true: reported (no stored completions)
    "stream": "honoured",
    "stream_options": "honoured",  # include_usage: a usage chunk; include_obfuscation: translated
    "temperature": "translated",
    "tool_choice": "translated",
    "tools": "translated",  # function and custom tools
    "top_p": "translated",
    "user": "translated",
    "web_search_options": "reported",  # no hosted web search over a client's Chat request
}


def check_chat_fields(req: c.ChatCompletionRequest, diags: Diagnostics) -> None:
    """Refuse or report what the table says before the request is translated."""
    if "moderation" in req.extra:
        raise UnsupportedParameter("`moderation` is not supported by this server.", param="moderation")
    if req.store:
        diags.report(
            "dropped_param",
            "Chat completions are not stored for later retrieval (`store: true`); the answer is "
            "delivered as usual.",
            param="store",
        )
