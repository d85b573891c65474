"""``background: true``: answer ``queued`` at once, run the turn as a task, keep its state in the store.

The store is the only shared state, so with Redis any replica answers a poll or a cancel:

- the request's replica takes the response's lease (``shim.store.leases``), writes the record
  ``queued`` (``create``) and returns it;
- its task moves the record to ``in_progress`` and finally to ``completed`` / ``incomplete`` /
  ``failed``, each step a compare-and-set (``swap``) against the bytes it last wrote;
- while it runs, the task renews its lease every ``poll`` seconds: one compare-and-set on a tiny
  key, not a read of the whole record;
- a cancel (any replica) swaps the record to ``cancelled`` and releases the lease; a delete
  removes both. The task's next renewal fails, it sees the record is no longer its own and stops
  its upstream request; its final ``swap`` would fail anyway, so a cancel or delete is never
  overwritten;
- a replica that dies (or cannot write its result) stops renewing: its lease expires after
  ``lease`` seconds, and the next replica to read the record (a poll, a retrieve) ends it as
  ``failed`` with code ``background_worker_lost``. A client polling ``GET`` therefore sees every
  background response end within the lease of its replica's death, not after the store's TTL.

Background with ``stream: true`` is refused (400): resuming an event stream by cursor is not
implemented.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import msgspec

from shim.errors import InvalidRequest, ShimError
from shim.store.leases import Leases, new_holder
from shim.store.repository import PENDING, ResponseStore, StoredResponse, Versioned
from shim.turns import responses_over_chat
from shim.turns.context import TurnContext
from shim.turns.responses_over_chat import Turn
from shim.wire import responses as r

__all__ = ["DEFAULT_LEASE", "LOST", "BackgroundRunner", "check_background"]

DEFAULT_LEASE = 10.0  # seconds without a heartbeat before a background response counts as lost
LOST = "background_worker_lost"

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
    def __init__(self, ctx: TurnContext, *, poll: float = 0.5, lease: float = DEFAULT_LEASE) -> None:
        self.ctx = ctx
        self.poll = poll
        self.lease = lease
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

    @property
    def leases(self) -> Leases:
        return Leases(self.store.backend, self.lease)

    @property
    def heartbeat(self) -> float:
        """Seconds between two renewals: several per lease, so one late renewal loses nothing."""
        return min(self.poll, self.lease / 3)

    async def start(self, turn: Turn) -> r.ResponseResource:
        """Write the ``queued`` record and start the task; the resource to answer with."""
        check_background(turn.body, self.ctx.store)
        queued = StoredResponse(
            resource=msgspec.structs.replace(turn.template, status="queued"),
            input_items=turn.new_input,
            history=turn.items,
            scope=turn.scope,
        )
        holder = new_holder()
        # The lease first: a record is never visible without one, so nobody takes it for lost.
        await self.leases.acquire(turn.scope, turn.template.id, holder)
        token = await self.store.create(turn.scope, queued)
        if token is None:  # ids are random: only a broken id factory gets here
            raise ShimError(f"Response id {turn.template.id!r} is already in use.", code="internal_error")
        task = asyncio.create_task(
            self._run(turn, queued, token, holder), name=f"background {turn.template.id}"
        )
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
                await self.stopped(scope, response_id)
                return cancelled.resource
        raise ShimError("The response kept changing while being cancelled; try again.", code="conflict")

    async def load(self, scope: str, response_id: str) -> StoredResponse | None:
        """A record as a poll should see it: a pending background response whose lease expired
        is first ended as ``failed`` (``background_worker_lost``). One small lease read, only
        for a pending record."""
        current = await self.store.fetch(scope, response_id)
        if current is None:
            return None
        resource = current.stored.resource
        if resource.status not in PENDING or not resource.background:
            return current.stored
        if await self.leases.held(scope, response_id):
            return current.stored
        return await self._end_lost(scope, current)

    async def _end_lost(self, scope: str, current: Versioned) -> StoredResponse | None:
        error = r.ResponseError(
            code=LOST,
            message="The server running this background response stopped before finishing it; "
            "create the response again.",
        )
        lost = _with_status(current.stored, "failed", error)
        if await self.store.swap(scope, current.token, lost) is None:
            # It changed meanwhile (finished, cancelled, deleted): that state wins.
            return await self.store.load(scope, lost.resource.id)
        log.warning("background response %s: its worker was lost; marked failed", lost.resource.id)
        return lost

    async def stopped(self, scope: str, response_id: str) -> None:
        """After a cancel or delete: stop the local task, and release the lease so a task on
        another replica notices at its next renewal."""
        self.stop_local(response_id)
        try:
            await self.leases.release(scope, response_id)
        except Exception as exc:  # that task then runs to its end; its final swap still fails
            log.warning("background response %s: cannot release its lease: %s", response_id, exc)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks = {k: t for k, t in self._tasks.items() if t is not task}
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    def stop_local(self, response_id: str) -> None:
        """Stop this replica's task at once (other replicas notice at their next renewal)."""
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

    async def _run(self, turn: Turn, queued: StoredResponse, token: bytes, holder: bytes) -> None:
        scope, store, response_id = turn.scope, self.store, turn.template.id
        running = _with_status(queued, "in_progress")
        current = await store.swap(scope, token, running)
        if current is None:
            return  # cancelled or deleted while still queued (that released the lease)
        work = asyncio.ensure_future(self._work(turn))
        try:
            while not work.done():
                await asyncio.wait((work,), timeout=self.heartbeat)
                if not work.done() and not await self._still_ours(scope, response_id, current, holder):
                    work.cancel()  # cancelled or deleted elsewhere: stop the upstream request
                    with contextlib.suppress(asyncio.CancelledError):
                        await work
                    return
            if await store.swap(scope, current, work.result()) is None:
                log.info("background response %s was cancelled or deleted as it finished", response_id)
            await self.leases.release(scope, response_id)
        except asyncio.CancelledError:
            work.cancel()
            # A local cancel already swapped the record, so this swap fails; a shutdown's succeeds.
            error = r.ResponseError(code="server_shutdown", message="The server stopped before finishing.")
            with contextlib.suppress(Exception):
                await asyncio.shield(self._give_up(scope, current, _with_status(running, "failed", error)))
            raise
        except Exception as exc:  # the store failed: the lease expires, a poll then ends the record
            work.cancel()
            log.exception("background response %s: store write failed", response_id, exc_info=exc)

    async def _give_up(self, scope: str, token: bytes, failed: StoredResponse) -> None:
        await self.store.swap(scope, token, failed)
        await self.leases.release(scope, failed.resource.id)

    async def _still_ours(self, scope: str, response_id: str, token: bytes, holder: bytes) -> bool:
        """Renew the lease; is the record still this task's? A store hiccup counts as yes."""
        try:
            if await self.leases.renew(scope, response_id, holder):
                return True
            # The lease is gone: released by a cancel or delete, or expired while this replica
            # was stalled. Only then read the record; if it is unchanged, take the lease back.
            if await self.store.token(scope, response_id) != token:
                return False
            await self.leases.acquire(scope, response_id, holder)
            return True
        except Exception as exc:
            log.warning("background response %s: cannot renew its lease: %s", response_id, exc)
            return True

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
