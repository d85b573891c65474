"""Dialect files: every shipped file loads, inheritance merges, mistakes fail loudly and early.

The ``EXPECTED`` table is the contract with the translators (sqlglot-style): one row per dialect,
only the settings that matter for it. Adding a vendor quirk means a TOML edit plus a row here.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import msgspec
import pytest

from shim.dialects.model import AuthRules, Dialect, RequestRules, ResponseRules
from shim.dialects.registry import (
    DialectError,
    UnknownDialect,
    default_registry,
    get_dialect,
    load_dialects,
    locate_mappings,
)

REPO = Path(__file__).resolve().parents[1]
MAPPINGS = REPO / "mappings"
SHIPPED = sorted(p.stem for p in MAPPINGS.glob("*.toml"))

# dialect -> {"table.setting": expected value}; tuples because the structs hold tuples.
EXPECTED: dict[str, dict[str, Any]] = {
    "openai": {
        "extends": None,
        "errors.context_length_codes": ("context_length_exceeded",),
        "errors.context_length_statuses": (400,),
        "request.developer_role": "developer",
        "request.system_content": "array",
        "request.max_tokens_field": "max_completion_tokens",
        "request.stream_usage": True,
        "request.reasoning_effort": "reasoning_effort",
        "request.reasoning_replay": "drop",
        "request.tool_call_ids": "passthrough",
        "request.json_schema": True,
        "response.think_tags": False,
        "auth.header": "authorization",
        "auth.query": {},
    },
    "vllm": {
        "errors.context_length_messages": ("maximum context length", "is too long and exceeds limit"),
        "extends": "openai",
        "request.developer_role": "system",
        "request.max_tokens_field": "max_completion_tokens",
        "request.reasoning_replay": "field",
        "request.reasoning_replay_field": "reasoning",
        "request.reasoning_replay_scope": "all",
        "request.input_modalities": ("text", "image", "audio", "video"),
        "response.reasoning_fields": ("reasoning_content", "reasoning"),
        "response.think_tags": False,
    },
    "llamacpp": {
        "errors.context_length_types": ("exceed_context_size_error",),
        "request.developer_role": "system",
        "request.system_content": "string",
        "request.assistant_content": "string",
        "request.user_content": "array",
        "request.tool_content": "string",
        "request.max_tokens_field": "max_tokens",
        "request.stream_usage": True,
        "request.json_schema": False,
        "request.json_object_schema": True,
        "request.input_modalities": ("text", "image"),
    },
    "llamacpp-python": {
        "extends": "llamacpp",
        "request.developer_role": "system",  # inherited from llamacpp
        "request.system_content": "string",  # inherited
        "request.user_content": "string",
        "request.max_tokens_field": "max_tokens",  # inherited
        "request.input_modalities": ("text",),
    },
    "llamacpp-python-functions": {
        "extends": "llamacpp-python",
        "request.user_content": "string",  # inherited
        "request.developer_role": "system",  # inherited
        "request.stream_auto_tool_choice": False,
        "request.explicit_tool_choice": True,
    },
    "llamacpp-server": {
        "errors.context_length_types": ("exceed_context_size_error",),
        "extends": "openai",
        "request.developer_role": "developer",  # inherited: llama-server maps it to system
        "request.system_content": "array",  # inherited
        "request.max_tokens_field": "max_completion_tokens",  # inherited: read as max_tokens
        "request.json_schema": True,  # inherited
        "request.named_tool_choice": "required",
    },
    "ollama": {
        "errors.context_length_statuses": (400, 500),
        "request.developer_role": "system",
        "request.max_tokens_field": "max_tokens",
        "request.input_modalities": ("text", "image"),
        "request.reasoning_replay": "field",
        "request.reasoning_replay_field": "reasoning",
        "response.think_tags": True,
        "response.think_start_inside": False,
    },
    "deepseek": {
        "request.developer_role": "system",
        "request.system_content": "string",
        "request.assistant_content": "string",
        "request.user_content": "string",
        "request.tool_content": "string",
        "request.input_modalities": ("text",),
        "request.max_tokens_field": "max_tokens",
        "request.json_schema": False,
        "request.json_object_schema": False,
        "request.reasoning_replay": "field",
        "request.reasoning_replay_field": "reasoning_content",
        "request.reasoning_replay_scope": "tool_calls",
        "response.reasoning_fields": ("reasoning_content", "reasoning"),
    },
    "openrouter": {
        "request.developer_role": "developer",
        "request.reasoning_effort": "reasoning_object",
        "request.reasoning_replay": "field",
        "request.reasoning_replay_field": "reasoning",
        "request.reasoning_replay_scope": "tool_calls",
        "response.reasoning_fields": ("reasoning_content", "reasoning"),
    },
    "mistral": {
        "request.tool_call_ids": "alnum9",
        "request.developer_role": "system",
        "request.max_tokens_field": "max_tokens",
        "request.stream_usage": False,
        "request.reasoning_replay": "drop",
        "request.reasoning_effort": "reasoning_effort",
        "request.json_schema": True,
        "request.input_modalities": ("text", "image"),
    },
    "lmstudio": {
        "request.developer_role": "system",
        "request.json_schema": True,
        "request.json_object": False,
        "request.max_tokens_field": "max_tokens",
        "response.think_tags": True,
    },
    "nim": {
        "extends": "vllm",
        "request.developer_role": "system",  # inherited from vllm
        "request.reasoning_replay_field": "reasoning",  # inherited from vllm
        "request.max_tokens_field": "max_tokens",
        "response.think_tags": True,
    },
    "huggingface": {
        "request.developer_role": "system",
        "request.max_tokens_field": "max_tokens",
        "request.input_modalities": ("text", "image"),
        "response.think_tags": True,
    },
    "azure": {
        "request.developer_role": "system",
        "request.max_tokens_field": "max_completion_tokens",
        "auth.header": "api-key",
        "auth.query": {"api-version": "2024-10-21"},
    },
    "think-tags": {
        "request.developer_role": "system",
        "request.reasoning_replay": "think_tags",
        "response.think_tags": True,
        "response.think_open": "<think>",
        "response.think_close": "</think>",
        "response.think_start_inside": False,
        "response.think_unclosed": "reasoning",
    },
    "think-tags-open": {
        "extends": "think-tags",
        "request.reasoning_replay": "think_tags",  # inherited
        "response.think_tags": True,  # inherited
        "response.think_start_inside": True,
    },
}


def _get(dialect: Dialect, dotted: str) -> Any:
    value: Any = dialect
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def _write(folder: Path, name: str, text: str) -> None:
    (folder / f"{name}.toml").write_text(text, encoding="utf-8")


# -- the shipped files -------------------------------------------------------------------------


def test_every_shipped_file_loads() -> None:
    dialects = load_dialects(MAPPINGS)
    assert sorted(dialects) == SHIPPED
    for name, dialect in dialects.items():
        assert isinstance(dialect, Dialect)
        assert dialect.name == name
        assert dialect.description


def test_table_covers_every_shipped_dialect() -> None:
    assert sorted(EXPECTED) == SHIPPED


@pytest.mark.parametrize(
    ("name", "setting", "expected"),
    [(name, setting, value) for name, row in EXPECTED.items() for setting, value in row.items()],
)
def test_expected_settings(name: str, setting: str, expected: Any) -> None:
    assert _get(get_dialect(name), setting) == expected


@pytest.mark.parametrize("name", SHIPPED)
def test_every_file_but_openai_extends_and_sets_only_differences(name: str) -> None:
    raw = tomllib.loads((MAPPINGS / f"{name}.toml").read_text(encoding="utf-8"))
    if name == "openai":
        assert "extends" not in raw
        assert set(raw) == {"description"}  # the defaults *are* OpenAI
        return
    assert raw.get("extends") in SHIPPED
    parent = get_dialect(raw["extends"])
    for table in ("request", "response", "auth"):
        for key, value in raw.get(table, {}).items():
            inherited = getattr(getattr(parent, table), key)
            if isinstance(inherited, tuple):
                value = tuple(value)
            assert value != inherited, f"{name}.toml sets {table}.{key} to what it inherits"


@pytest.mark.parametrize("name", SHIPPED)
def test_every_file_documents_its_settings_in_the_leading_comment(name: str) -> None:
    text = (MAPPINGS / f"{name}.toml").read_text(encoding="utf-8")
    lines = text.splitlines()
    comment = []
    for line in lines:
        if not line.startswith("#"):
            break
        comment.append(line)
    header = "\n".join(comment)
    assert comment, f"{name}.toml must start with a comment block"
    assert "http" in header or "REFERENCE.md" in header, f"{name}.toml names no source"
    raw = tomllib.loads(text)
    for table in ("request", "response", "auth"):
        for key in raw.get(table, {}):
            assert key in header, f"{name}.toml sets {table}.{key} without explaining it"


def test_default_registry_is_cached_and_read_only() -> None:
    assert default_registry() is default_registry()
    assert get_dialect("deepseek") is get_dialect("deepseek")
    with pytest.raises(TypeError):
        default_registry()["x"] = get_dialect("openai")  # type: ignore[index]


def test_dialects_are_frozen() -> None:
    dialect = get_dialect("mistral")
    with pytest.raises(AttributeError):
        dialect.request = RequestRules()  # type: ignore[misc]
    with pytest.raises(AttributeError):
        dialect.request.tool_call_ids = "passthrough"  # type: ignore[misc]


def test_unknown_dialect_lists_known_names() -> None:
    with pytest.raises(UnknownDialect) as info:
        get_dialect("deepsek")
    assert isinstance(info.value, KeyError)
    message = str(info.value)
    assert "deepsek" in message
    for name in SHIPPED:
        assert name in message


def test_docs_mention_every_dialect_and_setting() -> None:
    docs = (REPO / "docs" / "dialects.md").read_text(encoding="utf-8")
    for name in SHIPPED:
        assert f"`{name}`" in docs, f"docs/dialects.md does not list {name}"
    for struct in (RequestRules, ResponseRules, AuthRules):
        for field in msgspec.structs.fields(struct):
            assert f"`{field.name}`" in docs, f"docs/dialects.md does not explain {field.name}"


# -- resolution and validation ----------------------------------------------------------------


def test_extends_deep_merges_child_wins(tmp_path: Path) -> None:
    _write(tmp_path, "base", 'description = "b"\n[request]\ndrop_params = ["a"]\n')
    _write(
        tmp_path,
        "mid",
        'description = "m"\nextends = "base"\n'
        '[request]\nmax_tokens_field = "max_tokens"\n'
        '[request.extra_body]\nx = 1\nnested = {keep = true, over = "parent"}\n'
        '[auth.query]\napi-version = "1"\n',
    )
    _write(
        tmp_path,
        "leaf",
        'description = "l"\nextends = "mid"\n'
        '[request]\ndrop_params = ["b"]\n'
        '[request.extra_body.nested]\nover = "child"\n'
        '[auth.query]\nextra = "2"\n'
        "[response]\nthink_tags = true\n",
    )
    leaf = load_dialects(tmp_path)["leaf"]
    assert leaf.description == "l"  # never inherited
    assert leaf.extends == "mid"
    assert leaf.request.max_tokens_field == "max_tokens"  # from mid
    assert leaf.request.drop_params == ("b",)  # arrays are replaced, not concatenated
    assert leaf.request.extra_body == {"x": 1, "nested": {"keep": True, "over": "child"}}
    assert leaf.auth.query == {"api-version": "1", "extra": "2"}
    assert leaf.response.think_tags is True
    assert leaf.request.developer_role == "developer"  # untouched default


def test_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    _write(tmp_path, "typo", 'description = "t"\n[request]\ndeveloper_rol = "system"\n')
    with pytest.raises(DialectError) as info:
        load_dialects(tmp_path)
    message = str(info.value)
    assert "typo.toml" in message
    assert "request.developer_rol" in message
    assert "did you mean 'developer_role'" in message


def test_unknown_top_level_key_and_table(tmp_path: Path) -> None:
    _write(tmp_path, "top", 'description = "t"\nnmae = "x"\n')
    with pytest.raises(DialectError, match=r"top\.toml: unknown key 'nmae'"):
        load_dialects(tmp_path)
    (tmp_path / "top.toml").unlink()
    _write(tmp_path, "tbl", 'description = "t"\n[requests]\nx = 1\n')
    with pytest.raises(DialectError, match=r"tbl\.toml: unknown key 'requests'.*'request'"):
        load_dialects(tmp_path)


def test_bad_value_names_file_and_path(tmp_path: Path) -> None:
    _write(tmp_path, "bad", 'description = "b"\n[request]\ndeveloper_role = "sytem"\n')
    with pytest.raises(DialectError, match=r"bad\.toml: .*sytem.*request\.developer_role"):
        load_dialects(tmp_path)


def test_bad_modality_rejected(tmp_path: Path) -> None:
    _write(tmp_path, "bad", 'description = "b"\n[request]\ninput_modalities = ["text", "pdf"]\n')
    with pytest.raises(DialectError, match=r"bad\.toml: .*pdf"):
        load_dialects(tmp_path)


def test_missing_description_rejected(tmp_path: Path) -> None:
    _write(tmp_path, "nodesc", "[request]\nstream_usage = false\n")
    with pytest.raises(DialectError, match=r"nodesc\.toml: .*description"):
        load_dialects(tmp_path)


def test_invalid_toml_names_file(tmp_path: Path) -> None:
    _write(tmp_path, "broken", 'description = "b\n')
    with pytest.raises(DialectError, match=r"broken\.toml: not valid TOML"):
        load_dialects(tmp_path)


def test_cycle_detected(tmp_path: Path) -> None:
    _write(tmp_path, "a", 'description = "a"\nextends = "b"\n')
    _write(tmp_path, "b", 'description = "b"\nextends = "c"\n')
    _write(tmp_path, "c", 'description = "c"\nextends = "a"\n')
    with pytest.raises(DialectError, match=r"cycle: a -> b -> c -> a"):
        load_dialects(tmp_path)


def test_self_extension_rejected(tmp_path: Path) -> None:
    _write(tmp_path, "me", 'description = "m"\nextends = "me"\n')
    with pytest.raises(DialectError, match=r"me\.toml: a dialect cannot extend itself"):
        load_dialects(tmp_path)


def test_unknown_parent(tmp_path: Path) -> None:
    _write(tmp_path, "base", 'description = "b"\n')
    _write(tmp_path, "child", 'description = "c"\nextends = "bsae"\n')
    with pytest.raises(DialectError) as info:
        load_dialects(tmp_path)
    message = str(info.value)
    assert "child.toml" in message
    assert "'bsae'" in message
    assert "did you mean 'base'" in message


def test_empty_or_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DialectError, match=r"no \*\.toml"):
        load_dialects(tmp_path)
    with pytest.raises(DialectError, match="not found"):
        load_dialects(tmp_path / "absent")


def test_non_toml_files_ignored(tmp_path: Path) -> None:
    _write(tmp_path, "only", 'description = "o"\n')
    (tmp_path / "README.md").write_text("# notes\n", encoding="utf-8")
    assert list(load_dialects(tmp_path)) == ["only"]


# -- where the files are found ----------------------------------------------------------------


def test_locate_finds_checkout_mappings_by_default() -> None:
    # In this checkout nothing is installed as shim/_mappings, so the checkout folder is used.
    assert Path(str(locate_mappings())) == MAPPINGS


def test_locate_prefers_packaged_copy(tmp_path: Path) -> None:
    packaged = tmp_path / "site-packages" / "shim" / "_mappings"
    packaged.mkdir(parents=True)
    _write(packaged, "only", 'description = "packaged"\n')
    found = locate_mappings(checkout=MAPPINGS, packaged=packaged)
    assert found == packaged
    assert load_dialects(found)["only"].description == "packaged"


def test_locate_falls_back_to_checkout(tmp_path: Path) -> None:
    checkout = tmp_path / "repo"
    (checkout / "mappings").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text("", encoding="utf-8")
    _write(checkout / "mappings", "x", 'description = "x"\n')
    found = locate_mappings(checkout=checkout / "mappings", packaged=tmp_path / "absent")
    assert found == checkout / "mappings"


def test_locate_ignores_stray_mappings_outside_a_checkout(tmp_path: Path) -> None:
    # e.g. some other distribution's top-level "mappings" folder in site-packages
    stray = tmp_path / "site-packages" / "mappings"
    stray.mkdir(parents=True)
    _write(stray, "x", 'description = "x"\n')
    with pytest.raises(DialectError, match="no dialect mappings found"):
        locate_mappings(checkout=stray, packaged=tmp_path / "absent")


def test_wheel_ships_mappings_where_the_locator_looks() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    force = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert force["mappings"] == "shim/_mappings"
