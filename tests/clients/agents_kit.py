"""What the two openai-agents test modules share: the SDK (or a skip naming its package; the
modules import its names from here, after that check), tracing off, the ``get_weather`` tool with the calls it saw, and ``model_for`` (a model over a shim)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from tests.clients.conftest import ShimServer, require_module

agents = require_module("agents", "openai-agents")
openai = require_module("openai", "openai")

from agents import (  # noqa: E402
    Agent,
    ModelSettings,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)

__all__ = [
    "WEATHER_CALLS",
    "Agent",
    "ModelSettings",
    "OpenAIChatCompletionsModel",
    "OpenAIResponsesModel",
    "Runner",
    "agents",
    "get_weather",
    "models_over",
    "openai",
]

set_tracing_disabled(True)  # tracing would POST to api.openai.com

WEATHER_CALLS: list[str] = []


@function_tool
def get_weather(city: str) -> str:
    """The weather for a city.

    Args:
        city: The city's name.
    """
    WEATHER_CALLS.append(city)
    return f"Sunny and 21 C in {city}"


@asynccontextmanager
async def models_over(model_class: Any) -> AsyncIterator[Callable[[ShimServer], Any]]:
    """``build(shim)``: a ``model_class`` (``OpenAIResponsesModel`` or ``OpenAIChatCompletionsModel``)
    over the shim; the clients close on exit. ``WEATHER_CALLS`` starts empty."""
    clients: list[Any] = []

    def build(shim: ShimServer) -> Any:
        client = openai.AsyncOpenAI(base_url=shim.base_url, api_key="sk-test", max_retries=0, timeout=120)
        clients.append(client)
        return model_class(model=shim.model, openai_client=client)

    WEATHER_CALLS.clear()
    try:
        yield build
    finally:
        for client in clients:
            await client.close()
