"""``background: true``: answer ``queued`` at once, run the turn as a task, keep its state in the store.

The store is the only shared state, so with Redis any replica answers a poll or a cancel:

- the request's replica writes the record ``queued`` (``create``) and returns it;
- its task moves the record to ``in_progress`` and finally to ``completed`` / ``incomplete`` /
  ``failed``, each step a compare-and-set (``swap``) against the bytes it last wrote;
- a cancel (any replica) swaps the record to ``cancelled``; a delete removes it. The running task
  re-reads the record every ``poll`` seconds and stops its upstream request once the record is
  no longer its own; its final ``swap`` then fails, so a cancel or delete is never overwritten.

Background with ``stream: true`` is refused (400): resuming an event stream by cursor is not
implemented.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import msgspec

from shim.errors import InvalidRequest, ShimError
from shim.store.repository import PENDING, ResponseStore, StoredResponse
from shim.turns import responses_over_chat
from shim.turns.context import TurnContext
from shim.turns.responses_over_chat import Turn
from shim.wire import responses as r

__all__ = ["BackgroundRunner", "check_background"]

log = logging.getLogger("shim.background")


def check_background(body: r.CreateResponseBody, store: ResponseStore | None) -> None:
    """The requests ``background: true`` cannot serve, refused before anything runs."""
    if body.stream:
        raise InvalidRequest(
            "`background` together with `stream` is not supported by this server; poll "
            "`GET /v1/responses/{id}` instead.",
            param="stream",
            code="unsupported_parameter",
        )
    if body.store is False:
        raise InvalidRequest(
            "`background` requires `store` to be true.", param="store", code="invalid_parameter"
        )
    if store is None:
        raise InvalidRequest(
            "`background` needs a response store; this server runs without one.",
            param="background",
            code="unsupported_parameter",
        )


def _with_status(stored: StoredResponse, status: str, error: r.ResponseError | None = None) -> StoredResponse:
    resource = msgspec.structs.replace(stored.resource, status=status, error=error)
    return msgspec.structs.replace(stored, resource=resource)


class BackgroundRunner:
    def __init__(self, ctx: TurnContext, *, poll: float = 0.5) -> None:
        self.ctx = ctx
        self.poll = poll
        self._tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def active(self) -> int:
        """How many background turns this replica is running."""
        return len(self._tasks)

    @property
    def store(self) -> ResponseStore:
        store = self.ctx.store
        assert store is not None, "check_background refuses background without a store"
        return store

    async def start(self, turn: Turn) -> r.ResponseResource:
        """Write the ``queued`` record and start the task; the resource to answer with."""
        check_background(turn.body, self.ctx.store)
        queued = StoredResponse(
            resource=msgspec.structs.replace(turn.template, status="queued"),
            input_items=turn.new_input,
            history=turn.items,
            scope=turn.scope,
        )
        token = await self.store.create(turn.scope, queued)
        if token is None:  # ids are random: only a broken id factory gets here
            raise ShimError(f"Response id {turn.template.id!r} is already in use.", code="internal_error")
        task = asyncio.create_task(self._run(turn, queued, token), name=f"background {turn.template.id}")
        self._tasks[turn.template.id] = task
        task.add_done_callback(self._forget)
        return queued.resource

    async def cancel(self, scope: str, response_id: str) -> r.ResponseResource | None:
        """Swap a pending record to ``cancelled`` (from any replica); ``None`` for an unknown id.
        Idempotent once cancelled."""
        for _ in range(8):  # another writer moved the record between our read and our swap: re-read
            current = await self.store.fetch(scope, response_id)
            if current is None:
                return None
            resource = current.stored.resource
            if resource.status == "cancelled":
                return resource
            if not resource.background:
                raise InvalidRequest(
                    "Only responses created with `background: true` can be cancelled.",
                    param="response_id",
                    code="response_not_cancellable",
                )
            if resource.status not in PENDING:
                raise InvalidRequest(
                    f"Cannot cancel a response whose status is {resource.status!r}.",
                    param="response_id",
                    code="response_not_cancellable",
                )
            cancelled = _with_status(current.stored, "cancelled")
            if await self.store.swap(scope, current.token, cancelled) is not None:
                self.stop_local(response_id)
                return cancelled.resource
        raise ShimError("The response kept changing while being cancelled; try again.", code="conflict")

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks = {k: t for k, t in self._tasks.items() if t is not task}
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    def stop_local(self, response_id: str) -> None:
        """Stop this replica's task at once (other replicas notice at their next poll)."""
        task = self._tasks.get(response_id)
        if task is not None:
            task.cancel()

    async def aclose(self) -> None:
        """Shutdown: stop every task; each marks its record failed (``server_shutdown``)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ the task

    async def _run(self, turn: Turn, queued: StoredResponse, token: bytes) -> None:
        scope, store, response_id = turn.scope, self.store, turn.template.id
        running = _with_status(queued, "in_progress")
        current = await store.swap(scope, token, running)
        if current is None:
            return  # cancelled or deleted while still queued
        work = asyncio.ensure_future(self._work(turn))
        try:
            while not work.done():
                await asyncio.wait((work,), timeout=self.poll)
                if not work.done() and await self._changed(scope, response_id, current):
                    work.cancel()  # cancelled or deleted elsewhere: stop the upstream request
                    with contextlib.suppress(asyncio.CancelledError):
                        await work
                    return
            if await store.swap(scope, current, work.result()) is None:
                log.info("background response %s was cancelled or deleted as it finished", response_id)
        except asyncio.CancelledError:
            work.cancel()
            # A local cancel already swapped the record, so this swap fails; a shutdown's succeeds.
            error = r.ResponseError(code="server_shutdown", message="The server stopped before finishing.")
            with contextlib.suppress(Exception):
                await asyncio.shield(store.swap(scope, current, _with_status(running, "failed", error)))
            raise
        except Exception as exc:  # the store failed: the record stays in_progress until its TTL
            work.cancel()
            log.exception("background response %s: store write failed", response_id, exc_info=exc)

    async def _changed(self, scope: str, response_id: str, token: bytes) -> bool:
        """Did someone else cancel or delete the record? A store hiccup counts as no."""
        try:
            return await self.store.token(scope, response_id) != token
        except Exception as exc:
            log.warning("background response %s: cannot poll the store: %s", response_id, exc)
            return False

    async def _work(self, turn: Turn) -> StoredResponse:
        """Run the turn whole; any error becomes a ``failed`` record instead of a raise."""
        turn.store = False  # the task writes the record itself, through ``swap``
        try:
            await responses_over_chat.complete(self.ctx, turn)
        except ShimError as exc:
            error = r.ResponseError(code=exc.code or "server_error", message=exc.message)
        except Exception as exc:
            log.exception("background response %s crashed", turn.template.id, exc_info=exc)
            error = r.ResponseError(code="internal_error", message="The shim failed to handle this request.")
        else:
            assert turn.stored is not None, "complete() remembers the turn it ran"
            return turn.stored
        failed = msgspec.structs.replace(turn.template, status="failed", error=error)
        return StoredResponse(
            resource=failed, input_items=turn.new_input, history=turn.items, scope=turn.scope
        )
