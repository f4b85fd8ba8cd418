"""A CAD server's units on duty, as the bot knows them: from the units list (read a page at a
time) and from push events, whichever is newer. Pure: no I/O, times are passed in.

Sonoran sends no event for what is done through its API (the FiveM resource sets panics and
statuses that way), so the list is the reconciliation; an event is the fast path. A page of the
list asked for before an event about a unit arrived says nothing about that unit: it is older.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ..sonoran.events import (
    DispatchClosed,
    PanicChanged,
    StatusChanged,
    UnitEvent,
    UnitsMoved,
    UnitsOffDuty,
    UnitsOnDuty,
)
from ..sonoran.models import UNITS_PAGE, CallId, CallList, Unit

Ident = int  # a unit identifier's id (`identId`)


MAX_GONE = 10_000  # recent logouts remembered (for a page asked before them); the oldest go first
MAX_PENDING = 1_000  # status and panic changes of units not seen yet, kept for when they are


@dataclass
class Roster:
    """`units`: on duty, by identifier; `calls`: the dispatch call each is attached to; `complete`:
    a whole sweep of the list has been read since start (before that, a unit the bot has not seen
    may still be on duty).

    What it remembers besides is bounded by the units on duty: the time of the last event about
    each of them, and at most MAX_GONE recent logouts and MAX_PENDING changes of units not seen yet
    (a status or panic event about an unknown unit makes no blank unit: FiveM ignores them; the
    change waits for the list or a login to bring the unit in)."""

    units: dict[Ident, Unit] = field(default_factory=dict)
    calls: dict[Ident, CallId] = field(default_factory=dict)
    complete: bool = False
    offset: int = 0  # the next page of the list to ask for
    _sweep: set[Ident] = field(default_factory=set)  # seen in the sweep under way
    _sweep_started: float = 0.0
    _changed_at: dict[Ident, float] = field(default_factory=dict)  # the last event about each unit on duty
    _gone: dict[Ident, float] = field(default_factory=dict)  # recent logouts, oldest first
    _pending: dict[Ident, tuple[float, dict[str, object]]] = field(default_factory=dict)
    _calls_from: CallList | None = None

    @property
    def waiting(self) -> bool:
        """Some event named units the bot has not seen: the list should be read soon."""
        return bool(self._pending)

    def take_page(self, units: list[Unit], *, asked_at: float, rows: int | None = None) -> None:
        """A page of the list, asked for at `asked_at`, from `self.offset`; `rows`: how many rows
        the CAD sent (a row that cannot be read is still a row). A short page ends the sweep: units
        not seen in it (nor in an event since it began) have gone off duty."""
        rows = len(units) if rows is None else rows
        if self.offset == 0:
            self._sweep, self._sweep_started = set(), asked_at
        for unit in units:
            if unit.is_dispatch:  # the list leaves dispatchers out (`onlyUnits`); one that slips in too
                continue
            self._sweep.add(unit.id)
            if self._last_event(unit.id) > asked_at:
                continue  # an event since the page was asked is newer
            pending = self._pending.pop(unit.id, None)
            if pending is not None and pending[0] > asked_at:
                unit = unit.model_copy(update=pending[1])
                self._changed_at[unit.id] = pending[0]
            self.units[unit.id] = unit
        if rows < UNITS_PAGE:
            for ident in [i for i in self.units if i not in self._sweep]:
                if self._changed_at.get(ident, float("-inf")) <= self._sweep_started:
                    self._drop(ident)
            self._pending = {i: p for i, p in self._pending.items() if p[0] > self._sweep_started}
            self.complete = True
            self.offset = 0
        else:
            self.offset += UNITS_PAGE
        # the next page is asked after now: a logout older than this page matters to none
        self._gone = {i: at for i, at in self._gone.items() if at > asked_at}

    def take_event(self, event: UnitEvent | UnitsMoved | DispatchClosed, *, at: float) -> None:
        if isinstance(event, DispatchClosed):  # its units are on no call any more
            closed = set(event.call_ids)
            self.calls = {ident: call for ident, call in self.calls.items() if call not in closed}
            return
        if isinstance(event, UnitsMoved):
            for ident in event.idents:
                if event.attached:
                    if ident in self.units:
                        self.calls[ident] = event.call_id
                elif self.calls.get(ident) == event.call_id:
                    del self.calls[ident]
            return
        if isinstance(event, UnitsOnDuty):
            for unit in event.units:
                self._pending.pop(unit.id, None)
                if unit.is_dispatch:  # a dispatcher logging in is not a unit on the board
                    self._off_duty(unit.id, at)
                    continue
                self._gone.pop(unit.id, None)
                self.units[unit.id] = unit
                self._changed_at[unit.id] = at
        elif isinstance(event, UnitsOffDuty):
            for ident in event.idents:
                self._off_duty(ident, at)
        elif isinstance(event, StatusChanged):
            self._change(event.idents, {"status": event.status}, at)
        elif isinstance(event, PanicChanged):
            self._change(event.idents, {"is_panic": event.panic}, at)

    def take_calls(self, calls: CallList) -> bool:
        """Which call each unit is on, from a call list's active calls (once per list)."""
        if calls is self._calls_from:
            return False
        self._calls_from = calls
        attached = {ident: call.call_id for call in calls.active for ident in call.idents}
        changed = attached != self.calls
        self.calls = attached
        return changed

    def panicking(self) -> set[Ident]:
        return {ident for ident, unit in self.units.items() if unit.is_panic}

    def knows_off_duty(self, ident: Ident) -> bool:
        """The unit is known not to be on duty (a logout, or a whole sweep without it)."""
        return ident not in self.units and (self.complete or ident in self._gone)

    def _last_event(self, ident: Ident) -> float:
        return self._changed_at.get(ident, self._gone.get(ident, float("-inf")))

    def _change(self, idents: Iterable[Ident], changes: dict[str, object], at: float) -> None:
        for ident in idents:
            known = self.units.get(ident)
            if known is None:  # not seen yet: kept for when the list or a login brings it
                earlier = self._pending.pop(ident, (at, {}))[1]
                self._pending[ident] = (at, {**earlier, **changes})
                while len(self._pending) > MAX_PENDING:
                    del self._pending[next(iter(self._pending))]
                continue
            self.units[ident] = known.model_copy(update=changes)
            self._changed_at[ident] = at

    def _off_duty(self, ident: Ident, at: float) -> None:
        self._drop(ident)
        self._pending.pop(ident, None)
        self._gone.pop(ident, None)
        self._gone[ident] = at
        while len(self._gone) > MAX_GONE:
            del self._gone[next(iter(self._gone))]

    def _drop(self, ident: Ident) -> None:
        self.units.pop(ident, None)
        self.calls.pop(ident, None)
        self._changed_at.pop(ident, None)
