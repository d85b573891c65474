"""Split ``<think>…</think>`` reasoning out of streamed chat content.

Why: several Chat Completions servers return the model's reasoning inline in ``content`` between tags, and
some chat templates put the opening tag into the prompt so that only the closing tag ever comes back. A reader
feeds each content delta to a ``ThinkSplitter`` and gets ``("text" | "reasoning", str)`` segments. It is
sans-IO and incremental: it holds back only what could still turn out to be the tag it is waiting for, so it
is O(n) over the stream and gives the same output however the stream is chunked.

Rules (a dialect picks the tags, ``start_inside`` and ``unclosed``):

- Only one reasoning block is recognised, and only at the start of the output. Leading whitespace before the
  opening tag is dropped. Once non-whitespace text has appeared, or the block has closed, a literal
  ``<think>`` is plain text. Inside the block, a nested ``<think>`` is reasoning text.
- ``start_inside=True``: the template already put the opening tag in the prompt, so the output starts inside
  the block and only the closing tag is expected. If the output begins (after whitespace) with an explicit
  opening tag anyway, that tag and the whitespace before it are swallowed.
- Whitespace: one ``"\\n"`` right after the opening tag (or at the very start of the output with
  ``start_inside``) is dropped; the rest of the reasoning is kept verbatim, including whitespace just before
  the closing tag (stripping it would mean holding back unbounded whitespace). All whitespace right after the
  closing tag is dropped (models emit ``"</think>\\n\\n"``).
- What is held back: while looking for the opening tag, the leading whitespace plus a prefix of the tag;
  inside the block, at most ``len(close_tag) - 1`` characters that could start the closing tag. After the
  block, nothing. ``finish()`` flushes what is held: an unfinished opening tag is text, an unfinished closing
  tag is reasoning.
- ``unclosed`` decides what a block that never closes was. It only matters with ``start_inside=True`` and no
  explicit opening tag (a model that did not reason at all): with ``"reasoning"`` (the default) the output
  streams as reasoning at once. With ``"text"`` the splitter buffers up to ``max_buffer`` characters before
  committing to reasoning: if the stream ends within the buffer with no closing tag, the whole raw output is
  emitted as text; if the closing tag arrives or the buffer overflows, the buffered part is emitted as
  reasoning and streaming goes on. An explicit opening tag that never closes is always reasoning (it has been
  streamed as such).

Within one ``feed``/``finish`` call, adjacent segments of the same kind are merged and empty strings are never
emitted. A splitter serves one stream.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["Segment", "SegmentKind", "ThinkSplitter"]

SegmentKind = Literal["text", "reasoning"]
Segment = tuple[SegmentKind, str]

_START = 0  # before the (optional) opening tag: holding leading whitespace and a tag prefix
_INSIDE = 1  # inside the reasoning block, looking for the closing tag
_AFTER = 2  # just after the closing tag, dropping whitespace
_TEXT = 3  # plain text to the end


def _emit(out: list[Segment], kind: SegmentKind, text: str) -> None:
    if text:
        if out and out[-1][0] == kind:
            out[-1] = (kind, out[-1][1] + text)
        else:
            out.append((kind, text))


def _partial_start(s: str, tag: str) -> int:
    """Index where the longest suffix of ``s`` that is a proper prefix of ``tag`` starts (``len(s)`` if none).

    ``s`` must not contain ``tag``; only the last ``len(tag) - 1`` characters are examined.
    """
    first = tag[0]
    i = s.find(first, max(0, len(s) - len(tag) + 1))
    while i >= 0:
        if tag.startswith(s[i:]):
            return i
        i = s.find(first, i + 1)
    return len(s)


class ThinkSplitter:
    """Split streamed content into text and reasoning segments; see the module docstring for the rules."""

    __slots__ = (
        "_close",
        "_done",
        "_explicit_open",
        "_hold",
        "_max_buffer",
        "_open",
        "_pending",
        "_raw",
        "_raw_len",
        "_skip_nl",
        "_start_inside",
        "_state",
    )

    def __init__(
        self,
        open_tag: str = "<think>",
        close_tag: str = "</think>",
        *,
        start_inside: bool = False,
        unclosed: Literal["reasoning", "text"] = "reasoning",
        max_buffer: int = 4096,
    ) -> None:
        if not open_tag or not close_tag:
            raise ValueError("think tags must not be empty")
        if unclosed not in ("reasoning", "text"):
            raise ValueError(f"unclosed must be 'reasoning' or 'text', not {unclosed!r}")
        if max_buffer < 0:
            raise ValueError("max_buffer must not be negative")
        self._open = open_tag
        self._close = close_tag
        self._start_inside = start_inside
        self._max_buffer = max_buffer
        self._state = _START
        self._hold = ""
        self._skip_nl = start_inside
        self._done = False
        self._explicit_open = False
        # Policy "text" + start_inside: segments not released yet, and the raw input behind them.
        self._pending: list[Segment] | None = [] if start_inside and unclosed == "text" else None
        self._raw: list[str] = []
        self._raw_len = 0

    @property
    def in_reasoning(self) -> bool:
        """Whether the output is currently inside the reasoning block."""
        return self._state == _INSIDE or (self._state == _START and self._start_inside)

    @property
    def done_reasoning(self) -> bool:
        """Whether the reasoning phase is over: the block closed, or plain text ruled a block out."""
        return self._done

    def feed(self, text: str) -> list[Segment]:
        out: list[Segment] = []
        if text:
            self._run(text, out)
        pending = self._pending
        if pending is None:
            return out
        self._raw.append(text)
        self._raw_len += len(text)
        for kind, part in out:
            _emit(pending, kind, part)
        if self._done or self._explicit_open or self._raw_len > self._max_buffer:
            self._pending = None
            self._raw = []
            return pending
        return []

    def finish(self) -> list[Segment]:
        out: list[Segment] = []
        if self._pending is not None:  # policy "text": no closing tag within the buffer, so it was all text
            _emit(out, "text", "".join(self._raw))
            self._pending = None
            self._raw = []
            self._hold = ""
            self._state = _TEXT
            self._done = True
            return out
        hold, self._hold = self._hold, ""
        if self._state == _START:
            if self._start_inside:
                if self._skip_nl and hold[:1] == "\n":
                    hold = hold[1:]
                _emit(out, "reasoning", hold)
            else:
                _emit(out, "text", hold)
        elif self._state == _INSIDE:
            _emit(out, "reasoning", hold)
        return out

    def _run(self, s: str, out: list[Segment]) -> None:
        if self._hold:
            s = self._hold + s
            self._hold = ""
        while s:
            state = self._state
            if state == _TEXT:
                _emit(out, "text", s)
                return
            if state == _AFTER:
                s = s.lstrip()
                if s:
                    self._state = _TEXT
                continue
            if state == _START:
                body = s.lstrip()
                if not body or (len(body) < len(self._open) and self._open.startswith(body)):
                    self._hold = s  # whitespace, perhaps followed by the start of the opening tag
                    return
                if body.startswith(self._open):
                    self._explicit_open = True
                    self._skip_nl = True
                    self._state = _INSIDE
                    s = body[len(self._open) :]
                elif self._start_inside:
                    self._state = _INSIDE  # s (whitespace included) is reasoning
                else:
                    self._state = _TEXT
                    self._done = True
                continue
            # _INSIDE
            if self._skip_nl:
                self._skip_nl = False
                if s[0] == "\n":
                    s = s[1:]
                    continue
            i = s.find(self._close)
            if i >= 0:
                _emit(out, "reasoning", s[:i])
                s = s[i + len(self._close) :]
                self._state = _AFTER
                self._done = True
                continue
            k = _partial_start(s, self._close)
            _emit(out, "reasoning", s[:k])
            self._hold = s[k:]
            return
