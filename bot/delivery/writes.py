"""Bounded writes to Discord and what a failed one means for its channel's writer.

Every write is bounded: a 429 longer than the bot's `max_ratelimit_timeout`, or a Discord that
does not answer (discord.py retries a 5xx five times over 25 s) within `WRITE_TIMEOUT`, ends the
attempt with a `Fault`, and the channel's writer (`bot.delivery.outbox`) tries again later.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

REFUSED_FOR_GOOD = frozenset({400, 413})  # retrying the same body cannot help
WRITE_TIMEOUT = 10.0  # seconds one post or edit may take, Discord's own waits and retries included
_T = TypeVar("_T")


@dataclass(frozen=True)
class Fault:
    """Why a write did not happen. `wide`: the whole channel fails (no permission, no channel,
    Discord rate-limits or cannot be reached), not only this message; `retry_after`: Discord said
    when to come back."""

    text: str
    wide: bool
    retry_after: float | None = None


async def bounded(write: Awaitable[_T]) -> _T:
    """A write to Discord that gives up after WRITE_TIMEOUT (raising TimeoutError)."""
    return await asyncio.wait_for(write, WRITE_TIMEOUT)
