"""Open Responses wire types (spec 2026-04-24), named exactly as the spec's schemas.

Two directions share these structs:

* what we *emit* (``ResponseResource``, output items, streaming events) encodes every
  required-but-nullable field as an explicit ``null`` (fields default to ``None`` and structs
  keep defaults); fields the spec makes optional and a strict validator rejects as ``null``
  (``ReasoningBody.encrypted_content``, ``Message.phase``) default to ``UNSET`` and are omitted;
* what we *read* (request bodies, upstream resources and events) is decoded tolerantly: most
  fields have defaults, and ``shim.wire.responses_decode`` normalises what sloppy clients send
  (messages without ``type``, bare item references) before strict conversion.

msgspec tags unions on one field, so the spec's four message params (one per role) are one
``MessageItemParam`` with a ``role`` literal.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

__all__ = [
    "TYPED_ITEM_TYPES",
    "AdditionalToolsItemParam",
    "AllowedToolChoice",
    "AllowedToolsParam",
    "ApplyPatchCall",
    "ApplyPatchCallItemParam",
    "ApplyPatchCallOutputItemParam",
    "ApplyPatchOperation",
    "ApplyPatchOperationParam",
    "ApplyPatchTool",
    "ClientCall",
    "ClientToolParam",
    "CompactResource",
    "CompactResponseMethodPublicBody",
    "CompactionBody",
    "CompactionSummaryItemParam",
    "ContentPart",
    "CreateResponseBody",
    "CustomFormatGrammar",
    "CustomFormatText",
    "CustomTool",
    "CustomToolCall",
    "CustomToolCallItemParam",
    "CustomToolCallOutputItemParam",
    "CustomToolFormat",
    "ErrorPayload",
    "ErrorStreamingEvent",
    "FunctionCall",
    "FunctionCallItemParam",
    "FunctionCallOutput",
    "FunctionCallOutputItemParam",
    "FunctionTool",
    "FunctionToolParam",
    "HostedCall",
    "HostedItemParam",
    "IncompleteDetails",
    "InputAudioContent",
    "InputFileContent",
    "InputImageContent",
    "InputTextContent",
    "InputTokensDetails",
    "InputVideoContent",
    "ItemField",
    "ItemParam",
    "ItemReferenceParam",
    "JsonObjectResponseFormat",
    "JsonSchemaResponseFormat",
    "LocalShellAction",
    "LocalShellActionParam",
    "LocalShellCall",
    "LocalShellCallItemParam",
    "LocalShellCallOutputItemParam",
    "LocalShellTool",
    "LogProb",
    "McpApprovalRequest",
    "McpCall",
    "McpListTools",
    "McpTool",
    "McpToolInfo",
    "Message",
    "MessageItemParam",
    "NamespaceTool",
    "OutputTextContent",
    "OutputTokensDetails",
    "Reasoning",
    "ReasoningBody",
    "ReasoningItemParam",
    "ReasoningParam",
    "ReasoningTextContent",
    "RefusalContent",
    "ResponseCompletedStreamingEvent",
    "ResponseContentPartAddedStreamingEvent",
    "ResponseContentPartDoneStreamingEvent",
    "ResponseCreatedStreamingEvent",
    "ResponseCustomToolCallInputDeltaStreamingEvent",
    "ResponseCustomToolCallInputDoneStreamingEvent",
    "ResponseError",
    "ResponseFailedStreamingEvent",
    "ResponseFunctionCallArgumentsDeltaStreamingEvent",
    "ResponseFunctionCallArgumentsDoneStreamingEvent",
    "ResponseInProgressStreamingEvent",
    "ResponseIncompleteStreamingEvent",
    "ResponseMcpCallArgumentsDeltaStreamingEvent",
    "ResponseMcpCallArgumentsDoneStreamingEvent",
    "ResponseMcpCallCompletedStreamingEvent",
    "ResponseMcpCallFailedStreamingEvent",
    "ResponseMcpCallInProgressStreamingEvent",
    "ResponseMcpListToolsCompletedStreamingEvent",
    "ResponseMcpListToolsFailedStreamingEvent",
    "ResponseMcpListToolsInProgressStreamingEvent",
    "ResponseOutputItemAddedStreamingEvent",
    "ResponseOutputItemDoneStreamingEvent",
    "ResponseOutputTextAnnotationAddedStreamingEvent",
    "ResponseOutputTextDeltaStreamingEvent",
    "ResponseOutputTextDoneStreamingEvent",
    "ResponseQueuedStreamingEvent",
    "ResponseReasoningDeltaStreamingEvent",
    "ResponseReasoningDoneStreamingEvent",
    "ResponseReasoningSummaryDeltaStreamingEvent",
    "ResponseReasoningSummaryDoneStreamingEvent",
    "ResponseReasoningSummaryPartAddedStreamingEvent",
    "ResponseReasoningSummaryPartDoneStreamingEvent",
    "ResponseRefusalDeltaStreamingEvent",
    "ResponseRefusalDoneStreamingEvent",
    "ResponseResource",
    "ResponseWebSearchCallCompletedStreamingEvent",
    "ResponseWebSearchCallInProgressStreamingEvent",
    "ResponseWebSearchCallSearchingStreamingEvent",
    "ShellAction",
    "ShellActionParam",
    "ShellCall",
    "ShellCallItemParam",
    "ShellCallOutputItemParam",
    "ShellOutcome",
    "ShellOutputContent",
    "ShellTool",
    "SpecificApplyPatchParam",
    "SpecificCustomParam",
    "SpecificFunctionParam",
    "SpecificMcpParam",
    "SpecificShellParam",
    "SpecificToolParam",
    "StreamOptionsParam",
    "StreamingEvent",
    "SummaryTextContent",
    "TextContent",
    "TextField",
    "TextFormat",
    "TextParam",
    "TextResponseFormat",
    "ToolChoice",
    "ToolField",
    "TopLogProb",
    "UrlCitationBody",
    "Usage",
    "WebSearchAction",
    "WebSearchCall",
    "WebSearchSource",
    "WebSearchTool",
]

Status = Literal["in_progress", "completed", "incomplete"]
Role = Literal["user", "assistant", "system", "developer"]
ToolChoiceValue = Literal["none", "auto", "required"]


class _Base(msgspec.Struct, kw_only=True):
    pass


# --------------------------------------------------------------------------- content parts


class TopLogProb(_Base):
    token: str
    logprob: float
    bytes: list[int] = []


class LogProb(_Base):
    token: str
    logprob: float
    bytes: list[int] = []
    top_logprobs: list[TopLogProb] = []


class UrlCitationBody(_Base, tag="url_citation", tag_field="type"):
    url: str
    start_index: int
    end_index: int
    title: str


class InputTextContent(_Base, tag="input_text", tag_field="type"):
    text: str


class OutputTextContent(_Base, tag="output_text", tag_field="type"):
    text: str
    annotations: list[UrlCitationBody] = []
    logprobs: list[LogProb] | UnsetType = UNSET


class TextContent(_Base, tag="text", tag_field="type"):
    text: str


class RefusalContent(_Base, tag="refusal", tag_field="type"):
    refusal: str


class ReasoningTextContent(_Base, tag="reasoning_text", tag_field="type"):
    text: str


class SummaryTextContent(_Base, tag="summary_text", tag_field="type"):
    text: str


class InputImageContent(_Base, tag="input_image", tag_field="type"):
    image_url: str | None = None
    detail: Literal["low", "high", "auto"] | None = None
    file_id: str | UnsetType = UNSET


class InputFileContent(_Base, tag="input_file", tag_field="type"):
    filename: str | UnsetType | None = UNSET
    file_data: str | UnsetType | None = UNSET
    file_url: str | UnsetType | None = UNSET
    file_id: str | UnsetType | None = UNSET


class InputVideoContent(_Base, tag="input_video", tag_field="type"):
    video_url: str


class InputAudioData(_Base):
    data: str
    format: str


class InputAudioContent(_Base, tag="input_audio", tag_field="type"):
    """OpenAI's audio input part; not in the Open Responses spec, accepted for Chat parity."""

    input_audio: InputAudioData


ContentPart = (
    InputTextContent
    | OutputTextContent
    | TextContent
    | RefusalContent
    | ReasoningTextContent
    | SummaryTextContent
    | InputImageContent
    | InputFileContent
    | InputVideoContent
    | InputAudioContent
)

# --------------------------------------------------------------------------- output items


class Message(_Base, tag="message", tag_field="type"):
    id: str
    status: Status
    role: Role
    content: list[ContentPart]
    phase: Literal["commentary", "final_answer"] | UnsetType = UNSET


class FunctionCall(_Base, tag="function_call", tag_field="type"):
    id: str
    call_id: str
    name: str
    arguments: str
    status: Status
    namespace: str | UnsetType = UNSET  # set when the tool came from a ``namespace`` tool


class FunctionCallOutput(_Base, tag="function_call_output", tag_field="type"):
    id: str
    call_id: str
    output: str | list[ContentPart]
    status: Status


class ReasoningBody(_Base, tag="reasoning", tag_field="type"):
    id: str
    summary: list[SummaryTextContent] = []
    content: list[ReasoningTextContent] | UnsetType = UNSET
    encrypted_content: str | UnsetType = UNSET


class CompactionBody(_Base, tag="compaction", tag_field="type"):
    id: str
    encrypted_content: str
    created_by: str | UnsetType = UNSET


class CustomToolCall(_Base, tag="custom_tool_call", tag_field="type"):
    """A call to a ``custom`` tool: free-form ``input`` (openai-python ``ResponseCustomToolCall``)."""

    id: str
    call_id: str
    name: str
    input: str
    namespace: str | UnsetType = UNSET


class ApplyPatchOperation(_Base):
    type: Literal["create_file", "update_file", "delete_file"]
    path: str
    diff: str | UnsetType = UNSET  # absent for ``delete_file``


class ApplyPatchCall(_Base, tag="apply_patch_call", tag_field="type"):
    id: str
    call_id: str
    operation: ApplyPatchOperation
    status: Literal["in_progress", "completed"]


class ShellAction(_Base):
    commands: list[str]
    timeout_ms: int | None = None
    max_output_length: int | None = None


class ShellCall(_Base, tag="shell_call", tag_field="type"):
    id: str
    call_id: str
    action: ShellAction
    status: Status


class LocalShellAction(_Base, tag="exec", tag_field="type"):
    command: list[str]
    env: dict[str, str] = {}
    timeout_ms: int | None = None
    user: str | None = None
    working_directory: str | None = None


class LocalShellCall(_Base, tag="local_shell_call", tag_field="type"):
    id: str
    call_id: str
    action: LocalShellAction
    status: Status


# The calls a client executes, raised from a lowered Chat function call (shim.translate.tools).
ClientCall = CustomToolCall | ApplyPatchCall | ShellCall | LocalShellCall

# --------------------------------------------------------------------------- hosted tools' items
# The items of tools the shim runs itself (shim/turns/hosted_loop.py), as openai-python types them
# (``McpListTools``, ``McpCall``, ``McpApprovalRequest``, ``ResponseFunctionWebSearch``).


class McpToolInfo(_Base):
    name: str
    input_schema: dict[str, Any]
    description: str | None = None
    annotations: dict[str, Any] | None = None


class McpListTools(_Base, tag="mcp_list_tools", tag_field="type"):
    id: str
    server_label: str
    tools: list[McpToolInfo]
    error: str | None = None


class McpCall(_Base, tag="mcp_call", tag_field="type"):
    """``error``: openai-python's ``McpToolCallError`` (``mcp_tool_execution_error`` with the
    tool's ``content``, ``mcp_protocol_error`` or ``http_error`` with ``code`` and ``message``)."""

    id: str
    server_label: str
    name: str
    arguments: str
    status: Literal["in_progress", "completed", "incomplete", "calling", "failed"]
    output: str | None = None
    error: dict[str, Any] | None = None
    approval_request_id: str | None = None


class McpApprovalRequest(_Base, tag="mcp_approval_request", tag_field="type"):
    id: str
    server_label: str
    name: str
    arguments: str


class WebSearchSource(_Base, tag="url", tag_field="type"):
    url: str


class WebSearchAction(_Base, tag="search", tag_field="type"):
    query: str
    sources: list[WebSearchSource] | UnsetType = UNSET


class WebSearchCall(_Base, tag="web_search_call", tag_field="type"):
    id: str
    action: WebSearchAction
    status: Literal["in_progress", "searching", "completed", "failed", "incomplete"]


# The items of hosted tools (kept in a history as ``HostedItemParam``, see shim/translate/history.py).
HostedCall = McpListTools | McpCall | McpApprovalRequest | WebSearchCall

ItemField = (
    Message
    | FunctionCall
    | FunctionCallOutput
    | ReasoningBody
    | CompactionBody
    | CustomToolCall
    | ApplyPatchCall
    | ShellCall
    | LocalShellCall
    | McpListTools
    | McpCall
    | McpApprovalRequest
    | WebSearchCall
)

# --------------------------------------------------------------------------- input items


class MessageItemParam(_Base, tag="message", tag_field="type"):
    """The spec's User/System/Developer/AssistantMessageItemParam, and output ``Message`` sent back."""

    role: Role
    content: str | list[ContentPart]
    id: str | None = None
    status: str | None = None
    phase: Literal["commentary", "final_answer"] | None = None


class FunctionCallItemParam(_Base, tag="function_call", tag_field="type"):
    call_id: str
    name: str
    arguments: str
    id: str | None = None
    status: str | None = None
    namespace: str | None = None


class FunctionCallOutputItemParam(_Base, tag="function_call_output", tag_field="type"):
    call_id: str
    output: str | list[ContentPart]
    id: str | None = None
    status: str | None = None


class ReasoningItemParam(_Base, tag="reasoning", tag_field="type"):
    summary: list[SummaryTextContent] = []
    id: str | None = None
    content: list[ReasoningTextContent] | None = None
    encrypted_content: str | None = None
    status: str | None = None


class CompactionSummaryItemParam(_Base, tag="compaction", tag_field="type"):
    encrypted_content: str
    id: str | None = None
    created_by: str | None = None


class ItemReferenceParam(_Base, tag="item_reference", tag_field="type"):
    id: str


class CustomToolCallItemParam(_Base, tag="custom_tool_call", tag_field="type"):
    call_id: str
    name: str
    input: str
    id: str | None = None
    namespace: str | None = None
    status: str | None = None


class CustomToolCallOutputItemParam(_Base, tag="custom_tool_call_output", tag_field="type"):
    call_id: str
    output: str | list[ContentPart]
    id: str | None = None
    status: str | None = None


class ApplyPatchOperationParam(_Base):
    type: Literal["create_file", "update_file", "delete_file"]
    path: str
    diff: str | None = None


class ApplyPatchCallItemParam(_Base, tag="apply_patch_call", tag_field="type"):
    call_id: str
    operation: ApplyPatchOperationParam
    id: str | None = None
    status: str | None = None


class ApplyPatchCallOutputItemParam(_Base, tag="apply_patch_call_output", tag_field="type"):
    call_id: str
    status: str | None = None  # "completed" | "failed"
    output: str | None = None
    id: str | None = None


class ShellActionParam(_Base):
    commands: list[str]
    timeout_ms: int | None = None
    max_output_length: int | None = None


class ShellCallItemParam(_Base, tag="shell_call", tag_field="type"):
    call_id: str
    action: ShellActionParam
    id: str | None = None
    status: str | None = None


class ShellOutcome(_Base):
    type: Literal["exit", "timeout"]
    exit_code: int | None = None


class ShellOutputContent(_Base):
    stdout: str = ""
    stderr: str = ""
    outcome: ShellOutcome | None = None


class ShellCallOutputItemParam(_Base, tag="shell_call_output", tag_field="type"):
    call_id: str
    output: list[ShellOutputContent]
    max_output_length: int | None = None
    id: str | None = None
    status: str | None = None


class LocalShellActionParam(_Base):
    command: list[str]
    env: dict[str, str] = {}
    type: Literal["exec"] = "exec"
    timeout_ms: int | None = None
    user: str | None = None
    working_directory: str | None = None


class LocalShellCallItemParam(_Base, tag="local_shell_call", tag_field="type"):
    call_id: str
    action: LocalShellActionParam
    id: str | None = None
    status: str | None = None


class LocalShellCallOutputItemParam(_Base, tag="local_shell_call_output", tag_field="type"):
    """openai-python names the call in ``id`` (its docs: "the ID of the local shell tool call");
    ``call_id`` is read too, and wins when both are sent."""

    id: str
    output: str
    call_id: str | None = None
    status: str | None = None


class AdditionalToolsItemParam(_Base, tag="additional_tools", tag_field="type"):
    """Tools made available from this point of the conversation (Codex's lite mode)."""

    tools: list[dict[str, Any]]
    role: Literal["developer"] = "developer"
    id: str | None = None


class HostedItemParam(_Base, tag="hosted_item", tag_field="type"):
    """Any other input item of the Responses API (``web_search_call``, ``mcp_call``,
    ``compaction_trigger``, ``program``…), kept whole in ``item``: ``normalise_input_items``
    wraps it, and the request writer renders it as text or drops it with a diagnostic."""

    item: dict[str, Any]


ItemParam = (
    MessageItemParam
    | FunctionCallItemParam
    | FunctionCallOutputItemParam
    | ReasoningItemParam
    | CompactionSummaryItemParam
    | ItemReferenceParam
    | CustomToolCallItemParam
    | CustomToolCallOutputItemParam
    | ApplyPatchCallItemParam
    | ApplyPatchCallOutputItemParam
    | ShellCallItemParam
    | ShellCallOutputItemParam
    | LocalShellCallItemParam
    | LocalShellCallOutputItemParam
    | AdditionalToolsItemParam
    | HostedItemParam
)

# Item types decoded into their own struct above; every other ``type`` becomes a HostedItemParam.
TYPED_ITEM_TYPES = frozenset(t.__struct_config__.tag for t in ItemParam.__args__ if t is not HostedItemParam)

# --------------------------------------------------------------------------- tools & choices


class FunctionToolParam(_Base, tag="function", tag_field="type"):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FunctionTool(_Base, tag="function", tag_field="type"):
    """The echoed tool in a ``ResponseResource``: every field present, nulls allowed."""

    name: str
    description: str | None
    parameters: dict[str, Any] | None
    strict: bool | None


class CustomFormatText(_Base, tag="text", tag_field="type"):
    pass


class CustomFormatGrammar(_Base, tag="grammar", tag_field="type"):
    definition: str
    syntax: str = "lark"  # "lark" | "regex"


CustomToolFormat = CustomFormatText | CustomFormatGrammar


class CustomTool(_Base, tag="custom", tag_field="type"):
    """A ``custom`` tool: the model writes free-form ``input`` (text, or text in a grammar)."""

    name: str
    description: str | None = None
    format: CustomToolFormat | None = None


class NamespaceTool(_Base, tag="namespace", tag_field="type"):
    """Function and custom tools grouped under one name (Codex: ``mcp__<server>``)."""

    name: str
    description: str = ""
    tools: list[FunctionToolParam | CustomTool] = []


class ApplyPatchTool(_Base, tag="apply_patch", tag_field="type"):
    pass


class ShellTool(_Base, tag="shell", tag_field="type"):
    environment: dict[str, Any] | None = None


class LocalShellTool(_Base, tag="local_shell", tag_field="type"):
    pass


class McpTool(_Base, tag="mcp", tag_field="type"):
    """An echoed ``mcp`` tool. Its ``headers`` and ``authorization`` are never echoed: they go to
    that server only (docs/hosted.md)."""

    server_label: str
    server_url: str | None = None
    allowed_tools: list[str] | dict[str, Any] | None = None
    require_approval: str | dict[str, Any] | None = None
    server_description: str | None = None


class WebSearchTool(_Base, tag="web_search", tag_field="type"):
    """An echoed ``web_search`` tool the shim runs through the operator's provider."""

    search_context_size: str | None = None


# The tool types a client executes itself, lowered to Chat functions (shim.translate.tools).
ClientToolParam = FunctionToolParam | CustomTool | NamespaceTool | ApplyPatchTool | ShellTool | LocalShellTool
# The same, as echoed in a ResponseResource (function tools with every field present).
ToolField = (
    FunctionTool
    | CustomTool
    | NamespaceTool
    | ApplyPatchTool
    | ShellTool
    | LocalShellTool
    | McpTool
    | WebSearchTool
)


class SpecificFunctionParam(_Base, tag="function", tag_field="type"):
    name: str


class SpecificCustomParam(_Base, tag="custom", tag_field="type"):
    name: str


class SpecificApplyPatchParam(_Base, tag="apply_patch", tag_field="type"):
    pass


class SpecificShellParam(_Base, tag="shell", tag_field="type"):
    pass


class SpecificMcpParam(_Base, tag="mcp", tag_field="type"):
    server_label: str
    name: str | None = None


SpecificToolParam = (
    SpecificFunctionParam
    | SpecificCustomParam
    | SpecificApplyPatchParam
    | SpecificShellParam
    | SpecificMcpParam
)


class AllowedToolsParam(_Base, tag="allowed_tools", tag_field="type"):
    tools: list[SpecificToolParam]
    mode: ToolChoiceValue = "auto"


AllowedToolChoice = AllowedToolsParam
ToolChoice = (
    ToolChoiceValue
    | SpecificFunctionParam
    | SpecificCustomParam
    | SpecificApplyPatchParam
    | SpecificShellParam
    | SpecificMcpParam
    | AllowedToolsParam
)

# --------------------------------------------------------------------------- text & reasoning


class TextResponseFormat(_Base, tag="text", tag_field="type"):
    pass


class JsonObjectResponseFormat(_Base, tag="json_object", tag_field="type"):
    pass


class JsonSchemaResponseFormat(_Base, tag="json_schema", tag_field="type"):
    name: str = "response"
    description: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None


TextFormat = TextResponseFormat | JsonObjectResponseFormat | JsonSchemaResponseFormat


class TextParam(_Base):
    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class TextField(_Base):
    format: TextFormat
    verbosity: Literal["low", "medium", "high"] | UnsetType = UNSET


ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]


class ReasoningParam(_Base):
    effort: ReasoningEffort | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None


class Reasoning(_Base):
    effort: ReasoningEffort | None
    summary: Literal["auto", "concise", "detailed"] | None


class StreamOptionsParam(_Base):
    include_obfuscation: bool | None = None


# --------------------------------------------------------------------------- request bodies


class CreateResponseBody(_Base):
    model: str | None = None
    input: str | list[ItemParam] | None = None
    previous_response_id: str | None = None
    include: list[str] | None = None
    # Kept as sent: ``shim.translate.tools.client_tools`` types the client-executed ones and
    # reports the rest (web_search, mcp, computer…) as diagnostics.
    tools: list[dict[str, Any]] | None = None
    tool_choice: ToolChoice | None = None
    metadata: dict[str, str] | None = None
    text: TextParam | None = None
    temperature: float | None = None
    top_p: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    parallel_tool_calls: bool | None = None
    stream: bool | None = None
    stream_options: StreamOptionsParam | None = None
    background: bool | None = None
    max_output_tokens: int | None = None
    max_tool_calls: int | None = None
    reasoning: ReasoningParam | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    truncation: Literal["auto", "disabled"] | None = None
    instructions: str | None = None
    store: bool | None = None
    service_tier: str | None = None
    top_logprobs: int | None = None
    # OpenAI fields outside the spec that real clients send.
    user: str | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    conversation: Any = None
    prompt: Any = None
    context_management: Any = None
    prompt_cache_retention: Any = None
    prompt_cache_options: Any = None
    access_programs: Any = None
    background_options: Any = None
    image: Any = None
    moderation: Any = None


class CompactResponseMethodPublicBody(_Base):
    model: str | None = None
    input: str | list[ItemParam] | None = None
    previous_response_id: str | None = None
    instructions: str | None = None
    prompt_cache_key: str | None = None
    # Outside the spec: a limit on the summary's length (the shim's summary is a model's answer).
    max_output_tokens: Annotated[int, msgspec.Meta(ge=1)] | None = None


# --------------------------------------------------------------------------- the resource


class InputTokensDetails(_Base):
    cached_tokens: int = 0
    cache_write_tokens: int = 0


class OutputTokensDetails(_Base):
    reasoning_tokens: int = 0


class Usage(_Base):
    input_tokens: int
    output_tokens: int
    total_tokens: int
    input_tokens_details: InputTokensDetails = msgspec.field(default_factory=InputTokensDetails)
    output_tokens_details: OutputTokensDetails = msgspec.field(default_factory=OutputTokensDetails)


class IncompleteDetails(_Base):
    reason: str


class ResponseError(_Base):
    """The spec's ``Error`` schema (``code`` and ``message``), as carried by a failed response."""

    code: str
    message: str


class ConversationRef(_Base):
    id: str


class ResponseResource(_Base, kw_only=True):
    """All 31 properties are required by the spec; nullable ones encode as explicit ``null``.
    ``conversation`` (OpenAI's, outside the spec) is there only for a turn on a conversation."""

    id: str
    object: Literal["response"] = "response"
    created_at: int
    completed_at: int | None = None
    status: str = "in_progress"
    incomplete_details: IncompleteDetails | None = None
    model: str
    previous_response_id: str | None = None
    instructions: str | None = None
    output: list[ItemField] = []
    error: ResponseError | None = None
    tools: list[ToolField] = []
    tool_choice: ToolChoice = "auto"
    truncation: Literal["auto", "disabled"] = "disabled"
    parallel_tool_calls: bool = True
    text: TextField = msgspec.field(default_factory=lambda: TextField(format=TextResponseFormat()))
    top_p: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    top_logprobs: int = 0
    temperature: float = 1.0
    reasoning: Reasoning | None = None
    usage: Usage | None = None
    max_output_tokens: int | None = None
    max_tool_calls: int | None = None
    store: bool = True
    background: bool = False
    service_tier: str = "default"
    metadata: dict[str, str] = {}
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    conversation: ConversationRef | UnsetType = UNSET
    prompt: Any | UnsetType = UNSET  # OpenAI's, outside the spec: echoed when a template was used


class CompactResource(_Base):
    id: str
    output: list[ItemField]
    created_at: int
    usage: Usage
    object: Literal["response.compaction"] = "response.compaction"


# --------------------------------------------------------------------------- streaming events


class ErrorPayload(_Base):
    type: str
    message: str
    code: str | None = None
    param: str | None = None


class _Event(msgspec.Struct, kw_only=True, tag_field="type"):
    sequence_number: int


class ResponseCreatedStreamingEvent(_Event, tag="response.created"):
    response: ResponseResource


class ResponseQueuedStreamingEvent(_Event, tag="response.queued"):
    response: ResponseResource


class ResponseInProgressStreamingEvent(_Event, tag="response.in_progress"):
    response: ResponseResource


class ResponseCompletedStreamingEvent(_Event, tag="response.completed"):
    response: ResponseResource


class ResponseIncompleteStreamingEvent(_Event, tag="response.incomplete"):
    response: ResponseResource


class ResponseFailedStreamingEvent(_Event, tag="response.failed"):
    response: ResponseResource


class ResponseOutputItemAddedStreamingEvent(_Event, tag="response.output_item.added"):
    output_index: int
    item: ItemField


class ResponseOutputItemDoneStreamingEvent(_Event, tag="response.output_item.done"):
    output_index: int
    item: ItemField


class ResponseContentPartAddedStreamingEvent(_Event, tag="response.content_part.added"):
    item_id: str
    output_index: int
    content_index: int
    part: ContentPart


class ResponseContentPartDoneStreamingEvent(_Event, tag="response.content_part.done"):
    item_id: str
    output_index: int
    content_index: int
    part: ContentPart


class ResponseOutputTextDeltaStreamingEvent(_Event, tag="response.output_text.delta"):
    item_id: str
    output_index: int
    content_index: int
    delta: str
    logprobs: list[LogProb] = []


class ResponseOutputTextDoneStreamingEvent(_Event, tag="response.output_text.done"):
    item_id: str
    output_index: int
    content_index: int
    text: str
    logprobs: list[LogProb] = []


class ResponseOutputTextAnnotationAddedStreamingEvent(_Event, tag="response.output_text.annotation.added"):
    item_id: str
    output_index: int
    content_index: int
    annotation_index: int
    annotation: UrlCitationBody | None = None


class ResponseRefusalDeltaStreamingEvent(_Event, tag="response.refusal.delta"):
    item_id: str
    output_index: int
    content_index: int
    delta: str


class ResponseRefusalDoneStreamingEvent(_Event, tag="response.refusal.done"):
    item_id: str
    output_index: int
    content_index: int
    refusal: str


class ResponseReasoningDeltaStreamingEvent(_Event, tag="response.reasoning.delta"):
    item_id: str
    output_index: int
    content_index: int
    delta: str


class ResponseReasoningDoneStreamingEvent(_Event, tag="response.reasoning.done"):
    item_id: str
    output_index: int
    content_index: int
    text: str


class ResponseReasoningSummaryPartAddedStreamingEvent(_Event, tag="response.reasoning_summary_part.added"):
    item_id: str
    output_index: int
    summary_index: int
    part: SummaryTextContent


class ResponseReasoningSummaryPartDoneStreamingEvent(_Event, tag="response.reasoning_summary_part.done"):
    item_id: str
    output_index: int
    summary_index: int
    part: SummaryTextContent


class ResponseReasoningSummaryDeltaStreamingEvent(_Event, tag="response.reasoning_summary_text.delta"):
    item_id: str
    output_index: int
    summary_index: int
    delta: str


class ResponseReasoningSummaryDoneStreamingEvent(_Event, tag="response.reasoning_summary_text.done"):
    item_id: str
    output_index: int
    summary_index: int
    text: str


class ResponseFunctionCallArgumentsDeltaStreamingEvent(_Event, tag="response.function_call_arguments.delta"):
    item_id: str
    output_index: int
    delta: str


class ResponseFunctionCallArgumentsDoneStreamingEvent(_Event, tag="response.function_call_arguments.done"):
    item_id: str
    output_index: int
    arguments: str
    name: str | UnsetType = UNSET


class ResponseCustomToolCallInputDeltaStreamingEvent(_Event, tag="response.custom_tool_call_input.delta"):
    item_id: str
    output_index: int
    delta: str


class ResponseCustomToolCallInputDoneStreamingEvent(_Event, tag="response.custom_tool_call_input.done"):
    item_id: str
    output_index: int
    input: str


class ResponseMcpListToolsInProgressStreamingEvent(_Event, tag="response.mcp_list_tools.in_progress"):
    item_id: str
    output_index: int


class ResponseMcpListToolsCompletedStreamingEvent(_Event, tag="response.mcp_list_tools.completed"):
    item_id: str
    output_index: int


class ResponseMcpListToolsFailedStreamingEvent(_Event, tag="response.mcp_list_tools.failed"):
    item_id: str
    output_index: int


class ResponseMcpCallArgumentsDeltaStreamingEvent(_Event, tag="response.mcp_call_arguments.delta"):
    item_id: str
    output_index: int
    delta: str


class ResponseMcpCallArgumentsDoneStreamingEvent(_Event, tag="response.mcp_call_arguments.done"):
    item_id: str
    output_index: int
    arguments: str


class ResponseMcpCallInProgressStreamingEvent(_Event, tag="response.mcp_call.in_progress"):
    item_id: str
    output_index: int


class ResponseMcpCallCompletedStreamingEvent(_Event, tag="response.mcp_call.completed"):
    item_id: str
    output_index: int


class ResponseMcpCallFailedStreamingEvent(_Event, tag="response.mcp_call.failed"):
    item_id: str
    output_index: int


class ResponseWebSearchCallInProgressStreamingEvent(_Event, tag="response.web_search_call.in_progress"):
    item_id: str
    output_index: int


class ResponseWebSearchCallSearchingStreamingEvent(_Event, tag="response.web_search_call.searching"):
    item_id: str
    output_index: int


class ResponseWebSearchCallCompletedStreamingEvent(_Event, tag="response.web_search_call.completed"):
    item_id: str
    output_index: int


class ErrorStreamingEvent(_Event, tag="error"):
    error: ErrorPayload


StreamingEvent = (
    ResponseCreatedStreamingEvent
    | ResponseQueuedStreamingEvent
    | ResponseInProgressStreamingEvent
    | ResponseCompletedStreamingEvent
    | ResponseIncompleteStreamingEvent
    | ResponseFailedStreamingEvent
    | ResponseOutputItemAddedStreamingEvent
    | ResponseOutputItemDoneStreamingEvent
    | ResponseContentPartAddedStreamingEvent
    | ResponseContentPartDoneStreamingEvent
    | ResponseOutputTextDeltaStreamingEvent
    | ResponseOutputTextDoneStreamingEvent
    | ResponseOutputTextAnnotationAddedStreamingEvent
    | ResponseRefusalDeltaStreamingEvent
    | ResponseRefusalDoneStreamingEvent
    | ResponseReasoningDeltaStreamingEvent
    | ResponseReasoningDoneStreamingEvent
    | ResponseReasoningSummaryPartAddedStreamingEvent
    | ResponseReasoningSummaryPartDoneStreamingEvent
    | ResponseReasoningSummaryDeltaStreamingEvent
    | ResponseReasoningSummaryDoneStreamingEvent
    | ResponseFunctionCallArgumentsDeltaStreamingEvent
    | ResponseFunctionCallArgumentsDoneStreamingEvent
    | ResponseCustomToolCallInputDeltaStreamingEvent
    | ResponseCustomToolCallInputDoneStreamingEvent
    | ResponseMcpListToolsInProgressStreamingEvent
    | ResponseMcpListToolsCompletedStreamingEvent
    | ResponseMcpListToolsFailedStreamingEvent
    | ResponseMcpCallArgumentsDeltaStreamingEvent
    | ResponseMcpCallArgumentsDoneStreamingEvent
    | ResponseMcpCallInProgressStreamingEvent
    | ResponseMcpCallCompletedStreamingEvent
    | ResponseMcpCallFailedStreamingEvent
    | ResponseWebSearchCallInProgressStreamingEvent
    | ResponseWebSearchCallSearchingStreamingEvent
    | ResponseWebSearchCallCompletedStreamingEvent
    | ErrorStreamingEvent
)
