"""Faults worth one log line per change of state, not one per attempt."""

from __future__ import annotations

ONCE_MEMORY = 4096


class StateChanges:
    """The last known state of each server or channel, so that the log gets one line per change
    rather than one per poll. Starting out "ok" is not a change worth a line."""

    def __init__(self) -> None:
        self._states: dict[int, str] = {}

    def change(self, key: int, state: str) -> str | None:
        """Records `state`; returns it when that is news, else None."""
        previous = self._states.get(key, "ok")
        self._states[key] = state
        return state if state != previous else None

    def failing(self) -> list[int]:
        """The keys whose last state was not "ok"."""
        return [key for key, state in self._states.items() if state != "ok"]


class Once:
    """Keys already reported, so that a fault of one call (or one connection) is logged once, not
    once per poll; the oldest are forgotten past ONCE_MEMORY."""

    def __init__(self) -> None:
        self._seen: dict[object, None] = {}

    def first(self, key: object) -> bool:
        """True the first time `key` is seen (since it was last forgotten)."""
        if key in self._seen:
            return False
        self._seen[key] = None
        while len(self._seen) > ONCE_MEMORY:
            del self._seen[next(iter(self._seen))]
        return True
