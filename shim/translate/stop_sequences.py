"""Chat ``stop`` sequences emulated over an upstream that has none (Open Responses).

A delta filter: text deltas pass through, except that a suffix which could still grow into a
stop sequence is held back (at most ``len(longest) - 1`` characters), so the cut is correct
whatever the chunk boundaries. On the first match the text before it is let through, the
filter is ``stopped`` (the IO layer cancels the upstream) and a ``FinishDelta("stop")``
follows; everything after is swallowed except usage, which the client may still want.

Only answer text is cut, as OpenAI does: reasoning, refusals and tool calls pass unchanged.
"""

from __future__ import annotations

from shim.core.deltas import Delta, ErrorDelta, FinishDelta, TextDelta, TokenLogprob, UsageDelta

__all__ = ["StopFilter", "stop_list"]


def stop_list(stop: str | list[str] | None) -> list[str]:
    """The request's ``stop`` as a list of non-empty sequences."""
    if stop is None:
        return []
    items = [stop] if isinstance(stop, str) else stop
    return [s for s in items if s]


class StopFilter:
    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self._hold = max((len(s) for s in self.stops), default=1) - 1
        self._pending = ""  # text seen but not yet let through
        self._logprobs: list[TokenLogprob] = []  # held with the text they came with
        self.stopped = False

    def feed(self, delta: Delta) -> list[Delta]:
        if not self.stops:
            return [delta]
        if self.stopped:
            return [delta] if isinstance(delta, UsageDelta | ErrorDelta) else []
        if isinstance(delta, TextDelta):
            return self._text(delta)
        if isinstance(delta, UsageDelta):
            return [delta]
        # Anything else (reasoning, a tool call, the finish) ends a run of text: flush first.
        return [*self._flush(), delta]

    def feed_all(self, deltas: list[Delta]) -> list[Delta]:
        out: list[Delta] = []
        for delta in deltas:
            out.extend(self.feed(delta))
        return out

    def finish(self) -> list[Delta]:
        return [] if self.stopped else self._flush()

    def _text(self, delta: TextDelta) -> list[Delta]:
        self._pending += delta.text
        if delta.logprobs:
            self._logprobs.extend(delta.logprobs)
        cut = min((i for i in (self._pending.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            text, self._pending = self._pending[:cut], ""
            out: list[Delta] = [TextDelta(text, self._logprobs_within(len(text)))] if text else []
            return [*out, FinishDelta("stop")]
        keep = self._partial_suffix()
        if len(self._pending) == keep:
            return []
        text = self._pending[: len(self._pending) - keep]
        self._pending = self._pending[len(text) :]
        return [TextDelta(text, self._take_logprobs())]

    def _partial_suffix(self) -> int:
        """The length of the longest tail of the pending text that starts some stop sequence."""
        pending = self._pending
        for size in range(min(self._hold, len(pending)), 0, -1):
            tail = pending[-size:]
            if any(s.startswith(tail) for s in self.stops):
                return size
        return 0

    def _logprobs_within(self, size: int) -> list[TokenLogprob] | None:
        """The held tokens that fit in the ``size`` characters let through before the cut."""
        kept: list[TokenLogprob] = []
        used = 0
        for token in self._logprobs:
            used += len(token.token)
            if used > size:
                break
            kept.append(token)
        self._logprobs = []
        return kept or None

    def _take_logprobs(self) -> list[TokenLogprob] | None:
        items, self._logprobs = self._logprobs, []
        return items or None

    def _flush(self) -> list[Delta]:
        if not self._pending:
            return []
        text, self._pending = self._pending, ""
        return [TextDelta(text, self._take_logprobs())]
