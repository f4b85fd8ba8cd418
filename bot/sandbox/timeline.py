"""The demo's community: a scripted, realistic stretch of a roleplay evening, played on the sandbox
CAD and pushed to the bot as Sonoran pushes it (`{key, type, data}` events to the listener).

Emergency and civil 911 calls come in (`INCIDENTS`); some are answered into dispatch calls, which
gather their own notes and units and are then closed; others are removed. Units go en route when
sent and are available again when their call closes; one presses panic on its call and clears it.
Every step belongs to one incident, so each call's answer, title, notes, units and end are its own.
The CAD's own lists change with every step, so the bot's poll sees what the events said. After the
script, it starts over with new calls (the same incidents, new call numbers).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from .cad import FakeCad

log = logging.getLogger(__name__)

SERVER = 1


@dataclass(frozen=True)
class Incident:
    """One 911 call and everything that follows from it: whoever answers it answers this call, with
    its own title, notes and units, and it ends as its story says (closed, or removed unanswered)."""

    name: str
    caller: str
    location: str
    words: str  # what the caller says
    emergency: bool
    title: str = ""  # the dispatch call it becomes; "" = removed without one
    code: str = ""
    priority: int = 2
    notes: tuple[tuple[str, str], ...] = ()  # (unit number, note)
    units: tuple[int, ...] = ()  # identifiers attached
    panic: int | None = None  # a unit of this call presses panic, and clears it


INCIDENTS = {
    incident.name: incident
    for incident in (
        Incident(
            "fire", "Maria Lopez", "Grove St & Forum Dr", "My neighbour's house is on fire, there are kids inside!",
            True, "Structure fire, persons trapped", "10-70", 1,
            notes=(("1-A-12", "On scene, fire visible on the second floor, requesting FD."),
                   ("M-40", "Two children out and with EMS, smoke inhalation.")),
            units=(12, 40),
        ),
        Incident(
            "party", "Tom Becker", "Vinewood Blvd 1120", "Loud party next door, it has been going on for hours.",
            False,  # removed: the party ended before anyone was sent
        ),
        Incident(
            "robbery", "Anonymous", "24/7, Innocence Blvd",
            "Two men with guns just robbed the store, they left in a blue Sultan.",
            True, "Armed robbery, suspects fled", "10-31", 1,
            notes=(("2-L-04", "Suspects last seen heading north on Elgin Ave."),),
            units=(31,), panic=31,
        ),
        Incident(
            "ferris", "Jenny Wu", "Del Perro Pier", "Someone is stuck at the top of the Ferris wheel and it stopped.",
            False, "Person stuck on the Ferris wheel", "10-52", 3,
            notes=(("1-A-12", "Operator is lowering the cart by hand, nobody hurt."),),
            units=(12,),
        ),
        Incident(
            "crash", "Frank Miller", "Route 68 near Harmony",
            "Car rolled over into the ditch, the driver isn't moving.", True, "Vehicle rollover, injuries", "10-50", 1,
            notes=(("1-A-07", "Driver conscious, EMS requested."),),
            units=(7, 40),
        ),
        Incident(
            "dog", "Li Chen", "Mirror Park Blvd", "A dog has been locked in a car in the sun for an hour.",
            False,  # removed: the owner came back
        ),
    )
}  # fmt: skip
# (identifier, unit number, name, department, status): on duty when the evening starts
UNITS = (
    (12, "1-A-12", "Officer Reyes", "LSPD", 2),
    (31, "2-L-04", "Deputy Hart", "BCSO", 2),
    (7, "1-A-07", "Officer Kim", "LSPD", 1),
    (40, "M-40", "Medic Shaw", "EMS", 2),
)
AVAILABLE, ENROUTE = 2, 3


def on_duty(cad: FakeCad) -> None:
    """The evening's units, on duty in the CAD before the bot reads its units list."""
    for ident, number, name, department, status in UNITS:
        cad.add_unit(ident, number, name, department, status=status, server=SERVER)


@dataclass(frozen=True)
class Step:
    after: float  # seconds after the previous step
    action: Callable[[], Awaitable[None]]


class Timeline:
    """Plays the script against `cad`, pushing each change to `push_url` with the community's key."""

    def __init__(self, cad: FakeCad, push_url: str, api_key: str, *, pace: float = 1.0) -> None:
        self.cad = cad
        self.push_url = push_url
        self.api_key = api_key
        self.pace = pace  # 1.0: the steps' own spacing (a few seconds); less is faster
        self._session: aiohttp.ClientSession | None = None

    async def play(self, rounds: int | None = None) -> None:
        """Plays the script `rounds` times (forever with None)."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as self._session:
            for _ in itertools.count() if rounds is None else range(rounds):
                for step in self._script():
                    await asyncio.sleep(step.after * self.pace)
                    await step.action()

    def _script(self) -> list[Step]:
        """One round: every incident once, each told by its own steps, interleaved as an evening is."""
        calls: dict[str, int] = {}  # incident -> its 911 call
        dispatch: dict[str, int] = {}  # incident -> its dispatch call

        def ring(name: str) -> Callable[[], Awaitable[None]]:
            async def act() -> None:
                calls[name] = await self.new_911(INCIDENTS[name])

            return act

        def answer(name: str) -> Callable[[], Awaitable[None]]:
            async def act() -> None:
                dispatch[name] = await self.answer(calls[name], INCIDENTS[name])

            return act

        def note(name: str, index: int) -> Callable[[], Awaitable[None]]:
            return lambda: self.note(dispatch[name], *INCIDENTS[name].notes[index])

        def send(name: str) -> Callable[[], Awaitable[None]]:
            async def act() -> None:
                units = list(INCIDENTS[name].units)
                for ident in units:  # where the call is: a panic alert says so
                    self.cad.servers[SERVER].units[ident]["location"] = INCIDENTS[name].location
                await self.attach(dispatch[name], units)
                await self.status(units, ENROUTE)

            return act

        def close(name: str) -> Callable[[], Awaitable[None]]:
            async def act() -> None:
                await self.close(dispatch[name])
                await self.status(list(INCIDENTS[name].units), AVAILABLE)

            return act

        def panic(name: str, on: bool) -> Callable[[], Awaitable[None]]:
            ident = INCIDENTS[name].panic
            assert ident is not None and ident in INCIDENTS[name].units
            return lambda: self.panic(ident, on)

        return [
            Step(1.0, ring("fire")),
            Step(2.5, ring("party")),
            Step(2.5, answer("fire")),
            Step(2.0, send("fire")),
            Step(2.0, ring("robbery")),
            Step(2.0, note("fire", 0)),
            Step(2.0, answer("robbery")),
            Step(2.0, send("robbery")),
            Step(2.0, panic("robbery", True)),
            Step(2.0, lambda: self.remove(calls["party"])),
            Step(1.0, panic("robbery", False)),
            Step(2.0, note("robbery", 0)),
            Step(2.0, note("fire", 1)),
            Step(3.0, close("fire")),
            Step(3.0, ring("crash")),
            Step(2.0, ring("ferris")),
            Step(2.5, answer("crash")),
            Step(2.0, send("crash")),
            Step(2.5, ring("dog")),
            Step(2.0, note("crash", 0)),
            Step(3.0, lambda: self.remove(calls["dog"])),
            Step(2.5, answer("ferris")),
            Step(2.0, send("ferris")),
            Step(2.5, note("ferris", 0)),
            Step(3.0, close("robbery")),
            Step(3.0, close("crash")),
            Step(3.0, close("ferris")),
        ]

    # --- one change, in the CAD and pushed -----------------------------------------------------------
    async def new_911(self, incident: Incident) -> int:
        call_id = self.cad.add_911(
            incident.caller, incident.location, incident.words, emergency=incident.emergency, server=SERVER
        )
        await self.push("EVENT_911", {"call": self.cad.servers[SERVER].emergency[call_id]})
        return call_id

    async def answer(self, call_id: int, incident: Incident) -> int:
        """A dispatcher answers the 911 call: it leaves the emergency list as the incident's dispatch call."""
        call = self.cad.servers[SERVER].emergency.pop(call_id)
        dispatch_id = self.cad.add_dispatch(
            incident.title,
            server=SERVER,
            address=call["location"],
            code=incident.code,
            priority=incident.priority,
            description=call["description"],
            metaData={"origin911": str(call_id)},
        )
        await self.push("EVENT_DISPATCH_NEW", {"dispatch": self.cad.servers[SERVER].active[dispatch_id]})
        await self.push("EVENT_REMOVE_911", {"callIds": [call_id]})
        return dispatch_id

    async def note(self, dispatch_id: int, label: str, content: str) -> None:
        note = {"time": "", "label": label, "type": "text", "content": content}
        self.cad.servers[SERVER].active[dispatch_id]["notes"].append(note)
        await self.push("EVENT_DISPATCH_NOTE", {"callId": dispatch_id, "note": note})

    async def attach(self, dispatch_id: int, idents: list[int]) -> None:
        self.cad.servers[SERVER].active[dispatch_id]["idents"].extend(idents)
        await self.push("EVENT_DISPATCH_UNIT_ATTACH", {"callId": dispatch_id, "idents": idents})

    async def status(self, idents: list[int], status: int) -> None:
        for ident in idents:
            self.cad.servers[SERVER].units[ident]["status"] = status
        await self.push("EVENT_UNIT_STATUS", {"identIds": idents, "status": status})

    async def panic(self, ident: int, on: bool) -> None:
        self.cad.set_panic(ident, on, server=SERVER)
        await self.push("EVENT_UNIT_PANIC", {"identIds": [ident], "isPanic": on})

    async def remove(self, call_id: int) -> None:
        self.cad.servers[SERVER].emergency.pop(call_id, None)
        await self.push("EVENT_REMOVE_911", {"callIds": [call_id]})

    async def close(self, dispatch_id: int) -> None:
        self.cad.close_dispatch(dispatch_id, server=SERVER)
        await self.push("EVENT_DISPATCH_CLOSED", {"callIds": [dispatch_id]})

    async def push(self, kind: str, data: dict[str, Any]) -> None:
        assert self._session is not None
        body = json.dumps({"key": self.api_key, "type": kind, "data": data})
        try:
            async with self._session.post(self.push_url, data=body) as response:
                if response.status != 200:
                    log.warning("sandbox: the bot answered %s to %s: %s", response.status, kind, await response.text())
        except aiohttp.ClientError as error:  # the poll still sees the CAD's lists
            log.warning("sandbox: %s could not be pushed (%s)", kind, error)
