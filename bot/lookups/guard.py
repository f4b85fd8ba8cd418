"""What keeps lookups within bounds, besides the client's per-minute budget: a member's cooldown
and hourly cap, the 60 s answer cache, and the pause after repeated 400s."""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Hashable

from ..sonoran import LookupRecord
from .errors import LookupLimited

log = logging.getLogger(__name__)

HOUR = 3600.0
CACHE_SECONDS = 60.0
CACHE_ENTRIES = 500
PAUSE_AFTER = 3  # 400s within PAUSE_WINDOW that pause lookups
PAUSE_WINDOW = 600.0
PAUSE_SECONDS = 600.0

Clock = Callable[[], float]


class MemberLimits:
    """A member's cooldown between lookups and their cap in any hour. A lookup counts once it is
    let through (`spend`) and is given back when the CAD did not answer it (`refund`)."""

    def __init__(self, cooldown: float, hourly_cap: int, *, clock: Clock = time.monotonic) -> None:
        self.cooldown = cooldown
        self.hourly_cap = hourly_cap
        self._clock = clock
        self._stamps: dict[int, collections.deque[float]] = {}

    def check(self, user_id: int) -> None:
        now = self._clock()
        stamps = self._stamps.get(user_id)
        if not stamps:
            return
        while stamps and now - stamps[0] >= HOUR:
            stamps.popleft()
        if stamps and now - stamps[-1] < self.cooldown:
            raise LookupLimited("cooldown", stamps[-1] + self.cooldown - now)
        if len(stamps) >= self.hourly_cap:
            raise LookupLimited("hourly cap", stamps[0] + HOUR - now)

    def spend(self, user_id: int) -> None:
        if len(self._stamps) > 10_000:  # keep the map from growing on a big server
            now = self._clock()
            self._stamps = {uid: s for uid, s in self._stamps.items() if s and now - s[-1] < HOUR}
        self._stamps.setdefault(user_id, collections.deque()).append(self._clock())

    def refund(self, user_id: int) -> None:
        stamps = self._stamps.get(user_id)
        if stamps:
            stamps.pop()


class AnswerCache:
    """The same query within 60 s is answered from here. The key holds the asker's rights, so an
    answer is never shared between members with different rights."""

    def __init__(self, *, ttl: float = CACHE_SECONDS, clock: Clock = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._answers: dict[Hashable, tuple[float, list[LookupRecord]]] = {}

    def get(self, key: Hashable) -> list[LookupRecord] | None:
        entry = self._answers.get(key)
        if entry is None or self._clock() - entry[0] >= self.ttl:
            return None
        return entry[1]

    def put(self, key: Hashable, records: list[LookupRecord]) -> None:
        now = self._clock()
        if len(self._answers) >= CACHE_ENTRIES:
            self._answers = {k: v for k, v in self._answers.items() if now - v[0] < self.ttl}
            if len(self._answers) >= CACHE_ENTRIES:
                self._answers.clear()
        self._answers[key] = (now, records)


class Pause:
    """After PAUSE_AFTER 400s within PAUSE_WINDOW, lookups pause for PAUSE_SECONDS: Sonoran denies
    every API call of a community (the game server's too) after repeated malformed requests."""

    def __init__(self, *, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._refused: collections.deque[float] = collections.deque()
        self.until = 0.0

    def check(self) -> None:
        remaining = self.until - self._clock()
        if remaining > 0:
            raise LookupLimited("paused", remaining)

    def refused(self, detail: str) -> None:
        """The CAD answered a lookup with 400."""
        now = self._clock()
        self._refused.append(now)
        while now - self._refused[0] >= PAUSE_WINDOW:
            self._refused.popleft()
        if len(self._refused) >= PAUSE_AFTER:
            self._refused.clear()
            self.until = now + PAUSE_SECONDS
            log.warning(
                "lookups paused for %.0f min: the CAD refused %d lookups as malformed within %.0f min "
                "(Sonoran blocks a community that keeps sending them); the last said: %s",
                PAUSE_SECONDS / 60,
                PAUSE_AFTER,
                PAUSE_WINDOW / 60,
                detail,
            )

    def answered(self) -> None:
        self._refused.clear()
