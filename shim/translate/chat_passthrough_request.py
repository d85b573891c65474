"""A Chat client's request, passed through to a Chat upstream, made to fit the route's dialect.

Pass-through keeps the client's body (unknown fields included), but a body that is fine for
OpenAI can be silently wrong elsewhere: llama-cpp-python renders a part array as an empty turn
and ignores ``max_completion_tokens`` (a 4-token request ran to 4,088). So the same request rules
that shape a translated request apply here, on the decoded JSON, touching only what the dialect
says differs:

- ``developer_role = "system"``: ``developer`` messages go up as ``system``;
- ``<role>_content = "string"``: a part array becomes its text parts joined by blank lines;
  any other part is reported (``unsupported_content``) and left out;
- ``input_modalities``: user parts of a modality the upstream cannot take are reported and left out;
- ``max_tokens_field = "max_tokens"``: ``max_completion_tokens`` is sent as ``max_tokens``;
- ``explicit_tool_choice``: tools without a ``tool_choice`` get ``"auto"`` (the Chat default);
- ``tools_in_system_message``: tools with no system message get an empty one first;
- ``required_tool_choice = "named"``: ``"required"`` with one function becomes the object naming
  it; with several tools, a 400 (the upstream cannot say it);
- ``tool_calls_content = "empty"``: an assistant turn with calls and no content gets ``""``;
- ``drop_params``: reported and removed; ``extra_body``: added where the client set nothing.

Sans-IO: a dict in, the same dict changed in place; what was lost goes to ``diags``.
"""

from __future__ import annotations

from typing import Any

from shim.core.diagnostics import Diagnostics
from shim.dialects.model import RequestRules
from shim.errors import UnsupportedParameter

__all__ = ["adapt_chat_body", "needs_adapting"]

# Chat part type -> the modality it carries (``input_modalities`` names).
_MODALITY = {"image_url": "image", "input_audio": "audio", "file": "file"}
_TEXT_FIELD = {"text": "text", "refusal": "refusal"}


def _content_style(rules: RequestRules, role: str) -> str:
    return {
        "system": rules.system_content,
        "developer": rules.system_content,
        "user": rules.user_content,
        "assistant": rules.assistant_content,
        "tool": rules.tool_content,
    }.get(role, "array")


def _parts(parts: list[Any], rules: RequestRules, role: str, where: str, diags: Diagnostics) -> list[Any]:
    """The parts the upstream can take (user parts of another modality are reported)."""
    kept: list[Any] = []
    for index, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, dict) else None
        modality = _MODALITY.get(kind) if isinstance(kind, str) else None
        if role == "user" and modality is not None and modality not in rules.input_modalities:
            diags.report(
                "unsupported_content",
                f"This upstream takes no {modality} input; the part was left out.",
                param=f"{where}.content[{index}]",
            )
            continue
        kept.append(part)
    return kept


def _joined(parts: list[Any], where: str, diags: Diagnostics) -> str:
    texts: list[str] = []
    for index, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, dict) else None
        field = _TEXT_FIELD.get(kind) if isinstance(kind, str) else None
        if field is not None and isinstance(part.get(field), str):
            texts.append(part[field])
        else:
            diags.report(
                "unsupported_content",
                "This upstream takes only text content on this role; the part was left out.",
                param=f"{where}.content[{index}]",
            )
    return "\n\n".join(texts)


def _message(message: dict[str, Any], where: str, rules: RequestRules, diags: Diagnostics) -> None:
    role = message.get("role")
    if not isinstance(role, str):
        return
    if role == "developer" and rules.developer_role == "system":
        message["role"] = "system"
    content = message.get("content")
    if isinstance(content, list):
        content = _parts(content, rules, role, where, diags)
        message["content"] = (
            _joined(content, where, diags) if _content_style(rules, role) == "string" else content
        )
    if (
        role == "assistant"
        and rules.tool_calls_content == "empty"
        and message.get("tool_calls")
        and message.get("content") is None
    ):
        message["content"] = ""


def _one_function(tools: Any) -> dict[str, Any]:
    """``"required"`` as the named choice of the one function offered."""
    if isinstance(tools, list) and len(tools) == 1 and isinstance(tools[0], dict):
        function = tools[0].get("function")
        if tools[0].get("type") == "function" and isinstance(function, dict) and function.get("name"):
            return {"type": "function", "function": {"name": function["name"]}}
    raise UnsupportedParameter(
        'This upstream cannot make the model choose among several tools (tool_choice "required"); '
        "offer one tool, or name the function to call.",
        param="tool_choice",
    )


def needs_adapting(rules: RequestRules) -> bool:
    """Whether any rule here differs from OpenAI's (else the body goes up byte for byte)."""
    return (
        rules.developer_role != "developer"
        or "string" in (rules.system_content, rules.user_content, rules.assistant_content, rules.tool_content)
        or set(_MODALITY.values()) - set(rules.input_modalities) != set()
        or rules.max_tokens_field != "max_completion_tokens"
        or rules.explicit_tool_choice
        or rules.tools_in_system_message
        or rules.required_tool_choice != "required"
        or rules.tool_calls_content != "omit"
        or bool(rules.drop_params)
        or bool(rules.extra_body)
    )


def adapt_chat_body(data: dict[str, Any], rules: RequestRules, diags: Diagnostics) -> None:
    """Fit the decoded Chat request ``data`` to ``rules`` (in place)."""
    messages = data.get("messages")
    if isinstance(messages, list):
        for index, message in enumerate(messages):
            if isinstance(message, dict):
                _message(message, f"messages[{index}]", rules, diags)
    if rules.max_tokens_field == "max_tokens" and data.get("max_completion_tokens") is not None:
        # OpenAI's max_completion_tokens supersedes max_tokens when both are sent
        data["max_tokens"] = data.pop("max_completion_tokens")
    if rules.explicit_tool_choice and data.get("tools") and data.get("tool_choice") is None:
        data["tool_choice"] = "auto"
    if (
        rules.tools_in_system_message
        and data.get("tools")
        and isinstance(messages, list)
        and not any(isinstance(m, dict) and m.get("role") == "system" for m in messages)
    ):
        messages.insert(0, {"role": "system", "content": ""})  # the format prints tools only there
    if rules.required_tool_choice == "named" and data.get("tool_choice") == "required":
        data["tool_choice"] = _one_function(data.get("tools"))
    for name in rules.drop_params:
        if data.get(name) is not None:
            del data[name]
            diags.report("dropped_param", f"This upstream rejects {name!r}.", param=name)
    for key, value in rules.extra_body.items():
        data.setdefault(key, value)
