"""Faults worth one log line per change of state, not one per attempt."""

from __future__ import annotations

import asyncio

import aiohttp
import discord

from .permissions import FEED_PERMISSIONS, missing_feed_permissions

# what a post or an edit may fail with for a passing reason (the feed and the audit log retry);
# RateLimited: a 429 longer than the client's max_ratelimit_timeout
DISCORD_FAULTS = (discord.HTTPException, discord.RateLimited, aiohttp.ClientError, asyncio.TimeoutError, OSError)
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


def describe_channel_fault(client: discord.Client, channel_id: int, error: BaseException, action: str) -> str:
    """Why the bot cannot `action` (post, edit) in a channel, naming the permissions it lacks."""
    if isinstance(error, discord.Forbidden):
        return f"cannot {action} there: missing permission {_missing_permissions(client, channel_id)}"
    if isinstance(error, discord.NotFound):
        return f"cannot {action} there: the channel does not exist or the bot cannot see it"
    if isinstance(error, discord.HTTPException):
        return f"cannot {action} there: Discord answered HTTP {error.status} ({error.text[:100]})"
    if isinstance(error, discord.RateLimited):
        return f"cannot {action} there for now: Discord asks to wait {error.retry_after:.0f} s (rate limit)"
    if isinstance(error, TimeoutError):
        return f"cannot {action} there for now: Discord did not answer in time"
    return f"cannot {action} there: {type(error).__name__}"


def _missing_permissions(client: discord.Client, channel_id: int) -> str:
    channel = client.get_channel(channel_id)
    if isinstance(channel, discord.abc.GuildChannel):
        missing = missing_feed_permissions(channel.permissions_for(channel.guild.me))
        if missing:
            return ", ".join(missing)
    return "(one of " + ", ".join(name for _, name in FEED_PERMISSIONS) + ")"
