"""What every turn is given: ``TurnContext``, built once by the composition root (``http/app.py``).

A turn module (``responses_over_chat``, ``chat_over_responses``, ``responses_passthrough``,
``chat_passthrough``, ``background``, ``compaction``) is a set of functions over this context;
no turn module builds another's parts or reads framework state. Tests build one directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shim.conversation.prompts import PromptLibrary
from shim.conversation.reasoning_memory import ReasoningMemory
from shim.conversation.sealed_items import SealedItems
from shim.conversation.sealing import Sealer
from shim.core.diagnostics import Diagnostics, Policy
from shim.hosted.servers import HostedConfig
from shim.ids import Clock, IdFactory
from shim.limits import Limits
from shim.store.conversations import ConversationStore
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
    secret: bytes  # seals and writes (conversation/keyring.py)
    policy: Policy
    ids: IdFactory
    clock: Clock
    limits: Limits = field(default_factory=Limits)
    timing: Timing = field(default_factory=Timing)
    memory: ReasoningMemory | None = None  # Chat over Responses: reasoning of earlier turns
    previous_secrets: tuple[bytes, ...] = ()  # rotation: still open and look up, never write
    conversations: ConversationStore | None = None  # `conversation` and /v1/conversations
    truncation_retries: int = 3  # truncation "auto": resends after a context-length error
    prompts: PromptLibrary = field(default_factory=PromptLibrary)  # `prompt` templates
    hosted: HostedConfig = field(default_factory=HostedConfig)  # MCP servers, web search (docs/hosted.md)
    sealer: Sealer = field(init=False)
    compaction: CompactionConfig = field(init=False)

    def __post_init__(self) -> None:
        self.previous_secrets = tuple(
            dict.fromkeys(p for p in self.previous_secrets if p and p != self.secret)
        )
        self.sealer = Sealer(self.secret, self.previous_secrets)
        self.compaction = compaction_config()  # validated at start-up, not at first use

    def scope(self, client_key: str | None) -> str:
        """The caller's store scope, a keyed hash of its credential: what it writes goes there."""
        return scope_of(self.secret, client_key)

    def scopes(self, client_key: str | None) -> tuple[str, ...]:
        """Every scope the caller's records may be under: the current one first, then one per
        previous secret (in ``previous_secrets`` order, as ``Sealer`` expects)."""
        scope = scope_of(self.secret, client_key)
        if not self.previous_secrets:
            return (scope,)
        return (scope, *(scope_of(p, client_key) for p in self.previous_secrets))

    def sealed(self, scope: str, *previous: str) -> SealedItems:
        """Seals under ``scope``; opens under it or the ``previous`` secrets' scopes
        (``sealed(*ctx.scopes(key))``)."""
        return SealedItems(self.sealer, scope, self.compaction, previous)

    def diagnostics(self) -> Diagnostics:
        return Diagnostics(self.policy)
