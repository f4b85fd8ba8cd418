"""The demo's community: a scripted, realistic stretch of a roleplay evening, played on the sandbox
CAD and pushed to the bot as Sonoran pushes it (`{key, type, data}` events to the listener).

Emergency and civil 911 calls come in; some are answered into dispatch calls, which gather notes
and units and are then closed; others are removed. Units change status, and one presses panic and
clears it. The CAD's own lists change with every step, so
the bot's poll sees what the events said. After the script, it starts over with new calls.
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
# (caller, location, what they say, emergency)
CALLERS = (
    ("Maria Lopez", "Grove St & Forum Dr", "My neighbour's house is on fire, there are kids inside!", True),
    ("Tom Becker", "Vinewood Blvd 1120", "Loud party next door, it has been going on for hours.", False),
    ("Anonymous", "24/7, Innocence Blvd", "Two men with guns just robbed the store, they left in a blue Sultan.", True),
    ("Jenny Wu", "Del Perro Pier", "Someone is stuck at the top of the Ferris wheel and it stopped.", False),
    ("Frank Miller", "Route 68 near Harmony", "Car rolled over into the ditch, the driver isn't moving.", True),
    ("Li Chen", "Mirror Park Blvd", "A dog has been locked in a car in the sun for an hour.", False),
)
# (identifier, unit number, name, department, status): on duty when the evening starts
UNITS = (
    (12, "1-A-12", "Officer Reyes", "LSPD", 2),
    (31, "2-L-04", "Deputy Hart", "BCSO", 2),
    (7, "1-A-07", "Officer Kim", "LSPD", 1),
    (40, "M-40", "Medic Shaw", "EMS", 2),
)
NOTES = (
    ("1-A-12", "On scene, fire visible on the second floor, requesting FD."),
    ("2-L-04", "Suspects last seen heading north on Elgin Ave."),
    ("1-A-07", "Driver conscious, EMS requested."),
)


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
        self._callers = itertools.cycle(CALLERS)
        self._notes = itertools.cycle(NOTES)
        self._session: aiohttp.ClientSession | None = None

    async def play(self, rounds: int | None = None) -> None:
        """Plays the script `rounds` times (forever with None)."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as self._session:
            for _ in itertools.count() if rounds is None else range(rounds):
                for step in self._script():
                    await asyncio.sleep(step.after * self.pace)
                    await step.action()

    def _script(self) -> list[Step]:
        calls: dict[str, int] = {}
        dispatch: dict[str, int] = {}

        def new_call(name: str) -> Callable[[], Awaitable[None]]:
            async def act() -> None:
                calls[name] = await self.new_911()

            return act

        def answer(name: str, title: str) -> Callable[[], Awaitable[None]]:
            async def act() -> None:
                dispatch[name] = await self.answer(calls[name], title)

            return act

        return [
            Step(1.0, new_call("fire")),
            Step(2.5, new_call("party")),
            Step(2.5, answer("fire", "Structure fire, persons trapped")),
            Step(2.5, new_call("robbery")),
            Step(2.0, lambda: self.note(dispatch["fire"])),
            Step(2.0, lambda: self.attach(dispatch["fire"], [12, 31])),
            Step(1.5, lambda: self.status([12, 31], 3)),
            Step(2.5, lambda: self.remove(calls["party"])),
            Step(2.5, answer("robbery", "Armed robbery, suspects fled")),
            Step(2.5, lambda: self.note(dispatch["robbery"])),
            Step(2.0, lambda: self.panic(31, True)),
            Step(3.0, lambda: self.panic(31, False)),
            Step(3.0, lambda: self.close(dispatch["fire"])),
            Step(0.5, lambda: self.status([12, 31], 2)),
            Step(3.0, new_call("crash")),
            Step(3.0, new_call("dog")),
            Step(3.0, lambda: self.remove(calls["dog"])),
            Step(3.0, answer("crash", "Vehicle rollover, injuries")),
            Step(3.0, lambda: self.close(dispatch["robbery"])),
            Step(3.0, lambda: self.close(dispatch["crash"])),
        ]

    # --- one change, in the CAD and pushed -----------------------------------------------------------
    async def new_911(self) -> int:
        caller, location, description, emergency = next(self._callers)
        call_id = self.cad.add_911(caller, location, description, emergency=emergency, server=SERVER)
        await self.push("EVENT_911", {"call": self.cad.servers[SERVER].emergency[call_id]})
        return call_id

    async def answer(self, call_id: int, title: str) -> int:
        dispatch_id = self.cad.answer_911(call_id, server=SERVER, title=title)
        await self.push("EVENT_DISPATCH_NEW", {"dispatch": self.cad.servers[SERVER].active[dispatch_id]})
        await self.push("EVENT_REMOVE_911", {"callIds": [call_id]})
        return dispatch_id

    async def note(self, dispatch_id: int) -> None:
        label, content = next(self._notes)
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
