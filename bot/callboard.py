"""The latest call list of each CAD server, shared by the feed, /calls and autocomplete.

The feed's poll refreshes it; `/calls` reuses it while it is younger than one poll interval;
autocomplete only ever reads it. So the call-list budget (5 a minute per key, shared with the
game server) is spent once per server per interval, not per command or keystroke.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from .sonoran import CallList, CallType, DispatchCall, ServerId, SonoranClient, SonoranError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    calls: CallList
    fetched_at: float  # time.monotonic()
    fetched_wall: float  # time.time(), for "as of" in replies


class CallBoard:
    """Also the one place of the budget rule: members may use only what the feed's polls leave.
    `feed_reserve` call-list requests of every rate window are the feed's; whatever is asked for a
    member (`/calls`, its pages, autocomplete's background refresh) must leave them free."""

    def __init__(
        self,
        client: SonoranClient,
        max_age: float,
        *,
        feed_reserve: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.max_age = max_age
        self.feed_reserve = feed_reserve
        self._clock = clock
        self._snapshots: dict[int, Snapshot] = {}
        self._background: dict[int, asyncio.Task[Snapshot]] = {}

    async def refresh(self, server_id: ServerId, *, interactive: bool = False, retry: bool = True) -> Snapshot:
        """A new snapshot. `interactive`: for a member, within what the feed's polls leave over.
        `retry=False`: one request at most (the feed's poll, whose next cycle is its retry)."""
        calls = await self.client.get_calls(server_id, reserve=self._reserve(interactive), retry=retry)
        snapshot = Snapshot(calls, self._clock(), time.time())
        self._snapshots[server_id] = snapshot
        return snapshot

    def _reserve(self, interactive: bool) -> int:
        return self.feed_reserve if interactive else 0

    async def closed_page(self, server_id: ServerId, *, offset: int, limit: int) -> list[DispatchCall]:
        """One page of closed calls, for a member (so within what the feed leaves)."""
        calls = await self.client.get_calls(
            server_id,
            closed_limit=limit,
            closed_offset=offset,
            call_type=CallType.DISPATCH,
            reserve=self._reserve(interactive=True),
        )
        return calls.closed[:limit]

    async def get(self, server_id: ServerId) -> Snapshot:
        """The snapshot if it is fresh, else one (shared) request for a new one."""
        snapshot = self._snapshots.get(server_id)
        if snapshot is not None and self._clock() - snapshot.fetched_at < self.max_age:
            return snapshot
        return await self.refresh(server_id, interactive=True)

    def latest(self, server_id: ServerId) -> Snapshot | None:
        """What is cached, however old; never a request, not even in the background."""
        return self._snapshots.get(server_id)

    def peek(self, server_id: ServerId) -> Snapshot | None:
        """What is cached, however old; never a request. For autocomplete."""
        snapshot = self._snapshots.get(server_id)
        if snapshot is None or self._clock() - snapshot.fetched_at >= self.max_age:
            self._refresh_in_background(server_id)
        return snapshot

    def _refresh_in_background(self, server_id: int) -> None:
        # For servers no feed polls: at most one refresh per interval, however fast people type.
        if server_id in self._background:
            return
        task = asyncio.get_running_loop().create_task(
            self.refresh(server_id, interactive=True), name=f"callboard-{server_id}"
        )
        self._background[server_id] = task
        task.add_done_callback(lambda t: self._background_done(server_id, t))

    def _background_done(self, server_id: int, task: asyncio.Task[Snapshot]) -> None:
        if task.cancelled():
            self._background.pop(server_id, None)
            return
        error = task.exception()
        if error is not None:
            log.debug("background call-list refresh for server %s failed: %s", server_id, error)
            if not isinstance(error, SonoranError):
                log.error("background call-list refresh crashed", exc_info=error)
        # keep the finished task until the interval is over, so failures are not retried per keystroke
        loop = asyncio.get_running_loop()
        loop.call_later(self.max_age, self._background.pop, server_id, None)

    def forget(
        self, server_id: int, *, emergency_call_id: int | None = None, dispatch_call_id: int | None = None
    ) -> None:
        """Drops a call the bot just removed or closed, so menus stop offering it before the next poll."""
        snapshot = self._snapshots.get(server_id)
        if snapshot is None:
            return
        calls = snapshot.calls.model_copy(
            update={
                "calls_911": [c for c in snapshot.calls.calls_911 if c.call_id != emergency_call_id],
                "active": [c for c in snapshot.calls.active if c.call_id != dispatch_call_id],
            }
        )
        self._snapshots[server_id] = Snapshot(calls, snapshot.fetched_at, snapshot.fetched_wall)

    def active_count(self) -> int:
        return sum(len(s.calls.calls_911) + len(s.calls.active) for s in self._snapshots.values())
