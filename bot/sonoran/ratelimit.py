"""Client-side rate limits, so the bot never provokes Sonoran's 429s, and 429 header parsing."""

from __future__ import annotations

import asyncio
import collections
import email.utils
import time
from collections.abc import Callable, Mapping
from typing import Protocol


class Limiter(Protocol):
    """One operation's budget, as the transport spends it: in this process (`SlidingWindowLimiter`)
    or shared by the processes of a cluster (`bot.cluster.budget.SharedLimiter`)."""

    async def acquire(self, max_wait: float, reserve: int = 0) -> float:
        """Takes a slot, leaving `reserve` of the window to others: 0.0 when taken, else the wait
        (nothing taken)."""
        ...

    def block_for(self, seconds: float) -> None:
        """The server said 429: nobody sends on this operation for `seconds`."""
        ...


# (operation, requests a minute) -> that operation's limiter
LimiterFactory = Callable[[str, int], Limiter]


class SlidingWindowLimiter:
    """At most `limit` acquisitions in any `period` seconds.

    `acquire(max_wait)` sleeps for a free slot when that takes at most `max_wait` seconds and
    otherwise returns the wait without taking a slot, so that callers can report it instead of
    hanging a Discord interaction.
    """

    def __init__(self, limit: int, period: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.period = period
        self._clock = clock
        self._stamps: collections.deque[float] = collections.deque()
        self._blocked_until = 0.0
        self._lock = asyncio.Lock()

    def _wait(self, now: float, reserve: int = 0, count: int = 1) -> float:
        while self._stamps and now - self._stamps[0] >= self.period:
            self._stamps.popleft()
        wait = self._blocked_until - now
        capacity = self.limit - reserve
        if capacity < count:
            return max(wait, self.period)  # never fits (or everything is reserved for others)
        if len(self._stamps) + count > capacity:
            # free once enough of the oldest stamps have left the window
            wait = max(wait, self._stamps[len(self._stamps) + count - 1 - capacity] + self.period - now)
        return max(0.0, wait)

    def take(self, count: int = 1) -> float:
        """Takes `count` slots now, without waiting: 0.0 when taken, else the wait until they would
        fit (nothing taken). For callers that answer "later" instead of sleeping (the push listener)."""
        now = self._clock()
        wait = self._wait(now, count=count)
        if wait == 0:
            self._stamps.extend([now] * count)
        return wait

    async def acquire(self, max_wait: float, reserve: int = 0) -> float:
        """Take a slot, leaving `reserve` slots of the window to others (the feed's polls);
        returns 0.0 when taken, or the needed wait (> max_wait) when refused."""
        async with self._lock:
            wait = self._wait(self._clock(), reserve)
            if wait > max_wait:
                return wait
            if wait > 0:
                await asyncio.sleep(wait)
            self._stamps.append(self._clock())
            return 0.0

    def block_for(self, seconds: float) -> None:
        """The server said 429: nobody sends on this operation until it said we may."""
        self._blocked_until = max(self._blocked_until, self._clock() + seconds)


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from a 429's headers: Retry-After (seconds or HTTP date), then
    RateLimit-Reset, then X-RateLimit-Reset (seconds, or an epoch when >= 1e9)."""
    now = time.time() if now is None else now
    value = headers.get("Retry-After")
    if value:
        value = value.strip()
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError):
                when = None
            if when is not None:
                return max(0.0, when.timestamp() - now)
    for name in ("RateLimit-Reset", "X-RateLimit-Reset"):
        value = headers.get(name)
        if not value:
            continue
        try:
            number = float(value.strip())
        except ValueError:
            continue
        return max(0.0, number - now if number >= 1e9 else number)
    return None
