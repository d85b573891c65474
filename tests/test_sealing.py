"""Sealed blobs (``shim/conversation/sealing.py``) and sealed items (``shim/conversation/sealed_items.py``).

A blob opens only with the same secret, purpose and caller scope, and only unaltered; every
other case is a ``SealError`` (never garbage, never a crash). Opened items replay upstream the way
each dialect wants reasoning back.
"""

from __future__ import annotations

import base64
from pathlib import Path

import msgspec
import pytest

from shim.conversation.sealed_items import SealedItems, wants_sealed_reasoning
from shim.conversation.sealing import PREFIX, Sealer, SealError
from shim.core.diagnostics import Diagnostics
from shim.dialects.registry import get_dialect
from shim.errors import InvalidEncryptedContent
from shim.translate.chat_request import to_chat_request
from shim.translate.compaction import (
    CompactionConfigError,
    compaction_config,
    load_compaction_config,
)
from shim.wire import chat as c
from shim.wire import responses as r

SECRET = b"unit-test-secret"
SCOPE = "scope-alice"
THOUGHT = "The user wants the weather; call get_weather for Paris."


def _flip(blob: str, at: int) -> str:
    """The blob with one bit of its decoded byte ``at`` flipped (negative counts from the end)."""
    raw = bytearray(base64.urlsafe_b64decode(blob[len(PREFIX) :] + "=" * (-len(blob) % 4)))
    raw[at] ^= 0x01
    return PREFIX + base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


def test_round_trip_and_fresh_nonce() -> None:
    sealer = Sealer(SECRET)
    one = sealer.seal("reasoning", SCOPE, b"payload")
    two = sealer.seal("reasoning", SCOPE, b"payload")
    assert one.startswith(PREFIX) and one != two
    assert sealer.open("reasoning", SCOPE, one) == b"payload"
    assert sealer.open("reasoning", SCOPE, two) == b"payload"
    assert Sealer(SECRET).open("reasoning", SCOPE, one) == b"payload"  # keys derive deterministically


def test_plaintext_is_not_in_the_blob() -> None:
    blob = Sealer(SECRET).seal("reasoning", SCOPE, THOUGHT.encode())
    decoded = base64.urlsafe_b64decode(blob[len(PREFIX) :] + "=" * (-len(blob) % 4))
    assert THOUGHT.encode() not in decoded and "weather" not in blob


GOOD = Sealer(SECRET).seal("reasoning", SCOPE, b"payload")


@pytest.mark.parametrize(
    ("name", "purpose", "scope", "blob", "sealer"),
    [
        ("other_scope", "reasoning", "scope-mallory", GOOD, Sealer(SECRET)),
        ("other_purpose", "compaction", SCOPE, GOOD, Sealer(SECRET)),
        ("other_secret", "reasoning", SCOPE, GOOD, Sealer(b"another-secret")),
        ("flipped_nonce", "reasoning", SCOPE, _flip(GOOD, 0), Sealer(SECRET)),
        ("flipped_ciphertext", "reasoning", SCOPE, _flip(GOOD, 12), Sealer(SECRET)),
        ("flipped_tag", "reasoning", SCOPE, _flip(GOOD, -1), Sealer(SECRET)),
        ("truncated", "reasoning", SCOPE, GOOD[:-6], Sealer(SECRET)),
        ("prefix_only", "reasoning", SCOPE, PREFIX, Sealer(SECRET)),
        ("too_short", "reasoning", SCOPE, PREFIX + "AAAA", Sealer(SECRET)),
        ("no_prefix", "reasoning", SCOPE, GOOD[len(PREFIX) :], Sealer(SECRET)),
        ("wrong_version", "reasoning", SCOPE, "shim2." + GOOD[len(PREFIX) :], Sealer(SECRET)),
        ("openai_fernet", "reasoning", SCOPE, "gAAAAABpM0Yj-x1y2z3=", Sealer(SECRET)),
        ("bad_base64", "reasoning", SCOPE, PREFIX + "a", Sealer(SECRET)),
        ("non_ascii", "reasoning", SCOPE, PREFIX + "é" * 40, Sealer(SECRET)),
        ("empty", "reasoning", SCOPE, "", Sealer(SECRET)),
    ],
)
def test_bad_blobs_do_not_open(name: str, purpose: str, scope: str, blob: str, sealer: Sealer) -> None:
    with pytest.raises(SealError):
        sealer.open(purpose, scope, blob)  # type: ignore[arg-type]


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        Sealer(b"")


@pytest.mark.parametrize(
    ("include", "wanted"),
    [
        (None, False),
        ([], False),
        (["message.output_text.logprobs"], False),
        (["reasoning.encrypted_content"], True),
    ],
)
def test_wants_sealed_reasoning(include: list[str] | None, wanted: bool) -> None:
    assert wants_sealed_reasoning(include) is wanted


# --------------------------------------------------------------------------- sealed items


def _items(scope: str = SCOPE) -> SealedItems:
    return SealedItems(Sealer(SECRET), scope, compaction_config())


def _sealed_reasoning(text: str = THOUGHT, scope: str = SCOPE) -> r.ReasoningItemParam:
    body = r.ReasoningBody(id="rs_1", summary=[], content=[r.ReasoningTextContent(text=text)])
    _items(scope).seal_reasoning([body])
    assert isinstance(body.encrypted_content, str)
    # What a stateless client sends back: no plain content, only the blob.
    return r.ReasoningItemParam(id="rs_1", summary=[], encrypted_content=body.encrypted_content)


def test_seal_reasoning_is_idempotent_and_skips_other_items() -> None:
    body = r.ReasoningBody(id="rs_1", summary=[], content=[r.ReasoningTextContent(text=THOUGHT)])
    message = r.Message(id="msg_1", status="completed", role="assistant", content=[])
    items = _items()
    items.seal_reasoning([message, body])
    first = body.encrypted_content
    items.seal_reasoning([body])
    assert isinstance(first, str) and body.encrypted_content == first
    assert msgspec.json.decode(msgspec.json.encode(message)).get("encrypted_content") is None


def test_open_items_replaces_sealed_reasoning_and_compaction() -> None:
    items = _items()
    compaction = r.CompactionSummaryItemParam(
        id="cmp_1", encrypted_content=items.seal_summary("We said Tuesday.")
    )
    user = r.MessageItemParam(role="user", content="hi")
    opened = items.open_items([user, _sealed_reasoning(), compaction])
    assert opened[0] is user
    reasoning = opened[1]
    assert isinstance(reasoning, r.ReasoningItemParam)
    assert reasoning.encrypted_content is None
    assert [p.text for p in reasoning.content or []] == [THOUGHT]
    summary = opened[2]
    assert isinstance(summary, r.MessageItemParam) and summary.role == compaction_config().replay.role
    assert isinstance(summary.content, list)
    text = summary.content[0]
    assert isinstance(text, r.InputTextContent)
    assert text.text == compaction_config().replay.prefix + "We said Tuesday."


def test_plain_items_pass_through_untouched() -> None:
    items: list[r.ItemParam] = [r.MessageItemParam(role="user", content="hi")]
    assert _items().open_items(items) is items


@pytest.mark.parametrize(
    ("name", "item", "first_input", "param"),
    [
        (
            "tampered_reasoning",
            r.ReasoningItemParam(summary=[], encrypted_content=PREFIX + "A" * 60),
            0,
            "input[1].encrypted_content",
        ),
        (
            "foreign_reasoning",
            r.ReasoningItemParam(summary=[], encrypted_content="gAAAAABpM0Yj-x1y2z3="),
            0,
            "input[1].encrypted_content",
        ),
        (
            "tampered_compaction",
            r.CompactionSummaryItemParam(encrypted_content=PREFIX + "B" * 60),
            0,
            "input[1].encrypted_content",
        ),
        (
            "offset_by_history",
            r.ReasoningItemParam(summary=[], encrypted_content=PREFIX + "A" * 60),
            1,
            "input[0].encrypted_content",
        ),
        (
            "from_stored_history",
            r.ReasoningItemParam(summary=[], encrypted_content=PREFIX + "A" * 60),
            2,
            "previous_response_id",
        ),
    ],
)
def test_unopenable_items_are_400(name: str, item: r.ItemParam, first_input: int, param: str) -> None:
    with pytest.raises(InvalidEncryptedContent) as caught:
        _items().open_items([r.MessageItemParam(role="user", content="hi"), item], first_input)
    assert caught.value.http_status == 400
    assert caught.value.code == "invalid_encrypted_content"
    assert caught.value.param == param


def test_reasoning_sealed_for_another_scope_is_400() -> None:
    with pytest.raises(InvalidEncryptedContent):
        _items("scope-mallory").open_items([_sealed_reasoning(scope=SCOPE)])


def test_reasoning_blob_is_no_compaction_blob() -> None:
    blob = _sealed_reasoning().encrypted_content
    assert blob is not None
    with pytest.raises(InvalidEncryptedContent):
        _items().open_items([r.CompactionSummaryItemParam(encrypted_content=blob)])


# --------------------------------------------------------------------------- dialect replay

WEATHER = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}


def _history() -> list[r.ItemParam]:
    return [
        r.MessageItemParam(role="user", content="What's the weather in Paris?"),
        _sealed_reasoning(),
        r.FunctionCallItemParam(call_id="call_1", name="get_weather", arguments='{"city":"Paris"}'),
        r.FunctionCallOutputItemParam(call_id="call_1", output='{"temp_c":18}'),
    ]


def _assistant(dialect: str) -> c.ChatCompletionAssistantMessageParam:
    body = r.CreateResponseBody(model="m", tools=[WEATHER])
    request = to_chat_request(
        body,
        _items().open_items(_history()),
        model="m",
        dialect=get_dialect(dialect),
        diags=Diagnostics(),
        stream=False,
    )
    (assistant,) = [m for m in request.messages if isinstance(m, c.ChatCompletionAssistantMessageParam)]
    assert assistant.tool_calls
    return assistant


@pytest.mark.parametrize(
    ("dialect", "field", "in_content"),
    [
        ("deepseek", "reasoning_content", False),  # demanded back on tool-call turns
        ("vllm", "reasoning", False),
        ("think-tags", None, True),
        ("openai", None, False),  # OpenAI's Chat API takes no reasoning back: dropped
    ],
)
def test_sealed_reasoning_replays_per_dialect(dialect: str, field: str | None, in_content: bool) -> None:
    rules = get_dialect(dialect).request
    assistant = _assistant(dialect)
    for name in ("reasoning_content", "reasoning"):
        expected = THOUGHT if name == field else None
        assert getattr(assistant, name, None) == expected, (dialect, name, rules.reasoning_replay)
    content = assistant.content if isinstance(assistant.content, str) else ""
    assert (THOUGHT in content) is in_content


# --------------------------------------------------------------------------- compaction config


def test_shipped_compaction_config_loads() -> None:
    config = load_compaction_config()
    assert config.summarise.prompt.strip() and config.summarise.max_output_tokens > 0


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("unknown_key", '[summarise]\nprompt = "x"\nprompts = "y"\n', "prompts"),
        ("missing_prompt", "[summarise]\nmax_output_tokens = 5\n", "prompt"),
        ("blank_prompt", '[summarise]\nprompt = "  "\n', "blank"),
        ("empty_prompt", '[summarise]\nprompt = ""\n', "length"),
        ("bad_role", '[summarise]\nprompt = "x"\n[replay]\nrole = "tool"\n', "role"),
        ("zero_tokens", '[summarise]\nprompt = "x"\nmax_output_tokens = 0\n', "max_output_tokens"),
        ("not_toml", "[summarise\n", "compaction.toml"),
        (
            "fallback_too_small",
            '[summarise]\nprompt = "x"\n[fallback]\nmax_chars = 200\nmax_message_chars = 190\n',
            "no room",
        ),
    ],
)
def test_bad_compaction_config_fails_at_load(tmp_path: Path, name: str, text: str, match: str) -> None:
    path = tmp_path / "compaction.toml"
    path.write_text(text)
    with pytest.raises(CompactionConfigError, match=match):
        load_compaction_config(path)


def test_missing_compaction_config_fails(tmp_path: Path) -> None:
    with pytest.raises(CompactionConfigError):
        load_compaction_config(tmp_path / "nope.toml")
