"""Close a JSON text that was cut off: the characters to append, if appending can mend it.

Grammar-constrained servers generate a call's arguments as JSON but may still stop generating
at a stop sequence in the middle of them (llama-cpp-python's ``chatml-function-calling`` stops at
``<|im_end|>``, which a small model writes inside a string), and then report
``finish_reason: "tool_calls"`` with ``{"cmd": "pwd``. When the text is a prefix of valid JSON
that only lacks its ending, the ending is made of closing characters: end the open string,
finish a literal or number, give a dangling key or value ``null``, close the open arrays and
objects. Appending never changes what was received, so streamed argument deltas stay a prefix.
"""

from __future__ import annotations

import msgspec

__all__ = ["closing_suffix"]

_LITERALS = ("true", "false", "null")


def _valid(text: str) -> bool:
    try:
        msgspec.json.decode(text)
    except msgspec.DecodeError:
        return False
    return True


def closing_suffix(text: str) -> str | None:
    """``""`` for valid JSON; the characters that make ``text`` valid when appended; or
    ``None`` when appending cannot mend it (not JSON, or cut where a key must follow)."""
    if _valid(text):
        return ""
    stack: list[str] = []  # "{" or "["
    # What the innermost container expects next: "value", "key", "colon", "comma".
    expect = "value"
    in_string = escaped = False
    string_is_key = False
    token = ""  # a literal or number being read
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
                expect = "colon" if string_is_key else "comma"
            continue
        if token and (ch.isalnum() or ch in "+-."):
            token += ch
            continue
        if token:
            token = ""
            expect = "comma"
        if ch in " \t\r\n":
            continue
        if ch == '"' and expect in ("value", "key"):
            in_string, string_is_key = True, expect == "key"
        elif ch in "{[" and expect == "value":
            stack.append(ch)
            expect = "key" if ch == "{" else "value"
        elif ch in "}]" and stack and stack[-1] == ("{" if ch == "}" else "["):
            stack.pop()
            expect = "comma"
        elif ch == ":" and expect == "colon":
            expect = "value"
        elif ch == "," and expect == "comma" and stack:
            expect = "key" if stack[-1] == "{" else "value"
        elif expect == "value" and (ch.isalnum() or ch == "-"):
            token = ch
        else:
            return None  # not a prefix of JSON
    suffix = ""
    if in_string:
        if escaped or _open_unicode_escape(text):
            return None
        suffix += '"'
        expect = "colon" if string_is_key else "comma"
    elif token:
        suffix += _finish_token(token)
        expect = "comma"
    if expect == "colon":
        suffix += ":null"
    elif expect == "value" and stack and text.rstrip()[-1:] in (":", ","):
        suffix += "null"  # after "key": or after a comma in an array
    elif expect == "key" and text.rstrip()[-1:] == ",":
        return None  # a member was begun but not even its key exists
    suffix += "".join("}" if c == "{" else "]" for c in reversed(stack))
    return suffix if _valid(text + suffix) else None


def _finish_token(token: str) -> str:
    for literal in _LITERALS:
        if literal.startswith(token):
            return literal[len(token) :]
    return "0" if token[-1] in "+-.eE" else ""


def _open_unicode_escape(text: str) -> bool:
    """A ``\\uXX`` cut before its four hex digits."""
    tail = text[-6:]
    at = tail.rfind("\\u")
    return at >= 0 and len(tail) - at < 6
