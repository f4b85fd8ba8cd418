"""The desk's abuse limits: a cooldown between a member's 911 calls, and how many of their own 911
calls may still be open in the CAD."""

from __future__ import annotations

import time

from discord import app_commands

from ..aliases import CallId, ServerId
from ..callboard import CallBoard


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
