"""A Chat Completions client over an Open Responses upstream: one turn, framing-free.

``prepare`` decodes nothing (the handler did) and translates: messages → items (with the
reasoning remembered for earlier assistant turns put back), the request → a Responses body.
``complete`` and ``stream`` run it; Chat features Responses lacks are emulated here:

* ``stop``: a ``StopFilter`` cuts the text at the first match; the upstream request is then
  closed at once (it stops generating) and the choice ends with ``finish_reason: stop``.
* ``n > 1``: that many upstream requests run in parallel, one per choice; their chunks are
  interleaved as they arrive and usage is summed. It costs ``n`` times the input tokens.
* ``stream_options.include_usage``: one usage chunk (``choices: []``) just before ``[DONE]``.

On a stateful route with ``continue_upstream`` the request becomes ``previous_response_id``
plus only the messages after the last remembered assistant turn (the bytes saved are
reported in ``x-shim-upstream-bytes-saved``); if the upstream no longer knows that id, the
whole history is sent instead.

Each upstream answer runs through the pump (``turns/pump.py``) with a ``ChatChoiceDriver``, the
same driver ``shim convert`` and the fixture suite run. Remembered reasoning only helps later
turns: a store that fails to take it is logged and the answer is delivered whole.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import httpx
import msgspec

from shim.conversation.reasoning_memory import TurnRecord, prefix_digests
from shim.core.deltas import ErrorDelta, UsageDelta
from shim.core.diagnostics import Diagnostic, Diagnostics
from shim.errors import InvalidRequest, ShimError, UpstreamError, UpstreamStatusError
from shim.sse import DONE, KEEPALIVE, encode_data
from shim.translate.chat_over_responses import ChatChoiceDriver, sse
from shim.translate.chat_writer import THINK_CLOSE, THINK_OPEN, ReasoningMode, error_chunk_bytes, usage_body
from shim.translate.responses_request import encode_create_response_body, to_responses_request
from shim.translate.stop_sequences import stop_list
from shim.turns.context import TurnContext
from shim.turns.pump import pump
from shim.upstream import failover
from shim.upstream.families import family, mixed_families
from shim.upstream.redaction import ByteRedactor
from shim.upstream.routing import Resolved
from shim.wire import chat as c
from shim.wire import responses as r

__all__ = [
    "ENCRYPTED_INCLUDE",
    "MAX_N",
    "ChatTurn",
    "ChunksTranslation",
    "chunks",
    "complete",
    "open_streams",
    "prepare",
    "split_think",
]

log = logging.getLogger("shim")

MAX_N = 8  # each choice is a whole upstream request
ENCRYPTED_INCLUDE = "reasoning.encrypted_content"


def split_think(msg: c.ChatCompletionAssistantMessageParam) -> c.ChatCompletionAssistantMessageParam:
    """``<think>…</think>answer`` sent back by a client in think-tags mode → reasoning + answer."""
    content = msg.content
    if not isinstance(content, str) or msg.reasoning_content or not content.startswith(THINK_OPEN):
        return msg
    end = content.find(THINK_CLOSE)
    if end < 0:
        return msg
    thought = content[len(THINK_OPEN) : end]
    rest = content[end + len(THINK_CLOSE) :]
    return msgspec.structs.replace(msg, content=rest, reasoning_content=thought or None)


@dataclass
class ChatTurn:
    req: c.ChatCompletionRequest
    resolved: Resolved
    scope: str
    diags: Diagnostics
    mode: ReasoningMode
    completion_id: str
    created: int
    body: bytes
    full_body: bytes | None = None  # the whole-history body, when ``body`` continues upstream state
    prefix: str = ""
    remember_upstream: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    # Failover (upstream/failover.py): the body for each upstream of a route whose upstreams span
    # dialect families (upstream/families.py), and which upstream answered each choice.
    body_for: Callable[[Resolved], bytes] | None = None
    answered: dict[int, Resolved] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return self.req.n or 1

    @property
    def stops(self) -> list[str]:
        return stop_list(self.req.stop)

    @property
    def include_usage(self) -> bool:
        options = self.req.stream_options
        return bool(options is not None and options.include_usage)


def _usage_sum(drivers: list[ChatChoiceDriver]) -> UsageDelta | None:
    usages = [d.usage for d in drivers if d.usage is not None]
    if not usages:
        return None
    return UsageDelta(
        input_tokens=sum(u.input_tokens for u in usages),
        output_tokens=sum(u.output_tokens for u in usages),
        cached_tokens=sum(u.cached_tokens for u in usages),
        reasoning_tokens=sum(u.reasoning_tokens for u in usages),
    )


# ---------------------------------------------------------------------- translate


async def prepare(
    ctx: TurnContext,
    req: c.ChatCompletionRequest,
    resolved: Resolved,
    client_key: str | None,
    mode: ReasoningMode,
) -> ChatTurn:
    n = 1 if req.n is None else req.n
    if not 1 <= n <= MAX_N:
        raise InvalidRequest(f"`n` must be between 1 and {MAX_N}.", param="n", code="invalid_value")
    scope = ctx.scope(client_key)
    diags = ctx.diagnostics()
    route = resolved.route
    memory = ctx.memory
    # Keys and digests are of the messages exactly as the client sends them back.
    scopes = ctx.scopes(client_key)  # turns remembered before a secret rotation, too
    recalled = await memory.recall(scopes, req.messages) if memory is not None else {}
    prefixes = prefix_digests(req.messages)
    if mode == "think_tags":
        req.messages = [
            split_think(m) if isinstance(m, c.ChatCompletionAssistantMessageParam) else m
            for m in req.messages
        ]
    # `store: false` is honoured: the upstream keeps nothing of this turn (no continuation from it)
    stateful = route.stateful and route.continue_upstream and req.store is not False
    body = to_responses_request(
        req,
        model=resolved.upstream_model,
        diags=diags,
        stream=bool(req.stream),
        store=stateful,
        recalled=_replayable(recalled, resolved, resolved, diags),
    )
    if memory is not None:
        body.include = [*(body.include or []), ENCRYPTED_INCLUDE]
    turn = ChatTurn(
        req=req,
        resolved=resolved,
        scope=scope,
        diags=diags,
        mode=mode,
        completion_id=ctx.ids("chatcmpl"),
        created=ctx.clock(),
        body=encode_create_response_body(body),
        prefix=prefixes[-1],
        remember_upstream=stateful,
    )
    if stateful and n == 1:  # n parallel requests would race over one fallback
        _continue(turn, body, recalled, prefixes)
    if mixed_families(resolved) and any(t.reasoning for t in recalled.values()):
        turn.body_for = _bodies(req, resolved, recalled, diags, body.include)
    return turn


def _replayable(
    recalled: dict[int, TurnRecord], route: Resolved, target: Resolved, diags: Diagnostics
) -> dict[int, list[r.ItemParam]]:
    """The remembered reasoning ``target`` may get: on a route whose upstreams span dialect
    families only its own family's (``upstream/families.py``; unknown counts as the route's own)."""
    found = {i: t for i, t in recalled.items() if t.reasoning}
    if not found or not mixed_families(route):
        return {i: t.reasoning for i, t in found.items()}
    own, wanted = family(route.dialect), family(target.dialect)
    kept: dict[int, list[r.ItemParam]] = {}
    for i, record in found.items():
        made = record.family or own
        if made == wanted:
            kept[i] = record.reasoning
        elif diags.policy != "ignore":  # the shim's choice, never a 400 (families.py)
            message = f"Reasoning made by the {made} family is not replayed to a {wanted} upstream."
            diags.items.append(Diagnostic("unsupported_item", message, f"messages[{i}]"))
    return kept


def _bodies(
    req: c.ChatCompletionRequest,
    route: Resolved,
    recalled: dict[int, TurnRecord],
    diags: Diagnostics,
    include: list[str] | None,
) -> Callable[[Resolved], bytes]:
    """The body for another upstream of the route: its model, and its family's reasoning."""

    def body_for(target: Resolved) -> bytes:
        with failover.reports_once(diags):
            body = to_responses_request(
                req,
                model=target.upstream_model,
                diags=diags,
                stream=bool(req.stream),
                store=False,  # a stateful route has no fallbacks
                recalled=_replayable(recalled, route, target, diags),
            )
        body.include = include
        return encode_create_response_body(body)

    return body_for


def _continue(
    turn: ChatTurn, body: r.CreateResponseBody, recalled: dict[int, TurnRecord], prefixes: list[str]
) -> None:
    """Use the upstream's own state: previous_response_id + the messages after the last turn."""
    messages = turn.req.messages
    last = max(
        (i for i, m in enumerate(messages) if isinstance(m, c.ChatCompletionAssistantMessageParam)),
        default=-1,
    )
    record = recalled.get(last)
    if record is None or record.upstream_id is None or record.prefix != prefixes[last]:
        return
    tail = messages[last + 1 :]
    if not tail or any(isinstance(m, c.ChatCompletionFunctionMessageParam) for m in tail):
        return
    short = msgspec.structs.replace(turn.req, messages=tail)
    small = to_responses_request(
        short,
        model=turn.resolved.upstream_model,
        diags=Diagnostics("ignore"),  # already reported for the whole request
        stream=bool(turn.req.stream),
        store=True,
    )
    small.include = body.include
    small.previous_response_id = record.upstream_id
    data = encode_create_response_body(small)
    turn.full_body, turn.body = turn.body, data
    saved = len(turn.full_body) - len(data)
    turn.headers["x-shim-upstream-bytes-saved"] = str(saved)
    log.info(
        "chat: continuing %s upstream, %d of %d bytes sent",
        record.upstream_id,
        len(data),
        len(turn.full_body),
    )


async def _send(ctx: TurnContext, turn: ChatTurn, *, stream: bool, choice: int = 0) -> httpx.Response:
    try:
        return await _post(ctx, turn, stream=stream, choice=choice)
    except UpstreamStatusError as exc:
        if turn.full_body is None or exc.http_status not in (400, 404):
            raise
        log.info("chat: upstream refused previous_response_id (%s); sending the whole history", exc.message)
        turn.body, turn.full_body = turn.full_body, None
        turn.headers.pop("x-shim-upstream-bytes-saved", None)
        return await _post(ctx, turn, stream=stream, choice=choice)


async def _post(ctx: TurnContext, turn: ChatTurn, *, stream: bool, choice: int) -> httpx.Response:
    """The route's first upstream that answers (``upstream/failover.py``), under its model name.
    ``n`` choices each fail over on their own: ``turn.answered`` says who answered which."""
    first = turn.resolved

    def request(target: Resolved) -> bytes:
        if turn.body_for is not None and target is not first:
            return turn.body_for(target)
        same = target.upstream_model == first.upstream_model
        return turn.body if same else failover.with_model(turn.body, target.upstream_model)

    response, turn.answered[choice] = await failover.send(
        ctx.upstream, first, "/responses", request, stream=stream
    )
    return response


def _driver(turn: ChatTurn, choice: int) -> ChatChoiceDriver:
    return ChatChoiceDriver(
        completion_id=turn.completion_id,
        created=turn.created,
        model=turn.req.model,
        reasoning=turn.mode,
        include_usage=turn.include_usage,
        stops=turn.stops,
        choice=choice,
    )


async def _remember(ctx: TurnContext, turn: ChatTurn, drivers: list[ChatChoiceDriver]) -> None:
    """Remember each answer's reasoning for the turns that send it back. Best effort: the
    answer is already whole, so a store failure costs later turns their reasoning, no more."""
    memory = ctx.memory
    if memory is None:
        return
    try:
        for driver in drivers:
            if driver.error is not None:
                continue
            record = TurnRecord(
                reasoning=driver.reasoning_items(),
                upstream_id=driver.upstream_id if turn.remember_upstream and not driver.stopped else None,
                prefix=turn.prefix,
                family=family(turn.answered.get(driver.choice, turn.resolved).dialect),
            )
            message = driver.completion.choices[0].message
            await memory.remember(turn.scope, message, record)
    except ShimError as exc:
        log.warning("chat: reasoning not remembered, the store failed: %s", exc.message)


# ---------------------------------------------------------------------- whole answers


async def complete(ctx: TurnContext, turn: ChatTurn) -> c.ChatCompletion:
    drivers = [_driver(turn, k) for k in range(turn.n)]

    async def one(driver: ChatChoiceDriver) -> None:
        response = await _send(ctx, turn, stream=False, choice=driver.choice)
        driver.read_body(response.content)

    await asyncio.gather(*(one(d) for d in drivers))
    for driver in drivers:
        if driver.error is not None:
            err = driver.error
            raise UpstreamError(err.message, code=err.code or "upstream_error")
    completion = drivers[0].completion
    if turn.n > 1:
        completion.choices = [d.completion.choices[0] for d in drivers]
        usage = _usage_sum(drivers)
        completion.usage = usage_body(usage) if usage is not None else None
    await _remember(ctx, turn, drivers)
    return completion


# ---------------------------------------------------------------------- streams


async def open_streams(ctx: TurnContext, turn: ChatTurn) -> list[httpx.Response]:
    """Open every upstream stream before the client gets a status line, so a refusal is an
    HTTP error; if one fails the others are closed."""
    results = await asyncio.gather(
        *(_send(ctx, turn, stream=True, choice=k) for k in range(turn.n)), return_exceptions=True
    )
    opened = [x for x in results if isinstance(x, httpx.Response)]
    for x in results:
        if isinstance(x, BaseException):
            for response in opened:
                await response.aclose()
            raise x
    return opened


class ChunksTranslation:
    """One choice's ``ChatChoiceDriver`` for the pump: SSE bytes of its chunks out. The usage
    chunk of a single choice is left out (summed over the choices instead); an error ends the
    choice with a final error chunk."""

    def __init__(self, driver: ChatChoiceDriver) -> None:
        self.driver = driver
        self.ended = False  # the error chunk went out

    @property
    def stopped(self) -> bool:
        return self.driver.stopped or self.driver.error is not None

    def start(self) -> list[bytes]:
        return self._encode(self.driver.start())

    def feed(self, data: bytes) -> list[bytes]:
        return self._ended(self.driver.feed_sse(data))  # text chunks written without structs

    def finish(self) -> list[bytes]:
        driver = self.driver
        return self._encode(driver.finish(truncated=not driver.stopped))

    def fail(self, error: UpstreamError) -> list[bytes]:
        return self._encode(self.driver.fail(ErrorDelta.of(error)))

    def unstored(self, tail: list[bytes], error: ShimError) -> list[bytes]:
        return tail  # nothing is stored per choice

    def _encode(self, batch: list[c.ChatCompletionChunk]) -> list[bytes]:
        return self._ended(sse(batch))

    def _ended(self, data: bytes) -> list[bytes]:
        # One write per upstream batch (per-write costs: bench/README.md).
        error = self.driver.error
        if error is not None and not self.ended:
            self.ended = True
            data += encode_data(error_chunk_bytes(error))
        return [data] if data else []


async def chunks(ctx: TurnContext, turn: ChatTurn, responses: list[httpx.Response]) -> AsyncIterator[bytes]:
    """SSE bytes for the client: the choices' pumps interleaved as their batches arrive. The
    first choice that fails ends the answer with its error chunk. Closing the iterator early
    (client gone) closes every upstream request and remembers nothing."""
    drivers = [_driver(turn, k) for k in range(len(responses))]
    queue: asyncio.Queue[tuple[int, list[bytes] | None]] = asyncio.Queue()

    async def run(k: int, response: httpx.Response) -> None:
        try:
            translation = ChunksTranslation(drivers[k])
            key = turn.answered.get(k, turn.resolved).upstream_key  # that choice's upstream's
            async for batch in pump(response, translation, ctx.timing, ByteRedactor(key)):
                await queue.put((k, batch or []))
        finally:
            await queue.put((k, None))

    tasks = [asyncio.create_task(run(k, resp)) for k, resp in enumerate(responses)]
    running = len(tasks)
    finished = failed = False
    try:
        while running:
            k, batch = await queue.get()
            if batch is None:
                running -= 1
                continue
            if not batch:
                yield KEEPALIVE
                continue
            yield b"".join(batch)
            if drivers[k].error is not None:  # its error chunk was in that batch
                failed = True
                break
        if not failed:
            # Always sent when asked. With no usage from the upstream at all (llama.cpp ignores
            # include_usage) it says null rather than inventing zeros; a choice cut by a stop
            # sequence has no upstream usage to add.
            if turn.include_usage:
                usage = _usage_sum(drivers)
                last = c.ChatCompletionChunk(
                    id=turn.completion_id,
                    created=turn.created,
                    model=turn.req.model,
                    choices=[],
                    usage=usage_body(usage) if usage is not None else None,
                )
                yield encode_data(c.encode_chunk(last))
            finished = True
        yield DONE
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for response in responses:
            await response.aclose()
        if finished:
            await _remember(ctx, turn, drivers)
