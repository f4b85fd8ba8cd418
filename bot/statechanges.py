"""Faults worth one log line per change of state, not one per attempt."""

from __future__ import annotations

import asyncio

import aiohttp
import discord

# what a post or an edit may fail with for a passing reason (the feed and the audit log retry)
DISCORD_FAULTS = (discord.HTTPException, aiohttp.ClientError, asyncio.TimeoutError, OSError)


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
