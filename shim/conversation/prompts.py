"""``prompt: {id, version?, variables?}``: operator-defined prompt templates, as OpenAI documents them.

Templates live in a directory of TOML files (``[server] prompts_dir`` / ``SHIM_PROMPTS_DIR``),
one prompt per file, loaded and checked once at start-up (a bad file stops the server, naming
it)::

    id = "pmpt_support"            # optional: the file name without ``.toml``
    description = "Support desk"   # optional, for people

    [[versions]]                   # oldest first; the last one is what no ``version`` gets
    version = "1"
    instructions = "You help {{customer}} with {{product}}."
    [versions.defaults]            # optional: text for variables a request may leave out
    product = "the shim"
    [[versions.input]]             # optional: messages put before the request's ``input``
    role = "user"
    content = "Here is the document: {{document}}"

A request's ``variables`` map names to a string or to an input part (``input_text``,
``input_image``, ``input_file``). ``{{name}}`` in ``instructions`` takes text only; in a message
it becomes the variable's part where it stands (the text around it kept as text parts).

Expansion gives plain ``instructions`` and ``input``: the template's instructions, then the
request's own (nothing is dropped); the template's messages, then the request's input. What a
template cannot do is a 4xx naming the field: an unknown id or version is a 404
``prompt_not_found``, a variable the template needs and nobody gave is a 400
``missing_prompt_variable``, one it does not use or of the wrong kind a 400.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from shim.errors import InvalidRequest, NotFound
from shim.wire import responses as r

__all__ = ["PromptError", "PromptLibrary", "expand_prompt", "load_prompts"]

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}")
_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]


class PromptError(ValueError):
    """A prompt file is malformed, has unknown keys, or repeats an id or version."""


class TemplateMessage(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    role: Literal["user", "assistant", "system", "developer"]
    content: str


class Version(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    version: _NonEmpty
    instructions: str | None = None
    input: tuple[TemplateMessage, ...] = ()
    defaults: dict[str, str] = {}

    def names(self) -> set[str]:
        texts = [self.instructions or "", *(m.content for m in self.input)]
        return {name for text in texts for name in _PLACEHOLDER.findall(text)}


class PromptFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    versions: Annotated[tuple[Version, ...], msgspec.Meta(min_length=1)]
    id: _NonEmpty | None = None
    description: str = ""


class PromptLibrary(msgspec.Struct, frozen=True):
    """Every template by id; ``versions`` in file order (the last is the latest)."""

    prompts: dict[str, tuple[Version, ...]] = {}

    def find(self, prompt_id: str, version: str | None) -> Version:
        versions = self.prompts.get(prompt_id)
        if versions is None:
            raise NotFound(
                f"No prompt template with id {prompt_id!r}.", param="prompt.id", code="prompt_not_found"
            )
        if version is None:
            return versions[-1]
        for candidate in versions:
            if candidate.version == version:
                return candidate
        known = ", ".join(v.version for v in versions)
        raise NotFound(
            f"Prompt {prompt_id!r} has no version {version!r} (it has: {known}).",
            param="prompt.version",
            code="prompt_not_found",
        )


def load_prompts(directory: str | Path | None) -> PromptLibrary:
    """Every ``*.toml`` in ``directory`` (empty or ``None``: no templates)."""
    if not directory:
        return PromptLibrary()
    root = Path(directory).expanduser()
    if not root.is_dir():
        raise PromptError(f"prompts_dir {str(root)!r} is not a directory")
    prompts: dict[str, tuple[Version, ...]] = {}
    for path in sorted(root.glob("*.toml")):
        try:
            parsed = msgspec.convert(tomllib.loads(path.read_text(encoding="utf-8")), PromptFile)
        except (OSError, tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
            raise PromptError(f"{path}: {exc}") from None
        prompt_id = parsed.id or path.stem
        if prompt_id in prompts:
            raise PromptError(f"{path}: prompt id {prompt_id!r} is defined twice")
        seen = [v.version for v in parsed.versions]
        if len(set(seen)) != len(seen):
            raise PromptError(f"{path}: a version is listed twice ({', '.join(seen)})")
        prompts[prompt_id] = parsed.versions
    return PromptLibrary(prompts)


class _Ref(msgspec.Struct, forbid_unknown_fields=True):
    id: _NonEmpty
    version: str | None = None
    variables: dict[str, Any] | None = None


_ref_type = _Ref
_part_decoder = msgspec.json.Decoder(r.InputTextContent | r.InputImageContent | r.InputFileContent)
_encoder = msgspec.json.Encoder()


def _variable(name: str, value: Any) -> str | r.InputImageContent | r.InputFileContent:
    if isinstance(value, str):
        return value
    where = f"prompt.variables.{name}"
    try:
        part = _part_decoder.decode(_encoder.encode(value))
    except (msgspec.DecodeError, TypeError):
        raise InvalidRequest(
            f"`{where}` must be a string or an input_text, input_image or input_file part.", param=where
        ) from None
    return part.text if isinstance(part, r.InputTextContent) else part


def _fill_text(
    text: str, values: dict[str, str | r.InputImageContent | r.InputFileContent], where: str
) -> str:
    def one(match: re.Match[str]) -> str:
        value = values[match.group(1)]
        if not isinstance(value, str):
            raise InvalidRequest(
                f"`prompt.variables.{match.group(1)}` is an image or file; {where} takes text only.",
                param=f"prompt.variables.{match.group(1)}",
            )
        return value

    return _PLACEHOLDER.sub(one, text)


def _fill_message(
    message: TemplateMessage, values: dict[str, str | r.InputImageContent | r.InputFileContent]
) -> r.MessageItemParam:
    if message.role in ("system", "developer") or all(
        isinstance(values[n], str) for n in _PLACEHOLDER.findall(message.content)
    ):
        return r.MessageItemParam(
            role=message.role, content=_fill_text(message.content, values, "a system message")
        )
    if message.role != "user":
        raise InvalidRequest(
            "An image or file variable can only stand in a user message of the template.",
            param="prompt.variables",
        )
    parts: list[r.ContentPart] = []
    at = 0
    for match in _PLACEHOLDER.finditer(message.content):
        value = values[match.group(1)]
        if isinstance(value, str):
            continue  # joined into the text around it below
        before = _fill_text(message.content[at : match.start()], values, "")
        if before:
            parts.append(r.InputTextContent(text=before))
        parts.append(value)
        at = match.end()
    rest = _fill_text(message.content[at:], values, "")
    if rest:
        parts.append(r.InputTextContent(text=rest))
    return r.MessageItemParam(role="user", content=parts)


def expand_prompt(body: r.CreateResponseBody, library: PromptLibrary) -> r.CreateResponseBody:
    """``body`` with its ``prompt`` expanded into ``instructions`` and ``input`` (``prompt`` is
    kept, for the echo); a body without one is returned as it is."""
    if body.prompt is None:
        return body
    try:
        ref = msgspec.convert(body.prompt, _ref_type)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"`prompt` is not a prompt reference: {exc}", param="prompt") from None
    version = library.find(ref.id, ref.version)
    given = ref.variables or {}
    needed = version.names()
    for name in sorted(set(given) - needed):
        raise InvalidRequest(
            f"Prompt {ref.id!r} has no variable {name!r}.",
            param=f"prompt.variables.{name}",
            code="unknown_prompt_variable",
        )
    values: dict[str, str | r.InputImageContent | r.InputFileContent] = dict(version.defaults)
    values.update({name: _variable(name, value) for name, value in given.items()})
    for name in sorted(needed - set(values)):
        raise InvalidRequest(
            f"Prompt {ref.id!r} needs the variable {name!r}.",
            param=f"prompt.variables.{name}",
            code="missing_prompt_variable",
        )
    instructions = [
        text
        for text in (
            _fill_text(version.instructions, values, "`instructions`") if version.instructions else None,
            body.instructions,
        )
        if text
    ]
    messages: list[r.ItemParam] = [_fill_message(m, values) for m in version.input]
    own: list[r.ItemParam] = (
        [r.MessageItemParam(role="user", content=[r.InputTextContent(text=body.input)])]
        if isinstance(body.input, str)
        else list(body.input or ())
    )
    return msgspec.structs.replace(
        body, instructions="\n\n".join(instructions) or None, input=[*messages, *own] or None
    )
