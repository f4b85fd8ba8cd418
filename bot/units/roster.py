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


@dataclass
class Roster:
    """`units`: on duty, by identifier; `calls`: the dispatch call each is attached to; `complete`:
    a whole sweep of the list has been read since start (before that, a unit the bot has not seen
    may still be on duty)."""

    units: dict[Ident, Unit] = field(default_factory=dict)
    calls: dict[Ident, CallId] = field(default_factory=dict)
    complete: bool = False
    offset: int = 0  # the next page of the list to ask for
    _sweep: set[Ident] = field(default_factory=set)  # seen in the sweep under way
    _sweep_started: float = 0.0
    _changed_at: dict[Ident, float] = field(default_factory=dict)  # the last event about each unit
    _calls_from: CallList | None = None

    def take_page(self, units: list[Unit], *, asked_at: float) -> None:
        """A page of the list, asked for at `asked_at`, from `self.offset`. A short page ends the
        sweep: units not seen in it (nor in an event since it began) have gone off duty."""
        if self.offset == 0:
            self._sweep, self._sweep_started = set(), asked_at
        for unit in units:
            self._sweep.add(unit.id)
            if self._changed_at.get(unit.id, float("-inf")) <= asked_at:
                self.units[unit.id] = unit
        if len(units) < UNITS_PAGE:
            for ident in [i for i in self.units if i not in self._sweep]:
                if self._changed_at.get(ident, float("-inf")) <= self._sweep_started:
                    self._drop(ident)
            self.complete = True
            self.offset = 0
        else:
            self.offset += UNITS_PAGE

    def take_event(self, event: UnitEvent | UnitsMoved | DispatchClosed, *, at: float) -> None:
        if isinstance(event, DispatchClosed):  # its units are on no call any more
            closed = set(event.call_ids)
            self.calls = {ident: call for ident, call in self.calls.items() if call not in closed}
            return
        if isinstance(event, UnitsMoved):
            for ident in event.idents:
                if event.attached:
                    self.calls[ident] = event.call_id
                elif self.calls.get(ident) == event.call_id:
                    del self.calls[ident]
            return
        if isinstance(event, UnitsOnDuty):
            for unit in event.units:
                self.units[unit.id] = unit
                self._changed_at[unit.id] = at
        elif isinstance(event, UnitsOffDuty):
            for ident in event.idents:
                self._drop(ident)
                self._changed_at[ident] = at
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
        return ident not in self.units and (self.complete or ident in self._changed_at)

    def _change(self, idents: Iterable[Ident], changes: dict[str, object], at: float) -> None:
        for ident in idents:
            known = self.units.get(ident) or Unit(id=ident)  # details follow with the next page
            self.units[ident] = known.model_copy(update=changes)
            self._changed_at[ident] = at

    def _drop(self, ident: Ident) -> None:
        self.units.pop(ident, None)
        self.calls.pop(ident, None)
