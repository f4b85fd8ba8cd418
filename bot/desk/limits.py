"""The desk's abuse limits: a cooldown between a member's 911 calls, how many of their own 911
calls may still be open in the CAD, and each member's share of the /status and /panic budgets."""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable

from discord import app_commands

from ..aliases import CallId, ServerId
from ..callboard import CallBoard
from ..messages import WaitBeforeAgain


class Cooldowns:
    """Per-member wait between filed 911 calls. Only a filed (or possibly filed) call counts."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._until: dict[int, float] = {}

    def check(self, user_id: int) -> None:
        remaining = self._until.get(user_id, 0.0) - time.monotonic()
        if remaining > 0:
            raise app_commands.CommandOnCooldown(app_commands.Cooldown(1, self.seconds), remaining)

    def start(self, user_id: int) -> None:
        now = time.monotonic()
        if len(self._until) > 10_000:  # keep the map from growing on a big server
            self._until = {uid: until for uid, until in self._until.items() if until > now}
        self._until[user_id] = now + self.seconds

    def clear(self, user_id: int) -> None:
        self._until.pop(user_id, None)


class OpenCalls:
    """How many of a member's own 911 calls are still in the CAD's 911 queue, from the call list
    the bot already has (the metaData it writes names the member) plus the calls it filed since
    that list was fetched. Never a CAD request."""

    def __init__(self, board: CallBoard) -> None:
        self.board = board
        self._filed: dict[int, list[tuple[ServerId, CallId, float]]] = {}

    def count(self, user_id: int, server_id: ServerId) -> int:
        snapshot = self.board.latest(server_id)
        listed = snapshot.calls.calls_911 if snapshot else []
        mine = {c.call_id for c in listed if str(c.metadata.get("discordUserId", "")) == str(user_id)}
        since = snapshot.fetched_at if snapshot else float("-inf")
        recent = self._filed.get(user_id, [])
        self._filed[user_id] = [f for f in recent if f[2] >= since]  # older ones are in the list, or gone
        later = {call_id for server, call_id, at in self._filed[user_id] if server == server_id and at >= since}
        return len(mine | later)

    def filed(self, user_id: int, server_id: ServerId, call_id: CallId) -> None:
        if len(self._filed) > 10_000:  # keep the map from growing on a big server
            self._filed.clear()
        self._filed.setdefault(user_id, []).append((server_id, call_id, time.monotonic()))


class MemberShare:
    """One member's part of a write budget shared by everyone (and the game server): at most
    `per_minute` of their writes that reached the CAD in any minute, so one member cannot spend
    everyone's budget, and a cooldown before the same write again (`what`: /panic off twice; a
    mistaken /panic on is turned off at once). A refusal of the bot's own spends nothing: only
    `spent()` counts, called once the request went out."""

    def __init__(self, cooldown: float, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.cooldown = cooldown
        self.per_minute = max(1, per_minute)
        self._clock = clock
        self._spent: dict[int, collections.deque[tuple[float, object]]] = {}

    @classmethod
    def of(cls, budget: int, share: float, cooldown: float) -> MemberShare:
        return cls(cooldown, math.floor(budget * share))

    def check(self, user_id: int, what: object = None) -> None:
        now = self._clock()
        stamps = self._spent.get(user_id)
        if not stamps:
            return
        while stamps and now - stamps[0][0] >= max(60.0, self.cooldown):  # a cooldown may be past a minute
            stamps.popleft()
        same = [at for at, done in stamps if done == what]
        wait = same[-1] + self.cooldown - now if same else 0.0
        minute = [at for at, _ in stamps if now - at < 60.0]
        if len(minute) >= self.per_minute:
            wait = max(wait, minute[0] + 60.0 - now)
        if wait > 0:
            raise WaitBeforeAgain(wait)

    def spent(self, user_id: int, what: object = None) -> None:
        now = self._clock()
        window = max(60.0, self.cooldown)
        if len(self._spent) > 10_000:  # keep the map from growing on a big server
            self._spent = {uid: s for uid, s in self._spent.items() if s and now - s[-1][0] < window}
        stamps = self._spent.setdefault(user_id, collections.deque())
        while stamps and now - stamps[0][0] >= window:  # bounded: per_minute a minute, over the window
            stamps.popleft()
        stamps.append((now, what))


class Cooldown:
    """A plain per-member wait between uses of a command that costs the bot (no CAD request)."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.share = MemberShare(seconds, 1_000, clock)

    def use(self, user_id: int) -> None:
        self.share.check(user_id)
        self.share.spent(user_id)
