"""The units engine: each configured CAD server's roster (`Roster`), its unit boards and its panic
alerts, delivered by the community's channel writers (`bot.delivery`: one per channel, alerts first).

Two ways in, as for calls:
- push events (`EVENT_UNIT_*`, attach and detach), handed over by the feed engine with the calls'
  events of the same request, and acknowledged only once the alerts they open or clear are stored;
- the units list, read one page a poll (`units.poll_seconds`, at most one request a minute per
  server: the list allows 3 a minute per key, and the game server takes 1), because Sonoran sends
  no event for a panic or a status set through its API, which is how the FiveM resource sets them.

A panic opens one alert per alert channel of its server, stored before it is posted; the same
message follows the panic (edited when it clears, when it is acknowledged, when the unit moves) and
a panic after a clear is a new alert. Planning and storing hold one lock; nothing under it waits
on Discord.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import discord

from ..config import AlertSettings
from ..embeds import call_label
from ..sonoran import RateLimited, ServerId, SonoranError
from ..sonoran.events import DispatchClosed, Event, UnitEvent, UnitsMoved
from ..statechanges import StateChanges
from ..tasks import cancel_and_wait
from .lanes import AlertLane, BoardLane
from .records import Alert, AlertRecords, BoardRecords
from .render import board_pages
from .roster import Ident, Roster

if TYPE_CHECKING:
    from ..community import Community
    from ..delivery.channels import Channels

log = logging.getLogger("bot.units")

KEEP_CLEARED_SECONDS = 7 * 24 * 3600
PRUNE_EVERY = 3600.0
MAX_SUMMARY = 1_000  # units one summary alert lists; a storm past that is on the board only
SLOT_WAIT = 5.0  # a poll a moment early waits this long for the minute's slot instead of failing

AlertKey = tuple[int, ServerId]  # (channel, CAD server)


class UnitsEngine:
    def __init__(self, community: Community, channels: Channels) -> None:
        self.community = community
        self.settings = community.settings
        self.rosters: dict[ServerId, Roster] = {server: Roster() for server in self.settings.unit_server_ids}
        self.alerts: dict[AlertKey, dict[int, Alert]] = {}  # open alerts by id, per channel and server
        self._channels = channels
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._poll_now = asyncio.Event()
        self._boards: dict[ServerId, list[BoardLane]] = {}
        self._alert_lanes: dict[AlertKey, AlertLane] = {}
        self._state = StateChanges()
        self._last_prune = 0.0
        self._records: AlertRecords | None = None
        self._opened: dict[AlertKey, collections.deque[float]] = {}  # alerts of their own opened, the last minute

    def __repr__(self) -> str:
        return f"UnitsEngine(servers={sorted(self.rosters)}, alerts={len(self.settings.alerts)})"

    @property
    def records(self) -> AlertRecords:
        if self._records is None:
            self._records = AlertRecords(self.community.store)
        return self._records

    # --- start and stop --------------------------------------------------------------------------
    async def start(self, *, poll: bool) -> None:
        """Loads the open alerts, gives every alert and board channel's writer its lane (alerts
        first), and with `poll` starts reading the units list."""
        if not self.rosters or self.community.services.store is None:
            return
        for alert in await self.records.open_alerts():
            self.alerts.setdefault((alert.channel_id, alert.server_id), {})[alert.id] = alert
        for setting in self.settings.alerts:
            key = (setting.channel_id, setting.server_id)
            if key not in self._alert_lanes:
                alerts = self.alerts.setdefault(key, {})
                self._alert_lanes[key] = AlertLane(*key, setting.ping_role_id, alerts, self.records, self._channels)
                self._channels.writer(setting.channel_id).add(self._alert_lanes[key], first=True)
        boards = BoardRecords(self.community.store)
        for board in self.settings.boards:
            board_lane = BoardLane(
                board.channel_id,
                board.server_id,
                self._board_renderer(board.server_id),
                boards,
                self._channels,
                every=self.settings.units.board_edit_seconds,
            )
            self._boards.setdefault(board.server_id, []).append(board_lane)
            self._channels.writer(board.channel_id).add(board_lane)
        if poll and self._task is None:
            self._task = asyncio.create_task(self._run(), name="units-loop")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    def hurry_boards(self) -> None:
        """Boards with changes waiting out their edit window are edited now (a clean stop)."""
        for lanes in self._boards.values():
            for lane in lanes:
                lane.hurry()
                self._channels.writer(lane.channel_id).wake()

    def poll_soon(self) -> None:
        """Reads the units list now if the minute's budget allows (after /panic, /status)."""
        self._poll_now.set()

    # --- the units list ----------------------------------------------------------------------------
    async def _run(self) -> None:
        interval = self.settings.units.poll_seconds
        log.info("units: reading the units of %d CAD server(s) every %gs", len(self.rosters), interval)
        wait = SLOT_WAIT
        while True:
            try:
                await self.poll_once(wait=wait)
            except Exception:  # a bug must not end the loop; say so once per poll and carry on
                log.exception("units: poll failed")
            self._poll_now.clear()
            due = time.monotonic() + interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poll_now.wait(), interval)
            # asked early (/panic): that read waits for the minute's slot, but never past the next
            # regular read, which it then is
            wait = max(SLOT_WAIT, due - time.monotonic())

    async def poll_once(self, *, wait: float = SLOT_WAIT) -> None:
        """One page of each server's units list, taken in; then what it changed is delivered.
        `wait`: how long a read may wait for its slot of the budget."""
        for server_id, roster in self.rosters.items():
            asked_at = time.monotonic()
            try:
                units = await self.community.sonoran.get_units(server_id, offset=roster.offset, wait=wait)
            except RateLimited as error:
                if error.status is None:  # the bot's own budget: not yet (an early /panic read), nothing failed
                    log.debug("units: CAD server %s: the units list waits for its budget (%s)", server_id, error)
                else:
                    self._changed(server_id, "RateLimited", str(error))
                continue
            except SonoranError as error:
                self._changed(server_id, type(error).__name__, str(error))
                continue
            self._changed(server_id, "ok", "")
            async with self._lock:
                roster.take_page(units, asked_at=asked_at, rows=units.rows)
                await self._plan(server_id)
        await self._prune()
        await self.settled()

    async def settled(self) -> None:
        """Returns once every alert and board channel has tried what is due."""
        channels = {channel_id for channel_id, _ in self._alert_lanes}
        channels |= {lane.channel_id for lanes in self._boards.values() for lane in lanes}
        for channel_id in channels:
            await self._channels.writer(channel_id).settled()

    # --- push events -------------------------------------------------------------------------------
    async def handle_events(self, taken: Iterable[tuple[ServerId, list[Event]]]) -> None:
        """Takes in the unit events of a burst; returns once the alerts they open or clear are
        stored (the listener's 200 waits for this)."""
        now = time.monotonic()
        async with self._lock:
            for server_id, events in taken:
                roster = self.rosters.get(server_id)
                if roster is None:
                    continue
                moved = False
                for event in events:
                    if isinstance(event, (UnitEvent, UnitsMoved, DispatchClosed)):
                        roster.take_event(event, at=now)
                        moved = True
                if moved:
                    await self._plan(server_id)
        if any(roster.waiting for roster in self.rosters.values()):
            self.poll_soon()  # an event named a unit not seen yet: the list brings it in

    async def calls_read(self, server_ids: Iterable[ServerId]) -> None:
        """A call list was read (the feed's poll): an open alert shows the call its unit is on as
        soon as the bot knows it, and the board which unit is on which call."""
        for server_id in server_ids:
            roster, latest = self.rosters.get(server_id), self.community.board.latest(server_id)
            if roster is None or latest is None:
                continue
            async with self._lock:
                moved = roster.take_calls(latest.calls)
                alerting = any(
                    alert.cleared_at is None
                    for (_, alert_server), alerts in self.alerts.items()
                    if alert_server == server_id
                    for alert in alerts.values()
                )
                if moved or alerting:
                    await self._plan(server_id, boards=moved)

    # --- planning ----------------------------------------------------------------------------------
    async def _plan(self, server_id: ServerId, *, boards: bool = True) -> None:
        """After the roster changed: alerts opened, followed or cleared (stored at once), boards due."""
        roster = self.rosters[server_id]
        latest = self.community.board.latest(server_id)
        if latest is not None:
            roster.take_calls(latest.calls)
        panicking = roster.panicking()
        touched: set[int] = set()
        alerts = [setting for setting in self.settings.alerts if setting.server_id == server_id]
        if alerts:
            async with self.community.store.atomic():  # one commit for every alert channel of the server
                for setting in alerts:
                    if await self._plan_alerts(setting, roster, panicking):
                        touched.add(setting.channel_id)
        for channel_id in touched:
            self._channels.writer(channel_id).wake()
        for lane in self._boards.get(server_id, []) if boards else []:
            lane.changed()
            self._channels.writer(lane.channel_id).wake()

    async def _plan_alerts(self, setting: AlertSettings, roster: Roster, panicking: set[Ident]) -> bool:
        """Opens an alert of its own for each new panic while the channel's cap allows (at most
        `units.max_alerts_per_minute` in a minute, whatever one event holds); the rest are listed
        in the channel's one summary alert, which pinged once when it was posted. Then follows
        the open alerts: their units, their calls, their clearing."""
        key = (setting.channel_id, setting.server_id)
        alerts = self.alerts.setdefault(key, {})
        active = {alert.ident: alert for alert in alerts.values() if alert.cleared_at is None and not alert.is_summary}
        summaries = [a for a in alerts.values() if a.is_summary and a.cleared_at is None]
        # a unit a summary lists as cleared that presses again is a new panic
        listed = {unit.id for held in summaries for unit in held.members or () if unit.is_panic}
        # new names join only a summary nobody has acknowledged: one that was acknowledged would
        # take them in silence (no ping, no button, "Acknowledged by ..."), so they open a new one
        summary = next((a for a in summaries if not a.acked_by), None)
        changed = False
        fresh = sorted(panicking - active.keys() - listed)
        opened = self._opened.setdefault(key, collections.deque())
        now = self.community.services.clock()  # the clock the budgets go by (a simulation moves it)
        while opened and now - opened[0] >= 60.0:
            opened.popleft()
        room = max(0, self.settings.units.max_alerts_per_minute - len(opened))
        for ident in fresh[:room]:
            unit = roster.units[ident]
            alert = await self.records.add(
                setting.channel_id,
                setting.server_id,
                unit,
                self._call_of(setting.server_id, roster, ident),
                time.time(),
            )
            alerts[alert.id] = alert
            opened.append(now)
            log.warning("units: unit #%s of CAD server %s pressed panic", ident, setting.server_id)
            changed = True
        rest = [roster.units[ident] for ident in fresh[room:MAX_SUMMARY]]
        if rest:
            log.warning(
                "units: %d more units of CAD server %s pressed panic (past the cap of %d alerts a minute): one summary",
                len(rest),
                setting.server_id,
                self.settings.units.max_alerts_per_minute,
            )
            if summary is None:
                summary = await self.records.add_summary(setting.channel_id, setting.server_id, rest, time.time())
                alerts[summary.id] = summary
            else:
                merged = {unit.id: unit for unit in (*(summary.members or ()), *rest)}
                summary = await self._update(alerts, summary, members=tuple(merged.values())[:MAX_SUMMARY])
            changed = True
        for ident, alert in active.items():
            if ident in panicking:
                call = self._call_of(setting.server_id, roster, ident)
                now_alert = alert.changed(unit=roster.units[ident], call=call)
            elif ident in roster.units or roster.knows_off_duty(ident):
                now_alert = alert.changed(cleared_at=time.time())
            else:
                continue  # not known yet (the first sweep after a start is under way)
            if now_alert.version != alert.version:
                await self._update(alerts, now_alert)
                changed = True
        for summary_id in {held.id for held in summaries} | ({summary.id} if summary is not None else set()):
            changed |= await self._follow_summary(alerts, alerts[summary_id], roster, panicking)
        return changed

    async def _follow_summary(
        self, alerts: dict[int, Alert], summary: Alert, roster: Roster, panicking: set[Ident]
    ) -> bool:
        """The summary's units as now seen; it clears when none of them is in panic any more."""
        members = []
        for unit in summary.members or ():
            if unit.is_panic and unit.id in panicking:
                unit = roster.units[unit.id]
            elif unit.is_panic and (unit.id in roster.units or roster.knows_off_duty(unit.id)):
                unit = unit.model_copy(update={"is_panic": False})  # stays listed, as cleared
            members.append(unit)
        still = any(unit.is_panic for unit in members)
        now = summary.changed(members=tuple(members), cleared_at=None if still else time.time())
        if now.version == summary.version:
            return False
        await self._update(alerts, now)
        return True

    async def _update(self, alerts: dict[int, Alert], alert: Alert, **changes: Any) -> Alert:
        if changes:
            alert = alert.changed(**changes)
        await self.records.update(alert)
        alerts[alert.id] = alert
        return alert

    def _call_of(self, server_id: ServerId, roster: Roster, ident: Ident) -> str | None:
        call_id = roster.calls.get(ident)
        if call_id is None:
            return None
        latest = self.community.board.latest(server_id)
        known = next((c for c in latest.calls.active if c.call_id == call_id), None) if latest else None
        if known is None and self.community.feed is not None:  # pushed since the last list: the feed has it
            known = self.community.feed.dispatch_call(server_id, call_id)
        return call_label(known) if known else f"#{call_id}"

    def _board_renderer(self, server_id: ServerId) -> Callable[[], list[discord.Embed] | None]:
        roster = self.rosters[server_id]

        def render() -> list[discord.Embed] | None:
            if not roster.complete and not roster.units:
                return None  # an empty board after a start would be a lie: wait for a read or an event
            latest = self.community.board.latest(server_id)
            if latest is not None:
                roster.take_calls(latest.calls)
            # before a whole read of the list, what the events said, marked as not yet confirmed
            label = self.settings.units.label
            return board_pages(server_id, roster.units, roster.calls, label, confirmed=roster.complete)

        return render

    # --- acknowledge ---------------------------------------------------------------------------------
    async def alert(self, alert_id: int) -> Alert | None:
        for alerts in self.alerts.values():
            if alert_id in alerts:
                return alerts[alert_id]
        return await self.records.get(alert_id) if self.community.services.store is not None else None

    async def acknowledge(self, alert_id: int, who: str) -> tuple[Alert, bool]:
        """The alert as it now is, and whether this acknowledgement took (the first, on a panic that
        lasts). Two dispatchers clicking at once: one takes, the other is told who did."""
        async with self._lock:
            alert = await self.alert(alert_id)
            assert alert is not None
            if alert.acked_by or alert.cleared_at is not None:
                return alert, False
            alert = alert.changed(acked_by=who, acked_at=time.time())
            await self.records.update(alert)
            open_alerts = self.alerts.setdefault((alert.channel_id, alert.server_id), {})
            open_alerts[alert.id] = alert
        self._channels.writer(alert.channel_id).wake()
        return alert, True

    # --- housekeeping --------------------------------------------------------------------------------
    def _changed(self, server_id: ServerId, state: str, detail: str) -> None:
        if self._state.change(server_id, state) is None:
            return
        if state == "ok":
            log.info("units: the units list of CAD server %s answers again", server_id)
        else:
            log.warning(
                "units: the units list of CAD server %s: %s (%s); trying at the next poll", server_id, state, detail
            )

    async def _prune(self) -> None:
        now = time.time()
        if now - self._last_prune > PRUNE_EVERY:
            self._last_prune = now
            await self.records.forget_cleared(now - KEEP_CLEARED_SECONDS)
