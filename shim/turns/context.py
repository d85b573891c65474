"""What every turn is given: ``TurnContext``, built once by the composition root (``http/app.py``).

A turn module (``responses_over_chat``, ``chat_over_responses``, ``responses_passthrough``,
``chat_passthrough``, ``background``, ``compaction``) is a set of functions over this context;
no turn module builds another's parts or reads framework state. Tests build one directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shim.conversation.reasoning_memory import ReasoningMemory
from shim.conversation.sealed_items import SealedItems
from shim.conversation.sealing import Sealer
from shim.core.diagnostics import Diagnostics, Policy
from shim.ids import Clock, IdFactory
from shim.limits import Limits
from shim.store.repository import ResponseStore, scope_of
from shim.translate.compaction import CompactionConfig, compaction_config
from shim.turns.pump import Timing
from shim.upstream.client import UpstreamClient
from shim.upstream.routing import Router

__all__ = ["TurnContext"]


@dataclass
class TurnContext:
    router: Router
    upstream: UpstreamClient
    store: ResponseStore | None
    secret: bytes
    policy: Policy
    ids: IdFactory
    clock: Clock
    limits: Limits = field(default_factory=Limits)
    timing: Timing = field(default_factory=Timing)
    memory: ReasoningMemory | None = None  # Chat over Responses: reasoning of earlier turns
    sealer: Sealer = field(init=False)
    compaction: CompactionConfig = field(init=False)

    def __post_init__(self) -> None:
        self.sealer = Sealer(self.secret)
        self.compaction = compaction_config()  # validated at start-up, not at first use

    def scope(self, client_key: str | None) -> str:
        """The caller's store scope: a keyed hash of its credential."""
        return scope_of(self.secret, client_key)

    def sealed(self, scope: str) -> SealedItems:
        return SealedItems(self.sealer, scope, self.compaction)

    def diagnostics(self) -> Diagnostics:
        return Diagnostics(self.policy)
